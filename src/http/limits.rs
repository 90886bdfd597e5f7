//! /api/vhost-limits[/{v}[/{name}]] and /api/user-limits[/{u}[/{name}]]: PUT `{"value": n}`
//! (always 204, as RabbitMQ answers) and DELETE (204 even when the limit was not set). A
//! negative value lifts the limit. Errors carry RabbitMQ's validation texts.

use super::auth::Authed;
use super::error::{flushed, json_body, ApiError, ApiResult};
use super::messages::require;
use crate::broker::metadata::{Limits, USER_LIMITS, VHOST_LIMITS};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn vhost_entry(name: &str, limits: &Limits) -> Value {
    json!({"vhost": name, "value": limits})
}

fn user_entry(name: &str, limits: &Limits) -> Value {
    json!({"user": name, "value": limits})
}

pub async fn vhosts(State(broker): State<Arc<Broker>>, user: Authed) -> Json<Value> {
    let listed = broker
        .metadata
        .vhosts()
        .iter()
        .filter(|v| !v.limits.is_empty() && user.sees_vhost(&broker, &v.name))
        .map(|v| vhost_entry(&v.name, &v.limits))
        .collect();
    Json(Value::Array(listed))
}

pub async fn of_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = broker
        .metadata
        .vhost(&vhost)
        .filter(|_| user.sees_vhost(&broker, &vhost))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(match record.limits.is_empty() {
        true => json!([]),
        false => json!([vhost_entry(&vhost, &record.limits)]),
    }))
}

/// The limit a PUT sets: an integer, or RabbitMQ's complaint about what came instead.
fn value_of(body: &Map<String, Value>, name: &str) -> Result<i64, String> {
    let value = &body["value"];
    value.as_i64().ok_or_else(|| {
        let shown = match value {
            Value::String(s) => format!("<<\"{s}\">>"),
            other => other.to_string(),
        };
        format!("{name} should be a number, actually was {shown}")
    })
}

fn unrecognised(name: &str, body: &Map<String, Value>, what: &str) -> String {
    format!(
        "Unrecognised terms [{{<<\"{name}\">>,{}}}] in {what}",
        body["value"]
    )
}

pub async fn put_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["value"])?;
    let record = broker
        .metadata
        .vhost(&vhost)
        .ok_or_else(ApiError::vhost_not_found)?;
    let failed = |why: String| ApiError::bad_request(format!("Validation failed\n\n{why}\n"));
    if !VHOST_LIMITS.contains(&name.as_str()) {
        return Err(failed(unrecognised(&name, &body, "limits")));
    }
    let value = value_of(&body, &name).map_err(failed)?;
    let mut limits = record.limits;
    limits.insert(name, value);
    broker
        .set_vhost_limits(&vhost, limits)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let record = broker
        .metadata
        .vhost(&vhost)
        .ok_or_else(ApiError::not_found)?;
    let mut limits = record.limits;
    if limits.remove(&name).is_some() {
        broker
            .set_vhost_limits(&vhost, limits)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        flushed(&broker).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn users(State(broker): State<Arc<Broker>>, user: Authed) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let listed = broker
        .metadata
        .users()
        .iter()
        .filter(|u| !u.limits.is_empty())
        .map(|u| user_entry(&u.name, &u.limits))
        .collect();
    Ok(Json(Value::Array(listed)))
}

pub async fn of_user(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let found = broker
        .metadata
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(match found.limits.is_empty() {
        true => json!([]),
        false => json!([user_entry(&name, &found.limits)]),
    }))
}

pub async fn put_user(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((name, limit)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["value"])?;
    let found = broker
        .metadata
        .user(&name)
        .ok_or_else(|| ApiError::bad_request_value(json!(["no_such_user", name])))?;
    if !USER_LIMITS.contains(&limit.as_str()) {
        return Err(ApiError::bad_request(unrecognised(
            &limit,
            &body,
            "user-limits",
        )));
    }
    let value = value_of(&body, &limit).map_err(ApiError::bad_request)?;
    let mut limits = found.limits;
    limits.insert(limit, value);
    broker
        .set_user_limits(&name, limits)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_user(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((name, limit)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let found = broker
        .metadata
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    let mut limits = found.limits;
    if limits.remove(&limit).is_some() {
        broker
            .set_user_limits(&name, limits)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        flushed(&broker).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
