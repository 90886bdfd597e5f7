//! The Prometheus endpoint, on its own port as RabbitMQ's plugin serves it: `/metrics`
//! (aggregated) and `/metrics/per-object` (a series per vhost and queue, or connection), in
//! the text exposition format 0.0.4, with RabbitMQ's family names, types and help texts so
//! that existing dashboards (Grafana's "RabbitMQ-Overview") work. `rabbitmq_identity_info`
//! names the node and cluster, as every dashboard query joins on it. No authentication, as
//! in RabbitMQ.

use super::nodes::open_files;
use super::RABBITMQ_VERSION;
use crate::broker::alarms::{disk_available, resident_bytes};
use crate::broker::queue::Queue;
use crate::broker::sampler;
use crate::broker::stats::{Counts, Stat};
use crate::broker::Broker;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::Arc;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .fallback(|| async { super::error::ApiError::not_found() })
        .with_state(broker)
}

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn text(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

async fn aggregated(State(broker): State<Arc<Broker>>) -> Response {
    text(exposition(&broker, false))
}

async fn per_object(State(broker): State<Arc<Broker>>) -> Response {
    text(exposition(&broker, true))
}

/// One family: its type and help, then its samples (`labels` without braces, or empty).
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        match labels.is_empty() {
            true => {
                let _ = writeln!(self.out, "{name} {value}");
            }
            false => {
                let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
            }
        }
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.sample(name, "", value);
    }
}

/// A label value, escaped as the format requires.
fn quoted(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What one queue contributes to the queue families.
struct QueueFigures {
    labels: String,
    ready: u64,
    unacked: u64,
    consumers: u64,
    ready_bytes: u64,
    paged_out: u64,
    published: u64,
}

fn queue_figures(q: &Queue) -> QueueFigures {
    let s = q.snapshot();
    QueueFigures {
        labels: format!(
            "vhost=\"{}\",queue=\"{}\"",
            quoted(&q.vhost),
            quoted(q.name.as_str())
        ),
        ready: s.ready,
        unacked: s.unacked,
        consumers: s.consumers.len() as u64,
        ready_bytes: s.ready_bytes,
        paged_out: s.paged_out,
        published: q.stats.counters.get(Stat::Publish),
    }
}

fn exposition(broker: &Broker, per_object: bool) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut f = Family { out: &mut out };
    identity(&mut f, broker);
    let totals = sampler::node_totals(broker);
    churn(&mut f, &totals);
    process(&mut f, broker);
    let queues: Vec<QueueFigures> = broker
        .all_vhosts()
        .iter()
        .flat_map(|v| v.queues())
        .map(|q| queue_figures(&q))
        .collect();
    queue_families(&mut f, &queues, per_object);
    connection_families(&mut f, broker, per_object);
    let consumers: u64 = queues.iter().map(|q| q.consumers).sum();
    let connections = broker.connections.list();
    let channels: usize = connections
        .iter()
        .map(|(id, _)| broker.connections.channels_on(*id))
        .sum();
    f.single(
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        connections.len(),
    );
    f.single(
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        channels,
    );
    f.single(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        consumers,
    );
    f.single("rabbitmq_queues", "gauge", "Queues available", queues.len());
    let unacked: u64 = queues.iter().map(|q| q.unacked).sum();
    channel_families(&mut f, &totals, consumers, unacked);
    f.single(
        "rabbitmq_process_open_tcp_sockets",
        "gauge",
        "Open TCP sockets",
        connections.len(),
    );
    f.single(
        "rabbitmq_process_max_tcp_sockets",
        "gauge",
        "Open TCP sockets limit",
        max_fds(),
    );
    let (available, limit) = (
        disk_available(&broker.config.data_dir),
        broker.alarms.disk_limit(),
    );
    f.single(
        "rabbitmq_disk_space_available_bytes",
        "gauge",
        "Disk space available in bytes",
        available,
    );
    f.single(
        "rabbitmq_disk_space_available_limit_bytes",
        "gauge",
        "Free disk space low watermark in bytes",
        limit,
    );
    global(&mut f, &totals, consumers);
    out
}

