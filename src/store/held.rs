//! Writes the store thread holds back for a moment because they are likely to be undone.
//!
//! A persistent message handed straight to a consumer (or queued behind a few others while
//! consumers keep up) is usually acked a few milliseconds later; writing it, then deleting it,
//! costs more than the delivery itself. So its entry is held for up to [`HOLD`], and a removal
//! arriving in that time cancels both: nothing reaches the disk, and a publisher's confirm for
//! it needs no sync (the message has been consumed). A message record is held until its first
//! entry that is not held arrives, so messages that go to a queue without consumers are
//! written at once. The store thread writes held records at once while only a few confirms
//! wait (see `writer`), so a publisher waiting for each confirm never waits out the hold.
//!
//! Held writes are numbered with the order their requests arrived in, so a barrier knows
//! whether anything sent before it is still held.

use super::Message;
use super::{EntryKey, EntryRecord, StoreOp};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a write is held back before it goes to disk anyway: long enough for a consumer's
/// (multiple) ack to arrive under load, when publishers keep many confirms outstanding and a
/// confirm takes this long anyway; short enough to keep a confirm prompt when the ack is late.
pub const HOLD: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy)]
enum Slot {
    Message(u64),
    Entry(EntryKey),
}

#[derive(Debug)]
struct HeldEntry {
    order: u64,
    record: EntryRecord,
    /// Nothing for this entry is on disk yet, so cancelling it needs no removal.
    fresh: bool,
}

#[derive(Debug, Default)]
pub struct Held {
    messages: HashMap<u64, (u64, Arc<Message>)>,
    entries: HashMap<EntryKey, HeldEntry>,
    /// Every held write in arrival order with when it falls due; cancelled ones stay until
    /// they reach the front.
    queue: VecDeque<(Instant, u64, Slot)>,
}

impl Held {
    /// Takes an ordinary write, numbered `order`: a message record is held until an entry
    /// needs it; everything else goes to `out` (after the held message an entry refers to),
    /// or cancels the held write it undoes.
    pub fn accept(&mut self, order: u64, op: StoreOp, now: Instant, out: &mut Vec<StoreOp>) {
        match op {
            StoreOp::PutMessage { id, message } => {
                self.messages.insert(id, (order, message));
                self.queue.push_back((now + HOLD, order, Slot::Message(id)));
            }
            StoreOp::RemoveMessage { id } => {
                if self.messages.remove(&id).is_none() {
                    out.push(op);
                }
            }
            StoreOp::RemoveEntry { key } => match self.entries.remove(&key) {
                Some(held) if held.fresh => {}
                _ => out.push(op),
            },
            StoreOp::PutEntry { key, record } => {
                self.entries.remove(&key);
                self.write_message(record.message, out);
                out.push(op);
            }
            other => out.push(other),
        }
    }

    /// Holds an entry write that a consumer's ack will likely undo. `fresh`: the entry has
    /// never been written (a new entry, rather than a delivered marker for a stored one).
    pub fn hold(
        &mut self,
        order: u64,
        op: StoreOp,
        fresh: bool,
        now: Instant,
        out: &mut Vec<StoreOp>,
    ) {
        let StoreOp::PutEntry { key, record } = op else {
            return self.accept(order, op, now, out);
        };
        if let Some(held) = self.entries.get_mut(&key) {
            // A delivered marker for an entry still held: it just changes what will be written.
            held.record = record;
            return;
        }
        self.entries.insert(
            key,
            HeldEntry {
                order,
                record,
                fresh,
            },
        );
        self.queue.push_back((now + HOLD, order, Slot::Entry(key)));
    }

