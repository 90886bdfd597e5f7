//! Brokers restarted on a data directory the test keeps, and helpers for what a restarted broker
//! must still hold. Shared by the restart and kill tests.

use super::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use std::path::Path;

/// Stops gracefully (the broker closes the connections still open) and starts a new broker
/// on the same directory.
pub async fn restart(broker: TestBroker, dir: &Path) -> TestBroker {
    within("a graceful stop", broker.server.stop())
        .await
        .expect("the broker stops cleanly");
    TestBroker::start_in(dir).await
}

/// A new connection with a channel in confirm mode.
pub async fn confirming(broker: &TestBroker) -> (Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

pub fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

pub async fn declare_durable_queue(ch: &Channel, name: &str) {
    ch.queue_declare(name.into(), durable_queue(), FieldTable::default())
        .await
        .expect("durable queue.declare");
}

pub async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, durable: bool) {
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .expect("exchange.declare");
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Publishes on a confirm-mode channel and returns the broker's confirmation.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    let options = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await
        .expect("basic.publish");
    within("a publisher confirm", confirm)
        .await
        .expect("publisher confirm")
}

/// Publishes a persistent message on a confirm-mode channel and expects a plain ack.
pub async fn publish_persistent(ch: &Channel, exchange: &str, routing_key: &str, body: &str) {
    let confirmation = publish_confirmed(
        ch,
        exchange,
        routing_key,
        false,
        body.as_bytes(),
        persistent(),
    )
    .await;
    assert_eq!(confirmation, Confirmation::Ack(None), "publish of {body:?}");
}

/// Publishes with the given properties on a confirm-mode channel and expects a plain ack.
pub async fn publish_with(ch: &Channel, routing_key: &str, body: &str, props: BasicProperties) {
    let confirmation = publish_confirmed(ch, "", routing_key, false, body.as_bytes(), props).await;
    assert_eq!(confirmation, Confirmation::Ack(None), "publish of {body:?}");
}

/// Takes every message in a queue with basic.get (unacked on `ch`), head first.
pub async fn get_all(ch: &Channel, queue: &str) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let got = within(
            "basic.get",
            ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .expect("basic.get");
        match got {
            Some(m) => out.push(m.delivery),
            None => return out,
        }
        assert!(out.len() <= 10_000, "queue '{queue}' never runs dry");
    }
}

pub fn text(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

/// The bodies in a queue, head first, each with its redelivered flag.
pub async fn contents(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    get_all(ch, queue)
        .await
        .iter()
        .map(|d| (text(d), d.redelivered))
        .collect()
}

pub fn fresh(bodies: &[&str]) -> Vec<(String, bool)> {
    bodies.iter().map(|b| (b.to_string(), false)).collect()
}

/// Whether a passive queue.declare finds the queue (on a channel of its own, since a 404
/// closes the channel).
pub async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => true,
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive queue.declare of '{name}' failed: {e}"),
    }
}

pub async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => true,
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive exchange.declare of '{name}' failed: {e}"),
    }
}
