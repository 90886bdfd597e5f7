//! Basic flows driven by amqprs, whose assumptions differ from lapin's: it reads the server's
//! capabilities table with its own decoder, splits and reassembles bodies by frame_max itself,
//! and handles server-initiated channel.close and basic.cancel through callbacks.

mod common;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicPublishArguments,
    BasicQosArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::consumer::AsyncConsumer;
use amqprs::{
    Ack, BasicProperties, Cancel, CloseChannel, Deliver, FieldTable, FieldValue, Nack, Return,
};
use async_trait::async_trait;
use common::*;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long to wait before concluding that nothing more is coming.
const QUIET: Duration = Duration::from_millis(200);

/// What the server told a channel on its own initiative.
#[derive(Debug, PartialEq)]
enum ServerEvent {
    Close {
        code: u16,
        class_id: u16,
        method_id: u16,
    },
    Cancel(String),
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack(u64),
    Return {
        code: u16,
        routing_key: String,
        body: Vec<u8>,
    },
}

/// A channel callback that forwards every server-initiated method to the test.
struct Recorder(mpsc::UnboundedSender<ServerEvent>);

#[async_trait]
impl ChannelCallback for Recorder {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let event = ServerEvent::Close {
            code: close.reply_code(),
            class_id: close.class_id(),
            method_id: close.method_id(),
        };
        let _ = self.0.send(event);
        Ok(())
    }
    async fn cancel(
        &mut self,
        _channel: &Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self
            .0
            .send(ServerEvent::Cancel(cancel.consumer_tag().clone()));
        Ok(())
    }
    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        let _ = self.0.send(ServerEvent::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        let _ = self.0.send(ServerEvent::Nack(nack.delivery_tag()));
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _props: BasicProperties,
        body: Vec<u8>,
    ) {
        let _ = self.0.send(ServerEvent::Return {
            code: ret.reply_code(),
            routing_key: ret.routing_key().clone(),
            body,
        });
    }
}

/// A consumer that acks each delivery and hands it to the test.
struct Forward(mpsc::UnboundedSender<(Deliver, BasicProperties, Vec<u8>)>);

#[async_trait]
impl AsyncConsumer for Forward {
    async fn consume(
        &mut self,
        channel: &Channel,
        deliver: Deliver,
        props: BasicProperties,
        body: Vec<u8>,
    ) {
        channel
            .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await
            .expect("basic.ack");
        let _ = self.0.send((deliver, props, body));
    }
}

async fn connect(broker: &TestBroker) -> Connection {
    let addr = broker.addr();
    let args = OpenConnectionArguments::new(&addr.ip().to_string(), addr.port(), "guest", "guest");
    within("amqprs connection", Connection::open(&args))
        .await
        .expect("amqprs connects")
}

/// A channel whose server-initiated methods arrive on the returned receiver.
async fn recorded_channel(conn: &Connection) -> (Channel, mpsc::UnboundedReceiver<ServerEvent>) {
    let ch = within("channel.open", conn.open_channel(None))
        .await
        .expect("channel opens");
    let (tx, rx) = mpsc::unbounded_channel();
    ch.register_callback(Recorder(tx))
        .await
        .expect("callback registers");
    (ch, rx)
}

async fn declare(ch: &Channel, name: &str) -> (String, u32, u32) {
    within(
        "queue.declare",
        ch.queue_declare(QueueDeclareArguments::new(name)),
    )
    .await
    .expect("queue.declare")
    .expect("queue.declare-ok (not nowait)")
}

async fn publish(ch: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    let args = BasicPublishArguments::new(exchange, routing_key);
    ch.basic_publish(BasicProperties::default(), body.to_vec(), args)
        .await
        .expect("basic.publish");
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<ServerEvent>) -> ServerEvent {
    within("a server-initiated method", events.recv())
        .await
        .expect("channel callback dropped")
}

