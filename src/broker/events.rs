//! Broker events, as RabbitMQ's event exchange publishes them: what is created and deleted
//! (queues, exchanges, bindings, vhosts, users, permissions, policies), connections, channels
//! and consumers coming and going, and logins. Each event is a message on
//! `amq.rabbitmq.event` in the default vhost, routed by the event's name, with an empty body
//! and the details in its headers.
//!
//! While nothing is bound to the event exchange, emitting costs one relaxed atomic load:
//! emitters ask `wanted` before they build anything. Otherwise the emitter pays for building
//! the headers and one `try_send`: events go to a bounded channel drained by one task, and when
//! it is full they are dropped (counted and logged), so a connection never waits for them.

use super::message::now_ms;
use super::queue::ConnectionId;
use super::Broker;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use tracing::warn;
use warren_amqp::{AMQPValue, BasicProperties, FieldArray, FieldTable};

/// The exchange events are published to: topic, durable, internal, in the default vhost.
pub const EXCHANGE: &str = "amq.rabbitmq.event";

/// The actor RabbitMQ names for what the broker does by itself (an exclusive queue going with
/// its connection, an auto-delete queue losing its last consumer, an expired queue).
pub const INTERNAL_USER: &str = "rmq-internal";

/// Events waiting for the publishing task; more are dropped.
const CAPACITY: usize = 8192;

/// One event: its name (the routing key) and its headers.
#[derive(Debug)]
pub struct Event {
    name: &'static str,
    /// When it happened, in milliseconds since the epoch.
    at_ms: u64,
    headers: FieldTable,
}

/// An event's headers, built field by field with RabbitMQ's names and types.
#[derive(Debug, Default)]
pub struct Fields(FieldTable);

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.0
            .insert(name.into(), AMQPValue::LongString(value.into()));
        self
    }

    pub fn flag(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.into(), AMQPValue::Boolean(value));
        self
    }

    pub fn number(mut self, name: &str, value: i64) -> Self {
        self.0.insert(name.into(), AMQPValue::LongLongInt(value));
        self
    }

    pub fn table(mut self, name: &str, value: FieldTable) -> Self {
        self.0.insert(name.into(), AMQPValue::FieldTable(value));
        self
    }

    pub fn value(mut self, name: &str, value: AMQPValue) -> Self {
        self.0.insert(name.into(), value);
        self
    }

    /// `user_who_performed_action`, which every change to an object carries.
    pub fn by(self, user: &str) -> Self {
        self.text("user_who_performed_action", user)
    }
}

/// Where events are emitted. Cloned into every vhost, the metadata and each connection.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    /// Something is bound to the event exchange (set as its bindings change).
    listened: Arc<AtomicBool>,
}

/// The publishing task's end of the channel.
pub type EventReceiver = mpsc::Receiver<Event>;

/// A sink and the receiver `run` drains.
pub fn channel() -> (EventSink, EventReceiver) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let sink = EventSink {
        tx,
        dropped: Arc::default(),
        listened: Arc::default(),
    };
    (sink, rx)
}

/// How events name a connection (`channel` 0) or one of its channels where RabbitMQ gives
/// a process id: `<0.connection.channel>`, in the shape of one.
pub fn pid(connection: ConnectionId, channel: u16) -> String {
    format!("<0.{connection}.{channel}>")
}

/// A table as RabbitMQ's events carry arguments and client properties: an array of texts,
/// one `{<<"name">>,type,value}` term per field.
pub fn terms(table: &FieldTable) -> AMQPValue {
    let items = table
        .inner()
        .iter()
        .map(|(k, v)| {
            let (kind, value) = term(v);
            AMQPValue::LongString(format!("{{<<\"{k}\">>,{kind},{value}}}").into())
        })
        .collect::<Vec<_>>();
    AMQPValue::FieldArray(FieldArray::from(items))
}

