//! The store's own thread, and the handle the broker talks to it through.
//!
//! Requests are sent in order over one channel. The thread applies everything that is waiting
//! in one go and, if anyone waits for durability, syncs once for all of it: confirms scale with
//! the number of concurrent publishers instead of being bounded by one fsync per message.
//! Reads for paging go through the same channel, so they see every write sent before them.

use super::held::Held;
use super::refs::Refs;
use super::{EntryKey, LoadedEntry, Store, StoreError, StoreOp};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{error, info};

/// Most operations applied between two syncs, so a flood cannot delay confirms indefinitely.
const MAX_BATCH: usize = 16 * 1024;
/// At most this many confirms waiting: held writes are written at once (see `run`).
const FEW_CONFIRMS: usize = 16;
/// Entries a round removes of a queue being deleted or purged.
const DROP_CHUNK: usize = 1024;
/// Shortest round when nothing waits for the disk, so requests are taken in batches.
const TICK: Duration = Duration::from_micros(500);
/// Writes waiting for the thread above which publishers are paused ...
const CONGESTED: usize = 64 * 1024;
/// ... until the backlog is down to this.
const RELIEVED: usize = 16 * 1024;

/// Who hears that a publisher's persistent messages are safe. The store knows no connection:
/// the broker implements this for a connection's mailbox, and a connection hands the same
/// sink (one `Arc`) with each of its confirms, so confirms to one channel can be coalesced.
pub trait ConfirmSink: Send + Sync + std::fmt::Debug {
    /// Every publish up to `upto` in confirm mode `epoch` of `channel` is on disk (or the
    /// store failed to keep it: `ok` false).
    fn persisted(&self, channel: u16, epoch: u64, upto: u64, ok: bool);
}

/// Who waits for the changes sent before a barrier to be durable.
pub enum Durable {
    /// A publisher confirm.
    Confirm {
        sink: Arc<dyn ConfirmSink>,
        channel: u16,
        /// Which confirm mode of the channel (a channel id can be reused).
        epoch: u64,
        seq: u64,
    },
    /// Anything else to do once the changes are durable (a transaction's commit-ok); told
    /// whether they are.
    Then(Box<dyn FnOnce(bool) + Send>),
    /// Anyone blocking on a plain channel (shutdown, tests).
    Notify(mpsc::Sender<bool>),
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durable::Confirm {
                channel,
                epoch,
                seq,
                ..
            } => write!(f, "Confirm(channel {channel}, epoch {epoch}, seq {seq})"),
            Durable::Then(_) => f.write_str("Then(..)"),
            Durable::Notify(_) => f.write_str("Notify"),
        }
    }
}

impl Durable {
    fn complete(self, ok: bool) {
        match self {
            Durable::Confirm {
                sink,
                channel,
                epoch,
                seq,
            } => sink.persisted(channel, epoch, seq, ok),
            Durable::Then(then) => then(ok),
            Durable::Notify(tx) => {
                let _ = tx.send(ok);
            }
        }
    }
}

/// Messages recovered at start: the ids entries hold (sorted), and the largest id then.
/// Records up to it that are not held were left by a crash between two writes.
#[derive(Debug)]
pub struct OrphanScan {
    pub held: Vec<u64>,
    pub upto: u64,
    next: u64,
    removed: usize,
}

/// A range of entries, from `first` to `last` inclusive.
#[derive(Debug, Clone, Copy)]
pub struct EntryRange {
    pub first: EntryKey,
    pub last: EntryKey,
}

impl EntryRange {
    /// Every entry of a queue.
    pub fn queue(queue: u64) -> Self {
        let key = |lane, seq| EntryKey { queue, lane, seq };
        Self {
            first: key(0, 0),
            last: key(u8::MAX, u64::MAX),
        }
    }

