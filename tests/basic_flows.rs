//! The basic class as a client sees it: publish, consume and get; content properties and
//! bodies delivered unchanged; prefetch; acknowledgements, rejections and requeueing;
//! cancel and recover; publisher confirms; transactions.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use std::collections::HashSet;

async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("basic.get")
}

async fn publish_numbered(ch: &Channel, queue: &str, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        publish(ch, "", queue, i.to_string().as_bytes()).await;
    }
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

async fn qos(ch: &Channel, prefetch: u16, global: bool) {
    ch.basic_qos(prefetch, BasicQosOptions { global })
        .await
        .expect("basic.qos");
}

// ---------------------------------------------------------------------------------------------
// publish, consume, get

#[tokio::test]
async fn published_message_is_consumed_and_acked_away() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "", "q", b"hello").await;
    let mut consumer = consume(&ch, "q", "c1").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), "q");
    assert!(!d.redelivered);
    assert_eq!(d.delivery_tag, 1);
    d.ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();

    // Had the ack been lost, closing the channel would have requeued the message.
    let (_conn2, other) = broker.channel().await;
    assert!(
        get(&other, "q").await.is_none(),
        "the acked message is gone"
    );
    assert_eq!(queue_counts(&other, "q").await, (0, 0));
}

#[tokio::test]
async fn basic_get_returns_messages_in_order_with_the_remaining_count_then_get_empty() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    assert!(get(&ch, "q").await.is_none(), "get-empty on an empty queue");
    publish_numbered(&ch, "q", 1..=3).await;
    for (i, remaining) in [(1, 2), (2, 1), (3, 0)] {
        let m = get(&ch, "q").await.expect("get-ok");
        assert_eq!(body(&m.delivery), i.to_string());
        assert_eq!(
            m.message_count, remaining,
            "message_count after taking message {i}"
        );
        assert_eq!(m.delivery.delivery_tag, i as u64);
        assert_eq!(m.delivery.routing_key.as_str(), "q");
        assert!(!m.delivery.redelivered);
    }
    assert!(get(&ch, "q").await.is_none(), "get-empty once drained");
    // The three gets were with acks: they are unacked, not ready.
    assert_eq!(queue_counts(&ch, "q").await, (0, 0));
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn basic_get_with_no_ack_removes_the_message_at_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "", "q", b"x").await;
    let m = ch
        .basic_get("q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("get-ok");
    assert_eq!(m.delivery.data, b"x");
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert!(
        get(&other, "q").await.is_none(),
        "no-ack get is not requeued when the channel closes"
    );
}

// ---------------------------------------------------------------------------------------------
// properties and bodies

/// A headers table with every field type RabbitMQ knows, nested tables and arrays included.
fn every_field_type() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("name".into(), AMQPValue::LongString("inner".into()));
    inner.insert("n".into(), AMQPValue::LongInt(-3));
    let mut deeper = FieldTable::default();
    deeper.insert(
        "deepest".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(false)])),
    );
    inner.insert("deeper".into(), AMQPValue::FieldTable(deeper));

    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        AMQPValue::LongString("two".into()),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Boolean(true),
            AMQPValue::Void,
        ])),
        AMQPValue::FieldTable(inner.clone()),
        AMQPValue::Double(3.5),
        AMQPValue::Timestamp(42),
    ]);
    let long_string: Vec<u8> = "ünïcødé ✓ "
        .repeat(100)
        .into_bytes()
        .into_iter()
        .chain([0u8, 1, 2, 0xff])
        .collect();

    let mut t = FieldTable::default();
    let values = [
        ("bool-true", AMQPValue::Boolean(true)),
        ("bool-false", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-64_000_000_000)),
        ("i64-max", AMQPValue::LongLongInt(i64::MAX)),
        ("float", AMQPValue::Float(1.5)),
        ("double", AMQPValue::Double(-2.25e100)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 254, 255])),
        ),
        (
            "empty-bytes",
            AMQPValue::ByteArray(ByteArray::from(Vec::new())),
        ),
        ("void", AMQPValue::Void),
        (
            "long-string",
            AMQPValue::LongString(LongString::from(long_string)),
        ),
        ("empty-string", AMQPValue::LongString("".into())),
        ("table", AMQPValue::FieldTable(inner)),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
        ("array", AMQPValue::FieldArray(array)),
        ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
    ];
    for (k, v) in values {
        t.insert(k.into(), v);
    }
    t
}

