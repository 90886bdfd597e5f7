//! /api/queues: list (all, or a vhost's), show, declare (PUT: 201 or 204; RabbitMQ's API
//! ignores `exclusive`), delete (`if-empty`, `if-unused`), purge (`DELETE …/contents`),
//! `POST …/get` and `POST …/actions`. Figures are read from a snapshot taken under the queue's
//! lock; nothing is serialised while it is held.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use super::stats::{self, Ages};
use super::time::instant_text;
use crate::broker::field_json::{json_to_table, table_to_json};
use crate::broker::metadata::permissions::Access;
use crate::broker::queue::{Queue, QueueSnapshot};
use crate::broker::vhost::{QueueSpec, VHost};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A queue as RabbitMQ lists it.
pub fn queue_json(broker: &Broker, q: &Queue, ages: &Ages) -> Value {
    let s = q.snapshot();
    let ready_ram = s.ready.saturating_sub(s.paged_out);
    let definition = broker
        .metadata
        .queue_policy_definition(&q.vhost, q.name.as_str());
    let mut v = json!({
        "name": q.name.as_str(),
        "vhost": q.vhost,
        "type": q.kind().name(),
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.arguments),
        "node": broker.node_name(),
        "state": "running",
        "policy": s.policy,
        "operator_policy": s.operator_policy,
        "effective_policy_definition": definition,
        "consumers": s.consumers.len(),
        "consumer_capacity": if s.consumers.is_empty() { 0.0 } else { 1.0 },
        "consumer_utilisation": if s.consumers.is_empty() { 0.0 } else { 1.0 },
        "exclusive_consumer_tag": s.consumers.iter().find(|c| c.exclusive).map(|c| c.tag.as_str()),
        "single_active_consumer_tag": Value::Null,
        "idle_since": instant_text(s.last_used),
        "head_message_timestamp": Value::Null,
        "recoverable_slaves": Value::Null,
        "memory": memory_estimate(&s),
        "messages": s.ready + s.unacked,
        "messages_ready": s.ready,
        "messages_unacknowledged": s.unacked,
        "messages_ram": ready_ram + s.unacked,
        "messages_ready_ram": ready_ram,
        "messages_unacknowledged_ram": s.unacked,
        "messages_paged_out": s.paged_out,
        "message_bytes": s.ready_bytes,
        "message_bytes_ready": s.ready_bytes,
        "message_bytes_unacknowledged": 0,
        "message_bytes_ram": s.ready_bytes,
        "message_bytes_paged_out": 0,
        "message_bytes_persistent": 0,
        "messages_persistent": 0,
        "message_stats": stats::message_stats(
            &q.stats.counters.read(),
            &q.stats.series,
            stats::QUEUE,
            ages,
        ),
    });
    if q.is_quorum() {
        // A one-node cluster: this node leads and is the only member.
        let node = broker.node_name();
        v["leader"] = json!(node);
        v["members"] = json!([node]);
        v["online"] = json!([node]);
    }
    if let Some(o) = v.as_object_mut() {
        for (name, details) in stats::length_details(&q.stats.series, ages) {
            o.insert(name.into(), details);
        }
        // RabbitMQ gives idle_since only to a queue that is idle: none while messages move.
        if busy(&o["message_stats"]) {
            o.remove("idle_since");
        }
    }
    v
}

/// Whether any of a `message_stats` object's rates is above zero.
fn busy(message_stats: &Value) -> bool {
    message_stats.as_object().is_some_and(|m| {
        m.iter()
            .any(|(k, v)| k.ends_with("_details") && v["rate"].as_f64().is_some_and(|r| r > 0.0))
    })
}

/// Bytes the queue holds in memory: its share of message bodies not paged out, and a small
/// fixed cost per queue and consumer.
fn memory_estimate(s: &QueueSnapshot) -> u64 {
    let in_memory = match s.ready {
        0 => 0,
        n => s.ready_bytes / n * n.saturating_sub(s.paged_out),
    };
    in_memory + 2048 + 512 * s.consumers.len() as u64
}

