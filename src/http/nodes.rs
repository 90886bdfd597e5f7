//! /api/nodes[/{name}] (the one node, with the fields monitoring tools and rabbitmqadmin
//! read), /api/extensions and /api/feature-flags.

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use crate::broker::alarms::{disk_available, resident_bytes};
use crate::broker::exchange::ExchangeKind;
use crate::broker::Broker;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub fn exchange_types() -> Value {
    let described = |name: &str, description: &str| json!({"name": name, "description": description, "enabled": true});
    let mut types: Vec<Value> = [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Headers,
        ExchangeKind::Topic,
    ]
    .iter()
    .map(|k| {
        described(
            k.as_str(),
            &format!(
                "AMQP {} exchange, as per the AMQP specification",
                k.as_str()
            ),
        )
    })
    .collect();
    types.push(described("x-delayed-message", "Delayed Message Exchange."));
    types.push(described(
        "x-consistent-hash",
        "Consistent Hashing Exchange",
    ));
    types.push(described("x-random", "Picks one random destination"));
    types.push(described(
        "x-message-deduplication",
        "Message Deduplication Exchange.",
    ));
    Value::Array(types)
}

pub fn node_json(broker: &Broker) -> Value {
    let mut node = figures(broker);
    if let Some(o) = node.as_object_mut() {
        o.insert("rabbitmq_version".into(), super::RABBITMQ_VERSION.into());
        o.insert("product_name".into(), "Warren".into());
        o.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
    }
    node
}

fn figures(broker: &Broker) -> Value {
    let zero = json!({"rate": 0.0});
    let alarms = &broker.alarms;
    let raised = alarms.state();
    json!({
        "name": broker.node_name(),
        "type": "disc",
        "running": true,
        "being_drained": false,
        "partitions": [],
        "os_pid": std::process::id().to_string(),
        "uptime": broker.uptime_ms(),
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "run_queue": 0,
        "rates_mode": "basic",
        "mem_used": resident_bytes(),
        "mem_used_details": zero,
        "mem_limit": alarms.memory_limit(),
        "mem_alarm": raised.memory,
        "mem_calculation_strategy": "rss",
        "disk_free": disk_available(&broker.config.data_dir),
        "disk_free_details": zero,
        "disk_free_limit": alarms.disk_limit(),
        "disk_free_alarm": raised.disk,
        "fd_used": open_files(),
        "fd_total": 1_048_576,
        "sockets_used": broker.connections.count(),
        "sockets_total": 1_048_576,
        "proc_used": 0,
        "proc_total": 1_048_576,
        "net_ticktime": 60,
        "enabled_plugins": [],
        "applications": [],
        "contexts": [],
        "config_files": [],
        "log_files": ["<stdout>"],
        "db_dir": broker.config.data_dir.display().to_string(),
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "cluster_links": [],
    })
}

pub(super) fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

pub async fn list(State(broker): State<Arc<Broker>>, _user: Authed) -> Json<Value> {
    Json(json!([node_json(&broker)]))
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    _user: Authed,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if name != broker.node_name() {
        return Err(ApiError::not_found());
    }
    let mut node = node_json(&broker);
    if params.get("memory").is_some_and(|v| v == "true") {
        if let Some(o) = node.as_object_mut() {
            o.insert("memory".into(), memory_breakdown(&broker));
        }
    }
    Ok(Json(node))
}

/// `GET /api/nodes/{name}/memory`.
pub async fn memory(
    State(broker): State<Arc<Broker>>,
    _user: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if name != broker.node_name() {
        return Err(ApiError::not_found());
    }
    Ok(Json(json!({"memory": memory_breakdown(&broker)})))
}

/// The node's memory in RabbitMQ's categories, as far as Warren's differ: message bodies
/// queues hold in memory count as `queue_procs`, the rest of the resident set as
/// `other_system`.
fn memory_breakdown(broker: &Broker) -> Value {
    let rss = resident_bytes();
    let queued = broker.queued_memory().min(rss);
    let mut breakdown = serde_json::Map::new();
    for category in [
        "connection_readers",
        "connection_writers",
        "connection_channels",
        "connection_other",
        "queue_slave_procs",
        "quorum_queue_procs",
        "quorum_queue_dlx_procs",
        "stream_queue_procs",
        "stream_queue_replica_reader_procs",
        "stream_queue_coordinator_procs",
        "plugins",
        "other_proc",
        "metrics",
        "mgmt_db",
        "mnesia",
        "quorum_ets",
        "other_ets",
        "binary",
        "msg_index",
        "code",
        "atom",
        "metadata_store",
        "metadata_store_ets",
        "allocated_unused",
        "reserved_unallocated",
    ] {
        breakdown.insert(category.into(), Value::from(0));
    }
    breakdown.insert("queue_procs".into(), Value::from(queued));
    breakdown.insert("other_system".into(), Value::from(rss - queued));
    breakdown.insert("strategy".into(), Value::from("rss"));
    breakdown.insert(
        "total".into(),
        json!({"erlang": rss, "rss": rss, "allocated": rss}),
    );
    Value::Object(breakdown)
}

/// RabbitMQ 3.13's list of deprecated features: Warren has none in use.
pub async fn deprecated_features(_user: Authed) -> Json<Value> {
    Json(json!([]))
}

pub async fn extensions(_user: Authed) -> Json<Value> {
    Json(json!([]))
}

/// The feature flags RabbitMQ 3.10 clients look for, all enabled: Warren has what they gate.
pub async fn feature_flags(_user: Authed) -> Json<Value> {
    let flag = |name: &str, desc: &str| {
        json!({"name": name, "desc": desc, "doc_url": "", "state": "enabled",
               "stability": "stable", "provided_by": "rabbit"})
    };
    Json(json!([
        flag(
            "implicit_default_bindings",
            "Default bindings are now implicit, instead of being stored in the database"
        ),
        flag("maintenance_mode_status", "Maintenance mode status"),
        flag("quorum_queue", "Support queues of type `quorum`"),
        flag(
            "user_limits",
            "Configure connection and channel limits for a user"
        ),
        flag(
            "virtual_host_metadata",
            "Virtual host metadata (description, tags, etc)"
        ),
    ]))
}
