//! Flow control: a queue whose consumers fall behind tells its publishers to slow down.
//!
//! A publisher that outruns the consumers of a queue only makes the queue longer, and every
//! message then waits longer to be delivered. When a queue with consumers holds more than
//! [`HIGH`] ready messages it is marked backlogged; connections that publish to it (and consume
//! nothing themselves, since their acks would not be read either) stop reading from their
//! socket until it is back under [`LOW`], or for at most [`PAUSE`] at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Ready messages in a queue with consumers above which its publishers are paused ...
const HIGH: u64 = 4096;
/// ... until it is down to this.
const LOW: u64 = 1024;
/// The longest a publisher is paused at a time.
pub const PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct Flow {
    backlogged: AtomicBool,
    drained: Notify,
}

impl Flow {
    /// Called with the queue's length whenever it may have changed much.
    pub fn update(&self, ready: u64, has_consumers: bool) {
        let backlogged = self.backlogged.load(Ordering::Relaxed);
        if !backlogged && has_consumers && ready > HIGH {
            self.backlogged.store(true, Ordering::Relaxed);
        } else if backlogged && (!has_consumers || ready < LOW) {
            self.backlogged.store(false, Ordering::Relaxed);
            self.drained.notify_waiters();
        }
    }

    pub fn backlogged(&self) -> bool {
        self.backlogged.load(Ordering::Relaxed)
    }

    /// Resolves once the queue is no longer backlogged, or after [`PAUSE`].
    pub async fn drained(&self) {
        let drained = self.drained.notified();
        if !self.backlogged() {
            return;
        }
        let _ = tokio::time::timeout(PAUSE, drained).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_backlogged_between_the_marks_only_with_consumers() {
        let flow = Flow::default();
        flow.update(HIGH + 1, false);
        assert!(
            !flow.backlogged(),
            "a queue without consumers is a plain backlog"
        );
        flow.update(HIGH + 1, true);
        assert!(flow.backlogged());
        flow.update(LOW + 1, true);
        assert!(flow.backlogged(), "stays until the low mark");
        flow.update(LOW - 1, true);
        assert!(!flow.backlogged());
        flow.update(HIGH + 1, true);
        flow.update(HIGH + 1, false);
        assert!(!flow.backlogged(), "its consumers left");
    }
}
