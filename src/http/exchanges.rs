//! /api/exchanges: list (all, or a vhost's), show, declare (PUT: 201 or 204, RabbitMQ's
//! defaults: direct, not durable), delete (`if-unused`), an exchange's bindings as source or
//! destination, and publishing a message through it.

use super::auth::{exchange_name, Authed};
use super::error::{created_or_updated, flushed, json_body, ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use super::stats::{self, Ages};
use crate::broker::exchange::{declared_type, Exchange};
use crate::broker::field_json::{json_to_table, table_to_json};
use crate::broker::metadata::permissions::Access;
use crate::broker::vhost::{ExchangeSpec, VHost};
use crate::broker::Broker;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use warren_amqp::reply;

/// An exchange as RabbitMQ lists it, with the policy that applies to it (if any) and, when
/// `ages` asks, its rate samples.
pub fn exchange_json(broker: &Broker, vhost: &str, x: &Exchange, ages: &Ages) -> Value {
    let mut v = json!({
        "name": x.name.as_str(),
        "vhost": vhost,
        "type": x.type_name(),
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_to_json(&x.arguments),
        "message_stats": stats::message_stats(
            &x.stats.counters.read(),
            &x.stats.series,
            stats::EXCHANGE,
            ages,
        ),
    });
    let policy = broker.metadata.exchange_policy(vhost, x.name.as_str());
    if let (Some(policy), Some(o)) = (policy, v.as_object_mut()) {
        o.insert("policy".into(), Value::from(policy));
    }
    v
}

fn of_vhost<'a>(broker: &'a Broker, vhost: &'a VHost) -> impl Iterator<Item = Value> + 'a {
    vhost
        .exchanges()
        .into_iter()
        .map(|x| exchange_json(broker, &vhost.name, &x, &Ages::default()))
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = user
        .visible_vhosts(&broker)
        .iter()
        .flat_map(|vhost| of_vhost(&broker, vhost))
        .collect();
    list::reply(items, &query, DefaultSort::VhostName)
}

pub async fn list_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    list::reply(
        of_vhost(&broker, &vhost).collect(),
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
    let x = vhost.exchange(exchange_name(&name))?;
    let mut shown = exchange_json(&broker, &vhost.name, &x, &ages);
    if let Some(o) = shown.as_object_mut() {
        // Per-channel publishing figures, which basic rates mode leaves empty.
        o.insert("incoming".into(), json!([]));
        o.insert("outgoing".into(), json!([]));
    }
    Ok(Json(shown))
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct ExchangeBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "super::error::flexible_bool")]
    durable: bool,
    #[serde(deserialize_with = "super::error::flexible_bool")]
    auto_delete: bool,
    #[serde(deserialize_with = "super::error::flexible_bool")]
    internal: bool,
    arguments: Map<String, Value>,
}

impl Default for ExchangeBody {
    fn default() -> Self {
        Self {
            kind: "direct".into(),
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: Map::new(),
        }
    }
}

pub async fn put(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: ExchangeBody = json_body(&body)?;
    let vhost = user.vhost_to_change(&broker, &vhost)?;
    let name = exchange_name(&name);
    user.may(&broker, &vhost.name, Access::Configure, name)?;
    let arguments = json_to_table(&body.arguments);
    if let Err(e) = declared_type(&body.kind, &arguments) {
        return Err(match e.code {
            reply::COMMAND_INVALID => {
                ApiError::bad_request(format!("unknown exchange type '{}'", body.kind))
            }
            _ => e.into(),
        });
    }
    let existed = vhost.exchange(name).is_ok();
    vhost.declare_exchange(
        ExchangeSpec {
            name: name.to_owned(),
            kind: body.kind,
            passive: false,
            durable: body.durable,
            auto_delete: body.auto_delete,
            internal: body.internal,
            arguments,
        },
        user.name(),
    )?;
    flushed(&broker).await?;
    Ok(created_or_updated(!existed))
}

pub async fn delete(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let vhost = user.vhost(&broker, &vhost)?;
    let name = exchange_name(&name);
    user.may(&broker, &vhost.name, Access::Configure, name)?;
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::not_authorised("Access refused."));
    }
    vhost.exchange(name)?;
    let if_unused = params.get("if-unused").is_some_and(|v| v == "true");
    vhost.delete_exchange(name, if_unused, user.name())?;
    flushed(&broker).await?;
    Ok(StatusCode::NO_CONTENT)
}
