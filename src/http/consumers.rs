//! /api/consumers (all, or a vhost's), and the consumer details of queues and channels.

use super::auth::Authed;
use super::error::ApiResult;
use super::list::{self, DefaultSort, ListQuery};
use crate::broker::queue::{ConnectionId, Consumer, Queue};
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn consumer_json(broker: &Broker, q: &Queue, c: &Consumer) -> Value {
    let connection = broker.connections.get(c.connection);
    let channel_details = match &connection {
        Some(info) => json!({
            "connection_name": info.name(),
            "name": format!("{} ({})", info.name(), c.channel),
            "node": broker.node_name(),
            "number": c.channel,
            "peer_host": info.peer.ip().to_string(),
            "peer_port": info.peer.port(),
            "user": info.user,
        }),
        None => json!({}),
    };
    let mut arguments = serde_json::Map::new();
    if c.priority != 0 {
        arguments.insert("x-priority".into(), Value::from(c.priority));
    }
    let mut consumer = json!({
        "arguments": arguments,
        "ack_required": !c.no_ack,
        "active": true,
        "activity_status": "up",
        "channel_details": channel_details,
        "consumer_tag": c.tag.as_str(),
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch.limit(),
        "queue": {"name": q.name.as_str(), "vhost": q.vhost},
    });
    // The delivery acknowledgement timeout in force for it, in milliseconds (newer clients
    // read it); left out when the broker's is switched off and nothing else sets one.
    if let Some(timeout) = c.ack_timeout {
        consumer["consumer_timeout"] = Value::from(timeout.as_millis() as u64);
    }
    consumer
}

fn of_vhost(broker: &Broker, vhost: &VHost) -> Vec<Value> {
    let mut items = Vec::new();
    for q in vhost.queues() {
        for c in q.snapshot().consumers {
            items.push(consumer_json(broker, &q, &c));
        }
    }
    items
}

/// The consumers of one channel, from every queue of the connection's vhost.
pub fn of_channel(broker: &Broker, connection: ConnectionId, channel: u16) -> Vec<Value> {
    let Some(vhost) = broker
        .connections
        .get(connection)
        .and_then(|c| broker.vhost(&c.vhost))
    else {
        return Vec::new();
    };
    let mut items = Vec::new();
    for q in vhost.queues() {
        for c in q.snapshot().consumers {
            if c.connection == connection && c.channel == channel {
                items.push(consumer_json(broker, &q, &c));
            }
        }
    }
    items
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
    list::reply(items, &query, DefaultSort::None)
}

pub async fn list_vhost(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhost = user.vhost(&broker, &vhost)?;
    list::reply(of_vhost(&broker, &vhost), &query, DefaultSort::None)
}
