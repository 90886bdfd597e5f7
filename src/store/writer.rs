//! The store's own thread, and the handle the broker talks to it through.
//!
//! Requests are sent in order over one channel. The thread applies everything that is waiting
//! in one go and, if anyone waits for durability, syncs once for all of it: confirms scale with
//! the number of concurrent publishers instead of being bounded by one fsync per message.
//! Reads for paging go through the same channel, so they see every write sent before them.

use super::held::Held;
use super::refs::Refs;
use super::{EntryRecord, LoadedEntry, Store, StoreError, StoreOp};
use crate::broker::consumer::{ConnectionEvent, Mailbox};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::error;

/// Most operations applied between two syncs, so a flood cannot delay confirms indefinitely.
const MAX_BATCH: usize = 16 * 1024;
/// Shortest round when nothing waits for the disk, so requests are taken in batches.
const TICK: Duration = Duration::from_micros(500);
/// Writes waiting for the thread above which publishers are paused ...
const CONGESTED: usize = 64 * 1024;
/// ... until the backlog is down to this.
const RELIEVED: usize = 16 * 1024;

/// Who waits for the changes sent before a barrier to be durable.
#[derive(Debug)]
pub enum Durable {
    /// A publisher confirm: the connection gets `ConnectionEvent::Persisted`.
    Confirm {
        mailbox: Mailbox,
        channel: u16,
        /// Which confirm mode of the channel (a channel id can be reused).
        epoch: u64,
        seq: u64,
    },
    /// Any other event for a connection (a transaction's commit-ok).
    Event(Mailbox, ConnectionEvent),
    /// Anyone blocking on a plain channel (shutdown, tests).
    Notify(mpsc::Sender<bool>),
}

impl Durable {
    fn complete(self, ok: bool) {
        match self {
            Durable::Confirm {
                mailbox,
                channel,
                epoch,
                seq,
            } => {
                let _ = mailbox.send(ConnectionEvent::Persisted {
                    channel,
                    epoch,
                    upto: seq,
                    ok,
                });
            }
            Durable::Event(mailbox, event) => {
                let _ = mailbox.send(event);
            }
            Durable::Notify(tx) => {
                let _ = tx.send(ok);
            }
        }
    }
}

/// Receives a lane's entries read back from disk (on the store thread).
pub type LoadCallback = Box<dyn FnOnce(Result<Vec<LoadedEntry>, StoreError>) + Send>;

enum Request {
    Op(StoreOp),
    /// A write likely to be undone soon (see [`Held`]).
    Hold {
        op: StoreOp,
        fresh: bool,
    },
    /// Removes a queue's entries from `from` on and releases their messages.
    DropEntries {
        queue: u64,
        lane: Option<u8>,
        from: u64,
    },
    Load {
        queue: u64,
        lane: u8,
        from: u64,
        max: usize,
        deliver: LoadCallback,
    },
    Barrier(Durable),
    /// Answered once everything sent before it is applied (no sync).
    Ping(mpsc::Sender<()>),
    Stop,
}

/// The broker's side of the store.
pub struct StoreHandle {
    tx: mpsc::Sender<Request>,
    next_message_id: AtomicU64,
    next_queue_id: AtomicU64,
    /// Holders of stored messages held by more than one durable queue.
    pub refs: Arc<Refs>,
    /// Writes sent and not yet applied: publishers pause while it is too high.
    pending: Arc<AtomicUsize>,
    relieved: Arc<Notify>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoreHandle(pending {})",
            self.pending.load(Ordering::Relaxed)
        )
    }
}

impl StoreHandle {
    /// Starts the store thread. Ids continue after the largest ones recovered.
    pub fn start(
        store: Arc<dyn Store>,
        next_message_id: u64,
        next_queue_id: u64,
        refs: Refs,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let refs = Arc::new(refs);
        let pending = Arc::new(AtomicUsize::new(0));
        let relieved = Arc::new(Notify::new());
        let worker = Worker {
            store,
            refs: refs.clone(),
            pending: pending.clone(),
            relieved: relieved.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| error!("cannot start the store thread: {e}"))
            .ok();
        Self {
            tx,
            next_message_id: AtomicU64::new(next_message_id.max(1)),
            next_queue_id: AtomicU64::new(next_queue_id.max(1)),
            refs,
            pending,
            relieved,
            thread: Mutex::new(thread),
        }
    }

    fn send(&self, request: Request) {
        if self.tx.send(request).is_err() {
            error!("the store thread is gone; a change was not recorded");
        }
    }

