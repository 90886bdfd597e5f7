//! A classic queue: ready messages in order, the consumers it delivers to, round-robin.
//!
//! Publishers' and consumers' connection tasks call in directly; one short mutex per queue
//! (never a broker-wide lock) guards the state. Deliveries leave through consumers' mailboxes,
//! so no connection ever waits on another's socket.

use super::consumer::{ConnectionEvent, ConnectionId, Consumer};
use super::message::{Message, QueueEntry};
use crate::error::{AmqpError, AmqpResult};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use warren_amqp::{FieldTable, ShortString};

#[derive(Debug)]
pub struct Queue {
    pub name: ShortString,
    pub vhost: String,
    pub durable: bool,
    /// The connection that declared an exclusive queue; only it may use the queue.
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<QueueEntry>,
    consumers: Vec<Arc<Consumer>>,
    /// Index of the consumer that gets the next message.
    next_consumer: usize,
    next_seq: u64,
    /// Deliveries handed out and not yet acked, rejected or returned.
    unacked: usize,
    /// Auto-delete queues go away when their last consumer leaves, but only once they had one.
    had_consumer: bool,
    deleted: bool,
}

/// What removing a consumer left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsumerRemoval {
    NotFound,
    Removed,
    /// It was the last consumer of an auto-delete queue: the caller deletes the queue.
    RemovedLastOfAutoDelete,
}

impl Queue {
    pub fn new(
        name: ShortString,
        vhost: String,
        durable: bool,
        exclusive_owner: Option<ConnectionId>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Self {
        Self {
            name,
            vhost,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned lock means a panic while holding it; the state is still consistent enough
        // to keep serving, which beats taking every user of the queue down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive queues are usable only from the connection that declared them.
    pub fn check_access(&self, connection: ConnectionId) -> AmqpResult<()> {
        match self.exclusive_owner {
            Some(owner) if owner != connection => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
                 originally declared on another connection or the exclusive property value does \
                 not match that of the original declaration.",
                self.name, self.vhost
            ))),
            _ => Ok(()),
        }
    }

    /// Enqueues a routed message and hands it to a consumer if one has credit. Returns false
    /// if the queue was deleted meanwhile.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> bool {
        let mut state = self.state();
        if state.deleted {
            return false;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let entry = QueueEntry {
            seq,
            message,
            redelivered: false,
        };
        if state.ready.is_empty() {
            if let Some(consumer) = state.next_ready_consumer() {
                self.send(&mut state, consumer, entry);
                return true;
            }
        }
        state.ready.push_back(entry);
        true
    }

    /// Adds a consumer and starts delivering to it.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> AmqpResult<()> {
        let mut state = self.state();
        if state.deleted {
            return Err(AmqpError::not_found(format!(
                "no queue '{}' in vhost '{}'",
                self.name, self.vhost
            )));
        }
        let exclusive_taken = state.consumers.iter().any(|c| c.exclusive);
        if exclusive_taken || (consumer.exclusive && !state.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        state.consumers.push(consumer);
        state.had_consumer = true;
        self.dispatch_locked(&mut state);
        Ok(())
    }

    pub fn remove_consumer(
        &self,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) -> ConsumerRemoval {
        let mut state = self.state();
        let before = state.consumers.len();
        state.consumers.retain(|c| {
            !(c.connection == connection && c.channel == channel && c.tag.as_str() == tag)
        });
        if state.consumers.len() == before {
            return ConsumerRemoval::NotFound;
        }
        if state.next_consumer >= state.consumers.len() {
            state.next_consumer = 0;
        }
        if self.auto_delete && state.consumers.is_empty() && !state.deleted {
            ConsumerRemoval::RemovedLastOfAutoDelete
        } else {
            ConsumerRemoval::Removed
        }
    }

    /// basic.get: the head message and how many remain.
    pub fn get(&self, ack: bool) -> Option<(QueueEntry, u32)> {
        let mut state = self.state();
        let entry = state.ready.pop_front()?;
        if ack {
            state.unacked += 1;
        }
        Some((entry, state.ready.len() as u32))
    }