fn all_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(every_field_type())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("60000".into())
        .with_message_id("msg-0001".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into())
}

#[tokio::test]
async fn all_fourteen_properties_and_every_header_field_type_arrive_unchanged() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let variants = [
        BasicProperties::default(),
        all_properties(),
        BasicProperties::default().with_headers(every_field_type()),
        BasicProperties::default()
            .with_priority(0)
            .with_timestamp(0),
        BasicProperties::default().with_cluster_id("only-the-last-flag".into()),
        BasicProperties::default()
            .with_content_type("".into())
            .with_delivery_mode(1),
    ];
    for props in &variants {
        ch.basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"body",
            props.clone(),
        )
        .await
        .unwrap();
    }
    let mut consumer = consume(&ch, "q", "c").await;
    for (i, props) in variants.iter().enumerate() {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(&d.properties, props, "variant {i} through basic.deliver");
        assert_eq!(d.data, b"body");
    }
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();

    // basic.get-ok carries the same content header.
    for props in &variants {
        ch.basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"body",
            props.clone(),
        )
        .await
        .unwrap();
    }
    for (i, props) in variants.iter().enumerate() {
        let m = ch
            .basic_get("q".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("get-ok");
        assert_eq!(
            &m.delivery.properties, props,
            "variant {i} through basic.get-ok"
        );
    }
}

#[tokio::test]
async fn publish_with_a_user_id_other_than_the_authenticated_user_is_refused_with_406() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let props = BasicProperties::default().with_user_id("mallory".into());
    let confirm = ch
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"x",
            props,
        )
        .await
        .unwrap();
    let err = within("the channel close", confirm)
        .await
        .expect_err("user_id must match the connection's user");
    assert_eq!(reply_code(&err), Some(406), "{err}");
    let (_conn2, other) = broker.channel().await;
    assert_eq!(
        queue_counts(&other, "q").await.0,
        0,
        "the message was not enqueued"
    );
}

/// A body of `len` bytes that differs at every offset a frame could split it.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

#[tokio::test]
async fn bodies_larger_than_frame_max_and_at_frame_boundaries_arrive_intact() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let frame_max = conn.configuration().frame_max() as usize;
    assert!(
        frame_max > 0 && frame_max < 300 * 1024,
        "frame_max {frame_max} is small enough to split the bodies"
    );
    // A body frame carries frame_max - 8 bytes (7 header bytes and the frame-end octet).
    let chunk = frame_max - 8;
    let sizes = [
        1024 * 1024,
        300 * 1024,
        chunk - 1,
        chunk,
        chunk + 1,
        2 * chunk,
        2 * chunk + 1,
        1,
    ];
    declare_queue(&ch, "big").await;
    for &len in &sizes {
        ch.basic_publish(
            "".into(),
            "big".into(),
            BasicPublishOptions::default(),
            &patterned(len),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let mut consumer = consume(&ch, "big", "c").await;
    for &len in &sizes {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data.len(), len);
        assert!(d.data == patterned(len), "body of {len} bytes differs");
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();

    ch.basic_publish(
        "".into(),
        "big".into(),
        BasicPublishOptions::default(),
        &patterned(sizes[0]),
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let m = get(&ch, "big").await.expect("get-ok");
    assert!(
        m.delivery.data == patterned(sizes[0]),
        "1 MiB body through basic.get-ok differs"
    );
}

#[tokio::test]
async fn zero_length_bodies_are_delivered_with_their_properties() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let props = BasicProperties::default()
        .with_message_id("empty".into())
        .with_headers(every_field_type());
    for _ in 0..2 {
        ch.basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"",
            props.clone(),
        )
        .await
        .unwrap();
    }
    publish(&ch, "", "q", b"after").await;
    let m = get(&ch, "q").await.expect("get-ok for an empty body");
    assert!(m.delivery.data.is_empty());
    assert_eq!(m.delivery.properties, props);
    let mut consumer = consume(&ch, "q", "c").await;
    let d = next_delivery(&mut consumer).await;
    assert!(d.data.is_empty());
    assert_eq!(d.properties, props);
    assert_eq!(
        body(&next_delivery(&mut consumer).await),
        "after",
        "the next message is framed correctly"
    );
}

