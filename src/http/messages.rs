//! Messages through the API: `POST /api/exchanges/{v}/{e}/publish` and
//! `POST /api/queues/{v}/{q}/get`, with RabbitMQ's bodies: payloads as text or base64,
//! properties as an object (`[]` when a message has none, as RabbitMQ writes an empty list).

use super::auth::{exchange_name, Authed};
use super::error::{flushed, json_body, ApiError, ApiResult};
use crate::broker::field_json::{json_to_table, table_to_json};
use crate::broker::message::QueueEntry;
use crate::broker::metadata::permissions::Access;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use warren_amqp::protocol::basic::parse_properties;
use warren_amqp::{BasicProperties, ShortString};

/// RabbitMQ's reply to a body without the keys an endpoint needs: an Erlang list of
/// `{key_missing,K}`, broken over lines as Erlang prints a long term.
pub fn require(body: &Map<String, Value>, keys: &[&str]) -> ApiResult<()> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let one_line = format!("[{}]", missing.join(","));
    Err(ApiError::bad_request(if one_line.len() <= 80 {
        one_line
    } else {
        format!("[{}]", missing.join(",\n "))
    }))
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub async fn publish(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Map<String, Value> = json_body(&body)?;
    let vhost = broker
        .vhost(&vhost)
        .filter(|_| user.sees_vhost(&broker, &vhost))
        .ok_or_else(|| ApiError::not_authorised("Access refused."))?;
    require(
        &body,
        &["routing_key", "properties", "payload", "payload_encoding"],
    )?;
    let payload = text(&body, "payload");
    let payload = match text(&body, "payload_encoding") {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => STANDARD
            .decode(payload)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request_value(json!(["not_base64", payload])))?,
        other => {
            return Err(ApiError::bad_request_value(json!([
                "unsupported_encoding",
                other
            ])))
        }
    };
    let empty = Map::new();
    let props = body
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let properties = properties_from_json(props)?;
    if let Some(id) = properties.user_id() {
        if id.as_str() != user.0.name {
            return Err(ApiError::bad_request(format!(
                "406 PRECONDITION_FAILED - user_id property set to '{id}' but authenticated \
                 user was '{}'",
                user.0.name
            )));
        }
    }
    let name = exchange_name(&name);
    let exchange = vhost
        .exchange(name)
        .map_err(|e| ApiError::bad_request(format!("404 {}", e.text)))?;
    user.may(&broker, &vhost.name, Access::Write, name)?;
    let routing_key = text(&body, "routing_key");
    // As RabbitMQ's API reports a channel error of its own publish: 400 with the code and text.
    let published = broker
        .publish(&vhost, &exchange, routing_key, properties, payload)
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code, e.text)))?;
    if published.stored {
        // As a confirm would: the answer waits for the disk.
        flushed(&broker).await?;
    }
    Ok(Json(json!({"routed": published.routed})))
}

fn short(props: &Map<String, Value>, key: &str) -> ApiResult<Option<ShortString>> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => ShortString::try_new(s.as_str())
            .map(Some)
            .map_err(|_| ApiError::bad_request_value(json!(["too_long", key]))),
        Some(_) => Err(ApiError::bad_request_value(json!(["not_string", key]))),
    }
}

fn int(props: &Map<String, Value>, key: &str) -> ApiResult<Option<u64>> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request_value(json!(["not_int", key]))),
    }
}

/// Properties from the API's object; unknown keys are ignored, as RabbitMQ ignores them.
pub fn properties_from_json(props: &Map<String, Value>) -> ApiResult<BasicProperties> {
    let mut p = BasicProperties::default();
    macro_rules! text_prop {
        ($key:literal, $with:ident) => {
            if let Some(v) = short(props, $key)? {
                p = p.$with(v);
            }
        };
    }
    text_prop!("content_type", with_content_type);
    text_prop!("content_encoding", with_content_encoding);
    text_prop!("correlation_id", with_correlation_id);
    text_prop!("reply_to", with_reply_to);
    text_prop!("expiration", with_expiration);
    text_prop!("message_id", with_message_id);
    text_prop!("type", with_type);
    text_prop!("user_id", with_user_id);
    text_prop!("app_id", with_app_id);
    text_prop!("cluster_id", with_cluster_id);
    if let Some(mode) = int(props, "delivery_mode")? {
        p = p.with_delivery_mode(mode.min(255) as u8);
    }
    if let Some(priority) = int(props, "priority")? {
        p = p.with_priority(priority.min(255) as u8);
    }
    if let Some(ts) = int(props, "timestamp")? {
        p = p.with_timestamp(ts);
    }
    match props.get("headers") {
        Some(Value::Object(h)) => p = p.with_headers(json_to_table(h)),
        None | Some(Value::Null) => {}
        Some(_) => return Err(ApiError::bad_request_value(json!(["not_table", "headers"]))),
    }
    Ok(p)
}

