//! The store's own thread, and the handle the broker talks to it through.
//!
//! Changes are sent in order over one channel. The thread applies everything that is waiting
//! in one go and, if anyone waits for durability, syncs once for all of it: confirms scale with
//! the number of concurrent publishers instead of being bounded by one fsync per message.

use super::{Store, StoreError, StoreOp};
use crate::broker::consumer::{ConnectionEvent, Mailbox};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tracing::error;

/// Most operations applied between two syncs, so a flood cannot delay confirms indefinitely.
const MAX_BATCH: usize = 16 * 1024;

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

enum Request {
    Op(StoreOp),
    Barrier(Durable),
    Stop,
}

#[derive(Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Request>,
    next_message_id: AtomicU64,
    next_queue_id: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Op(op) => write!(f, "Op({op:?})"),
            Request::Barrier(d) => write!(f, "Barrier({d:?})"),
            Request::Stop => write!(f, "Stop"),
        }
    }
}

impl StoreHandle {
    /// Starts the writer thread over a store. Ids continue after the largest ones recovered.
    pub fn start(store: Arc<dyn Store>, next_message_id: u64, next_queue_id: u64) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || write_loop(store.as_ref(), rx))
            .ok();
        Self {
            tx,
            next_message_id: AtomicU64::new(next_message_id.max(1)),
            next_queue_id: AtomicU64::new(next_queue_id.max(1)),
            thread: Mutex::new(thread),
        }
    }

    fn send(&self, request: Request) {
        if self.tx.send(request).is_err() {
            error!("store writer is gone; a change was not recorded");
        }
    }

    pub fn submit(&self, op: StoreOp) {
        self.send(Request::Op(op));
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

    pub fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Syncs what is pending and stops the writer thread.
    pub fn close(&self) {
        self.sync_blocking();
        self.send(Request::Stop);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

fn write_loop(store: &dyn Store, rx: mpsc::Receiver<Request>) {
    let mut ops = Vec::new();
    let mut waiting = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut stop = false;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Op(op) => ops.push(op),
                Request::Barrier(d) => waiting.push(d),
                Request::Stop => stop = true,
            }
            if ops.len() < MAX_BATCH && !stop {
                next = rx.try_recv().ok();
            }
        }
        let mut result: Result<(), StoreError> = store.apply(&ops);
        if result.is_ok() && !waiting.is_empty() {
            result = store.sync();
        }
        if let Err(e) = &result {
            error!("store write failed: {e}");
        }
        ops.clear();
        for d in waiting.drain(..) {
            d.complete(result.is_ok());
        }
        if stop {
            break;
        }
    }
    if let Err(e) = store.sync() {
        error!("final store sync failed: {e}");
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
        let handle = StoreHandle::start(store.clone(), 1, 1);
        handle.submit(StoreOp::PutQueue(QueueRecord {
            vhost: "/".into(),
            name: "q".into(),
            id: 1,
            auto_delete: false,
            arguments: Default::default(),
        }));
        assert!(handle.sync_blocking());
        assert_eq!(store.load().unwrap().queues.len(), 1);
        handle.close();
    }
}
