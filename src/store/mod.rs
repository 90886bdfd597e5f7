//! Durable state: the only module that knows how things are kept on disk.
//!
//! The broker describes changes as [`StoreOp`]s; a [`Store`] applies them and makes them
//! durable on `sync`. [`writer::StoreHandle`] runs the store on its own thread with group
//! commit: one sync covers every change that arrived while the previous one ran. `sled` backs
//! the real broker; [`memory::MemoryStore`] serves tests where disk is not the point.

mod held;
pub mod memory;
pub mod message;
pub mod paged;
pub mod refs;
pub mod sled_store;
pub mod writer;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warren_amqp::FieldTable;

pub use message::Message;
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

/// Where one queue entry lives on disk: the queue's store id, its lane (the priority level,
/// 0 for ordinary queues) and its sequence number, so each lane is one ordered key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub queue: u64,
    pub lane: u8,
    pub seq: u64,
}

/// What an entry records: the stored message, and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRecord {
    pub message: u64,
    pub redelivered: bool,
    /// A transient message paged out of memory: dropped at recovery.
    pub transient: bool,
    /// When the message expires (ms since the Unix epoch; 0: never).
    pub expires: u64,
    /// How often the message was returned to its queue (quorum queues count returns);
    /// written only when not 0, so records written before the field existed read as 0.
    pub delivery_count: u32,
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
    DeleteQueue {
        vhost: String,
        name: String,
    },
    PutBinding(BindingRecord),
    DeleteBinding(BindingRecord),
    /// A message, stored once however many durable queues hold it.
    PutMessage {
        id: u64,
        message: Arc<Message>,
    },
    RemoveMessage {
        id: u64,
    },
    /// A message's place in a queue; written again when it has been delivered, so it comes
    /// back redelivered after a crash.
    PutEntry {
        key: EntryKey,
        record: EntryRecord,
    },
    RemoveEntry {
        key: EntryKey,
    },
    /// A message paged out of memory that is not kept across a restart (transient, or in a
    /// non-durable queue): written once, read back once, never synced.
    PageOut {
        key: EntryKey,
        expires: u64,
        redelivered: bool,
        message: Arc<Message>,
    },
    /// Written as the last change before a clean stop, removed at start: when present at
    /// start, nothing can be left of half-done changes, and the look for them is skipped.
    MarkClean(bool),
    /// A record of the broker's metadata (a vhost, a user, a permission...): the store keeps
    /// its bytes under its kind and key and knows nothing else of it.
    PutMeta(MetaRecord),
    DeleteMeta {
        kind: MetaKind,
        key: String,
    },
    /// A deduplicating queue's key, kept so a retry after a restart is still recognised.
    PutDedupKey(DedupRecord),
    RemoveDedupKey {
        queue: u64,
        key: Box<[u8]>,
    },
}

/// Which kind of metadata a record holds; its key is unique within its kind.
pub type MetaKind = u8;

/// A record of the broker's metadata as the store keeps it: opaque bytes (the broker's
/// serialisation) under a kind and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRecord {
    pub kind: MetaKind,
    pub key: String,
    pub value: Vec<u8>,
}

/// A deduplication key a durable queue has seen, and when (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupRecord {
    pub queue: u64,
    pub key: Box<[u8]>,
    pub seen_at: u64,
    /// How long the key counts when the message said so itself (its `x-cache-ttl` header);
    /// `None`: as long as the queue's own settings say.
    pub ttl: Option<u64>,
}

