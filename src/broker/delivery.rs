//! Putting one routed message into its queues: stored once when it is persistent and a durable
//! queue takes it, with the store's holder count set before any queue can let go of it.
//! Publishes, dead letters and delayed messages all enqueue through here.

use super::message::Message;
use super::queue::{PublishOutcome, Queue};
use crate::store::{StoreHandle, StoreOp};
use std::sync::Arc;

/// What enqueueing a message did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The message went to the store: a publisher confirm waits for the disk.
    pub stored: bool,
    /// A queue refused it (x-overflow reject-publish): a publisher confirm is a nack.
    pub rejected: bool,
}

/// Enqueues `message` in every queue of `queues` (which it drains).
pub fn enqueue(
    store: &StoreHandle,
    mut message: Message,
    queues: &mut Vec<Arc<Queue>>,
) -> Enqueued {
    // Durable classic queues keep persistent messages, quorum queues every message.
    let durable_queues = queues.iter().filter(|q| q.keeps(&message)).count();
    let stored = durable_queues > 0;
    if stored {
        message = message.with_store_id(store.next_message_id());
    }
    let message = Arc::new(message);
    if stored {
        // Every durable queue holds the stored copy before any can let go of it.
        store.refs.set(message.store_id, durable_queues as u32);
        store.submit(StoreOp::PutMessage {
            id: message.store_id,
            message: message.clone(),
        });
    }
    let mut rejected = false;
    for queue in queues.drain(..) {
        let outcome = queue.publish(message.clone());
        rejected |= outcome == PublishOutcome::Rejected;
        if outcome != PublishOutcome::Accepted && stored && queue.keeps(&message) {
            store.release_message(message.store_id);
        }
    }
    Enqueued { stored, rejected }
}
