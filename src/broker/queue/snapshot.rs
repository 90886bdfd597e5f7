//! A queue's figures as the management API shows them, read under the queue's lock in one go
//! and then serialised without it.

use super::{Consumer, Queue};
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct QueueSnapshot {
    pub ready: u64,
    /// Of the ready messages, those only on disk.
    pub paged_out: u64,
    pub ready_bytes: u64,
    pub unacked: u64,
    pub consumers: Vec<Arc<Consumer>>,
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    /// When a consumer, basic.get or redeclaration last used the queue.
    pub last_used: Instant,
}

impl Queue {
    /// Messages ready and unacknowledged, read together.
    pub fn lengths(&self) -> (u64, u64) {
        let state = self.state();
        (state.len(), state.unacked as u64)
    }

    pub fn snapshot(&self) -> QueueSnapshot {
        let state = self.state();
        QueueSnapshot {
            ready: state.len(),
            // What counts of the tail: entries x-max-length already dropped do not.
            paged_out: state
                .lanes
                .iter()
                .map(|l| l.tail.count.saturating_sub(l.tail.doomed))
                .sum(),
            ready_bytes: state.ready_bytes,
            unacked: state.unacked as u64,
            consumers: state.consumers.clone(),
            policy: state.effective.policy.clone(),
            operator_policy: state.effective.operator_policy.clone(),
            last_used: state.last_used,
        }
    }
}
