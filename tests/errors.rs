//! Errors a client can provoke, answered as RabbitMQ 3.10 answers them: the reply code, the
//! reply text, and the scope. A channel error closes only its channel: the connection, a channel
//! opened before the error and one opened after it keep working. A connection error ends the
//! connection, and the broker keeps serving everyone else. Also the missing-object cases
//! RabbitMQ is lenient about, which must succeed.

mod common;

use common::*;
use futures_lite::{Stream, StreamExt};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Event, ExchangeKind};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------------
// harness

/// How the server's close reaches the client.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The method waits for a reply; the close takes its place and fails the call.
    Reply,
    /// The method has no reply (publish, ack, reject, recover-async): the close arrives on
    /// its own and lapin reports it as a connection event.
    Event,
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn open_channel(conn: &Connection) -> Channel {
    within("channel.open-ok", conn.create_channel())
        .await
        .expect("channel opens")
}

/// The next error the connection reports (a channel or connection close from the server).
async fn next_error(events: &mut Events) -> lapin::Error {
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
async fn provoke<T: Debug, Fut>(
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
fn assert_reply(err: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(err), Some(code), "reply code of: {err}");
    assert_eq!(
        reply_text(err).as_deref(),
        Some(text),
        "reply text of: {err}"
    );
}

/// A new queue on `ch` takes a publish and gives it back: the channel works.
async fn assert_works(ch: &Channel, what: &str) {
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
async fn channel_error<T: Debug, Fut>(
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
async fn connection_error<T: Debug, Fut>(
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

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn longstr(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

/// A 64-bit signed integer, field type `l`, which RabbitMQ calls 'long'.
fn long(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

const PASSIVE_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: true,
    durable: false,
    auto_delete: false,
    internal: false,
    nowait: false,
};

const PASSIVE_Q: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

async fn exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    arguments: FieldTable,
) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, options, arguments)
        .await
}

async fn queue(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name.into(), options, arguments).await
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
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
async fn consume(
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

async fn get(ch: &Channel, queue: &str) -> lapin::Result<Option<lapin::message::BasicGetMessage>> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
}

/// Publishes one message to `queue` through the default exchange and takes it back with
/// basic.get (unacked): the delivery tag it returns is outstanding on `ch`.
async fn get_one(ch: &Channel, queue: &str) -> lapin::Result<u64> {
    publish(ch, "", queue, b"m").await;
    let got = get(ch, queue).await?.expect("a message to get");
    Ok(got.delivery.delivery_tag)
}

async fn ack(ch: &Channel, tag: u64, multiple: bool) -> lapin::Result<()> {
    ch.basic_ack(tag, BasicAckOptions { multiple }).await
}

const VHOST: &str = "in vhost '/'";

// ---------------------------------------------------------------------------------------------
// exchange.declare

#[tokio::test]
async fn declaring_an_exchange_with_the_reserved_amq_prefix_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.foo", "amq.default"] {
        let text =
            format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            exchange(
                &ch,
                name,
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["nosuchex17", "amq.foo"] {
        let text = format!("NOT_FOUND - no exchange '{name}' {VHOST}");
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            exchange(
                &ch,
                name,
                ExchangeKind::Direct,
                PASSIVE_X,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn redeclaring_amq_direct_with_another_type_or_durability_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    exchange(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("amq.direct redeclared exactly as it is");

    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' {VHOST}: \
         received 'fanout' but current is 'direct'"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "amq.direct",
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
    })
    .await;
    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' {VHOST}: \
         received 'false' but current is 'true'"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "amq.direct",
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn redeclaring_an_exchange_with_other_properties_is_406_naming_the_first_difference() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("an identical redeclaration is fine");

    let inequivalent = |arg: &str, detail: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange 'ux17' {VHOST}: {detail}"
        )
    };
    let text = inequivalent("type", "received 'fanout' but current is 'direct'");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "ux17",
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    let flags = [
        (
            "durable",
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
        ),
        (
            "auto_delete",
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
        ),
        (
            "internal",
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
        ),
    ];
    for (arg, options) in flags {
        let text = inequivalent(arg, "received 'true' but current is 'false'");
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            exchange(
                &ch,
                "ux17",
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
    let text = inequivalent(
        "alternate-exchange",
        "received the value 'amq.fanout' of type 'longstr' but current is none",
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let args = table(&[("alternate-exchange", longstr("amq.fanout"))]);
        exchange(&ch, "ux17", ExchangeKind::Direct, Default::default(), args).await
    })
    .await;
}

#[tokio::test]
async fn passive_declare_of_an_existing_exchange_checks_nothing_else() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let different = ExchangeDeclareOptions {
        durable: true,
        auto_delete: true,
        internal: true,
        ..PASSIVE_X
    };
    let args = table(&[("alternate-exchange", longstr("amq.fanout"))]);
    for name in ["ux17", "amq.direct"] {
        exchange(&ch, name, ExchangeKind::Fanout, different, args.clone())
            .await
            .unwrap_or_else(|e| panic!("passive declare of {name} with other properties: {e}"));
    }
    assert!(ch.status().connected());
}

#[tokio::test]
async fn declaring_the_default_exchange_is_refused_with_403_passive_or_not() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    for options in [ExchangeDeclareOptions::default(), PASSIVE_X] {
        channel_error(&conn, Via::Reply, 403, text, |ch| async move {
            exchange(
                &ch,
                "",
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn an_unknown_exchange_type_closes_the_connection_with_503() {
    let broker = TestBroker::start().await;
    for kind in ["foo", ""] {
        let text = format!("COMMAND_INVALID - invalid exchange type '{kind}'");
        connection_error(&broker, Via::Reply, 503, &text, |ch| async move {
            exchange(
                &ch,
                "ux17",
                ExchangeKind::Custom(kind.into()),
                Default::default(),
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
    let (_conn, ch) = broker.channel().await;
    let r = exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await;
    assert_eq!(
        r.map_err(|e| reply_code(&e)).err(),
        Some(Some(404)),
        "a refused declaration created the exchange"
    );
}

#[tokio::test]
async fn an_alternate_exchange_argument_that_is_not_a_string_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!(
        "PRECONDITION_FAILED - invalid type 'long' for arg 'alternate-exchange' in exchange 'ex21' {VHOST}"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let args = table(&[("alternate-exchange", long(5))]);
        exchange(&ch, "ex21", ExchangeKind::Direct, Default::default(), args).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// exchange.delete, exchange.bind and unbind, publishing to exchanges

#[tokio::test]
async fn deleting_a_system_exchange_is_refused_with_403_even_when_it_does_not_exist() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.direct", "amq.nosuch", "amq.default"] {
        let text =
            format!("ACCESS_REFUSED - deletion of system exchange '{name}' {VHOST} not allowed");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await
        })
        .await;
    }
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        ch.exchange_delete("".into(), ExchangeDeleteOptions::default())
            .await
    })
    .await;
    let ch = open_channel(&conn).await;
    exchange(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("amq.direct survived the refused delete");
}

#[tokio::test]
async fn exchange_delete_if_unused_refuses_the_source_of_a_binding_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["ux17", "dest17"] {
        exchange(
            &ch,
            name,
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
    }
    queue(&ch, "q17", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    bind(&ch, "q17", "ux17", "k").await.expect("queue.bind");
    ch.exchange_bind(
        "dest17".into(),
        "amq.fanout".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");

    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        ..Default::default()
    };
    let text = format!("PRECONDITION_FAILED - exchange 'ux17' {VHOST} in use");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        ch.exchange_delete("ux17".into(), if_unused).await
    })
    .await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("the exchange in use survived");

    ch.exchange_delete("dest17".into(), if_unused)
        .await
        .expect("an exchange that is only a binding's destination is unused");
    ch.exchange_delete("ux17".into(), ExchangeDeleteOptions::default())
        .await
        .expect("without if-unused an exchange in use is deleted");
    for name in ["ux17", "dest17"] {
        let ch = open_channel(&conn).await;
        let r = exchange(
            &ch,
            name,
            ExchangeKind::Direct,
            PASSIVE_X,
            FieldTable::default(),
        )
        .await;
        assert_eq!(
            r.map_err(|e| reply_code(&e)).err(),
            Some(Some(404)),
            "{name} was not deleted"
        );
    }
}

#[tokio::test]
async fn deleting_a_missing_exchange_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for if_unused in [false, true] {
        ch.exchange_delete(
            "nosuchex17".into(),
            ExchangeDeleteOptions {
                if_unused,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("exchange.delete if_unused={if_unused}: {e}"));
    }
    assert_works(&ch, "the channel after deleting missing exchanges").await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["no-such-ex", "amq.default"] {
        let text = format!("NOT_FOUND - no exchange '{name}' {VHOST}");
        channel_error(&conn, Via::Event, 404, &text, |ch| async move {
            publish(&ch, name, "k", b"lost").await;
            Ok(())
        })
        .await;
    }
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    exchange(
        &ch,
        "ux17i",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let text = format!("ACCESS_REFUSED - cannot publish to internal exchange 'ux17i' {VHOST}");
    channel_error(&conn, Via::Event, 403, &text, |ch| async move {
        publish(&ch, "ux17i", "", b"refused").await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn exchange_bind_to_a_missing_destination_is_404_and_unbinding_nothing_succeeds() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!("NOT_FOUND - no exchange 'nosuch' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        ch.exchange_bind(
            "nosuch".into(),
            "amq.direct".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    let ch = open_channel(&conn).await;
    for (destination, source) in [("amq.fanout", "amq.direct"), ("nosuch", "nosuch2")] {
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            "k".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("exchange.unbind {destination} from {source}: {e}"));
    }
    assert_works(&ch, "the channel after unbinding nothing").await;
}

// ---------------------------------------------------------------------------------------------
// queue.declare

#[tokio::test]
async fn declaring_a_queue_with_the_reserved_amq_prefix_is_403_and_passive_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.foo18", "amq.gen-foo18"] {
        let text = format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            queue(&ch, name, Default::default(), FieldTable::default()).await
        })
        .await;
    }
    let text = format!("NOT_FOUND - no queue 'amq.foo18' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        queue(&ch, "amq.foo18", PASSIVE_Q, FieldTable::default()).await
    })
    .await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404_and_of_an_existing_one_checks_nothing() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["nosuchq18", ""] {
        let text = format!("NOT_FOUND - no queue '{name}' {VHOST}");
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            queue(&ch, name, PASSIVE_Q, FieldTable::default()).await
        })
        .await;
    }
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let different = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..PASSIVE_Q
    };
    let args = table(&[("x-message-ttl", long(1000))]);
    let q = queue(&ch, "q18", different, args)
        .await
        .expect("a passive declare ignores flags and arguments");
    assert_eq!(q.name().as_str(), "q18");
}