    pub fn submit(&self, op: StoreOp) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.send(Request::Op(op));
    }

    /// Submits an entry write for a message just handed to a consumer: a removal arriving
    /// soon cancels it before it reaches the disk. `fresh`: nothing of the entry is stored yet.
    pub fn submit_delivered(&self, op: StoreOp, fresh: bool) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.send(Request::Hold { op, fresh });
    }

    /// Removes a queue's entries (one lane or all) from `from` on, releasing their messages.
    pub fn drop_entries(&self, queue: u64, lane: Option<u8>, from: u64) {
        self.send(Request::DropEntries { queue, lane, from });
    }

    /// Reads up to `max` entries of a lane from `from` on; `deliver` runs on the store thread.
    pub fn load(&self, queue: u64, lane: u8, from: u64, max: usize, deliver: LoadCallback) {
        self.send(Request::Load {
            queue,
            lane,
            from,
            max,
            deliver,
        });
    }

    /// Completes `durable` once everything submitted before it is on disk.
    pub fn barrier(&self, durable: Durable) {
        self.send(Request::Barrier(durable));
    }

    /// Blocks until everything submitted so far is durable.
    pub fn sync_blocking(&self) -> bool {
        let (tx, rx) = mpsc::channel();
        self.barrier(Durable::Notify(tx));
        rx.recv().unwrap_or(false)
    }

    /// Blocks until everything sent so far (loads included) has been carried out.
    pub fn ping_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Ping(tx));
        let _ = rx.recv();
    }

    /// True while so many writes wait that publishers should pause.
    pub fn congested(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > CONGESTED
    }

    /// Resolves once the write backlog is back down.
    pub async fn relieved(&self) {
        while self.congested() {
            let notified = self.relieved.notified();
            if !self.congested() {
                break;
            }
            notified.await;
        }
    }

    pub fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// One holder of stored message `id` let go: the message is removed with the last.
    pub fn release_message(&self, id: u64) {
        if self.refs.release(id) {
            self.submit(StoreOp::RemoveMessage { id });
        }
    }

    /// Syncs what is pending and stops the store thread.
    pub fn close(&self) {
        self.sync_blocking();
        self.send(Request::Stop);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

struct Worker {
    store: Arc<dyn Store>,
    refs: Arc<Refs>,
    pending: Arc<AtomicUsize>,
    relieved: Arc<Notify>,
}

/// What the store thread carries from one round to the next.
#[derive(Default)]
struct Round {
    /// Writes to apply now, in order.
    ops: Vec<StoreOp>,
    held: Held,
    /// Barriers in arrival order, with the number of the first request after each.
    barriers: VecDeque<(u64, Durable)>,
    pings: Vec<mpsc::Sender<()>>,
    /// Requests received so far: numbers held writes and barriers.
    received: u64,
    /// Something that adds to what is stored was applied since the last sync.
    unsynced_puts: bool,
    /// Anything was applied since the last sync.
    unsynced: bool,
    /// A write failed since barriers were last completed: they report the failure.
    failed: bool,
    /// A request that needs every held write applied first.
    flush: bool,
    stop: bool,
}

impl Worker {
    fn run(self, rx: mpsc::Receiver<Request>) {
        let mut round = Round::default();
        loop {
            let started = Instant::now();
            let first = match round.held.next_due() {
                Some(due) => match rx.recv_timeout(due.saturating_duration_since(started)) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(request) => Some(request),
                    Err(_) => break,
                },
            };
            let mut next = first;
            let (mut received, mut writes) = (0, 0);
            let mut result = Ok(());
            while let Some(request) = next.take() {
                received += 1;
                writes += usize::from(matches!(request, Request::Op(_) | Request::Hold { .. }));
                result = result.and(self.take(&mut round, request));
                if received < MAX_BATCH && !round.stop {
                    next = rx.try_recv().ok();
                }
            }
            let now = Instant::now();
            let flush = std::mem::take(&mut round.flush) || round.stop;
            round
                .held
                .release_due((!flush).then_some(now), &mut round.ops);
            result = result.and(self.apply(&mut round));
            self.settle(writes);
            let synced = self.complete_barriers(&mut round, result);
            for p in round.pings.drain(..) {
                let _ = p.send(());
            }
            if round.stop {
                break;
            }
            if (!synced && !round.barriers.is_empty()) || !round.held.is_empty() {
                // Nothing made this round wait for the disk: let requests gather for a moment
                // instead of waking up for each one.
                std::thread::sleep(TICK.saturating_sub(started.elapsed()));
            }
        }
        round.held.release_due(None, &mut round.ops);
        let result = self.apply(&mut round).and_then(|()| self.store.sync());
        if let Err(e) = result {
            error!("final store sync failed: {e}");
        }
    }

    /// Takes one request into the round.
    fn take(&self, round: &mut Round, request: Request) -> Result<(), StoreError> {
        let order = round.received;
        round.received += 1;
        let now = Instant::now();
        match request {
            Request::Op(op) => round.held.accept(order, op, now, &mut round.ops),
            Request::Hold { op, fresh } => round.held.hold(order, op, fresh, now, &mut round.ops),
            Request::DropEntries { queue, lane, from } => {
                round.held.release_due(None, &mut round.ops);
                self.apply(round)?;
                self.drop_entries(queue, lane, from)?;
            }
            Request::Load {
                queue,
                lane,
                from,
                max,
                deliver,
            } => {
                round.held.release_due(None, &mut round.ops);
                self.apply(round)?;
                deliver(self.store.read_entries(queue, lane, from, max));
            }
            Request::Barrier(durable) => {
                if matches!(durable, Durable::Notify(_)) {
                    round.flush = true;
                }
                round.barriers.push_back((order, durable));
            }
            Request::Ping(tx) => {
                round.flush = true;
                round.pings.push(tx);
            }
            Request::Stop => round.stop = true,
        }
        Ok(())
    }

    fn apply(&self, round: &mut Round) -> Result<(), StoreError> {
        if round.ops.is_empty() {
            return Ok(());
        }
        round.unsynced = true;
        round.unsynced_puts |= round.ops.iter().any(|op| {
            !matches!(
                op,
                StoreOp::RemoveEntry { .. } | StoreOp::RemoveMessage { .. }
            )
        });
        let result = self.store.apply(&round.ops);
        round.ops.clear();
        result
    }

    /// `writes` submitted writes have been taken in: publishers paused on the backlog may go on.
    fn settle(&self, writes: usize) {
        let before = self.pending.fetch_sub(writes, Ordering::Relaxed);
        if before > RELIEVED && before.saturating_sub(writes) <= RELIEVED {
            self.relieved.notify_waiters();
        }
    }

    /// Completes the barriers nothing held comes before, syncing first if they need it.
    /// Returns whether it synced.
    fn complete_barriers(&self, round: &mut Round, result: Result<(), StoreError>) -> bool {
        if let Err(e) = &result {
            error!("store write failed: {e}");
            round.failed = true;
        }
        let oldest_held = round.held.oldest().unwrap_or(u64::MAX);
        let ready = round
            .barriers
            .iter()
            .take_while(|(order, _)| *order <= oldest_held)
            .count();
        if ready == 0 {
            return false;
        }
        let done: Vec<Durable> = round.barriers.drain(..ready).map(|(_, d)| d).collect();
        let needs_sync = round.unsynced_puts
            || round.unsynced && done.iter().any(|d| !matches!(d, Durable::Confirm { .. }));
        let mut synced = false;
        if !round.failed && needs_sync {
            if let Err(e) = self.store.sync() {
                error!("store sync failed: {e}");
                round.failed = true;
            }
            round.unsynced = false;
            round.unsynced_puts = false;
            synced = true;
        }
        complete(done, !std::mem::take(&mut round.failed));
        synced
    }

    fn drop_entries(&self, queue: u64, lane: Option<u8>, from: u64) -> Result<(), StoreError> {
        let taken = self.store.take_entries(queue, lane, from)?;
        let gone: Vec<StoreOp> = taken
            .iter()
            .filter(|r: &&EntryRecord| r.transient || self.refs.release(r.message))
            .map(|r| StoreOp::RemoveMessage { id: r.message })
            .collect();
        self.store.apply(&gone)
    }
}

