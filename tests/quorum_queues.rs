//! Quorum queues on one node, as RabbitMQ 3.10 behaves (issue 20): declared only durable and
//! named, with their own argument rules; every message stored; returns counted in
//! `x-delivery-count` and sent to the back; `x-delivery-limit`; reject-publish that lets one
//! in and reopens at 80%; no global qos; no conditional deletes.

mod common;

use common::durable::*;
use common::provoke::{assert_reply, channel_error, Via};
use common::queues::watch;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};

const VHOST: &str = "in vhost '/'";

fn quorum() -> FieldTable {
    table(&[("x-queue-type", longstr("quorum"))])
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn with(mut args: FieldTable, pairs: &[(&str, AMQPValue)]) -> FieldTable {
    for (k, v) in pairs {
        args.insert((*k).into(), v.clone());
    }
    args
}

async fn declare(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<lapin::Queue> {
    within(
        "queue.declare",
        ch.queue_declare(name.into(), durable_queue(), args),
    )
    .await
}

/// The x-delivery-count header of a delivery, if it has one.
fn delivery_count(properties: &BasicProperties) -> Option<i64> {
    match properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-delivery-count")?
    {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("x-delivery-count is a long, not {other:?}"),
    }
}

/// Returns a delivery to its queue (basic.nack with requeue).
async fn requeue(delivery: &lapin::message::Delivery) {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .expect("basic.nack");
}

async fn get(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("basic.get")
    .unwrap_or_else(|| panic!("a message in {queue}"))
}

#[tokio::test]
async fn a_quorum_queue_is_declared_and_listed_as_one() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let q = declare(&ch, "qq", quorum()).await.expect("declared");
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    // Redeclared the same: fine. As classic, or without a type: 406.
    declare(&ch, "qq", quorum()).await.expect("redeclared");
    let (_, listed) = api::get(&broker, "/api/queues/%2F/qq").await;
    assert_eq!(listed["type"], "quorum");
    assert_eq!(listed["leader"], listed["node"]);
    assert_eq!(listed["members"], serde_json::json!([listed["node"]]));
}

#[tokio::test]
async fn declaring_a_quorum_queue_checks_rabbitmqs_rules() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let (_c, ch) = broker.channel().await;
    declare(&ch, "qq-type", quorum()).await.unwrap();
    let precondition = |text: String| format!("PRECONDITION_FAILED - {text}");
    let cases: Vec<(&str, FieldTable, String)> = vec![
        (
            "qq-type",
            table(&[("x-queue-type", longstr("classic"))]),
            precondition(format!(
                "inequivalent arg 'x-queue-type' for queue 'qq-type' {VHOST}: received 'classic' but current is 'quorum'"
            )),
        ),
        (
            "qq-type",
            FieldTable::default(),
            precondition(format!(
                "inequivalent arg 'x-queue-type' for queue 'qq-type' {VHOST}: received none but current is the value 'quorum' of type 'longstr'"
            )),
        ),
        (
            "qq-bad-type",
            table(&[("x-queue-type", longstr("Quorum"))]),
            precondition(format!(
                "invalid arg 'x-queue-type' for queue 'qq-bad-type' {VHOST}: \"unsupported queue type 'Quorum'\""
            )),
        ),
        (
            "qq-prio",
            with(quorum(), &[("x-max-priority", AMQPValue::LongInt(5))]),
            precondition(format!(
                "invalid arg 'x-max-priority' for queue 'qq-prio' {VHOST} of queue type rabbit_quorum_queue"
            )),
        ),
        (
            "qq-mode",
            with(quorum(), &[("x-queue-mode", longstr("lazy"))]),
            precondition(format!(
                "invalid arg 'x-queue-mode' for queue 'qq-mode' {VHOST} of queue type rabbit_quorum_queue"
            )),
        ),
        (
            "qq-dlx",
            with(quorum(), &[("x-dead-letter-strategy", longstr("sometimes"))]),
            precondition(format!(
                "invalid arg 'x-dead-letter-strategy' for queue 'qq-dlx' {VHOST}: invalid_dlx_strategy"
            )),
        ),
        (
            "qq-group",
            with(quorum(), &[("x-quorum-initial-group-size", AMQPValue::LongInt(0))]),
            precondition(format!(
                "invalid arg 'x-quorum-initial-group-size' for queue 'qq-group' {VHOST}: {{value_zero,0}}"
            )),
        ),
        (
            "qq-len",
            with(quorum(), &[("x-max-length", AMQPValue::LongInt(-1))]),
            precondition(format!(
                "invalid arg 'x-max-length' for queue 'qq-len' {VHOST}: {{value_negative,-1}}"
            )),
        ),
        (
            "qq-ovf",
            with(quorum(), &[("x-overflow", longstr("drop-tail"))]),
            precondition(format!(
                "invalid arg 'x-overflow' for queue 'qq-ovf' {VHOST}: invalid_overflow"
            )),
        ),
    ];
    for (name, args, text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            declare(&ch, name, args).await
        })
        .await;
    }
    // A server-named quorum queue.
    channel_error(
        &conn,
        Via::Reply,
        406,
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue",
        |ch| async move { declare(&ch, "", quorum()).await },
    )
    .await;
    // What a quorum queue accepts.
    let accepted = with(
        quorum(),
        &[
            ("x-delivery-limit", AMQPValue::LongInt(3)),
            ("x-dead-letter-strategy", longstr("at-least-once")),
            ("x-overflow", longstr("reject-publish")),
            ("x-max-length", AMQPValue::LongInt(10)),
            ("x-quorum-initial-group-size", AMQPValue::LongInt(3)),
            ("x-max-in-memory-length", AMQPValue::LongInt(10)),
            ("x-queue-leader-locator", longstr("balanced")),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ],
    );
    declare(&ch, "qq-all", accepted).await.expect("accepted");
}

