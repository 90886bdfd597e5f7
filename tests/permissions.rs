//! Permissions on every AMQP operation, checked where RabbitMQ 3.10 checks them and refused
//! with its 403 texts (observed with a user whose patterns are configure "^cfg", write "^wr",
//! read "^rd"): configure to declare (not passively) and delete, write to publish and to bind
//! a queue, read to consume, get, purge and to bind from an exchange.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::future::Future;
use warren::broker::metadata::permissions::PermissionSpec;
use warren::broker::metadata::users::User;

fn limited(user: &str) -> PermissionSpec {
    PermissionSpec {
        user: user.into(),
        vhost: "/".into(),
        configure: "^cfg".into(),
        write: "^wr".into(),
        read: "^rd".into(),
    }
}

/// A broker with the objects the checks need (declared by guest) and a connection as "lim".
async fn setup() -> (TestBroker, Channel, Connection) {
    let broker = TestBroker::start().await;
    let metadata = &broker.server.broker.metadata;
    metadata.put_user(User::new("lim", Some("pw"), Vec::new()), "guest");
    metadata.set_permissions(limited("lim"), "guest").unwrap();
    let (_admin_conn, admin) = broker.channel().await;
    for q in ["cfg-q", "rd-q", "wr-q", "other"] {
        declare_queue(&admin, q).await;
    }
    for x in ["rd-x", "wr-x", "cfg-x"] {
        admin
            .exchange_declare(
                x.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let uri = format!("amqp://lim:pw@{}/%2f", broker.addr());
    let lim = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("lim connects");
    (broker, admin, lim)
}

/// Runs `op` on a new channel of `conn`: `None` if it succeeded, else the 403 text it drew.
async fn outcome<T, F>(conn: &Connection, op: impl FnOnce(Channel) -> F) -> Option<String>
where
    F: Future<Output = lapin::Result<T>>,
{
    let ch = conn.create_channel().await.expect("channel.open");
    match within("the operation", op(ch)).await {
        Ok(_) => None,
        Err(e) => {
            assert_eq!(reply_code(&e), Some(403), "{e}");
            reply_text(&e)
        }
    }
}

fn refused(kind: &str, name: &str) -> Option<String> {
    Some(format!(
        "ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'lim'"
    ))
}

async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str) -> lapin::Result<()> {
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await?
    .await?;
    Ok(())
}

#[tokio::test]
async fn declare_and_delete_need_configure_and_passive_declares_need_nothing() {
    let (_broker, _admin, lim) = setup().await;
    let declare = |name: &'static str, passive: bool| {
        move |ch: Channel| async move {
            let options = QueueDeclareOptions {
                passive,
                ..Default::default()
            };
            ch.queue_declare(name.into(), options, FieldTable::default())
                .await
        }
    };
    assert_eq!(
        outcome(&lim, declare("other", false)).await,
        refused("queue", "other")
    );
    assert_eq!(outcome(&lim, declare("other", true)).await, None);
    assert_eq!(outcome(&lim, declare("cfg-q", false)).await, None);
    let server_named = outcome(&lim, declare("", false)).await.unwrap();
    assert!(
        server_named.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-"),
        "{server_named}"
    );
    let exchange = |name: &'static str, passive: bool| {
        move |ch: Channel| async move {
            let options = ExchangeDeclareOptions {
                passive,
                ..Default::default()
            };
            ch.exchange_declare(
                name.into(),
                ExchangeKind::Fanout,
                options,
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(
        outcome(&lim, exchange("other-x", false)).await,
        refused("exchange", "other-x")
    );
    assert_eq!(outcome(&lim, exchange("rd-x", true)).await, None);
    let delete_queue = |name: &'static str| {
        move |ch: Channel| async move {
            ch.queue_delete(name.into(), QueueDeleteOptions::default())
                .await
        }
    };
    assert_eq!(
        outcome(&lim, delete_queue("other")).await,
        refused("queue", "other")
    );
    assert_eq!(outcome(&lim, delete_queue("cfg-q")).await, None);
    let delete_exchange = |name: &'static str| {
        move |ch: Channel| async move {
            ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await
        }
    };
    assert_eq!(
        outcome(&lim, delete_exchange("rd-x")).await,
        refused("exchange", "rd-x")
    );
    assert_eq!(outcome(&lim, delete_exchange("cfg-x")).await, None);
}

#[tokio::test]
async fn publishing_needs_write_on_the_exchange_and_the_default_one_is_amq_default() {
    let (_broker, admin, lim) = setup().await;
    assert_eq!(
        outcome(&lim, |ch| async move {
            publish_confirmed(&ch, "", "rd-q").await
        })
        .await,
        refused("exchange", "amq.default")
    );
    assert_eq!(
        outcome(&lim, |ch| async move {
            publish_confirmed(&ch, "rd-x", "").await
        })
        .await,
        refused("exchange", "rd-x")
    );
    // Allowed to write there, a missing exchange is a 404, not a 403.
    let ch = lim.create_channel().await.unwrap();
    let err = publish_confirmed(&ch, "wr-missing", "")
        .await
        .expect_err("no such exchange");
    assert_eq!(reply_code(&err), Some(404));
    let ch = lim.create_channel().await.unwrap();
    admin
        .queue_bind(
            "rd-q".into(),
            "wr-x".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        publish_confirmed(&ch, "wr-x", "").await.expect("allowed");
    }
    assert_eq!(queue_counts(&admin, "rd-q").await.0, 3);
}

