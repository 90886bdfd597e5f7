//! What makes a quorum queue on one node differ from a classic one, kept in one place so a
//! replicated implementation can take it over:
//! - every message it takes is stored (transient ones too; their delivery mode is kept) and
//!   confirmed once on disk;
//! - a returned message (nack, reject or channel close with requeue) is counted and goes to the
//!   back of the queue; past `x-delivery-limit` returns it is dropped or dead-lettered
//!   (`delivery_limit`);
//! - `x-overflow` reject-publish lets a publish in, then refuses publishers once the queue is
//!   over its limit, until it is back at 80% of it.
//!
//! The connection side (the `x-delivery-count` header, global qos, if-unused / if-empty
//! deletes) asks `Queue::kind` and applies the rest.

use super::hooks::Reason;
use super::{Overflow, Queue, QueueKind, QueueState};
use crate::broker::message::{Message, QueueEntry};
use crate::store::{EntryRecord, StoreOp};
use std::sync::Arc;

/// A quorum queue with reject-publish takes publishes again once it is down to this share of
/// its limit.
const REJECT_PUBLISH_LOW_WATERMARK: f64 = 0.8;

impl Queue {
    pub fn kind(&self) -> QueueKind {
        self.args.kind
    }

    pub fn is_quorum(&self) -> bool {
        self.args.kind == QueueKind::Quorum
    }

    /// Whether this queue keeps `message` in the store: a durable classic queue its
    /// persistent messages, a quorum queue all of them.
    pub fn keeps(&self, message: &Message) -> bool {
        self.durable && (message.persistent || self.is_quorum())
    }

    /// Quorum reject-publish: whether a publish is refused now. The queue starts refusing once
    /// a publish takes it over its limit, and stops when it is back at 80% of it.
    pub(super) fn quorum_refuses(&self, state: &mut QueueState) -> bool {
        if state.effective.overflow != Overflow::RejectPublish {
            return false;
        }
        let limits = &state.effective;
        if state.rejecting {
            let low = |max: u64| (max as f64 * REJECT_PUBLISH_LOW_WATERMARK) as u64;
            let back_under = limits.max_length.is_none_or(|max| state.len() <= low(max))
                && limits
                    .max_length_bytes
                    .is_none_or(|max| state.ready_bytes <= low(max));
            state.rejecting = !back_under;
        }
        state.rejecting
    }

    /// After a quorum queue took a publish: over its limit, it refuses the next ones.
    pub(super) fn quorum_after_publish(&self, state: &mut QueueState) {
        if state.effective.overflow == Overflow::RejectPublish && self.over_limit(state) {
            state.rejecting = true;
        }
    }

    /// A delivery the client returned (nack, reject, recover or channel close): counted,
    /// and sent to the back of the queue, or past the delivery limit dropped or
    /// dead-lettered.
    pub(super) fn quorum_return(self: &Arc<Self>, state: &mut QueueState, mut entry: QueueEntry) {
        entry.delivery_count = entry.delivery_count.saturating_add(1);
        entry.redelivered = true;
        if let Some(limit) = state.effective.delivery_limit {
            if u64::from(entry.delivery_count) > limit {
                self.dead_letter_entry(state, entry, Reason::DeliveryLimit);
                return;
            }
        }
        // A new place at the back: a new sequence number, and its record moves with it.
        let old = self.key(&entry).map(|(_, key)| key);
        entry.seq = state.next_seq;
        state.next_seq += 1;
        if entry.disk != 0 {
            if let (Some(old), Some((s, key))) = (old, self.key(&entry)) {
                let record = EntryRecord {
                    message: entry.disk,
                    redelivered: true,
                    transient: false,
                    expires: entry.expires,
                    delivery_count: entry.delivery_count,
                };
                s.store.submit(StoreOp::PutEntry { key, record });
                s.store.submit(StoreOp::RemoveEntry { key: old });
            }
        }
        state.ready_bytes += entry.message.size() as u64;
        self.append(state, entry);
    }
}

/// A quorum queue's message properties as a consumer sees them: `x-delivery-count` set to
/// `count` in the headers (other headers kept). Properties that fail to parse (they passed
/// the checks at publish, so they do not) go out unchanged.
pub fn with_delivery_count(raw: &bytes::Bytes, count: u32) -> bytes::Bytes {
    let Ok((_, properties)) = warren_amqp::protocol::basic::parse_properties(&raw[..]) else {
        return raw.clone();
    };
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-delivery-count".into(),
        warren_amqp::AMQPValue::LongLongInt(i64::from(count)),
    );
    let properties = properties.with_headers(headers);
    let mut out = bytes::BytesMut::with_capacity(raw.len() + 32);
    warren_amqp::encode::properties(&mut out, &properties);
    out.freeze()
}
