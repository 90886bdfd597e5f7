//! Resource alarms as RabbitMQ raises them: past the memory watermark or below the free disk
//! limit, connections that publish get connection.blocked and are not read until the alarm
//! clears (then connection.unblocked); consumers go on; the alarm shows in the API, the health
//! check and the metrics; nothing published is lost.

mod common;

use common::api::*;
use common::*;
use futures_lite::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::Connection;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use warren::broker::Broker;

fn broker_of(b: &TestBroker) -> &Arc<Broker> {
    &b.server.broker
}

/// A broker whose alarms are checked every 20 ms.
async fn watched_broker() -> TestBroker {
    TestBroker::start_with(|c| c.memory_monitor_interval = 20).await
}

/// Waits until the connection's blocked state is `blocked`.
async fn until_blocked(conn: &Connection, blocked: bool) {
    within("the blocked state to change", async {
        while conn.status().blocked() != blocked {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The reason of the next connection.blocked the connection receives.
async fn blocked_reason(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
) -> String {
    within("connection.blocked", async {
        loop {
            if let Some(lapin::Event::ConnectionBlocked(reason)) = events.next().await {
                return reason;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_memory_alarm_blocks_publishers_until_it_clears_while_consumers_go_on() {
    let broker = watched_broker().await;
    let (_c, consuming) = broker.channel().await;
    declare_queue(&consuming, "work").await;
    let mut deliveries = consuming
        .basic_consume(
            "work".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (publisher, publishing) = broker.channel().await;
    let mut events = Box::pin(publisher.events_listener());
    publish(&publishing, "", "work", b"before").await;
    assert_eq!(&next_delivery(&mut deliveries).await.data[..], b"before");
    assert_eq!(
        get(&broker, "/api/health/checks/alarms").await.0,
        StatusCode::OK
    );

    // The broker uses more than a 1-byte watermark allows.
    broker_of(&broker).alarms.set_memory_limit(1);
    assert_eq!(blocked_reason(&mut events).await, "low on memory");
    until_blocked(&publisher, true).await;
    let (status, health) = get(&broker, "/api/health/checks/alarms").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["alarms"][0]["resource"], "memory");
    assert_eq!(
        health["reason"],
        "There are alarms in effect in the cluster"
    );
    let (_, nodes) = get(&broker, "/api/nodes").await;
    assert_eq!(nodes[0]["mem_alarm"], true);
    assert_eq!(nodes[0]["mem_limit"], 1);
    let metrics = reqwest::get(format!("http://{}/metrics", broker.server.prometheus_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rabbitmq_alarms_memory_used_watermark 1"),
        "{metrics}"
    );

    // A publish now waits (lapin holds it while blocked, and the broker would not read it);
    // a connection that never published goes on.
    let during = tokio::spawn(async move {
        publish(&publishing, "", "work", b"during").await;
        publishing
    });
    assert_no_delivery(&mut deliveries).await;
    declare_queue(&consuming, "still-served").await;

    broker_of(&broker).alarms.set_memory_limit(u64::MAX);
    until_blocked(&publisher, false).await;
    let _publishing = within("the held publish", during).await.unwrap();
    assert_eq!(&next_delivery(&mut deliveries).await.data[..], b"during");
    assert_eq!(
        get(&broker, "/api/health/checks/alarms").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_disk_alarm_blocks_publishers_with_its_own_reason() {
    let broker = watched_broker().await;
    let (publisher, ch) = broker.channel().await;
    let mut events = Box::pin(publisher.events_listener());
    declare_queue(&ch, "q").await;
    publish(&ch, "", "q", b"x").await;
    // No file system has this much free.
    broker_of(&broker).alarms.set_disk_limit(u64::MAX);
    assert_eq!(blocked_reason(&mut events).await, "low on disk space");
    let (status, health) = get(&broker, "/api/health/checks/local-alarms").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["alarms"][0]["resource"], "disk");
    assert_eq!(
        get(&broker, "/api/nodes").await.1[0]["disk_free_alarm"],
        true
    );
    broker_of(&broker).alarms.set_disk_limit(0);
    until_blocked(&publisher, false).await;
    assert_eq!(queue_counts(&ch, "q").await.0, 1);
}
