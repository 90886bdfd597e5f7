//! Durability as a client sees it: what a restarted broker still holds, and what it must not.
//!
//! The restart tests run two brokers in this process, one after the other, on one data
//! directory the test keeps, and stop the first one gracefully. The crash tests run the real
//! binary, kill it with SIGKILL and start it again on the same directory: every message whose
//! publisher confirm was an ack must be back, whenever the kill landed.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, FieldArray, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// in-process brokers on a data directory the test keeps

/// Stops gracefully (the broker closes the connections still open) and starts a new broker
/// on the same directory.
async fn restart(broker: TestBroker, dir: &Path) -> TestBroker {
    within("a graceful stop", broker.server.stop())
        .await
        .expect("the broker stops cleanly");
    TestBroker::start_in(dir).await
}

/// A new connection with a channel in confirm mode.
async fn confirming(broker: &TestBroker) -> (Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

// ---------------------------------------------------------------------------------------------
// helpers

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn declare_durable_queue(ch: &Channel, name: &str) {
    ch.queue_declare(name.into(), durable_queue(), FieldTable::default())
        .await
        .expect("durable queue.declare");
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, durable: bool) {
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .expect("exchange.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Publishes on a confirm-mode channel and returns the broker's confirmation.
async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    let options = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await
        .expect("basic.publish");
    within("a publisher confirm", confirm)
        .await
        .expect("publisher confirm")
}

/// Publishes a persistent message on a confirm-mode channel and expects a plain ack.
async fn publish_persistent(ch: &Channel, exchange: &str, routing_key: &str, body: &str) {
    let confirmation = publish_confirmed(
        ch,
        exchange,
        routing_key,
        false,
        body.as_bytes(),
        persistent(),
    )
    .await;
    assert_eq!(confirmation, Confirmation::Ack(None), "publish of {body:?}");
}

/// Publishes with the given properties on a confirm-mode channel and expects a plain ack.
async fn publish_with(ch: &Channel, routing_key: &str, body: &str, props: BasicProperties) {
    let confirmation = publish_confirmed(ch, "", routing_key, false, body.as_bytes(), props).await;
    assert_eq!(confirmation, Confirmation::Ack(None), "publish of {body:?}");
}

/// Takes every message in a queue with basic.get (unacked on `ch`), head first.
async fn get_all(ch: &Channel, queue: &str) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let got = within(
            "basic.get",
            ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .expect("basic.get");
        match got {
            Some(m) => out.push(m.delivery),
            None => return out,
        }
        assert!(out.len() <= 10_000, "queue '{queue}' never runs dry");
    }
}

fn text(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

/// The bodies in a queue, head first, each with its redelivered flag.
async fn contents(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    get_all(ch, queue)
        .await
        .iter()
        .map(|d| (text(d), d.redelivered))
        .collect()
}

fn fresh(bodies: &[&str]) -> Vec<(String, bool)> {
    bodies.iter().map(|b| (b.to_string(), false)).collect()
}

/// Whether a passive queue.declare finds the queue (on a channel of its own, since a 404
/// closes the channel).
async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => true,
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive queue.declare of '{name}' failed: {e}"),
    }
}

async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => true,
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive exchange.declare of '{name}' failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// restarts: definitions