#[tokio::test]
async fn returns_are_counted_and_go_to_the_back() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "qq-ret", quorum()).await.unwrap();
    let props = BasicProperties::default().with_headers(table(&[("mine", longstr("kept"))]));
    for body in ["0", "1", "2"] {
        publish_with_props(&ch, "qq-ret", body, props.clone()).await;
    }
    // basic.get says 0 on a first delivery.
    let first = get(&ch, "qq-ret").await;
    assert_eq!(first.delivery.data, b"0");
    assert_eq!(delivery_count(&first.delivery.properties), Some(0));
    assert!(!first.delivery.redelivered);
    requeue(&first.delivery).await;
    // The returned message went to the back: 1, 2, then 0 again, counted once.
    let order: Vec<_> = [
        get(&ch, "qq-ret").await,
        get(&ch, "qq-ret").await,
        get(&ch, "qq-ret").await,
    ]
    .into_iter()
    .collect();
    let bodies: Vec<_> = order.iter().map(|m| m.delivery.data.clone()).collect();
    assert_eq!(bodies, [b"1".to_vec(), b"2".to_vec(), b"0".to_vec()]);
    let again = &order[2].delivery;
    assert_eq!(delivery_count(&again.properties), Some(1));
    assert!(again.redelivered);
    let mine = again
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get("mine")
        .cloned();
    assert_eq!(mine, Some(longstr("kept")), "other headers stay");
}

#[tokio::test]
async fn a_consumers_first_delivery_has_no_count_and_a_return_adds_one() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "qq-cons", quorum()).await.unwrap();
    publish(&ch, "", "qq-cons", b"m").await;
    let mut consumer = ch
        .basic_consume(
            "qq-cons".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let first = next_delivery(&mut consumer).await;
    assert!(first.properties.headers().is_none(), "no headers added");
    first
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let second = next_delivery(&mut consumer).await;
    assert_eq!(delivery_count(&second.properties), Some(1));
    assert!(second.redelivered);
    requeue(&second).await;
    let third = next_delivery(&mut consumer).await;
    assert_eq!(delivery_count(&third.properties), Some(2));
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered_without_its_count() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "qq-dead").await;
    let args = with(
        quorum(),
        &[
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", longstr("")),
            ("x-dead-letter-routing-key", longstr("qq-dead")),
        ],
    );
    declare(&ch, "qq-limit", args).await.unwrap();
    publish(&ch, "", "qq-limit", b"m").await;
    // Delivered twice (the limit is 1 return), then gone.
    for _ in 0..2 {
        let m = get(&ch, "qq-limit").await;
        requeue(&m.delivery).await;
    }
    let dead = within("the dead letter", async {
        loop {
            let got = ch
                .basic_get("qq-dead".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if let Some(got) = got {
                return got;
            }
        }
    })
    .await;
    let headers = dead.delivery.properties.headers().clone().unwrap();
    assert!(headers.inner().get("x-delivery-count").is_none());
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("x-death: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("x-death entry");
    };
    assert_eq!(
        death.inner().get("reason"),
        Some(&longstr("delivery_limit"))
    );
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&longstr("delivery_limit"))
    );
    assert_eq!(queue_counts(&ch, "qq-limit").await.0, 0);
}

