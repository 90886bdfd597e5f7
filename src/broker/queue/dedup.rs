//! Deduplication (`x-message-deduplication`): a queue remembers the keys of recent messages
//! (their `x-deduplication-header` header, or else their message-id) and drops a publish whose
//! key it has seen, so a producer that retries after a lost confirm does not create a
//! duplicate. The window is bounded by `x-cache-size` keys and `x-cache-ttl` milliseconds.

use super::args::Dedup;
use super::{Queue, QueueState};
use crate::broker::message::{now_ms, Message};
use crate::store::{DedupRecord, StoreOp};
use std::collections::{HashMap, VecDeque};
use warren_amqp::AMQPValue;

/// Keys remembered when `x-cache-size` is not given, so memory stays bounded.
const DEFAULT_CACHE_SIZE: u64 = 100_000;

#[derive(Debug, Default)]
pub struct DedupCache {
    /// Key → when it was recorded (ms since the epoch).
    seen: HashMap<Box<[u8]>, u64>,
    /// Keys in the order they were recorded, for eviction, and whether the store keeps them.
    order: VecDeque<Recorded>,
}

#[derive(Debug)]
struct Recorded {
    key: Box<[u8]>,
    at: u64,
    stored: bool,
}

/// The deduplication key of a message, if it has one.
pub fn key_of(message: &Message) -> Option<Box<[u8]>> {
    let props = warren_amqp::protocol::basic::parse_properties(&message.raw_properties[..])
        .ok()?
        .1;
    if let Some(value) = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-deduplication-header"))
    {
        return Some(match value {
            AMQPValue::LongString(s) => s.as_bytes().into(),
            AMQPValue::ShortString(s) => s.as_str().as_bytes().into(),
            other => format!("{other:?}").into_bytes().into(),
        });
    }
    props
        .message_id()
        .as_ref()
        .map(|id| id.as_str().as_bytes().into())
}

impl DedupCache {
    /// Records `key` at `now`; false when it was already recorded within the window. Keys the
    /// store kept that the window lets go of are added to `forgotten`. `stored`: the store
    /// keeps this key (a persistent message in a durable queue).
    pub fn admit(
        &mut self,
        key: &[u8],
        now: u64,
        window: Dedup,
        stored: bool,
        forgotten: &mut Vec<Box<[u8]>>,
    ) -> bool {
        self.evict(
            |at, _| window.cache_ttl.is_some_and(|ttl| at + ttl <= now),
            forgotten,
        );
        if self.seen.contains_key(key) {
            return false;
        }
        let max = window.cache_size.unwrap_or(DEFAULT_CACHE_SIZE) as usize;
        self.evict(|_, len| len >= max, forgotten);
        self.record(key.into(), now, stored);
        true
    }

    /// Remembers a key the store kept, recorded at `at` (oldest first).
    pub fn restore(&mut self, key: Box<[u8]>, at: u64) {
        self.record(key, at, true);
    }

    fn record(&mut self, key: Box<[u8]>, at: u64, stored: bool) {
        self.seen.insert(key.clone(), at);
        self.order.push_back(Recorded { key, at, stored });
    }

    /// Forgets the oldest keys while `stale(recorded_at, remembered)` holds.
    fn evict(&mut self, stale: impl Fn(u64, usize) -> bool, forgotten: &mut Vec<Box<[u8]>>) {
        while let Some(oldest) = self.order.front() {
            if !stale(oldest.at, self.seen.len()) {
                break;
            }
            // A key recorded again after expiring has a newer record further back, which
            // also replaced the stored one.
            if self.seen.get(&oldest.key) == Some(&oldest.at) {
                self.seen.remove(&oldest.key);
                if let Some(oldest) = self.order.pop_front() {
                    if oldest.stored {
                        forgotten.push(oldest.key);
                    }
                }
            } else {
                self.order.pop_front();
            }
        }
    }
}

impl Queue {
    /// Records the deduplication key of `message`, if it has one; false when the key was seen
    /// within the window. The store keeps the keys of persistent messages in durable queues,
    /// so a producer retrying after a restart is still recognised.
    pub(super) fn admit_key(
        &self,
        state: &mut QueueState,
        message: &Message,
        window: Dedup,
    ) -> bool {
        let Some(key) = key_of(message) else {
            return true;
        };
        let kept = self
            .storage
            .as_ref()
            .filter(|_| self.durable && message.store_id != 0);
        let (now, mut forgotten) = (now_ms(), Vec::new());
        if !state
            .dedup
            .admit(&key, now, window, kept.is_some(), &mut forgotten)
        {
            return false;
        }
        if let Some(s) = &self.storage {
            for key in forgotten {
                s.store.submit(StoreOp::RemoveDedupKey { queue: s.id, key });
            }
        }
        if let Some(s) = kept {
            s.store.submit(StoreOp::PutDedupKey(DedupRecord {
                queue: s.id,
                key,
                seen_at: now,
            }));
        }
        true
    }

    /// Remembers the keys the store kept for this queue, oldest first, after a restart: each
    /// keeps its age, so `x-cache-ttl` runs on from where it was.
    pub fn restore_dedup_keys(&self, records: Vec<DedupRecord>) {
        let mut state = self.state();
        for r in records {
            state.dedup.restore(r.key, r.seen_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn remembers_within_the_window() {
        let window = Dedup {
            cache_size: Some(2),
            cache_ttl: Some(100),
        };
        let mut c = DedupCache::default();
        let mut gone = Vec::new();
        assert!(c.admit(&k("a"), 0, window, true, &mut gone));
        assert!(!c.admit(&k("a"), 10, window, true, &mut gone), "seen");
        assert!(c.admit(&k("b"), 20, window, false, &mut gone));
        assert!(
            c.admit(&k("c"), 30, window, true, &mut gone),
            "a is forgotten to keep two keys"
        );
        assert_eq!(gone, [k("a")], "a stored key is forgotten in the store too");
        assert!(c.admit(&k("a"), 40, window, true, &mut gone));
        assert_eq!(gone.len(), 1, "b was never stored");
        assert!(!c.admit(&k("c"), 50, window, true, &mut gone));
        assert!(
            c.admit(&k("c"), 200, window, true, &mut gone),
            "expired after the ttl"
        );
    }

    #[test]
    fn restored_keys_keep_their_age() {
        let window = Dedup {
            cache_size: None,
            cache_ttl: Some(100),
        };
        let mut c = DedupCache::default();
        c.restore(k("old"), 0);
        c.restore(k("recent"), 90);
        let mut gone = Vec::new();
        assert!(!c.admit(&k("recent"), 120, window, true, &mut gone));
        assert!(
            c.admit(&k("old"), 120, window, true, &mut gone),
            "its ttl ran out"
        );
        assert_eq!(gone, [k("old")]);
    }
}