/// Completes barriers, telling each publishing channel once about the last of its confirms
/// (they complete in order, so that covers every earlier one).
fn complete(done: Vec<Durable>, ok: bool) {
    let mut confirms: Vec<(Mailbox, u16, u64, u64)> = Vec::new();
    for durable in done {
        match durable {
            Durable::Confirm {
                mailbox,
                channel,
                epoch,
                seq,
            } => {
                let same = confirms
                    .iter_mut()
                    .find(|c| c.1 == channel && c.2 == epoch && c.0.same_channel(&mailbox));
                match same {
                    Some(c) => c.3 = c.3.max(seq),
                    None => confirms.push((mailbox, channel, epoch, seq)),
                }
            }
            other => other.complete(ok),
        }
    }
    for (mailbox, channel, epoch, seq) in confirms {
        let _ = mailbox.send(ConnectionEvent::Persisted {
            channel,
            epoch,
            upto: seq,
            ok,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::QueueRecord;

    #[test]
    fn barrier_completes_after_earlier_changes_are_applied() {
        let store = Arc::new(MemoryStore::default());
        let handle = StoreHandle::start(store.clone(), 1, 1, Refs::default());
        handle.submit(StoreOp::PutQueue(QueueRecord {
            vhost: "/".into(),
            name: "q".into(),
            id: 1,
            auto_delete: false,
            arguments: Default::default(),
        }));
        assert!(handle.sync_blocking());
        assert_eq!(store.load().unwrap().queues.len(), 1);
        assert!(!handle.congested());
        handle.close();
    }
}
