//! Exchanges that drop duplicates before routing: the RabbitMQ plugin's exchange type
//! `x-message-deduplication` (routes as fanout; `x-cache-size` required) and LavinMQ's
//! `x-message-deduplication: true` argument on an exchange of any type. A duplicate is routed
//! nowhere, not even to an alternate exchange; its publisher's confirm is still an ack.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn keyed(header: &str, key: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(&[(header, s(key))]))
}

async fn declare(ch: &Channel, name: &str, kind: &str, args: FieldTable) -> lapin::Result<()> {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom(kind.into()),
        ExchangeDeclareOptions::default(),
        args,
    )
    .await
}

/// Publishes with confirms on and returns whether the publish was acked.
async fn publish(ch: &Channel, exchange: &str, key: &str, props: BasicProperties) -> bool {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"m",
            props,
        )
        .await
        .expect("basic.publish");
    within("the confirm", confirm)
        .await
        .expect("confirmation")
        .is_ack()
}

async fn bound_queue(ch: &Channel, name: &str, exchange: &str, key: &str) {
    declare_queue(ch, name).await;
    ch.queue_bind(
        name.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

#[tokio::test]
async fn the_plugin_type_needs_x_cache_size() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let err = declare(&ch, "dx", "x-message-deduplication", FieldTable::default())
        .await
        .expect_err("declared without x-cache-size");
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some(
            "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an \
             integer greater than 0"
        )
    );
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "dx",
        "x-message-deduplication",
        table(&[("x-cache-size", s("10"))]),
    )
    .await
    .expect("a numeric string is a size too");
}

#[tokio::test]
async fn the_plugin_type_routes_as_fanout_and_drops_duplicates() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let args = table(&[("x-cache-size", AMQPValue::LongInt(100))]);
    declare(&ch, "dedup", "x-message-deduplication", args)
        .await
        .unwrap();
    bound_queue(&ch, "q1", "dedup", "ignored").await;
    bound_queue(&ch, "q2", "dedup", "").await;
    let header = "x-deduplication-header";
    for key in ["a", "a", "b"] {
        assert!(publish(&ch, "dedup", "any", keyed(header, key)).await);
    }
    assert!(publish(&ch, "dedup", "any", BasicProperties::default()).await);
    assert!(publish(&ch, "dedup", "any", BasicProperties::default()).await);
    assert_eq!(
        queue_counts(&ch, "q1").await.0,
        4,
        "a once, b, two without a key"
    );
    assert_eq!(queue_counts(&ch, "q2").await.0, 4);
}

#[tokio::test]
async fn lavinmqs_argument_deduplicates_any_exchange_type_even_from_its_alternate() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare(&ch, "ae", "fanout", FieldTable::default())
        .await
        .unwrap();
    bound_queue(&ch, "unrouted", "ae", "").await;
    let args = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-deduplication-header", s("msg-id")),
        ("alternate-exchange", s("ae")),
    ]);
    declare(&ch, "orders", "topic", args).await.unwrap();
    bound_queue(&ch, "eu", "orders", "eu.#").await;
    assert!(publish(&ch, "orders", "eu.fr", keyed("msg-id", "1")).await);
    assert!(publish(&ch, "orders", "eu.de", keyed("msg-id", "1")).await);
    assert!(publish(&ch, "orders", "us.ny", keyed("msg-id", "2")).await);
    assert!(publish(&ch, "orders", "us.ny", keyed("msg-id", "2")).await);
    assert_eq!(
        queue_counts(&ch, "eu").await.0,
        1,
        "the second 1 is a duplicate"
    );
    assert_eq!(
        queue_counts(&ch, "unrouted").await.0,
        1,
        "2 went to the alternate exchange once; its duplicate went nowhere"
    );
}

#[tokio::test]
async fn a_durable_deduplicating_exchange_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let args = table(&[("x-cache-size", AMQPValue::LongInt(10))]);
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (_c, ch) = broker.channel().await;
        ch.exchange_declare(
            "kept".into(),
            ExchangeKind::Custom("x-message-deduplication".into()),
            durable,
            args.clone(),
        )
        .await
        .unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "kept".into(),
        ExchangeKind::Custom("x-message-deduplication".into()),
        durable,
        args,
    )
    .await
    .expect("an equivalent redeclaration");
    bound_queue(&ch, "after", "kept", "").await;
    let header = "x-deduplication-header";
    assert!(publish(&ch, "kept", "", keyed(header, "k")).await);
    assert!(publish(&ch, "kept", "", keyed(header, "k")).await);
    assert_eq!(queue_counts(&ch, "after").await.0, 1);
}
