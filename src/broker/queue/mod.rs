//! A classic queue: ready messages in order (per priority lane), the consumers it delivers
//! to, round-robin.
//!
//! Publishers' and consumers' connection tasks call in directly; one short mutex per queue
//! (never a broker-wide lock) guards the state. Deliveries leave through consumers' mailboxes,
//! so no connection ever waits on another's socket.
//!
//! Each lane keeps at most `window` messages in memory and the rest on disk (see `lane`).
//! A durable queue also records its persistent messages' entries in the store. Store writes
//! are sent from under the queue's lock, so the store sees each entry's put before any
//! removal of it.

mod args;
mod consumer;
mod consumers;
mod dedup;
pub mod flow;
mod hooks;
mod lane;
mod paging;
mod policy;
mod quorum;
mod snapshot;

pub use args::{
    consumer_priority, consumer_timeout, DeadLetterStrategy, Effective, Overflow, PolicyOverrides,
    QueueArgs, QueueKind,
};
pub use consumer::{
    ChannelGate, ChannelView, ConnectionEvent, ConnectionId, Consumer, Credit, Mailbox,
    TRANSIT_WINDOW,
};
pub use hooks::{DeadLetter, DeadLetterSink, QueueHooks, Reason, TimerSink, Wake};
pub use policy::TimerOutcome;
pub use quorum::with_delivery_count;
pub use snapshot::QueueSnapshot;

use super::message::{now_ms, Message, QueueEntry};
use crate::broker::stats::{Stat, Stats};
use crate::error::{AmqpError, AmqpResult};
use crate::store::writer::EntryRange;
use crate::store::{EntryRecord, StoreHandle, StoreOp};
use lane::Lane;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;
use warren_amqp::{FieldTable, ShortString};

/// Entries read back from disk per request.
const LOAD_BATCH: usize = 1024;

/// A persistent message queued behind fewer than this many, in a queue with consumers, is
/// likely consumed within moments: its write is held back like a direct delivery's.
const SOON_WITHIN: u64 = 1024;

#[derive(Debug)]
pub struct Queue {
    pub name: ShortString,
    pub vhost: String,
    pub durable: bool,
    /// The connection that declared an exclusive queue; only it may use the queue.
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// The settings parsed from `arguments`.
    pub args: QueueArgs,
    /// Where the queue pages messages out and, if durable, records persistent ones.
    storage: Option<Storage>,
    /// Where dead letters and timer requests go.
    hooks: Option<QueueHooks>,
    /// Whether publishers should pause for the consumers to catch up.
    pub flow: flow::Flow,
    /// Message counters and their samples, for the management API.
    pub stats: Stats,
    state: Mutex<QueueState>,
}

/// What a publish did to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Accepted,
    /// Refused by `x-overflow` reject-publish(-dlx).
    Rejected,
    /// The queue was deleted meanwhile.
    Gone,
    /// A deduplicating queue had seen the message's key: dropped, and confirmed as accepted.
    Duplicate,
}

#[derive(Debug)]
struct Storage {
    store: Arc<StoreHandle>,
    /// The queue's id in the store.
    id: u64,
    /// Messages per lane kept in memory before the rest goes to disk.
    window: usize,
}

