//! How much memory queued messages hold, broker-wide. Past the paging watermark, queues write
//! transient messages beyond their in-memory window to disk instead of keeping them; below
//! it they keep them in memory, which is much cheaper than a disk round trip.

use super::message::QueueEntry;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an entry costs beyond its body: the entry, the message struct and its allocations.
const ENTRY_OVERHEAD: u64 = 256;

#[derive(Debug)]
pub struct MemoryGauge {
    used: AtomicU64,
    watermark: u64,
}

impl MemoryGauge {
    pub fn new(watermark: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            watermark,
        }
    }

    pub fn add(&self, entry: &QueueEntry) {
        self.used.fetch_add(footprint(entry), Ordering::Relaxed);
    }

    pub fn sub(&self, entry: &QueueEntry) {
        let n = footprint(entry);
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Whether queued messages hold more memory than the watermark allows.
    pub fn over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.watermark
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

fn footprint(entry: &QueueEntry) -> u64 {
    entry.message.size() as u64 + ENTRY_OVERHEAD
}
