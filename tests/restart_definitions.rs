//! What a broker restarted gracefully on the same data directory still holds of durable
//! definitions, and what it no longer holds once they were deleted.

mod common;

use common::durable::*;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Confirmation, ExchangeKind};

// ---------------------------------------------------------------------------------------------
// restarts: definitions

#[tokio::test]
async fn durable_exchanges_queues_and_bindings_survive_a_restart_and_still_route() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "orders", ExchangeKind::Direct, true).await;
    declare_exchange(&ch, "ingress", ExchangeKind::Fanout, true).await;
    declare_exchange(&ch, "scratch", ExchangeKind::Direct, false).await;
    let lazy = table(&[("x-queue-mode", AMQPValue::LongString("lazy".into()))]);
    ch.queue_declare("dq".into(), durable_queue(), lazy.clone())
        .await
        .unwrap();
    bind(&ch, "dq", "orders", "created").await;
    bind(&ch, "dq", "amq.topic", "audit.#").await;
    bind(&ch, "dq", "scratch", "x").await;
    ch.exchange_bind(
        "orders".into(),
        "ingress".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(exchange_exists(&conn, "orders").await);
    assert!(exchange_exists(&conn, "ingress").await);
    assert!(
        !exchange_exists(&conn, "scratch").await,
        "a transient exchange is gone"
    );

    // The exchange kept its type and the queue its arguments: an identical redeclaration is
    // accepted, a different type is not.
    let other = conn.create_channel().await.unwrap();
    other
        .queue_declare("dq".into(), durable_queue(), lazy)
        .await
        .expect("the queue's arguments survived");
    declare_exchange(&other, "orders", ExchangeKind::Direct, true).await;
    let err = other
        .exchange_declare(
            "orders".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("'orders' is still a direct exchange");
    assert_eq!(reply_code(&err), Some(406), "{err}");

    publish_persistent(&ch, "orders", "created", "direct").await;
    publish_persistent(&ch, "ingress", "created", "via-exchange-binding").await;
    publish_persistent(&ch, "amq.topic", "audit.login", "topic").await;
    let unrouted =
        publish_confirmed(&ch, "orders", "deleted", true, b"nowhere", persistent()).await;
    assert!(
        matches!(unrouted, Confirmation::Ack(Some(_))),
        "an unbound key is returned: {unrouted:?}"
    );
    assert_eq!(
        contents(&ch, "dq").await,
        fresh(&["direct", "via-exchange-binding", "topic"])
    );
}

// ---------------------------------------------------------------------------------------------
// restarts: deletions

#[tokio::test]
async fn purge_and_queue_delete_are_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    for q in ["purged", "deleted", "recreated"] {
        declare_durable_queue(&ch, q).await;
    }
    for i in 1..=3 {
        publish_persistent(&ch, "", "purged", &i.to_string()).await;
    }
    let purged = ch
        .queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    publish_persistent(&ch, "", "purged", "after purge").await;

    publish_persistent(&ch, "", "deleted", "doomed").await;
    let deleted = ch
        .queue_delete("deleted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    // A queue deleted and declared again under the same name is a new, empty queue without
    // the old one's messages or bindings.
    bind(&ch, "recreated", "amq.direct", "old-binding").await;
    publish_persistent(&ch, "", "recreated", "old").await;
    ch.queue_delete("recreated".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "recreated").await;
    publish_persistent(&ch, "", "recreated", "new").await;
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert_eq!(contents(&ch, "purged").await, fresh(&["after purge"]));
    assert!(
        !queue_exists(&conn, "deleted").await,
        "deleted stays deleted"
    );
    assert_eq!(contents(&ch, "recreated").await, fresh(&["new"]));
    let returned =
        publish_confirmed(&ch, "amq.direct", "old-binding", true, b"x", persistent()).await;
    assert!(
        matches!(returned, Confirmation::Ack(Some(_))),
        "the deleted queue's binding did not come back: {returned:?}"
    );
}

#[tokio::test]
async fn exchange_delete_and_unbind_are_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "gone", ExchangeKind::Direct, true).await;
    declare_exchange(&ch, "kept", ExchangeKind::Direct, true).await;
    declare_durable_queue(&ch, "q").await;
    bind(&ch, "q", "gone", "k").await;
    bind(&ch, "q", "kept", "a").await;
    bind(&ch, "q", "kept", "b").await;
    ch.exchange_delete("gone".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    ch.queue_unbind("q".into(), "kept".into(), "a".into(), FieldTable::default())
        .await
        .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(
        !exchange_exists(&conn, "gone").await,
        "deleted stays deleted"
    );
    assert!(exchange_exists(&conn, "kept").await);
    let unbound = publish_confirmed(&ch, "kept", "a", true, b"via a", persistent()).await;
    assert!(
        matches!(unbound, Confirmation::Ack(Some(_))),
        "the removed binding did not come back: {unbound:?}"
    );
    publish_persistent(&ch, "kept", "b", "via b").await;
    assert_eq!(contents(&ch, "q").await, fresh(&["via b"]));
}