#[tokio::test]
async fn global_qos_and_conditional_deletes_are_540() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let (_c, ch) = broker.channel().await;
    declare(&ch, "qq-540", quorum()).await.unwrap();
    let text = "NOT_IMPLEMENTED - queue 'qq-540' in vhost '/' does not support global qos";
    let ch2 = conn.create_channel().await.unwrap();
    ch2.basic_qos(10, BasicQosOptions { global: true })
        .await
        .unwrap();
    let err = ch2
        .basic_consume(
            "qq-540".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("global qos on a quorum queue");
    assert_reply(&err, 540, text);

    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_delete(
            "qq-540".into(),
            QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("if-unused on a quorum queue");
    assert_reply(
        &err,
        540,
        "NOT_IMPLEMENTED - cannot delete queue 'qq-540' in vhost '/'. queue.delete operations with if-unused flag set are not supported by quorum queues",
    );
    let (_c, ch) = broker.channel().await;
    ch.queue_delete("qq-540".into(), QueueDeleteOptions::default())
        .await
        .expect("a plain delete");
}

#[tokio::test]
async fn reject_publish_lets_one_over_then_refuses_until_eighty_percent() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = confirming(&broker).await;
    let args = with(
        quorum(),
        &[
            ("x-max-length", AMQPValue::LongInt(5)),
            ("x-overflow", longstr("reject-publish")),
        ],
    );
    declare(&ch, "qq-full", args).await.unwrap();
    let mut outcomes = Vec::new();
    for i in 0..8 {
        let c = publish_confirmed(
            &ch,
            "",
            "qq-full",
            false,
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
        outcomes.push(matches!(c, Confirmation::Ack(_)));
    }
    assert_eq!(outcomes, [true, true, true, true, true, true, false, false]);
    assert_eq!(queue_counts(&ch, "qq-full").await.0, 6);
    // Down to 5 (not yet trunc(0.8 × 5) = 4): still refused. At 4: open again.
    let take = |n: usize| {
        let ch = ch.clone();
        async move {
            for _ in 0..n {
                ch.basic_get("qq-full".into(), BasicGetOptions { no_ack: true })
                    .await
                    .unwrap()
                    .expect("a message");
            }
        }
    };
    take(1).await;
    let c = publish_confirmed(&ch, "", "qq-full", false, b"x", BasicProperties::default()).await;
    assert!(matches!(c, Confirmation::Nack(_)), "{c:?}");
    take(1).await;
    let c = publish_confirmed(&ch, "", "qq-full", false, b"y", BasicProperties::default()).await;
    assert!(matches!(c, Confirmation::Ack(_)), "{c:?}");
}

#[tokio::test]
async fn transient_messages_in_a_quorum_queue_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    {
        let (_conn, ch) = confirming(&broker).await;
        declare(&ch, "qq-keep", quorum()).await.unwrap();
        let transient = BasicProperties::default().with_delivery_mode(1);
        publish_with(&ch, "qq-keep", "transient", transient).await;
        publish_with(&ch, "qq-keep", "persistent", persistent()).await;
        // A return is counted on disk too.
        let m = get(&ch, "qq-keep").await;
        requeue(&m.delivery).await;
        assert_eq!(queue_counts(&ch, "qq-keep").await.0, 2);
    }
    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    let a = get(&ch, "qq-keep").await;
    let b = get(&ch, "qq-keep").await;
    assert_eq!(a.delivery.data, b"persistent");
    assert_eq!(b.delivery.data, b"transient");
    assert_eq!(
        b.delivery.properties.delivery_mode(),
        &Some(1),
        "the mode is kept"
    );
    assert_eq!(delivery_count(&b.delivery.properties), Some(1));
}

async fn publish_with_props(ch: &Channel, queue: &str, body: &str, props: BasicProperties) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .expect("basic.publish");
}

#[tokio::test]
async fn a_policy_sets_the_delivery_limit_and_the_vhost_default_type_applies() {
    let broker = TestBroker::start().await;
    let status = api::put(
        &broker,
        "/api/policies/%2F/limited",
        serde_json::json!({"pattern": "^qq-pol", "definition": {"delivery-limit": 0}, "apply-to": "queues"}),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "qq-pol", quorum()).await.unwrap();
    publish(&ch, "", "qq-pol", b"once").await;
    let m = get(&ch, "qq-pol").await;
    requeue(&m.delivery).await;
    // A limit of 0: the first return drops it.
    assert_eq!(queue_counts(&ch, "qq-pol").await.0, 0);

    // A vhost whose default queue type is quorum: durable queues declared without a type are
    // quorum queues; exclusive ones stay classic.
    let status = api::put(
        &broker,
        "/api/vhosts/dqt",
        serde_json::json!({"default_queue_type": "quorum"}),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let status = api::put(
        &broker,
        "/api/permissions/dqt/guest",
        serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_c, ch) = channel_as(&broker, "guest", "guest", "dqt").await;
    declare(&ch, "by-default", FieldTable::default())
        .await
        .unwrap();
    declare(&ch, "by-default", FieldTable::default())
        .await
        .expect("redeclared the same way");
    ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("an exclusive server-named queue stays classic");
    let (_, q) = api::get(&broker, "/api/queues/dqt/by-default").await;
    assert_eq!(q["type"], "quorum");
    let (_, flags) = api::get(&broker, "/api/feature-flags").await;
    assert!(flags
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "quorum_queue" && f["state"] == "enabled"));
}