    /// The entries of one lane from `from` up to (not including) `until`.
    pub fn lane(queue: u64, lane: u8, from: u64, until: u64) -> Self {
        let key = |seq| EntryKey { queue, lane, seq };
        Self {
            first: key(from),
            last: key(until.saturating_sub(1)),
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
    /// Removes a range of entries and releases their messages.
    DropEntries(EntryRange),
    /// Removes the stored messages up to `upto` that no entry holds (see [`OrphanScan`]).
    CollectOrphans(OrphanScan),
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

    /// Removes the stored messages up to `upto` that are not in `held` (sorted), a chunk per
    /// round.
    pub fn collect_orphans(&self, held: Vec<u64>, upto: u64) {
        self.send(Request::CollectOrphans(OrphanScan {
            held,
            upto,
            next: 0,
            removed: 0,
        }));
    }

    /// Removes the entries of `range`, releasing their messages. A long range is removed a
    /// chunk per round, so other work (confirms) does not wait for all of it.
    pub fn drop_entries(&self, range: EntryRange) {
        self.send(Request::DropEntries(range));
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
    /// Entry ranges being removed, a chunk per round.
    drops: VecDeque<EntryRange>,
    /// Messages left without holders being looked for, a chunk per round.
    orphans: Option<OrphanScan>,
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
            let due = match round.drops.is_empty() && round.orphans.is_none() {
                true => round.held.next_due(),
                false => Some(started),
            };
            let first = match due {
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
            // Holding writes back pays when publishers keep many confirms outstanding: they go
            // on publishing meanwhile. A publisher with only a few outstanding would mostly
            // wait out the hold: write them now.
            let few_waiting = (1..=FEW_CONFIRMS).contains(&round.barriers.len());
            round
                .held
                .release_due((!flush && !few_waiting).then_some(now), &mut round.ops);
            result = result.and(self.apply(&mut round));
            if flush {
                result = result.and_then(|()| self.drop_all(&mut round));
            } else {
                result = result.and(self.drop_entries(&mut round, DROP_CHUNK));
            }
            result = result.and(self.collect_orphans(&mut round));
            self.settle(writes);
            let synced = self.complete_barriers(&mut round, result);
            for p in round.pings.drain(..) {
                let _ = p.send(());
            }
            if round.stop {
                break;
            }
            if (!synced && !round.barriers.is_empty())
                || !round.held.is_empty()
                || !round.drops.is_empty()
                || round.orphans.is_some()
            {
                // Nothing made this round wait for the disk: let requests gather for a moment
                // instead of waking up for each one.
                std::thread::sleep(TICK.saturating_sub(started.elapsed()));
            }
        }
        round.held.release_due(None, &mut round.ops);
        let mut result = self
            .apply(&mut round)
            .and_then(|()| self.drop_all(&mut round));
        if result.is_ok() && round.orphans.is_none() {
            // Only once nothing is left to clean up: the next start relies on it.
            result = self.store.apply(&[StoreOp::MarkClean(true)]);
        }
        let result = result.and_then(|()| self.store.sync());
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
            Request::CollectOrphans(scan) => round.orphans = Some(scan),
            Request::DropEntries(range) => {
                round.held.release_due(None, &mut round.ops);
                self.apply(round)?;
                round.drops.push_back(range);
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
        // Paged messages are not kept across a restart: they never need a sync.
        round.unsynced |= round
            .ops
            .iter()
            .any(|op| !matches!(op, StoreOp::PageOut { .. }));
        round.unsynced_puts |= round.ops.iter().any(|op| {
            !matches!(
                op,
                StoreOp::RemoveEntry { .. }
                    | StoreOp::RemoveMessage { .. }
                    | StoreOp::RemoveDedupKey { .. }
                    | StoreOp::MarkClean(_)
                    | StoreOp::PageOut { .. }
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

    /// Looks at the next chunk of recovered messages, removing those nothing holds.
    fn collect_orphans(&self, round: &mut Round) -> Result<(), StoreError> {
        let Some(scan) = &mut round.orphans else {
            return Ok(());
        };
        let ids = self.store.message_ids(scan.next, DROP_CHUNK)?;
        let done = ids.len() < DROP_CHUNK || ids.last().is_none_or(|&id| id >= scan.upto);
        let orphans: Vec<StoreOp> = ids
            .iter()
            .filter(|&&id| id <= scan.upto && scan.held.binary_search(&id).is_err())
            .map(|&id| StoreOp::RemoveMessage { id })
            .collect();
        scan.next = ids.last().map_or(scan.next, |id| id + 1);
        scan.removed += orphans.len();
        if done {
            if scan.removed > 0 {
                info!("removed {} stored messages nothing held", scan.removed);
            }
            round.orphans = None;
        }
        self.store.apply(&orphans)
    }

    /// Removes every range waiting to be dropped.
    fn drop_all(&self, round: &mut Round) -> Result<(), StoreError> {
        while !round.drops.is_empty() {
            self.drop_entries(round, usize::MAX)?;
        }
        Ok(())
    }

    /// Removes up to `max` entries of the ranges waiting to be dropped.
    fn drop_entries(&self, round: &mut Round, max: usize) -> Result<(), StoreError> {
        let Some(range) = round.drops.front_mut() else {
            return Ok(());
        };
        if range.first > range.last {
            round.drops.pop_front();
            return Ok(());
        }
        let taken = self.store.take_entries(range.first, range.last, max)?;
        match taken.last().and_then(|(key, _)| key.successor()) {
            Some(next) if taken.len() == max && next <= range.last => range.first = next,
            _ => {
                round.drops.pop_front();
            }
        }
        let gone: Vec<StoreOp> = taken
            .iter()
            .filter(|(_, r)| r.transient || self.refs.release(r.message))
            .map(|(_, r)| StoreOp::RemoveMessage { id: r.message })
            .collect();
        round.unsynced |= !taken.is_empty();
        self.store.apply(&gone)
    }
}

/// Completes barriers, telling each publishing channel once about the last of its confirms
/// (they complete in order, so that covers every earlier one).
fn complete(done: Vec<Durable>, ok: bool) {
    let mut confirms: Vec<Durable> = Vec::new();
    for durable in done {
        let Durable::Confirm {
            sink,
            channel,
            epoch,
            seq,
        } = &durable
        else {
            durable.complete(ok);
            continue;
        };
        let same = confirms.iter_mut().find_map(|c| match c {
            Durable::Confirm {
                sink: k,
                channel: ch,
                epoch: e,
                seq: s,
            } if ch == channel
                && e == epoch
                && std::ptr::addr_eq(Arc::as_ptr(k), Arc::as_ptr(sink)) =>
            {
                Some(s)
            }
            _ => None,
        });
        match same {
            Some(s) => *s = (*s).max(*seq),
            None => confirms.push(durable),
        }
    }
    for confirm in confirms {
        confirm.complete(ok);
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

    #[test]
    fn long_drops_go_by_chunks_and_stay_inside_their_range() {
        use crate::store::{EntryKey, EntryRecord};
        let store = Arc::new(MemoryStore::default());
        let handle = StoreHandle::start(store.clone(), 1, 1, Refs::default());
        let put = |queue, lane, seq| {
            let record = EntryRecord {
                message: seq + 1,
                redelivered: false,
                transient: true,
                expires: 0,
                delivery_count: 0,
            };
            let key = EntryKey { queue, lane, seq };
            handle.submit(StoreOp::PutEntry { key, record });
        };
        for seq in 0..3 * DROP_CHUNK as u64 {
            put(1, 0, seq);
            put(2, 1, seq);
        }
        handle.drop_entries(EntryRange::lane(1, 0, 10, 2 * DROP_CHUNK as u64));
        handle.drop_entries(EntryRange::queue(2));
        put(1, 0, 5 * DROP_CHUNK as u64);
        assert!(handle.sync_blocking());
        let mut left = Vec::new();
        store
            .scan_entries(&mut |key, _| {
                left.push(key);
                Ok(())
            })
            .unwrap();
        let expected: Vec<u64> = (0..10)
            .chain(2 * DROP_CHUNK as u64..3 * DROP_CHUNK as u64)
            .chain([5 * DROP_CHUNK as u64])
            .collect();
        assert!(left.iter().all(|k| k.queue == 1 && k.lane == 0));
        assert_eq!(left.iter().map(|k| k.seq).collect::<Vec<_>>(), expected);
        handle.close();
    }

    #[test]
    fn orphans_up_to_the_recovered_ids_are_removed_in_the_background() {
        use crate::store::Message;
        let store = Arc::new(MemoryStore::default());
        let message = Arc::new(Message::from_parts(
            "".into(),
            "q".into(),
            &Default::default(),
            bytes::Bytes::new(),
            bytes::Bytes::from_static(b"x"),
        ));
        let put = |id| StoreOp::PutMessage {
            id,
            message: message.clone(),
        };
        let ops: Vec<StoreOp> = (1..=3 * DROP_CHUNK as u64).map(put).collect();
        store.apply(&ops).unwrap();
        let held: Vec<u64> = (1..=3 * DROP_CHUNK as u64)
            .filter(|id| id % 3 == 0)
            .collect();
        let upto = 3 * DROP_CHUNK as u64 - 1;
        let handle = StoreHandle::start(store.clone(), upto + 1, 1, Refs::default());
        handle.collect_orphans(held.clone(), upto);
        let mut left = Vec::new();
        for _ in 0..100 {
            handle.ping_blocking();
            left = store.message_ids(0, usize::MAX).unwrap();
            if left.len() <= held.len() + 1 {
                break;
            }
        }
        let mut expected = held;
        expected.push(3 * DROP_CHUNK as u64);
        expected.dedup();
        assert_eq!(left, expected, "held ones and those after `upto` stay");
        handle.close();
    }
}
