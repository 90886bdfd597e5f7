//! The built-in `x-delayed-message` exchange: messages with an `x-delay` header wait, then
//! route as the exchange's `x-delayed-type` would, across restarts for persistent ones.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, Consumer, Event, ExchangeKind};
use std::time::{Duration, Instant};

async fn delayed_exchange(ch: &Channel, name: &str, durable: bool) {
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString(LongString::from(b"direct".to_vec())),
    );
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        options,
        args,
    )
    .await
    .expect("declare delayed exchange");
}

async fn bound_queue(ch: &Channel, queue: &str, exchange: &str, durable: bool) {
    bound_queue_with_key(ch, queue, exchange, "k", durable).await;
}

async fn bound_queue_with_key(ch: &Channel, queue: &str, exchange: &str, key: &str, durable: bool) {
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

fn delayed_by(ms: i64, persistent: bool) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    let props = BasicProperties::default().with_headers(headers);
    if persistent {
        props.with_delivery_mode(2)
    } else {
        props
    }
}

async fn publish_confirmed(ch: &Channel, exchange: &str, body: &str, props: BasicProperties) {
    let c = ch
        .basic_publish(
            exchange.into(),
            "k".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .unwrap();
    assert!(within("confirm", c).await.unwrap().is_ack());
}

#[tokio::test]
async fn a_delayed_message_waits_for_its_delay_then_routes() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    delayed_exchange(&ch, "later", false).await;
    bound_queue(&ch, "q", "later", false).await;
    let start = Instant::now();
    publish_confirmed(&ch, "later", "slow", delayed_by(400, false)).await;
    publish_confirmed(&ch, "later", "fast", delayed_by(100, false)).await;
    publish_confirmed(&ch, "later", "now", BasicProperties::default()).await;
    assert_eq!(
        queue_counts(&ch, "q").await.0,
        1,
        "only the undelayed message is routed at once"
    );
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let order: Vec<(String, Duration)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let d = next_delivery(&mut consumer).await;
            v.push((
                String::from_utf8_lossy(&d.data).into_owned(),
                start.elapsed(),
            ));
        }
        v
    };
    assert_eq!(
        order.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
        ["now", "fast", "slow"]
    );
    assert!(
        order[1].1 >= Duration::from_millis(100),
        "fast arrived after {:?}",
        order[1].1
    );
    assert!(
        order[2].1 >= Duration::from_millis(400),
        "slow arrived after {:?}",
        order[2].1
    );
}

#[tokio::test]
async fn a_delayed_exchange_needs_a_valid_delayed_type() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let err = ch
        .exchange_declare(
            "bad".into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
}

#[tokio::test]
async fn a_persistent_delayed_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (conn, ch) = broker.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        delayed_exchange(&ch, "later", true).await;
        bound_queue(&ch, "kept", "later", true).await;
        publish_confirmed(&ch, "later", "waited", delayed_by(800, true)).await;
        assert_eq!(queue_counts(&ch, "kept").await.0, 0);
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    let mut consumer = ch
        .basic_consume(
            "kept".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"waited");
    d.ack(BasicAckOptions::default()).await.unwrap();
}

