//! The sled-backed store. Four trees: `definitions` (exchanges, queues, bindings as JSON, with
//! arguments in their AMQP wire form), `messages` (id → encoded message, stored once however
//! many queues hold it), `entries` ([`EntryKey`] → [`EntryRecord`]), so each queue lane is
//! one ordered key range that paging reads back in order, and `dedup` (queue id and
//! deduplication key → when it was seen). Messages paged out that are not kept across a
//! restart go to plain files beside it ([`PagedFiles`]).

use super::paged::{merge_lane, PagedFiles};
use super::{
    decode_message, encode_message, BindingRecord, DedupRecord, EntryKey, EntryRecord, LoadedEntry,
    Recovered, Store, StoreError, StoreOp,
};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
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

/// The definitions key present while the store is closed after a clean stop.
const CLEAN_KEY: &[u8] = b"m\0clean";

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store sled cannot open is an error, never a
    /// silent fresh start.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir.join("store"))
            // A broker's hot pages are the ends of each queue's key range (appends at one end,
            // acks at the other), so a small cache serves it. sled's in-memory pages take
            // several times the size it counts against this: with 64 MiB, recovering 2M
            // messages held 480 MB; with 16 MiB, about half of that.
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .mode(sled::Mode::HighThroughput);
        let db = open_waiting_for_lock(&config)?;
        let definitions = db.open_tree("definitions").map_err(engine)?;
        let messages = db.open_tree("messages").map_err(engine)?;
        let entries = db.open_tree("entries").map_err(engine)?;
        let dedup = db.open_tree("dedup").map_err(engine)?;
        let paged = Mutex::new(PagedFiles::open(&dir.join("paged"))?);
        Ok(Self {
            db,
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
                StoreOp::PutDedupKey(r) => {
                    self.dedup
                        .insert(
                            DedupRecord::store_key(r.queue, &r.key),
                            &r.seen_at.to_be_bytes()[..],
                        )
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
        self.db.flush().map(|_| ()).map_err(engine)
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