// ---------------------------------------------------------------------------------------------
// consumers and prefetch

#[tokio::test]
async fn messages_alternate_between_two_consumers_of_one_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let (_c1, ch1) = broker.channel().await;
    let (_c2, ch2) = broker.channel().await;
    let mut a = consume(&ch1, "q", "a").await;
    let mut b = consume(&ch2, "q", "b").await;
    publish_numbered(&ch, "q", 1..=10).await;

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        got_a.push(body(&next_delivery(&mut a).await).parse::<u32>().unwrap());
        got_b.push(body(&next_delivery(&mut b).await).parse::<u32>().unwrap());
    }
    assert_no_delivery(&mut a).await;
    assert_no_delivery(&mut b).await;
    let parity_a: HashSet<u32> = got_a.iter().map(|n| n % 2).collect();
    let parity_b: HashSet<u32> = got_b.iter().map(|n| n % 2).collect();
    assert!(
        parity_a.len() == 1 && parity_b.len() == 1 && parity_a != parity_b,
        "strict round-robin: a got {got_a:?}, b got {got_b:?}"
    );
    assert!(
        got_a.windows(2).all(|w| w[0] < w[1]) && got_b.windows(2).all(|w| w[0] < w[1]),
        "each in order"
    );
}

#[tokio::test]
async fn prefetch_count_limits_unacked_deliveries_per_consumer() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=5).await;
    qos(&ch, 2, false).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    assert_eq!((body(&first).as_str(), body(&second).as_str()), ("1", "2"));
    assert_no_delivery(&mut consumer).await;
    assert_eq!(
        queue_counts(&ch, "q").await,
        (3, 1),
        "three messages still ready"
    );

    first.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(
        body(&next_delivery(&mut consumer).await),
        "3",
        "an ack frees one slot"
    );
    assert_no_delivery(&mut consumer).await;

    // A consumer started after a new basic.qos gets the new limit; the first keeps its own.
    qos(&ch, 1, false).await;
    let mut newer = consume(&ch, "q", "newer").await;
    assert_eq!(body(&next_delivery(&mut newer).await), "4");
    assert_no_delivery(&mut newer).await;
    assert_no_delivery(&mut consumer).await;
    second.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(
        body(&next_delivery(&mut consumer).await),
        "5",
        "the first consumer's limit is still 2"
    );
}

#[tokio::test]
async fn global_qos_shares_one_limit_among_the_channels_consumers() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "qa").await;
    declare_queue(&ch, "qb").await;
    publish_numbered(&ch, "qa", 1..=5).await;
    publish_numbered(&ch, "qb", 1..=5).await;
    qos(&ch, 3, true).await;
    let mut a = consume(&ch, "qa", "a").await;
    let mut b = consume(&ch, "qb", "b").await;

    // Three deliveries in all, however they are split between the consumers.
    let mut received: Vec<Delivery> = Vec::new();
    while received.len() < 3 {
        tokio::select! {
            d = next_delivery(&mut a) => received.push(d),
            d = next_delivery(&mut b) => received.push(d),
        }
    }
    assert_no_delivery(&mut a).await;
    assert_no_delivery(&mut b).await;
    let (ready_a, _) = queue_counts(&ch, "qa").await;
    let (ready_b, _) = queue_counts(&ch, "qb").await;
    assert_eq!(ready_a + ready_b, 7, "ten published, three delivered");

    received
        .remove(0)
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    tokio::select! {
        _ = next_delivery(&mut a) => {}
        _ = next_delivery(&mut b) => {}
    }
    assert_no_delivery(&mut a).await;
    assert_no_delivery(&mut b).await;
}

