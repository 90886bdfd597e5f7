//! Message statistics through the management API: counts per queue, exchange, channel,
//! connection, vhost and node, rates from samples (taken every 50 ms here instead of 5 s),
//! and the sample lists charts ask for with `lengths_age` and `msg_rates_age`.

mod common;

use common::api::*;
use common::*;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use serde_json::Value;

async fn sampled_broker() -> TestBroker {
    TestBroker::start_with(|c| c.collect_statistics_interval = 50).await
}

/// Polls `path` until `ready` holds for its body (samples arrive every 50 ms).
async fn until(broker: &TestBroker, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    within(&format!("{path} to show the statistics"), async {
        loop {
            let (_, body) = get(broker, path).await;
            if ready(&body) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn publishes_deliveries_and_acks_are_counted_everywhere() {
    let broker = sampled_broker().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_queue(&ch, "counted").await;
    for i in 0..10 {
        publish(&ch, "", "counted", format!("m{i}").as_bytes()).await;
    }
    publish(&ch, "", "nowhere", b"dropped").await;
    let mut consumer = ch
        .basic_consume(
            "counted".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..10 {
        let d = within("a delivery", consumer.next())
            .await
            .unwrap()
            .unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
    }

    let q = until(&broker, "/api/queues/%2F/counted", |q| {
        q["message_stats"]["ack"] == 10
    })
    .await;
    let stats = &q["message_stats"];
    assert_eq!(stats["publish"], 10);
    assert_eq!(stats["deliver"], 10);
    assert_eq!(stats["deliver_get"], 10);
    assert_eq!(stats["redeliver"], 0);
    assert!(stats["publish_details"]["rate"].is_number());

    let x = until(&broker, "/api/exchanges/%2F/amq.default", |x| {
        x["message_stats"]["publish_in"] == 11
    })
    .await;
    assert_eq!(x["message_stats"]["publish_out"], 10);

    let (_, channels) = get(&broker, "/api/channels").await;
    let channel = &channels[0]["message_stats"];
    assert_eq!(channel["publish"], 11);
    assert_eq!(channel["confirm"], 11);
    assert_eq!(channel["drop_unroutable"], 1);
    assert_eq!(channel["deliver"], 10);
    assert_eq!(channel["ack"], 10);

    let (_, connections) = get(&broker, "/api/connections").await;
    assert!(connections[0]["recv_oct"].as_u64().unwrap() > 0);
    assert!(connections[0]["send_oct"].as_u64().unwrap() > 0);

    let vhost = until(&broker, "/api/vhosts/%2F", |v| {
        v["message_stats"]["ack"] == 10
    })
    .await;
    assert_eq!(vhost["message_stats"]["publish"], 11);
    let overview = until(&broker, "/api/overview", |o| {
        o["message_stats"]["ack"] == 10
    })
    .await;
    assert_eq!(overview["message_stats"]["publish"], 11);
    assert_eq!(overview["object_totals"]["channels"], 1);
    assert_eq!(overview["churn_rates"]["connection_created"], 1);
    assert_eq!(overview["churn_rates"]["queue_created"], 1);
}

#[tokio::test]
async fn a_closed_connections_counts_stay_in_the_totals() {
    let broker = sampled_broker().await;
    {
        let (conn, ch) = broker.channel().await;
        declare_queue(&ch, "kept").await;
        for _ in 0..5 {
            publish(&ch, "", "kept", b"x").await;
        }
        conn.close(200, "bye".into()).await.unwrap();
    }
    let overview = until(&broker, "/api/overview", |o| {
        o["churn_rates"]["connection_closed"] == 1
    })
    .await;
    assert_eq!(overview["message_stats"]["publish"], 5);
    assert_eq!(overview["churn_rates"]["channel_closed"], 1);
    let (_, vhost) = get(&broker, "/api/vhosts/%2F").await;
    assert_eq!(vhost["message_stats"]["publish"], 5);
}

#[tokio::test]
async fn rates_and_samples_follow_the_traffic() {
    let broker = sampled_broker().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "busy").await;
    // Publishes spread over a few samples: the publish rate is positive in one of them.
    let q = within("a positive publish rate", async {
        loop {
            publish(&ch, "", "busy", b"x").await;
            let (_, q) = get(&broker, "/api/queues/%2F/busy?lengths_age=60&lengths_incr=1&msg_rates_age=60&msg_rates_incr=1").await;
            if q["message_stats"]["publish_details"]["rate"].as_f64().unwrap_or(0.0) > 0.0
                && q["messages_details"]["samples"].as_array().is_some_and(|s| s.len() > 2)
            {
                return q;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let samples = q["messages_details"]["samples"].as_array().unwrap();
    let newest = samples[0]["timestamp"].as_u64().unwrap();
    let older = samples[1]["timestamp"].as_u64().unwrap();
    assert!(newest > older, "newest first: {samples:?}");
    assert!(samples[0]["sample"].as_u64().unwrap() >= samples[1]["sample"].as_u64().unwrap());
    assert!(q["message_stats"]["publish_details"]["samples"].is_array());
    // While messages move the queue is not idle (RabbitMQ gives idle_since only when it is).
    assert!(q.get("idle_since").is_none(), "{q}");
    // The default exchange's page has its samples too when asked.
    let x = until(
        &broker,
        "/api/exchanges/%2F/amq.default?msg_rates_age=60&msg_rates_incr=1",
        |x| x["message_stats"]["publish_in_details"]["samples"].is_array(),
    )
    .await;
    assert!(x["message_stats"]["publish_in"].as_u64().unwrap() > 0);
    let overview = until(
        &broker,
        "/api/overview?lengths_age=60&lengths_incr=1",
        |o| o["queue_totals"]["messages_details"]["samples"].is_array(),
    )
    .await;
    assert!(overview["queue_totals"]["messages"].as_u64().unwrap() > 0);
}