#[tokio::test]
async fn durable_exchanges_queues_and_bindings_survive_a_restart_and_still_route() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "orders", ExchangeKind::Direct, true).await;
    declare_exchange(&ch, "ingress", ExchangeKind::Fanout, true).await;
    declare_exchange(&ch, "scratch", ExchangeKind::Direct, false).await;
    let lazy = table(&[("x-queue-mode", AMQPValue::LongString("lazy".into()))]);
    ch.queue_declare("dq".into(), durable_queue(), lazy.clone())
        .await
        .unwrap();
    bind(&ch, "dq", "orders", "created").await;
    bind(&ch, "dq", "amq.topic", "audit.#").await;
    bind(&ch, "dq", "scratch", "x").await;
    ch.exchange_bind(
        "orders".into(),
        "ingress".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(exchange_exists(&conn, "orders").await);
    assert!(exchange_exists(&conn, "ingress").await);
    assert!(
        !exchange_exists(&conn, "scratch").await,
        "a transient exchange is gone"
    );

    // The exchange kept its type and the queue its arguments: an identical redeclaration is
    // accepted, a different type is not.
    let other = conn.create_channel().await.unwrap();
    other
        .queue_declare("dq".into(), durable_queue(), lazy)
        .await
        .expect("the queue's arguments survived");
    declare_exchange(&other, "orders", ExchangeKind::Direct, true).await;
    let err = other
        .exchange_declare(
            "orders".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("'orders' is still a direct exchange");
    assert_eq!(reply_code(&err), Some(406), "{err}");

    publish_persistent(&ch, "orders", "created", "direct").await;
    publish_persistent(&ch, "ingress", "created", "via-exchange-binding").await;
    publish_persistent(&ch, "amq.topic", "audit.login", "topic").await;
    let unrouted =
        publish_confirmed(&ch, "orders", "deleted", true, b"nowhere", persistent()).await;
    assert!(
        matches!(unrouted, Confirmation::Ack(Some(_))),
        "an unbound key is returned: {unrouted:?}"
    );
    assert_eq!(
        contents(&ch, "dq").await,
        fresh(&["direct", "via-exchange-binding", "topic"])
    );
}

// ---------------------------------------------------------------------------------------------
// restarts: messages

fn every_property(headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/octet-stream".into())
        .with_content_encoding("identity".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("replies".into())
        .with_message_id("msg-42".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("durability-test".into())
}

fn rich_headers() -> FieldTable {
    let nested = table(&[("name", AMQPValue::LongString("inner".into()))]);
    table(&[
        ("string", AMQPValue::LongString("value".into())),
        ("int", AMQPValue::LongInt(-7)),
        ("long", AMQPValue::LongLongInt(1 << 40)),
        ("bool", AMQPValue::Boolean(true)),
        ("double", AMQPValue::Double(2.5)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 255])),
        ),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString(LongString::from("two")),
            ])),
        ),
        ("void", AMQPValue::Void),
    ])
}

#[tokio::test]
async fn confirmed_persistent_messages_survive_a_restart_in_order_with_body_and_properties_intact()
{
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    bind(&ch, "dq", "amq.topic", "audit.#").await;
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    // Larger than frame_max, so it crosses several body frames both ways.
    let large: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent: Vec<(&str, String, Vec<u8>, BasicProperties)> = vec![
        ("", "dq".into(), b"first".to_vec(), persistent()),
        (
            "amq.topic",
            "audit.two".into(),
            all_bytes,
            every_property(rich_headers()),
        ),
        ("", "dq".into(), Vec::new(), persistent().with_priority(1)),
        (
            "",
            "dq".into(),
            large,
            persistent().with_headers(rich_headers()),
        ),
    ];
    for i in 5..=20 {
        let props = persistent().with_message_id(format!("id-{i}").into());
        sent.push(("", "dq".into(), format!("m{i}").into_bytes(), props));
    }
    for (exchange, key, body, props) in &sent {
        let confirmation = publish_confirmed(&ch, exchange, key, false, body, props.clone()).await;
        assert_eq!(confirmation, Confirmation::Ack(None));
    }
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    let got = get_all(&ch, "dq").await;
    assert_eq!(got.len(), sent.len(), "every confirmed message is back");
    for (i, (d, (exchange, key, body, props))) in got.iter().zip(&sent).enumerate() {
        assert_eq!(&d.data, body, "body of message {}", i + 1);
        assert_eq!(&d.properties, props, "properties of message {}", i + 1);
        assert_eq!(
            d.exchange.as_str(),
            *exchange,
            "exchange of message {}",
            i + 1
        );
        assert_eq!(
            d.routing_key.as_str(),
            key,
            "routing key of message {}",
            i + 1
        );
        assert!(!d.redelivered, "message {} was never delivered", i + 1);
    }
}

#[tokio::test]
async fn messages_published_after_a_restart_queue_behind_the_recovered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    for body in ["a", "b", "c"] {
        publish_persistent(&ch, "", "dq", body).await;
    }
    // The newest message leaves; a and b go back unacked.
    let got = get_all(&ch, "dq").await;
    got[2].ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    publish_persistent(&ch, "", "dq", "d").await;
    let redelivered = |b: &str| (b.to_string(), true);
    assert_eq!(
        contents(&ch, "dq").await,
        [redelivered("a"), redelivered("b"), ("d".to_string(), false)]
    );

    // All three unacked when the broker stops.
    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        contents(&ch, "dq").await,
        [redelivered("a"), redelivered("b"), redelivered("d")]
    );
}

#[tokio::test]
async fn transient_messages_and_non_durable_queues_do_not_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    declare_queue(&ch, "nq").await;
    publish_with(&ch, "dq", "p1", persistent()).await;
    publish_with(&ch, "dq", "t1", BasicProperties::default()).await;
    publish_with(
        &ch,
        "dq",
        "t2",
        BasicProperties::default().with_delivery_mode(1),
    )
    .await;
    publish_with(&ch, "dq", "p2", persistent()).await;
    publish_with(&ch, "nq", "lost with its queue", persistent()).await;
    // Before the restart all of them are there.
    assert_eq!(queue_counts(&ch, "dq").await.0, 4);
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = broker.channel().await;
    assert_eq!(contents(&ch, "dq").await, fresh(&["p1", "p2"]));
    assert!(
        !queue_exists(&conn, "nq").await,
        "a non-durable queue is gone"
    );
}

