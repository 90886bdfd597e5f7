//! Lifecycles of queues, consumers, channels and connections as lapin and raw sockets see them:
//! exclusive and auto-delete queues, queue deletion cancelling consumers, server-named queues,
//! counts, delete conditions, heartbeats, graceful shutdown and channel limits.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{channel as amqp_channel, connection as amqp_connection, AMQPClass};
use common::raw::RawClient;
use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Event};
use std::time::{Duration, Instant};

const PRECONDITION_FAILED: u16 = 406;
const RESOURCE_LOCKED: u16 = 405;
const NOT_FOUND: u16 = 404;

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions) -> lapin::Queue {
    within(
        "queue.declare-ok",
        ch.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("declaring {name:?}: {e}"))
}

async fn passive(ch: &Channel, name: &str) -> lapin::Result<lapin::Queue> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "a reply to passive queue.declare",
        ch.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
}

/// The message and consumer counts of a queue, from a passive declare on a fresh channel.
async fn counts(conn: &Connection, name: &str) -> (u32, u32) {
    let ch = conn.create_channel().await.expect("channel opens");
    let q = passive(&ch, name)
        .await
        .unwrap_or_else(|e| panic!("queue {name:?} should exist: {e}"));
    let _ = ch.close(200, "done".into()).await;
    (q.message_count(), q.consumer_count())
}

/// Whether a queue exists, asked on a fresh channel (a 404 closes it).
async fn exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel opens");
    match passive(&ch, name).await {
        Ok(_) => true,
        Err(e) if reply_code(&e) == Some(NOT_FOUND) => false,
        Err(e) => panic!("passive declare of {name:?} failed with something other than 404: {e}"),
    }
}