#[tokio::test]
async fn redeclaring_a_queue_with_other_durability_or_auto_delete_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    queue(&ch, "q18d", durable, FieldTable::default())
        .await
        .expect("durable queue.declare");

    let cases = [
        (
            "q18",
            "durable",
            durable,
            "received 'true' but current is 'false'",
        ),
        (
            "q18",
            "auto_delete",
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            "received 'true' but current is 'false'",
        ),
        (
            "q18d",
            "durable",
            QueueDeclareOptions::default(),
            "received 'false' but current is 'true'",
        ),
    ];
    for (name, arg, options, detail) in cases {
        let text = format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' {VHOST}: {detail}"
        );
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, options, FieldTable::default()).await
        })
        .await;
    }
}

#[tokio::test]
async fn redeclaring_a_queue_with_other_arguments_is_406_with_rabbitmqs_texts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let ttl = table(&[("x-message-ttl", long(1000))]);
    queue(&ch, "q18t", Default::default(), ttl.clone())
        .await
        .expect("queue.declare with x-message-ttl");

    let inequivalent = |name: &str, arg: &str, detail: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' {VHOST}: {detail}"
        )
    };
    let cases = [
        (
            "q18",
            table(&[("x-message-ttl", long(1000))]),
            inequivalent(
                "q18",
                "x-message-ttl",
                "received the value '1000' of type 'long' but current is none",
            ),
        ),
        (
            "q18t",
            table(&[("x-message-ttl", long(2000))]),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received '2000' but current is '1000'",
            ),
        ),
        (
            "q18t",
            FieldTable::default(),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received none but current is the value '1000' of type 'long'",
            ),
        ),
        (
            "q18t",
            table(&[("x-message-ttl", longstr("1000"))]),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received '1000' but current is '1000'",
            ),
        ),
        (
            "q18",
            table(&[("x-expires", long(60000))]),
            inequivalent(
                "q18",
                "x-expires",
                "received the value '60000' of type 'long' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-max-length", long(10))]),
            inequivalent(
                "q18",
                "x-max-length",
                "received the value '10' of type 'long' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-dead-letter-exchange", longstr("dlx"))]),
            inequivalent(
                "q18",
                "x-dead-letter-exchange",
                "received the value 'dlx' of type 'longstr' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-queue-type", longstr("quorum"))]),
            inequivalent(
                "q18",
                "x-queue-type",
                "received the value 'quorum' of type 'longstr' but current is none",
            ),
        ),
    ];
    for (name, args, text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, Default::default(), args).await
        })
        .await;
    }

    // 32-bit and 64-bit integers of the same value are the same argument.
    let q = queue(
        &ch,
        "q18t",
        Default::default(),
        table(&[("x-message-ttl", AMQPValue::LongInt(1000))]),
    )
    .await
    .expect("x-message-ttl as a 32-bit 1000 is equivalent to a 64-bit 1000");
    assert_eq!(q.name().as_str(), "q18t");
    queue(&ch, "q18t", Default::default(), ttl)
        .await
        .expect("an identical redeclaration is fine");
    queue(
        &ch,
        "q18",
        Default::default(),
        table(&[("x-unknown-arg", longstr("whatever"))]),
    )
    .await
    .expect("arguments RabbitMQ does not know are not compared");
}

