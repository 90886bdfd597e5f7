//! The built-in `x-delayed-message` exchange: messages with an `x-delay` header wait, then
//! route as the exchange's `x-delayed-type` would, across restarts for persistent ones.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::{Duration, Instant};

async fn delayed_exchange(ch: &Channel, name: &str, durable: bool) {
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString(LongString::from(b"direct".to_vec())),
    );
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        options,
        args,
    )
    .await
    .expect("declare delayed exchange");
}

async fn bound_queue(ch: &Channel, queue: &str, exchange: &str, durable: bool) {
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

fn delayed_by(ms: i64, persistent: bool) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    let props = BasicProperties::default().with_headers(headers);
    if persistent {
        props.with_delivery_mode(2)
    } else {
        props
    }
}

async fn publish_confirmed(ch: &Channel, exchange: &str, body: &str, props: BasicProperties) {
    let c = ch
        .basic_publish(
            exchange.into(),
            "k".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .unwrap();
    assert!(within("confirm", c).await.unwrap().is_ack());
}

#[tokio::test]
async fn a_delayed_message_waits_for_its_delay_then_routes() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    delayed_exchange(&ch, "later", false).await;
    bound_queue(&ch, "q", "later", false).await;
    let start = Instant::now();
    publish_confirmed(&ch, "later", "slow", delayed_by(400, false)).await;
    publish_confirmed(&ch, "later", "fast", delayed_by(100, false)).await;
    publish_confirmed(&ch, "later", "now", BasicProperties::default()).await;
    assert_eq!(
        queue_counts(&ch, "q").await.0,
        1,
        "only the undelayed message is routed at once"
    );
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let order: Vec<(String, Duration)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let d = next_delivery(&mut consumer).await;
            v.push((
                String::from_utf8_lossy(&d.data).into_owned(),
                start.elapsed(),
            ));
        }
        v
    };
    assert_eq!(
        order.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
        ["now", "fast", "slow"]
    );
    assert!(
        order[1].1 >= Duration::from_millis(100),
        "fast arrived after {:?}",
        order[1].1
    );
    assert!(
        order[2].1 >= Duration::from_millis(400),
        "slow arrived after {:?}",
        order[2].1
    );
}

#[tokio::test]
async fn a_delayed_exchange_needs_a_valid_delayed_type() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let err = ch
        .exchange_declare(
            "bad".into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
}

#[tokio::test]
async fn a_persistent_delayed_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (conn, ch) = broker.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        delayed_exchange(&ch, "later", true).await;
        bound_queue(&ch, "kept", "later", true).await;
        publish_confirmed(&ch, "later", "waited", delayed_by(800, true)).await;
        assert_eq!(queue_counts(&ch, "kept").await.0, 0);
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    let mut consumer = ch
        .basic_consume(
            "kept".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"waited");
    d.ack(BasicAckOptions::default()).await.unwrap();
}