#[tokio::test]
async fn per_consumer_and_per_channel_prefetch_apply_together() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=10).await;
    qos(&ch, 1, false).await;
    qos(&ch, 3, true).await;
    let mut consumers = Vec::new();
    for tag in ["c1", "c2", "c3", "c4"] {
        consumers.push(consume(&ch, "q", tag).await);
    }
    let mut delivered = 0;
    for c in consumers.iter_mut().take(3) {
        next_delivery(c).await;
        delivered += 1;
    }
    for c in consumers.iter_mut() {
        assert_no_delivery(c).await;
    }
    assert_eq!(delivered, 3);
    assert_eq!(queue_counts(&ch, "q").await.0, 7);
}

// ---------------------------------------------------------------------------------------------
// rejections and requeueing

#[tokio::test]
async fn nack_with_requeue_puts_the_message_back_at_its_original_position_redelivered() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    assert_eq!(
        (body(&one.delivery).as_str(), body(&two.delivery).as_str()),
        ("1", "2")
    );

    ch.basic_nack(
        one.delivery.delivery_tag,
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    )
    .await
    .unwrap();
    let again = get(&ch, "q").await.expect("the requeued message");
    assert_eq!(body(&again.delivery), "1", "back at the head, before 3");
    assert!(again.delivery.redelivered);
    assert_eq!(again.message_count, 1);
    let three = get(&ch, "q").await.unwrap();
    assert_eq!(body(&three.delivery), "3");
    assert!(!three.delivery.redelivered);
    assert!(
        get(&ch, "q").await.is_none(),
        "2 is still unacked, not requeued"
    );
}

#[tokio::test]
async fn reject_with_requeue_puts_the_message_back_at_its_original_position_redelivered() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let _one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_reject(
        two.delivery.delivery_tag,
        BasicRejectOptions { requeue: true },
    )
    .await
    .unwrap();
    let again = get(&ch, "q").await.unwrap();
    assert_eq!(body(&again.delivery), "2");
    assert!(again.delivery.redelivered);
    assert_eq!(body(&get(&ch, "q").await.unwrap().delivery), "3");
}

#[tokio::test]
async fn nack_multiple_with_requeue_restores_all_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=4).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let mut tags = Vec::new();
    for _ in 1..=4 {
        tags.push(next_delivery(&mut consumer).await.delivery_tag);
    }
    // Acks 4 first, so the multiple nack of 3 covers 1, 2 and 3 only.
    ch.basic_ack(tags[3], BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_nack(
        tags[2],
        BasicNackOptions {
            requeue: true,
            multiple: true,
        },
    )
    .await
    .unwrap();
    for expected in ["1", "2", "3"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), expected);
        assert!(d.redelivered);
    }
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn reject_and_nack_without_requeue_drop_the_message() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_reject(
        one.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    ch.basic_nack(
        two.delivery.delivery_tag,
        BasicNackOptions {
            requeue: false,
            multiple: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(body(&get(&ch, "q").await.unwrap().delivery), "3");
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let three = get(&other, "q")
        .await
        .expect("3 was unacked and is requeued with its channel");
    assert_eq!(body(&three.delivery), "3");
    assert!(
        get(&other, "q").await.is_none(),
        "the rejected and nacked messages are gone"
    );
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order_for_another_consumer() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=5).await;
    qos(&ch, 3, false).await;
    let mut first = consume(&ch, "q", "first").await;
    for expected in ["1", "2", "3"] {
        assert_eq!(body(&next_delivery(&mut first).await), expected);
    }
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    assert_eq!(queue_counts(&other, "q").await, (5, 0));
    let mut second = consume(&other, "q", "second").await;
    for expected in 1..=5 {
        let d = next_delivery(&mut second).await;
        assert_eq!(body(&d), expected.to_string());
        assert_eq!(d.redelivered, expected <= 3, "message {expected}");
    }
    assert_no_delivery(&mut second).await;
}

#[tokio::test]
async fn closing_a_connection_requeues_its_unacked_messages_in_order_for_another_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=4).await;
    // Two channels hold deliveries: one through a consumer, one through basic.get.
    qos(&ch, 2, false).await;
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "1");
    assert_eq!(body(&next_delivery(&mut consumer).await), "2");
    let ch2 = conn.create_channel().await.unwrap();
    assert_eq!(body(&get(&ch2, "q").await.unwrap().delivery), "3");
    conn.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let mut after = consume(&other, "q", "after").await;
    for expected in 1..=4 {
        let d = next_delivery(&mut after).await;
        assert_eq!(body(&d), expected.to_string());
        assert_eq!(d.redelivered, expected <= 3, "message {expected}");
    }
    assert_no_delivery(&mut after).await;
}

