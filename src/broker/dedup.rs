//! Deduplication keys and the bounded cache of recently seen ones, shared by deduplicating
//! queues (`queue/dedup.rs`) and exchanges (`exchange/dedup.rs`).
//!
//! Two references define the behaviour users migrate from. RabbitMQ's message-deduplication
//! plugin keys a message by its `x-deduplication-header` header only; a message without it is
//! never a duplicate. LavinMQ does the same with a configurable header name, and bounds what it
//! remembers by `x-cache-size` keys (the oldest forgotten first) and `x-cache-ttl` milliseconds,
//! which a message's own `x-cache-ttl` header overrides.

use std::collections::{HashMap, VecDeque};
use warren_amqp::{AMQPValue, FieldTable};

/// The header a message's deduplication key is read from, unless `x-deduplication-header`
/// names another.
pub const DEFAULT_HEADER: &str = "x-deduplication-header";
/// A message header that overrides the cache's TTL for that message's key.
pub const TTL_HEADER: &str = "x-cache-ttl";
/// Keys a cache remembers when `x-cache-size` is not given (LavinMQ's default).
pub const DEFAULT_CACHE_SIZE: u64 = 128;

/// The deduplication key in `headers[header]`, if the message has one. String values are keyed
/// by their bytes; other types by their typed value, so `1` and `"1"` differ.
pub fn key_of(headers: Option<&FieldTable>, header: &str) -> Option<Box<[u8]>> {
    let value = headers?.inner().get(header)?;
    Some(match value {
        AMQPValue::LongString(s) => s.as_bytes().into(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes().into(),
        AMQPValue::ByteArray(b) => b.as_slice().into(),
        other => format!("{other:?}").into_bytes().into(),
    })
}

/// A message's own `x-cache-ttl` header, when it is a positive integer.
pub fn ttl_of(headers: Option<&FieldTable>) -> Option<u64> {
    let value = headers?.inner().get(TTL_HEADER)?;
    let ms = crate::broker::field_types::integer(value)?;
    u64::try_from(ms).ok().filter(|ms| *ms > 0)
}

/// Keys seen recently, at most `size` of them, each for its TTL (none: until evicted).
#[derive(Debug, Default)]
pub struct WindowCache {
    /// Key → the record that holds it now.
    seen: HashMap<Box<[u8]>, Seen>,
    /// Records in the order keys were recorded: eviction takes the oldest first. A record
    /// whose key was recorded again since (after expiring) no longer matches `seen` and is
    /// skipped.
    order: VecDeque<Recorded>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    id: u64,
    /// When the key stops counting (ms since the epoch); `None`: never.
    until: Option<u64>,
}

#[derive(Debug)]
struct Recorded {
    key: Box<[u8]>,
    id: u64,
    until: Option<u64>,
    /// The store keeps this key: forgetting it must remove it there too.
    stored: bool,
}

impl WindowCache {
    /// Records `key` at `now` for `ttl` ms; false when it is still remembered (a duplicate).
    /// Stored keys the cache lets go of to make room are added to `forgotten`.
    pub fn admit(
        &mut self,
        key: &[u8],
        now: u64,
        ttl: Option<u64>,
        size: u64,
        stored: bool,
        forgotten: &mut Vec<Box<[u8]>>,
    ) -> bool {
        self.evict_expired(now, forgotten);
        if let Some(seen) = self.seen.get(key) {
            if seen.until.is_none_or(|until| now < until) {
                return false;
            }
        }
        let max = usize::try_from(size).unwrap_or(usize::MAX).max(1);
        while self.seen.len() >= max && self.evict_oldest(forgotten) {}
        self.record(key.into(), ttl.map(|t| now.saturating_add(t)), stored);
        true
    }

    /// Remembers a key the store kept, until `until` (oldest first).
    pub fn restore(&mut self, key: Box<[u8]>, until: Option<u64>) {
        self.record(key, until, true);
    }

    fn record(&mut self, key: Box<[u8]>, until: Option<u64>, stored: bool) {
        let id = self.next_id;
        self.next_id += 1;
        self.seen.insert(key.clone(), Seen { id, until });
        self.order.push_back(Recorded {
            key,
            id,
            until,
            stored,
        });
    }

    /// Forgets expired keys at the front. Keys with their own TTL may expire out of order;
    /// those are found expired when looked up, and leave when they reach the front.
    fn evict_expired(&mut self, now: u64, forgotten: &mut Vec<Box<[u8]>>) {
        while let Some(front) = self.order.front() {
            if front.until.is_some_and(|until| until <= now) || !self.is_current(front) {
                self.evict_oldest(forgotten);
            } else {
                break;
            }
        }
    }

    /// Drops the oldest record; false when there was none.
    fn evict_oldest(&mut self, forgotten: &mut Vec<Box<[u8]>>) -> bool {
        let Some(oldest) = self.order.pop_front() else {
            return false;
        };
        if self.is_current(&oldest) {
            self.seen.remove(&oldest.key);
            if oldest.stored {
                forgotten.push(oldest.key);
            }
        }
        true
    }

    fn is_current(&self, r: &Recorded) -> bool {
        self.seen.get(&r.key).is_some_and(|s| s.id == r.id)
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::LongString;

    fn k(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn remembers_at_most_size_keys_oldest_forgotten_first() {
        let mut c = WindowCache::default();
        let mut gone = Vec::new();
        assert!(c.admit(&k("a"), 0, Some(100), 2, true, &mut gone));
        assert!(!c.admit(&k("a"), 10, Some(100), 2, true, &mut gone), "seen");
        assert!(c.admit(&k("b"), 20, Some(100), 2, false, &mut gone));
        assert!(c.admit(&k("c"), 30, Some(100), 2, true, &mut gone));
        assert_eq!(gone, [k("a")], "a stored key is forgotten in the store too");
        assert!(c.admit(&k("a"), 40, Some(100), 2, true, &mut gone));
        assert_eq!(gone.len(), 1, "b was never stored");
        assert!(!c.admit(&k("c"), 50, Some(100), 2, true, &mut gone));
        assert!(
            c.admit(&k("c"), 200, Some(100), 2, true, &mut gone),
            "expired"
        );
    }

    #[test]
    fn a_key_with_its_own_ttl_expires_out_of_order() {
        let mut c = WindowCache::default();
        let mut gone = Vec::new();
        assert!(c.admit(&k("long"), 0, Some(1000), 10, false, &mut gone));
        assert!(c.admit(&k("short"), 0, Some(10), 10, false, &mut gone));
        assert!(!c.admit(&k("short"), 5, None, 10, false, &mut gone));
        assert!(
            c.admit(&k("short"), 20, None, 10, false, &mut gone),
            "its ttl ran out"
        );
        assert!(!c.admit(&k("long"), 20, None, 10, false, &mut gone));
        assert!(
            !c.admit(&k("short"), 5000, None, 10, false, &mut gone),
            "now kept for good"
        );
    }

    #[test]
    fn restored_keys_keep_their_expiry() {
        let mut c = WindowCache::default();
        c.restore(k("old"), Some(100));
        c.restore(k("recent"), Some(190));
        let mut gone = Vec::new();
        assert!(!c.admit(&k("recent"), 120, None, 10, true, &mut gone));
        assert!(
            c.admit(&k("old"), 120, None, 10, true, &mut gone),
            "expired"
        );
        assert_eq!(gone, [k("old")]);
    }

    #[test]
    fn keys_come_from_the_named_header_only() {
        let mut h = FieldTable::default();
        h.insert(
            "x-deduplication-header".into(),
            AMQPValue::LongString(LongString::from(b"k1".to_vec())),
        );
        h.insert("other".into(), AMQPValue::LongInt(7));
        h.insert(TTL_HEADER.into(), AMQPValue::LongInt(500));
        assert_eq!(key_of(Some(&h), DEFAULT_HEADER), Some(k("k1")));
        assert_eq!(key_of(Some(&h), "other"), Some(k("LongInt(7)")));
        assert_eq!(key_of(Some(&h), "missing"), None);
        assert_eq!(key_of(None, DEFAULT_HEADER), None);
        assert_eq!(ttl_of(Some(&h)), Some(500));
    }
}
