//! The queue's side of the store: recording entries of persistent messages, paging entries
//! out past the in-memory window, and reading them back in batches on the store thread.

use super::{Queue, QueueState, Storage, LOAD_BATCH};
use crate::broker::message::QueueEntry;
use crate::store::{EntryKey, EntryRecord, LoadedEntry, StoreError, StoreOp};
use std::sync::Arc;
use tracing::error;

impl Queue {
    pub(super) fn key(&self, entry: &QueueEntry) -> Option<(&Storage, EntryKey)> {
        let s = self.storage.as_ref()?;
        Some((
            s,
            EntryKey {
                queue: s.id,
                lane: entry.lane,
                seq: entry.seq,
            },
        ))
    }

    /// Records that a delivered persistent entry comes back redelivered after a crash.
    pub(super) fn mark_delivered(&self, entry: &QueueEntry) {
        if entry.disk == 0 || entry.redelivered || !self.keeps(&entry.message) {
            return;
        }
        if let Some((s, key)) = self.key(entry) {
            let record = EntryRecord {
                message: entry.disk,
                redelivered: true,
                transient: false,
                expires: entry.expires,
                delivery_count: 0,
            };
            s.store
                .submit_delivered(StoreOp::PutEntry { key, record }, false);
        }
    }

    /// An entry leaves the queue for good: its deduplication key is free, its record goes, and
    /// its message's record with the last holder. After a delete the queue's records are
    /// already gone.
    pub(super) fn forget(&self, state: &mut QueueState, entry: &QueueEntry, queue_gone: bool) {
        if queue_gone {
            return;
        }
        // Before the entry's removal, so that after a crash a key is never kept for a
        // message the store no longer has.
        self.release_key(state, entry);
        if entry.disk == 0 {
            return;
        }
        if let Some((s, key)) = self.key(entry) {
            s.store.submit(StoreOp::RemoveEntry { key });
            s.store.release_message(entry.disk);
        }
    }

    /// Writes an entry to disk instead of keeping it in memory.
    pub(super) fn page_out(&self, state: &mut QueueState, entry: QueueEntry) {
        let Some((s, key)) = self.key(&entry) else {
            return;
        };
        if entry.disk == 0 {
            // Not stored (transient, or this queue is not durable): written to the store's
            // paged files, read back once, thrown away at the next start.
            s.store.submit(StoreOp::PageOut {
                key,
                expires: entry.expires,
                redelivered: entry.redelivered,
                message: entry.message.clone(),
            });
        }
        state.lanes[usize::from(entry.lane)].paged(entry.seq);
    }

    /// Asks the store for the next batch of every lane whose in-memory head runs low.
    pub(super) fn request_loads(self: &Arc<Self>, state: &mut QueueState) {
        let Some(s) = &self.storage else { return };
        for (i, lane) in state.lanes.iter_mut().enumerate() {
            if !lane.wants_load(s.window) {
                continue;
            }
            lane.tail.loading = true;
            let (queue, generation, index) = (Arc::downgrade(self), lane.tail.generation, i as u8);
            let max = LOAD_BATCH.min(s.window);
            s.store.load(
                s.id,
                index,
                lane.tail.start,
                max,
                Box::new(move |result| {
                    if let Some(q) = queue.upgrade() {
                        q.on_loaded(index, generation, result);
                    }
                }),
            );
        }
    }

    /// A batch read back from disk (runs on the store thread).
    pub(super) fn on_loaded(
        self: &Arc<Self>,
        lane: u8,
        generation: u64,
        result: Result<Vec<LoadedEntry>, StoreError>,
    ) {
        let mut state = self.state();
        let index = usize::from(lane);
        if state.deleted || state.lanes[index].tail.generation != generation {
            return;
        }
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                error!(
                    "queue '{}': reading messages back from disk failed: {e}",
                    self.name
                );
                state.lanes[index].tail.loading = false;
                return;
            }
        };
        let mut entries = Vec::with_capacity(loaded.len());
        for (key, record, message) in loaded {
            match message {
                Some(m) => entries.push(QueueEntry::from_stored(key, record, m)),
                None => error!(
                    "queue '{}': message {} of entry {} is missing from disk; dropped",
                    self.name, record.message, key.seq
                ),
            }
        }
        for entry in state.lanes[index].loaded(entries) {
            self.drop_entry(&mut state, &entry);
        }
        self.dispatch_locked(&mut state);
        self.arm_locked(&mut state);
    }

    /// Refills a durable queue at start: per lane, the entries read into memory and the part
    /// left on disk (first sequence and count).
    pub fn recover(&self, lanes: Vec<(Vec<QueueEntry>, u64, u64)>, next_seq: u64) {
        let mut state = self.state();
        state.next_seq = next_seq;
        for (i, (head, start, count)) in lanes.into_iter().enumerate() {
            if let Some(lane) = state.lanes.get_mut(i) {
                lane.set_head(head);
                lane.tail.start = start;
                lane.tail.count = count;
            }
        }
    }
}