// ---------------------------------------------------------------------------------------------
// cancel and recover

#[tokio::test]
async fn basic_cancel_stops_deliveries_and_drops_the_consumer_count() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(queue_counts(&ch, "q").await, (0, 1));
    publish(&ch, "", "q", b"before").await;
    let held = next_delivery(&mut consumer).await;

    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert_eq!(queue_counts(&ch, "q").await, (0, 0));
    publish(&ch, "", "q", b"after").await;
    match within("the consumer stream to end", consumer.next()).await {
        None => {}
        Some(d) => panic!("delivery after basic.cancel: {:?}", d.map(|d| body(&d))),
    }
    assert_eq!(
        queue_counts(&ch, "q").await,
        (1, 0),
        "the new message waits in the queue"
    );

    // A delivery made before the cancel stays unacked on the channel and can still be acked.
    held.ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert_eq!(body(&get(&other, "q").await.unwrap().delivery), "after");
    assert!(
        get(&other, "q").await.is_none(),
        "the acked delivery was not requeued"
    );
}

#[tokio::test]
async fn basic_recover_with_requeue_redelivers_unacked_messages() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let first = next_delivery(&mut consumer).await;
    for expected in ["2", "3"] {
        assert_eq!(body(&next_delivery(&mut consumer).await), expected);
    }
    first.ack(BasicAckOptions::default()).await.unwrap();

    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    for expected in ["2", "3"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), expected);
        assert!(d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_no_delivery(&mut consumer).await;
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert_eq!(queue_counts(&other, "q").await, (0, 0));
}

#[tokio::test]
async fn basic_recover_requeues_basic_get_deliveries() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=2).await;
    get(&ch, "q").await.unwrap();
    get(&ch, "q").await.unwrap();
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    for expected in ["1", "2"] {
        let m = get(&ch, "q").await.expect("requeued by basic.recover");
        assert_eq!(body(&m.delivery), expected);
        assert!(m.delivery.redelivered);
    }
}

// ---------------------------------------------------------------------------------------------
// acknowledgements

#[tokio::test]
async fn multiple_ack_acknowledges_every_delivery_up_to_the_tag() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=5).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let mut deliveries = Vec::new();
    for _ in 0..5 {
        deliveries.push(next_delivery(&mut consumer).await);
    }
    ch.basic_ack(
        deliveries[2].delivery_tag,
        BasicAckOptions { multiple: true },
    )
    .await
    .unwrap();
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    for expected in ["4", "5"] {
        let m = get(&other, "q")
            .await
            .expect("unacked deliveries were requeued");
        assert_eq!(body(&m.delivery), expected);
        assert!(m.delivery.redelivered);
    }
    assert!(
        get(&other, "q").await.is_none(),
        "1 to 3 were acked by the one multiple ack"
    );
}

#[tokio::test]
async fn multiple_ack_of_tag_zero_acknowledges_everything_outstanding() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    for _ in 0..3 {
        get(&ch, "q").await.unwrap();
    }
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert!(get(&other, "q").await.is_none());
}

// ---------------------------------------------------------------------------------------------
// publisher confirms and transactions

#[tokio::test]
async fn publisher_confirms_ack_every_one_of_a_thousand_publishes() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                &i.to_be_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for (i, confirm) in confirms.into_iter().enumerate() {
        assert_eq!(
            within("a confirm", confirm).await.unwrap(),
            Confirmation::Ack(None),
            "publish {i}"
        );
    }
    assert_eq!(queue_counts(&ch, "q").await, (1000, 0));
}

