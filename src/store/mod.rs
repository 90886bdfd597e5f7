//! Durable state: the only module that knows how things are kept on disk.
//!
//! The broker describes changes as [`StoreOp`]s; a [`Store`] applies them and makes them
//! durable on `sync`. [`writer::StoreHandle`] runs the store on its own thread with group
//! commit: one sync covers every change that arrived while the previous one ran. `sled` backs
//! the real broker; [`memory::MemoryStore`] serves tests where disk is not the point.

pub mod memory;
pub mod sled_store;
pub mod writer;

use crate::broker::message::Message;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use warren_amqp::FieldTable;

pub use writer::StoreHandle;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store is closed")]
    Closed,
}

/// Arguments are stored in their AMQP wire form: JSON cannot hold every AMQP value (NaN
/// floats, byte arrays, decimals) without loss.
mod wire_table {
    use serde::{Deserialize, Deserializer, Serializer};
    use warren_amqp::FieldTable;

    pub fn serialize<S: Serializer>(table: &FieldTable, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = bytes::BytesMut::new();
        warren_amqp::encode::field_table(&mut buf, table);
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FieldTable, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        warren_amqp::encode::decode_field_table(&bytes)
            .ok_or_else(|| serde::de::Error::custom("undecodable argument table"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    #[serde(with = "wire_table")]
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub vhost: String,
    pub name: String,
    /// Stable id keying the queue's message entries.
    pub id: u64,
    pub auto_delete: bool,
    #[serde(with = "wire_table")]
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingRecord {
    pub vhost: String,
    pub source: String,
    pub destination: String,
    pub destination_is_queue: bool,
    pub routing_key: String,
    #[serde(with = "wire_table")]
    pub arguments: FieldTable,
}

/// One change to durable state.
#[derive(Debug, Clone)]
pub enum StoreOp {
    PutExchange(ExchangeRecord),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    PutQueue(QueueRecord),
    /// Removes the queue and every entry it holds.
    DeleteQueue {
        vhost: String,
        name: String,
        id: u64,
    },
    PutBinding(BindingRecord),
    DeleteBinding(BindingRecord),
    /// A persistent message, stored once however many durable queues hold it.
    PutMessage {
        id: u64,
        message: Arc<Message>,
    },
    RemoveMessage {
        id: u64,
    },
    /// A message's place in a durable queue; written again when it becomes redelivered.
    PutEntry {
        queue: u64,
        seq: u64,
        message: u64,
        redelivered: bool,
    },
    RemoveEntry {
        queue: u64,
        seq: u64,
    },
}

/// A queue entry as recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRecord {
    pub seq: u64,
    pub message: u64,
    pub redelivered: bool,
}

/// Everything a store holds, as read at start.
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<ExchangeRecord>,
    pub queues: Vec<QueueRecord>,
    pub bindings: Vec<BindingRecord>,
    /// Entries per queue id, in sequence order.
    pub entries: BTreeMap<u64, Vec<EntryRecord>>,
    pub messages: BTreeMap<u64, Arc<Message>>,
    /// Records that could not be read, with the reason: logged, never silently dropped.
    pub dropped: Vec<String>,
}

/// A storage engine.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads everything back.
    fn load(&self) -> Result<Recovered, StoreError>;
    /// Applies changes in order; durable only after `sync`.
    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError>;
    /// Makes everything applied so far durable (fsync).
    fn sync(&self) -> Result<(), StoreError>;
}

const MESSAGE_FORMAT: u8 = 1;

/// The stored form of a message: format, exchange, routing key, properties, body.
pub fn encode_message(message: &Message) -> Bytes {
    let (x, rk) = (
        message.exchange.as_str().as_bytes(),
        message.routing_key.as_str().as_bytes(),
    );
    let mut buf = BytesMut::with_capacity(
        1 + 2 + x.len() + rk.len() + 4 + message.raw_properties.len() + message.body.len(),
    );
    buf.put_u8(MESSAGE_FORMAT);
    buf.put_u8(x.len() as u8);
    buf.put_slice(x);
    buf.put_u8(rk.len() as u8);
    buf.put_slice(rk);
    buf.put_u32(message.raw_properties.len() as u32);
    buf.put_slice(&message.raw_properties);
    buf.put_slice(&message.body);
    buf.freeze()
}

/// Reads a stored message back; `None` if the bytes are not one.
pub fn decode_message(mut bytes: Bytes) -> Option<Message> {
    if bytes.remaining() < 1 || bytes.get_u8() != MESSAGE_FORMAT {
        return None;
    }
    let exchange = short_str(&mut bytes)?;
    let routing_key = short_str(&mut bytes)?;
    if bytes.remaining() < 4 {
        return None;
    }
    let props_len = bytes.get_u32() as usize;
    if bytes.remaining() < props_len {
        return None;
    }
    let raw_properties = bytes.split_to(props_len);
    let properties = warren_amqp::protocol::basic::parse_properties(&raw_properties[..])
        .ok()?
        .1;
    Some(Message::from_parts(
        exchange.into(),
        routing_key.into(),
        &properties,
        raw_properties,
        bytes,
    ))
}

fn short_str(bytes: &mut Bytes) -> Option<String> {
    if bytes.remaining() < 1 {
        return None;
    }
    let len = bytes.get_u8() as usize;
    if bytes.remaining() < len {
        return None;
    }
    String::from_utf8(bytes.split_to(len).to_vec()).ok()
}

/// Entry values: message id and flags.
pub fn encode_entry(message: u64, redelivered: bool) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&message.to_be_bytes());
    v[8] = redelivered as u8;
    v
}

pub fn decode_entry(seq: u64, value: &[u8]) -> Option<EntryRecord> {
    let id: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(EntryRecord {
        seq,
        message: u64::from_be_bytes(id),
        redelivered: value.get(8) == Some(&1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::BasicProperties;

    #[test]
    fn messages_round_trip() {
        let mut raw = BytesMut::new();
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_priority(3);
        warren_amqp::encode::properties(&mut raw, &props);
        let m = Message::from_parts(
            "ex".into(),
            "rk".into(),
            &props,
            raw.freeze(),
            Bytes::from_static(b"body"),
        );
        let back = decode_message(encode_message(&m)).unwrap();
        assert_eq!(back.exchange, m.exchange);
        assert_eq!(back.routing_key, m.routing_key);
        assert_eq!(back.raw_properties, m.raw_properties);
        assert_eq!(back.body, m.body);
        assert!(back.persistent);
        assert_eq!(back.priority, 3);
        assert!(decode_message(Bytes::from_static(b"\x01\x05ab")).is_none());
        assert!(decode_message(Bytes::new()).is_none());
    }

    #[test]
    fn entries_round_trip() {
        let e = decode_entry(7, &encode_entry(42, true)).unwrap();
        assert_eq!(
            e,
            EntryRecord {
                seq: 7,
                message: 42,
                redelivered: true
            }
        );
        assert!(decode_entry(7, &[1, 2]).is_none());
    }
}
