//! Deduplication as the RabbitMQ plugin and LavinMQ define it. A queue with
//! `x-message-deduplication` drops a publish whose `x-deduplication-header` key it holds: while
//! a message with that key is queued (no cache arguments), or while the key is in a bounded
//! cache (`x-cache-size`, `x-cache-ttl`). Exchanges drop duplicates before routing, by the
//! plugin's `x-message-deduplication` type or LavinMQ's argument of the same name.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};

async fn dedup_queue(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    for (k, v) in extra {
        args.insert((*k).into(), v.clone());
    }
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .expect("declare");
}

fn keyed(key: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-deduplication-header".into(),
        AMQPValue::LongString(LongString::from(key.as_bytes().to_vec())),
    );
    BasicProperties::default().with_headers(headers)
}

async fn publish_confirmed(ch: &Channel, queue: &str, props: BasicProperties) -> Confirmation {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b"x",
            props,
        )
        .await
        .expect("publish");
    within("confirm", confirm).await.expect("confirmation")
}

#[tokio::test]
async fn a_repeated_deduplication_key_is_confirmed_but_not_enqueued() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    dedup_queue(&ch, "d", &[]).await;
    for key in ["a", "a", "b", "a", "b"] {
        let c = publish_confirmed(&ch, "d", keyed(key)).await;
        assert!(
            c.is_ack(),
            "a duplicate is still acked, so a retrying producer stops retrying"
        );
    }
    assert_eq!(queue_counts(&ch, "d").await.0, 2);
}

#[tokio::test]
async fn only_the_deduplication_header_is_a_key_not_the_message_id() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    dedup_queue(&ch, "m", &[]).await;
    let with_id = || BasicProperties::default().with_message_id("id-1".into());
    publish_confirmed(&ch, "m", with_id()).await;
    publish_confirmed(&ch, "m", with_id()).await;
    publish_confirmed(&ch, "m", BasicProperties::default()).await;
    publish_confirmed(&ch, "m", BasicProperties::default()).await;
    assert_eq!(queue_counts(&ch, "m").await.0, 4);
}

#[tokio::test]
async fn the_cache_size_bounds_how_many_keys_are_remembered() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    dedup_queue(&ch, "w", &[("x-cache-size", AMQPValue::LongInt(2))]).await;
    for key in ["a", "b", "c", "a"] {
        publish_confirmed(&ch, "w", keyed(key)).await;
    }
    assert_eq!(
        queue_counts(&ch, "w").await.0,
        4,
        "a was forgotten once c came in"
    );
    publish_confirmed(&ch, "w", keyed("c")).await;
    assert_eq!(queue_counts(&ch, "w").await.0, 4, "c is still remembered");
}

#[tokio::test]
async fn queues_without_deduplication_keep_duplicates() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_queue(&ch, "plain").await;
    publish_confirmed(&ch, "plain", keyed("a")).await;
    publish_confirmed(&ch, "plain", keyed("a")).await;
    assert_eq!(queue_counts(&ch, "plain").await.0, 2);
}

#[tokio::test]
async fn a_retry_after_a_restart_is_still_recognised_for_messages_that_were_kept() {
    let dir = tempfile::tempdir().unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (conn, ch) = broker.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("kept".into(), durable, args.clone())
            .await
            .unwrap();
        publish_confirmed(&ch, "kept", keyed("order-1").with_delivery_mode(2)).await;
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare("kept".into(), durable, args)
        .await
        .unwrap();
    publish_confirmed(&ch, "kept", keyed("order-1").with_delivery_mode(2)).await;
    publish_confirmed(&ch, "kept", keyed("order-2").with_delivery_mode(2)).await;
    assert_eq!(
        queue_counts(&ch, "kept").await.0,
        2,
        "the retried order-1 was dropped"
    );
    // Consumed after the restart, order-1 frees its key.
    take(&ch, "kept")
        .await
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "kept", keyed("order-1").with_delivery_mode(2)).await;
    assert_eq!(queue_counts(&ch, "kept").await.0, 2);
}

