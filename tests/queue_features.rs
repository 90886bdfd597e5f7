//! Queue extensions as a client observes them, held to RabbitMQ 3.10's semantics: message TTL
//! (per queue and per message), queue expiry (`x-expires`), dead-lettering and the `x-death`
//! history it writes, length limits and their overflow behaviours, priority queues, consumer
//! priorities, single active consumer, and TTL across a restart.
//!
//! Timed behaviour uses TTLs of tens to hundreds of milliseconds and waits for what a client can
//! see happen: a dead-lettered delivery, a mandatory publish coming back once its queue is gone.
//! The few fixed pauses let a deadline pass where nothing observable would mark it.

mod common;

use common::*;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, ExchangeKind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// helpers

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn int(n: i64) -> AMQPValue {
    AMQPValue::LongLongInt(n)
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Queue arguments that dead-letter through the default exchange into `queue`.
fn dead_letter_to(queue: &str) -> Vec<(&'static str, AMQPValue)> {
    vec![
        ("x-dead-letter-exchange", longstr("")),
        ("x-dead-letter-routing-key", longstr(queue)),
    ]
}

fn with(
    mut base: Vec<(&'static str, AMQPValue)>,
    more: &[(&'static str, AMQPValue)],
) -> FieldTable {
    base.extend_from_slice(more);
    table(&base)
}

async fn declare(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Queue {
    within(
        "queue.declare-ok",
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.declare '{name}': {e}"))
}

async fn declare_durable(ch: &Channel, name: &str, arguments: FieldTable) {
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

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare '{name}': {e}"));
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
    .unwrap_or_else(|e| panic!("queue.bind '{queue}' to '{exchange}': {e}"));
}

/// A new connection with a channel in confirm mode, so that every publish below is known to
/// have reached its queues before the test goes on.
async fn confirming(broker: &TestBroker) -> (Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Publishes on a confirming channel and returns the broker's confirmation.
async fn send_to(
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
async fn send(ch: &Channel, queue: &str, body: &str, properties: BasicProperties) {
    let confirmation = send_to(ch, "", queue, body, properties).await;
    assert_eq!(
        confirmation,
        Confirmation::Ack(None),
        "publish of {body:?} to '{queue}'"
    );
}

fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

fn prioritised(p: u8) -> BasicProperties {
    BasicProperties::default().with_priority(p)
}

/// A consumer on a channel of its own, with `prefetch` (0: unlimited) and consume arguments.
async fn consumer_on(
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
async fn watch(conn: &Connection, queue: &str) -> Consumer {
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

async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// The next `n` deliveries' bodies.
async fn bodies(consumer: &mut Consumer, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(body(&next_delivery(consumer).await));
    }
    out
}

fn text_of(v: Option<&AMQPValue>) -> Option<String> {
    match v {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn header(d: &Delivery, key: &str) -> Option<String> {
    text_of(d.properties.headers().as_ref()?.inner().get(key))
}

/// The `x-death` entries of a delivery, newest first.
fn deaths(d: &Delivery) -> Vec<FieldTable> {
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

fn field(t: &FieldTable, key: &str) -> Option<String> {
    text_of(t.inner().get(key))
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// One x-death entry as RabbitMQ writes it: count a 'long', reason, queue, a timestamp,
/// the exchange and routing keys the message had when it died.
#[track_caller]
fn assert_death(
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
async fn exists(confirming: &Channel, queue: &str) -> bool {
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
async fn await_gone(confirming: &Channel, queue: &str) {
    within(&format!("queue '{queue}' to expire"), async {
        while exists(confirming, queue).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Asserts that a passive declare of `queue` fails with 404 (on a channel of its own).
async fn assert_no_queue(conn: &Connection, queue: &str) {
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
async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

// ---------------------------------------------------------------------------------------------
// message TTL

#[tokio::test]
async fn messages_past_the_queue_ttl_are_never_delivered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "ttl", table(&[("x-message-ttl", int(300))])).await;
    let published = Instant::now();
    for i in 0..3 {
        send(&ch, "ttl", &format!("m{i}"), BasicProperties::default()).await;
    }
    if published.elapsed() < Duration::from_millis(250) {
        assert_eq!(queue_counts(&ch, "ttl").await, (3, 0), "not expired yet");
    }
    sleep_until(published + Duration::from_millis(450)).await;
    assert!(
        get(&ch, "ttl").await.is_none(),
        "basic.get after the TTL gets get-empty"
    );
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "late", 0, FieldTable::default()).await;
    assert_no_delivery(&mut consumer).await;
    assert_eq!(queue_counts(&ch, "ttl").await.0, 0);
}

#[tokio::test]
async fn a_message_consumed_before_its_ttl_is_delivered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "ttl", table(&[("x-message-ttl", int(60_000))])).await;
    send(&ch, "ttl", "fresh", expiring("60000")).await;
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "c", 0, FieldTable::default()).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "fresh");
    assert_eq!(
        d.properties.expiration().as_ref().map(|e| e.to_string()),
        Some("60000".to_string()),
        "a delivered message keeps its expiration property"
    );
}

#[tokio::test]
async fn the_smaller_of_queue_ttl_and_message_expiration_wins() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "long-ttl",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(60_000))]),
    )
    .await;
    declare(
        &ch,
        "short-ttl",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(50))]),
    )
    .await;

    // Queue TTL 60 s, message expiration 50 ms: the message's expiration applies.
    let started = Instant::now();
    send(&ch, "long-ttl", "short-expiration", expiring("50")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "short-expiration");
    assert!(started.elapsed() < Duration::from_secs(5));
    let death = &deaths(&d)[0];
    assert_death(death, 1, "expired", "long-ttl", "", &["long-ttl"]);
    assert_eq!(field(death, "original-expiration").as_deref(), Some("50"));
    assert!(
        d.properties.expiration().is_none(),
        "a dead-lettered message carries no expiration"
    );

    // Queue TTL 50 ms, message expiration 60 s: the queue's TTL applies.
    let started = Instant::now();
    send(&ch, "short-ttl", "long-expiration", expiring("60000")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "long-expiration");
    assert!(started.elapsed() < Duration::from_secs(5));
    let death = &deaths(&d)[0];
    assert_death(death, 1, "expired", "short-ttl", "", &["short-ttl"]);
    assert_eq!(
        field(death, "original-expiration").as_deref(),
        Some("60000"),
        "the message's own expiration is recorded even when the queue's TTL expired it"
    );
    assert!(d.properties.expiration().is_none());

    // Expired by the queue's TTL alone: no original-expiration.
    send(
        &ch,
        "short-ttl",
        "queue-ttl-only",
        BasicProperties::default(),
    )
    .await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "queue-ttl-only");
    assert!(!deaths(&d)[0].inner().contains_key("original-expiration"));
    assert_eq!(queue_counts(&ch, "long-ttl").await.0, 0);
    assert_eq!(queue_counts(&ch, "short-ttl").await.0, 0);
}

#[tokio::test]
async fn x_message_ttl_0_delivers_only_to_a_consumer_waiting_at_publish_time() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "now-or-never",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(0))]),
    )
    .await;

    // Nobody waiting: the message expires on arrival.
    send(&ch, "now-or-never", "unseen", BasicProperties::default()).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "unseen");
    assert_death(
        &deaths(&d)[0],
        1,
        "expired",
        "now-or-never",
        "",
        &["now-or-never"],
    );
    assert!(get(&ch, "now-or-never").await.is_none());

    // A consumer with credit waiting: it gets the message.
    let (_c, mut waiting) =
        consumer_on(&conn, "now-or-never", "waiting", 1, FieldTable::default()).await;
    send(&ch, "now-or-never", "caught", BasicProperties::default()).await;
    let caught = next_delivery(&mut waiting).await;
    assert_eq!(body(&caught), "caught");

    // The consumer is out of credit (prefetch 1, unacked): the next one expires.
    send(&ch, "now-or-never", "blocked", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut dead).await), "blocked");
    caught.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut waiting).await;
    assert_eq!(queue_counts(&ch, "now-or-never").await, (0, 1));
}

