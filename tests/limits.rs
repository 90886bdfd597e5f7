//! Vhost and user limits, refused the way RabbitMQ 3.10 refuses them: a vhost's
//! `max-connections` and a user's `max-connections` at connection.open (530), a vhost's
//! `max-queues` at queue.declare (406 on the channel), a user's `max-channels` at channel.open
//! (530 on the connection). Room made by closing brings the next one in.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren::broker::metadata::permissions::PermissionSpec;
use warren::broker::metadata::users::User;
use warren::broker::metadata::{Limits, VhostRecord};

fn limits(pairs: &[(&str, i64)]) -> Limits {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

async fn connect(b: &TestBroker, user: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = format!("amqp://{user}:pw@{}/{vhost}", b.addr());
    within(
        "connection.open",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
}

/// A broker with user "u" (password "pw") allowed everything on vhost "v".
async fn broker_with_user() -> TestBroker {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    b.add_vhost(VhostRecord::named("v"), "guest");
    b.metadata
        .put_user(User::new("u", Some("pw"), Vec::new()), "guest");
    let all = ".*".to_owned();
    b.metadata
        .set_permissions(
            PermissionSpec {
                user: "u".into(),
                vhost: "v".into(),
                configure: all.clone(),
                write: all.clone(),
                read: all,
            },
            "guest",
        )
        .unwrap();
    broker
}

#[tokio::test]
async fn a_vhosts_connection_limit_refuses_the_next_connection_with_530() {
    let broker = broker_with_user().await;
    let b = &broker.server.broker;
    b.set_vhost_limits("v", limits(&[("max-connections", 1)]))
        .unwrap();
    let first = connect(&broker, "u", "v").await.expect("the first fits");
    let err = connect(&broker, "u", "v")
        .await
        .expect_err("over the limit");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - access to vhost 'v' refused for user 'u': connection limit (1) is reached")
    );
    within("the close", first.close(200, "bye".into()))
        .await
        .unwrap();
    connect(&broker, "u", "v")
        .await
        .expect("room again once the first closed");
    b.set_vhost_limits("v", limits(&[("max-connections", -1)]))
        .unwrap();
    connect(&broker, "u", "v").await.expect("no limit");
    assert!(b
        .set_vhost_limits("v", limits(&[("max-bananas", 1)]))
        .is_err());
}

#[tokio::test]
async fn a_users_connection_limit_refuses_the_next_connection_with_530() {
    let broker = broker_with_user().await;
    let b = &broker.server.broker;
    b.set_user_limits("u", limits(&[("max-connections", 1)]))
        .unwrap();
    let _first = connect(&broker, "u", "v").await.expect("the first fits");
    let err = connect(&broker, "u", "v")
        .await
        .expect_err("over the limit");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - connection refused for user 'u': user connection limit (1) is reached")
    );
    let (_other, _ch) = broker.channel().await;
}

#[tokio::test]
async fn a_vhosts_queue_limit_refuses_a_new_queue_with_406() {
    let broker = broker_with_user().await;
    let b = &broker.server.broker;
    b.set_vhost_limits("v", limits(&[("max-queues", 1)]))
        .unwrap();
    let conn = connect(&broker, "u", "v").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare_queue(&ch, "q1").await;
    declare_queue(&ch, "q1").await;
    let err = ch
        .queue_declare(
            "q2".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("over the limit");
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'v' (1) is reached")
    );
    assert!(conn.status().connected(), "a channel error only");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete("q1".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    declare_queue(&ch, "q2").await;
}

#[tokio::test]
async fn a_users_channel_limit_counts_across_connections_and_closes_with_530() {
    let broker = broker_with_user().await;
    let b = &broker.server.broker;
    b.set_user_limits("u", limits(&[("max-channels", 2)]))
        .unwrap();
    let first = connect(&broker, "u", "v").await.unwrap();
    let one = first.create_channel().await.unwrap();
    let second = connect(&broker, "u", "v").await.unwrap();
    // Bound: lapin closes a channel whose last handle is dropped.
    let _two = second.create_channel().await.expect("two channels in all");
    let err = second.create_channel().await.expect_err("a third");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some(
            "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum \
             allowed user limit of (2)"
        )
    );
    // The refused connection's channel goes with it (once the broker has cleaned it up, which
    // no client sees): room for one more, and no more.
    assert!(one.status().connected());
    within("the refused connection's channel to go", async {
        while b.connections.channels_of("u") > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let _again = first
        .create_channel()
        .await
        .expect("room again once the other connection's channel went");
    let err = first.create_channel().await.expect_err("full again");
    assert_eq!(reply_code(&err), Some(530));
    // Nothing is left counted once the user's connections are gone.
    within("every channel of u to be uncounted", async {
        while b.connections.channels_of("u") > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_brokers_connection_limit_refuses_the_next_connection_with_530() {
    let broker = TestBroker::start_with(|c| c.max_connections = Some(2)).await;
    let first = broker.connect().await;
    let _second = broker.connect().await;
    let err = within(
        "connection.open",
        Connection::connect(&broker.uri(), ConnectionProperties::default()),
    )
    .await
    .expect_err("over the broker's limit");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - connection refused: node connection limit (2) is reached")
    );
    within("the close", first.close(200, "bye".into()))
        .await
        .unwrap();
    broker.connect().await;
}

#[tokio::test]
async fn a_channels_consumer_limit_closes_the_connection_with_530() {
    let broker = TestBroker::start_with(|c| c.consumer_max_per_channel = Some(2)).await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "busy").await;
    // Held: lapin cancels a consumer whose handle is dropped.
    let mut held = Vec::new();
    for tag in ["a", "b"] {
        let consumer = ch
            .basic_consume(
                "busy".into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("within the limit");
        held.push(consumer);
    }
    // Another channel has its own count.
    let other = conn.create_channel().await.unwrap();
    let _c = other
        .basic_consume(
            "busy".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("another channel's first consumer");
    let err = ch
        .basic_consume(
            "busy".into(),
            "d".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("the third consumer on the channel");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - reached maximum (2) of consumers per channel")
    );
    closed_with(&conn).await;
}
