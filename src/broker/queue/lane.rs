//! One ordered lane of a queue (a queue without priorities has one; a priority queue one per
//! priority level): the head of its messages in memory, and the rest on disk.
//!
//! Messages go to disk once the in-memory head holds `window` of them (or once anything is on
//! disk, so order is kept); they come back in batches as the head drains. Everything in memory
//! comes before everything on disk, so a lane is always `head ++ tail`. Every change to the
//! head goes through the lane's methods, which keep the broker's memory gauge true.

use crate::broker::memory::MemoryGauge;
use crate::broker::message::QueueEntry;
use std::collections::VecDeque;
use std::sync::Arc;

/// An entry x-max-length dropped from the front of a lane.
#[derive(Debug)]
pub enum Dropped {
    /// It was in memory.
    Now(QueueEntry),
    /// It is on disk, and goes when read back.
    WhenRead,
}

#[derive(Debug, Default)]
pub struct Lane {
    /// Ready entries in memory, in sequence order.
    head: VecDeque<QueueEntry>,
    pub tail: Tail,
    /// Counts what the head holds, broker-wide (absent in tests of a bare queue).
    gauge: Option<Arc<MemoryGauge>>,
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.take_head();
    }
}

/// The part of a lane that is only on disk.
#[derive(Debug, Default)]
pub struct Tail {
    /// The first sequence number on disk not yet read back.
    pub start: u64,
    /// How many entries are on disk only.
    pub count: u64,
    /// A read is on its way.
    pub loading: bool,
    /// Bumped when the tail is thrown away (purge), so a read already on its way is ignored.
    pub generation: u64,
    /// Entries at the front of the tail that x-max-length dropped before they were read back:
    /// they no longer count, and are discarded as they arrive.
    pub doomed: u64,
}

impl Lane {
    pub fn with_gauge(gauge: Option<Arc<MemoryGauge>>) -> Self {
        Self {
            head: VecDeque::new(),
            tail: Tail::default(),
            gauge,
        }
    }

    pub fn set_gauge(&mut self, gauge: Arc<MemoryGauge>) {
        for e in &self.head {
            gauge.add(e);
        }
        self.gauge = Some(gauge);
    }

    fn counted(&self, entry: &QueueEntry) {
        if let Some(g) = &self.gauge {
            g.add(entry);
        }
    }

    fn uncounted(&self, entry: &QueueEntry) {
        if let Some(g) = &self.gauge {
            g.sub(entry);
        }
    }

    pub fn head(&self) -> impl Iterator<Item = &QueueEntry> {
        self.head.iter()
    }

    pub fn push_back(&mut self, entry: QueueEntry) {
        self.counted(&entry);
        self.head.push_back(entry);
    }

    pub fn push_front(&mut self, entry: QueueEntry) {
        self.counted(&entry);
        self.head.push_front(entry);
    }

    pub fn pop_front(&mut self) -> Option<QueueEntry> {
        let entry = self.head.pop_front()?;
        self.uncounted(&entry);
        Some(entry)
    }

    /// Empties the head.
    pub fn take_head(&mut self) -> VecDeque<QueueEntry> {
        let head = std::mem::take(&mut self.head);
        head.iter().for_each(|e| self.uncounted(e));
        head
    }

    /// Replaces the head (recovery).
    pub fn set_head(&mut self, head: Vec<QueueEntry>) {
        self.take_head();
        head.iter().for_each(|e| self.counted(e));
        self.head = head.into();
    }

