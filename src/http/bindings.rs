//! /api/bindings and the binding lists of exchanges and queues. The default exchange's
//! implicit bindings (one per queue, keyed by its name) are listed as RabbitMQ lists them.
//!
//! A binding is addressed by its `properties_key`: the routing key, URL-encoded (`~` as
//! `%7E`), then `~` and a hash of the arguments when it has any; `~` alone for an empty key
//! without arguments. RabbitMQ hashes the arguments' Erlang term, which is meaningless outside
//! Erlang; Warren hashes their JSON form. Clients take the key from a listing, so only its
//! shape matters.

use super::auth::{exchange_name, Authed};
use super::error::{flushed, json_body, ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use crate::broker::exchange::{Binding, Destination, Exchange};
use crate::broker::field_json::{json_to_table, table_to_json};
use crate::broker::metadata::permissions::Access;
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use warren_amqp::FieldTable;

/// Percent-encodes all but unreserved characters; `plus` writes a space as `+` (the
/// properties key) instead of `%20` (a path segment).
fn quote(text: &str, plus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => out.push(b as char),
            b'~' if !plus => out.push('~'),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A short, stable hash of binding arguments (FNV-1a over their JSON form).
fn arguments_hash(arguments: &FieldTable) -> String {
    let text = table_to_json(arguments).to_string();
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    URL_SAFE_NO_PAD.encode(hash.to_be_bytes())
}

pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    let key = quote(routing_key, true);
    match (key.is_empty(), arguments.inner().is_empty()) {
        (true, true) => "~".into(),
        (_, true) => key,
        (_, false) => format!("{key}~{}", arguments_hash(arguments)),
    }
}

fn binding_json(vhost: &str, source: &str, b: &Binding) -> Value {
    let (destination, kind) = match &b.destination {
        Destination::Queue(q) => (q.name.as_str(), "queue"),
        Destination::Exchange(x) => (x.name.as_str(), "exchange"),
    };
    json!({
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": b.routing_key.as_str(),
        "arguments": table_to_json(&b.arguments),
        "properties_key": properties_key(b.routing_key.as_str(), &b.arguments),
    })
}

/// The default exchange's implicit binding to a queue.
fn default_binding(vhost: &str, queue: &str) -> Value {
    json!({
        "source": "",
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": queue,
        "arguments": {},
        "properties_key": quote(queue, true),
    })
}

/// Every binding of a vhost, in RabbitMQ's order: by source, then destination.
fn of_vhost(vhost: &VHost) -> Vec<Value> {
    let mut items: Vec<Value> = vhost
        .queues()
        .iter()
        .map(|q| default_binding(&vhost.name, q.name.as_str()))
        .collect();
    for x in vhost.exchanges() {
        items.extend(of_exchange(vhost, &x));
    }
    sort(&mut items);
    items
}

fn of_exchange(vhost: &VHost, x: &Exchange) -> Vec<Value> {
    x.bindings()
        .iter()
        .map(|b| binding_json(&vhost.name, x.name.as_str(), b))
        .collect()
}

fn sort(items: &mut [Value]) {
    let key = |v: &Value| {
        [
            "source",
            "destination_type",
            "destination",
            "properties_key",
        ]
        .map(|k| v[k].as_str().unwrap_or_default().to_owned())
    };
    items.sort_by_key(key);
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = user
        .visible_vhosts(&broker)
        .iter()
        .flat_map(|vhost| of_vhost(vhost))
        .collect();
    list::reply(items, &query, DefaultSort::None)
}

pub async fn list_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    list::reply(of_vhost(&vhost), &query, DefaultSort::None)
}

/// `GET /api/queues/{v}/{q}/bindings`.
pub async fn of_queue(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, queue)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    vhost.queue(&queue)?;
    let items = of_vhost(&vhost)
        .into_iter()
        .filter(|b| b["destination_type"] == "queue" && b["destination"] == queue.as_str())
        .collect();
    Ok(Json(Value::Array(items)))
}

/// `GET /api/exchanges/{v}/{e}/bindings/source` and `…/destination`.
pub async fn of_exchange_as(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, exchange, side)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    let name = exchange_name(&exchange);
    vhost.exchange(name)?;
    let items: Vec<Value> = match side.as_str() {
        "source" => of_vhost(&vhost)
            .into_iter()
            .filter(|b| b["source"] == name)
            .collect(),
        "destination" => of_vhost(&vhost)
            .into_iter()
            .filter(|b| b["destination_type"] == "exchange" && b["destination"] == name)
            .collect(),
        _ => return Err(ApiError::not_found()),
    };
    Ok(Json(Value::Array(items)))
}