#[tokio::test]
async fn transactional_publishes_are_invisible_until_commit_and_discarded_on_rollback() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let (_conn2, observer) = broker.channel().await;
    declare_queue(&ch, "q").await;
    ch.tx_select().await.unwrap();
    publish(&ch, "", "q", b"1").await;
    publish(&ch, "", "q", b"2").await;
    assert_eq!(
        queue_counts(&observer, "q").await.0,
        0,
        "nothing before commit"
    );
    ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&observer, "q").await.0, 2, "both after commit");

    publish(&ch, "", "q", b"rolled-back").await;
    ch.tx_rollback().await.unwrap();
    publish(&ch, "", "q", b"3").await;
    ch.tx_commit().await.unwrap();
    let mut bodies = Vec::new();
    while let Some(m) = get(&observer, "q").await {
        bodies.push(body(&m.delivery));
    }
    assert_eq!(bodies, ["1", "2", "3"]);
}

#[tokio::test]
async fn acks_in_a_rolled_back_transaction_leave_the_messages_unacked() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=2).await;
    ch.tx_select().await.unwrap();
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_ack(one.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_ack(two.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();

    // Still unacked: acking 2 again is valid (an unknown tag would close the channel with 406).
    ch.basic_ack(two.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let m = get(&other, "q")
        .await
        .expect("1 was requeued when its channel closed");
    assert_eq!(body(&m.delivery), "1");
    assert!(m.delivery.redelivered);
    assert!(
        get(&other, "q").await.is_none(),
        "2 was acked by the committed transaction"
    );
}

#[tokio::test]
async fn acks_in_an_uncommitted_transaction_are_not_applied() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "", "q", b"x").await;
    ch.tx_select().await.unwrap();
    let m = get(&ch, "q").await.unwrap();
    ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    let again = get(&other, "q")
        .await
        .expect("the uncommitted ack did not remove it");
    assert!(again.delivery.redelivered);
}

// ---------------------------------------------------------------------------------------------
// the content header on the wire

/// The content header's bytes (class, weight, body size, property flags and every property,
/// headers holding each field type RabbitMQ knows) come back byte for byte in basic.get-ok and
/// basic.deliver. Built by hand so no client library normalises anything.
#[tokio::test]
async fn content_header_bytes_are_delivered_exactly_as_published() {
    let broker = TestBroker::start().await;
    let mut wire = within("the raw handshake", wire::Client::connect(broker.addr())).await;
    wire.call(
        1,
        50,
        10,
        &wire::args(|a| a.u16(0).shortstr("raw").u8(0).table(&[])),
        50,
        11,
    )
    .await;

    let body = b"raw body".to_vec();
    let header = wire::content_header(body.len() as u64, &wire::all_properties());
    let publish = wire::args(|a| a.u16(0).shortstr("").shortstr("raw").u8(0));

    wire.publish(1, &publish, &header, &body).await;
    wire.send_method(1, 60, 70, &wire::args(|a| a.u16(0).shortstr("raw").u8(1)))
        .await;
    wire.expect_method(1, 60, 71).await;
    assert_eq!(
        wire.expect_frame(2, 1).await,
        header,
        "content header of basic.get-ok"
    );
    assert_eq!(wire.expect_frame(3, 1).await, body);

    let no_ack = 0b10;
    let consume = wire::args(|a| {
        a.u16(0)
            .shortstr("raw")
            .shortstr("ctag")
            .u8(no_ack)
            .table(&[])
    });
    wire.call(1, 60, 20, &consume, 60, 21).await;
    wire.publish(1, &publish, &header, &body).await;
    wire.expect_method(1, 60, 60).await;
    assert_eq!(
        wire.expect_frame(2, 1).await,
        header,
        "content header of basic.deliver"
    );
    assert_eq!(wire.expect_frame(3, 1).await, body);
}

