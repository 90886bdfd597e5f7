//! The basic class as a client sees it: publish, consume and get; content properties and
//! bodies delivered unchanged; consumers and prefetch.

mod common;

use common::flows::*;
use common::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::BasicProperties;
use std::collections::HashSet;

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