impl DedupRecord {
    /// The stored key: the queue's id, then the deduplication key.
    pub fn store_key(queue: u64, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + key.len());
        k.extend_from_slice(&queue.to_be_bytes());
        k.extend_from_slice(key);
        k
    }

    /// The stored value: when the key was seen, then the message's own TTL if it had one.
    pub fn store_value(&self) -> Vec<u8> {
        let mut v = self.seen_at.to_be_bytes().to_vec();
        if let Some(ttl) = self.ttl {
            v.extend_from_slice(&ttl.to_be_bytes());
        }
        v
    }

    /// Reads a stored key and value back.
    pub fn from_stored(stored_key: &[u8], value: &[u8]) -> Option<Self> {
        let queue = u64::from_be_bytes(stored_key.get(..8)?.try_into().ok()?);
        let seen_at = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
        let ttl = match value.len() {
            8 => None,
            16 => Some(u64::from_be_bytes(value.get(8..)?.try_into().ok()?)),
            _ => return None,
        };
        Some(Self {
            queue,
            key: stored_key.get(8..)?.into(),
            seen_at,
            ttl,
        })
    }
}

/// Everything a store holds, as read at start (message bodies stay on disk).
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<ExchangeRecord>,
    pub queues: Vec<QueueRecord>,
    pub bindings: Vec<BindingRecord>,
    /// The largest message id in the store.
    pub max_message_id: u64,
    /// Deduplication keys of durable queues.
    pub dedup_keys: Vec<DedupRecord>,
    /// The broker's metadata records, in kind and key order.
    pub meta: Vec<MetaRecord>,
    /// The broker stopped cleanly, after everything it started was done.
    pub clean: bool,
    /// Records that could not be read, with the reason: logged, never silently dropped.
    pub dropped: Vec<String>,
}

/// An entry read back from disk with its message (`None` if the message record is missing
/// or undecodable).
pub type LoadedEntry = (EntryKey, EntryRecord, Option<Message>);

/// A storage engine.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads definitions back (entries and messages stay on disk).
    fn load(&self) -> Result<Recovered, StoreError>;
    /// Calls `visit` with every entry in key order (so per queue and lane in sequence order);
    /// returns what could not be read. `visit` may apply changes to the store.
    fn scan_entries(
        &self,
        visit: &mut dyn FnMut(EntryKey, EntryRecord) -> Result<(), StoreError>,
    ) -> Result<Vec<String>, StoreError>;
    /// Applies changes in order; durable only after `sync`.
    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError>;
    /// Makes everything applied so far durable (fsync).
    fn sync(&self) -> Result<(), StoreError>;
    /// Up to `max` entries of one lane from sequence `from` on, with their messages.
    fn read_entries(
        &self,
        queue: u64,
        lane: u8,
        from: u64,
        max: usize,
    ) -> Result<Vec<LoadedEntry>, StoreError>;
    /// Up to `max` ids of stored messages from `from` on, in order.
    fn message_ids(&self, from: u64, max: usize) -> Result<Vec<u64>, StoreError>;
    /// Removes up to `max` entries from `first` to `last` (inclusive, in key order); returns
    /// them.
    fn take_entries(
        &self,
        first: EntryKey,
        last: EntryKey,
        max: usize,
    ) -> Result<Vec<(EntryKey, EntryRecord)>, StoreError>;
}

const MESSAGE_FORMAT: u8 = 1;

/// The stored form of a message: format, exchange, routing key, properties, body.
pub fn encode_message(message: &Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoded_len(message));
    encode_message_into(&mut buf, message);
    buf.freeze()
}

fn encoded_len(message: &Message) -> usize {
    1 + 2
        + message.exchange.as_str().len()
        + message.routing_key.as_str().len()
        + 4
        + message.raw_properties.len()
        + message.body.len()
}

