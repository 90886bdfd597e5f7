//! /api/vhosts: list, show, create or update (PUT: 201 or 204), delete (closes the vhost's
//! connections and drops what it holds).

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use super::stats::{self, Ages};
use crate::broker::metadata::users::Tags;
use crate::broker::metadata::VhostRecord;
use crate::broker::sampler;
use crate::broker::stats::Stat;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A vhost as RabbitMQ shows it (without the rates, which come with statistics).
pub fn vhost_json(broker: &Broker, record: &VhostRecord) -> Value {
    let (mut ready, mut unacked) = (0u64, 0u64);
    let vhost = broker.vhost(&record.name);
    if let Some(vhost) = &vhost {
        for q in vhost.queues() {
            let (r, u) = q.lengths();
            ready += r;
            unacked += u;
        }
    }
    let node = broker.node_name();
    let mut v = json!({
        "name": record.name,
        "description": record.description,
        "tags": record.tags,
        "default_queue_type": record.default_queue_type.as_deref().unwrap_or("undefined"),
        "metadata": {"description": record.description, "tags": record.tags},
        "tracing": record.tracing,
        "cluster_state": {node: "running"},
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    });
    if let (Some(vhost), Some(o)) = (&vhost, v.as_object_mut()) {
        let totals = sampler::vhost_totals(broker, vhost);
        let ages = Ages::default();
        let message_stats =
            stats::message_stats(&totals, &vhost.stats.series, stats::CHANNEL, &ages);
        o.insert("message_stats".into(), message_stats);
        for stat in [Stat::RecvOct, Stat::SendOct] {
            o.insert(stat.name().into(), totals[stat as usize].into());
            let details = stats::octet_details(&vhost.stats.series, stat);
            o.insert(format!("{}_details", stat.name()), details);
        }
        for (name, details) in stats::length_details(&vhost.stats.series, &ages) {
            o.insert(name.into(), details);
        }
    }
    v
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let visible: Vec<Value> = broker
        .metadata
        .vhosts()
        .iter()
        .filter(|v| user.sees_vhost(&broker, &v.name))
        .map(|v| vhost_json(&broker, v))
        .collect();
    list::reply(visible, &query, DefaultSort::Name)
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    match broker.metadata.vhost(&name) {
        Some(v) if user.sees_vhost(&broker, &name) => Ok(Json(vhost_json(&broker, &v))),
        _ => Err(ApiError::not_found()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct VhostBody {
    description: Option<String>,
    tags: Option<Tags>,
    default_queue_type: Option<String>,
    /// Checked by hand: RabbitMQ answers a non-boolean with its own reason.
    tracing: Option<Value>,
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: VhostBody = json_body(&body)?;
    let existing = broker.metadata.vhost(&name);
    let created = existing.is_none();
    let mut record = existing.unwrap_or_else(|| VhostRecord::named(&name));
    if let Some(d) = body.description {
        record.description = d;
    }
    if let Some(t) = body.tags {
        record.tags = t.into_vec();
    }
    if let Some(q) = body.default_queue_type {
        record.default_queue_type = Some(q);
    }
    match body.tracing {
        None => {}
        Some(Value::Bool(on)) => record.tracing = on,
        Some(other) => return Err(ApiError::bad_request_value(json!(["not_boolean", other]))),
    }
    broker.add_vhost(record, user.name());
    if created {
        // As `rabbitmqctl add_vhost` and the API do, the creator gets full permissions.
        super::permissions::grant_all(&broker, &user.0.name, &name);
    }
    flushed(&broker).await?;
    Ok(created_or_updated(created))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if !broker.delete_vhost(&name, user.name()) {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