#[tokio::test]
async fn a_message_expiration_of_0_delivers_only_to_a_waiting_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "q", FieldTable::default()).await;
    send(&ch, "q", "unseen", expiring("0")).await;
    assert!(get(&ch, "q").await.is_none(), "expired on arrival");
    let (_c, mut consumer) = consumer_on(&conn, "q", "c", 0, FieldTable::default()).await;
    send(&ch, "q", "caught", expiring("0")).await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "caught");
    assert_no_delivery(&mut consumer).await;
}

/// Warren expires a message wherever it sits in the queue; RabbitMQ only expires messages at
/// the head, so there the short-lived message would wait behind the long-lived one.
#[tokio::test]
async fn a_short_lived_message_behind_a_long_lived_one_expires_on_time() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(&ch, "mixed", table(&dead_letter_to("dead"))).await;
    send(&ch, "mixed", "long", expiring("60000")).await;
    let started = Instant::now();
    send(&ch, "mixed", "short", expiring("100")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "short");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "dead-lettered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        queue_counts(&ch, "mixed").await.0,
        1,
        "the head stays in the queue"
    );
    assert_eq!(
        get(&ch, "mixed")
            .await
            .map(|m| body(&m.delivery))
            .as_deref(),
        Some("long")
    );
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn an_invalid_expiration_closes_the_channel_with_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "q", FieldTable::default()).await;
    for (expiration, detail) in [("abc", "no_integer"), ("-1", "{value_negative,-1}")] {
        let bad = conn.create_channel().await.expect("channel opens");
        bad.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let confirm = bad
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"x",
                expiring(expiration),
            )
            .await
            .expect("basic.publish is sent");
        let err = within("the channel close", confirm)
            .await
            .expect_err("an invalid expiration is refused");
        assert_eq!(reply_code(&err), Some(406), "{err}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"
            ))
        );
        assert!(!bad.status().connected(), "the channel is closed");
        assert!(conn.status().connected(), "only the channel is closed");
    }
    assert_eq!(queue_counts(&ch, "q").await, (0, 0), "nothing was enqueued");
}

