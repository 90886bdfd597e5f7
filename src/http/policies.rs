//! /api/policies and /api/operator-policies: list (all, or a vhost's), show, set (PUT: 201 or
//! 204; RabbitMQ's validation failures are 400), clear. A change applies at once to what the
//! policy matches. The handlers serve both kinds: `OPERATOR` says which.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use crate::broker::metadata::policies::{ApplyTo, PolicyError, PolicySpec};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

fn listed(specs: Vec<PolicySpec>) -> Json<Value> {
    Json(Value::Array(
        specs
            .into_iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect(),
    ))
}

fn all_of(broker: &Broker, user: &Authed, operator: bool) -> Vec<PolicySpec> {
    broker
        .metadata
        .vhosts()
        .iter()
        .filter(|v| user.sees_vhost(broker, &v.name))
        .flat_map(|v| broker.metadata.policies(&v.name, operator))
        .collect()
}

pub async fn list<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    user: Authed,
) -> Json<Value> {
    listed(all_of(&broker, &user, OPERATOR))
}

pub async fn of_vhost<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    if broker.metadata.vhost(&vhost).is_none() || !user.sees_vhost(&broker, &vhost) {
        return Err(ApiError::not_found());
    }
    Ok(listed(broker.metadata.policies(&vhost, OPERATOR)))
}

pub async fn show<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if !user.sees_vhost(&broker, &vhost) {
        return Err(ApiError::not_found());
    }
    let found = broker
        .metadata
        .policies(&vhost, OPERATOR)
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(ApiError::not_found)?;
    serde_json::to_value(found)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
struct PolicyBody {
    pattern: String,
    definition: Map<String, Value>,
    #[serde(default)]
    priority: i64,
    #[serde(rename = "apply-to", default)]
    apply_to: ApplyTo,
}

pub async fn put<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    match OPERATOR {
        true => user.administrator()?,
        false => user.policymaker()?,
    }
    let body: PolicyBody = json_body(&body)?;
    if broker.metadata.vhost(&vhost).is_none() {
        return Err(ApiError::vhost_not_found());
    }
    let existed = broker
        .metadata
        .policies(&vhost, OPERATOR)
        .iter()
        .any(|p| p.name == name);
    let spec = PolicySpec {
        vhost,
        name,
        pattern: body.pattern,
        apply_to: body.apply_to,
        priority: body.priority,
        definition: body.definition,
    };
    broker
        .set_policy(spec, OPERATOR, user.name())
        .map_err(|e| match e {
            // RabbitMQ's reason has the Erlang binaries' angle brackets HTML-escaped.
            PolicyError::Invalid(_) | PolicyError::BadPattern(_) => {
                ApiError::bad_request(e.to_string().replace('<', "&lt;").replace('>', "&gt;"))
            }
        })?;
    flushed(&broker).await?;
    Ok(created_or_updated(!existed))
}

pub async fn delete<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    match OPERATOR {
        true => user.administrator()?,
        false => user.policymaker()?,
    }
    if !broker.clear_policy(&vhost, &name, OPERATOR, user.name()) {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
