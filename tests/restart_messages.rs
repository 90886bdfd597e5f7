//! What a broker restarted gracefully on the same data directory still holds of messages:
//! persistent messages in durable queues, in order, unacked ones marked redelivered.

mod common;

use common::durable::*;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, ExchangeKind};

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