#[tokio::test]
async fn expiry_dead_letters_a_backlog_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "backlog",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(300))]),
    )
    .await;
    // Two batches far enough apart that the second, paged out behind the first, expires
    // after it; the second is read back from disk in several batches.
    let mut expected = Vec::new();
    for i in 0..8 {
        let b = format!("a{i}");
        send(&ch, "backlog", &b, BasicProperties::default()).await;
        expected.push(b);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    for i in 0..40 {
        let b = format!("b{i}");
        send(&ch, "backlog", &b, BasicProperties::default()).await;
        expected.push(b);
    }
    assert_eq!(bodies(&mut dead, expected.len()).await, expected);
    assert_eq!(queue_counts(&ch, "backlog").await.0, 0);
}

// ---------------------------------------------------------------------------------------------
// x-expires

#[tokio::test]
async fn an_unused_queue_is_deleted_after_x_expires() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let before = Instant::now();
    declare(&ch, "fleeting", table(&[("x-expires", int(200))])).await;
    await_gone(&ch, "fleeting").await;
    assert!(
        before.elapsed() >= Duration::from_millis(200),
        "deleted after {:?}, before x-expires",
        before.elapsed()
    );
    assert_no_queue(&conn, "fleeting").await;
}

#[tokio::test]
async fn a_queue_with_a_consumer_does_not_expire() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "busy", table(&[("x-expires", int(150))])).await;
    let (consumer_ch, consumer) = consumer_on(&conn, "busy", "c", 0, FieldTable::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exists(&ch, "busy").await, "a consumed queue is in use");
    consumer_ch
        .basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    drop(consumer);
    let cancelled = Instant::now();
    await_gone(&ch, "busy").await;
    assert!(
        cancelled.elapsed() >= Duration::from_millis(140),
        "x-expires counts from the last consumer going, deleted after {:?}",
        cancelled.elapsed()
    );
}

const LEASE_MS: u64 = 600;

/// Declares a queue with `x-expires` = LEASE_MS, uses it with `renew` part-way through its
/// lease, and asserts that it outlives the first lease and is deleted after the renewed one.
async fn assert_renews_the_lease(name: &str, renew: impl AsyncFnOnce(&Channel)) {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let declared = Instant::now();
    declare(&ch, name, table(&[("x-expires", int(LEASE_MS as i64))])).await;
    sleep_until(declared + Duration::from_millis(LEASE_MS * 6 / 10)).await;
    let user = conn.create_channel().await.expect("channel opens");
    renew(&user).await;
    let renewed = Instant::now();
    sleep_until(declared + Duration::from_millis(LEASE_MS + 150)).await;
    assert!(
        renewed.elapsed() < Duration::from_millis(LEASE_MS),
        "too slow to check between the two deadlines"
    );
    assert!(
        exists(&ch, name).await,
        "the queue outlived its first lease"
    );
    await_gone(&ch, name).await;
    assert!(
        renewed.elapsed() >= Duration::from_millis(LEASE_MS - 50),
        "deleted {:?} after the renewal",
        renewed.elapsed()
    );
    assert_no_queue(&conn, name).await;
}

