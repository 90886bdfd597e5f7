//! Deduplication (`x-message-deduplication`): a queue remembers the keys of recent messages
//! (their `x-deduplication-header` header, or else their message-id) and drops a publish whose
//! key it has seen, so a producer that retries after a lost confirm does not create a
//! duplicate. The window is bounded by `x-cache-size` keys and `x-cache-ttl` milliseconds.

use super::args::Dedup;
use crate::broker::message::Message;
use std::collections::{HashMap, VecDeque};
use warren_amqp::AMQPValue;

/// Keys remembered when `x-cache-size` is not given, so memory stays bounded.
const DEFAULT_CACHE_SIZE: u64 = 100_000;

#[derive(Debug, Default)]
pub struct DedupCache {
    /// Key → when it was recorded (ms since the epoch).
    seen: HashMap<Box<[u8]>, u64>,
    /// Keys in the order they were recorded, for eviction.
    order: VecDeque<(Box<[u8]>, u64)>,
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
    /// Records `key` at `now`; false when it was already recorded within the window.
    pub fn admit(&mut self, key: Box<[u8]>, now: u64, window: Dedup) -> bool {
        self.evict(|at, _| window.cache_ttl.is_some_and(|ttl| at + ttl <= now));
        if self.seen.contains_key(&key) {
            return false;
        }
        let max = window.cache_size.unwrap_or(DEFAULT_CACHE_SIZE) as usize;
        self.evict(|_, len| len >= max);
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
        true
    }

    /// Forgets the oldest keys while `stale(recorded_at, remembered)` holds.
    fn evict(&mut self, stale: impl Fn(u64, usize) -> bool) {
        while let Some((key, at)) = self.order.front() {
            if !stale(*at, self.seen.len()) {
                break;
            }
            // A key recorded again after expiring has a newer entry further back.
            if self.seen.get(key) == Some(at) {
                self.seen.remove(key);
            }
            self.order.pop_front();
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
        assert!(c.admit(k("a"), 0, window));
        assert!(!c.admit(k("a"), 10, window), "seen");
        assert!(c.admit(k("b"), 20, window));
        assert!(
            c.admit(k("c"), 30, window),
            "a is forgotten to keep two keys"
        );
        assert!(c.admit(k("a"), 40, window));
        assert!(!c.admit(k("c"), 50, window));
        assert!(c.admit(k("c"), 200, window), "expired after the ttl");
    }
}