#[derive(Debug)]
struct QueueState {
    lanes: Vec<Lane>,
    consumers: Vec<Arc<Consumer>>,
    /// Index of the consumer that gets the next message.
    next_consumer: usize,
    next_seq: u64,
    /// Deliveries handed out and not yet acked, rejected or returned.
    unacked: usize,
    /// Body bytes of ready messages (memory and disk), for x-max-length-bytes.
    ready_bytes: u64,
    /// The last time a consumer, basic.get or redeclaration used the queue (x-expires).
    last_used: Instant,
    /// When the timer task will next wake the queue, if it will.
    timer_at: Option<Instant>,
    /// The deduplication keys the queue holds (deduplicating queues only).
    dedup: dedup::QueueDedup,
    /// TTLs, limits and dead-lettering as the queue's arguments and its policies make them.
    effective: Effective,
    /// A quorum queue with reject-publish went over its limit and refuses publishes.
    rejecting: bool,
    /// Entries dead-lettered at least once, held until their target takes them.
    dead_letter_held: u64,
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
        let state = QueueState {
            lanes: vec![Lane::default()],
            consumers: Vec::new(),
            next_consumer: 0,
            next_seq: 0,
            unacked: 0,
            ready_bytes: 0,
            last_used: Instant::now(),
            timer_at: None,
            dedup: dedup::QueueDedup::default(),
            effective: Effective::default(),
            rejecting: false,
            dead_letter_held: 0,
            deleted: false,
        };
        Self {
            name,
            vhost,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            args: QueueArgs::default(),
            storage: None,
            hooks: None,
            flow: flow::Flow::default(),
            stats: Stats::default(),
            state: Mutex::new(state),
        }
    }

    /// Applies parsed arguments (a priority queue gets one lane per priority level).
    pub fn with_args(mut self, args: QueueArgs) -> Self {
        let lanes = usize::from(args.max_priority) + 1;
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        state.lanes.resize_with(lanes, || {
            Lane::with_gauge(self.hooks.as_ref().map(|h| h.memory.clone()))
        });
        state.dedup = dedup::QueueDedup::for_args(args.deduplication.as_ref());
        state.effective = Effective::of(&args, &self.arguments, &PolicyOverrides::default());
        self.args = args;
        self
    }

    /// Starts the queue with what its policies set (see `apply_policy` for a live queue).
    pub fn with_policy(mut self, overrides: &PolicyOverrides) -> Self {
        let effective = Effective::of(&self.args, &self.arguments, overrides);
        self.state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .effective = effective;
        self
    }

    /// Applies what the policies that now match set: a shorter length limit drops the head
    /// at once (dead-lettered as `maxlen`), a new `expires` is armed. A new message TTL applies
    /// to messages published from now on, whose expiry is fixed when they arrive.
    pub fn apply_policy(self: &Arc<Self>, overrides: &PolicyOverrides) {
        let mut state = self.state();
        let effective = Effective::of(&self.args, &self.arguments, overrides);
        if state.deleted || state.effective == effective {
            return;
        }
        state.effective = effective;
        self.enforce_max_length(&mut state);
        self.schedule_unused(&mut state);
        self.flow.update(state.len(), !state.consumers.is_empty());
    }

    /// The TTLs, limits and dead-lettering in force, and the policies behind them.
    pub fn effective(&self) -> Effective {
        self.state().effective.clone()
    }

    /// How long its consumers may hold a delivery unacknowledged (ms), if its argument or
    /// policy says.
    pub fn consumer_timeout(&self) -> Option<u64> {
        self.state().effective.consumer_timeout
    }

    /// Connects the queue to the broker's dead-letter and timer services.
    pub fn with_hooks(mut self, hooks: QueueHooks) -> Self {
        for lane in &mut self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .lanes
        {
            lane.set_gauge(hooks.memory.clone());
        }
        self.hooks = Some(hooks);
        self
    }

    /// Whether queued messages hold so much memory that transient ones should go to disk.
    fn memory_pressure(&self) -> bool {
        self.hooks.as_ref().is_some_and(|h| h.memory.over())
    }

    /// Lets the queue page to `store` under `id` (and, if durable, record persistent messages).
    pub fn with_storage(mut self, store: Arc<StoreHandle>, id: u64, window: usize) -> Self {
        self.storage = Some(Storage {
            store,
            id,
            window: window.max(1),
        });
        self
    }

    /// The queue's id in the store.
    pub fn store_id(&self) -> Option<u64> {
        self.storage.as_ref().map(|s| s.id)
    }

    fn state(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned lock means a panic while holding it; the state is still consistent enough
        // to keep serving, which beats taking every user of the queue down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn check_access(&self, connection: ConnectionId) -> AmqpResult<()> {
        match self.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's 405 for an exclusive queue used from elsewhere (or redeclared with another
    /// exclusive flag).
    pub fn locked(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            self.name, self.vhost
        ))
    }

    /// Enqueues a routed message and hands it to a consumer if one has credit.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> PublishOutcome {
        let mut state = self.state();
        if state.deleted {
            return PublishOutcome::Gone;
        }
        let overflow = state.effective.overflow;
        if self.is_quorum() {
            if self.quorum_refuses(&mut state) {
                return PublishOutcome::Rejected;
            }
        } else if overflow != Overflow::DropHead && self.would_overflow(&state, message.size()) {
            if overflow == Overflow::RejectPublishDlx {
                self.dead_letter(&state, &message, Reason::MaxLen);
            }
            return PublishOutcome::Rejected;
        }
        if !self.admit_key(&mut state, &message) {
            // A duplicate: accepted (the publisher's confirm is an ack) and dropped.
            return PublishOutcome::Duplicate;
        }
        self.stats.counters.bump(Stat::Publish);
        let seq = state.next_seq;
        state.next_seq += 1;
        let mut entry = QueueEntry::new(seq, message);
        entry.lane = entry.message.priority.min(self.args.max_priority);
        entry.expires = self.expiry_of(&state, &entry.message);
        let consumer = match state.is_empty() {
            true => state.next_ready_consumer(self.args.single_active_consumer),
            false => None,
        };
        if self.keeps(&entry.message) && entry.message.store_id != 0 {
            entry.disk = entry.message.store_id;
            if let Some((s, key)) = self.key(&entry) {
                let record = EntryRecord {
                    message: entry.disk,
                    redelivered: false,
                    transient: false,
                    expires: entry.expires,
                    delivery_count: 0,
                };
                let op = StoreOp::PutEntry { key, record };
                // Handed to a consumer now, or soon (consumers are keeping the queue short):
                // likely acked before it would reach the disk.
                let soon = consumer.is_some()
                    || (!state.consumers.is_empty() && state.len() < SOON_WITHIN);
                match soon {
                    true => s.store.submit_delivered(op, true),
                    false => s.store.submit(op),
                }
            }
        }
        if let Some(consumer) = consumer {
            self.send(&mut state, consumer, entry);
            return PublishOutcome::Accepted;
        }
        if entry.expired(now_ms()) {
            // A TTL of 0 (or an expiration already past): only a waiting consumer gets it.
            self.expire(&mut state, entry);
            return PublishOutcome::Accepted;
        }
        state.ready_bytes += entry.message.size() as u64;
        let expires = entry.expires;
        self.append(&mut state, entry);
        if self.is_quorum() {
            self.quorum_after_publish(&mut state);
        }
        self.enforce_max_length(&mut state);
        if expires != 0 {
            self.schedule_ms(&mut state, expires);
        }
        self.flow.update(state.len(), !state.consumers.is_empty());
        PublishOutcome::Accepted
    }

    /// Puts a ready entry at the back of its lane: in memory, or on disk past the window (a
    /// message already on disk leaves memory for free; a transient one is written out only
    /// under memory pressure, or to keep the lane's order).
    fn append(&self, state: &mut QueueState, entry: QueueEntry) {
        let lane = &state.lanes[usize::from(entry.lane)];
        let page = self.storage.as_ref().is_some_and(|s| {
            lane.must_page()
                || (lane.window_full(s.window) && (entry.disk != 0 || self.memory_pressure()))
        });
        if page {
            self.page_out(state, entry);
        } else {
            state.lanes[usize::from(entry.lane)].push_back(entry);
        }
    }

    /// basic.get: the head message and how many remain. Waits for a read from disk when only
    /// the disk holds messages.
    pub fn get(self: &Arc<Self>, ack: bool) -> Option<(QueueEntry, u32)> {
        for _ in 0..2 {
            {
                let mut state = self.state();
                state.last_used = Instant::now();
                self.schedule_unused(&mut state);
                if let Some(entry) = self.pop_live(&mut state) {
                    self.count_delivery(&entry, Stat::Get, Stat::GetNoAck, !ack);
                    if ack {
                        state.unacked += 1;
                        self.mark_delivered(&entry);
                    } else {
                        self.forget(&mut state, &entry, false);
                    }
                    self.request_loads(&mut state);
                    return Some((entry, state.len() as u32));
                }
                if state.is_empty() {
                    return None;
                }
                self.request_loads(&mut state);
            }
            if let Some(s) = &self.storage {
                // The read runs on the store thread; once this returns it has been delivered.
                s.store.ping_blocking();
            }
        }
        None
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
            if redelivered && self.is_quorum() {
                self.quorum_return(&mut state, entry);
                continue;
            }
            entry.redelivered |= redelivered;
            state.ready_bytes += entry.message.size() as u64;
            state.lanes[usize::from(entry.lane)].insert_sorted(entry);
        }
        if counted {
            state.unacked = state.unacked.saturating_sub(returned);
        }
        self.dispatch_locked(&mut state);
    }

    /// Acked (or, `rejected`, rejected without requeue and dead-lettered) deliveries leave
    /// the queue for good.
    pub fn settle<'a>(&self, entries: impl IntoIterator<Item = &'a QueueEntry>, rejected: bool) {
        let mut state = self.state();
        let mut count = 0;
        for entry in entries {
            count += 1;
            let gone = state.deleted;
            if rejected && !gone {
                self.dead_letter_entry(&mut state, entry.clone(), Reason::Rejected);
                continue;
            }
            self.forget(&mut state, entry, gone);
        }
        state.unacked = state.unacked.saturating_sub(count);
        if !rejected {
            self.stats.counters.add(Stat::Ack, count as u64);
        }
    }

    /// Counts a message handed out: with or without acknowledgement, and redelivered.
    fn count_delivery(&self, entry: &QueueEntry, acked: Stat, unacked: Stat, no_ack: bool) {
        let counters = &self.stats.counters;
        counters.bump(if no_ack { unacked } else { acked });
        if entry.redelivered {
            counters.bump(Stat::Redeliver);
        }
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut state = self.state();
        self.dispatch_locked(&mut state);
    }

    fn dispatch_locked(self: &Arc<Self>, state: &mut QueueState) {
        while let Some(entry) = self.pop_live(state) {
            let Some(consumer) = state.next_ready_consumer(self.args.single_active_consumer) else {
                // Nobody can take it now: it goes back to the front of its lane.
                state.ready_bytes += entry.message.size() as u64;
                state.lanes[usize::from(entry.lane)].push_front(entry);
                break;
            };
            self.send(state, consumer, entry);
        }
        self.flow.update(state.len(), !state.consumers.is_empty());
        self.request_loads(state);
    }

    fn send(self: &Arc<Self>, state: &mut QueueState, consumer: Arc<Consumer>, entry: QueueEntry) {
        if consumer.mailbox.is_closed() {
            // The connection is gone without removing its consumer (it was aborted).
            state.consumers.retain(|c| !Arc::ptr_eq(c, &consumer));
            state.lanes[usize::from(entry.lane)].insert_sorted(entry);
            return;
        }
        self.count_delivery(&entry, Stat::Deliver, Stat::DeliverNoAck, consumer.no_ack);
        if consumer.no_ack {
            // Delivered without acknowledgement: gone from the queue once sent.
            self.forget(state, &entry, false);
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
        let n = state.len() as u32;
        state.ready_bytes = 0;
        for i in 0..state.lanes.len() {
            for entry in state.lanes[i].take_head() {
                self.forget(&mut state, &entry, false);
            }
            if let (Some(from), Some(s)) = (state.lanes[i].discard_tail(), &self.storage) {
                // Entries published after the purge come after `next_seq`: they stay.
                let range = EntryRange::lane(s.id, i as u8, from, state.next_seq);
                s.store.drop_entries(range);
            }
        }
        self.release_all_keys(&mut state);
        self.flow.update(0, false);
        n
    }

    /// Marks the queue deleted, drops its messages (and its records in the store) and returns
    /// its message count and the consumers to notify with basic.cancel.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut state = self.state();
        state.deleted = true;
        self.flow.update(0, false);
        let n = state.len() as u32;
        if let Some(s) = &self.storage {
            if self.durable {
                s.store.submit(StoreOp::DeleteQueue {
                    vhost: self.vhost.clone(),
                    name: self.name.to_string(),
                });
            }
            // Every record of the queue goes, those of unacked deliveries included.
            s.store.drop_entries(EntryRange::queue(s.id));
        }
        for lane in &mut state.lanes {
            lane.take_head();
            lane.discard_tail();
        }
        (n, std::mem::take(&mut state.consumers))
    }

    pub fn message_count(&self) -> u32 {
        self.state().len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        let n = self.state().consumers.len() as u32;
        // A quorum queue with a single active consumer counts only the active one.
        match self.is_quorum() && self.args.single_active_consumer {
            true => n.min(1),
            false => n,
        }
    }

    pub fn unacked_count(&self) -> usize {
        self.state().unacked
    }

    pub fn is_deleted(&self) -> bool {
        self.state().deleted
    }
}

impl QueueState {
    /// Messages in memory and on disk.
    fn len(&self) -> u64 {
        self.lanes.iter().map(Lane::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.len() == 0)
    }

    /// Drops the message at the head of the queue (x-max-length): the front of the
    /// highest-priority lane that still counts any (`None` if that is on disk and not
    /// `from_disk`).
    fn drop_head(&mut self, from_disk: bool) -> Option<lane::Dropped> {
        let lane = self.lanes.iter_mut().rev().find(|l| l.len() > 0)?;
        lane.drop_front(from_disk)
    }

    /// The next message in memory: from the highest-priority lane that has one.
    /// A higher lane whose messages are all still on disk blocks the lower ones until they
    /// are read back, so priority order holds beyond the in-memory window.
    fn pop(&mut self) -> Option<QueueEntry> {
        for lane in self.lanes.iter_mut().rev() {
            if let Some(entry) = lane.pop_front() {
                return Some(entry);
            }
            if lane.tail.count > 0 {
                return None;
            }
        }
        None
    }
}
