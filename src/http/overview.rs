//! /api/overview: what the broker is and holds, as RabbitMQ's overview page reads it.

use super::auth::Authed;
use super::stats::{self, Ages};
use crate::broker::sampler;
use crate::broker::Broker;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

use super::RABBITMQ_VERSION;

pub async fn overview(
    State(broker): State<Arc<Broker>>,
    _user: Authed,
    Query(ages): Query<Ages>,
) -> Json<Value> {
    let (mut queues, mut exchanges, mut consumers, mut ready, mut unacked) =
        (0, 0, 0u64, 0u64, 0u64);
    for record in broker.metadata.vhosts() {
        if let Some(v) = broker.vhost(&record.name) {
            exchanges += v.exchanges().len();
            for q in v.queues() {
                queues += 1;
                consumers += u64::from(q.consumer_count());
                let (r, u) = q.lengths();
                ready += r;
                unacked += u;
            }
        }
    }
    let channels: usize = broker
        .connections
        .list()
        .iter()
        .map(|(id, _)| broker.connections.channels_on(*id))
        .sum();
    let node = broker.node_name();
    let series = &broker.stats.series;
    let [(_, messages), (_, ready_details), (_, unacked_details)] =
        stats::length_details(series, &ages);
    let totals = sampler::node_totals(&broker);
    Json(json!({
        "management_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": super::parameters::cluster_name(&broker),
        "node": node,
        "object_totals": {
            "connections": broker.connections.count(),
            "channels": channels,
            "exchanges": exchanges,
            "queues": queues,
            "consumers": consumers,
        },
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": messages,
            "messages_ready": ready,
            "messages_ready_details": ready_details,
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": unacked_details,
        },
        "message_stats": stats::message_stats(&totals, series, stats::CHANNEL, &ages),
        "churn_rates": stats::message_stats(&totals, series, stats::CHURN, &Ages::default()),
        "listeners": broker.listeners().iter().map(|l| json!({
            "node": node,
            "protocol": l.protocol,
            "ip_address": l.addr.ip().to_string(),
            "port": l.addr.port(),
        })).collect::<Vec<_>>(),
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "disable_stats": false,
        "enable_queue_totals": false,
        "statistics_db_event_queue": 0,
        "exchange_types": super::nodes::exchange_types(),
    }))
}