/// A field's type as RabbitMQ names it, and its value written as an Erlang term.
fn term(v: &AMQPValue) -> (&'static str, String) {
    let text = |b: &[u8]| format!("<<\"{}\">>", String::from_utf8_lossy(b));
    match v {
        AMQPValue::Boolean(b) => ("bool", b.to_string()),
        AMQPValue::ShortShortInt(n) => ("byte", n.to_string()),
        AMQPValue::ShortShortUInt(n) => ("unsignedbyte", n.to_string()),
        AMQPValue::ShortInt(n) => ("short", n.to_string()),
        AMQPValue::ShortUInt(n) => ("unsignedshort", n.to_string()),
        AMQPValue::LongInt(n) => ("signedint", n.to_string()),
        AMQPValue::LongUInt(n) => ("unsignedint", n.to_string()),
        AMQPValue::LongLongInt(n) => ("long", n.to_string()),
        AMQPValue::Float(f) => ("float", f.to_string()),
        AMQPValue::Double(f) => ("double", f.to_string()),
        AMQPValue::DecimalValue(d) => ("decimal", format!("{{decimal,{},{}}}", d.value, d.scale)),
        AMQPValue::ShortString(s) => ("longstr", text(s.as_str().as_bytes())),
        AMQPValue::LongString(s) => ("longstr", text(s.as_bytes())),
        AMQPValue::ByteArray(b) => ("binary", text(b.as_slice())),
        AMQPValue::Timestamp(t) => ("timestamp", t.to_string()),
        AMQPValue::Void => ("void", "undefined".to_owned()),
        AMQPValue::FieldTable(t) => {
            let fields = t.inner().iter().map(|(k, v)| {
                let (kind, value) = term(v);
                format!("{{<<\"{k}\">>,{kind},{value}}}")
            });
            (
                "table",
                format!("[{}]", fields.collect::<Vec<_>>().join(",")),
            )
        }
        AMQPValue::FieldArray(a) => {
            let items = a.as_slice().iter().map(|v| {
                let (kind, value) = term(v);
                format!("{{{kind},{value}}}")
            });
            (
                "array",
                format!("[{}]", items.collect::<Vec<_>>().join(",")),
            )
        }
    }
}

impl EventSink {
    /// Whether an event would reach anyone: emitters check this before building one.
    #[inline]
    pub fn wanted(&self) -> bool {
        self.listened.load(Ordering::Relaxed)
    }

    /// The event exchange gained its first binding or lost its last.
    pub fn set_listened(&self, listened: bool) {
        self.listened.store(listened, Ordering::Relaxed);
    }

    /// Emits `name` with `fields`, or drops it when nobody listens or the publishing task is
    /// behind.
    pub fn emit(&self, name: &'static str, fields: Fields) {
        if !self.wanted() {
            return;
        }
        let event = Event {
            name,
            at_ms: now_ms(),
            headers: fields.0,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8...: a storm of events must not become a storm of logs.
            if dropped.is_power_of_two() {
                warn!("event exchange behind: {dropped} events dropped since the start");
            }
        }
    }

    /// Events dropped because the publishing task was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Publishes events to the event exchange until the broker goes.
pub async fn run(mut events: EventReceiver, broker: Weak<Broker>) {
    while let Some(event) = events.recv().await {
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.publish_event(event);
    }
}

impl Broker {
    fn publish_event(&self, event: Event) {
        let Some(vhost) = self.vhost(&self.config.default_vhost) else {
            return;
        };
        let mut headers = event.headers;
        headers.insert(
            "timestamp_in_ms".into(),
            AMQPValue::LongLongInt(event.at_ms as i64),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_timestamp(event.at_ms / 1000)
            .with_headers(headers);
        self.publish_internal(&vhost, EXCHANGE, event.name, properties, Bytes::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_channel_drops_and_counts_instead_of_waiting() {
        let (sink, mut rx) = channel();
        sink.emit("queue.created", Fields::new());
        assert!(rx.try_recv().is_err(), "nobody listens: nothing is sent");
        sink.set_listened(true);
        for _ in 0..CAPACITY + 3 {
            sink.emit("queue.created", Fields::new().text("name", "q"));
        }
        assert_eq!(sink.dropped(), 3);
        let first = rx.recv().await.expect("an event");
        assert_eq!(first.name, "queue.created");
        assert_eq!(
            first.headers.inner().get("name"),
            Some(&AMQPValue::LongString("q".into()))
        );
    }

    #[test]
    fn tables_become_erlang_terms_as_in_rabbitmq() {
        let mut t = FieldTable::default();
        t.insert("x-max-length".into(), AMQPValue::LongInt(10));
        t.insert("x-foo".into(), AMQPValue::LongString("bar".into()));
        let AMQPValue::FieldArray(items) = terms(&t) else {
            panic!("not an array");
        };
        let texts: Vec<_> = items
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            [
                r#"{<<"x-foo">>,longstr,<<"bar">>}"#,
                r#"{<<"x-max-length">>,signedint,10}"#
            ]
        );
    }
}
