//! /api/connections (all, or a vhost's), one connection by name, closing it (`DELETE`, 320
//! CONNECTION_FORCED with the `X-Reason` header's text), and channels: a connection's,
//! all (`/api/channels`), a vhost's, one by name (`peer -> local (n)`).

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::list::{self, DefaultSort, ListQuery};
use super::stats::{self, Ages};
use crate::broker::connections::{ChannelView, ConnectionInfo};
use crate::broker::field_json::table_to_json;
use crate::broker::queue::ConnectionId;
use crate::broker::stats::Stat;
use crate::broker::Broker;
use crate::error::AmqpError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use warren_amqp::{reply, AMQPValue};

/// How long a listing waits for a busy connection to describe its channels.
const DESCRIBE_WAIT: Duration = Duration::from_millis(500);

fn connection_json(broker: &Broker, id: ConnectionId, c: &ConnectionInfo) -> Value {
    let d = &c.details;
    let provided = match d.client_properties.inner().get("connection_name") {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    };
    let tls = d.tls.as_ref();
    let cert = tls.and_then(|t| t.peer.as_ref());
    json!({
        "name": c.name(),
        "node": broker.node_name(),
        "type": "network",
        "protocol": "AMQP 0-9-1",
        "state": "running",
        "user": c.user,
        "user_provided_name": provided,
        "vhost": c.vhost,
        "auth_mechanism": d.mechanism,
        "client_properties": table_to_json(&d.client_properties),
        "connected_at": d.connected_at,
        "channels": broker.connections.channels_on(id),
        "channel_max": d.channel_max,
        "frame_max": d.frame_max,
        "timeout": d.heartbeat,
        "host": d.local.ip().to_string(),
        "port": d.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "ssl": d.tls.is_some(),
        "ssl_protocol": tls.map(|t| t.protocol.as_str()),
        "ssl_cipher": tls.map(|t| t.cipher.as_str()),
        "ssl_hash": tls.map(|t| t.hash.as_str()),
        "ssl_key_exchange": tls.map(|t| t.key_exchange.as_str()),
        "peer_cert_issuer": cert.map(|c| c.issuer.as_str()),
        "peer_cert_subject": cert.map(|c| c.subject.as_str()),
        "peer_cert_validity": cert.map(|c| c.validity.as_str()),
        "recv_oct": d.stats.counters.get(Stat::RecvOct),
        "recv_oct_details": stats::octet_details(&d.stats.series, Stat::RecvOct),
        "send_oct": d.stats.counters.get(Stat::SendOct),
        "send_oct_details": stats::octet_details(&d.stats.series, Stat::SendOct),
        "recv_cnt": 0, "send_cnt": 0, "send_pend": 0,
    })
}

/// The connections the user may see: all for administrators and monitoring users, else
/// its own, as in RabbitMQ.
fn visible(broker: &Broker, user: &Authed) -> Vec<(ConnectionId, ConnectionInfo)> {
    broker
        .connections
        .list()
        .into_iter()
        .filter(|(_, c)| user.sees_all_vhosts() || c.user == user.0.name)
        .collect()
}

fn by_name(
    broker: &Broker,
    user: &Authed,
    name: &str,
) -> ApiResult<(ConnectionId, ConnectionInfo)> {
    visible(broker, user)
        .into_iter()
        .find(|(_, c)| c.name() == name)
        .ok_or_else(ApiError::not_found)
}

pub async fn list(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = visible(&broker, &user)
        .iter()
        .map(|(id, c)| connection_json(&broker, *id, c))
        .collect();
    list::reply(items, &query, DefaultSort::Name)
}

pub async fn of_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    user.vhost(&broker, &vhost)?;
    let items = visible(&broker, &user)
        .iter()
        .filter(|(_, c)| c.vhost == vhost)
        .map(|(id, c)| connection_json(&broker, *id, c))
        .collect();
    list::reply(items, &query, DefaultSort::Name)
}

/// `GET /api/connections/username/{user}`: one user's connections.
pub async fn of_user(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = visible(&broker, &user)
        .iter()
        .filter(|(_, c)| c.user == name)
        .map(|(id, c)| connection_json(&broker, *id, c))
        .collect();
    list::reply(items, &query, DefaultSort::Name)
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, c) = by_name(&broker, &user, &name)?;
    Ok(Json(connection_json(&broker, id, &c)))
}

pub async fn close(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let (id, _) = by_name(&broker, &user, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin")
        .to_owned();
    broker.connections.close_where_id(id, || {
        AmqpError::new(reply::CONNECTION_FORCED, reason.clone())
    });
    Ok(StatusCode::NO_CONTENT)
}

fn channel_json(broker: &Broker, c: &ConnectionInfo, ch: &ChannelView) -> Value {
    let name = c.name();
    let counters = c
        .details
        .channel_stats()
        .into_iter()
        .find(|(n, _)| *n == ch.number)
        .map(|(_, s)| {
            stats::message_stats(
                &s.counters.read(),
                &s.series,
                stats::CHANNEL,
                &Ages::default(),
            )
        });
    json!({
        "message_stats": counters.unwrap_or_else(|| json!({})),
        "name": format!("{name} ({})", ch.number),
        "number": ch.number,
        "node": broker.node_name(),
        "user": c.user,
        "vhost": c.vhost,
        "state": "running",
        "connection_details": {
            "name": name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "consumer_count": ch.consumer_count,
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "messages_unacknowledged": ch.unacked,
        "messages_unconfirmed": ch.unconfirmed,
        "messages_uncommitted": ch.uncommitted,
        "acks_uncommitted": 0,
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "pending_raft_commands": 0,
    })
}

/// The channels of the given connections, each asked in turn.
async fn channels_of(
    broker: &Broker,
    connections: Vec<(ConnectionId, ConnectionInfo)>,
) -> Vec<Value> {
    let mut items = Vec::new();
    for (_, c) in connections {
        for ch in c.channels(DESCRIBE_WAIT).await.unwrap_or_default() {
            items.push(channel_json(broker, &c, &ch));
        }
    }
    items
}

pub async fn channels_of_connection(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let found = by_name(&broker, &user, &name)?;
    let items = channels_of(&broker, vec![found]).await;
    list::reply(items, &query, DefaultSort::Name)
}

pub async fn channels(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = channels_of(&broker, visible(&broker, &user)).await;
    list::reply(items, &query, DefaultSort::Name)
}

pub async fn channels_of_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    user.vhost(&broker, &vhost)?;
    let connections = visible(&broker, &user)
        .into_iter()
        .filter(|(_, c)| c.vhost == vhost)
        .collect();
    let items = channels_of(&broker, connections).await;
    list::reply(items, &query, DefaultSort::Name)
}

/// `GET /api/channels/{name}`: `peer -> local (n)`.
pub async fn channel(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (connection, number) = name
        .rsplit_once(" (")
        .and_then(|(c, n)| Some((c, n.strip_suffix(')')?.parse::<u16>().ok()?)))
        .ok_or_else(ApiError::not_found)?;
    let (id, c) = by_name(&broker, &user, connection)?;
    let ch = c
        .channels(DESCRIBE_WAIT)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|ch| ch.number == number)
        .ok_or_else(ApiError::not_found)?;
    let mut v = channel_json(&broker, &c, &ch);
    let consumers = super::consumers::of_channel(&broker, id, number);
    if let Some(o) = v.as_object_mut() {
        o.insert("consumer_details".into(), Value::Array(consumers));
        o.insert("deliveries".into(), json!([]));
        o.insert("publishes".into(), json!([]));
    }
    Ok(Json(v))
}