async fn publish(ch: &Channel, routing_key: &str, body: &[u8]) {
    ch.basic_publish(
        "".into(),
        routing_key.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish");
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: lapin::Result<T>, code: u16, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected reply code {code}, but it succeeded with {v:?}"),
        Err(e) => assert_eq!(reply_code(&e), Some(code), "{what}: {e}"),
    }
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> lapin::Consumer {
    within(
        "basic.consume-ok",
        ch.basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("consuming {queue:?}: {e}"))
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_the_declaring_connection() {
    let broker = TestBroker::start().await;
    let (_owner, mine) = broker.channel().await;
    declare(
        &mine,
        "private",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    let other = broker.connect().await;

    // Every operation naming the queue from another connection fails with 405, each closing
    // its channel, so each gets a fresh one.
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .queue_declare(
            "private".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_code(r, RESOURCE_LOCKED, "queue.declare");
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .queue_declare(
            "private".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_code(r, RESOURCE_LOCKED, "exclusive queue.declare");
    let ch = other.create_channel().await.unwrap();
    assert_code(
        passive(&ch, "private").await,
        RESOURCE_LOCKED,
        "passive queue.declare",
    );
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .basic_consume(
            "private".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_code(r.map(|c| c.tag()), RESOURCE_LOCKED, "basic.consume");
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .basic_get("private".into(), BasicGetOptions::default())
        .await;
    assert_code(r.map(|m| m.is_some()), RESOURCE_LOCKED, "basic.get");
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .queue_bind(
            "private".into(),
            "amq.fanout".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_code(r, RESOURCE_LOCKED, "queue.bind");
    let ch = other.create_channel().await.unwrap();
    assert_code(
        ch.queue_purge("private".into(), QueuePurgeOptions::default())
            .await,
        RESOURCE_LOCKED,
        "queue.purge",
    );
    let ch = other.create_channel().await.unwrap();
    assert_code(
        ch.queue_delete("private".into(), QueueDeleteOptions::default())
            .await,
        RESOURCE_LOCKED,
        "queue.delete",
    );

    // The owner is unaffected and can do all of it.
    publish(&mine, "private", b"for me").await;
    mine.queue_bind(
        "private".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("owner binds");
    let got = mine
        .basic_get("private".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("owner gets");
    assert_eq!(got.expect("a message").delivery.data, b"for me");
    let mut consumer = consume(&mine, "private", "owner").await;
    publish(&mine, "private", b"again").await;
    assert_eq!(next(&mut consumer).await.data, b"again");
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let broker = TestBroker::start().await;
    let (owner, ch) = broker.channel().await;
    declare(
        &ch,
        "mine-only",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    publish(&ch, "mine-only", b"left behind").await;
    let observer = broker.connect().await;
    let probe = observer.create_channel().await.unwrap();
    assert_code(
        passive(&probe, "mine-only").await,
        RESOURCE_LOCKED,
        "while the owner is connected",
    );

    within("connection.close-ok", owner.close(200, "bye".into()))
        .await
        .expect("owner closes");
    // RabbitMQ deletes exclusive queues before it sends connection.close-ok.
    assert!(
        !exists(&observer, "mine-only").await,
        "exclusive queue outlived its connection"
    );
    // The name is free again, for anyone.
    declare(
        &observer.create_channel().await.unwrap(),
        "mine-only",
        QueueDeclareOptions::default(),
    )
    .await;
    assert_eq!(
        counts(&observer, "mine-only").await,
        (0, 0),
        "the new queue inherited old messages"
    );
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels_and_not_before() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "transient", auto_delete).await;

    // Never had a consumer: publishing, getting and redeclaring leave it alone.
    publish(&ch, "transient", b"one").await;
    let got = ch
        .basic_get("transient".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_some());
    declare(&ch, "transient", auto_delete).await;
    assert!(
        exists(&conn, "transient").await,
        "deleted before it ever had a consumer"
    );

    // Two consumers on two connections: the first cancel leaves one.
    let mut first = consume(&ch, "transient", "first").await;
    let (_other_conn, other) = broker.channel().await;
    let mut second = consume(&other, "transient", "second").await;
    assert_eq!(counts(&conn, "transient").await, (0, 2));
    within(
        "basic.cancel-ok",
        ch.basic_cancel("first".into(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    assert!(within("the cancelled consumer to end", first.next())
        .await
        .is_none());
    assert_eq!(counts(&conn, "transient").await, (0, 1));

    within(
        "basic.cancel-ok",
        other.basic_cancel("second".into(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    assert!(within("the cancelled consumer to end", second.next())
        .await
        .is_none());
    assert!(
        !exists(&conn, "transient").await,
        "auto-delete queue survived its last consumer"
    );
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumers_channel_closes() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(
        &ch,
        "transient",
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
    )
    .await;
    let _consumer = consume(&ch, "transient", "only").await;
    within("channel.close-ok", ch.close(200, "done".into()))
        .await
        .unwrap();
    assert!(
        !exists(&conn, "transient").await,
        "auto-delete queue survived its consumer's channel"
    );
}

/// The next delivery; fails the test if the consumer errors, ends or stays silent.
async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    match within("a delivery", consumer.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("consumer failed: {e}"),
        None => panic!("consumer ended while a delivery was expected"),
    }
}

#[tokio::test]
async fn queue_delete_cancels_consumers_on_every_connection() {
    let broker = TestBroker::start().await;
    let (_far_conn, far) = broker.channel().await;
    declare(&far, "doomed", QueueDeclareOptions::default()).await;
    let mut far_consumer = consume(&far, "doomed", "far").await;
    let (deleter_conn, deleter) = broker.channel().await;
    let near = deleter_conn.create_channel().await.unwrap();
    let mut near_consumer = consume(&near, "doomed", "near").await;

    // Consumers are live: each gets a message, round-robin.
    publish(&deleter, "doomed", b"a").await;
    publish(&deleter, "doomed", b"b").await;
    next(&mut far_consumer)
        .await
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    next(&mut near_consumer)
        .await
        .ack(BasicAckOptions::default())
        .await
        .unwrap();

    let deleted = within(
        "queue.delete-ok",
        deleter.queue_delete("doomed".into(), QueueDeleteOptions::default()),
    )
    .await;
    assert_eq!(deleted.expect("queue.delete"), 0);
    // basic.cancel from the server ends lapin's consumer stream.
    assert!(
        within("basic.cancel on the other connection", far_consumer.next())
            .await
            .is_none()
    );
    assert!(within(
        "basic.cancel on the deleting connection",
        near_consumer.next()
    )
    .await
    .is_none());
    // A server-sent cancel closes nothing: both channels still work.
    declare(&far, "still-open", QueueDeclareOptions::default()).await;
    declare(&near, "still-open", QueueDeclareOptions::default()).await;
    assert!(!exists(&deleter_conn, "doomed").await);
}

#[tokio::test]
async fn queue_delete_returns_the_message_count() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "full", QueueDeclareOptions::default()).await;
    for body in [&b"1"[..], b"2", b"3"] {
        publish(&ch, "full", body).await;
    }
    assert_eq!(
        ch.queue_delete("full".into(), QueueDeleteOptions::default())
            .await
            .unwrap(),
        3
    );
    // Deleting a queue that does not exist is not an error in RabbitMQ.
    assert_eq!(
        ch.queue_delete("full".into(), QueueDeleteOptions::default())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn server_named_queues_get_amq_gen_names() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let a = declare(&ch, "", QueueDeclareOptions::default()).await;
    let b = declare(&ch, "", QueueDeclareOptions::default()).await;
    for name in [a.name().as_str(), b.name().as_str()] {
        assert!(name.starts_with("amq.gen-"), "{name:?}");
        assert_eq!(name.len(), "amq.gen-".len() + 22, "{name:?}");
    }
    assert_ne!(a.name(), b.name());
    // The generated name is a real queue name: routable and declarable passively.
    publish(&ch, a.name().as_str(), b"to a").await;
    assert_eq!(counts(&conn, a.name().as_str()).await, (1, 0));
    // Clients may not pick names in the reserved namespace themselves.
    let r = ch
        .queue_declare(
            "amq.mine".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_code(r, 403, "declaring amq.mine");

    // The usual RPC reply queue: exclusive and server-named, gone with its connection.
    let (owner, owner_ch) = broker.channel().await;
    let reply = declare(
        &owner_ch,
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    assert!(reply.name().as_str().starts_with("amq.gen-"));
    within("connection.close-ok", owner.close(200, "bye".into()))
        .await
        .unwrap();
    assert!(
        !exists(&conn, reply.name().as_str()).await,
        "server-named exclusive queue outlived its connection"
    );
}

#[tokio::test]
async fn empty_queue_name_means_the_channels_last_declared_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let q = declare(
        &ch,
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    ch.queue_bind(
        "".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind with an empty queue name");
    ch.basic_publish(
        "amq.fanout".into(),
        "".into(),
        BasicPublishOptions::default(),
        b"fan",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = ch
        .basic_get(q.name().clone(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert_eq!(got.expect("the fanned-out message").delivery.data, b"fan");
}

#[tokio::test]
async fn passive_declare_reports_ready_messages_and_consumers() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let fresh = declare(&ch, "counted", QueueDeclareOptions::default()).await;
    assert_eq!((fresh.message_count(), fresh.consumer_count()), (0, 0));
    for i in 0..3 {
        publish(&ch, "counted", format!("m{i}").as_bytes()).await;
    }
    let q = passive(&ch, "counted").await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));

    // A consumer with prefetch 1 holds one message unacked: only ready messages are counted.
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consume(&consumer_ch, "counted", "slow").await;
    let held = next(&mut consumer).await;
    let q = passive(&ch, "counted").await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
    // A non-passive redeclaration reports the same.
    let q = declare(&ch, "counted", QueueDeclareOptions::default()).await;
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
    held.ack(BasicAckOptions::default()).await.unwrap();
    let _second = next(&mut consumer).await;
    let q = passive(&ch, "counted").await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (1, 1));
}

#[tokio::test]
async fn purge_returns_the_ready_count_and_leaves_unacked_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "purged", QueueDeclareOptions::default()).await;
    for i in 0..5 {
        publish(&ch, "purged", format!("m{i}").as_bytes()).await;
    }
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consume(&consumer_ch, "purged", "holder").await;
    let held = next(&mut consumer).await;
    assert_eq!(held.data, b"m0");

    assert_eq!(
        within(
            "queue.purge-ok",
            ch.queue_purge("purged".into(), QueuePurgeOptions::default())
        )
        .await
        .unwrap(),
        4
    );
    assert_eq!(
        ch.queue_purge("purged".into(), QueuePurgeOptions::default())
            .await
            .unwrap(),
        0
    );
    // The unacked message survives the purge and comes back when its channel closes.
    within("channel.close-ok", consumer_ch.close(200, "done".into()))
        .await
        .unwrap();
    assert_eq!(counts(&conn, "purged").await, (1, 0));
    let got = ch
        .basic_get("purged".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("requeued message");
    assert_eq!(got.delivery.data, b"m0");
    assert!(got.delivery.redelivered);
}

#[tokio::test]
async fn delete_if_unused_and_if_empty_refuse_with_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "busy", QueueDeclareOptions::default()).await;
    let _consumer = consume(&ch, "busy", "keeper").await;
    let deleter = conn.create_channel().await.unwrap();
    let r = deleter
        .queue_delete(
            "busy".into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await;
    assert_code(
        r,
        PRECONDITION_FAILED,
        "if-unused delete of a queue with a consumer",
    );
    assert!(!deleter.status().connected(), "406 closes the channel");
    assert_eq!(
        counts(&conn, "busy").await,
        (0, 1),
        "the refused delete changed the queue"
    );

    declare(&ch, "stocked", QueueDeclareOptions::default()).await;
    publish(&ch, "stocked", b"keep me").await;
    let deleter = conn.create_channel().await.unwrap();
    let r = deleter
        .queue_delete(
            "stocked".into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    assert_code(
        r,
        PRECONDITION_FAILED,
        "if-empty delete of a queue with a message",
    );
    assert_eq!(counts(&conn, "stocked").await, (1, 0));

    // The conditions hold only when they should: no consumer here, so if-unused deletes.
    let deleter = conn.create_channel().await.unwrap();
    let r = deleter
        .queue_delete(
            "stocked".into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.expect("if-unused delete of an unused queue"), 1);
    declare(&ch, "empty", QueueDeclareOptions::default()).await;
    let r = deleter
        .queue_delete(
            "empty".into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.expect("if-empty delete of an empty queue"), 0);
}

#[tokio::test]
async fn silent_client_is_disconnected_after_missed_heartbeats() {
    let broker = TestBroker::start().await;
    let (mut client, tune) = RawClient::open(broker.addr(), |tune| amqp_connection::TuneOk {
        channel_max: tune.channel_max,
        frame_max: tune.frame_max,
        heartbeat: 1,
    })
    .await;
    assert_eq!(
        tune.heartbeat, 60,
        "the server proposes RabbitMQ's default heartbeat"
    );
    let silent_since = Instant::now();
    let mut heartbeats = 0;
    let mut other = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(frame) = client.recv().await {
            match frame {
                AMQPFrame::Heartbeat => heartbeats += 1,
                frame => other.push(frame),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a client silent for 6 s with heartbeat=1 is still connected"
    );
    let after = silent_since.elapsed();
    assert!(
        after >= Duration::from_secs(1),
        "disconnected after {after:?}, before a heartbeat was even due"
    );
    assert!(
        heartbeats >= 1,
        "the server sent no heartbeats while the client was silent"
    );
    for frame in &other {
        assert!(
            matches!(
                frame,
                AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(amqp_connection::AMQPMethod::Close(_))
                )
            ),
            "unexpected frame before the disconnect: {frame:?}"
        );
    }
}

#[tokio::test]
async fn first_heartbeat_comes_after_half_the_interval() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::open(broker.addr(), |tune| amqp_connection::TuneOk {
        channel_max: tune.channel_max,
        frame_max: tune.frame_max,
        heartbeat: 2,
    })
    .await;
    // RabbitMQ sends a heartbeat after heartbeat/2 seconds without other output, never at once.
    if let Ok(frame) = tokio::time::timeout(Duration::from_millis(500), client.recv()).await {
        panic!("the server sent {frame:?} within 500 ms of open-ok, with heartbeat=2");
    }
    let frame = within("the first heartbeat", client.recv()).await;
    assert_eq!(frame, Some(AMQPFrame::Heartbeat));
}

#[tokio::test]
async fn lapin_client_with_one_second_heartbeat_stays_connected() {
    let broker = TestBroker::start().await;
    let uri = format!("{}?heartbeat=1", broker.uri());
    let conn = within(
        "connection",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.configuration().heartbeat(),
        1,
        "lapin negotiated heartbeat=1"
    );
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "alive", QueueDeclareOptions::default()).await;

    // Well past two heartbeat intervals with nothing but heartbeats on the wire.
    let mut events = conn.events_listener();
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(3500), events.next()).await {
        panic!("idle connection with heartbeats got an event: {event:?}");
    }
    assert!(conn.status().connected());
    publish(&ch, "alive", b"still here").await;
    let got = within(
        "basic.get-ok",
        ch.basic_get("alive".into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap();
    assert_eq!(got.expect("the message").delivery.data, b"still here");
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_with_320_connection_forced() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    let (conn, ch) = broker.channel().await;
    declare(&ch, "work", QueueDeclareOptions::default()).await;
    let mut consumer = consume(&ch, "work", "worker").await;
    let mut events = conn.events_listener();

    within("the server to stop", broker.server.stop())
        .await
        .expect("clean stop");
    let error = loop {
        match within("a connection error event", events.next()).await {
            Some(Event::Error(e)) => break e,
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    };
    assert_eq!(reply_code(&error), Some(320), "{error}");
    assert!(
        reply_text(&error)
            .unwrap_or_default()
            .starts_with("CONNECTION_FORCED"),
        "{error}"
    );
    assert!(
        conn.status().errored(),
        "lapin connection status: {:?}",
        conn.status()
    );
    match within("the consumer to end", consumer.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(d)) => panic!("delivery after shutdown: {d:?}"),
    }
    assert!(ch
        .basic_get("work".into(), BasicGetOptions::default())
        .await
        .is_err());
    // And nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener outlived stop()"
    );
}

#[tokio::test]
async fn a_hundred_channels_on_one_connection_each_work() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let mut channels = Vec::new();
    for _ in 0..100 {
        channels.push(
            within("channel.open-ok", conn.create_channel())
                .await
                .expect("channel opens"),
        );
    }
    let mut ids: Vec<u16> = channels.iter().map(Channel::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);

    let tasks: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            tokio::spawn(async move {
                let name = format!("per-channel-{i}");
                declare(&ch, &name, QueueDeclareOptions::default()).await;
                ch.confirm_select(ConfirmSelectOptions::default())
                    .await
                    .unwrap();
                let confirm = ch
                    .basic_publish(
                        "".into(),
                        name.as_str().into(),
                        BasicPublishOptions::default(),
                        name.as_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap();
                assert!(confirm.await.unwrap().is_ack());
                let got = ch
                    .basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })
                    .await
                    .unwrap();
                assert_eq!(got.expect("own message").delivery.data, name.as_bytes());
                ch.close(200, "done".into()).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        within("a channel's work", task)
            .await
            .expect("channel task");
    }
    assert!(conn.status().connected());
}

#[tokio::test]
async fn opening_more_channels_than_channel_max_closes_the_connection_with_530() {
    let broker = TestBroker::start().await;
    let (mut client, tune) = RawClient::open(broker.addr(), |tune| amqp_connection::TuneOk {
        channel_max: 3,
        frame_max: tune.frame_max,
        heartbeat: 0,
    })
    .await;
    assert_eq!(
        tune.channel_max, 2047,
        "the server proposes RabbitMQ's default channel_max"
    );
    for id in 1..=3 {
        client.open_channel(id).await;
    }
    client
        .send_method(
            4,
            AMQPClass::Channel(amqp_channel::AMQPMethod::Open(amqp_channel::Open {})),
        )
        .await;
    match within("connection.close", client.recv_method()).await {
        Some((0, AMQPClass::Connection(amqp_connection::AMQPMethod::Close(close)))) => {
            assert_eq!(close.reply_code, 530, "{close:?}");
            // RabbitMQ's text, and no method blamed (class 0, method 0).
            assert_eq!(
                close.reply_text.as_str(),
                "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
            );
            assert_eq!((close.class_id, close.method_id), (0, 0));
        }
        other => panic!("expected connection.close 530, got {other:?}"),
    }
    client
        .send_method(
            0,
            AMQPClass::Connection(amqp_connection::AMQPMethod::CloseOk(
                amqp_connection::CloseOk {},
            )),
        )
        .await;
    assert!(
        within("the socket to close", client.recv()).await.is_none(),
        "socket still open after close-ok"
    );
}
