//! How much memory queued messages hold, broker-wide. Past the paging watermark, queues write
//! transient messages beyond their in-memory window to disk instead of keeping them; below
//! it they keep them in memory, which is much cheaper than a disk round trip.

use super::message::QueueEntry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;

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

/// How far queued messages must shrink before freed memory is handed back to the system.
const TRIM_AFTER: u64 = 64 * 1024 * 1024;

/// Hands memory freed by drained queues back to the operating system. The C allocator keeps
/// freed small blocks for reuse, so after a large backlog drains the broker would otherwise
/// keep its peak footprint.
pub async fn trim_after_drains(gauge: Weak<MemoryGauge>) {
    let mut high = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    loop {
        ticker.tick().await;
        let Some(used) = gauge.upgrade().map(|g| g.used()) else {
            return;
        };
        high = high.max(used);
        if high - used >= TRIM_AFTER {
            high = used;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is safe to call from
    // any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
