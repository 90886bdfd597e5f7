//! A deduplicating queue (`x-message-deduplication`) drops a publish whose key it holds, and
//! confirms it as accepted, so a producer that retries after a lost confirm does not create a
//! duplicate. The key is the message's `x-deduplication-header` header (or the header that
//! `x-deduplication-header` names); a message without it is never dropped.
//!
//! Without cache arguments a key is held while a message carrying it is in the queue, ready or
//! unacked (the RabbitMQ plugin's meaning): an ack, an auto-ack delivery, a reject, an expiry, a
//! drop-head or a purge frees it. With `x-cache-size` or `x-cache-ttl` the queue holds the keys
//! of recently published messages instead, consumed or not (LavinMQ's meaning).
//!
//! Durable queues keep the keys of persistent messages in the store, so a producer retrying
//! after a restart is still recognised.

use super::args::Dedup;
use super::{Queue, QueueState};
use crate::broker::dedup::{key_of, ttl_of, WindowCache, DEFAULT_CACHE_SIZE};
use crate::broker::message::{now_ms, Message, QueueEntry};
use crate::store::{DedupRecord, StoreOp};
use std::collections::HashMap;
use warren_amqp::FieldTable;

/// The keys a deduplicating queue holds.
#[derive(Debug, Default)]
pub enum QueueDedup {
    #[default]
    Off,
    /// Keys of the messages in the queue.
    Queued(HashMap<Box<[u8]>, Holder>),
    /// Keys of recently published messages.
    Cache(WindowCache),
}

/// The message that holds a key in a `Queued` queue.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    /// Its sequence number in the queue; `RESTORED` for a key read back at start, which any
    /// message with that key frees.
    seq: u64,
    /// The store keeps the key.
    stored: bool,
}

const RESTORED: u64 = u64::MAX;

impl QueueDedup {
    pub fn for_args(dedup: Option<&Dedup>) -> Self {
        match dedup {
            None => Self::Off,
            Some(d) if d.is_cache() => Self::Cache(WindowCache::default()),
            Some(_) => Self::Queued(HashMap::new()),
        }
    }
}

/// A message's headers, read from its properties as published.
fn headers_of(message: &Message) -> Option<FieldTable> {
    let props = warren_amqp::protocol::basic::parse_properties(&message.raw_properties[..])
        .ok()?
        .1;
    props.headers().clone()
}

impl Queue {
    /// Records the deduplication key of `message`, the next to be queued, if it has one;
    /// false when the queue holds that key already.
    pub(super) fn admit_key(&self, state: &mut QueueState, message: &Message) -> bool {
        let Some(d) = &self.args.deduplication else {
            return true;
        };
        let headers = headers_of(message);
        let Some(key) = key_of(headers.as_ref(), d.header()) else {
            return true;
        };
        let stored = self.keeps(message) && message.store_id != 0 && self.storage.is_some();
        let (seq, now) = (state.next_seq, now_ms());
        let own_ttl = ttl_of(headers.as_ref());
        match &mut state.dedup {
            QueueDedup::Off => return true,
            QueueDedup::Queued(held) => {
                if held.contains_key(&key) {
                    return false;
                }
                held.insert(key.clone(), Holder { seq, stored });
            }
            QueueDedup::Cache(cache) => {
                let ttl = own_ttl.or(d.cache_ttl);
                let size = d.cache_size.unwrap_or(DEFAULT_CACHE_SIZE);
                let mut forgotten = Vec::new();
                if !cache.admit(&key, now, ttl, size, stored, &mut forgotten) {
                    return false;
                }
                for key in forgotten {
                    self.forget_key(key);
                }
            }
        }
        if let (Some(s), true) = (&self.storage, stored) {
            s.store.submit(StoreOp::PutDedupKey(DedupRecord {
                queue: s.id,
                key,
                seen_at: now,
                ttl: own_ttl,
            }));
        }
        true
    }

    /// An entry leaves the queue for good: in a queue that holds the keys of its messages,
    /// the entry's key is free again.
    pub(super) fn release_key(&self, state: &mut QueueState, entry: &QueueEntry) {
        let (QueueDedup::Queued(held), Some(d)) = (&mut state.dedup, &self.args.deduplication)
        else {
            return;
        };
        let Some(key) = key_of(headers_of(&entry.message).as_ref(), d.header()) else {
            return;
        };
        // A key held by a later message with the same key (one published after a purge freed
        // this one's) stays.
        if let Some(holder) = held.get(&key).copied() {
            if holder.seq == entry.seq || holder.seq == RESTORED {
                held.remove(&key);
                if holder.stored {
                    self.forget_key(key);
                }
            }
        }
    }

    /// A purge frees every key the queue holds, those of unacked messages too, as the plugin
    /// does.
    pub(super) fn release_all_keys(&self, state: &mut QueueState) {
        if let QueueDedup::Queued(held) = &mut state.dedup {
            for (key, holder) in held.drain() {
                if holder.stored {
                    self.forget_key(key);
                }
            }
        }
    }

    fn forget_key(&self, key: Box<[u8]>) {
        if let Some(s) = &self.storage {
            s.store.submit(StoreOp::RemoveDedupKey { queue: s.id, key });
        }
    }

    /// Takes back the keys the store kept for this queue, oldest first, after a restart: in a
    /// cache each keeps its age, so a TTL runs on from where it was.
    pub fn restore_dedup_keys(&self, records: Vec<DedupRecord>) {
        let ttl = self.args.deduplication.as_ref().and_then(|d| d.cache_ttl);
        let mut state = self.state();
        for r in records {
            match &mut state.dedup {
                QueueDedup::Off => {}
                QueueDedup::Queued(held) => {
                    let holder = Holder {
                        seq: RESTORED,
                        stored: true,
                    };
                    held.insert(r.key, holder);
                }
                QueueDedup::Cache(cache) => {
                    let until = r.ttl.or(ttl).map(|t| r.seen_at.saturating_add(t));
                    cache.restore(r.key, until);
                }
            }
        }
    }
}
