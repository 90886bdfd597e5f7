//! The sled-backed store, in two sled instances under the data directory.
//!
//! `store` holds three trees: `definitions` (exchanges, queues, bindings as JSON, with
//! arguments in their AMQP wire form), `entries` ([`EntryKey`] → [`EntryRecord`]), so each
//! queue lane is one ordered key range that paging reads back in order, and `dedup` (queue id
//! and deduplication key → when it was seen). `messages` holds the message bodies (id →
//! encoded message, stored once however many queues hold it). Kept apart, the entries fill a
//! small file of their own, so recovery reads them sequentially instead of picking them out
//! of gigabytes of bodies.
//!
//! Messages paged out that are not kept across a restart go to plain files beside them
//! ([`PagedFiles`]).

use super::paged::{merge_lane, PagedFiles};
use super::{
    decode_message, encode_message, BindingRecord, DedupRecord, EntryKey, EntryRecord, LoadedEntry,
    MetaKind, MetaRecord, Recovered, Store, StoreError, StoreOp,
};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// A sled instance of its own (see the module documentation).
    bodies: sled::Db,
    definitions: sled::Tree,
    messages: sled::Tree,
    entries: sled::Tree,
    dedup: sled::Tree,
    paged: Mutex<PagedFiles>,
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

fn meta_key(kind: MetaKind, key: &str) -> Vec<u8> {
    [b"m\0", &[kind][..], b"\0", key.as_bytes()].concat()
}

fn binding_key(b: &BindingRecord) -> Result<Vec<u8>, StoreError> {
    // The whole record is the identity of a binding (arguments included).
    Ok([b"b\0".as_slice(), &json(b)?].concat())
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Engine(e.to_string()))
}

/// How long to wait for the store's file lock: sled's background flusher can hold it briefly
/// after the previous instance closed (an in-process restart), and another broker holding it
/// for longer means this one must not start.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(engine(e)),
        }
    }
}

/// Moves message records of a store written before bodies had their own sled instance.
fn move_legacy_messages(
    db: &sled::Db,
    bodies: &sled::Db,
    messages: &sled::Tree,
) -> Result<(), StoreError> {
    if !db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == b"messages")
    {
        return Ok(());
    }
    let legacy = db.open_tree("messages").map_err(engine)?;
    if !legacy.is_empty() {
        tracing::info!("moving {} stored messages to their own file", legacy.len());
        let mut batch = sled::Batch::default();
        for (n, item) in legacy.iter().enumerate() {
            let (k, v) = item.map_err(engine)?;
            batch.insert(k, v);
            if n % 10_000 == 9_999 {
                messages
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(engine)?;
            }
        }
        messages.apply_batch(batch).map_err(engine)?;
        bodies.flush().map_err(engine)?;
    }
    db.drop_tree("messages").map_err(engine)?;
    db.flush().map_err(engine)?;
    Ok(())
}