#[tokio::test]
async fn a_message_routed_to_two_durable_queues_survives_in_each_until_acked_there() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_exchange(&ch, "fan", ExchangeKind::Fanout, true).await;
    for q in ["q1", "q2"] {
        declare_durable_queue(&ch, q).await;
        bind(&ch, q, "fan", "").await;
    }
    publish_persistent(&ch, "fan", "", "m1").await;
    publish_persistent(&ch, "fan", "", "m2").await;
    // m1 leaves q1 only: the one stored copy must stay for q2. m2 goes back to q1 unacked.
    let m1 = get_all(&ch, "q1").await.remove(0);
    assert_eq!(text(&m1), "m1");
    m1.ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = broker.channel().await;
    let q1 = get_all(&ch, "q1").await;
    assert_eq!(q1.iter().map(text).collect::<Vec<_>>(), ["m2"]);
    assert!(q1[0].redelivered, "m2 was handed out from q1 before");
    assert_eq!(contents(&ch, "q2").await, fresh(&["m1", "m2"]));
    // After recovery m2 leaves q1 too; q2 gets both back unacked.
    q1[0].ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = broker.channel().await;
    assert!(queue_exists(&conn, "q1").await);
    assert_eq!(queue_counts(&ch, "q1").await.0, 0, "acked in q1 stays gone");
    assert_eq!(
        contents(&ch, "q2").await,
        [("m1".to_string(), true), ("m2".to_string(), true)],
        "q2 keeps both, whatever q1 did with them"
    );
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = broker.channel().await;
    assert!(queue_exists(&conn, "q2").await);
    assert_eq!(queue_counts(&ch, "q2").await.0, 0, "acked in q2 stays gone");
}