#[tokio::test]
async fn x_queue_type_classic_is_equivalent_to_no_queue_type() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    queue(
        &ch,
        "q18",
        Default::default(),
        table(&[("x-queue-type", longstr("classic"))]),
    )
    .await
    .expect("x-queue-type=classic on a classic queue");
}

#[tokio::test]
async fn invalid_queue_arguments_are_refused_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let invalid = |arg: &str, name: &str, detail: &str| {
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' {VHOST}: {detail}")
    };
    let expected_integer = |got: &str| format!("\"expected integer, got {got}\"");
    let cases = vec![
        (
            "qa21",
            ("x-max-length", longstr("abc")),
            invalid("x-max-length", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-max-length", AMQPValue::Boolean(true)),
            invalid("x-max-length", "qa21", &expected_integer("bool")),
        ),
        (
            "qa21",
            ("x-max-length", long(-1)),
            invalid("x-max-length", "qa21", "{value_negative,-1}"),
        ),
        (
            "qa21",
            ("x-max-length-bytes", longstr("abc")),
            invalid("x-max-length-bytes", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-message-ttl", longstr("abc")),
            invalid("x-message-ttl", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-expires", longstr("abc")),
            invalid("x-expires", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-max-priority", longstr("abc")),
            invalid("x-max-priority", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-message-ttl", long(-1)),
            invalid("x-message-ttl", "qa21", "{value_negative,-1}"),
        ),
        (
            "qa21",
            ("x-expires", long(0)),
            invalid("x-expires", "qa21", "{value_zero,0}"),
        ),
        (
            "qa21",
            ("x-max-priority", long(300)),
            invalid("x-max-priority", "qa21", "{max_value_exceeded,300}"),
        ),
        (
            "qa21",
            ("x-dead-letter-exchange", long(5)),
            format!(
                "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'qa21' {VHOST}"
            ),
        ),
        (
            "qa21",
            ("x-dead-letter-routing-key", longstr("rk")),
            invalid(
                "x-dead-letter-routing-key",
                "qa21",
                "routing_key_but_no_dlx_defined",
            ),
        ),
        (
            "qa21",
            ("x-overflow", longstr("foo")),
            invalid("x-overflow", "qa21", "invalid_overflow"),
        ),
        (
            "qa21",
            ("x-overflow", long(5)),
            invalid("x-overflow", "qa21", "{unacceptable_type,long}"),
        ),
        (
            "qa21",
            ("x-single-active-consumer", longstr("abc")),
            invalid(
                "x-single-active-consumer",
                "qa21",
                "{unacceptable_type,longstr}",
            ),
        ),
        (
            "qt21",
            ("x-queue-type", longstr("foo")),
            invalid("x-queue-type", "qt21", "\"unsupported queue type 'foo'\""),
        ),
        (
            "qa21",
            ("x-queue-mode", longstr("foo")),
            invalid("x-queue-mode", "qa21", "\"unsupported queue mode 'foo'\""),
        ),
    ];
    for (name, (arg, value), text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, Default::default(), table(&[(arg, value)])).await
        })
        .await;
    }
}

#[tokio::test]
async fn quorum_and_stream_queues_with_invalid_properties_are_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let cases = [
        ("quorum", QueueDeclareOptions::default(), "non-durable"),
        (
            "quorum",
            QueueDeclareOptions {
                exclusive: true,
                ..durable
            },
            "exclusive-owner",
        ),
        (
            "quorum",
            QueueDeclareOptions {
                auto_delete: true,
                ..durable
            },
            "auto-delete",
        ),
        ("stream", QueueDeclareOptions::default(), "non-durable"),
    ];
    for (kind, options, property) in cases {
        let text =
            format!("PRECONDITION_FAILED - invalid property '{property}' for queue 'qq21' {VHOST}");
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            let args = table(&[("x-queue-type", longstr(kind))]);
            queue(&ch, "qq21", options, args).await
        })
        .await;
    }
}