#[tokio::test]
async fn handshake_reports_rabbitmq_capabilities_and_limits() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let caps = conn.server_properties().capabilities();
    assert!(caps.publisher_confirms(), "publisher_confirms");
    assert!(caps.consumer_cancel_notify(), "consumer_cancel_notify");
    assert!(caps.basic_nack(), "basic.nack");
    assert!(
        caps.exchange_exchange_bindings(),
        "exchange_exchange_bindings"
    );
    assert!(caps.per_consumer_qos(), "per_consumer_qos");
    assert!(
        caps.authentication_failure_close(),
        "authentication_failure_close"
    );
    // amqprs takes the server's tune values as they are; these are RabbitMQ's defaults.
    assert_eq!(conn.channel_max(), 2047);
    assert_eq!(conn.frame_max(), 131072);
    assert_eq!(conn.heartbeat(), 60);
    // A round trip first, so that closing right after opening (below) is a separate test.
    let ch = within("channel.open", conn.open_channel(None))
        .await
        .expect("channel opens");
    assert!(ch.is_open());
    within("connection.close-ok", conn.close())
        .await
        .expect("clean connection close");
}

#[tokio::test]
async fn connection_closed_right_after_opening_closes_cleanly() {
    let broker = TestBroker::start().await;
    // amqprs stops reading at the first frame that arrives after close() began, expecting it to
    // be close-ok. RabbitMQ sends nothing in between; each round had a ~25% chance to fail when
    // Warren sent an early heartbeat, so twenty make the failure all but certain.
    for round in 0..20 {
        let conn = connect(&broker).await;
        let closed = within("connection.close-ok", conn.close()).await;
        assert!(closed.is_ok(), "round {round}: {closed:?}");
    }
}

#[tokio::test]
async fn declare_bind_publish_and_consume_with_an_async_consumer() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, _events) = recorded_channel(&conn).await;
    within(
        "exchange.declare",
        ch.exchange_declare(ExchangeDeclareArguments::new("orders", "direct")),
    )
    .await
    .expect("exchange.declare");
    declare(&ch, "orders.eu").await;
    within(
        "queue.bind",
        ch.queue_bind(QueueBindArguments::new("orders.eu", "orders", "eu")),
    )
    .await
    .expect("queue.bind");

    let mut headers = FieldTable::new();
    headers.insert(
        "region".try_into().unwrap(),
        FieldValue::S("eu-west".try_into().unwrap()),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json")
        .with_correlation_id("c-1")
        .with_message_id("m-1")
        .with_headers(headers)
        .with_persistence(true)
        .finish();
    for i in 0..3 {
        let body = format!("order {i}").into_bytes();
        ch.basic_publish(
            props.clone(),
            body,
            BasicPublishArguments::new("orders", "eu"),
        )
        .await
        .expect("publish");
    }
    // Routed nowhere: must not reach the queue.
    publish(&ch, "orders", "us", b"stray").await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let args = BasicConsumeArguments::new("orders.eu", "eu-consumer")
        .manual_ack(true)
        .finish();
    let tag = within("basic.consume-ok", ch.basic_consume(Forward(tx), args))
        .await
        .expect("basic.consume");
    assert_eq!(tag, "eu-consumer");
    for i in 0..3 {
        let (deliver, got, body) = within("a delivery", rx.recv())
            .await
            .expect("consumer task alive");
        assert_eq!(body, format!("order {i}").into_bytes());
        assert_eq!(deliver.consumer_tag(), "eu-consumer");
        assert_eq!(deliver.exchange(), "orders");
        assert_eq!(deliver.routing_key(), "eu");
        assert_eq!(deliver.delivery_tag(), i + 1);
        assert!(!deliver.redelivered());
        assert_eq!(
            got.content_type().map(String::as_str),
            Some("application/json")
        );
        assert_eq!(got.correlation_id().map(String::as_str), Some("c-1"));
        assert_eq!(got.message_id().map(String::as_str), Some("m-1"));
        assert_eq!(got.delivery_mode(), Some(2));
        let region = got
            .headers()
            .and_then(|h| h.get(&"region".try_into().unwrap()).cloned());
        assert_eq!(region, Some(FieldValue::S("eu-west".try_into().unwrap())));
    }
    assert!(
        tokio::time::timeout(QUIET, rx.recv()).await.is_err(),
        "the unrouted message was delivered"
    );

    // Every delivery was acked, so closing the channel requeues nothing.
    within("channel.close-ok", ch.close())
        .await
        .expect("channel closes");
    let (other, _events) = recorded_channel(&conn).await;
    let (_, messages, consumers) = declare(&other, "orders.eu").await;
    assert_eq!((messages, consumers), (0, 0));
}