/// The definitions key present while the store is closed after a clean stop.
const CLEAN_KEY: &[u8] = b"m\0clean";

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store sled cannot open is an error, never a
    /// silent fresh start.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A broker's hot pages are the ends of each queue's key range (appends at one end,
        // acks at the other), so a small cache serves it. sled's in-memory pages take several
        // times the size it counts against this: with 64 MiB, recovering 2M messages held
        // 480 MB; with 16 MiB, about half of that.
        let config = |name: &str, cache: u64| {
            sled::Config::new()
                .path(dir.join(name))
                .cache_capacity(cache)
                .flush_every_ms(Some(1000))
                .mode(sled::Mode::HighThroughput)
        };
        let db = open_waiting_for_lock(&config("store", 8 * 1024 * 1024))?;
        let bodies = open_waiting_for_lock(&config("messages", 16 * 1024 * 1024))?;
        let definitions = db.open_tree("definitions").map_err(engine)?;
        let messages = bodies.open_tree("messages").map_err(engine)?;
        let entries = db.open_tree("entries").map_err(engine)?;
        let dedup = db.open_tree("dedup").map_err(engine)?;
        move_legacy_messages(&db, &bodies, &messages)?;
        let paged = Mutex::new(PagedFiles::open(&dir.join("paged"))?);
        Ok(Self {
            db,
            bodies,
            definitions,
            messages,
            entries,
            dedup,
            paged,
        })
    }

    fn paged(&self) -> Result<MutexGuard<'_, PagedFiles>, StoreError> {
        self.paged.lock().map_err(|_| StoreError::Closed)
    }

    fn load_definitions(&self, out: &mut Recovered) -> Result<(), StoreError> {
        for item in self.definitions.iter() {
            let (key, value) = item.map_err(engine)?;
            let name = String::from_utf8_lossy(&key).replace('\0', "/");
            let parsed = match key.first() {
                Some(b'x') => serde_json::from_slice(&value).map(|r| out.exchanges.push(r)),
                Some(b'q') => serde_json::from_slice(&value).map(|r| out.queues.push(r)),
                Some(b'b') => serde_json::from_slice(&value).map(|r| out.bindings.push(r)),
                Some(b'm') if key.len() >= 4 && key[1] == 0 && key[3] == 0 => {
                    out.meta.push(MetaRecord {
                        kind: key[2],
                        key: String::from_utf8_lossy(&key[4..]).into_owned(),
                        value: value.to_vec(),
                    });
                    Ok(())
                }
                _ if key.as_ref() == CLEAN_KEY => {
                    out.clean = true;
                    Ok(())
                }
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

    fn message(&self, id: u64) -> Result<Option<super::Message>, StoreError> {
        let value = self.messages.get(id.to_be_bytes()).map_err(engine)?;
        Ok(value.and_then(|v| decode_message(bytes::Bytes::copy_from_slice(&v))))
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<Recovered, StoreError> {
        let mut out = Recovered::default();
        self.load_definitions(&mut out)?;
        for item in self.dedup.iter() {
            let (key, value) = item.map_err(engine)?;
            match DedupRecord::from_stored(&key, &value) {
                Some(r) => out.dedup_keys.push(r),
                None => out
                    .dropped
                    .push(format!("deduplication key with a malformed record {key:?}")),
            }
        }
        if let Some((key, _)) = self.messages.last().map_err(engine)? {
            out.max_message_id = <[u8; 8]>::try_from(&key[..])
                .map(u64::from_be_bytes)
                .unwrap_or(0);
        }
        Ok(out)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut paged = None;
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
                StoreOp::DeleteQueue { vhost, name } => {
                    self.definitions
                        .remove(queue_key(vhost, name))
                        .map_err(engine)?;
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
                StoreOp::PutEntry { key, record } => {
                    self.entries
                        .insert(key.to_bytes(), &record.to_bytes()[..])
                        .map_err(engine)?;
                }
                StoreOp::RemoveEntry { key } => {
                    self.entries.remove(key.to_bytes()).map_err(engine)?;
                }
                StoreOp::PageOut {
                    key,
                    expires,
                    redelivered,
                    message,
                } => {
                    let files = match &mut paged {
                        Some(files) => files,
                        None => paged.insert(self.paged()?),
                    };
                    files.append(*key, *expires, *redelivered, message)?;
                }
                StoreOp::MarkClean(true) => {
                    self.definitions
                        .insert(CLEAN_KEY, &[1u8][..])
                        .map_err(engine)?;
                }
                StoreOp::MarkClean(false) => {
                    self.definitions.remove(CLEAN_KEY).map_err(engine)?;
                }
                StoreOp::PutMeta(r) => {
                    self.definitions
                        .insert(meta_key(r.kind, &r.key), r.value.as_slice())
                        .map_err(engine)?;
                }
                StoreOp::DeleteMeta { kind, key } => {
                    self.definitions
                        .remove(meta_key(*kind, key))
                        .map_err(engine)?;
                }
                StoreOp::PutDedupKey(r) => {
                    self.dedup
                        .insert(DedupRecord::store_key(r.queue, &r.key), r.store_value())
                        .map_err(engine)?;
                }
                StoreOp::RemoveDedupKey { queue, key } => {
                    self.dedup
                        .remove(DedupRecord::store_key(*queue, key))
                        .map_err(engine)?;
                }
            }
        }
        match paged {
            Some(mut files) => files.flush(),
            None => Ok(()),
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        // Both at once: the bodies' flush runs on sled's thread pool (`zip` polls it first,
        // which starts it) while this thread flushes the entries, so a sync waits for the
        // slower of the two, not their sum. An entry that reaches the disk before its message
        // (a crash in between) belongs to a message never confirmed: recovery drops it and
        // says so.
        let (bodies, entries) = futures_lite::future::block_on(futures_lite::future::zip(
            self.bodies.flush_async(),
            async { self.db.flush() },
        ));
        entries.and(bodies).map(|_| ()).map_err(engine)
    }

    fn read_entries(
        &self,
        queue: u64,
        lane: u8,
        from: u64,
        max: usize,
    ) -> Result<Vec<LoadedEntry>, StoreError> {
        let start = EntryKey {
            queue,
            lane,
            seq: from,
        }
        .to_bytes();
        let end = EntryKey {
            queue,
            lane,
            seq: u64::MAX,
        }
        .to_bytes();
        let mut stored = Vec::with_capacity(max.min(4096));
        for item in self.entries.range(start..=end).take(max) {
            let (k, v) = item.map_err(engine)?;
            let (Some(key), Some(record)) = (EntryKey::from_bytes(&k), EntryRecord::from_bytes(&v))
            else {
                continue;
            };
            stored.push((key, record, self.message(record.message)?));
        }
        let mut paged = self.paged()?;
        merge_lane(stored, max, |below| paged.next_below(queue, lane, below))
    }

    fn message_ids(&self, from: u64, max: usize) -> Result<Vec<u64>, StoreError> {
        let mut ids = Vec::with_capacity(max.min(4096));
        for key in self.messages.range(from.to_be_bytes()..).keys().take(max) {
            let key = key.map_err(engine)?;
            if let Ok(id) = <[u8; 8]>::try_from(&key[..]) {
                ids.push(u64::from_be_bytes(id));
            }
        }
        Ok(ids)
    }

    fn scan_entries(
        &self,
        visit: &mut dyn FnMut(EntryKey, EntryRecord) -> Result<(), StoreError>,
    ) -> Result<Vec<String>, StoreError> {
        let mut dropped = Vec::new();
        for item in self.entries.iter() {
            let (key, value) = item.map_err(engine)?;
            match (EntryKey::from_bytes(&key), EntryRecord::from_bytes(&value)) {
                (Some(k), Some(r)) => visit(k, r)?,
                _ => dropped.push(format!("queue entry with a malformed key or value {key:?}")),
            }
        }
        Ok(dropped)
    }

    fn take_entries(
        &self,
        first: EntryKey,
        last: EntryKey,
        max: usize,
    ) -> Result<Vec<(EntryKey, EntryRecord)>, StoreError> {
        self.paged()?.drop_range(first, last)?;
        let mut batch = sled::Batch::default();
        let mut taken = Vec::new();
        for item in self
            .entries
            .range(first.to_bytes()..=last.to_bytes())
            .take(max)
        {
            let (k, v) = item.map_err(engine)?;
            if let (Some(key), Some(record)) =
                (EntryKey::from_bytes(&k), EntryRecord::from_bytes(&v))
            {
                taken.push((key, record));
            }
            batch.remove(k);
        }
        self.entries.apply_batch(batch).map_err(engine)?;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Message;
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn messages_of_a_store_from_before_the_split_are_moved_to_their_own_instance() {
        let dir = tempfile::tempdir().unwrap();
        let props = warren_amqp::BasicProperties::default().with_delivery_mode(2);
        let mut raw = bytes::BytesMut::new();
        warren_amqp::encode::properties(&mut raw, &props);
        let message = Message::from_parts(
            "".into(),
            "q".into(),
            &props,
            raw.freeze(),
            Bytes::from_static(b"kept"),
        );
        let key = EntryKey {
            queue: 1,
            lane: 0,
            seq: 0,
        };
        let record = EntryRecord {
            message: 9,
            redelivered: false,
            transient: false,
            expires: 0,
            delivery_count: 0,
        };
        {
            // The earlier layout: messages in a tree of the one instance.
            let db = sled::open(dir.path().join("store")).unwrap();
            let legacy = db.open_tree("messages").unwrap();
            legacy
                .insert(9u64.to_be_bytes(), encode_message(&message).as_ref())
                .unwrap();
            let entries = db.open_tree("entries").unwrap();
            entries
                .insert(key.to_bytes(), &record.to_bytes()[..])
                .unwrap();
            db.flush().unwrap();
        }
        for reopened in 0..2 {
            let store = SledStore::open(dir.path()).unwrap();
            assert!(!store
                .db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == b"messages"));
            assert_eq!(store.load().unwrap().max_message_id, 9 + reopened);
            let read = store.read_entries(1, 0, 0, 10).unwrap();
            assert_eq!(read.len(), 1);
            let body = read[0].2.as_ref().map(|m| m.body.clone());
            assert_eq!(body, Some(Bytes::from_static(b"kept")));
            store
                .apply(&[StoreOp::PutMessage {
                    id: 10,
                    message: Arc::new(message.clone()),
                }])
                .unwrap();
            store.sync().unwrap();
        }
    }

    #[test]
    fn metadata_records_survive_a_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let record = |kind, key: &str, value: &str| MetaRecord {
            kind,
            key: key.into(),
            value: value.as_bytes().to_vec(),
        };
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .apply(&[
                    StoreOp::PutMeta(record(b'u', "alice", "{}")),
                    StoreOp::PutMeta(record(b'u', "bob", "{\"tags\":[]}")),
                    StoreOp::PutMeta(record(b'v', "/", "{}")),
                    StoreOp::DeleteMeta {
                        kind: b'u',
                        key: "alice".into(),
                    },
                ])
                .unwrap();
            store.sync().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded.meta,
            [
                record(b'u', "bob", "{\"tags\":[]}"),
                record(b'v', "/", "{}")
            ]
        );
        assert!(loaded.dropped.is_empty(), "{:?}", loaded.dropped);
    }
}