/// A queue in a list: its JSON is built only if the page shows it.
struct Listed {
    queue: Arc<Queue>,
    broker: Arc<Broker>,
    ages: Ages,
}

impl list::Item for Listed {
    fn name(&self) -> &str {
        self.queue.name.as_str()
    }

    fn vhost(&self) -> &str {
        &self.queue.vhost
    }

    fn into_json(self) -> Value {
        queue_json(&self.broker, &self.queue, &self.ages)
    }
}

fn of_vhost(broker: &Arc<Broker>, vhost: &VHost, ages: &Ages) -> Vec<Listed> {
    vhost
        .queues()
        .into_iter()
        .map(|queue| Listed {
            queue,
            broker: broker.clone(),
            ages: *ages,
        })
        .collect()
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
    Query(ages): Query<Ages>,
) -> ApiResult<Json<Value>> {
    let items = user
        .visible_vhosts(&broker)
        .iter()
        .flat_map(|vhost| of_vhost(&broker, vhost, &ages))
        .collect();
    list::reply(items, &query, DefaultSort::VhostName)
}

pub async fn list_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    Query(ages): Query<Ages>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    list::reply(
        of_vhost(&broker, &vhost, &ages),
        &query,
        DefaultSort::VhostName,
    )
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(ages): Query<Ages>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    let q = vhost.queue(&name)?;
    let mut v = queue_json(&broker, &q, &ages);
    if let Some(o) = v.as_object_mut() {
        let consumers: Vec<Value> = q
            .snapshot()
            .consumers
            .iter()
            .map(|c| super::consumers::consumer_json(&broker, &q, c))
            .collect();
        o.insert("consumer_details".into(), Value::Array(consumers));
        o.insert("deliveries".into(), json!([]));
        o.insert("incoming".into(), json!([]));
    }
    Ok(Json(v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct QueueBody {
    #[serde(deserialize_with = "super::error::flexible_bool")]
    durable: bool,
    #[serde(deserialize_with = "super::error::flexible_bool")]
    auto_delete: bool,
    arguments: Map<String, Value>,
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: QueueBody = json_body(&body)?;
    let vhost = user.vhost_to_change(&broker, &vhost)?;
    user.may(&broker, &vhost.name, Access::Configure, &name)?;
    let existed = vhost.queue(&name).is_ok();
    vhost.declare_queue(
        QueueSpec {
            name,
            passive: false,
            durable: body.durable,
            exclusive: false,
            auto_delete: body.auto_delete,
            arguments: json_to_table(&body.arguments),
            server_named: false,
        },
        broker.next_connection_id(),
        user.name(),
    )?;
    flushed(&broker).await?;
    Ok(created_or_updated(!existed))
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true")
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let vhost = user.vhost(&broker, &vhost)?;
    let q = vhost.queue(&name)?;
    user.may(&broker, &vhost.name, Access::Configure, &name)?;
    vhost.delete_queue_checks(&q, flag(&params, "if-unused"), flag(&params, "if-empty"))?;
    vhost.delete_queue(&q, user.name());
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn purge(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let vhost = user.vhost(&broker, &vhost)?;
    let q = vhost.queue(&name)?;
    user.may(&broker, &vhost.name, Access::Read, &name)?;
    q.purge();
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/actions`: `sync` and `cancel_sync` concern mirrored queues, which Warren has not;
/// they succeed and do nothing, as they do on RabbitMQ's unmirrored queues.
pub async fn actions(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let vhost = user.vhost(&broker, &vhost)?;
    vhost.queue(&name)?;
    let body: Map<String, Value> = json_body(&body)?;
    match body.get("action").and_then(Value::as_str) {
        Some("sync" | "cancel_sync") => Ok(StatusCode::NO_CONTENT),
        other => Err(ApiError::bad_request_value(json!([
            "unknown",
            other.unwrap_or("undefined")
        ]))),
    }
}