#[tokio::test]
async fn kill_9_keeps_every_confirmed_message_of_a_quorum_queue() {
    use common::process::BrokerProcess;
    use lapin::{Connection, ConnectionProperties};
    use std::collections::HashSet;

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = within(
        "a connection",
        Connection::connect(&broker.uri(), ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare(&ch, "qq-kill", quorum()).await.unwrap();
    // Transient messages, published in a window of 100 unconfirmed; the kill lands while
    // publishes are in flight.
    let mut confirmed = HashSet::new();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..3000u32 {
        let mode = if i % 2 == 0 { 1 } else { 2 };
        let confirm = ch
            .basic_publish(
                "".into(),
                "qq-kill".into(),
                BasicPublishOptions::default(),
                format!("{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .unwrap();
        pending.push_back((i, confirm));
        if pending.len() >= 100 {
            let (id, confirm) = pending.pop_front().unwrap();
            if matches!(confirm.await, Ok(Confirmation::Ack(_))) {
                confirmed.insert(id);
            }
        }
        if confirmed.len() >= 1500 {
            break;
        }
    }
    broker.kill();
    drop(pending);
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = within(
        "a connection",
        Connection::connect(&broker.uri(), ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut found = HashSet::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get("qq-kill".into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        let id: u32 = String::from_utf8_lossy(&m.delivery.data).parse().unwrap();
        found.insert(id);
    }
    let lost: Vec<_> = confirmed.difference(&found).collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(confirmed.len() >= 1500);
}

#[tokio::test]
async fn at_least_once_dead_lettering_keeps_the_message_until_a_target_takes_it() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let args = with(
        quorum(),
        &[
            ("x-dead-letter-exchange", longstr("later-dlx")),
            ("x-dead-letter-strategy", longstr("at-least-once")),
            ("x-overflow", longstr("reject-publish")),
        ],
    );
    declare(&ch, "qq-alo", args).await.unwrap();
    publish(&ch, "", "qq-alo", b"keep me").await;
    let m = get(&ch, "qq-alo").await;
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    // No dead-letter exchange yet: the message is held, not ready.
    assert_eq!(queue_counts(&ch, "qq-alo").await.0, 0);
    ch.exchange_declare(
        "later-dlx".into(),
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(&ch, "alo-target").await;
    ch.queue_bind(
        "alo-target".into(),
        "later-dlx".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // The router tries again (every second) and the target gets it.
    let mut consumer = watch(&conn, "alo-target").await;
    let dead = next_delivery(&mut consumer).await;
    assert_eq!(dead.data, b"keep me");
    let headers = dead.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&longstr("rejected"))
    );
}

#[tokio::test]
async fn definitions_keep_the_queue_type() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(
        &ch,
        "qq-def",
        with(quorum(), &[("x-delivery-limit", AMQPValue::LongInt(4))]),
    )
    .await
    .unwrap();
    let (_, defs) = api::get(&broker, "/api/definitions").await;
    let exported = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "qq-def")
        .cloned()
        .expect("exported");
    assert_eq!(exported["arguments"]["x-queue-type"], "quorum");
    ch.queue_delete("qq-def".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let (status, _) = api::post(&broker, "/api/definitions", defs).await;
    assert!(status.is_success(), "{status}");
    let (_, q) = api::get(&broker, "/api/queues/%2F/qq-def").await;
    assert_eq!(q["type"], "quorum");
    assert_eq!(q["arguments"]["x-delivery-limit"], 4);
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_with_reason_expired() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "qq-expired").await;
    let args = with(
        quorum(),
        &[
            ("x-message-ttl", AMQPValue::LongInt(0)),
            ("x-dead-letter-exchange", longstr("")),
            ("x-dead-letter-routing-key", longstr("qq-expired")),
        ],
    );
    declare(&ch, "qq-ttl", args).await.unwrap();
    let mut consumer = watch(&conn, "qq-expired").await;
    // A TTL of 0 with nobody consuming the quorum queue: expired at once.
    publish(&ch, "", "qq-ttl", b"queue ttl").await;
    let dead = next_delivery(&mut consumer).await;
    let headers = dead.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&longstr("expired"))
    );
    assert_eq!(queue_counts(&ch, "qq-ttl").await.0, 0);
}