    /// Puts messages back in their original positions, marked redelivered, and redelivers.
    pub fn requeue(self: &Arc<Self>, entries: impl IntoIterator<Item = QueueEntry>) {
        self.put_back(entries, true, true);
    }

    /// Returns deliveries that never reached the client (its consumer or channel went away
    /// while they were in the mailbox): they keep their redelivered flag.
    /// `counted` says whether the delivery counted as unacked (consumers with acks).
    pub fn restore(self: &Arc<Self>, entry: QueueEntry, counted: bool) {
        self.put_back([entry], false, counted);
    }

    fn put_back(
        self: &Arc<Self>,
        entries: impl IntoIterator<Item = QueueEntry>,
        redelivered: bool,
        counted: bool,
    ) {
        let mut state = self.state();
        let mut returned = 0;
        for mut entry in entries {
            returned += 1;
            if state.deleted {
                continue;
            }
            entry.redelivered |= redelivered;
            let at = state.ready.partition_point(|e| e.seq < entry.seq);
            state.ready.insert(at, entry);
        }
        if counted {
            state.unacked = state.unacked.saturating_sub(returned);
        }
        self.dispatch_locked(&mut state);
    }

    /// Acked or rejected-without-requeue deliveries leave the queue for good.
    pub fn settle(&self, count: usize) {
        let mut state = self.state();
        state.unacked = state.unacked.saturating_sub(count);
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut state = self.state();
        self.dispatch_locked(&mut state);
    }

    fn dispatch_locked(self: &Arc<Self>, state: &mut QueueState) {
        while !state.ready.is_empty() {
            let Some(consumer) = state.next_ready_consumer() else {
                return;
            };
            if let Some(entry) = state.ready.pop_front() {
                self.send(state, consumer, entry);
            }
        }
    }

    fn send(self: &Arc<Self>, state: &mut QueueState, consumer: Arc<Consumer>, entry: QueueEntry) {
        if !consumer.no_ack {
            state.unacked += 1;
        }
        let event = ConnectionEvent::Deliver {
            queue: self.clone(),
            consumer: consumer.clone(),
            entry,
        };
        if let Err(undelivered) = consumer.mailbox.send(event) {
            // The connection is gone; its cleanup will remove the consumer. Keep the message.
            if let ConnectionEvent::Deliver { entry, .. } = undelivered.0 {
                if !consumer.no_ack {
                    state.unacked -= 1;
                }
                let at = state.ready.partition_point(|e| e.seq < entry.seq);
                state.ready.insert(at, entry);
            }
            state.consumers.retain(|c| !Arc::ptr_eq(c, &consumer));
        }
    }

    pub fn purge(&self) -> u32 {
        let mut state = self.state();
        let n = state.ready.len() as u32;
        state.ready.clear();
        n
    }

    /// Marks the queue deleted, drops its messages and returns its message count and the
    /// consumers to notify with basic.cancel.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut state = self.state();
        state.deleted = true;
        let n = state.ready.len() as u32;
        state.ready.clear();
        (n, std::mem::take(&mut state.consumers))
    }

    pub fn message_count(&self) -> u32 {
        self.state().ready.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.state().consumers.len() as u32
    }

    pub fn unacked_count(&self) -> usize {
        self.state().unacked
    }

    pub fn is_deleted(&self) -> bool {
        self.state().deleted
    }
}

impl QueueState {
    /// The next consumer in round-robin order that has credit for one more delivery.
    fn next_ready_consumer(&mut self) -> Option<Arc<Consumer>> {
        let n = self.consumers.len();
        for i in 0..n {
            let idx = (self.next_consumer + i) % n;
            if self.consumers[idx].try_reserve() {
                self.next_consumer = (idx + 1) % n;
                return Some(self.consumers[idx].clone());
            }
        }
        None
    }
}