#[tokio::test]
async fn acked_and_rejected_messages_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    for i in 1..=6 {
        publish_persistent(&ch, "", "dq", &i.to_string()).await;
    }
    let mut consumer = ch
        .basic_consume(
            "dq".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut delivered = Vec::new();
    for _ in 1..=6 {
        delivered.push(next_delivery(&mut consumer).await);
    }
    let tags: Vec<u64> = delivered.iter().map(|d| d.delivery_tag).collect();
    assert_eq!(
        delivered.iter().map(text).collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5", "6"]
    );
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    // 2 and 3 at once.
    ch.basic_ack(tags[2], BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.basic_reject(tags[3], BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    // 5 and 6 stay unacked; closing the channel hands them back.
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        contents(&ch, "dq").await,
        [("5".to_string(), true), ("6".to_string(), true)]
    );
}

#[tokio::test]
async fn messages_unacked_at_shutdown_come_back_redelivered_in_their_original_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    for i in 1..=8 {
        publish_persistent(&ch, "", "dq", &i.to_string()).await;
    }
    ch.basic_qos(5, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "dq".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut delivered = Vec::new();
    for _ in 1..=5 {
        delivered.push(next_delivery(&mut consumer).await);
    }
    assert_eq!(
        delivered.iter().map(text).collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5"]
    );
    for i in [1, 3] {
        delivered[i].ack(BasicAckOptions::default()).await.unwrap();
    }
    // A round trip on the same channel: the broker has handled both acks, and the two freed
    // prefetch slots went to 6 and 7. 8 was never delivered.
    assert_eq!(queue_counts(&ch, "dq").await, (1, 1));

    // The consumer's connection is still open, with 1, 3, 5, 6 and 7 unacked, when the broker
    // stops.
    let broker = restart(broker, dir.path()).await;
    let (_conn2, ch2) = broker.channel().await;
    let redelivered = |b: &str| (b.to_string(), true);
    assert_eq!(
        contents(&ch2, "dq").await,
        [
            redelivered("1"),
            redelivered("3"),
            redelivered("5"),
            redelivered("6"),
            redelivered("7"),
            ("8".to_string(), false),
        ]
    );
}

#[tokio::test]
async fn messages_taken_without_ack_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable_queue(&ch, "dq").await;
    for body in ["got", "consumed", "kept"] {
        publish_persistent(&ch, "", "dq", body).await;
    }
    let got = ch
        .basic_get("dq".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(text(&got.delivery), "got");
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = ch
        .basic_consume("dq".into(), "c".into(), no_ack, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(text(&next_delivery(&mut consumer).await), "consumed");
    assert_eq!(text(&next_delivery(&mut consumer).await), "kept");
    // Published after the consumer went away, so it stays in the queue.
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    publish_persistent(&ch, "", "dq", "left").await;
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(contents(&ch, "dq").await, fresh(&["left"]));
}

#[tokio::test]
async fn transactions_persist_committed_publishes_and_acks_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_durable_queue(&ch, "dq").await;
    ch.tx_select().await.unwrap();
    for body in ["1", "2", "3"] {
        let confirm = ch
            .basic_publish(
                "".into(),
                "dq".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                persistent(),
            )
            .await
            .unwrap();
        assert_eq!(confirm.await.unwrap(), Confirmation::NotRequested);
    }
    ch.tx_commit().await.unwrap();
    let rolled_back = ch
        .basic_publish(
            "".into(),
            "dq".into(),
            BasicPublishOptions::default(),
            b"rolled back",
            persistent(),
        )
        .await
        .unwrap();
    drop(rolled_back);
    ch.tx_rollback().await.unwrap();
    // 1 is acked in a committed transaction, 2 in a rolled-back one.
    let got = get_all(&ch, "dq").await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["1", "2", "3"]);
    ch.basic_ack(got[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    ch.basic_ack(got[1].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        contents(&ch, "dq").await,
        [("2".to_string(), true), ("3".to_string(), true)]
    );
}

// ---------------------------------------------------------------------------------------------
// restarts: deletions

#[tokio::test]
async fn purge_and_queue_delete_are_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    for q in ["purged", "deleted", "recreated"] {
        declare_durable_queue(&ch, q).await;
    }
    for i in 1..=3 {
        publish_persistent(&ch, "", "purged", &i.to_string()).await;
    }
    let purged = ch
        .queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    publish_persistent(&ch, "", "purged", "after purge").await;

    publish_persistent(&ch, "", "deleted", "doomed").await;
    let deleted = ch
        .queue_delete("deleted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    // A queue deleted and declared again under the same name is a new, empty queue without
    // the old one's messages or bindings.
    bind(&ch, "recreated", "amq.direct", "old-binding").await;
    publish_persistent(&ch, "", "recreated", "old").await;
    ch.queue_delete("recreated".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "recreated").await;
    publish_persistent(&ch, "", "recreated", "new").await;
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert_eq!(contents(&ch, "purged").await, fresh(&["after purge"]));
    assert!(
        !queue_exists(&conn, "deleted").await,
        "deleted stays deleted"
    );
    assert_eq!(contents(&ch, "recreated").await, fresh(&["new"]));
    let returned =
        publish_confirmed(&ch, "amq.direct", "old-binding", true, b"x", persistent()).await;
    assert!(
        matches!(returned, Confirmation::Ack(Some(_))),
        "the deleted queue's binding did not come back: {returned:?}"
    );
}

#[tokio::test]
async fn exchange_delete_and_unbind_are_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "gone", ExchangeKind::Direct, true).await;
    declare_exchange(&ch, "kept", ExchangeKind::Direct, true).await;
    declare_durable_queue(&ch, "q").await;
    bind(&ch, "q", "gone", "k").await;
    bind(&ch, "q", "kept", "a").await;
    bind(&ch, "q", "kept", "b").await;
    ch.exchange_delete("gone".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    ch.queue_unbind("q".into(), "kept".into(), "a".into(), FieldTable::default())
        .await
        .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(
        !exchange_exists(&conn, "gone").await,
        "deleted stays deleted"
    );
    assert!(exchange_exists(&conn, "kept").await);
    let unbound = publish_confirmed(&ch, "kept", "a", true, b"via a", persistent()).await;
    assert!(
        matches!(unbound, Confirmation::Ack(Some(_))),
        "the removed binding did not come back: {unbound:?}"
    );
    publish_persistent(&ch, "kept", "b", "via b").await;
    assert_eq!(contents(&ch, "q").await, fresh(&["via b"]));
}

/// Headers bindings are identified by their arguments: they must come back intact enough to
/// match, and to be found again by an unbind after the restart.
#[tokio::test]
async fn headers_bindings_keep_their_arguments_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers, true).await;
    declare_durable_queue(&ch, "q").await;
    ch.queue_bind(
        "q".into(),
        "hx".into(),
        "".into(),
        QueueBindOptions::default(),
        binding_arguments(),
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    let matching = persistent().with_headers(matching_headers());
    let routed = publish_confirmed(&ch, "hx", "", true, b"match", matching.clone()).await;
    assert_eq!(routed, Confirmation::Ack(None), "the binding still matches");
    let mut other = matching_headers();
    other.insert("kind".into(), AMQPValue::LongString("other".into()));
    let unrouted = publish_confirmed(
        &ch,
        "hx",
        "",
        true,
        b"no match",
        persistent().with_headers(other),
    )
    .await;
    assert!(
        matches!(unrouted, Confirmation::Ack(Some(_))),
        "{unrouted:?}"
    );
    assert_eq!(contents(&ch, "q").await, fresh(&["match"]));
    ch.queue_unbind("q".into(), "hx".into(), "".into(), binding_arguments())
        .await
        .unwrap();

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    let after_unbind = publish_confirmed(&ch, "hx", "", true, b"match", matching).await;
    assert!(
        matches!(after_unbind, Confirmation::Ack(Some(_))),
        "the binding removed after a restart stays removed: {after_unbind:?}"
    );
}