    /// Takes the entries that have expired by `now`, wherever they are in the head.
    pub fn take_expired(&mut self, now: u64) -> Vec<QueueEntry> {
        if !self.head.iter().any(|e| e.expired(now)) {
            return Vec::new();
        }
        let (expired, live): (Vec<_>, Vec<_>) = self.head.drain(..).partition(|e| e.expired(now));
        self.head = live.into();
        expired.iter().for_each(|e| self.uncounted(e));
        expired
    }

    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.tail.count.saturating_sub(self.tail.doomed)
    }

    /// Drops the first entry that still counts: from memory if the head has one, else, if
    /// `from_disk`, the first one on disk (discarded when read back).
    pub fn drop_front(&mut self, from_disk: bool) -> Option<Dropped> {
        if let Some(entry) = self.pop_front() {
            return Some(Dropped::Now(entry));
        }
        if from_disk && self.tail.count > self.tail.doomed {
            self.tail.doomed += 1;
            return Some(Dropped::WhenRead);
        }
        None
    }

    /// Whether a new entry must go to disk to keep the lane's order (something is on disk
    /// already), or may go there to keep memory bounded (the window is full).
    pub fn must_page(&self) -> bool {
        self.tail.count > 0
    }

    pub fn window_full(&self, window: usize) -> bool {
        self.head.len() >= window
    }

    /// Records an entry written to disk instead of kept in memory.
    pub fn paged(&mut self, seq: u64) {
        if self.tail.count == 0 {
            self.tail.start = seq;
        }
        self.tail.count += 1;
    }

    /// Whether the head is low enough that the next batch should be read back.
    pub fn wants_load(&self, window: usize) -> bool {
        self.tail.count > 0 && !self.tail.loading && self.head.len() < window.div_ceil(2).max(1)
    }

    /// Inserts an entry back where its sequence number belongs (requeues come back here).
    pub fn insert_sorted(&mut self, entry: QueueEntry) {
        self.counted(&entry);
        let at = self.head.partition_point(|e| e.seq < entry.seq);
        self.head.insert(at, entry);
    }

    /// Appends entries read back from disk, which follow everything in memory, except the
    /// doomed ones at the front, which are returned.
    pub fn loaded(&mut self, mut entries: Vec<QueueEntry>) -> Vec<QueueEntry> {
        let n = entries.len() as u64;
        if let Some(last) = entries.last() {
            self.tail.start = last.seq + 1;
        }
        let doomed = self.tail.doomed.min(n);
        self.tail.doomed -= doomed;
        let discarded: Vec<QueueEntry> = entries.drain(..doomed as usize).collect();
        entries.iter().for_each(|e| self.counted(e));
        self.head.extend(entries);
        // An empty read means the disk holds less than counted: believe the disk.
        self.tail.count = if n == 0 {
            0
        } else {
            self.tail.count.saturating_sub(n)
        };
        self.tail.doomed = self.tail.doomed.min(self.tail.count);
        self.tail.loading = false;
        discarded
    }

    /// Forgets the disk tail (its entries are being removed from disk).
    pub fn discard_tail(&mut self) -> Option<u64> {
        if self.tail.count == 0 && !self.tail.loading {
            return None;
        }
        let from = self.tail.start;
        self.tail = Tail {
            generation: self.tail.generation + 1,
            ..Tail::default()
        };
        Some(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use bytes::Bytes;
    use warren_amqp::BasicProperties;

    fn entry(seq: u64) -> QueueEntry {
        let m = Message::new(
            "".into(),
            "q".into(),
            &BasicProperties::default(),
            Bytes::new(),
            Bytes::new(),
        );
        QueueEntry::new(seq, m)
    }

    #[test]
    fn pages_past_the_window_and_keeps_order() {
        let mut lane = Lane::default();
        for seq in 0..3 {
            assert!(!lane.window_full(3));
            lane.push_back(entry(seq));
        }
        assert!(lane.window_full(3));
        lane.paged(3);
        lane.paged(4);
        assert_eq!(lane.len(), 5);
        lane.pop_front();
        lane.pop_front();
        assert!(lane.wants_load(3));
        lane.tail.loading = true;
        assert!(!lane.wants_load(3));
        lane.loaded(vec![entry(3), entry(4)]);
        let seqs: Vec<u64> = lane.head.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(lane.tail.count, 0);
        assert!(!lane.must_page());
    }

    #[test]
    fn entries_dropped_while_on_disk_stop_counting_and_are_discarded_when_read() {
        let mut lane = Lane::default();
        lane.push_back(entry(0));
        for seq in 1..4 {
            lane.paged(seq);
        }
        assert!(matches!(lane.drop_front(true), Some(Dropped::Now(e)) if e.seq == 0));
        assert!(matches!(lane.drop_front(true), Some(Dropped::WhenRead)));
        assert!(matches!(lane.drop_front(true), Some(Dropped::WhenRead)));
        assert_eq!(lane.len(), 1);
        let discarded = lane.loaded(vec![entry(1), entry(2), entry(3)]);
        assert_eq!(discarded.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lane.head.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        assert_eq!((lane.len(), lane.tail.doomed), (1, 0));
        lane.pop_front();
        assert!(lane.drop_front(true).is_none());
    }

    #[test]
    fn requeued_entries_go_back_in_order_and_discard_bumps_the_generation() {
        let mut lane = Lane::default();
        lane.push_back(entry(5));
        lane.insert_sorted(entry(2));
        assert_eq!(lane.head.front().map(|e| e.seq), Some(2));
        lane.paged(9);
        let generation = lane.tail.generation;
        assert_eq!(lane.discard_tail(), Some(9));
        assert_eq!(lane.tail.generation, generation + 1);
        assert_eq!(lane.discard_tail(), None);
    }
}