#[tokio::test]
async fn basic_get_ack_and_requeue_on_channel_close() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, _events) = recorded_channel(&conn).await;
    declare(&ch, "jobs").await;
    for body in [&b"first"[..], b"second"] {
        publish(&ch, "", "jobs", body).await;
    }

    let get = |no_ack| ch.basic_get(BasicGetArguments::new("jobs").no_ack(no_ack).finish());
    let (get_ok, _, body) = within("basic.get-ok", get(false))
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(body, b"first");
    assert_eq!(get_ok.message_count(), 1, "messages left after this one");
    assert!(!get_ok.redelivered());
    ch.basic_ack(BasicAckArguments::new(get_ok.delivery_tag(), false))
        .await
        .expect("basic.ack");

    // Taken with ack and never acked: closing the channel puts it back, marked redelivered.
    let (get_ok, _, body) = within("basic.get-ok", get(false))
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(body, b"second");
    assert_eq!(get_ok.message_count(), 0);
    assert!(within("basic.get-empty", get(false))
        .await
        .expect("basic.get")
        .is_none());
    within("channel.close-ok", ch.close())
        .await
        .expect("channel closes");

    let (ch, _events) = recorded_channel(&conn).await;
    let get = ch.basic_get(BasicGetArguments::new("jobs").no_ack(true).finish());
    let (get_ok, _, body) = within("basic.get-ok", get)
        .await
        .expect("basic.get")
        .expect("the requeued message");
    assert_eq!(body, b"second");
    assert!(get_ok.redelivered());
    let get = ch.basic_get(BasicGetArguments::new("jobs").no_ack(true).finish());
    assert!(
        within("basic.get-empty", get)
            .await
            .expect("basic.get")
            .is_none(),
        "the acked message came back"
    );
}

