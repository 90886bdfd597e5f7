//! /api/definitions[/{vhost}]: export (GET, `?download=NAME` as an attachment) and import
//! (POST) in RabbitMQ's format. Only administrators, as in RabbitMQ.

use super::auth::Authed;
use super::error::{flushed, ApiError, ApiResult};
use crate::broker::definitions::{Definitions, ImportError};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn exported(defs: Definitions, params: &HashMap<String, String>) -> Response {
    let mut response = Json(defs).into_response();
    if let Some(name) = params.get("download") {
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    response
}

pub async fn export(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    user.administrator()?;
    Ok(exported(broker.export_definitions(None), &params))
}

pub async fn export_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    user.administrator()?;
    if broker.metadata.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    Ok(exported(broker.export_definitions(Some(&vhost)), &params))
}

fn parsed(body: &[u8]) -> ApiResult<Definitions> {
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("failed_to_parse_json"))
}

async fn import(
    broker: &Broker,
    defs: Definitions,
    into: Option<&str>,
    user: &Authed,
) -> ApiResult<StatusCode> {
    let imported = broker.import_definitions(defs, into, user.name());
    // What was imported before a failure stays, so it is made durable either way.
    flushed(broker).await?;
    match imported {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(ImportError::NoSuchVhost(v)) => {
            Err(ApiError::bad_request_value(json!(["no_such_vhost", v])))
        }
        Err(ImportError::Invalid(reason)) => Err(ApiError::bad_request(reason)),
    }
}

pub async fn import_all(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    import(&broker, parsed(&body)?, None, &user).await
}

pub async fn import_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if broker.metadata.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    import(&broker, parsed(&body)?, Some(&vhost), &user).await
}
