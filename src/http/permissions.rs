//! /api/permissions, /api/vhosts/{v}/permissions, /api/users/{u}/permissions: a user's
//! configure, write and read patterns in a vhost.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use crate::broker::metadata::permissions::PermissionSpec;
use crate::broker::metadata::MetaError;
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Full permissions for a user on a vhost (the creator of a vhost gets them, by themselves).
pub fn grant_all(broker: &Broker, user: &str, vhost: &str) {
    let all = ".*".to_owned();
    let _ = broker.metadata.set_permissions(
        PermissionSpec {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: all.clone(),
            write: all.clone(),
            read: all,
        },
        user,
    );
}

fn listed(specs: impl Iterator<Item = PermissionSpec>) -> Json<Value> {
    Json(Value::Array(
        specs.filter_map(|s| serde_json::to_value(s).ok()).collect(),
    ))
}

pub async fn list(State(broker): State<Arc<Broker>>, user: Authed) -> ApiResult<Json<Value>> {
    user.administrator()?;
    Ok(listed(broker.metadata.all_permissions().into_iter()))
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
    let all = broker.metadata.all_permissions().into_iter();
    Ok(listed(all.filter(|p| p.vhost == vhost)))
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
    let all = broker.metadata.all_permissions().into_iter();
    Ok(listed(all.filter(|p| p.user == name)))
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let p = broker
        .metadata
        .permissions(&name, &vhost)
        .ok_or_else(ApiError::not_found)?;
    serde_json::to_value(&p.spec)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: Map<String, Value> = json_body(&body)?;
    super::messages::require(&body, &["configure", "write", "read"])?;
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    if broker.metadata.vhost(&vhost).is_none() || broker.metadata.user(&name).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let existed = broker.metadata.permissions(&name, &vhost).is_some();
    let spec = PermissionSpec {
        user: name,
        vhost,
        configure: text("configure"),
        write: text("write"),
        read: text("read"),
    };
    broker
        .metadata
        .set_permissions(spec, user.name())
        .map_err(|e| match e {
            MetaError::NoSuchUser(_) => ApiError::bad_request("no_such_user"),
            MetaError::NoSuchVhost(_) => ApiError::bad_request("vhost_does_not_exist"),
            other => ApiError::bad_request(other.to_string()),
        })?;
    flushed(&broker).await?;
    Ok(created_or_updated(!existed))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if !broker
        .metadata
        .clear_permissions(&name, &vhost, user.name())
    {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