/// Appends a message's stored form to `buf`.
pub fn encode_message_into(buf: &mut impl BufMut, message: &Message) {
    let (x, rk) = (
        message.exchange.as_str().as_bytes(),
        message.routing_key.as_str().as_bytes(),
    );
    buf.put_u8(MESSAGE_FORMAT);
    buf.put_u8(x.len() as u8);
    buf.put_slice(x);
    buf.put_u8(rk.len() as u8);
    buf.put_slice(rk);
    buf.put_u32(message.raw_properties.len() as u32);
    buf.put_slice(&message.raw_properties);
    buf.put_slice(&message.body);
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
        warren_amqp::short_string(&exchange),
        warren_amqp::short_string(&routing_key),
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

impl EntryKey {
    pub fn to_bytes(self) -> [u8; 17] {
        let mut k = [0u8; 17];
        k[..8].copy_from_slice(&self.queue.to_be_bytes());
        k[8] = self.lane;
        k[9..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let k: &[u8; 17] = bytes.try_into().ok()?;
        Some(Self {
            queue: u64::from_be_bytes(k[..8].try_into().ok()?),
            lane: k[8],
            seq: u64::from_be_bytes(k[9..].try_into().ok()?),
        })
    }

    /// The key right after this one, if any.
    pub fn successor(self) -> Option<Self> {
        match (self.seq.checked_add(1), self.lane.checked_add(1)) {
            (Some(seq), _) => Some(Self { seq, ..self }),
            (None, Some(lane)) => Some(Self {
                lane,
                seq: 0,
                ..self
            }),
            (None, None) => None,
        }
    }

    /// The first key of a lane's range from `seq` on (or of the whole queue's).
    pub fn prefix(queue: u64, lane: Option<u8>) -> Vec<u8> {
        let mut p = queue.to_be_bytes().to_vec();
        p.extend(lane);
        p
    }
}

impl EntryRecord {
    /// The record of an entry read back from the paged files: no stored message, not kept
    /// across a restart.
    pub fn paged(expires: u64, redelivered: bool) -> Self {
        Self {
            message: 0,
            redelivered,
            transient: true,
            expires,
            delivery_count: 0,
        }
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(21);
        v.extend_from_slice(&self.message.to_be_bytes());
        v.push(u8::from(self.redelivered) | (u8::from(self.transient) << 1));
        v.extend_from_slice(&self.expires.to_be_bytes());
        if self.delivery_count > 0 {
            v.extend_from_slice(&self.delivery_count.to_be_bytes());
        }
        v
    }

    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        let id: [u8; 8] = value.get(..8)?.try_into().ok()?;
        let flags = *value.get(8)?;
        let expires = value
            .get(9..17)
            .and_then(|e| <[u8; 8]>::try_from(e).ok())
            .map_or(0, u64::from_be_bytes);
        let delivery_count = value
            .get(17..21)
            .and_then(|c| <[u8; 4]>::try_from(c).ok())
            .map_or(0, u32::from_be_bytes);
        Some(Self {
            message: u64::from_be_bytes(id),
            redelivered: flags & 1 != 0,
            transient: flags & 2 != 0,
            expires,
            delivery_count,
        })
    }
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
    fn dedup_records_round_trip_with_and_without_their_own_ttl() {
        for ttl in [None, Some(500)] {
            let r = DedupRecord {
                queue: 7,
                key: b"order-1".as_slice().into(),
                seen_at: 1_700_000_000_000,
                ttl,
            };
            let key = DedupRecord::store_key(r.queue, &r.key);
            assert_eq!(DedupRecord::from_stored(&key, &r.store_value()), Some(r));
        }
        assert_eq!(DedupRecord::from_stored(&[0; 8], &[0; 12]), None);
    }

    #[test]
    fn entries_round_trip() {
        let key = EntryKey {
            queue: 3,
            lane: 9,
            seq: 7,
        };
        assert_eq!(EntryKey::from_bytes(&key.to_bytes()), Some(key));
        let record = EntryRecord {
            message: 42,
            redelivered: true,
            transient: true,
            expires: 7,
            delivery_count: 0,
        };
        assert_eq!(EntryRecord::from_bytes(&record.to_bytes()), Some(record));
        assert!(EntryRecord::from_bytes(&[1, 2]).is_none());
        assert!(key.to_bytes().starts_with(&EntryKey::prefix(3, Some(9))));
    }
}
