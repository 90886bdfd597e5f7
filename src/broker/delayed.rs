//! Delayed messages: an `x-delayed-message` exchange holds each message published with an
//! `x-delay` header (milliseconds) until it is due, then routes it as its `x-delayed-type`
//! would. Persistent messages are stored while they wait, so a delay survives a restart.
//!
//! A held message keeps its `BCC` header, so that its stored record alone says where it goes:
//! on release its `CC` and `BCC` keys route it beside its routing key, as sender-selected
//! distribution does for any publish, and `BCC` leaves the copy the queues get.
//!
//! Held messages are recorded as entries of a reserved store id; each names its exchange in
//! the message record, and a metadata record (kind `HELD_VHOST`, keyed by the message id)
//! names its vhost, so a restart holds it again in the vhost it was published to.

use super::delivery::enqueue;
use super::exchange::RoutingInput;
use super::message::{now_ms, Message};
use super::{sender_selected, Broker};
use crate::store::{EntryKey, EntryRecord, MetaKind, MetaRecord, StoreHandle, StoreOp};
use bytes::{Bytes, BytesMut};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;
use warren_amqp::protocol::basic::parse_properties;
use warren_amqp::{encode, AMQPValue, BasicProperties};

/// The store id held messages are recorded under (no queue gets it).
pub const HELD_STORE_ID: u64 = u64::MAX;
/// The kind of the store's metadata records that name a held message's vhost.
pub const HELD_VHOST: MetaKind = b'h';

/// A message waiting for its time.
#[derive(Debug)]
pub struct Held {
    pub due_ms: u64,
    pub vhost: String,
    /// The id of its stored copy, 0 when it is not stored.
    pub stored: u64,
    pub message: Arc<Message>,
}

pub type HeldSink = mpsc::UnboundedSender<Held>;

/// The `x-delay` of a message's headers, when it asks for one.
pub fn delay_of(headers: Option<&warren_amqp::FieldTable>) -> Option<u64> {
    let value = headers?.inner().get("x-delay")?;
    let ms = super::field_types::integer(value).or_else(|| match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok(),
        _ => None,
    })?;
    (ms > 0).then_some(ms as u64)
}

/// Holds a message published to a delayed exchange; true when it was stored (a publisher
/// confirm then waits for the disk).
pub fn hold(
    store: &StoreHandle,
    sink: &HeldSink,
    vhost: &str,
    message: Message,
    delay_ms: u64,
) -> bool {
    let due_ms = now_ms().saturating_add(delay_ms);
    let message = Arc::new(message);
    let stored = if message.persistent {
        let id = store.next_message_id();
        store.submit(StoreOp::PutMessage {
            id,
            message: message.clone(),
        });
        store.submit(StoreOp::PutMeta(MetaRecord {
            kind: HELD_VHOST,
            key: id.to_string(),
            value: vhost.as_bytes().to_vec(),
        }));
        let key = EntryKey {
            queue: HELD_STORE_ID,
            lane: 0,
            seq: id,
        };
        let record = EntryRecord {
            message: id,
            redelivered: false,
            transient: false,
            expires: due_ms,
            delivery_count: 0,
        };
        store.submit(StoreOp::PutEntry { key, record });
        id
    } else {
        0
    };
    let _ = sink.send(Held {
        due_ms,
        vhost: vhost.to_string(),
        stored,
        message,
    });
    stored != 0
}

/// Releases held messages as they come due, until the broker is gone.
pub async fn run(mut incoming: mpsc::UnboundedReceiver<Held>, broker: Weak<Broker>) {
    let mut waiting: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut held = std::collections::HashMap::new();
    let mut next = 0u64;
    loop {
        let wait = waiting
            .peek()
            .map(|Reverse((due, _))| Duration::from_millis(due.saturating_sub(now_ms())));
        tokio::select! {
            message = incoming.recv() => {
                let Some(message) = message else { return };
                waiting.push(Reverse((message.due_ms, next)));
                held.insert(next, message);
                next += 1;
            }
            _ = sleep_or_forever(wait) => {
                let Some(broker) = broker.upgrade() else { return };
                let now = now_ms();
                while let Some(Reverse((due, id))) = waiting.peek().copied() {
                    if due > now {
                        break;
                    }
                    waiting.pop();
                    if let Some(message) = held.remove(&id) {
                        release(&broker, message);
                    }
                }
            }
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Routes a message that is due through its exchange, then forgets the held copy.
fn release(broker: &Broker, held: Held) {
    let message = &held.message;
    match broker
        .vhost(&held.vhost)
        .map(|v| (v.exchange(message.exchange.as_str()), v))
    {
        Some((Ok(exchange), vhost)) => {
            let (properties, raw_properties, extra_keys) = as_released(message);
            let input = RoutingInput {
                routing_key: message.routing_key.as_str(),
                headers: properties.headers().as_ref(),
                properties: Some(&properties),
            };
            let (mut scratch, mut queues) = (Vec::new(), Vec::new());
            vhost.route_keys(&exchange, &input, &extra_keys, &mut scratch, &mut queues);
            let copy = Message::from_parts(
                message.exchange.clone(),
                message.routing_key.clone(),
                &properties,
                raw_properties,
                message.body.clone(),
            );
            enqueue(&broker.store, copy, &mut queues);
        }
        _ => warn!(
            "delayed exchange '{}' in vhost '{}' is gone; its message is dropped",
            message.exchange, held.vhost
        ),
    }
    if held.stored != 0 {
        let key = EntryKey {
            queue: HELD_STORE_ID,
            lane: 0,
            seq: held.stored,
        };
        broker.store.submit(StoreOp::RemoveEntry { key });
        broker
            .store
            .submit(StoreOp::RemoveMessage { id: held.stored });
        broker.store.submit(StoreOp::DeleteMeta {
            kind: HELD_VHOST,
            key: held.stored.to_string(),
        });
    }
}

/// A held message's properties as its queues get them (without BCC) and the routing keys its
/// CC and BCC headers add. Its headers were checked at publish, so keys that cannot be read
/// (a record from elsewhere) are left out rather than dropping the message.
fn as_released(message: &Message) -> (BasicProperties, Bytes, Vec<String>) {
    let properties = parse_properties(&message.raw_properties[..])
        .map(|(_, p)| p)
        .unwrap_or_default();
    let Some(headers) = properties.headers().as_ref() else {
        return (properties, message.raw_properties.clone(), Vec::new());
    };
    let extra_keys = sender_selected::extra_keys(headers).unwrap_or_default();
    let Some(kept) = sender_selected::without_bcc(headers) else {
        return (properties, message.raw_properties.clone(), extra_keys);
    };
    let properties = properties.with_headers(kept);
    let mut raw = BytesMut::with_capacity(message.raw_properties.len());
    encode::properties(&mut raw, &properties);
    (properties, raw.freeze(), extra_keys)
}