#[tokio::test]
async fn publisher_confirms_ack_every_message() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, mut events) = recorded_channel(&conn).await;
    declare(&ch, "confirmed").await;
    within(
        "confirm.select-ok",
        ch.confirm_select(ConfirmSelectArguments::default()),
    )
    .await
    .expect("confirm.select");
    const N: u64 = 50;
    for i in 0..N {
        publish(&ch, "", "confirmed", format!("m{i}").as_bytes()).await;
    }
    // Acks may be coalesced with `multiple`, but must cover 1..=N in order, each tag once.
    let mut confirmed = 0;
    while confirmed < N {
        match next_event(&mut events).await {
            ServerEvent::Ack { tag, multiple } => {
                assert!(
                    tag > confirmed,
                    "ack {tag} goes backwards (already confirmed up to {confirmed})"
                );
                assert!(
                    multiple || tag == confirmed + 1,
                    "single ack {tag} skips tags after {confirmed}"
                );
                confirmed = tag;
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    assert_eq!(confirmed, N);
    // An unroutable publish is confirmed too (RabbitMQ acks messages no queue took).
    publish(&ch, "", "no-such-queue", b"lost").await;
    assert_eq!(
        next_event(&mut events).await,
        ServerEvent::Ack {
            tag: N + 1,
            multiple: false
        }
    );
    let (_, messages, _) = declare(&ch, "confirmed").await;
    assert_eq!(messages, N as u32);
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_then_confirmed() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, mut events) = recorded_channel(&conn).await;
    within(
        "confirm.select-ok",
        ch.confirm_select(ConfirmSelectArguments::default()),
    )
    .await
    .expect("confirm.select");
    let args = BasicPublishArguments::new("amq.direct", "nobody")
        .mandatory(true)
        .finish();
    ch.basic_publish(BasicProperties::default(), b"bounce".to_vec(), args)
        .await
        .expect("basic.publish");
    // RabbitMQ sends basic.return before the confirm of the same message.
    let returned = ServerEvent::Return {
        code: 312,
        routing_key: "nobody".into(),
        body: b"bounce".to_vec(),
    };
    assert_eq!(next_event(&mut events).await, returned);
    assert_eq!(
        next_event(&mut events).await,
        ServerEvent::Ack {
            tag: 1,
            multiple: false
        }
    );
}

#[tokio::test]
async fn bodies_larger_than_frame_max_and_empty_bodies_round_trip() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, _events) = recorded_channel(&conn).await;
    declare(&ch, "sizes").await;
    // More than two frame_max (131072) worth: amqprs splits it on the way in, Warren on the way out.
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let bodies = [large.clone(), Vec::new(), b"tail".to_vec()];
    for body in &bodies {
        publish(&ch, "", "sizes", body).await;
    }
    within(
        "basic.qos-ok",
        ch.basic_qos(BasicQosArguments::new(0, 10, false)),
    )
    .await
    .expect("basic.qos");
    let args = BasicConsumeArguments::new("sizes", "")
        .manual_ack(true)
        .finish();
    let (tag, mut rx) = within("basic.consume-ok", ch.basic_consume_rx(args))
        .await
        .expect("basic.consume");
    assert!(
        tag.starts_with("amq.ctag-"),
        "server-generated consumer tag {tag:?}"
    );
    for expected in &bodies {
        let msg = within("a delivery", rx.recv())
            .await
            .expect("consumer open");
        let body = msg.content.expect("content");
        assert_eq!(body.len(), expected.len());
        assert!(
            body == *expected,
            "body of {} bytes differs",
            expected.len()
        );
        let deliver = msg.deliver.expect("deliver");
        ch.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await
            .expect("basic.ack");
    }

    // basic.get-ok with an empty body: no body frame follows the header.
    publish(&ch, "", "sizes", b"").await;
    let (other, _events) = recorded_channel(&conn).await;
    declare(&other, "sizes-get").await;
    publish(&other, "", "sizes-get", b"").await;
    let get = other.basic_get(BasicGetArguments::new("sizes-get").no_ack(true).finish());
    let (_, _, body) = within("basic.get-ok", get)
        .await
        .expect("basic.get")
        .expect("a message");
    assert!(body.is_empty());
    let msg = within("a delivery", rx.recv())
        .await
        .expect("consumer open");
    assert_eq!(msg.content.expect("content"), Vec::<u8>::new());
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_closes_the_channel_with_404() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, mut events) = recorded_channel(&conn).await;
    let passive = QueueDeclareArguments::new("does-not-exist")
        .passive(true)
        .finish();
    let result = within("the channel to fail", ch.queue_declare(passive)).await;
    assert!(
        result.is_err(),
        "passive declare of a missing queue succeeded: {result:?}"
    );
    // queue.declare is class 50, method 10.
    assert_eq!(
        next_event(&mut events).await,
        ServerEvent::Close {
            code: 404,
            class_id: 50,
            method_id: 10
        }
    );
    assert!(!ch.is_open(), "amqprs still thinks the channel is open");

    // Only the channel died: the connection carries on.
    assert!(conn.is_open());
    let (ch, _events) = recorded_channel(&conn).await;
    let (name, _, _) = declare(&ch, "exists-now").await;
    assert_eq!(name, "exists-now");
    let (other, _events) = recorded_channel(&conn).await;
    assert_ne!(ch.channel_id(), other.channel_id());
    within("connection.close-ok", conn.close())
        .await
        .expect("clean connection close");
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_amqprs_consumer() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let (ch, mut events) = recorded_channel(&conn).await;
    declare(&ch, "doomed").await;
    let args = BasicConsumeArguments::new("doomed", "watcher")
        .manual_ack(false)
        .finish();
    let (_, mut deliveries) = within("basic.consume-ok", ch.basic_consume_rx(args))
        .await
        .expect("basic.consume");

    let deleter_conn = connect(&broker).await;
    let (deleter, _events) = recorded_channel(&deleter_conn).await;
    let deleted = within(
        "queue.delete-ok",
        deleter.queue_delete(QueueDeleteArguments::new("doomed")),
    )
    .await;
    assert_eq!(deleted.expect("queue.delete"), Some(0));

    assert_eq!(
        next_event(&mut events).await,
        ServerEvent::Cancel("watcher".into())
    );
    // amqprs drops the consumer once its cancel callback returns: the stream ends.
    assert!(within("the consumer to end", deliveries.recv())
        .await
        .is_none());
    // The channel itself stays open and usable.
    assert!(ch.is_open());
    declare(&ch, "after-cancel").await;
}