/// Headers bindings are identified by their arguments: they must come back intact enough to
/// match, and to be found again by an unbind after the restart.
#[tokio::test]
async fn headers_bindings_keep_their_arguments_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers, true).await;
    declare_durable_queue(&ch, "q").await;
    ch.queue_bind(
        "q".into(),
        "hx".into(),
        "".into(),
        QueueBindOptions::default(),
        binding_arguments(),
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    let matching = persistent().with_headers(matching_headers());
    let routed = publish_confirmed(&ch, "hx", "", true, b"match", matching.clone()).await;
    assert_eq!(routed, Confirmation::Ack(None), "the binding still matches");
    let mut other = matching_headers();
    other.insert("kind".into(), AMQPValue::LongString("other".into()));
    let unrouted = publish_confirmed(
        &ch,
        "hx",
        "",
        true,
        b"no match",
        persistent().with_headers(other),
    )
    .await;
    assert!(
        matches!(unrouted, Confirmation::Ack(Some(_))),
        "{unrouted:?}"
    );
    assert_eq!(contents(&ch, "q").await, fresh(&["match"]));
    ch.queue_unbind("q".into(), "hx".into(), "".into(), binding_arguments())
        .await
        .unwrap();

    let broker = restart(broker, dir.path()).await;
    let (_conn, ch) = confirming(&broker).await;
    let after_unbind = publish_confirmed(&ch, "hx", "", true, b"match", matching).await;
    assert!(
        matches!(after_unbind, Confirmation::Ack(Some(_))),
        "the binding removed after a restart stays removed: {after_unbind:?}"
    );
}

fn matching_headers() -> FieldTable {
    table(&[
        ("kind", AMQPValue::LongString("order".into())),
        ("count", AMQPValue::LongInt(5)),
        ("ratio", AMQPValue::Double(2.5)),
        ("flag", AMQPValue::Boolean(true)),
    ])
}

fn binding_arguments() -> FieldTable {
    let mut t = matching_headers();
    t.insert("x-match".into(), AMQPValue::LongString("all".into()));
    t
}

#[tokio::test]
async fn queue_and_binding_arguments_holding_non_finite_floats_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    let weight = table(&[("x-weight", AMQPValue::Double(f64::INFINITY))]);
    ch.queue_declare("weighted".into(), durable_queue(), weight)
        .await
        .unwrap();
    publish_persistent(&ch, "", "weighted", "kept").await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers, true).await;
    declare_durable_queue(&ch, "q").await;
    let args = table(&[
        ("x-match", AMQPValue::LongString("all".into())),
        ("limit", AMQPValue::Double(f64::INFINITY)),
    ]);
    ch.queue_bind(
        "q".into(),
        "hx".into(),
        "".into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap();
    drop(conn);

    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(queue_exists(&conn, "weighted").await, "the queue came back");
    assert_eq!(contents(&ch, "weighted").await, fresh(&["kept"]));
    let headers = table(&[("limit", AMQPValue::Double(f64::INFINITY))]);
    let routed = publish_confirmed(
        &ch,
        "hx",
        "",
        true,
        b"m",
        persistent().with_headers(headers),
    )
    .await;
    assert_eq!(routed, Confirmation::Ack(None), "the binding came back");
}