fn matching_headers() -> FieldTable {
    table(&[
        ("kind", AMQPValue::LongString("order".into())),
        ("count", AMQPValue::LongInt(5)),
        ("ratio", AMQPValue::Double(2.5)),
        ("flag", AMQPValue::Boolean(true)),
    ])
}

fn binding_arguments() -> FieldTable {
    let mut t = matching_headers();
    t.insert("x-match".into(), AMQPValue::LongString("all".into()));
    t
}

#[tokio::test]
async fn queue_and_binding_arguments_holding_non_finite_floats_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    let weight = table(&[("x-weight", AMQPValue::Double(f64::INFINITY))]);
    ch.queue_declare("weighted".into(), durable_queue(), weight)
        .await
        .unwrap();
    publish_persistent(&ch, "", "weighted", "kept").await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers, true).await;
    declare_durable_queue(&ch, "q").await;
    let args = table(&[
        ("x-match", AMQPValue::LongString("all".into())),
        ("limit", AMQPValue::Double(f64::INFINITY)),
    ]);
    ch.queue_bind(
        "q".into(),
        "hx".into(),
        "".into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(queue_exists(&conn, "weighted").await, "the queue came back");
    assert_eq!(contents(&ch, "weighted").await, fresh(&["kept"]));
    let headers = table(&[("limit", AMQPValue::Double(f64::INFINITY))]);
    let routed = publish_confirmed(
        &ch,
        "hx",
        "",
        true,
        b"m",
        persistent().with_headers(headers),
    )
    .await;
    assert_eq!(routed, Confirmation::Ack(None), "the binding came back");
}

// ---------------------------------------------------------------------------------------------
// the real binary, killed with SIGKILL

/// A `warren` child process. Dropping it kills the process, so a failing test leaves none
/// behind.
struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    /// Every line the broker wrote to stdout and stderr.
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How long the binary may take to recover its store and report that it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

impl BrokerProcess {
    /// Starts the binary on `dir` with an OS-chosen port and waits for its ready line, which
    /// names the port.
    async fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--amqp-port")
            .arg("0")
            .arg("--http-port")
            .arg("0")
            .arg("--data-dir")
            .arg(dir)
            .arg("--bind")
            .arg("127.0.0.1")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("WARREN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the warren binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let ready_tx = Arc::new(Mutex::new(Some(ready_tx)));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            read_lines(stdout, output.clone(), ready_tx.clone()),
            read_lines(stderr, output.clone(), ready_tx),
        ];
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
            readers,
        };
        match tokio::time::timeout(READY_WITHIN, ready_rx).await {
            Ok(Ok(addr)) => process.addr = addr,
            Ok(Err(_)) => panic!("warren exited before it was ready:\n{}", process.log()),
            Err(_) => panic!(
                "warren was not ready within {READY_WITHIN:?}:\n{}",
                process.log()
            ),
        }
        process
    }

    fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    fn log(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// SIGKILL, then a look at what the broker logged: no panic, no error (a failed store
    /// write among them) and nothing recovery had to drop.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed broker is reaped");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let log = self.log();
        for bad in ["panicked", "ERROR", "recovery dropped"] {
            assert!(!log.contains(bad), "the broker logged {bad:?}:\n{log}");
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type ReadySender = Arc<Mutex<Option<tokio::sync::oneshot::Sender<SocketAddr>>>>;

/// Collects a pipe's lines and reports the address in the ready line. Ends at end of file,
/// i.e. when the process is gone.
fn read_lines(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    ready: ReadySender,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = ready_addr(&line) {
                if let Some(tx) = ready.lock().unwrap().take() {
                    let _ = tx.send(addr);
                }
            }
            output.lock().unwrap().push(line);
        }
    })
}

/// The address in "Warren … ready to accept AMQP connections on 127.0.0.1:PORT".
fn ready_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("ready to accept AMQP connections on ")?;
    let addr = rest.split_whitespace().next()?;
    addr.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