    /// Moves the writes due by `now` to `out`, in arrival order; every one if `now` is `None`.
    pub fn release_due(&mut self, now: Option<Instant>, out: &mut Vec<StoreOp>) {
        while let Some(&(due, order, slot)) = self.queue.front() {
            if now.is_some_and(|now| due > now) && self.is_live(order, slot) {
                break;
            }
            self.queue.pop_front();
            match slot {
                Slot::Message(id) if self.is_live(order, slot) => self.write_message(id, out),
                Slot::Entry(key) if self.is_live(order, slot) => {
                    if let Some(held) = self.entries.remove(&key) {
                        self.write_message(held.record.message, out);
                        out.push(StoreOp::PutEntry {
                            key,
                            record: held.record,
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The arrival number of the oldest write still held.
    pub fn oldest(&mut self) -> Option<u64> {
        self.drop_cancelled_front();
        self.queue.front().map(|&(_, order, _)| order)
    }

    /// When the oldest write still held falls due.
    pub fn next_due(&mut self) -> Option<Instant> {
        self.drop_cancelled_front();
        self.queue.front().map(|&(due, _, _)| due)
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.entries.is_empty()
    }

    fn drop_cancelled_front(&mut self) {
        while let Some(&(_, order, slot)) = self.queue.front() {
            if self.is_live(order, slot) {
                break;
            }
            self.queue.pop_front();
        }
    }

    fn is_live(&self, order: u64, slot: Slot) -> bool {
        match slot {
            Slot::Message(id) => self.messages.get(&id).is_some_and(|m| m.0 == order),
            Slot::Entry(key) => self.entries.get(&key).is_some_and(|e| e.order == order),
        }
    }

    fn write_message(&mut self, id: u64, out: &mut Vec<StoreOp>) {
        if let Some((_, message)) = self.messages.remove(&id) {
            out.push(StoreOp::PutMessage { id, message });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message() -> Arc<Message> {
        Arc::new(Message::from_parts(
            "".into(),
            "q".into(),
            &Default::default(),
            Bytes::new(),
            Bytes::from_static(b"x"),
        ))
    }

    fn put_message(id: u64) -> StoreOp {
        StoreOp::PutMessage {
            id,
            message: message(),
        }
    }

    fn entry(seq: u64, message: u64) -> (EntryKey, EntryRecord) {
        (
            EntryKey {
                queue: 1,
                lane: 0,
                seq,
            },
            EntryRecord {
                message,
                redelivered: false,
                transient: false,
                expires: 0,
                delivery_count: 0,
            },
        )
    }

    fn kinds(ops: &[StoreOp]) -> Vec<String> {
        ops.iter()
            .map(|op| {
                format!("{op:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn an_acked_delivery_never_reaches_the_disk() {
        let (mut held, mut out, now) = (Held::default(), Vec::new(), Instant::now());
        let (key, record) = entry(1, 7);
        held.accept(1, put_message(7), now, &mut out);
        held.hold(2, StoreOp::PutEntry { key, record }, true, now, &mut out);
        let marked = EntryRecord {
            redelivered: true,
            ..record
        };
        held.hold(
            3,
            StoreOp::PutEntry {
                key,
                record: marked,
            },
            false,
            now,
            &mut out,
        );
        assert_eq!(held.oldest(), Some(1));
        held.accept(4, StoreOp::RemoveEntry { key }, now, &mut out);
        held.accept(5, StoreOp::RemoveMessage { id: 7 }, now, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(held.oldest(), None);
        assert!(held.is_empty());
        held.release_due(None, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_message_is_written_before_its_first_entry_that_is_not_held() {
        let (mut held, mut out, now) = (Held::default(), Vec::new(), Instant::now());
        let (key, record) = entry(1, 7);
        held.accept(1, put_message(7), now, &mut out);
        assert!(out.is_empty());
        held.accept(2, StoreOp::PutEntry { key, record }, now, &mut out);
        assert_eq!(kinds(&out), ["PutMessage", "PutEntry"]);
        assert_eq!(held.oldest(), None);
    }

    #[test]
    fn held_writes_fall_due_in_order_with_their_latest_record() {
        let (mut held, mut out, now) = (Held::default(), Vec::new(), Instant::now());
        let (key, record) = entry(1, 7);
        let (other, other_record) = entry(2, 8);
        held.accept(1, put_message(7), now, &mut out);
        held.hold(2, StoreOp::PutEntry { key, record }, true, now, &mut out);
        let later = now + HOLD / 2;
        held.accept(3, put_message(8), later, &mut out);
        held.hold(
            4,
            StoreOp::PutEntry {
                key: other,
                record: other_record,
            },
            true,
            later,
            &mut out,
        );
        let marked = EntryRecord {
            redelivered: true,
            ..record
        };
        held.hold(
            5,
            StoreOp::PutEntry {
                key,
                record: marked,
            },
            false,
            later,
            &mut out,
        );
        assert_eq!(held.next_due(), Some(now + HOLD));
        held.release_due(Some(now + HOLD - Duration::from_millis(1)), &mut out);
        assert!(out.is_empty());
        held.release_due(Some(now + HOLD), &mut out);
        assert_eq!(kinds(&out), ["PutMessage", "PutEntry"]);
        assert!(matches!(&out[1], StoreOp::PutEntry { record, .. } if record.redelivered));
        assert_eq!(held.oldest(), Some(3));
        held.release_due(None, &mut out);
        assert_eq!(
            kinds(&out),
            ["PutMessage", "PutEntry", "PutMessage", "PutEntry"]
        );
        assert!(held.is_empty());
    }

    #[test]
    fn removing_a_marker_for_a_stored_entry_still_removes_it_from_disk() {
        let (mut held, mut out, now) = (Held::default(), Vec::new(), Instant::now());
        let (key, record) = entry(1, 7);
        held.hold(1, StoreOp::PutEntry { key, record }, false, now, &mut out);
        held.accept(2, StoreOp::RemoveEntry { key }, now, &mut out);
        held.accept(3, StoreOp::RemoveMessage { id: 7 }, now, &mut out);
        assert_eq!(kinds(&out), ["RemoveEntry", "RemoveMessage"]);
    }
}
