//! The consistent-hash and random exchanges RabbitMQ bundles as plugins, built in: weights,
//! stable key placement, hash-header and hash-property, their 406s, and random picks in
//! proportion to bindings.

mod common;

use common::provoke::*;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};

fn custom(kind: &str) -> ExchangeKind {
    ExchangeKind::Custom(kind.into())
}

async fn publish_with(ch: &Channel, exchange: &str, key: &str, properties: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        b"x",
        properties,
    )
    .await
    .unwrap();
}

/// Publishes with confirms so that every message has been routed when this returns.
async fn confirmed(ch: &Channel) {
    ch.wait_for_confirms().await.unwrap();
}

#[tokio::test]
async fn consistent_hash_spreads_by_weight_and_keeps_keys_in_place() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    exchange(
        &ch,
        "hashed",
        custom("x-consistent-hash"),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in ["light", "heavy"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "light", "hashed", "1").await.unwrap();
    bind(&ch, "heavy", "hashed", "+3").await.unwrap();
    for i in 0..4000 {
        publish_with(
            &ch,
            "hashed",
            &format!("key-{i}"),
            BasicProperties::default(),
        )
        .await;
    }
    confirmed(&ch).await;
    let (light, _) = queue_counts(&ch, "light").await;
    let (heavy, _) = queue_counts(&ch, "heavy").await;
    assert_eq!(
        light + heavy,
        4000,
        "each message goes to exactly one queue"
    );
    let share = f64::from(light) / 4000.0;
    assert!((0.21..0.29).contains(&share), "light's share {share}");

    // The same key always lands in the same queue.
    ch.queue_purge("light".into(), Default::default())
        .await
        .unwrap();
    ch.queue_purge("heavy".into(), Default::default())
        .await
        .unwrap();
    for _ in 0..20 {
        publish_with(&ch, "hashed", "one-key", BasicProperties::default()).await;
    }
    confirmed(&ch).await;
    let counts = (
        queue_counts(&ch, "light").await.0,
        queue_counts(&ch, "heavy").await.0,
    );
    assert!(counts == (20, 0) || counts == (0, 20), "{counts:?}");
}

#[tokio::test]
async fn consistent_hash_can_hash_a_header_or_a_property() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let by_header = table(&[("hash-header", longstr("tenant"))]);
    exchange(
        &ch,
        "by-header",
        custom("x-consistent-hash"),
        Default::default(),
        by_header,
    )
    .await
    .unwrap();
    let by_id = table(&[("hash-property", longstr("message_id"))]);
    exchange(
        &ch,
        "by-id",
        custom("x-consistent-hash"),
        Default::default(),
        by_id,
    )
    .await
    .unwrap();
    for (q, x) in [
        ("a", "by-header"),
        ("b", "by-header"),
        ("c", "by-id"),
        ("d", "by-id"),
    ] {
        declare_queue(&ch, q).await;
        bind(&ch, q, x, "1").await.unwrap();
    }
    // Different routing keys, one header value: one queue takes them all.
    for i in 0..20 {
        let headers = table(&[("tenant", longstr("acme"))]);
        let props = BasicProperties::default().with_headers(headers);
        publish_with(&ch, "by-header", &format!("k{i}"), props).await;
    }
    for i in 0..20 {
        let props = BasicProperties::default().with_message_id("order-7".into());
        publish_with(&ch, "by-id", &format!("k{i}"), props).await;
    }
    confirmed(&ch).await;
    for (one, other) in [("a", "b"), ("c", "d")] {
        let counts = (
            queue_counts(&ch, one).await.0,
            queue_counts(&ch, other).await.0,
        );
        assert!(
            counts == (20, 0) || counts == (0, 20),
            "one value, one queue: {counts:?}"
        );
    }
}

#[tokio::test]
async fn consistent_hash_refuses_bad_weights_and_arguments_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    exchange(
        &ch,
        "hashed",
        custom("x-consistent-hash"),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(&ch, "q").await;
    for (key, text) in [
        (
            "abc",
            "PRECONDITION_FAILED - The binding key must be an integer: <<\"abc\">>",
        ),
        (
            "0",
            "PRECONDITION_FAILED - The binding key must be greater than 0",
        ),
        (
            "",
            "PRECONDITION_FAILED - The binding key must be an integer: <<>>",
        ),
        (
            "1000000",
            "PRECONDITION_FAILED - The binding key must be at most 10000 on Warren",
        ),
    ] {
        let err = bind(&open_channel(&conn).await, "q", "hashed", key)
            .await
            .unwrap_err();
        assert_reply(&err, 406, text);
    }
    for (arguments, text) in [
        (
            table(&[
                ("hash-header", longstr("h")),
                ("hash-property", longstr("message_id")),
            ]),
            "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive",
        ),
        (
            table(&[("hash-property", longstr("priority"))]),
            "PRECONDITION_FAILED - Unsupported property: priority",
        ),
        (
            table(&[("hash-header", long(5))]),
            "PRECONDITION_FAILED - hash-header must be a string, got long",
        ),
    ] {
        let ch = open_channel(&conn).await;
        let err = exchange(
            &ch,
            "bad",
            custom("x-consistent-hash"),
            Default::default(),
            arguments,
        )
        .await
        .unwrap_err();
        assert_reply(&err, 406, text);
    }
    // Redeclared with another type: RabbitMQ prints the plugin types as quoted atoms.
    let err = exchange(
        &open_channel(&conn).await,
        "hashed",
        custom("x-random"),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_err();
    assert_reply(
        &err,
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'hashed' in vhost '/': \
         received ''x-random'' but current is ''x-consistent-hash''",
    );
    assert_works(
        &open_channel(&conn).await,
        "the connection after the channel errors",
    )
    .await;
}

#[tokio::test]
async fn random_picks_one_binding_in_proportion_and_returns_when_none() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    exchange(
        &ch,
        "dice",
        custom("x-random"),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Unbound: a mandatory message comes back with 312.
    let returned = ch
        .basic_publish(
            "dice".into(),
            "k".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"nowhere",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .take_message()
        .expect("returned");
    assert_eq!(returned.reply_code, 312);
    for q in ["once", "thrice"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "once", "dice", "a").await.unwrap();
    for key in ["a", "b", "c"] {
        bind(&ch, "thrice", "dice", key).await.unwrap();
    }
    for _ in 0..4000 {
        publish_with(&ch, "dice", "ignored", BasicProperties::default()).await;
    }
    confirmed(&ch).await;
    let (once, _) = queue_counts(&ch, "once").await;
    let (thrice, _) = queue_counts(&ch, "thrice").await;
    assert_eq!(once + thrice, 4000);
    let share = f64::from(once) / 4000.0;
    assert!((0.2..0.3).contains(&share), "once's share {share}");
}