/// A minimal AMQP 0-9-1 client over a raw socket: frames and arguments encoded by hand.
mod wire {
    use super::within;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const FRAME_END: u8 = 0xCE;

    /// Method arguments and property lists, big-endian as on the wire.
    #[derive(Default)]
    pub struct Args(pub Vec<u8>);

    impl Args {
        pub fn u8(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        pub fn u16(&mut self, v: u16) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
            self.0.extend_from_slice(v);
            self
        }
        pub fn shortstr(&mut self, v: &str) -> &mut Self {
            self.u8(v.len() as u8).bytes(v.as_bytes())
        }
        pub fn longstr(&mut self, v: &[u8]) -> &mut Self {
            self.u32(v.len() as u32).bytes(v)
        }
        /// A field table from already encoded (name, type tag and value) entries.
        pub fn table(&mut self, entries: &[(&str, Vec<u8>)]) -> &mut Self {
            let mut t = Args::default();
            for (name, value) in entries {
                t.shortstr(name).bytes(value);
            }
            self.longstr(&t.0)
        }
    }

    pub fn args(f: impl FnOnce(&mut Args) -> &mut Args) -> Vec<u8> {
        let mut a = Args::default();
        f(&mut a);
        a.0
    }

    /// One field value: its type tag, then the value.
    fn field(tag: u8, f: impl FnOnce(&mut Args) -> &mut Args) -> Vec<u8> {
        let mut a = Args::default();
        a.u8(tag);
        f(&mut a);
        a.0
    }

    /// Headers with every field type RabbitMQ decodes, in no particular key order.
    fn headers() -> Vec<(&'static str, Vec<u8>)> {
        let nested = args(|a| {
            a.table(&[
                ("k", field(b'S', |a| a.longstr(b"v"))),
                ("n", field(b'I', |a| a.u32(7))),
            ])
        });
        let mut array = Args::default();
        for v in [
            field(b'I', |a| a.u32(1)),
            field(b'S', |a| a.longstr(b"two")),
            field(b't', |a| a.u8(1)),
            field(b'V', |a| a),
        ] {
            array.bytes(&v);
        }
        vec![
            ("z-last", field(b't', |a| a.u8(1))),
            ("bool", field(b't', |a| a.u8(0))),
            ("i8", field(b'b', |a| a.u8(0xF8))),
            ("u8", field(b'B', |a| a.u8(200))),
            ("i16", field(b's', |a| a.u16((-1600i16) as u16))),
            ("u16", field(b'u', |a| a.u16(60000))),
            ("i32", field(b'I', |a| a.u32((-320_000i32) as u32))),
            ("u32", field(b'i', |a| a.u32(4_000_000_000))),
            ("i64", field(b'l', |a| a.u64((-64_000_000_000i64) as u64))),
            ("float", field(b'f', |a| a.u32(1.5f32.to_bits()))),
            ("double", field(b'd', |a| a.u64((-2.25f64).to_bits()))),
            ("decimal", field(b'D', |a| a.u8(2).u32(12345))),
            (
                "string",
                field(b'S', |a| a.longstr("ünïcødé\0bytes".as_bytes())),
            ),
            ("timestamp", field(b'T', |a| a.u64(1_700_000_000))),
            ("table", field(b'F', |a| a.bytes(&nested))),
            ("array", field(b'A', |a| a.longstr(&array.0))),
            ("bytes", field(b'x', |a| a.longstr(&[0, 1, 254, 255]))),
            ("void", field(b'V', |a| a)),
        ]
    }

    /// Property flags with all fourteen bits set, then the fourteen properties in order.
    pub fn all_properties() -> Vec<u8> {
        args(|a| {
            a.u16(0xFFFC)
                .shortstr("application/octet-stream")
                .shortstr("identity")
                .table(&headers())
                .u8(2)
                .u8(9)
                .shortstr("corr")
                .shortstr("reply")
                .shortstr("1000000")
                .shortstr("message-id")
                .u64(1_234_567_890)
                .shortstr("type")
                .shortstr("guest")
                .shortstr("app")
                .shortstr("cluster")
        })
    }