#[tokio::test]
async fn queue_and_exchange_names_of_255_characters_are_fine() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let name = "n".repeat(255);
    exchange(
        &ch,
        &name,
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("a 255-character exchange name");
    let q = queue(&ch, &name, Default::default(), FieldTable::default())
        .await
        .expect("a 255-character queue name");
    assert_eq!(q.name().as_str(), name);
    bind(&ch, &name, &name, "k").await.expect("queue.bind");
}

// ---------------------------------------------------------------------------------------------
// exclusive queues

/// A reply text longer than a short string holds is cut to 252 bytes and "...", as RabbitMQ
/// cuts it, and the other channels of the connection go on (the cut once panicked the task).
#[tokio::test]
async fn a_reply_text_over_255_bytes_is_cut_and_closes_only_its_channel() {
    let broker = TestBroker::start().await;
    let (_owner, mine) = broker.channel().await;
    let name = "q".repeat(200);
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    queue(&mine, &name, exclusive, FieldTable::default())
        .await
        .expect("exclusive queue.declare");
    let full = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' {VHOST}. It \
         could be originally declared on another connection or the exclusive property value does \
         not match that of the original declaration."
    );
    let cut = format!("{}...", &full[..252]);
    let other = broker.connect().await;
    channel_error(&other, Via::Reply, 405, &cut, |ch| {
        let name = name.clone();
        async move { queue(&ch, &name, PASSIVE_Q, FieldTable::default()).await }
    })
    .await;
    channel_error(&other, Via::Reply, 405, &cut, |ch| {
        let name = name.clone();
        async move { consume(&ch, &name, "intruder", false).await }
    })
    .await;
}