/// The channel families, summed over the node (closed channels included, so rates hold).
fn channel_families(f: &mut Family, totals: &Counts, consumers: u64, unacked: u64) {
    f.single(
        "rabbitmq_channel_consumers",
        "gauge",
        "Consumers on a channel",
        consumers,
    );
    f.single(
        "rabbitmq_channel_messages_unacked",
        "gauge",
        "Delivered but not yet acknowledged messages",
        unacked,
    );
    let counters = [
        ("rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel", Stat::Publish),
        ("rabbitmq_channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", Stat::Confirm),
        ("rabbitmq_channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", Stat::ReturnUnroutable),
        ("rabbitmq_channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", Stat::DropUnroutable),
        ("rabbitmq_channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", Stat::Get),
        ("rabbitmq_channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", Stat::GetNoAck),
        ("rabbitmq_channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", Stat::Deliver),
        ("rabbitmq_channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", Stat::DeliverNoAck),
        ("rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers", Stat::Redeliver),
        ("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", Stat::Ack),
        ("rabbitmq_channel_get_empty_total", "Total number of times basic.get operations fetched no message", Stat::GetEmpty),
    ];
    for (name, help, stat) in counters {
        f.single(name, "counter", help, totals[stat as usize]);
    }
}

fn identity(f: &mut Family, broker: &Broker) {
    let node = quoted(broker.node_name());
    let cluster = quoted(&super::parameters::cluster_name(broker));
    f.head(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
    );
    f.sample(
        "rabbitmq_build_info",
        &format!(
            "rabbitmq_version=\"{RABBITMQ_VERSION}\",prometheus_plugin_version=\"{RABBITMQ_VERSION}\",\
             prometheus_client_version=\"n/a\",erlang_version=\"n/a\",\
             product_name=\"Warren\",product_version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        ),
        1,
    );
    f.head(
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
    );
    f.sample(
        "rabbitmq_identity_info",
        &format!(
            "rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{cluster}\",rabbitmq_cluster_permanent_id=\"{cluster}\""
        ),
        1,
    );
}

fn churn(f: &mut Family, totals: &Counts) {
    let counters = [
        (
            "rabbitmq_connections_opened_total",
            "Total number of connections opened",
            Stat::ConnectionCreated,
        ),
        (
            "rabbitmq_connections_closed_total",
            "Total number of connections closed or terminated",
            Stat::ConnectionClosed,
        ),
        (
            "rabbitmq_channels_opened_total",
            "Total number of channels opened",
            Stat::ChannelCreated,
        ),
        (
            "rabbitmq_channels_closed_total",
            "Total number of channels closed",
            Stat::ChannelClosed,
        ),
        (
            "rabbitmq_queues_declared_total",
            "Total number of queues declared",
            Stat::QueueDeclared,
        ),
        (
            "rabbitmq_queues_created_total",
            "Total number of queues created",
            Stat::QueueCreated,
        ),
        (
            "rabbitmq_queues_deleted_total",
            "Total number of queues deleted",
            Stat::QueueDeleted,
        ),
    ];
    for (name, help, stat) in counters {
        f.single(name, "counter", help, totals[stat as usize]);
    }
}

fn process(f: &mut Family, broker: &Broker) {
    f.single(
        "rabbitmq_process_open_fds",
        "gauge",
        "Open file descriptors",
        open_files(),
    );
    f.single(
        "rabbitmq_process_max_fds",
        "gauge",
        "Open file descriptors limit",
        max_fds(),
    );
    f.single(
        "rabbitmq_process_resident_memory_bytes",
        "gauge",
        "Memory used in bytes",
        resident_bytes(),
    );
    f.single(
        "rabbitmq_resident_memory_limit_bytes",
        "gauge",
        "Memory high watermark in bytes",
        broker.alarms.memory_limit(),
    );
    f.single(
        "rabbitmq_erlang_uptime_seconds",
        "gauge",
        "Node uptime",
        broker.uptime_ms() as f64 / 1000.0,
    );
    let raised = broker.alarms.state();
    for (name, help, on) in [
        (
            "rabbitmq_alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
            false,
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
            raised.disk,
        ),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
            raised.memory,
        ),
    ] {
        f.single(name, "untyped", help, u64::from(on));
    }
}

/// The soft limit on open files, from /proc (0 where that is not available).
fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(0)
}