#[tokio::test]
async fn redeclaring_a_queue_renews_its_x_expires_lease() {
    assert_renews_the_lease("redeclared", async |ch: &Channel| {
        declare(
            ch,
            "redeclared",
            table(&[("x-expires", int(LEASE_MS as i64))]),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn basic_get_renews_the_x_expires_lease() {
    assert_renews_the_lease("got", async |ch: &Channel| {
        assert!(get(ch, "got").await.is_none());
    })
    .await;
}

#[tokio::test]
async fn a_passive_declare_renews_the_x_expires_lease() {
    assert_renews_the_lease("peeked", async |ch: &Channel| {
        queue_counts(ch, "peeked").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// dead-lettering

/// An "orders" direct exchange routing "new" to queue "work", which dead-letters to the "dlx"
/// direct exchange with `work_args`; "dead" is bound to "dlx" with `dead_key`.
async fn orders_topology(ch: &Channel, work_args: FieldTable, dead_key: &str) {
    exchange(ch, "orders", ExchangeKind::Direct).await;
    exchange(ch, "dlx", ExchangeKind::Direct).await;
    declare(ch, "work", work_args).await;
    bind(ch, "work", "orders", "new").await;
    declare(ch, "dead", FieldTable::default()).await;
    bind(ch, "dead", "dlx", dead_key).await;
}

#[tokio::test]
async fn a_rejected_message_is_dead_lettered_with_its_history() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let work_args = table(&[
        ("x-dead-letter-exchange", longstr("dlx")),
        ("x-dead-letter-routing-key", longstr("dead-key")),
    ]);
    orders_topology(&ch, work_args, "dead-key").await;
    let mut dead = watch(&conn, "dead").await;
    let props = BasicProperties::default()
        .with_message_id("id-1".into())
        .with_headers(table(&[("app", longstr("kept"))]));
    assert_eq!(
        send_to(&ch, "orders", "new", "order", props).await,
        Confirmation::Ack(None)
    );
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("basic.reject");

    let dl = next_delivery(&mut dead).await;
    assert_eq!(body(&dl), "order");
    assert_eq!(dl.exchange.as_str(), "dlx", "delivered from the DLX");
    assert_eq!(
        dl.routing_key.as_str(),
        "dead-key",
        "with the dead-letter routing key"
    );
    assert!(!dl.redelivered);
    let x_death = deaths(&dl);
    assert_eq!(x_death.len(), 1, "{x_death:?}");
    assert_death(&x_death[0], 1, "rejected", "work", "orders", &["new"]);
    assert!(!x_death[0].inner().contains_key("original-expiration"));
    for (h, v) in [
        ("x-first-death-reason", "rejected"),
        ("x-first-death-queue", "work"),
        ("x-first-death-exchange", "orders"),
        ("x-last-death-reason", "rejected"),
        ("x-last-death-queue", "work"),
        ("x-last-death-exchange", "orders"),
        ("app", "kept"),
    ] {
        assert_eq!(header(&dl, h).as_deref(), Some(v), "header {h}");
    }
    assert_eq!(
        dl.properties.message_id().as_ref().map(|s| s.to_string()),
        Some("id-1".to_string()),
        "other properties travel with the message"
    );
    assert_eq!(queue_counts(&ch, "work").await.0, 0);
}

#[tokio::test]
async fn a_nacked_message_keeps_its_routing_key_without_a_dead_letter_routing_key() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let work_args = table(&[("x-dead-letter-exchange", longstr("dlx"))]);
    orders_topology(&ch, work_args, "new").await;
    let mut dead = watch(&conn, "dead").await;
    for b in ["n1", "n2"] {
        assert_eq!(
            send_to(&ch, "orders", "new", b, BasicProperties::default()).await,
            Confirmation::Ack(None)
        );
    }
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    next_delivery(&mut worker).await;
    let second = next_delivery(&mut worker).await;
    second
        .nack(BasicNackOptions {
            multiple: true,
            requeue: false,
        })
        .await
        .expect("basic.nack");
    for expected in ["n1", "n2"] {
        let dl = next_delivery(&mut dead).await;
        assert_eq!(body(&dl), expected);
        assert_eq!(dl.exchange.as_str(), "dlx");
        assert_eq!(dl.routing_key.as_str(), "new", "the original routing key");
        assert_death(&deaths(&dl)[0], 1, "rejected", "work", "orders", &["new"]);
    }
    assert_eq!(queue_counts(&ch, "work").await.0, 0);
}

#[tokio::test]
async fn a_requeued_rejection_is_not_dead_lettered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(&ch, "work", table(&dead_letter_to("dead"))).await;
    send(&ch, "work", "again", BasicProperties::default()).await;
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: true })
        .await
        .expect("basic.reject");
    let again = next_delivery(&mut worker).await;
    assert_eq!(body(&again), "again");
    assert!(again.redelivered);
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn dying_twice_in_the_same_queue_for_the_same_reason_counts_up_one_entry() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    // Rejections dead-letter straight back into the same queue.
    declare(&ch, "retry", table(&dead_letter_to("retry"))).await;
    send(&ch, "retry", "job", BasicProperties::default()).await;
    let (_c, mut worker) = consumer_on(&conn, "retry", "w", 0, FieldTable::default()).await;
    let first = next_delivery(&mut worker).await;
    assert!(first.properties.headers().is_none());
    first
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    for count in 1..=3 {
        let d = next_delivery(&mut worker).await;
        assert_eq!(body(&d), "job");
        assert_eq!(d.routing_key.as_str(), "retry");
        let x_death = deaths(&d);
        assert_eq!(
            x_death.len(),
            1,
            "one entry per queue and reason: {x_death:?}"
        );
        assert_death(&x_death[0], count, "rejected", "retry", "", &["retry"]);
        assert_eq!(header(&d, "x-first-death-queue").as_deref(), Some("retry"));
        if count < 3 {
            d.reject(BasicRejectOptions { requeue: false })
                .await
                .expect("reject");
        } else {
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    assert_no_delivery(&mut worker).await;
}

#[tokio::test]
async fn first_and_last_death_headers_follow_a_message_through_two_queues() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "end", FieldTable::default()).await;
    declare(&ch, "second", table(&dead_letter_to("end"))).await;
    declare(
        &ch,
        "first",
        with(dead_letter_to("second"), &[("x-message-ttl", int(30))]),
    )
    .await;
    send(&ch, "first", "traveller", BasicProperties::default()).await;
    // Expired in "first", then rejected in "second".
    let (_c, mut second) = consumer_on(&conn, "second", "s", 0, FieldTable::default()).await;
    let d = next_delivery(&mut second).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let mut end = watch(&conn, "end").await;
    let d = next_delivery(&mut end).await;
    assert_eq!(body(&d), "traveller");
    let x_death = deaths(&d);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    assert_death(&x_death[0], 1, "rejected", "second", "", &["second"]);
    assert_death(&x_death[1], 1, "expired", "first", "", &["first"]);
    for (h, v) in [
        ("x-first-death-reason", "expired"),
        ("x-first-death-queue", "first"),
        ("x-first-death-exchange", ""),
        ("x-last-death-reason", "rejected"),
        ("x-last-death-queue", "second"),
        ("x-last-death-exchange", ""),
    ] {
        assert_eq!(header(&d, h).as_deref(), Some(v), "header {h}");
    }
}

#[tokio::test]
async fn an_expiry_cycle_without_rejections_drops_the_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    exchange(&ch, "to-a", ExchangeKind::Fanout).await;
    exchange(&ch, "to-b", ExchangeKind::Fanout).await;
    let ttl_to = |x: &str| {
        table(&[
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", longstr(x)),
        ])
    };
    declare(&ch, "cycle-a", ttl_to("to-b")).await;
    declare(&ch, "cycle-b", ttl_to("to-a")).await;
    bind(&ch, "cycle-a", "to-a", "").await;
    bind(&ch, "cycle-b", "to-b", "").await;
    // A bystander sees every dead-lettering of the message.
    declare(&ch, "watch", FieldTable::default()).await;
    bind(&ch, "watch", "to-a", "").await;
    bind(&ch, "watch", "to-b", "").await;
    let mut watcher = watch(&conn, "watch").await;

    send(&ch, "cycle-a", "round", BasicProperties::default()).await;
    let into_b = next_delivery(&mut watcher).await;
    assert_eq!(into_b.exchange.as_str(), "to-b");
    assert_eq!(deaths(&into_b).len(), 1);
    let into_a = next_delivery(&mut watcher).await;
    assert_eq!(into_a.exchange.as_str(), "to-a");
    let x_death = deaths(&into_a);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    assert_death(&x_death[0], 1, "expired", "cycle-b", "to-b", &["cycle-a"]);
    assert_death(&x_death[1], 1, "expired", "cycle-a", "", &["cycle-a"]);
    // Back into cycle-a would close the cycle: the message is dropped there, and nothing
    // more dies (each round would take 100 ms).
    if let Ok(Some(more)) = tokio::time::timeout(
        Duration::from_millis(600),
        futures_lite::StreamExt::next(&mut watcher),
    )
    .await
    {
        panic!(
            "the message kept cycling: {:?}",
            more.map(|d| deaths(&d).len())
        );
    }
    assert_eq!(queue_counts(&ch, "cycle-a").await.0, 0);
    assert_eq!(queue_counts(&ch, "cycle-b").await.0, 0);
}

#[tokio::test]
async fn a_cycle_with_a_rejection_in_it_continues() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    // "ttl" expires into "review"; "review" rejects back into "ttl".
    declare(
        &ch,
        "ttl",
        with(dead_letter_to("review"), &[("x-message-ttl", int(30))]),
    )
    .await;
    declare(&ch, "review", table(&dead_letter_to("ttl"))).await;
    send(&ch, "ttl", "boomerang", BasicProperties::default()).await;
    let (_c, mut reviewer) = consumer_on(&conn, "review", "r", 0, FieldTable::default()).await;
    let d = next_delivery(&mut reviewer).await;
    assert_eq!(deaths(&d).len(), 1);
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let d = next_delivery(&mut reviewer).await;
    assert_eq!(body(&d), "boomerang");
    let x_death = deaths(&d);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    // The repeated (queue, reason) moves to the front with its count raised.
    assert_death(&x_death[0], 2, "expired", "ttl", "", &["ttl"]);
    assert_death(&x_death[1], 1, "rejected", "review", "", &["review"]);
    assert_eq!(
        header(&d, "x-first-death-reason").as_deref(),
        Some("expired")
    );
    assert_eq!(
        header(&d, "x-last-death-reason").as_deref(),
        Some("expired")
    );
    d.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut reviewer).await;
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_the_message_without_an_error() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let to_nowhere = table(&[("x-dead-letter-exchange", longstr("no-such-exchange"))]);
    declare(&ch, "orphan", to_nowhere.clone()).await;
    send(&ch, "orphan", "rejected", BasicProperties::default()).await;
    let (worker_ch, mut worker) = consumer_on(&conn, "orphan", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    assert_no_delivery(&mut worker).await;
    assert_eq!(queue_counts(&worker_ch, "orphan").await, (0, 1));

    let mut expiring_args = to_nowhere;
    expiring_args.insert("x-message-ttl".into(), int(30));
    declare(&ch, "orphan-ttl", expiring_args).await;
    send(&ch, "orphan-ttl", "expired", BasicProperties::default()).await;
    within("the message to expire", async {
        while queue_counts(&ch, "orphan-ttl").await.0 > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(conn.status().connected());
    assert!(worker_ch.status().connected() && ch.status().connected());
    send(&ch, "orphan", "still fine", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut worker).await), "still fine");
}

