//! Helpers for the queue extension tests: argument tables, declares, publishes with properties, and
//! waits for what a client can see.

use super::*;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, ExchangeKind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn int(n: i64) -> AMQPValue {
    AMQPValue::LongLongInt(n)
}

pub fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Queue arguments that dead-letter through the default exchange into `queue`.
pub fn dead_letter_to(queue: &str) -> Vec<(&'static str, AMQPValue)> {
    vec![
        ("x-dead-letter-exchange", longstr("")),
        ("x-dead-letter-routing-key", longstr(queue)),
    ]
}

pub fn with(
    mut base: Vec<(&'static str, AMQPValue)>,
    more: &[(&'static str, AMQPValue)],
) -> FieldTable {
    base.extend_from_slice(more);
    table(&base)
}

pub async fn declare(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Queue {
    within(
        "queue.declare-ok",
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.declare '{name}': {e}"))
}

pub async fn declare_durable(ch: &Channel, name: &str, arguments: FieldTable) {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within(
        "queue.declare-ok",
        ch.queue_declare(name.into(), options, arguments),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.declare '{name}': {e}"));
}

pub async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare '{name}': {e}"));
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.bind '{queue}' to '{exchange}': {e}"));
}

/// A new connection with a channel in confirm mode, so that every publish below is known to
/// have reached its queues before the test goes on.
pub async fn confirming(broker: &TestBroker) -> (Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Publishes on a confirming channel and returns the broker's confirmation.
pub async fn send_to(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &str,
    properties: BasicProperties,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .expect("basic.publish");
    within("the publisher confirm", confirm)
        .await
        .expect("publisher confirm")
}

/// Publishes through the default exchange and asserts the broker acked it.
pub async fn send(ch: &Channel, queue: &str, body: &str, properties: BasicProperties) {
    let confirmation = send_to(ch, "", queue, body, properties).await;
    assert_eq!(
        confirmation,
        Confirmation::Ack(None),
        "publish of {body:?} to '{queue}'"
    );
}

pub fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

pub fn prioritised(p: u8) -> BasicProperties {
    BasicProperties::default().with_priority(p)
}

/// A consumer on a channel of its own, with `prefetch` (0: unlimited) and consume arguments.
pub async fn consumer_on(
    conn: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
    arguments: FieldTable,
) -> (Channel, Consumer) {
    let ch = conn.create_channel().await.expect("channel opens");
    if prefetch > 0 {
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .expect("basic.qos");
    }
    let consumer = ch
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .unwrap_or_else(|e| panic!("basic.consume on '{queue}': {e}"));
    (ch, consumer)
}

/// A no-ack consumer watching `queue` (typically a dead-letter queue).
pub async fn watch(conn: &Connection, queue: &str) -> Consumer {
    let ch = conn.create_channel().await.expect("channel opens");
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.consume on '{queue}': {e}"))
}

pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// The next `n` deliveries' bodies.
pub async fn bodies(consumer: &mut Consumer, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(body(&next_delivery(consumer).await));
    }
    out
}

pub fn text_of(v: Option<&AMQPValue>) -> Option<String> {
    match v {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    }
}

pub fn header(d: &Delivery, key: &str) -> Option<String> {
    text_of(d.properties.headers().as_ref()?.inner().get(key))
}

/// The `x-death` entries of a delivery, newest first.
pub fn deaths(d: &Delivery) -> Vec<FieldTable> {
    let headers = d.properties.headers().clone().unwrap_or_default();
    match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death holds a non-table entry: {other:?}"),
            })
            .collect(),
        other => panic!("no x-death array on the delivery: {other:?}"),
    }
}

pub fn field(t: &FieldTable, key: &str) -> Option<String> {
    text_of(t.inner().get(key))
}

pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// One x-death entry as RabbitMQ writes it: count a 'long', reason, queue, a timestamp,
/// the exchange and routing keys the message had when it died.
#[track_caller]
pub fn assert_death(
    death: &FieldTable,
    count: i64,
    reason: &str,
    queue: &str,
    exchange: &str,
    routing_keys: &[&str],
) {
    let d = death.inner();
    assert_eq!(d.get("count"), Some(&int(count)), "count in {death:?}");
    assert_eq!(field(death, "reason").as_deref(), Some(reason), "{death:?}");
    assert_eq!(field(death, "queue").as_deref(), Some(queue), "{death:?}");
    assert_eq!(
        field(death, "exchange").as_deref(),
        Some(exchange),
        "{death:?}"
    );
    let keys: Vec<String> = match d.get("routing-keys") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| text_of(Some(v)))
            .collect(),
        other => panic!("routing-keys is not an array: {other:?}"),
    };
    assert_eq!(keys, routing_keys, "routing-keys in {death:?}");
    match d.get("time") {
        Some(AMQPValue::Timestamp(t)) => {
            let now = now_seconds();
            assert!(
                *t <= now + 1 && *t + 60 >= now,
                "x-death time {t} is not about now ({now})"
            );
        }
        other => panic!("x-death time is not a timestamp: {other:?}"),
    }
}

/// Whether `queue` exists, asked without using it: a mandatory publish to it through the
/// default exchange comes back once it is gone. Publishing does not count as use for
/// `x-expires` (a passive declare would, in RabbitMQ).
pub async fn exists(confirming: &Channel, queue: &str) -> bool {
    let confirm = confirming
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"probe",
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish");
    match within("the probe's confirm", confirm)
        .await
        .expect("probe confirm")
    {
        Confirmation::Ack(None) => true,
        Confirmation::Ack(Some(_)) => false,
        other => panic!("unexpected confirmation of a probe: {other:?}"),
    }
}

/// Waits until `queue` is gone (bounded by `within`).
pub async fn await_gone(confirming: &Channel, queue: &str) {
    within(&format!("queue '{queue}' to expire"), async {
        while exists(confirming, queue).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Asserts that a passive declare of `queue` fails with 404 (on a channel of its own).
pub async fn assert_no_queue(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = within(
        "passive queue.declare",
        ch.queue_declare(queue.into(), passive, FieldTable::default()),
    )
    .await
    .expect_err("the queue is gone");
    assert_eq!(reply_code(&err), Some(404), "{err}");
}

/// Sleeps until `at` (for deadlines nothing observable marks).
pub async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}