#[tokio::test]
async fn an_exclusive_queue_is_locked_to_its_connection_with_405() {
    let broker = TestBroker::start().await;
    let (owner, mine) = broker.channel().await;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    queue(&mine, "qx18", exclusive, FieldTable::default())
        .await
        .expect("exclusive queue.declare");
    bind(&mine, "qx18", "amq.direct", "kx")
        .await
        .expect("queue.bind by the owner");

    let locked = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'qx18' {VHOST}. It could \
         be originally declared on another connection or the exclusive property value does not \
         match that of the original declaration."
    );
    let other = broker.connect().await;
    for options in [QueueDeclareOptions::default(), exclusive, PASSIVE_Q] {
        channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
            queue(&ch, "qx18", options, FieldTable::default()).await
        })
        .await;
    }
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        consume(&ch, "qx18", "intruder", false).await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        get(&ch, "qx18").await.map(|m| m.is_some())
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        ch.queue_delete("qx18".into(), QueueDeleteOptions::default())
            .await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        ch.queue_purge("qx18".into(), QueuePurgeOptions::default())
            .await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        bind(&ch, "qx18", "amq.fanout", "").await
    })
    .await;

    // Publishing to it and unbinding it are allowed from anywhere.
    let theirs = open_channel(&other).await;
    publish(&theirs, "", "qx18", b"from another connection").await;
    theirs
        .queue_unbind(
            "qx18".into(),
            "amq.direct".into(),
            "kx".into(),
            FieldTable::default(),
        )
        .await
        .expect("queue.unbind from another connection");
    publish(&theirs, "amq.direct", "kx", b"after the unbind").await;
    let got = get(&mine, "qx18")
        .await
        .expect("basic.get by the owner")
        .expect("the message published from the other connection");
    assert_eq!(got.delivery.data, b"from another connection");
    assert!(
        get(&mine, "qx18").await.expect("basic.get").is_none(),
        "the binding removed from the other connection still routes"
    );

    // On the owning connection: exclusivity must match, durability is not compared.
    channel_error(&owner, Via::Reply, 405, &locked, |ch| async move {
        queue(
            &ch,
            "qx18",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    queue(
        &mine,
        "qx18",
        QueueDeclareOptions {
            durable: true,
            ..exclusive
        },
        FieldTable::default(),
    )
    .await
    .expect("redeclaring an exclusive queue as durable is accepted");
    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'qx18' {VHOST}: \
         received 'true' but current is 'false'"
    );
    channel_error(&owner, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeclareOptions {
            auto_delete: true,
            ..exclusive
        };
        queue(&ch, "qx18", options, FieldTable::default()).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// queue.delete, purge, bind and unbind

#[tokio::test]
async fn queue_delete_if_unused_or_if_empty_refuses_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["qd18", "qe18"] {
        queue(&ch, name, Default::default(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
    let _consumer = consume(&ch, "qd18", "c", false)
        .await
        .expect("basic.consume");
    publish(&ch, "", "qe18", b"one").await;

    let text = format!("PRECONDITION_FAILED - queue 'qd18' {VHOST} in use");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        ch.queue_delete("qd18".into(), options).await
    })
    .await;
    let text = format!("PRECONDITION_FAILED - queue 'qe18' {VHOST} not empty");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        ch.queue_delete("qe18".into(), options).await
    })
    .await;
    assert_eq!(queue_counts(&ch, "qd18").await, (0, 1));
    assert_eq!(queue_counts(&ch, "qe18").await, (1, 0));
}

#[tokio::test]
async fn deleting_a_missing_queue_succeeds_with_count_0_but_purging_one_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for (if_unused, if_empty) in [(false, false), (true, false), (false, true), (true, true)] {
        let options = QueueDeleteOptions {
            if_unused,
            if_empty,
            ..Default::default()
        };
        let count = ch
            .queue_delete("nosuchq18".into(), options)
            .await
            .unwrap_or_else(|e| panic!("queue.delete of a missing queue with {options:?}: {e}"));
        assert_eq!(count, 0);
    }
    let text = format!("NOT_FOUND - no queue 'nosuchq18' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        ch.queue_purge("nosuchq18".into(), QueuePurgeOptions::default())
            .await
    })
    .await;
}

#[tokio::test]
async fn queue_bind_to_a_missing_exchange_or_queue_is_404_exchange_first() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let no_exchange = |name: &str| format!("NOT_FOUND - no exchange '{name}' {VHOST}");
    let cases = [
        ("q18", "nosuchex18", no_exchange("nosuchex18")),
        (
            "nosuchq18",
            "amq.direct",
            format!("NOT_FOUND - no queue 'nosuchq18' {VHOST}"),
        ),
        ("nosuchq18", "nosuchex18", no_exchange("nosuchex18")),
        ("q18", "amq.default", no_exchange("amq.default")),
    ];
    for (q, x, text) in cases {
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            bind(&ch, q, x, "k").await
        })
        .await;
    }
}

