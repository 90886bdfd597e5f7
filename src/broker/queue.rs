//! A classic queue: ready messages in order, the consumers it delivers to, round-robin.
//!
//! Publishers' and consumers' connection tasks call in directly; one short mutex per queue
//! (never a broker-wide lock) guards the state. Deliveries leave through consumers' mailboxes,
//! so no connection ever waits on another's socket.
//!
//! A durable queue also records its persistent messages' entries in the store, from under the
//! same lock, so the store sees each entry's put before any removal of it.

use super::consumer::{ConnectionEvent, ConnectionId, Consumer};
use super::message::{Message, QueueEntry};
use crate::error::{AmqpError, AmqpResult};
use crate::store::{StoreHandle, StoreOp};
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
    /// Set for durable queues: where their persistent messages' entries are recorded.
    storage: Option<QueueStorage>,
    state: Mutex<QueueState>,
}

#[derive(Debug)]
struct QueueStorage {
    store: Arc<StoreHandle>,
    /// The queue's id in the store.
    id: u64,
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
            storage: None,
            state: Mutex::default(),
        }
    }

    /// Makes the queue record its persistent messages under `id` in `store`.
    pub fn with_storage(mut self, store: Arc<StoreHandle>, id: u64) -> Self {
        self.storage = Some(QueueStorage { store, id });
        self
    }

    /// The queue's id in the store, for durable queues.
    pub fn store_id(&self) -> Option<u64> {
        self.storage.as_ref().map(|s| s.id)
    }

    /// The store op for an entry of this queue, if it is on disk.
    fn stored(&self, entry: &QueueEntry) -> Option<&QueueStorage> {
        self.storage.as_ref().filter(|_| entry.message.is_stored())
    }

    /// Records that a delivered entry may come back redelivered after a crash.
    fn mark_delivered(&self, entry: &QueueEntry) {
        if let (Some(s), false) = (self.stored(entry), entry.redelivered) {
            s.store.submit(StoreOp::PutEntry {
                queue: s.id,
                seq: entry.seq,
                message: entry.message.store_id,
                redelivered: true,
            });
        }
    }

    /// An entry leaves this queue for good: its record goes, and the message's stored copy
    /// with it when no other durable queue holds it. `queue_gone`: the whole queue's records
    /// were removed already.
    fn forget(&self, entry: &QueueEntry, queue_gone: bool) {
        let Some(s) = self.stored(entry) else { return };
        if !queue_gone {
            s.store.submit(StoreOp::RemoveEntry {
                queue: s.id,
                seq: entry.seq,
            });
        }
        if entry.message.release_stored() {
            s.store.submit(StoreOp::RemoveMessage {
                id: entry.message.store_id,
            });
        }
    }

    /// Refills a durable queue from the store at start.
    pub fn recover(&self, entries: Vec<QueueEntry>) {
        let mut state = self.state();
        state.next_seq = entries.last().map_or(0, |e| e.seq + 1);
        state.ready = entries.into();
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
        if let Some(s) = self.stored(&entry) {
            s.store.submit(StoreOp::PutEntry {
                queue: s.id,
                seq,
                message: entry.message.store_id,
                redelivered: false,
            });
        }
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
            self.mark_delivered(&entry);
        } else {
            self.forget(&entry, false);
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
                self.forget(&entry, true);
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
    pub fn settle<'a>(&self, entries: impl IntoIterator<Item = &'a QueueEntry>) {
        let mut state = self.state();
        let mut count = 0;
        for entry in entries {
            count += 1;
            self.forget(entry, state.deleted);
        }
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
        if consumer.mailbox.is_closed() {
            // The connection is gone without removing its consumer (it was aborted).
            state.consumers.retain(|c| !Arc::ptr_eq(c, &consumer));
            let at = state.ready.partition_point(|e| e.seq < entry.seq);
            state.ready.insert(at, entry);
            return;
        }
        if consumer.no_ack {
            // Delivered without acknowledgement: gone from the queue once sent.
            self.forget(&entry, false);
        } else {
            state.unacked += 1;
            self.mark_delivered(&entry);
        }
        let event = ConnectionEvent::Deliver {
            queue: self.clone(),
            consumer: consumer.clone(),
            entry,
        };
        // Cannot fail: a connection removes its consumers before closing its mailbox.
        let _ = consumer.mailbox.send(event);
    }

    pub fn purge(&self) -> u32 {
        let mut state = self.state();
        let n = state.ready.len() as u32;
        for entry in std::mem::take(&mut state.ready) {
            self.forget(&entry, false);
        }
        n
    }

    /// Marks the queue deleted, drops its messages (and its records in the store) and returns
    /// its message count and the consumers to notify with basic.cancel.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut state = self.state();
        state.deleted = true;
        if let Some(s) = &self.storage {
            s.store.submit(StoreOp::DeleteQueue {
                vhost: self.vhost.clone(),
                name: self.name.to_string(),
                id: s.id,
            });
        }
        let n = state.ready.len() as u32;
        for entry in std::mem::take(&mut state.ready) {
            self.forget(&entry, true);
        }
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