async fn connect(uri: &str) -> Connection {
    within(
        "a connection",
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connects")
}

/// Publishers publish to this durable fanout exchange, which feeds both queues below.
const CRASH_EXCHANGE: &str = "crash";
/// Nobody consumes from it while the publishers run: every confirmed message must be back.
const KEPT_QUEUE: &str = "crash-kept";
/// A consumer acks from it while the publishers run: every confirmed message it did not ack
/// must be back.
const CONSUMED_QUEUE: &str = "crash-consumed";
/// A durable queue the verifier publishes one persistent message to after acking everything:
/// its confirm means those acks are on disk too, so no earlier round may reappear.
const FENCE_QUEUE: &str = "crash-fence";
const PUBLISHERS: u32 = 4;
const ROUNDS: u32 = 5;
/// Publishes a publisher keeps unconfirmed at most.
const WINDOW: usize = 64;

/// Identifies a published message: which kill round, which publisher, its place in that
/// publisher's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct MessageId {
    round: u32,
    publisher: u32,
    seq: u64,
}

impl MessageId {
    fn name(&self) -> String {
        format!("{}.{}.{}", self.round, self.publisher, self.seq)
    }

    fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('.');
        let id = Self {
            round: parts.next()?.parse().ok()?,
            publisher: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }

    /// The id a delivery carries in its message-id property.
    fn of(d: &Delivery) -> Self {
        let name = d
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        Self::parse(&name)
            .unwrap_or_else(|| panic!("a delivery without a valid message id: {name:?}"))
    }

    /// The body: the name, then bytes that depend on the id, of a length that varies.
    fn body(&self) -> Vec<u8> {
        let mut body = format!("{}|", self.name()).into_bytes();
        let len = (self.seq.wrapping_mul(7919) % 1500) as usize;
        body.extend((0..len as u64).map(|i| ((i ^ self.seq).wrapping_mul(31) >> 2) as u8));
        body
    }
}

/// What one publisher did before the broker died under it.
#[derive(Debug, Default)]
struct Published {
    /// Publishes sent (seq 0 up to this).
    sent: u64,
    /// Seqs whose confirm was an ack, in order.
    acked: Vec<u64>,
    nacked: u64,
}

/// Publishes persistent numbered messages with confirms until `killed` says the broker is gone.
async fn publish_until_killed(
    uri: String,
    round: u32,
    publisher: u32,
    ready: Arc<tokio::sync::Barrier>,
    mut killed: tokio::sync::watch::Receiver<bool>,
) -> Published {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ready.wait().await;
    let mut out = Published::default();
    let mut in_flight: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let publishing = async {
        loop {
            if in_flight.len() >= WINDOW {
                let (seq, confirm) = in_flight.pop_front().unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                if !record(&mut out, seq, confirm, deadline).await {
                    return;
                }
                continue;
            }
            let id = MessageId {
                round,
                publisher,
                seq: out.sent,
            };
            let props = persistent().with_message_id(id.name().into());
            let published = ch
                .basic_publish(
                    CRASH_EXCHANGE.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &id.body(),
                    props,
                )
                .await;
            let Ok(confirm) = published else { return };
            in_flight.push_back((out.sent, confirm));
            out.sent += 1;
        }
    };
    // Whatever lapin does with a dead connection, the kill ends this. A confirm being awaited
    // at that moment is dropped uncounted, which only makes the check weaker, never wrong.
    tokio::select! {
        _ = publishing => {}
        _ = killed.wait_for(|k| *k) => {}
    }
    // Confirms that arrived before the broker died are decided already; the rest fail as soon
    // as lapin notices the connection is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (seq, confirm) in in_flight {
        record(&mut out, seq, confirm, deadline).await;
    }
    out
}

/// Waits for one confirm and records it; false once the connection is gone.
async fn record(
    out: &mut Published,
    seq: u64,
    confirm: PublisherConfirm,
    deadline: tokio::time::Instant,
) -> bool {
    match tokio::time::timeout_at(deadline, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => {
            out.acked.push(seq);
            true
        }
        Ok(Ok(Confirmation::Nack(_))) => {
            out.nacked += 1;
            true
        }
        Ok(Ok(Confirmation::NotRequested)) => panic!("confirms were not enabled"),
        Ok(Err(_)) | Err(_) => false,
    }
}