#[tokio::test]
async fn binding_or_unbinding_the_default_exchange_is_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        bind(&ch, "q18", "", "q18").await
    })
    .await;
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        ch.queue_unbind("q18".into(), "".into(), "q18".into(), FieldTable::default())
            .await
    })
    .await;
}

#[tokio::test]
async fn unbinding_a_missing_binding_queue_or_exchange_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    for (q, x) in [
        ("q18", "amq.direct"),
        ("nosuchq18", "amq.direct"),
        ("q18", "nosuchex18"),
        ("nosuchq18", "nosuchex18"),
    ] {
        ch.queue_unbind(q.into(), x.into(), "k".into(), FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue.unbind of {q} from {x}: {e}"));
    }
    assert_works(&ch, "the channel after unbinding nothing").await;
}

#[tokio::test]
async fn the_empty_queue_name_without_a_declared_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    channel_error(
        &conn,
        Via::Reply,
        404,
        "NOT_FOUND - no previously declared queue",
        |ch| async move { bind(&ch, "", "amq.direct", "k").await },
    )
    .await;
    let ch = open_channel(&conn).await;
    let q = queue(&ch, "q18l", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    for round in ["first", "second"] {
        ch.queue_delete("".into(), QueueDeleteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{round} delete of the last declared queue: {e}"));
    }
    let r = queue(&ch, q.name().as_str(), PASSIVE_Q, FieldTable::default()).await;
    assert_eq!(
        r.map_err(|e| reply_code(&e)).err(),
        Some(Some(404)),
        "'' did not name the channel's last declared queue"
    );
}

// ---------------------------------------------------------------------------------------------
// consumers

#[tokio::test]
async fn reusing_a_consumer_tag_on_one_channel_closes_the_connection_with_530() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let _first = consume(&ch, "q19", "t1", false)
        .await
        .expect("basic.consume");
    let other = open_channel(&conn).await;
    let _second = consume(&other, "q19", "t1", false)
        .await
        .expect("the same tag on another channel is fine");

    let text = "NOT_ALLOWED - attempt to reuse consumer tag 't1'";
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19", "t1", false).await?;
        consume(&ch, "q19", "t1", false).await
    })
    .await;
    assert!(conn.status().connected());
}

#[tokio::test]
async fn exclusive_consumers_conflict_with_others_with_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["q19", "q19x"] {
        queue(&ch, name, Default::default(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
    let _plain = consume(&ch, "q19", "plain", false)
        .await
        .expect("basic.consume");
    let _sole = consume(&ch, "q19x", "sole", true)
        .await
        .expect("exclusive basic.consume");

    let in_use = |name: &str| format!("ACCESS_REFUSED - queue '{name}' {VHOST} in exclusive use");
    for (name, exclusive) in [("q19", true), ("q19x", false), ("q19x", true)] {
        channel_error(&conn, Via::Reply, 403, &in_use(name), |ch| async move {
            consume(&ch, name, "late", exclusive).await
        })
        .await;
    }
}

#[tokio::test]
async fn consuming_or_getting_from_a_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!("NOT_FOUND - no queue 'nosuchq19' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        consume(&ch, "nosuchq19", "c", false).await
    })
    .await;
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        get(&ch, "nosuchq19").await.map(|m| m.is_some())
    })
    .await;
}