#[tokio::test]
async fn consuming_getting_and_purging_need_read_on_the_queue() {
    let (_broker, _admin, lim) = setup().await;
    let get = |name: &'static str| {
        move |ch: Channel| async move { ch.basic_get(name.into(), BasicGetOptions::default()).await }
    };
    assert_eq!(outcome(&lim, get("other")).await, refused("queue", "other"));
    assert_eq!(outcome(&lim, get("rd-q")).await, None);
    let consume = |name: &'static str| {
        move |ch: Channel| async move {
            ch.basic_consume(
                name.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(
        outcome(&lim, consume("other")).await,
        refused("queue", "other")
    );
    assert_eq!(outcome(&lim, consume("rd-q")).await, None);
    let purge = |name: &'static str| {
        move |ch: Channel| async move {
            ch.queue_purge(name.into(), QueuePurgeOptions::default())
                .await
        }
    };
    assert_eq!(
        outcome(&lim, purge("other")).await,
        refused("queue", "other")
    );
    assert_eq!(outcome(&lim, purge("rd-q")).await, None);
}

#[tokio::test]
async fn binding_needs_write_on_the_destination_and_read_on_the_source() {
    let (_broker, _admin, lim) = setup().await;
    let bind = |queue: &'static str, exchange: &'static str| {
        move |ch: Channel| async move {
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(
        outcome(&lim, bind("other", "rd-x")).await,
        refused("queue", "other")
    );
    assert_eq!(
        outcome(&lim, bind("wr-q", "wr-x")).await,
        refused("exchange", "wr-x")
    );
    assert_eq!(outcome(&lim, bind("wr-q", "rd-x")).await, None);
    let unbind = |ch: Channel| async move {
        ch.queue_unbind(
            "wr-q".into(),
            "rd-x".into(),
            "".into(),
            FieldTable::default(),
        )
        .await
    };
    assert_eq!(outcome(&lim, unbind).await, None);
    let xbind = |destination: &'static str, source: &'static str| {
        move |ch: Channel| async move {
            ch.exchange_bind(
                destination.into(),
                source.into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(outcome(&lim, xbind("wr-x", "rd-x")).await, None);
    assert_eq!(
        outcome(&lim, xbind("rd-x", "wr-x")).await,
        refused("exchange", "rd-x")
    );
}

#[tokio::test]
async fn changed_permissions_apply_to_open_connections() {
    let (broker, _admin, lim) = setup().await;
    let metadata = &broker.server.broker.metadata;
    let ch = lim.create_channel().await.unwrap();
    publish_confirmed(&ch, "wr-x", "").await.expect("allowed");
    let mut narrower = limited("lim");
    narrower.write = "^nothing$".into();
    metadata.set_permissions(narrower, "guest").unwrap();
    assert_eq!(
        outcome(&lim, |ch| async move {
            publish_confirmed(&ch, "wr-x", "").await
        })
        .await,
        refused("exchange", "wr-x"),
        "the publisher's remembered exchange is checked again"
    );
    assert!(metadata.clear_permissions("lim", "/", "guest"));
    assert_eq!(
        outcome(&lim, |ch| async move {
            ch.basic_get("rd-q".into(), BasicGetOptions::default())
                .await
        })
        .await,
        refused("queue", "rd-q")
    );
    metadata.set_permissions(limited("lim"), "guest").unwrap();
    let ch = lim.create_channel().await.unwrap();
    publish_confirmed(&ch, "wr-x", "")
        .await
        .expect("allowed again");
}

#[tokio::test]
async fn topic_permissions_check_routing_keys_on_their_topic_exchange() {
    use warren::broker::metadata::permissions::TopicPermissionSpec;
    let (broker, admin, lim) = setup().await;
    let metadata = &broker.server.broker.metadata;
    let all = ".*".to_owned();
    metadata
        .set_permissions(
            PermissionSpec {
                user: "lim".into(),
                vhost: "/".into(),
                configure: all.clone(),
                write: all.clone(),
                read: all,
            },
            "guest",
        )
        .unwrap();
    metadata
        .set_topic_permissions(TopicPermissionSpec {
            user: "lim".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: "^{vhost}".into(),
        })
        .unwrap();
    let topic = |key: &'static str| {
        move |ch: Channel| async move { publish_confirmed(&ch, "amq.topic", key).await }
    };
    assert_eq!(outcome(&lim, topic("lim.a")).await, None);
    let refused_topic = |key: &str| {
        Some(format!(
            "ACCESS_REFUSED - access to topic '{key}' in exchange 'amq.topic' in vhost '/' \
             refused for user 'lim'"
        ))
    };
    assert_eq!(outcome(&lim, topic("x.a")).await, refused_topic("x.a"));
    let bind = |key: &'static str| {
        move |ch: Channel| async move {
            ch.queue_bind(
                "rd-q".into(),
                "amq.topic".into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(outcome(&lim, bind("/x")).await, None);
    assert_eq!(outcome(&lim, bind("other")).await, refused_topic("other"));
    // Other exchanges, and other users, are not affected.
    let direct = |ch: Channel| async move { publish_confirmed(&ch, "amq.direct", "x.a").await };
    assert_eq!(outcome(&lim, direct).await, None);
    publish_confirmed(&admin, "amq.topic", "x.a")
        .await
        .expect("guest has no topic permissions");
    assert!(metadata.clear_topic_permissions("lim", "/", None));
    assert_eq!(outcome(&lim, topic("x.a")).await, None);
}