/// Which kind of destination a binding path names (`q` or `e`).
fn destination_kind(kind: &str) -> ApiResult<&'static str> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::not_found()),
    }
}

/// The bindings between one source and one destination.
fn between(vhost: &VHost, source: &str, kind: &str, destination: &str) -> Vec<Value> {
    of_vhost(vhost)
        .into_iter()
        .filter(|b| {
            b["source"] == source
                && b["destination_type"] == kind
                && b["destination"] == destination
        })
        .collect()
}

/// `GET /api/bindings/{v}/e/{s}/{q|e}/{d}`.
pub async fn list_between(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    let kind = destination_kind(&kind)?;
    let source = exchange_name(&source);
    Ok(Json(Value::Array(between(
        &vhost,
        source,
        kind,
        &destination,
    ))))
}

/// `GET /api/bindings/{v}/e/{s}/{q|e}/{d}/{props}`.
pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    let kind = destination_kind(&kind)?;
    between(&vhost, exchange_name(&source), kind, &destination)
        .into_iter()
        .find(|b| b["properties_key"] == props.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BindingBody {
    routing_key: String,
    arguments: Map<String, Value>,
}

/// A missing end of a binding, as RabbitMQ names it.
fn missing(e: crate::error::AmqpError) -> ApiError {
    match e.code {
        warren_amqp::reply::NOT_FOUND => ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: Value::from(e.text.split_once(" - ").map_or(e.text.as_str(), |(_, t)| t)),
        },
        _ => e.into(),
    }
}

/// `POST /api/bindings/{v}/e/{s}/{q|e}/{d}`: 201 with the new binding's address.
pub async fn create(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let vhost = user.vhost(&broker, &vhost)?;
    let kind = destination_kind(&kind)?;
    let body: BindingBody = json_body(&body)?;
    let source = exchange_name(&source);
    if source.is_empty() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    let arguments = json_to_table(&body.arguments);
    match kind {
        "queue" => {
            user.may(&broker, &vhost.name, Access::Write, &destination)?;
            user.may(&broker, &vhost.name, Access::Read, source)?;
            vhost
                .bind_queue(
                    &destination,
                    source,
                    &body.routing_key,
                    arguments.clone(),
                    broker.next_connection_id(),
                    user.name(),
                )
                .map_err(missing)?;
        }
        _ => {
            let destination = exchange_name(&destination);
            user.may(&broker, &vhost.name, Access::Write, destination)?;
            user.may(&broker, &vhost.name, Access::Read, source)?;
            vhost
                .bind_exchange(
                    destination,
                    source,
                    &body.routing_key,
                    arguments.clone(),
                    user.name(),
                )
                .map_err(missing)?;
        }
    }
    flushed(&broker).await?;
    let location = format!(
        "{}/{}",
        quote(&destination, false),
        quote(&properties_key(&body.routing_key, &arguments), false)
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `DELETE /api/bindings/{v}/e/{s}/{q|e}/{d}/{props}`.
pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let vhost = user.vhost(&broker, &vhost)?;
    let kind = destination_kind(&kind)?;
    let source = exchange_name(&source);
    let found = between(&vhost, source, kind, &destination)
        .into_iter()
        .find(|b| b["properties_key"] == props.as_str())
        .ok_or_else(ApiError::not_found)?;
    let key = found["routing_key"].as_str().unwrap_or_default();
    let arguments = json_to_table(found["arguments"].as_object().unwrap_or(&Map::new()));
    if source.is_empty() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    user.may(&broker, &vhost.name, Access::Write, &destination)?;
    user.may(&broker, &vhost.name, Access::Read, source)?;
    match kind {
        "queue" => vhost.unbind_queue(&destination, source, key, &arguments, user.name())?,
        _ => vhost.unbind_exchange(
            exchange_name(&destination),
            source,
            key,
            &arguments,
            user.name(),
        )?,
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::AMQPValue;

    #[test]
    fn properties_keys_have_rabbitmqs_shape() {
        let none = FieldTable::default();
        assert_eq!(properties_key("", &none), "~");
        assert_eq!(properties_key("a.b", &none), "a.b");
        assert_eq!(properties_key("t~x", &none), "t%7Ex");
        assert_eq!(properties_key("a/b c%#.*", &none), "a%2Fb+c%25%23.%2A");
        let mut args = FieldTable::default();
        args.insert("k".into(), AMQPValue::LongString("v".into()));
        let key = properties_key("a.b", &args);
        assert!(
            key.starts_with("a.b~") && key.len() == "a.b~".len() + 6,
            "{key}"
        );
        assert_eq!(quote("a%2Fb+c", false), "a%252Fb%2Bc");
    }
}