#[tokio::test]
async fn cancelling_an_unknown_or_cancelled_consumer_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let consumer = ch
        .basic_consume(
            "q19".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let tag = consumer.tag().to_string();
    assert!(
        tag.starts_with("amq.ctag-") && tag.len() == "amq.ctag-".len() + 22,
        "server-generated consumer tag {tag:?}"
    );
    for t in ["never-existed", tag.as_str(), tag.as_str()] {
        within(
            "basic.cancel-ok",
            ch.basic_cancel(t.into(), BasicCancelOptions::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("basic.cancel of {t}: {e}"));
    }
    assert_eq!(queue_counts(&ch, "q19").await, (0, 0));
}

#[tokio::test]
async fn a_consumer_of_a_deleted_queue_is_cancelled_and_cancelling_it_again_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q24", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let mut consumer = ch
        .basic_consume(
            "q24".into(),
            "t24".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ch.queue_delete("q24".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    assert!(
        within("the server's basic.cancel", consumer.next())
            .await
            .is_none(),
        "the consumer of a deleted queue was not cancelled"
    );
    within(
        "basic.cancel-ok",
        ch.basic_cancel("t24".into(), BasicCancelOptions::default()),
    )
    .await
    .expect("cancelling a consumer the server already cancelled");
    assert_works(&ch, "the channel after the cancels").await;
}

#[tokio::test]
async fn an_auto_delete_queue_that_never_had_a_consumer_survives_its_connection() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    queue(&ch, "q24a", options, FieldTable::default())
        .await
        .expect("queue.declare");
    within("connection.close-ok", conn.close(200, "bye".into()))
        .await
        .expect("connection.close");
    let (_conn, ch) = broker.channel().await;
    assert_eq!(queue_counts(&ch, "q24a").await, (0, 0));
}

#[tokio::test]
async fn a_consumer_priority_that_is_not_an_integer_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19e", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = format!(
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q19e' {VHOST}: \
         \"expected integer, got longstr\""
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        ch.basic_consume(
            "q19e".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", longstr("abc"))]),
        )
        .await
        .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn consume_arguments_of_the_wrong_type_are_406_with_rabbitmqs_texts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19f", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let invalid = |arg: &str, detail: &str| {
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue 'q19f' {VHOST}: {detail}")
    };
    let failover = "x-cancel-on-ha-failover";
    let cases = [
        (
            vec![("x-priority", AMQPValue::Boolean(true))],
            invalid("x-priority", "\"expected integer, got bool\""),
        ),
        (
            vec![(failover, longstr("yes"))],
            invalid(failover, "{unacceptable_type,longstr}"),
        ),
        (
            vec![(failover, long(1))],
            invalid(failover, "{unacceptable_type,long}"),
        ),
        (
            vec![(failover, AMQPValue::Void)],
            invalid(failover, "{unacceptable_type,void}"),
        ),
        // x-priority is checked first, whatever the order of the table.
        (
            vec![(failover, longstr("yes")), ("x-priority", longstr("high"))],
            invalid("x-priority", "\"expected integer, got longstr\""),
        ),
        // Only a stream queue reads from an offset.
        (
            vec![("x-stream-offset", longstr("first"))],
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'q19f' {VHOST} \
                 of queue type rabbit_classic_queue"
            ),
        ),
    ];
    for (args, text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            ch.basic_consume(
                "q19f".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                table(&args),
            )
            .await
            .map(|_| ())
        })
        .await;
    }
    assert_eq!(
        queue_counts(&ch, "q19f").await,
        (0, 0),
        "no consumer was added"
    );
}

#[tokio::test]
async fn well_typed_and_unknown_consume_arguments_are_accepted() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19g", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let accepted = [
        ("x-priority", long(1 << 40)),
        ("x-priority", AMQPValue::ShortShortInt(-3)),
        ("x-cancel-on-ha-failover", AMQPValue::Boolean(true)),
        ("x-no-such-argument", longstr("ignored")),
    ];
    let mut consumers = Vec::new();
    for (i, (arg, value)) in accepted.into_iter().enumerate() {
        let consumer = within(
            "basic.consume-ok",
            ch.basic_consume(
                "q19g".into(),
                format!("c{i}").as_str().into(),
                BasicConsumeOptions::default(),
                table(&[(arg, value.clone())]),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("basic.consume with {arg} = {value:?}: {e}"));
        consumers.push(consumer);
    }
    assert_eq!(queue_counts(&ch, "q19g").await, (0, 4));
}

#[tokio::test]
async fn a_reused_consumer_tag_is_refused_before_the_queue_or_arguments_are_looked_at() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19h", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "NOT_ALLOWED - attempt to reuse consumer tag 't1'";
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19h", "t1", false).await?;
        consume(&ch, "nosuchq19h", "t1", false).await
    })
    .await;
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19h", "t1", false).await?;
        ch.basic_consume(
            "q19h".into(),
            "t1".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", longstr("high"))]),
        )
        .await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// acknowledgements

#[tokio::test]
async fn acknowledging_an_unknown_delivery_tag_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 99";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ack(&ch, 99, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_nack(99, BasicNackOptions::default()).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_reject(99, BasicRejectOptions::default()).await
    })
    .await;
    // With a delivery outstanding too, the unknown tag is still refused, and that delivery
    // goes back to the queue with the channel.
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        get_one(&ch, "q19").await?;
        ack(&ch, 99, false).await
    })
    .await;
    assert_eq!(queue_counts(&ch, "q19").await, (1, 0));
}

#[tokio::test]
async fn acknowledging_tag_0_alone_is_406_with_or_without_outstanding_deliveries() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 0";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ack(&ch, 0, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        get_one(&ch, "q19").await?;
        ack(&ch, 0, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_reject(0, BasicRejectOptions::default()).await
    })
    .await;
}

#[tokio::test]
async fn acknowledging_everything_with_tag_0_and_multiple_is_fine_when_nothing_is_outstanding() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ack(&ch, 0, true).await.expect("basic.ack(0, multiple)");
    // A reply to a later method proves the server took the ack without closing the channel.
    assert_works(&ch, "the channel after basic.ack(0, multiple)").await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn a_multiple_ack_must_name_an_outstanding_tag() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 5";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        let first = get_one(&ch, "q19").await?;
        let second = get_one(&ch, "q19").await?;
        assert_eq!((first, second), (1, 2));
        ack(&ch, 5, true).await
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q19").await,
        (2, 0),
        "the refused multiple ack acknowledged something"
    );
}

