//! The Prometheus endpoint on its own port: RabbitMQ's family names and types in the text
//! format 0.0.4, aggregated on /metrics and per vhost and queue on /metrics/per-object, and
//! `rabbitmq_identity_info`, which dashboards join every query on.

mod common;

use common::*;
use std::collections::HashMap;

async fn scrape(broker: &TestBroker, path: &str) -> (String, String) {
    let response = reqwest::get(format!("http://{}{path}", broker.server.prometheus_addr))
        .await
        .expect("the endpoint answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// Checks the text format's structure and returns each sample's value by `name{labels}`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut typed: HashMap<&str, &str> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "untyped", "summary", "histogram"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name, kind).is_none(), "{name} typed twice");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let name = series.split('{').next().unwrap();
        assert!(
            typed.contains_key(name),
            "{name} has no TYPE before its samples"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[tokio::test]
async fn metrics_follow_rabbitmqs_families() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "metered").await;
    for _ in 0..3 {
        publish(&ch, "", "metered", b"x").await;
    }
    assert_eq!(queue_counts(&ch, "metered").await.0, 3);

    let (content_type, text) = scrape(&broker, "/metrics").await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let m = parse(&text);
    assert_eq!(m["rabbitmq_queue_messages_ready"], 3.0);
    assert_eq!(m["rabbitmq_queue_messages"], 3.0);
    assert_eq!(m["rabbitmq_queues"], 1.0);
    assert_eq!(m["rabbitmq_connections"], 1.0);
    assert_eq!(m["rabbitmq_channels"], 1.0);
    assert_eq!(m["rabbitmq_queues_created_total"], 1.0);
    assert_eq!(m["rabbitmq_connections_opened_total"], 1.0);
    assert_eq!(
        m["rabbitmq_global_messages_received_total{protocol=\"amqp091\"}"],
        3.0
    );
    assert!(m["rabbitmq_process_resident_memory_bytes"] > 0.0);
    assert_eq!(m["rabbitmq_channel_messages_published_total"], 3.0);
    assert_eq!(m["rabbitmq_channel_consumers"], 0.0);
    assert!(m["rabbitmq_disk_space_available_bytes"] > 0.0);
    assert_eq!(m["rabbitmq_process_open_tcp_sockets"], 1.0);
    let node = broker.server.broker.node_name();
    let identity = format!(
        "rabbitmq_identity_info{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_cluster_permanent_id=\"{node}\"}}"
    );
    assert_eq!(m[&identity], 1.0, "{text}");

    let (_, text) = scrape(&broker, "/metrics/per-object").await;
    let m = parse(&text);
    assert_eq!(
        m["rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"metered\"}"],
        3.0
    );
    assert_eq!(
        m["rabbitmq_queue_messages_published_total{vhost=\"/\",queue=\"metered\"}"],
        3.0
    );
    let missing = reqwest::get(format!("http://{}/nope", broker.server.prometheus_addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
}
