//! Provoking errors and checking their answers: a method run on a new channel, the close it draws
//! (reply code, text, scope), and proof that the channel, connection and broker around it go on as
//! they should. Shared by the errors_* tests.

use super::*;
use futures_lite::{Stream, StreamExt};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Event, ExchangeKind};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How the server's close reaches the client.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// The method waits for a reply; the close takes its place and fails the call.
    Reply,
    /// The method has no reply (publish, ack, reject, recover-async): the close arrives on
    /// its own and lapin reports it as a connection event.
    Event,
}

pub type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

pub async fn open_channel(conn: &Connection) -> Channel {
    within("channel.open-ok", conn.create_channel())
        .await
        .expect("channel opens")
}

/// The next error the connection reports (a channel or connection close from the server).
pub async fn next_error(events: &mut Events) -> lapin::Error {
    within("the server's close", async {
        loop {
            match events.next().await {
                Some(Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await
}

/// Runs `op` on `ch` and returns the error the server answered it with.
pub async fn provoke<T: Debug, Fut>(
    conn: &Connection,
    ch: Channel,
    via: Via,
    op: impl FnOnce(Channel) -> Fut,
) -> lapin::Error
where
    Fut: Future<Output = lapin::Result<T>>,
{
    // Listen before acting, so the close cannot be missed.
    let mut events: Events = Box::pin(conn.events_listener());
    match (within("the provoking method", op(ch)).await, via) {
        (Err(e), _) => e,
        (Ok(v), Via::Reply) => panic!("expected an error, but the method succeeded with {v:?}"),
        (Ok(_), Via::Event) => next_error(&mut events).await,
    }
}

#[track_caller]
pub fn assert_reply(err: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(err), Some(code), "reply code of: {err}");
    assert_eq!(
        reply_text(err).as_deref(),
        Some(text),
        "reply text of: {err}"
    );
}

/// A new queue on `ch` takes a publish and gives it back: the channel works.
pub async fn assert_works(ch: &Channel, what: &str) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("works-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let queue = within(
        "queue.declare-ok",
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: queue.declare failed: {e}"));
    within(
        "basic.publish",
        ch.basic_publish(
            "".into(),
            queue.name().clone(),
            BasicPublishOptions::default(),
            b"still working",
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: basic.publish failed: {e}"));
    let got = within(
        "basic.get-ok",
        ch.basic_get(queue.name().clone(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: basic.get failed: {e}"))
    .unwrap_or_else(|| panic!("{what}: the message just published is not in its queue"));
    assert_eq!(got.delivery.data, b"still working", "{what}");
}

/// Runs `op` on a new channel of `conn` and asserts that the server closes that channel, and
/// only that channel, with `code` and `text`.
pub async fn channel_error<T: Debug, Fut>(
    conn: &Connection,
    via: Via,
    code: u16,
    text: &str,
    op: impl FnOnce(Channel) -> Fut,
) where
    Fut: Future<Output = lapin::Result<T>>,
{
    let before = open_channel(conn).await;
    let ch = open_channel(conn).await;
    let err = provoke(conn, ch.clone(), via, op).await;
    assert_reply(&err, code, text);
    assert!(
        !ch.status().connected(),
        "the channel that failed with {code} is still open"
    );
    assert!(
        conn.status().connected(),
        "the channel error {code} closed the connection"
    );
    assert_works(&before, "a channel opened before the channel error").await;
    assert_works(
        &open_channel(conn).await,
        "a channel opened after the channel error",
    )
    .await;
}

/// Runs `op` on a channel of a new connection and asserts that the server closes the whole
/// connection with `code` and `text`, while another connection keeps working.
pub async fn connection_error<T: Debug, Fut>(
    broker: &TestBroker,
    via: Via,
    code: u16,
    text: &str,
    op: impl FnOnce(Channel) -> Fut,
) where
    Fut: Future<Output = lapin::Result<T>>,
{
    let (_neighbour, neighbour_ch) = broker.channel().await;
    let conn = broker.connect().await;
    let sibling = open_channel(&conn).await;
    let ch = open_channel(&conn).await;
    let err = provoke(&conn, ch, via, op).await;
    assert_reply(&err, code, text);
    assert!(
        !conn.status().connected(),
        "the connection error {code} left the connection open"
    );
    let r = within(
        "a method on another channel of the closed connection",
        sibling.queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert!(
        r.is_err(),
        "another channel still works after connection error {code}"
    );
    assert_works(
        &neighbour_ch,
        "another connection after the connection error",
    )
    .await;
}

pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn longstr(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

/// A 64-bit signed integer, field type `l`, which RabbitMQ calls 'long'.
pub fn long(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

pub const PASSIVE_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: true,
    durable: false,
    auto_delete: false,
    internal: false,
    nowait: false,
};

pub const PASSIVE_Q: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

pub async fn exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    arguments: FieldTable,
) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, options, arguments)
        .await
}

pub async fn queue(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name.into(), options, arguments).await
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// Starts a consumer. Keep what it returns: lapin cancels a consumer when it is dropped.
pub async fn consume(
    ch: &Channel,
    queue: &str,
    tag: &str,
    exclusive: bool,
) -> lapin::Result<lapin::Consumer> {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            exclusive,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

pub async fn get(
    ch: &Channel,
    queue: &str,
) -> lapin::Result<Option<lapin::message::BasicGetMessage>> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
}

/// Publishes one message to `queue` through the default exchange and takes it back with
/// basic.get (unacked): the delivery tag it returns is outstanding on `ch`.
pub async fn get_one(ch: &Channel, queue: &str) -> lapin::Result<u64> {
    publish(ch, "", queue, b"m").await;
    let got = get(ch, queue).await?.expect("a message to get");
    Ok(got.delivery.delivery_tag)
}

pub async fn ack(ch: &Channel, tag: u64, multiple: bool) -> lapin::Result<()> {
    ch.basic_ack(tag, BasicAckOptions { multiple }).await
}

pub const VHOST: &str = "in vhost '/'";
