//! The store's own thread, and the handle the broker talks to it through.
//!
//! Requests are sent in order over one channel. The thread applies everything that is waiting
//! in one go and, if anyone waits for durability, syncs once for all of it: confirms scale with
//! the number of concurrent publishers instead of being bounded by one fsync per message.
//! Reads for paging go through the same channel, so they see every write sent before them.

use super::refs::Refs;
use super::{EntryRecord, LoadedEntry, Store, StoreError, StoreOp};
use crate::broker::consumer::{ConnectionEvent, Mailbox};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::Notify;
use tracing::error;

/// Most operations applied between two syncs, so a flood cannot delay confirms indefinitely.
const MAX_BATCH: usize = 16 * 1024;
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
                seq,
            } => {
                let _ = mailbox.send(ConnectionEvent::Persisted { channel, seq, ok });
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

impl Worker {
    fn run(self, rx: mpsc::Receiver<Request>) {
        let mut ops = Vec::new();
        let mut waiting = Vec::new();
        let mut pings = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut stop = false;
            let mut result = Ok(());
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Op(op) => ops.push(op),
                    Request::DropEntries { queue, lane, from } => {
                        result = result.and(self.apply(&mut ops));
                        result = result.and(self.drop_entries(queue, lane, from));
                    }
                    Request::Load {
                        queue,
                        lane,
                        from,
                        max,
                        deliver,
                    } => {
                        result = result.and(self.apply(&mut ops));
                        deliver(self.store.read_entries(queue, lane, from, max));
                    }
                    Request::Barrier(d) => waiting.push(d),
                    Request::Ping(tx) => pings.push(tx),
                    Request::Stop => stop = true,
                }
                if ops.len() < MAX_BATCH && !stop {
                    next = rx.try_recv().ok();
                }
            }
            result = result.and(self.apply(&mut ops));
            if result.is_ok() && !waiting.is_empty() {
                result = self.store.sync();
            }
            if let Err(e) = &result {
                error!("store write failed: {e}");
            }
            for d in waiting.drain(..) {
                d.complete(result.is_ok());
            }
            for p in pings.drain(..) {
                let _ = p.send(());
            }
            if stop {
                break;
            }
        }
        if let Err(e) = self.store.sync() {
            error!("final store sync failed: {e}");
        }
    }

    fn apply(&self, ops: &mut Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let submitted = ops.len();
        coalesce(ops);
        let result = self.store.apply(ops);
        let before = self.pending.fetch_sub(submitted, Ordering::Relaxed);
        if before > RELIEVED && before - submitted <= RELIEVED {
            self.relieved.notify_waiters();
        }
        ops.clear();
        result
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

/// Drops writes that a later operation in the same batch undoes: an entry put (or marked
/// delivered) and removed, a message put and removed. A message consumed and acked while its
/// write was still waiting never reaches the disk. Removals all stay, since what they remove
/// may have been written by an earlier batch.
fn coalesce(ops: &mut Vec<StoreOp>) {
    use std::collections::HashSet;
    // A put is undone only by a removal that comes after it: walk backwards, so a key counts
    // as removed only while the removal seen is later than the put being looked at.
    let mut later_entry_removals = HashSet::new();
    let mut later_message_removals = HashSet::new();
    let mut keep = vec![true; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            StoreOp::RemoveEntry { key } => {
                later_entry_removals.insert(*key);
            }
            StoreOp::RemoveMessage { id } => {
                later_message_removals.insert(*id);
            }
            StoreOp::PutEntry { key, .. } if later_entry_removals.contains(key) => keep[i] = false,
            StoreOp::PutMessage { id, .. } if later_message_removals.contains(id) => {
                keep[i] = false
            }
            _ => {}
        }
    }
    let mut flags = keep.into_iter();
    ops.retain(|_| flags.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::QueueRecord;

    #[test]
    fn writes_undone_in_the_same_batch_are_dropped() {
        use crate::store::{EntryKey, EntryRecord};
        let key = EntryKey {
            queue: 1,
            lane: 0,
            seq: 7,
        };
        let record = EntryRecord {
            message: 3,
            redelivered: false,
            transient: false,
            expires: 0,
        };
        let mut ops = vec![
            StoreOp::RemoveEntry { key },
            StoreOp::PutEntry { key, record },
            StoreOp::PutEntry {
                key: EntryKey { seq: 8, ..key },
                record,
            },
            StoreOp::RemoveEntry { key },
            StoreOp::RemoveMessage { id: 3 },
        ];
        coalesce(&mut ops);
        let kinds: Vec<String> = ops
            .iter()
            .map(|op| {
                format!("{op:?}")
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            ["RemoveEntry", "PutEntry", "RemoveEntry", "RemoveMessage"],
            "only the undone put goes"
        );
        assert!(matches!(ops[1], StoreOp::PutEntry { key: k, .. } if k.seq == 8));
    }

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