/// Acks every delivery from `CONSUMED_QUEUE`, one by one, until `killed` says the broker is
/// gone. Returns the ids it acked or tried to ack: they may or may not have reached the disk.
async fn consume_until_killed(
    uri: String,
    ready: Arc<tokio::sync::Barrier>,
    mut killed: tokio::sync::watch::Receiver<bool>,
) -> HashSet<MessageId> {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.basic_qos(50, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            CONSUMED_QUEUE.into(),
            "crash-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ready.wait().await;
    let mut acked = HashSet::new();
    let acking = async {
        while let Some(Ok(d)) = consumer.next().await {
            acked.insert(MessageId::of(&d));
            if d.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
    };
    // Whatever lapin does with a dead connection (an ack may wait on it), the kill ends this.
    tokio::select! {
        _ = acking => {}
        _ = killed.wait_for(|k| *k) => {}
    }
    acked
}

/// Consumes exactly what `queue` holds and checks it against what the clients of `round`
/// saw: no earlier round, bodies intact, each publisher's messages in order and once, and
/// every confirmed message back unless the consumer acked it (`consumed`; only messages of a
/// queue with a consumer may come back marked redelivered). Returns how many came back; they
/// are left unacked on `ch`.
async fn check_queue(
    ch: &Channel,
    queue: &str,
    round: u32,
    published: &BTreeMap<u32, Published>,
    consumed: Option<&HashSet<MessageId>>,
) -> usize {
    let (count, _) = queue_counts(ch, queue).await;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            format!("verify-{queue}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut seen: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for _ in 0..count {
        let d = next_delivery(&mut consumer).await;
        let id = MessageId::of(&d);
        let name = id.name();
        assert_eq!(
            id.round, round,
            "{queue}: message {name} reappeared although it was acked and a later confirm \
             made that durable"
        );
        assert_eq!(d.data, id.body(), "{queue}: body of {name}");
        assert_eq!(*d.properties.delivery_mode(), Some(2), "{queue}: {name}");
        assert!(
            !d.redelivered || consumed.is_some(),
            "{queue}: {name} is marked redelivered but was never delivered"
        );
        let sent = published.get(&id.publisher).map_or(0, |p| p.sent);
        assert!(id.seq < sent, "{queue}: {name} was never published");
        seen.entry(id.publisher).or_default().push(id.seq);
    }
    assert_no_delivery(&mut consumer).await;

    for (publisher, p) in published {
        let seqs = seen.get(publisher).map(Vec::as_slice).unwrap_or_default();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{queue}, round {round}, publisher {publisher}: out of order or duplicated: {seqs:?}"
        );
        let acked_by_consumer = |seq: u64| {
            consumed.is_some_and(|c| {
                c.contains(&MessageId {
                    round,
                    publisher: *publisher,
                    seq,
                })
            })
        };
        let missing: Vec<u64> = p
            .acked
            .iter()
            .copied()
            .filter(|&s| seqs.binary_search(&s).is_err() && !acked_by_consumer(s))
            .collect();
        assert!(
            missing.is_empty(),
            "{queue}, round {round}, publisher {publisher}: {} confirmed messages are missing \
             after the kill (first {:?}); {} confirmed, {} sent, {} back",
            missing.len(),
            &missing[..missing.len().min(10)],
            p.acked.len(),
            p.sent,
            seqs.len()
        );
    }
    count as usize
}

/// Checks both queues of a freshly restarted broker, then acks everything and makes the acks
/// durable with a confirmed publish to the fence queue. Returns how many came back per queue.
async fn verify_round(
    broker: &BrokerProcess,
    round: u32,
    published: &BTreeMap<u32, Published>,
    consumed: &HashSet<MessageId>,
) -> (usize, usize) {
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let kept = check_queue(&ch, KEPT_QUEUE, round, published, None).await;
    let back = check_queue(&ch, CONSUMED_QUEUE, round, published, Some(consumed)).await;
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .expect("basic.ack");
    let fence = publish_confirmed(&ch, "", FENCE_QUEUE, false, b"fence", persistent()).await;
    assert_eq!(fence, Confirmation::Ack(None));
    for q in [KEPT_QUEUE, CONSUMED_QUEUE] {
        assert_eq!(
            queue_counts(&ch, q).await.0,
            0,
            "{q} after acking everything"
        );
    }
    conn.close(200, "verified".into()).await.expect("close");
    (kept, back)
}

fn crash_seed() -> u64 {
    std::env::var("WARREN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

/// Five rounds on one data directory: four publishers with confirms and one consumer acking
/// are cut off by SIGKILL at a random moment, the broker restarts on what the previous one
/// left (itself recovered from a kill), and every confirmed message must be back, once, in
/// order, intact, unless the consumer had acked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_kill_9_at_random_moments() {
    let started = Instant::now();
    let seed = crash_seed();
    eprintln!("kill -9 test seed {seed} (WARREN_CRASH_SEED={seed} repeats the kill points)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path()).await;
    {
        let conn = connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        declare_exchange(&ch, CRASH_EXCHANGE, ExchangeKind::Fanout, true).await;
        for q in [KEPT_QUEUE, CONSUMED_QUEUE] {
            declare_durable_queue(&ch, q).await;
            bind(&ch, q, CRASH_EXCHANGE, "").await;
        }
        declare_durable_queue(&ch, FENCE_QUEUE).await;
        conn.close(200, "declared".into()).await.unwrap();
    }
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(100..=1500));
        let ready = Arc::new(tokio::sync::Barrier::new(PUBLISHERS as usize + 2));
        let (killed_tx, killed) = tokio::sync::watch::channel(false);
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let task =
                    publish_until_killed(broker.uri(), round, p, ready.clone(), killed.clone());
                (p, tokio::spawn(task))
            })
            .collect();
        let consumer = tokio::spawn(consume_until_killed(broker.uri(), ready.clone(), killed));
        within("the clients to connect", ready.wait()).await;
        tokio::time::sleep(kill_after).await;
        broker.kill();
        killed_tx.send_replace(true);
        let mut published = BTreeMap::new();
        for (p, task) in publishers {
            let outcome = within("a publisher to stop", task)
                .await
                .expect("publisher task");
            published.insert(p, outcome);
        }
        let consumed = within("the consumer to stop", consumer)
            .await
            .expect("consumer task");
        let restarted = Instant::now();
        broker = BrokerProcess::start(dir.path()).await;
        let recovery = restarted.elapsed();
        let (kept, back) = verify_round(&broker, round, &published, &consumed).await;
        let sent: u64 = published.values().map(|p| p.sent).sum();
        let confirmed: usize = published.values().map(|p| p.acked.len()).sum();
        let nacked: u64 = published.values().map(|p| p.nacked).sum();
        eprintln!(
            "round {round}: killed after {kill_after:?}: {sent} sent, {confirmed} confirmed, \
             {} acked by the consumer; back after {recovery:?}: {kept} in {KEPT_QUEUE}, {back} \
             in {CONSUMED_QUEUE}",
            consumed.len()
        );
        assert!(
            confirmed > 0,
            "round {round}: nothing was confirmed before the kill, so it proves nothing"
        );
        assert_eq!(nacked, 0, "the broker nacked publishes");
    }
    broker.kill();
    eprintln!("kill -9 test took {:?}", started.elapsed());
}