#[tokio::test]
async fn keys_of_consumed_messages_and_of_a_backlog_on_disk_are_recognised_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny in-memory window: most of the backlog lives only on disk across the restart.
    let small_window = |c: &mut warren::config::Config| c.queue_window = 2;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    args.insert("x-cache-size".into(), AMQPValue::LongUInt(5));
    {
        let broker = TestBroker::start_in_with(dir.path(), small_window).await;
        let (conn, ch) = broker.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("orders".into(), durable, args.clone())
            .await
            .unwrap();
        for key in ["evicted", "consumed", "a", "b", "c", "d"] {
            publish_confirmed(&ch, "orders", keyed(key).with_delivery_mode(2)).await;
        }
        for _ in 0..2 {
            let got = ch
                .basic_get("orders".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("a message");
            got.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in_with(dir.path(), small_window).await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare("orders".into(), durable, args)
        .await
        .unwrap();
    assert_eq!(queue_counts(&ch, "orders").await.0, 4);
    for key in ["consumed", "a", "d"] {
        publish_confirmed(&ch, "orders", keyed(key).with_delivery_mode(2)).await;
    }
    assert_eq!(
        queue_counts(&ch, "orders").await.0,
        4,
        "retries of a consumed message and of messages on disk are dropped"
    );
    // The window holds the five latest keys: the oldest fell out of it before the restart.
    publish_confirmed(&ch, "orders", keyed("evicted").with_delivery_mode(2)).await;
    assert_eq!(queue_counts(&ch, "orders").await.0, 5);
}

/// Takes the next message of a queue with basic.get, leaving it unacked.
async fn take(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("a message")
}

#[tokio::test]
async fn without_cache_arguments_a_key_is_held_while_its_message_is_queued_or_unacked() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    dedup_queue(&ch, "held", &[]).await;
    publish_confirmed(&ch, "held", keyed("a")).await;
    let first = take(&ch, "held").await;
    publish_confirmed(&ch, "held", keyed("a")).await;
    assert_eq!(
        queue_counts(&ch, "held").await.0,
        0,
        "unacked, a still holds its key"
    );
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    publish_confirmed(&ch, "held", keyed("a")).await;
    assert_eq!(
        queue_counts(&ch, "held").await.0,
        1,
        "requeued, it still does"
    );
    take(&ch, "held")
        .await
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "held", keyed("a")).await;
    assert_eq!(
        queue_counts(&ch, "held").await.0,
        1,
        "acked, the key is free again"
    );

    // A reject without requeue, an auto-ack get and a purge free keys too.
    take(&ch, "held")
        .await
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    publish_confirmed(&ch, "held", keyed("a")).await;
    ch.basic_get("held".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    publish_confirmed(&ch, "held", keyed("a")).await;
    ch.queue_purge("held".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "held", keyed("a")).await;
    publish_confirmed(&ch, "held", keyed("a")).await;
    assert_eq!(queue_counts(&ch, "held").await.0, 1);
}

#[tokio::test]
async fn an_expired_or_dropped_message_frees_its_key() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // x-message-ttl 0: with no consumer a message expires as it arrives.
    dedup_queue(&ch, "gone", &[("x-message-ttl", AMQPValue::LongInt(0))]).await;
    publish_confirmed(&ch, "gone", keyed("a")).await;
    publish_confirmed(&ch, "gone", keyed("a")).await;
    let (_consumer_conn, consumer_ch) = broker.channel().await;
    let mut consumer = consumer_ch
        .basic_consume(
            "gone".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish_confirmed(&ch, "gone", keyed("a")).await;
    let got = next_delivery(&mut consumer).await;
    assert_eq!(got.data, b"x", "the key of the expired copies was free");

    // x-max-length 1 drops the head: its key goes with it.
    dedup_queue(&ch, "capped", &[("x-max-length", AMQPValue::LongInt(1))]).await;
    for key in ["a", "b", "a"] {
        publish_confirmed(&ch, "capped", keyed(key)).await;
    }
    let head = take(&ch, "capped").await;
    assert_eq!(
        head.delivery.properties.headers().as_ref().unwrap().inner()["x-deduplication-header"],
        AMQPValue::LongString(LongString::from(b"a".to_vec())),
        "a came back once b had pushed the first a out"
    );
}

#[tokio::test]
async fn a_queue_reads_the_header_x_deduplication_header_names() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let header = AMQPValue::LongString(LongString::from(b"order-id".to_vec()));
    dedup_queue(&ch, "custom", &[("x-deduplication-header", header)]).await;
    let order = |id: &str| {
        let mut h = FieldTable::default();
        h.insert(
            "order-id".into(),
            AMQPValue::LongString(LongString::from(id.as_bytes().to_vec())),
        );
        BasicProperties::default().with_headers(h)
    };
    publish_confirmed(&ch, "custom", order("1")).await;
    publish_confirmed(&ch, "custom", order("1")).await;
    publish_confirmed(&ch, "custom", keyed("1")).await;
    publish_confirmed(&ch, "custom", keyed("1")).await;
    assert_eq!(
        queue_counts(&ch, "custom").await.0,
        3,
        "order-id is the key; the default header is not read"
    );
}

#[tokio::test]
async fn with_a_cache_ttl_a_key_counts_until_it_expires_even_after_its_message_is_consumed() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    dedup_queue(&ch, "ttl", &[("x-cache-ttl", AMQPValue::LongInt(60_000))]).await;
    publish_confirmed(&ch, "ttl", keyed("a")).await;
    take(&ch, "ttl")
        .await
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "ttl", keyed("a")).await;
    assert_eq!(
        queue_counts(&ch, "ttl").await.0,
        0,
        "consumed, a is still cached"
    );

    // A message's own x-cache-ttl header overrides the queue's.
    let mut short = FieldTable::default();
    short.insert(
        "x-deduplication-header".into(),
        AMQPValue::LongString(LongString::from(b"b".to_vec())),
    );
    short.insert("x-cache-ttl".into(), AMQPValue::LongInt(50));
    publish_confirmed(&ch, "ttl", BasicProperties::default().with_headers(short)).await;
    // The key's own TTL is time itself: nothing to await but the clock.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    publish_confirmed(&ch, "ttl", keyed("b")).await;
    assert_eq!(queue_counts(&ch, "ttl").await.0, 2, "b's 50 ms had passed");
}