fn queue_families(f: &mut Family, queues: &[QueueFigures], per_object: bool) {
    type Pick = fn(&QueueFigures) -> u64;
    let families: [(&str, &str, &str, Pick); 8] = [
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            |q| q.ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            |q| q.unacked,
        ),
        (
            "rabbitmq_queue_messages",
            "gauge",
            "Sum of ready and unacknowledged messages - total queue depth",
            |q| q.ready + q.unacked,
        ),
        (
            "rabbitmq_queue_consumers",
            "gauge",
            "Consumers on a queue",
            |q| q.consumers,
        ),
        (
            "rabbitmq_queue_messages_ready_bytes",
            "gauge",
            "Size in bytes of ready messages",
            |q| q.ready_bytes,
        ),
        (
            "rabbitmq_queue_messages_bytes",
            "gauge",
            "Size in bytes of ready and unacknowledged messages",
            |q| q.ready_bytes,
        ),
        (
            "rabbitmq_queue_messages_paged_out",
            "gauge",
            "Messages paged out to disk",
            |q| q.paged_out,
        ),
        (
            "rabbitmq_queue_messages_published_total",
            "counter",
            "Total number of messages published to queues",
            |q| q.published,
        ),
    ];
    for (name, kind, help, pick) in families {
        f.head(name, kind, help);
        match per_object {
            true => {
                for q in queues {
                    f.sample(name, &q.labels, pick(q));
                }
            }
            false => f.sample(name, "", queues.iter().map(pick).sum::<u64>()),
        }
    }
}

fn connection_families(f: &mut Family, broker: &Broker, per_object: bool) {
    let connections = broker.connections.list();
    let families = [
        (
            "rabbitmq_connection_incoming_bytes_total",
            "Total number of bytes received on a connection",
            Stat::RecvOct,
        ),
        (
            "rabbitmq_connection_outgoing_bytes_total",
            "Total number of bytes sent on a connection",
            Stat::SendOct,
        ),
    ];
    for (name, help, stat) in families {
        f.head(name, "counter", help);
        let value =
            |c: &crate::broker::connections::ConnectionInfo| c.details.totals()[stat as usize];
        match per_object {
            true => {
                for (_, c) in &connections {
                    let labels = format!("channel=\"{}\"", quoted(&c.name()));
                    f.sample(name, &labels, value(c));
                }
            }
            false => f.sample(
                name,
                "",
                connections.iter().map(|(_, c)| value(c)).sum::<u64>(),
            ),
        }
    }
}

fn global(f: &mut Family, totals: &Counts, consumers: u64) {
    let n = |s: Stat| totals[s as usize];
    let amqp = "protocol=\"amqp091\"";
    let classic = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
    let delivered = n(Stat::Deliver) + n(Stat::DeliverNoAck) + n(Stat::Get) + n(Stat::GetNoAck);
    let unroutable = n(Stat::DropUnroutable) + n(Stat::ReturnUnroutable);
    let families: [(&str, &str, &str, u64); 15] = [
        ("rabbitmq_global_messages_received_total", "Total number of messages received from publishers", amqp, n(Stat::Publish)),
        ("rabbitmq_global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", amqp, n(Stat::Confirm)),
        ("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", amqp, n(Stat::Publish).saturating_sub(unroutable)),
        ("rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", amqp, n(Stat::DropUnroutable)),
        ("rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", amqp, n(Stat::ReturnUnroutable)),
        ("rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", amqp, n(Stat::Confirm)),
        ("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", classic, delivered),
        ("rabbitmq_global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", classic, n(Stat::Deliver)),
        ("rabbitmq_global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", classic, n(Stat::DeliverNoAck)),
        ("rabbitmq_global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", classic, n(Stat::Get)),
        ("rabbitmq_global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", classic, n(Stat::GetNoAck)),
        ("rabbitmq_global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", classic, n(Stat::GetEmpty)),
        ("rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", classic, n(Stat::Redeliver)),
        ("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", classic, n(Stat::Ack)),
        ("rabbitmq_global_consumers", "Current number of consumers", amqp, consumers),
    ];
    for (name, help, labels, value) in families {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        f.head(name, kind, help);
        f.sample(name, labels, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(quoted("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
