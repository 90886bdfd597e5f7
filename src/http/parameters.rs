//! /api/parameters (runtime parameters by component, vhost and name), /api/global-parameters
//! and /api/cluster-name. Vhost limits are listed, and may be set, as the `vhost-limits`
//! component, as RabbitMQ keeps them. Warren stores parameters of any other component as they
//! come, so definitions from a RabbitMQ with plugins import without loss.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::messages::require;
use crate::broker::metadata::parameters::{GlobalParameter, Parameter};
use crate::broker::metadata::Limits;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VHOST_LIMITS: &str = "vhost-limits";

/// Every runtime parameter the user may see, vhost limits included.
pub fn all(broker: &Broker, user: &Authed) -> Vec<Parameter> {
    let mut all: Vec<Parameter> = broker
        .metadata
        .vhosts()
        .into_iter()
        .filter(|v| !v.limits.is_empty())
        .map(|v| Parameter {
            value: json!(v.limits),
            vhost: v.name,
            component: VHOST_LIMITS.into(),
            name: "limits".into(),
        })
        .collect();
    all.extend(broker.metadata.parameters());
    all.retain(|p| user.sees_vhost(broker, &p.vhost));
    all
}

/// Sets a runtime parameter; true if it is new.
pub fn set(broker: &Broker, p: Parameter) -> ApiResult<bool> {
    if broker.metadata.vhost(&p.vhost).is_none() {
        return Err(ApiError::vhost_not_found());
    }
    if p.component != VHOST_LIMITS {
        return Ok(broker.metadata.set_parameter(p));
    }
    let limits: Limits = serde_json::from_value(p.value.clone()).map_err(|_| {
        ApiError::bad_request(format!(
            "Validation failed\n\n{} is not a limits object\n",
            p.value
        ))
    })?;
    let existed = broker
        .metadata
        .vhost(&p.vhost)
        .is_some_and(|v| !v.limits.is_empty());
    broker
        .set_vhost_limits(&p.vhost, limits)
        .map_err(|e| ApiError::bad_request(format!("Validation failed\n\n{e}\n")))?;
    Ok(!existed)
}

fn listed(items: impl Iterator<Item = Parameter>) -> Json<Value> {
    Json(Value::Array(
        items.filter_map(|p| serde_json::to_value(p).ok()).collect(),
    ))
}

pub async fn list(State(broker): State<Arc<Broker>>, user: Authed) -> Json<Value> {
    listed(all(&broker, &user).into_iter())
}

pub async fn of_component(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(component): Path<String>,
) -> Json<Value> {
    listed(
        all(&broker, &user)
            .into_iter()
            .filter(|p| p.component == component),
    )
}

pub async fn of_component_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((component, vhost)): Path<(String, String)>,
) -> Json<Value> {
    listed(
        all(&broker, &user)
            .into_iter()
            .filter(|p| p.component == component && p.vhost == vhost),
    )
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    all(&broker, &user)
        .into_iter()
        .find(|p| p.component == component && p.vhost == vhost && p.name == name)
        .and_then(|p| serde_json::to_value(p).ok())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.policymaker()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["value"])?;
    let created = set(
        &broker,
        Parameter {
            value: body["value"].clone(),
            vhost,
            component,
            name,
        },
    )?;
    flushed(&broker).await?;
    Ok(created_or_updated(created))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    user.policymaker()?;
    let cleared = match component.as_str() {
        VHOST_LIMITS => broker.set_vhost_limits(&vhost, Limits::new()).is_ok(),
        _ => broker.metadata.clear_parameter(&vhost, &component, &name),
    };
    if !cleared {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn globals(State(broker): State<Arc<Broker>>, user: Authed) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let listed = broker
        .metadata
        .global_parameters()
        .into_iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    Ok(Json(Value::Array(listed)))
}

pub async fn global(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let value = broker
        .metadata
        .global_parameter(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({"value": value, "name": name})))
}

pub async fn put_global(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["value"])?;
    let value = body["value"].clone();
    let created = broker
        .metadata
        .set_global_parameter(GlobalParameter { name, value });
    flushed(&broker).await?;
    Ok(created_or_updated(created))
}

pub async fn delete_global(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if !broker.metadata.clear_global_parameter(&name) {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The cluster's name: the `cluster_name` global parameter, else the node's name.
pub fn cluster_name(broker: &Broker) -> String {
    match broker.metadata.global_parameter("cluster_name") {
        Some(Value::String(name)) => name,
        _ => broker.node_name().to_owned(),
    }
}

pub async fn show_cluster_name(State(broker): State<Arc<Broker>>, _user: Authed) -> Json<Value> {
    Json(json!({"name": cluster_name(&broker)}))
}

pub async fn put_cluster_name(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    require(&body, &["name"])?;
    let name = body["name"].clone();
    broker.metadata.set_global_parameter(GlobalParameter {
        name: "cluster_name".into(),
        value: name,
    });
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
