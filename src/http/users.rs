//! /api/users: list, show, create or update (with a password, or a hash as definitions
//! carry it), delete (closes the user's connections); /api/whoami.

use super::auth::Authed;
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use crate::broker::metadata::password::Hashing;
use crate::broker::metadata::users::{parse_tags, User};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags,
        "limits": u.limits,
    })
}

pub async fn whoami(user: Authed) -> Json<Value> {
    Json(json!({"name": user.0.name, "tags": user.0.tags}))
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let users: Vec<Value> = broker.metadata.users().iter().map(user_json).collect();
    list::reply(users, &query, DefaultSort::Name)
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    user.administrator()?;
    let found = broker
        .metadata
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&found)))
}

#[derive(Debug, Default, Deserialize)]
struct UserBody {
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
}

/// Tags as a comma-separated string or a list of strings.
fn tags_of(value: Option<Value>) -> ApiResult<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(parse_tags(&s)),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request("tags must be strings")),
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a string or a list")),
    }
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: UserBody = json_body(&body)?;
    let existing = broker.metadata.user(&name);
    let mut updated = match (&body.password, &body.password_hash) {
        (Some(password), _) => User::new(&name, Some(password), Vec::new()),
        (None, Some(hash)) => {
            let hashing = match body.hashing_algorithm.as_deref() {
                None => Hashing::Sha256,
                Some(alg) => Hashing::parse(alg).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown hashing algorithm {alg}"))
                })?,
            };
            User {
                name: name.clone(),
                password_hash: hash.clone(),
                hashing_algorithm: hashing,
                tags: Vec::new(),
                limits: Default::default(),
            }
        }
        // Neither: the user has no password, an existing one's is cleared (as in RabbitMQ).
        (None, None) => User::new(&name, None, Vec::new()),
    };
    updated.tags = tags_of(body.tags)?;
    if let Some(old) = &existing {
        updated.limits = old.limits.clone();
    }
    broker.metadata.put_user(updated, user.name());
    flushed(&broker).await?;
    Ok(created_or_updated(existing.is_none()))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    if !broker.delete_user(&name, user.name()) {
        return Err(ApiError::not_found());
    }
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users/bulk-delete` with `{"users": [...]}`. As RabbitMQ, the users that exist
/// are deleted even when one does not, which is then reported.
pub async fn bulk_delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    body: Bytes,
) -> ApiResult<StatusCode> {
    user.administrator()?;
    let body: serde_json::Map<String, Value> = json_body(&body)?;
    super::messages::require(&body, &["users"])?;
    let names: Vec<String> = body["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut missing = None;
    for name in names {
        if !broker.delete_user(&name, user.name()) && missing.is_none() {
            missing = Some(name);
        }
    }
    flushed(&broker).await?;
    match missing {
        Some(name) => Err(ApiError::bad_request_value(serde_json::json!([
            "no_such_user",
            name
        ]))),
        None => Ok(StatusCode::NO_CONTENT),
    }
}
