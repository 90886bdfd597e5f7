//! The delivery acknowledgement timeout, as RabbitMQ's `consumer_timeout`: a channel holding a
//! delivery unacknowledged for too long is closed with 406 PRECONDITION_FAILED "delivery
//! acknowledgement on channel N timed out…", and what it held is requeued (redelivered). A
//! consumer's `x-consumer-timeout` beats its queue's (argument or `consumer-timeout` policy),
//! which beats the broker's.

mod common;

use common::provoke::{assert_reply, next_error, Events};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use std::time::{Duration, Instant};

fn timed_out(channel: u16, ms: u64) -> String {
    format!(
        "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. Timeout \
         value used: {ms} ms. This timeout value can be configured, see consumers doc guide to \
         learn more"
    )
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn declare(ch: &Channel, name: &str, arguments: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
        .expect("queue.declare");
}

/// The broker with the given global timeout (ms, 0: none).
async fn broker(timeout_ms: u64) -> TestBroker {
    TestBroker::start_with(|c| c.consumer_timeout = timeout_ms).await
}

/// Consumes two messages from `queue` on a fresh channel without acking, and returns the
/// error that closes that channel and how long after the first delivery it came.
async fn hold_until_closed(
    conn: &Connection,
    queue: &str,
    consume: FieldTable,
) -> (lapin::Error, Duration) {
    let mut events: Events = Box::pin(conn.events_listener());
    let ch = conn.create_channel().await.expect("channel.open");
    publish(&ch, "", queue, b"one").await;
    publish(&ch, "", queue, b"two").await;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            consume,
        )
        .await
        .expect("basic.consume");
    next_delivery(&mut consumer).await;
    let first = Instant::now();
    next_delivery(&mut consumer).await;
    let err = next_error(&mut events).await;
    (err, first.elapsed())
}

/// The two held messages are back in the queue, marked redelivered.
async fn assert_requeued(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.expect("channel.open");
    for body in ["one", "two"] {
        let got = within(
            "basic.get",
            ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("basic.get")
        .unwrap_or_else(|| panic!("'{body}' was requeued"));
        assert_eq!(got.delivery.data, body.as_bytes());
        assert!(got.delivery.redelivered, "'{body}' is marked redelivered");
    }
}

#[tokio::test]
async fn a_consumer_holding_a_delivery_too_long_loses_its_channel_and_the_messages_are_requeued() {
    let broker = broker(300).await;
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.unwrap();
    declare(&setup, "held", FieldTable::default()).await;
    let (err, after) = hold_until_closed(&conn, "held", FieldTable::default()).await;
    assert_reply(&err, 406, &timed_out(2, 300));
    assert!(
        after >= Duration::from_millis(250),
        "not before the timeout: {after:?}"
    );
    assert_requeued(&conn, "held").await;
    assert!(conn.status().connected(), "only the channel is closed");
}

#[tokio::test]
async fn acking_in_time_keeps_the_channel() {
    let broker = broker(300).await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "prompt", FieldTable::default()).await;
    let mut consumer = ch
        .basic_consume(
            "prompt".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Each delivery is acked at once, over a span of several timeouts.
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(1000) {
        publish(&ch, "", "prompt", b"m").await;
        let d = next_delivery(&mut consumer).await;
        d.ack(BasicAckOptions::default()).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(n > 5);
    assert!(ch.status().connected(), "the channel is open");
    assert_eq!(queue_counts(&ch, "prompt").await, (0, 1));
    drop(conn);
}

#[tokio::test]
async fn the_queues_argument_and_the_consumers_argument_override_the_broker() {
    // The broker's own timeout is off.
    let broker = broker(0).await;
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.unwrap();
    let queue_timeout = args(&[("x-consumer-timeout", AMQPValue::LongInt(200))]);
    declare(&setup, "q-arg", queue_timeout).await;
    let (err, _) = hold_until_closed(&conn, "q-arg", FieldTable::default()).await;
    assert_reply(&err, 406, &timed_out(2, 200));
    assert_requeued(&conn, "q-arg").await;

    // The consumer's argument wins over the queue's.
    let mine = args(&[("x-consumer-timeout", AMQPValue::LongLongInt(350))]);
    let (err, after) = hold_until_closed(&conn, "q-arg", mine).await;
    assert_reply(&err, 406, &timed_out(4, 350));
    assert!(
        after >= Duration::from_millis(300),
        "the consumer's timeout: {after:?}"
    );
}

#[tokio::test]
async fn a_policy_sets_the_timeout_of_its_queues() {
    let broker = broker(0).await;
    let status = api::put(
        &broker,
        "/api/policies/%2F/impatient",
        serde_json::json!({"pattern": "^pol", "definition": {"consumer-timeout": 250}, "apply-to": "queues"}),
    )
    .await;
    assert!(status.is_success(), "policy accepted: {status}");
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.unwrap();
    declare(&setup, "pol-q", FieldTable::default()).await;
    let (err, _) = hold_until_closed(&conn, "pol-q", FieldTable::default()).await;
    assert_reply(&err, 406, &timed_out(2, 250));

    let (status, body) = api::put_answer(
        &broker,
        "/api/policies/%2F/bad",
        serde_json::json!({"pattern": "x", "definition": {"consumer-timeout": "soon"}}),
    )
    .await;
    assert_eq!(status.as_u16(), 400);
    assert!(
        body.to_string().contains("is not a valid consumer timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn a_basic_get_held_too_long_closes_the_channel() {
    let broker = broker(300).await;
    let conn = broker.connect().await;
    let mut events: Events = Box::pin(conn.events_listener());
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "got", FieldTable::default()).await;
    publish(&ch, "", "got", b"one").await;
    let got = within(
        "basic.get",
        ch.basic_get("got".into(), BasicGetOptions::default()),
    )
    .await
    .unwrap();
    assert!(got.is_some());
    let err = next_error(&mut events).await;
    assert_reply(&err, 406, &timed_out(1, 300));
    let other = conn.create_channel().await.unwrap();
    assert_eq!(queue_counts(&other, "got").await, (1, 0));
}

#[tokio::test]
async fn a_bad_timeout_argument_is_refused() {
    let broker = broker(0).await;
    let (conn, ch) = broker.channel().await;
    let err = ch
        .queue_declare(
            "bad".into(),
            QueueDeclareOptions::default(),
            args(&[("x-consumer-timeout", AMQPValue::LongInt(-5))]),
        )
        .await
        .unwrap_err();
    assert_reply(
        &err,
        406,
        "PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue 'bad' in vhost '/': {value_negative,-5}",
    );
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "fine", FieldTable::default()).await;
    let err = ch
        .basic_consume(
            "fine".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            args(&[("x-consumer-timeout", AMQPValue::LongString("soon".into()))]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406), "{err}");
}

#[tokio::test]
async fn the_api_shows_each_consumers_timeout() {
    let broker = broker(300_000).await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "shown", FieldTable::default()).await;
    let mut plain = ch
        .basic_consume(
            "shown".into(),
            "plain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _own = ch
        .basic_consume(
            "shown".into(),
            "own".into(),
            BasicConsumeOptions::default(),
            args(&[("x-consumer-timeout", AMQPValue::LongInt(9000))]),
        )
        .await
        .unwrap();
    let (_, consumers) = api::get(&broker, "/api/consumers").await;
    let timeout_of = |tag: &str| {
        consumers
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consumer_tag"] == tag)
            .map(|c| c["consumer_timeout"].clone())
    };
    assert_eq!(timeout_of("plain"), Some(300_000.into()));
    assert_eq!(timeout_of("own"), Some(9000.into()));
    assert_no_delivery(&mut plain).await;
}
