//! Virtual hosts and users as a client sees them: logging in as a user (with a password hashed
//! the way RabbitMQ hashes it), being refused a vhost without permissions on it, isolation
//! between vhosts, connections closed when their vhost or user is deleted, and all of it kept
//! across a restart. Users, vhosts and permissions are set through the broker's metadata API,
//! which the management API will call.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use std::sync::Arc;
use warren::broker::metadata::permissions::PermissionSpec;
use warren::broker::metadata::users::User;
use warren::broker::metadata::VhostRecord;
use warren::broker::Broker;

fn broker_of(b: &TestBroker) -> &Arc<Broker> {
    &b.server.broker
}

fn grant_all(b: &TestBroker, user: &str, vhost: &str) {
    let all = ".*".to_owned();
    broker_of(b)
        .metadata
        .set_permissions(
            PermissionSpec {
                user: user.into(),
                vhost: vhost.into(),
                configure: all.clone(),
                write: all.clone(),
                read: all,
            },
            "guest",
        )
        .expect("permissions set");
}

/// The error the connection reports next (a close from the server). The listener is made at
/// once, so a close that comes before the returned future is awaited is not missed.
#[tokio::test]
async fn a_user_exported_from_rabbitmq_logs_in_with_its_password() {
    let broker = TestBroker::start().await;
    // As `rabbitmqctl export_definitions` wrote alice, whose password is "s3cret".
    let exported = r#"{"name":"alice","password_hash":"UclMGAgN/EqdnV+52Wf4tgHfIMT13OQBfesk052nENbC4D8r","hashing_algorithm":"rabbit_password_hashing_sha256","tags":[]}"#;
    let alice: User = serde_json::from_str(exported).unwrap();
    broker_of(&broker).metadata.put_user(alice, "guest");
    grant_all(&broker, "alice", "/");
    let (_conn, ch) = channel_as(&broker, "alice", "s3cret", "/").await;
    declare_queue(&ch, "alice-works").await;
    let err = connect_as(&broker, "alice", "wrong", "/")
        .await
        .expect_err("a wrong password is refused");
    assert_eq!(reply_code(&err), Some(403));
}

#[tokio::test]
async fn a_user_without_permissions_on_a_vhost_is_refused_with_530() {
    let broker = TestBroker::start().await;
    broker_of(&broker)
        .metadata
        .put_user(User::new("bob", Some("pw"), Vec::new()), "guest");
    let err = connect_as(&broker, "bob", "pw", "/")
        .await
        .expect_err("bob has no permissions on /");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - access to vhost '/' refused for user 'bob'")
    );
    grant_all(&broker, "bob", "/");
    channel_as(&broker, "bob", "pw", "/").await;
}