// ---------------------------------------------------------------------------------------------
// length limits

#[tokio::test]
async fn x_max_length_drops_the_oldest_and_dead_letters_it_as_maxlen() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "bounded",
        with(dead_letter_to("dead"), &[("x-max-length", int(2))]),
    )
    .await;
    for b in ["m0", "m1", "m2", "m3"] {
        send(&ch, "bounded", b, BasicProperties::default()).await;
    }
    for expected in ["m0", "m1"] {
        let d = next_delivery(&mut dead).await;
        assert_eq!(body(&d), expected);
        assert_death(&deaths(&d)[0], 1, "maxlen", "bounded", "", &["bounded"]);
        assert_eq!(
            header(&d, "x-first-death-reason").as_deref(),
            Some("maxlen")
        );
    }
    assert_eq!(queue_counts(&ch, "bounded").await.0, 2);
    let (_c, mut consumer) = consumer_on(&conn, "bounded", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 2).await, ["m2", "m3"]);
}

#[tokio::test]
async fn x_max_length_bytes_counts_body_bytes() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "bytes",
        with(dead_letter_to("dead"), &[("x-max-length-bytes", int(10))]),
    )
    .await;
    for b in ["aaaa", "bbbb"] {
        send(&ch, "bytes", b, BasicProperties::default()).await;
    }
    assert_eq!(queue_counts(&ch, "bytes").await.0, 2, "8 bytes fit in 10");
    send(&ch, "bytes", "cccc", BasicProperties::default()).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "aaaa");
    assert_death(&deaths(&d)[0], 1, "maxlen", "bytes", "", &["bytes"]);
    // One large message pushes out everything before it.
    send(&ch, "bytes", "0123456789", BasicProperties::default()).await;
    assert_eq!(bodies(&mut dead, 2).await, ["bbbb", "cccc"]);
    assert_eq!(
        get(&ch, "bytes")
            .await
            .map(|m| body(&m.delivery))
            .as_deref(),
        Some("0123456789")
    );
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn reject_publish_nacks_the_publisher_and_keeps_the_old_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "full",
        with(
            dead_letter_to("dead"),
            &[
                ("x-max-length", int(2)),
                ("x-overflow", longstr("reject-publish")),
            ],
        ),
    )
    .await;
    send(&ch, "full", "m0", BasicProperties::default()).await;
    send(&ch, "full", "m1", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "full", "m2", BasicProperties::default()).await;
    assert!(
        matches!(refused, Confirmation::Nack(_)),
        "a publish to a full queue is nacked, got {refused:?}"
    );
    assert_no_delivery(&mut dead).await;
    assert_eq!(queue_counts(&ch, "full").await.0, 2);
    assert_eq!(
        get(&ch, "full").await.map(|m| body(&m.delivery)).as_deref(),
        Some("m0")
    );
    send(&ch, "full", "m3", BasicProperties::default()).await;
    let (_c, mut consumer) = consumer_on(&conn, "full", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 2).await, ["m1", "m3"]);
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters_the_refused_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "full",
        with(
            dead_letter_to("dead"),
            &[
                ("x-max-length", int(1)),
                ("x-overflow", longstr("reject-publish-dlx")),
            ],
        ),
    )
    .await;
    send(&ch, "full", "kept", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "full", "refused", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "got {refused:?}");
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "refused");
    assert_death(&deaths(&d)[0], 1, "maxlen", "full", "", &["full"]);
    assert_eq!(
        get(&ch, "full").await.map(|m| body(&m.delivery)).as_deref(),
        Some("kept")
    );
}