/// Exclusive queues belong to a connection: even when the broker dies without closing it,
/// neither a server-named nor a named exclusive queue comes back, while a durable one does.
#[tokio::test]
async fn exclusive_queues_never_survive_even_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    let server_named = ch
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await
        .unwrap()
        .name()
        .to_string();
    assert!(server_named.starts_with("amq.gen-"), "{server_named}");
    ch.queue_declare("named-exclusive".into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "control").await;
    for q in [server_named.as_str(), "named-exclusive", "control"] {
        publish_persistent(&ch, "", q, q).await;
    }
    // Killed with the owning connection still open: nothing closed the exclusive queues.
    broker.kill();
    drop(conn);

    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    assert!(
        !queue_exists(&conn, &server_named).await,
        "the server-named exclusive queue came back"
    );
    assert!(
        !queue_exists(&conn, "named-exclusive").await,
        "the named exclusive queue came back"
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(contents(&ch, "control").await, fresh(&["control"]));
    broker.kill();
}

/// A persistent message handed straight to a consumer may skip the disk if it is acked at
/// once; one that is not acked must still be on disk, marked delivered, when its confirm
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_at_once_but_not_acked_is_on_disk_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "dq").await;
    let consuming = conn.create_channel().await.unwrap();
    let mut consumer = consuming
        .basic_consume(
            "dq".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for body in ["one", "two"] {
        next_body(&ch, &mut consumer, body).await;
    }
    broker.kill();

    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    let redelivered = |b: &str| (b.to_string(), true);
    assert_eq!(
        contents(&ch, "dq").await,
        [redelivered("one"), redelivered("two")]
    );
}

/// Publishes `body` persistently, takes its delivery and waits for its confirm.
async fn next_body(ch: &Channel, consumer: &mut lapin::Consumer, body: &str) -> Delivery {
    let confirm = ch
        .basic_publish(
            "".into(),
            "dq".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .expect("basic.publish");
    let delivery = next_delivery(consumer).await;
    assert_eq!(text(&delivery), body);
    let confirmation = within("a publisher confirm", confirm).await.unwrap();
    assert!(confirmation.is_ack(), "{confirmation:?}");
    delivery
}