/// A held message's record names its vhost: after a restart it is released in the vhost it was
/// published to, not in "/".
#[tokio::test]
async fn a_persistent_delayed_message_comes_back_in_its_own_vhost() {
    use warren::broker::metadata::permissions::PermissionSpec;
    use warren::broker::metadata::VhostRecord;
    let dir = tempfile::tempdir().unwrap();
    let shop = |broker: &TestBroker| {
        let uri = format!("amqp://guest:guest@{}/shop", broker.addr());
        async move {
            let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .expect("connects to shop");
            let ch = conn.create_channel().await.unwrap();
            (conn, ch)
        }
    };
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let b = &broker.server.broker;
        b.add_vhost(VhostRecord::named("shop"), "guest");
        b.metadata
            .set_permissions(
                PermissionSpec {
                    user: "guest".into(),
                    vhost: "shop".into(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                },
                "guest",
            )
            .unwrap();
        let (conn, ch) = shop(&broker).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        delayed_exchange(&ch, "later", true).await;
        bound_queue(&ch, "kept", "later", true).await;
        publish_confirmed(&ch, "later", "in the shop", delayed_by(800, true)).await;
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = shop(&broker).await;
    let mut consumer = ch
        .basic_consume(
            "kept".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"in the shop");
}

// ---------------------------------------------------------------------------------------------
// sender-selected distribution: CC and BCC

fn routes(keys: &[&str]) -> AMQPValue {
    let values: Vec<AMQPValue> = keys
        .iter()
        .map(|k| AMQPValue::LongString(LongString::from(k.as_bytes().to_vec())))
        .collect();
    AMQPValue::FieldArray(FieldArray::from(values))
}

/// A message delayed by `ms`, copied to the `cc` and `bcc` keys, with one more header that
/// must reach consumers untouched.
fn delayed_with_copies(ms: i64, cc: &[&str], bcc: &[&str], persistent: bool) -> BasicProperties {
    let props = delayed_by(ms, persistent);
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert("CC".into(), routes(cc));
    headers.insert("BCC".into(), routes(bcc));
    headers.insert(
        "kept".into(),
        AMQPValue::LongString(LongString::from(b"yes".to_vec())),
    );
    props.with_headers(headers)
}

async fn consume(ch: &Channel, queue: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        format!("{queue}-consumer").as_str().into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

/// Asserts what a consumer sees of a released copy: the body, the published routing key, CC
/// and the other headers as published, and no BCC.
#[track_caller]
fn assert_released_copy(d: &lapin::message::Delivery, body: &str, cc: &[&str], queue: &str) {
    assert_eq!(d.data, body.as_bytes(), "{queue}");
    assert_eq!(d.routing_key.as_str(), "k", "{queue}: the published key");
    let headers = d.properties.headers().clone().unwrap_or_default();
    let headers = headers.inner();
    assert_eq!(headers.get("CC"), Some(&routes(cc)), "{queue}: CC is kept");
    assert!(!headers.contains_key("BCC"), "{queue}: BCC was delivered");
    assert_eq!(
        headers.get("kept"),
        Some(&AMQPValue::LongString(LongString::from(b"yes".to_vec()))),
        "{queue}"
    );
}

#[tokio::test]
async fn a_delayed_message_is_routed_by_its_cc_and_bcc_when_released_without_its_bcc() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    delayed_exchange(&ch, "later", false).await;
    for (queue, key) in [
        ("to", "k"),
        ("cc", "copy"),
        ("bcc", "secret"),
        ("other", "x"),
    ] {
        bound_queue_with_key(&ch, queue, "later", key, false).await;
    }
    let mut to = consume(&ch, "to").await;
    let mut cc = consume(&ch, "cc").await;
    let mut bcc = consume(&ch, "bcc").await;
    let mut other = consume(&ch, "other").await;

    // Keys named twice, or also the routing key, still give each queue one copy.
    let (cc_keys, bcc_keys) = (["copy", "k"], ["secret", "copy"]);
    let start = Instant::now();
    let props = delayed_with_copies(50, &cc_keys, &bcc_keys, false);
    publish_confirmed(&ch, "later", "copied", props).await;
    for (queue, consumer) in [("to", &mut to), ("cc", &mut cc), ("bcc", &mut bcc)] {
        let d = next_delivery(consumer).await;
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "{queue} got its copy after {:?}",
            start.elapsed()
        );
        assert_released_copy(&d, "copied", &cc_keys, queue);
    }
    tokio::join!(
        assert_no_delivery(&mut to),
        assert_no_delivery(&mut cc),
        assert_no_delivery(&mut bcc),
        assert_no_delivery(&mut other),
    );
}

#[tokio::test]
async fn a_persistent_delayed_message_keeps_its_cc_and_bcc_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queues = [
        ("kept-to", "k"),
        ("kept-cc", "copy"),
        ("kept-bcc", "secret"),
    ];
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (conn, ch) = broker.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        delayed_exchange(&ch, "later", true).await;
        for (queue, key) in queues {
            bound_queue_with_key(&ch, queue, "later", key, true).await;
        }
        // Long enough to be still held when the broker stops.
        let props = delayed_with_copies(500, &["copy"], &["secret"], true);
        publish_confirmed(&ch, "later", "waited", props).await;
        for (queue, _) in queues {
            assert_eq!(
                queue_counts(&ch, queue).await.0,
                0,
                "{queue} before release"
            );
        }
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    for (queue, _) in queues {
        let mut consumer = consume(&ch, queue).await;
        let d = next_delivery(&mut consumer).await;
        assert_released_copy(&d, "waited", &["copy"], queue);
        assert!(
            d.properties.delivery_mode() == &Some(2),
            "{queue}: still persistent"
        );
    }
}

#[tokio::test]
async fn a_delayed_message_with_a_cc_that_is_not_an_array_is_refused_at_publish() {
    let broker = TestBroker::start().await;
    let conn: Connection = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    delayed_exchange(&ch, "later", false).await;
    bound_queue(&ch, "q", "later", false).await;
    let mut headers = delayed_by(20, false).headers().clone().unwrap_or_default();
    headers.insert(
        "CC".into(),
        AMQPValue::LongString(LongString::from(b"one".to_vec())),
    );
    // Listen before acting, so the close cannot be missed.
    let mut events = Box::pin(conn.events_listener());
    ch.basic_publish(
        "later".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"refused",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap();
    let err = within("the server's channel.close", async {
        loop {
            match events.next().await {
                Some(Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}")
    );
    // Nothing was held: the queue gets nothing once the delay has passed.
    let (_c, other) = broker.channel().await;
    assert_no_delivery(&mut consume(&other, "q").await).await;
}
