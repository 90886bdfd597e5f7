//! Reference counts of stored messages held by more than one durable queue.
//!
//! Most stored messages sit in exactly one queue, so only counts above one are kept: a message
//! without an entry here has one holder. The counts live beside the store rather than in the
//! message, because a paged-out message has no in-memory copy to count on.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Refs {
    counts: Mutex<HashMap<u64, u32>>,
}

impl Refs {
    /// Records that `holders` queues hold message `id` (called once, when it is stored).
    pub fn set(&self, id: u64, holders: u32) {
        if holders > 1 {
            if let Ok(mut counts) = self.counts.lock() {
                counts.insert(id, holders);
            }
        }
    }

    /// One holder let go; true when it was the last, so the stored message can be removed.
    pub fn release(&self, id: u64) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        match counts.get_mut(&id) {
            None => true,
            Some(n) if *n <= 2 => {
                counts.remove(&id);
                false
            }
            Some(n) => {
                *n -= 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_holder_releases() {
        let refs = Refs::default();
        assert!(refs.release(1), "one holder, not tracked");
        refs.set(2, 3);
        assert!(!refs.release(2));
        assert!(!refs.release(2));
        assert!(refs.release(2));
    }
}