#[tokio::test]
async fn length_limits_count_only_ready_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(
        &ch,
        "one",
        table(&[
            ("x-max-length", int(1)),
            ("x-overflow", longstr("reject-publish")),
        ]),
    )
    .await;
    send(&ch, "one", "m0", BasicProperties::default()).await;
    let (_c, mut consumer) = consumer_on(&conn, "one", "c", 1, FieldTable::default()).await;
    let unacked = next_delivery(&mut consumer).await;
    // m0 is unacked, not ready: there is room for m1.
    send(&ch, "one", "m1", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "one", "m2", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "got {refused:?}");
    unacked.ack(BasicAckOptions::default()).await.expect("ack");
    assert_eq!(body(&next_delivery(&mut consumer).await), "m1");
}

// ---------------------------------------------------------------------------------------------
// priority queues

#[tokio::test]
async fn a_priority_queue_delivers_higher_priorities_first_and_fifo_within_one() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(10))])).await;
    let messages = [
        ("none-1", None),
        ("five-1", Some(5)),
        ("one", Some(1)),
        ("ten-1", Some(10)),
        ("five-2", Some(5)),
        ("above-max", Some(200)), // treated as 10, after ten-1
        ("zero", Some(0)),        // the same as none
        ("ten-2", Some(10)),
        ("none-2", None),
    ];
    for (b, p) in messages {
        let props = p.map_or_else(BasicProperties::default, prioritised);
        send(&ch, "prio", b, props).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "prio", "c", 0, FieldTable::default()).await;
    assert_eq!(
        bodies(&mut consumer, messages.len()).await,
        [
            "ten-1",
            "above-max",
            "ten-2",
            "five-1",
            "five-2",
            "one",
            "none-1",
            "zero",
            "none-2"
        ]
    );
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn a_queue_without_x_max_priority_ignores_message_priorities() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "plain", FieldTable::default()).await;
    for (b, p) in [("low", 0), ("high", 9), ("mid", 5)] {
        send(&ch, "plain", b, prioritised(p)).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "plain", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 3).await, ["low", "high", "mid"]);
}

