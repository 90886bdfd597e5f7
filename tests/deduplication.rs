//! Queues with `x-message-deduplication` drop publishes whose key they have seen recently.

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
async fn message_id_is_the_key_when_there_is_no_header_and_keyless_messages_pass() {
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
    assert_eq!(queue_counts(&ch, "m").await.0, 3);
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
