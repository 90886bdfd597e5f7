//! /api/topic-permissions, /api/topic-permissions/{v}/{u}, /api/users/{u}/topic-permissions
//! and /api/vhosts/{v}/topic-permissions: a user's routing-key patterns on a topic exchange.
//! As in RabbitMQ, a PUT answers 204 once the user has any topic permission in the vhost, and
//! a DELETE removes them all.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::messages::require;
use crate::broker::metadata::permissions::TopicPermissionSpec;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use std::sync::Arc;

fn listed(specs: impl Iterator<Item = TopicPermissionSpec>) -> Json<Value> {
    Json(Value::Array(
        specs.filter_map(|s| serde_json::to_value(s).ok()).collect(),
    ))
}

fn all(broker: &Broker) -> impl Iterator<Item = TopicPermissionSpec> {
    broker.metadata.all_topic_permissions().into_iter()
}

pub async fn list(State(broker): State<Arc<Broker>>, user: Authed) -> ApiResult<Json<Value>> {
    user.administrator()?;
    Ok(listed(all(&broker)))
}

pub async fn of_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    broker
        .metadata
        .vhost(&vhost)
        .ok_or_else(ApiError::not_found)?;
    Ok(listed(all(&broker).filter(|p| p.vhost == vhost)))
}

pub async fn of_user(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    broker
        .metadata
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(listed(all(&broker).filter(|p| p.user == name)))
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let found: Vec<_> = all(&broker)
        .filter(|p| p.vhost == vhost && p.user == name)
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(listed(found.into_iter()))
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["exchange", "write", "read"])?;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if broker.metadata.vhost(&vhost).is_none() || broker.metadata.user(&name).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let existed = !broker.metadata.topic_permissions(&name, &vhost).is_empty();
    let spec = TopicPermissionSpec {
        user: name,
        vhost,
        exchange: text("exchange"),
        write: text("write"),
        read: text("read"),
    };
    broker
        .metadata
        .set_topic_permissions(spec)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    flushed(&broker).await?;
    Ok(created_or_updated(!existed))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if !broker.metadata.clear_topic_permissions(&name, &vhost, None) {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