/// 64 messages over priorities 0–3, in an order that interleaves them; what a priority queue
/// must hand out: by priority, then in publish order.
fn interleaved_priorities() -> (Vec<(String, u8)>, Vec<String>) {
    let published: Vec<(String, u8)> = (0..64u8)
        .map(|i| (format!("p{}-{i:02}", (i * 3) % 4), (i * 3) % 4))
        .collect();
    let mut expected = published.clone();
    expected.sort_by_key(|(_, p)| std::cmp::Reverse(*p)); // stable: publish order within one
    (published, expected.into_iter().map(|(b, _)| b).collect())
}

#[tokio::test]
async fn priority_order_holds_for_a_consumer_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(3))])).await;
    let (published, expected) = interleaved_priorities();
    for (b, p) in &published {
        send(&ch, "prio", b, prioritised(*p)).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "prio", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, expected.len()).await, expected);
}

#[tokio::test]
async fn priority_order_holds_for_basic_get_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (_conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(3))])).await;
    let (published, expected) = interleaved_priorities();
    for (b, p) in &published {
        send(&ch, "prio", b, prioritised(*p)).await;
    }
    let mut got = Vec::new();
    while let Some(m) = get(&ch, "prio").await {
        got.push(body(&m.delivery));
    }
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// consumer priorities

fn consumer_priority(p: i64) -> FieldTable {
    table(&[("x-priority", int(p))])
}

#[tokio::test]
async fn a_higher_priority_consumer_gets_everything_while_it_has_credit() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    // The low-priority consumer comes first: priority, not order, decides.
    let (_l, mut low) = consumer_on(&conn, "work", "low", 10, FieldTable::default()).await;
    let (_h, mut high) = consumer_on(&conn, "work", "high", 3, consumer_priority(10)).await;

    for b in ["h0", "h1", "h2"] {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    let first = next_delivery(&mut high).await;
    assert_eq!(body(&first), "h0");
    assert_eq!(bodies(&mut high, 2).await, ["h1", "h2"]);
    assert_no_delivery(&mut low).await;

    // The high-priority consumer is blocked (prefetch 3 reached): the low one gets the rest.
    for b in ["l0", "l1"] {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut low, 2).await, ["l0", "l1"]);
    assert_no_delivery(&mut high).await;

    // Credit back: the high-priority consumer is served first again.
    first.ack(BasicAckOptions::default()).await.expect("ack");
    send(&ch, "work", "h3", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut high).await), "h3");
    assert_no_delivery(&mut low).await;
}

#[tokio::test]
async fn an_unlimited_high_priority_consumer_starves_the_others() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    let (_l, mut low) = consumer_on(&conn, "work", "low", 0, consumer_priority(-5)).await;
    let (_m, mut mid) = consumer_on(&conn, "work", "mid", 0, FieldTable::default()).await;
    let (_h, mut high) = consumer_on(&conn, "work", "high", 0, consumer_priority(1)).await;
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for b in &expected {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut high, 10).await, expected);
    assert_no_delivery(&mut mid).await;
    assert_no_delivery(&mut low).await;
}

#[tokio::test]
async fn consumers_of_equal_priority_take_turns() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    let (_a, mut a) = consumer_on(&conn, "work", "a", 0, consumer_priority(5)).await;
    let (_l, mut low) = consumer_on(&conn, "work", "low", 0, FieldTable::default()).await;
    let (_b, mut b) = consumer_on(&conn, "work", "b", 0, consumer_priority(5)).await;
    for i in 0..6 {
        send(&ch, "work", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut a, 3).await, ["m0", "m2", "m4"]);
    assert_eq!(bodies(&mut b, 3).await, ["m1", "m3", "m5"]);
    assert_no_delivery(&mut low).await;
}

// ---------------------------------------------------------------------------------------------
// single active consumer

fn single_active() -> FieldTable {
    table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])
}

#[tokio::test]
async fn only_the_first_consumer_of_a_single_active_consumer_queue_gets_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 0, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    assert_eq!(queue_counts(&ch, "sac").await.1, 2, "both are registered");
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    let got = bodies(&mut first, 3).await;
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert_no_delivery(&mut second).await;

    first_ch
        .basic_cancel("first".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    for i in 3..5 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut second, 2).await, ["m3", "m4"]);
}