/// Properties as RabbitMQ's API shows them; an empty list when there are none.
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut o = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(key.to_owned(), v);
        }
    };
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| Value::from(s.as_str()));
    put("app_id", s(p.app_id()));
    put("cluster_id", s(p.cluster_id()));
    put("user_id", s(p.user_id()));
    put("type", s(p.kind()));
    put("timestamp", p.timestamp().map(Value::from));
    put("message_id", s(p.message_id()));
    put("expiration", s(p.expiration()));
    put("reply_to", s(p.reply_to()));
    put("correlation_id", s(p.correlation_id()));
    put("priority", p.priority().map(Value::from));
    put("delivery_mode", p.delivery_mode().map(Value::from));
    put("headers", p.headers().as_ref().map(table_to_json));
    put("content_encoding", s(p.content_encoding()));
    put("content_type", s(p.content_type()));
    if o.is_empty() {
        json!([])
    } else {
        Value::Object(o)
    }
}

/// What a get does with the messages it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    AckRequeue,
    Ack,
    RejectRequeue,
    Reject,
}

impl AckMode {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "ack_requeue_true" => Some(Self::AckRequeue),
            "ack_requeue_false" => Some(Self::Ack),
            "reject_requeue_true" => Some(Self::RejectRequeue),
            "reject_requeue_false" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// A count as RabbitMQ reads it: a number or a numeric string; a negative one takes all.
fn count_of(v: Option<&Value>) -> ApiResult<usize> {
    let n = match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n < 0 => Ok(usize::MAX),
        Some(n) => Ok(n as usize),
        None => Err(ApiError::bad_request_value(json!(["not_integer", v]))),
    }
}

pub async fn get(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Map<String, Value> = json_body(&body)?;
    let vhost = user.vhost(&broker, &vhost)?;
    require(&body, &["ackmode", "count", "encoding"])?;
    let count = count_of(body.get("count"))?;
    let mode = AckMode::parse(text(&body, "ackmode")).ok_or_else(|| {
        ApiError::bad_request_value(json!(["unknown_ackmode", body.get("ackmode")]))
    })?;
    let base64 = match text(&body, "encoding") {
        "auto" => false,
        "base64" => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let truncate = match body.get("truncate") {
        None | Some(Value::Null) => usize::MAX,
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad_request_value(json!(["not_integer", v])))?,
    };
    let queue = vhost.queue(&name).map_err(|e| ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        error: "not_found",
        reason: Value::from(e.text),
    })?;
    user.may(&broker, &vhost.name, Access::Read, &name)?;
    // A get may wait for messages read back from disk: off the async workers.
    let taken = tokio::task::spawn_blocking(move || {
        let mut taken: Vec<(QueueEntry, u32)> = Vec::new();
        while taken.len() < count {
            match queue.get(true) {
                Some(got) => taken.push(got),
                None => break,
            }
        }
        let entries = || taken.iter().map(|(e, _)| e);
        match mode {
            AckMode::Ack => queue.settle(entries(), false),
            AckMode::Reject => queue.settle(entries(), true),
            AckMode::AckRequeue | AckMode::RejectRequeue => {
                queue.requeue(taken.iter().map(|(e, _)| e.clone()))
            }
        }
        taken
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if matches!(mode, AckMode::Ack | AckMode::Reject) {
        flushed(&broker).await?;
    }
    let messages = taken
        .iter()
        .map(|(entry, remaining)| message_json(entry, *remaining, base64, truncate))
        .collect();
    Ok(Json(Value::Array(messages)))
}

fn message_json(entry: &QueueEntry, remaining: u32, base64: bool, truncate: usize) -> Value {
    let m = &entry.message;
    let properties = parse_properties(&m.raw_properties[..])
        .map(|(_, p)| p)
        .unwrap_or_default();
    let body = &m.body[..m.body.len().min(truncate)];
    let (payload, encoding) = match (base64, std::str::from_utf8(body)) {
        (false, Ok(text)) => (text.to_owned(), "string"),
        _ => (STANDARD.encode(body), "base64"),
    };
    json!({
        "payload_bytes": m.body.len(),
        "redelivered": entry.redelivered,
        "exchange": m.exchange.as_str(),
        "routing_key": m.routing_key.as_str(),
        "message_count": remaining,
        "properties": properties_to_json(&properties),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_are_listed_as_rabbitmq_prints_them() {
        let body = Map::new();
        let e = require(&body, &["ackmode", "count", "encoding"]).unwrap_err();
        assert_eq!(
            e.reason,
            "[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]"
        );
        let e = require(
            &body,
            &["routing_key", "properties", "payload", "payload_encoding"],
        )
        .unwrap_err();
        assert_eq!(
            e.reason,
            "[{key_missing,routing_key},\n {key_missing,properties},\n {key_missing,payload},\n {key_missing,payload_encoding}]"
        );
    }

    #[test]
    fn properties_round_trip() {
        let v = json!({"content_type": "text/plain", "delivery_mode": 2, "priority": 3,
                       "timestamp": 7, "headers": {"h": 1}, "type": "t"});
        let p = properties_from_json(v.as_object().unwrap()).unwrap();
        assert_eq!(properties_to_json(&p), v);
        assert_eq!(properties_to_json(&BasicProperties::default()), json!([]));
    }
}