#[tokio::test]
async fn nothing_is_visible_across_vhosts() {
    let broker = TestBroker::start().await;
    broker_of(&broker).add_vhost(VhostRecord::named("shop"), "guest");
    grant_all(&broker, "guest", "shop");
    let (_root, in_root) = channel_as(&broker, "guest", "guest", "/").await;
    let (_shop, in_shop) = channel_as(&broker, "guest", "guest", "shop").await;
    declare_queue(&in_root, "orders").await;
    declare_queue(&in_shop, "orders").await;
    publish(&in_shop, "", "orders", b"for the shop").await;
    publish(&in_shop, "amq.fanout", "", b"no binding in the shop").await;
    assert_eq!(queue_counts(&in_shop, "orders").await.0, 1);
    assert_eq!(queue_counts(&in_root, "orders").await.0, 0);

    in_shop
        .exchange_declare(
            "shop-only".into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare in shop");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = in_root
        .exchange_declare(
            "shop-only".into(),
            lapin::ExchangeKind::Fanout,
            passive,
            FieldTable::default(),
        )
        .await
        .expect_err("the shop's exchange is not in /");
    assert_eq!(reply_code(&err), Some(404));
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections_with_320_and_drops_what_it_held() {
    let broker = TestBroker::start().await;
    broker_of(&broker).add_vhost(VhostRecord::named("temp"), "guest");
    grant_all(&broker, "guest", "temp");
    let (_bystander, in_root) = channel_as(&broker, "guest", "guest", "/").await;
    let (conn, ch) = channel_as(&broker, "guest", "guest", "temp").await;
    declare_queue(&ch, "doomed").await;
    publish(&ch, "", "doomed", b"gone with the vhost").await;
    assert_eq!(queue_counts(&ch, "doomed").await.0, 1);
    let closing = closed_with(&conn);
    assert!(broker_of(&broker).delete_vhost("temp", "guest"));
    let err = closing.await;
    assert_eq!(reply_code(&err), Some(320));
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("CONNECTION_FORCED - vhost 'temp' is deleted")
    );
    let err = connect_as(&broker, "guest", "guest", "temp")
        .await
        .expect_err("the vhost is gone");
    assert_eq!(reply_code(&err), Some(530));
    assert!(
        !broker_of(&broker).delete_vhost("temp", "guest"),
        "deleted once"
    );

    // Created again, it starts empty and without the old permissions.
    broker_of(&broker).add_vhost(VhostRecord::named("temp"), "guest");
    assert!(broker_of(&broker)
        .metadata
        .permissions("guest", "temp")
        .is_none());
    grant_all(&broker, "guest", "temp");
    let (_again, ch) = channel_as(&broker, "guest", "guest", "temp").await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = ch
        .queue_declare("doomed".into(), passive, FieldTable::default())
        .await
        .expect_err("the queue went with its vhost");
    assert_eq!(reply_code(&err), Some(404));
    declare_queue(&in_root, "still-here").await;
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections_with_320() {
    let broker = TestBroker::start().await;
    broker_of(&broker)
        .metadata
        .put_user(User::new("carol", Some("pw"), Vec::new()), "guest");
    grant_all(&broker, "carol", "/");
    let (_guest, in_root) = channel_as(&broker, "guest", "guest", "/").await;
    let (conn, _ch) = channel_as(&broker, "carol", "pw", "/").await;
    let closing = closed_with(&conn);
    assert!(broker_of(&broker).delete_user("carol", "guest"));
    let err = closing.await;
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("CONNECTION_FORCED - user 'carol' is deleted")
    );
    assert_eq!(reply_code(&err), Some(320));
    let err = connect_as(&broker, "carol", "pw", "/")
        .await
        .expect_err("carol is gone");
    assert_eq!(reply_code(&err), Some(403));
    declare_queue(&in_root, "guest-still-works").await;
}

#[tokio::test]
async fn users_vhosts_and_permissions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let mut record = VhostRecord::named("kept");
        record.description = "kept across restarts".into();
        broker_of(&broker).add_vhost(record, "guest");
        broker_of(&broker).metadata.put_user(
            User::new("dave", Some("pw"), vec!["monitoring".into()]),
            "guest",
        );
        grant_all(&broker, "dave", "kept");
        let (_c, ch) = channel_as(&broker, "dave", "pw", "kept").await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("durable-in-kept".into(), durable, FieldTable::default())
            .await
            .unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = channel_as(&broker, "dave", "pw", "kept").await;
    assert_eq!(queue_counts(&ch, "durable-in-kept").await, (0, 0));
    let metadata = &broker_of(&broker).metadata;
    assert_eq!(
        metadata.vhost("kept").unwrap().description,
        "kept across restarts"
    );
    assert!(metadata.user("dave").unwrap().has_tag("monitoring"));
}

#[tokio::test]
async fn the_first_start_creates_the_configured_user_and_vhost() {
    let broker = TestBroker::start_with(|c| {
        c.default_user = "admin".into();
        c.default_pass = "secret".into();
        c.default_vhost = "app".into();
    })
    .await;
    let (_c, ch) = channel_as(&broker, "admin", "secret", "app").await;
    declare_queue(&ch, "in-app").await;
    let err = connect_as(&broker, "admin", "secret", "/")
        .await
        .expect_err("only the configured vhost exists");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("NOT_ALLOWED - vhost / not found")
    );
    let err = connect_as(&broker, "guest", "guest", "app")
        .await
        .expect_err("guest is not created when another default user is configured");
    assert_eq!(reply_code(&err), Some(403));
}