#[tokio::test]
async fn when_the_active_consumer_cancels_the_next_one_gets_the_remaining_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..4 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    let held = next_delivery(&mut first).await;
    assert_eq!(body(&held), "m0");
    assert_no_delivery(&mut second).await;
    assert_eq!(
        queue_counts(&ch, "sac").await.0,
        3,
        "waiting for the active one"
    );

    first_ch
        .basic_cancel("first".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    assert_eq!(bodies(&mut second, 3).await, ["m1", "m2", "m3"]);
    // The cancelled consumer's delivery is still its channel's to settle.
    held.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut second).await;
    assert_eq!(queue_counts(&ch, "sac").await, (0, 1));
}

#[tokio::test]
async fn when_the_active_consumers_channel_closes_the_next_one_gets_everything_in_order() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    assert_no_delivery(&mut second).await;

    first_ch
        .close(200, "bye".into())
        .await
        .expect("channel.close");
    let m0 = next_delivery(&mut second).await;
    assert_eq!(body(&m0), "m0", "the requeued message is back at the head");
    assert!(m0.redelivered);
    assert_eq!(bodies(&mut second, 2).await, ["m1", "m2"]);
}

#[tokio::test]
async fn when_the_active_consumers_channel_closes_the_next_one_gets_every_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    assert_no_delivery(&mut second).await;
    first_ch
        .close(200, "bye".into())
        .await
        .expect("channel.close");
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut second).await;
        assert_eq!(
            d.redelivered,
            body(&d) == "m0",
            "only m0 was delivered before"
        );
        got.push(body(&d));
    }
    got.sort();
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert_no_delivery(&mut second).await;
}

#[tokio::test]
async fn a_later_higher_priority_consumer_does_not_take_over_a_single_active_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (_f, mut first) = consumer_on(&conn, "sac", "first", 0, FieldTable::default()).await;
    send(&ch, "sac", "m0", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    let (_p, mut eager) = consumer_on(&conn, "sac", "eager", 0, consumer_priority(10)).await;
    for b in ["m1", "m2"] {
        send(&ch, "sac", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut first, 2).await, ["m1", "m2"]);
    assert_no_delivery(&mut eager).await;
}

// ---------------------------------------------------------------------------------------------
// durability

/// Stops a broker gracefully and starts another on the same directory.
async fn restart(broker: TestBroker, dir: &std::path::Path) -> TestBroker {
    within("a graceful stop", broker.server.stop())
        .await
        .expect("the broker stops cleanly");
    TestBroker::start_in_with(dir, |_| {}).await
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test]
async fn a_durable_ttl_queue_keeps_unexpired_persistent_messages_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "ttl", table(&[("x-message-ttl", int(5_000))])).await;
    let published = Instant::now();
    send(
        &ch,
        "ttl",
        "stale",
        persistent().with_expiration("100".into()),
    )
    .await;
    send(&ch, "ttl", "fresh", persistent()).await;
    drop((conn, ch));
    sleep_until(published + Duration::from_millis(150)).await;
    let broker = restart(broker, dir.path()).await;
    let (conn, _ch) = confirming(&broker).await;
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "c", 0, FieldTable::default()).await;
    let d = next_delivery(&mut consumer).await;
    assert!(
        published.elapsed() < Duration::from_millis(5_000),
        "the restart took too long to tell"
    );
    assert_eq!(body(&d), "fresh", "the expired message is gone");
    assert!(!d.redelivered);
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn persistent_messages_still_expire_on_time_after_a_restart() {
    const TTL: Duration = Duration::from_millis(1_500);
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "dead", FieldTable::default()).await;
    declare_durable(
        &ch,
        "ttl",
        with(
            dead_letter_to("dead"),
            &[("x-message-ttl", int(TTL.as_millis() as i64))],
        ),
    )
    .await;
    let published = Instant::now();
    send(&ch, "ttl", "m", persistent()).await;
    drop((conn, ch));
    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(
        published.elapsed() < TTL - Duration::from_millis(300),
        "the restart took too long to tell"
    );
    assert_eq!(queue_counts(&ch, "ttl").await, (1, 0), "still there");
    let mut dead = watch(&conn, "dead").await;
    let d = next_delivery(&mut dead).await;
    let at = published.elapsed();
    assert_eq!(body(&d), "m");
    assert_death(&deaths(&d)[0], 1, "expired", "ttl", "", &["ttl"]);
    assert!(at >= TTL, "expired early, after {at:?}");
    assert!(
        at < TTL + Duration::from_secs(2),
        "expired late, after {at:?}"
    );
    assert_eq!(queue_counts(&ch, "ttl").await.0, 0);
}

#[tokio::test]
async fn a_durable_queue_with_x_expires_still_expires_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "fleeting", table(&[("x-expires", int(300))])).await;
    drop((conn, ch));
    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    await_gone(&ch, "fleeting").await;
    assert_no_queue(&conn, "fleeting").await;
}