#[tokio::test]
async fn acknowledging_a_delivery_twice_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 1";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        let tag = get_one(&ch, "q19").await?;
        assert_eq!(tag, 1);
        ack(&ch, tag, false).await?;
        ack(&ch, tag, false).await
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q19").await,
        (0, 0),
        "the first ack did not take the message"
    );

    // A no-ack delivery has nothing to acknowledge.
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        publish(&ch, "", "q19", b"m").await;
        let got = ch
            .basic_get("q19".into(), BasicGetOptions { no_ack: true })
            .await?
            .expect("a message to get");
        ack(&ch, got.delivery.delivery_tag, false).await
    })
    .await;

    // In a transaction the second ack is refused at once, not at commit.
    publish(&ch, "", "q19", b"m").await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.tx_select().await?;
        let got = get(&ch, "q19").await?.expect("a message to get");
        let tag = got.delivery.delivery_tag;
        ack(&ch, tag, false).await?;
        ack(&ch, tag, false).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// publishing

#[tokio::test]
async fn publishing_with_immediate_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q15", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "NOT_IMPLEMENTED - immediate=true";
    connection_error(&broker, Via::Event, 540, text, |ch| async move {
        let options = BasicPublishOptions {
            immediate: true,
            ..Default::default()
        };
        ch.basic_publish(
            "".into(),
            "q15".into(),
            options,
            b"now",
            BasicProperties::default(),
        )
        .await
        .map(|_| ())
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q15").await,
        (0, 0),
        "the immediate message was enqueued"
    );
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_returned_before_its_confirm() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let props = BasicProperties::default().with_content_type("text/plain".into());
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            "nobind".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"back to sender",
            props,
        )
        .await
        .expect("basic.publish");
    let confirmation = within("the publisher confirm", confirm)
        .await
        .expect("confirmation");
    assert!(confirmation.is_ack(), "{confirmation:?}");
    // lapin attaches a basic.return to the ack only if it arrived first.
    let returned = confirmation
        .take_message()
        .expect("the basic.return arrived before the ack");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.exchange.as_str(), "amq.direct");
    assert_eq!(returned.routing_key.as_str(), "nobind");
    assert_eq!(returned.delivery.data, b"back to sender");
    assert_eq!(
        returned
            .delivery
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("text/plain")
    );
}

// ---------------------------------------------------------------------------------------------
// transactions, confirms, recover and flow

#[tokio::test]
async fn switching_between_tx_and_confirm_mode_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    channel_error(
        &conn,
        Via::Reply,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        |ch| async move {
            ch.tx_select().await?;
            ch.tx_select().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await
        },
    )
    .await;
    channel_error(
        &conn,
        Via::Reply,
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        |ch| async move {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.tx_select().await
        },
    )
    .await;
}

#[tokio::test]
async fn commit_or_rollback_without_tx_select_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = "PRECONDITION_FAILED - channel is not transactional";
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.tx_commit().await
    })
    .await;
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.tx_rollback().await
    })
    .await;
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        ch.tx_commit().await
    })
    .await;
}

#[tokio::test]
async fn recover_without_requeue_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let text = "NOT_IMPLEMENTED - requeue=false";
    connection_error(&broker, Via::Reply, 540, text, |ch| async move {
        ch.basic_recover(BasicRecoverOptions { requeue: false })
            .await
    })
    .await;
    connection_error(&broker, Via::Event, 540, text, |ch| async move {
        ch.basic_recover_async(BasicRecoverAsyncOptions { requeue: false })
            .await
    })
    .await;
}

#[tokio::test]
async fn channel_flow_active_is_confirmed_and_inactive_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let active = within(
        "channel.flow-ok",
        ch.channel_flow(ChannelFlowOptions { active: true }),
    )
    .await
    .expect("channel.flow active=true");
    assert!(active, "channel.flow-ok should echo active=true");
    let text = "NOT_IMPLEMENTED - active=false";
    connection_error(&broker, Via::Reply, 540, text, |ch| async move {
        ch.channel_flow(ChannelFlowOptions { active: false }).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// connection.open

async fn connect_as(broker: &TestBroker, user: &str, pass: &str, vhost: &str) -> lapin::Error {
    let uri = format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr());
    match within(
        "the refused connection",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    {
        Ok(_) => panic!("connecting as {user} to {vhost:?} succeeded"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let text = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                For details see the broker logfile.";
    for (user, pass) in [("guest", "wrong"), ("nobody", "guest")] {
        // lapin announces authentication_failure_close, so it is told why.
        let err = connect_as(&broker, user, pass, "%2f").await;
        assert_reply(&err, 403, text);
    }
    assert_works(&ch, "a connection opened before the refusals").await;
}

#[tokio::test]
async fn opening_a_missing_vhost_is_refused_with_530() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let err = connect_as(&broker, "guest", "guest", "%2Fnope").await;
    assert_reply(&err, 530, "NOT_ALLOWED - vhost /nope not found");
    assert_works(&ch, "a connection opened before the refusal").await;
}