    /// A content header frame's payload: class 60, weight 0, body size, properties.
    pub fn content_header(body_size: u64, properties: &[u8]) -> Vec<u8> {
        args(|a| a.u16(60).u16(0).u64(body_size).bytes(properties))
    }

    pub struct Client {
        stream: TcpStream,
    }

    impl Client {
        /// Opens a connection as guest on vhost "/" and channel 1.
        pub async fn connect(addr: SocketAddr) -> Self {
            let mut c = Self {
                stream: TcpStream::connect(addr).await.expect("tcp connect"),
            };
            c.stream.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
            c.expect_method(0, 10, 10).await;
            let start_ok = args(|a| {
                a.table(&[])
                    .shortstr("PLAIN")
                    .longstr(b"\0guest\0guest")
                    .shortstr("en_US")
            });
            c.send_method(0, 10, 11, &start_ok).await;
            let tune = c.expect_method(0, 10, 30).await;
            let (channel_max, frame_max) = (&tune[0..2], &tune[2..6]);
            c.send_method(
                0,
                10,
                31,
                &args(|a| a.bytes(channel_max).bytes(frame_max).u16(0)),
            )
            .await;
            c.call(
                0,
                10,
                40,
                &args(|a| a.shortstr("/").shortstr("").u8(0)),
                10,
                41,
            )
            .await;
            c.call(1, 20, 10, &args(|a| a.shortstr("")), 20, 11).await;
            c
        }

        pub async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
            let frame = args(|a| a.u8(kind).u16(channel).longstr(payload).u8(FRAME_END));
            self.stream.write_all(&frame).await.expect("write");
        }

        pub async fn send_method(
            &mut self,
            channel: u16,
            class: u16,
            method: u16,
            arguments: &[u8],
        ) {
            self.send_frame(
                1,
                channel,
                &args(|a| a.u16(class).u16(method).bytes(arguments)),
            )
            .await;
        }

        /// Sends a method and waits for its reply; returns the reply's arguments.
        pub async fn call(
            &mut self,
            channel: u16,
            class: u16,
            method: u16,
            arguments: &[u8],
            rc: u16,
            rm: u16,
        ) -> Vec<u8> {
            self.send_method(channel, class, method, arguments).await;
            self.expect_method(channel, rc, rm).await
        }

        pub async fn publish(
            &mut self,
            channel: u16,
            publish_args: &[u8],
            header: &[u8],
            body: &[u8],
        ) {
            self.send_method(channel, 60, 40, publish_args).await;
            self.send_frame(2, channel, header).await;
            self.send_frame(3, channel, body).await;
        }

        /// The next frame other than a heartbeat: (type, channel, payload).
        pub async fn read_frame(&mut self) -> (u8, u16, Vec<u8>) {
            loop {
                let mut head = [0u8; 7];
                within("a frame", self.stream.read_exact(&mut head))
                    .await
                    .expect("frame header");
                let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                let mut payload = vec![0u8; size + 1];
                within("a frame", self.stream.read_exact(&mut payload))
                    .await
                    .expect("frame payload");
                assert_eq!(payload.pop(), Some(FRAME_END), "frame end octet");
                if head[0] != 8 {
                    return (head[0], u16::from_be_bytes([head[1], head[2]]), payload);
                }
            }
        }

        pub async fn expect_frame(&mut self, kind: u8, channel: u16) -> Vec<u8> {
            let (k, ch, payload) = self.read_frame().await;
            assert_eq!(
                (k, ch),
                (kind, channel),
                "frame type and channel (payload {payload:?})"
            );
            payload
        }

        /// Reads a method frame and checks its class and method ids; returns its arguments.
        pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Vec<u8> {
            let payload = self.expect_frame(1, channel).await;
            let ids = (
                u16::from_be_bytes([payload[0], payload[1]]),
                u16::from_be_bytes([payload[2], payload[3]]),
            );
            assert_eq!(
                ids,
                (class, method),
                "method (arguments {:?})",
                String::from_utf8_lossy(&payload[4..])
            );
            payload[4..].to_vec()
        }
    }
}
