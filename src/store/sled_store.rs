//! The sled-backed store. Three trees: `definitions` (exchanges, queues, bindings as JSON),
//! `messages` (id → encoded message, stored once however many queues hold it) and `entries`
//! (queue id ++ sequence → message id and flags), so a queue's messages are one ordered range.

use super::{
    decode_entry, decode_message, encode_entry, encode_message, BindingRecord, ExchangeRecord,
    QueueRecord, Recovered, Store, StoreError, StoreOp,
};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    definitions: sled::Tree,
    messages: sled::Tree,
    entries: sled::Tree,
}

fn engine(e: sled::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn exchange_key(vhost: &str, name: &str) -> Vec<u8> {
    [b"x\0", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn queue_key(vhost: &str, name: &str) -> Vec<u8> {
    [b"q\0", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn binding_key(b: &BindingRecord) -> Result<Vec<u8>, StoreError> {
    // The whole record is the identity of a binding (arguments included).
    let json = serde_json::to_vec(b).map_err(|e| StoreError::Engine(e.to_string()))?;
    Ok([b"b\0".as_slice(), &json].concat())
}

fn entry_key(queue: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&queue.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Engine(e.to_string()))
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store sled cannot open is an error, never a
    /// silent fresh start.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
            // sled's default 1 GiB page cache is far more than a broker's metadata needs.
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(engine)?;
        let definitions = db.open_tree("definitions").map_err(engine)?;
        let messages = db.open_tree("messages").map_err(engine)?;
        let entries = db.open_tree("entries").map_err(engine)?;
        Ok(Self {
            db,
            definitions,
            messages,
            entries,
        })
    }

    fn load_definitions(&self, out: &mut Recovered) -> Result<(), StoreError> {
        for item in self.definitions.iter() {
            let (key, value) = item.map_err(engine)?;
            let name = String::from_utf8_lossy(&key).replace('\0', "/");
            let parsed =
                match key.first() {
                    Some(b'x') => serde_json::from_slice::<ExchangeRecord>(&value)
                        .map(|r| out.exchanges.push(r)),
                    Some(b'q') => {
                        serde_json::from_slice::<QueueRecord>(&value).map(|r| out.queues.push(r))
                    }
                    Some(b'b') => serde_json::from_slice::<BindingRecord>(&value)
                        .map(|r| out.bindings.push(r)),
                    _ => {
                        out.dropped.push(format!("unknown definition {name}"));
                        Ok(())
                    }
                };
            if let Err(e) = parsed {
                out.dropped.push(format!("definition {name}: {e}"));
            }
        }
        Ok(())
    }

    fn load_messages(&self, out: &mut Recovered) -> Result<(), StoreError> {
        for item in self.messages.iter() {
            let (key, value) = item.map_err(engine)?;
            let Ok(id) = <[u8; 8]>::try_from(&key[..]).map(u64::from_be_bytes) else {
                out.dropped
                    .push(format!("message with a malformed key {key:?}"));
                continue;
            };
            match decode_message(bytes::Bytes::copy_from_slice(&value)) {
                Some(m) => {
                    out.messages.insert(id, Arc::new(m.with_store_id(id)));
                }
                None => out
                    .dropped
                    .push(format!("message {id}: undecodable record")),
            }
        }
        Ok(())
    }

    fn load_entries(&self, out: &mut Recovered) -> Result<(), StoreError> {
        for item in self.entries.iter() {
            let (key, value) = item.map_err(engine)?;
            let parsed = <[u8; 16]>::try_from(&key[..]).ok().and_then(|k| {
                let queue = u64::from_be_bytes(k[..8].try_into().ok()?);
                let seq = u64::from_be_bytes(k[8..].try_into().ok()?);
                Some((queue, decode_entry(seq, &value)?))
            });
            match parsed {
                Some((queue, entry)) => out.entries.entry(queue).or_default().push(entry),
                None => out
                    .dropped
                    .push(format!("queue entry with a malformed key or value {key:?}")),
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<Recovered, StoreError> {
        let mut out = Recovered::default();
        self.load_definitions(&mut out)?;
        self.load_messages(&mut out)?;
        self.load_entries(&mut out)?;
        Ok(out)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                StoreOp::PutExchange(r) => {
                    self.definitions
                        .insert(exchange_key(&r.vhost, &r.name), json(r)?)
                        .map_err(engine)?;
                }
                StoreOp::DeleteExchange { vhost, name } => {
                    self.definitions
                        .remove(exchange_key(vhost, name))
                        .map_err(engine)?;
                }
                StoreOp::PutQueue(r) => {
                    self.definitions
                        .insert(queue_key(&r.vhost, &r.name), json(r)?)
                        .map_err(engine)?;
                }
                StoreOp::DeleteQueue { vhost, name, id } => {
                    self.definitions
                        .remove(queue_key(vhost, name))
                        .map_err(engine)?;
                    let mut batch = sled::Batch::default();
                    for key in self.entries.scan_prefix(id.to_be_bytes()).keys() {
                        batch.remove(key.map_err(engine)?);
                    }
                    self.entries.apply_batch(batch).map_err(engine)?;
                }
                StoreOp::PutBinding(r) => {
                    self.definitions
                        .insert(binding_key(r)?, json(r)?)
                        .map_err(engine)?;
                }
                StoreOp::DeleteBinding(r) => {
                    self.definitions.remove(binding_key(r)?).map_err(engine)?;
                }
                StoreOp::PutMessage { id, message } => {
                    self.messages
                        .insert(id.to_be_bytes(), encode_message(message).as_ref())
                        .map_err(engine)?;
                }
                StoreOp::RemoveMessage { id } => {
                    self.messages.remove(id.to_be_bytes()).map_err(engine)?;
                }
                StoreOp::PutEntry {
                    queue,
                    seq,
                    message,
                    redelivered,
                } => {
                    self.entries
                        .insert(
                            entry_key(*queue, *seq),
                            &encode_entry(*message, *redelivered)[..],
                        )
                        .map_err(engine)?;
                }
                StoreOp::RemoveEntry { queue, seq } => {
                    self.entries
                        .remove(entry_key(*queue, *seq))
                        .map_err(engine)?;
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }
}
