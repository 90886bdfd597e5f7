//! A channel's state, owned by its connection task: the frame assembler, consumers, unacked
//! deliveries, publisher-confirm and transaction state, and the helpers every method handler
//! shares (consumer tags, requeueing). The handlers (basic, close, reply_to, tx...) import
//! this state; it imports none of them, and they do not import each other.

use crate::broker::exchange::Exchange;
use crate::broker::message::QueueEntry;
use crate::broker::queue::{ChannelGate, Consumer, Queue};
use crate::broker::stats::Stats;
use crate::error::{AmqpError, AmqpResult};
use bytes::BytesMut;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use warren_amqp::{encode, CommandAssembler, Content, ShortString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// The server sent channel.close and discards everything until channel.close-ok.
    Closing,
}

/// When a delivery stops being acceptable unacknowledged, and the timeout that set it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub timeout: Duration,
}

impl Deadline {
    pub fn after(now: Instant, timeout: Option<Duration>) -> Option<Self> {
        timeout.map(|timeout| Self {
            at: now + timeout,
            timeout,
        })
    }
}

/// A delivery the client has not acknowledged yet.
#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub entry: QueueEntry,
    /// None for basic.get deliveries, which hold no consumer credit.
    pub consumer: Option<Arc<Consumer>>,
    /// When holding it unacknowledged closes the channel, if ever.
    pub deadline: Option<Deadline>,
}

/// A consumer as its channel knows it.
#[derive(Debug)]
pub struct ChannelConsumer {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
}

/// A basic.publish that passed its checks, routed now or at tx.commit.
#[derive(Debug)]
pub struct Publication {
    pub exchange: Arc<Exchange>,
    pub exchange_name: ShortString,
    pub routing_key: ShortString,
    pub mandatory: bool,
    pub content: Content,
    /// Routing keys the message's CC and BCC headers add.
    pub extra_keys: Vec<String>,
}

/// A channel's consumer of the pseudo-queue.
#[derive(Debug)]
pub struct ReplyConsumer {
    pub tag: ShortString,
    /// Its key in the broker's registry; its reply name is derived from it.
    pub token: Arc<str>,
}

/// A publish or acknowledgement held back by an open transaction.
#[derive(Debug)]
pub enum TxOp {
    Publish(Box<Publication>),
    /// Deliveries acked (or rejected, with their requeue flag) inside the transaction: taken
    /// off the unacked list at once, settled at commit, put back at rollback.
    Settle {
        deliveries: Vec<Unacked>,
        requeue: Option<bool>,
    },
}

/// Publisher confirms of one channel. A publish is confirmed once it is routed, or, when its
/// persistent copies go to durable queues, once they are on disk; acks go out in order,
/// coalesced into one multiple ack per batch.
#[derive(Debug)]
pub struct Confirms {
    /// Tells this confirm mode apart from an earlier one on a channel with the same id, so a
    /// late answer from the store for the old one is ignored.
    pub epoch: u64,
    /// Sequence number of the next publish.
    next: u64,
    /// Highest sequence number the client has been told about.
    confirmed: u64,
    /// Publishes waiting for the disk.
    pub waiting: BTreeSet<u64>,
    /// Publishes the store failed to keep: nacked.
    pub failed: BTreeSet<u64>,
}

impl Confirms {
    pub fn new() -> Self {
        static EPOCHS: AtomicU64 = AtomicU64::new(1);
        Self {
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed),
            next: 1,
            confirmed: 0,
            waiting: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        seq
    }

    /// The store kept (or failed to keep) every publish up to `upto`.
    pub fn persisted(&mut self, epoch: u64, upto: u64, ok: bool) {
        if epoch != self.epoch {
            return;
        }
        let later = self.waiting.split_off(&(upto + 1));
        let kept = std::mem::replace(&mut self.waiting, later);
        if !ok {
            self.failed.extend(kept);
        }
    }

    /// Writes acks (and nacks) for every publish decided since the last flush; returns how
    /// many publishes were acked or nacked.
    pub fn flush(&mut self, out: &mut BytesMut, channel: u16) -> u64 {
        let before = self.confirmed;
        let ready = self.waiting.first().map_or(self.next - 1, |w| w - 1);
        while self.confirmed < ready {
            let failed = self
                .failed
                .range(self.confirmed + 1..=ready)
                .next()
                .copied();
            let upto = failed.map_or(ready, |f| f - 1);
            if upto > self.confirmed {
                encode::confirm(out, channel, true, upto, upto - self.confirmed > 1);
                self.confirmed = upto;
            }
            if let Some(f) = failed {
                encode::confirm(out, channel, false, f, false);
                self.failed.remove(&f);
                self.confirmed = f;
            }
        }
        self.confirmed - before
    }
}

#[derive(Debug)]
pub struct Channel {
    pub state: ChannelState,
    pub assembler: CommandAssembler,
    pub gate: Arc<ChannelGate>,
    /// basic.qos prefetch_count (global=false), applied to consumers started afterwards.
    pub consumer_prefetch: u32,
    pub consumers: HashMap<ShortString, ChannelConsumer>,
    /// In delivery-tag order, so multiple acks drain from the front.
    pub unacked: VecDeque<Unacked>,
    pub next_delivery_tag: u64,
    /// Set by confirm.select: publisher-confirm bookkeeping.
    pub confirms: Option<Confirms>,
    /// Set by tx.select: operations waiting for tx.commit.
    pub tx: Option<Vec<TxOp>>,
    /// The queue named by the last queue.declare, used when a method names the empty queue.
    pub last_queue: Option<ShortString>,
    /// The channel's consumer of `amq.rabbitmq.reply-to`, if it has one.
    pub reply_consumer: Option<ReplyConsumer>,
    /// Message counters, which the management API reads.
    pub stats: Arc<Stats>,
}

impl Channel {
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            stats,
            state: ChannelState::Open,
            assembler: CommandAssembler::new(),
            gate: Arc::new(ChannelGate::new()),
            consumer_prefetch: 0,
            consumers: HashMap::new(),
            unacked: VecDeque::new(),
            next_delivery_tag: 1,
            confirms: None,
            tx: None,
            last_queue: None,
            reply_consumer: None,
        }
    }

    pub fn next_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// Resolves the empty queue name to the channel's last declared queue, as the spec allows.
    pub fn queue_name(&self, name: &ShortString) -> AmqpResult<ShortString> {
        if !name.as_str().is_empty() {
            return Ok(name.clone());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// Takes the unacked deliveries an ack, nack or reject names, as RabbitMQ does: the tag
    /// must be outstanding, and `multiple` also takes every earlier one; tag 0 with `multiple`
    /// takes everything (possibly nothing).
    pub fn take_unacked(&mut self, tag: u64, multiple: bool) -> AmqpResult<Vec<Unacked>> {
        if multiple && tag == 0 {
            return Ok(self.unacked.drain(..).collect());
        }
        let at = self
            .unacked
            .binary_search_by_key(&tag, |u| u.tag)
            .map_err(|_| AmqpError::precondition_failed(format!("unknown delivery tag {tag}")))?;
        if multiple {
            return Ok(self.unacked.drain(..=at).collect());
        }
        Ok(self.unacked.remove(at).into_iter().collect())
    }
}

/// A server-generated consumer tag, `amq.ctag-` and 22 url-safe characters like RabbitMQ's.
pub(super) fn generated_consumer_tag() -> ShortString {
    let name = crate::broker::vhost::generated_queue_name();
    warren_amqp::short_string(&name.as_str().replacen("amq.gen-", "amq.ctag-", 1))
}

/// Requeues deliveries, one call per run of deliveries from the same queue.
pub(super) fn requeue_all(unacked: Vec<Unacked>) {
    let mut by_queue: Vec<(Arc<Queue>, Vec<crate::broker::message::QueueEntry>)> = Vec::new();
    for u in unacked {
        if let Some(c) = &u.consumer {
            c.settle(1);
        }
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, entries)) => entries.push(u.entry),
            None => by_queue.push((u.queue, vec![u.entry])),
        }
    }
    for (queue, entries) in by_queue {
        queue.requeue(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use bytes::Bytes;
    use warren_amqp::{BasicProperties, FieldTable};

    fn channel_with_tags(tags: &[u64]) -> Channel {
        let queue = Arc::new(Queue::new(
            "q".into(),
            "/".into(),
            false,
            None,
            false,
            FieldTable::default(),
        ));
        let message = Message::new(
            "".into(),
            "q".into(),
            &BasicProperties::default(),
            Bytes::new(),
            Bytes::new(),
        );
        let mut ch = Channel::new(Arc::default());
        for &tag in tags {
            let entry = QueueEntry::new(tag, message.clone());
            ch.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                entry,
                consumer: None,
                deadline: None,
            });
        }
        ch
    }

    fn confirms_written(c: &mut Confirms) -> Vec<(bool, u64, bool)> {
        let mut out = BytesMut::new();
        c.flush(&mut out, 1);
        let mut seen = Vec::new();
        while let Some(f) = warren_amqp::frame::decode(&mut out, 0).unwrap() {
            match warren_amqp::assembler::parse_method(&f.payload).unwrap() {
                warren_amqp::AMQPClass::Basic(warren_amqp::protocol::basic::AMQPMethod::Ack(a)) => {
                    seen.push((true, a.delivery_tag, a.multiple))
                }
                warren_amqp::AMQPClass::Basic(warren_amqp::protocol::basic::AMQPMethod::Nack(
                    n,
                )) => seen.push((false, n.delivery_tag, n.multiple)),
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    }

    #[test]
    fn confirms_coalesce_and_wait_for_the_disk_in_order() {
        let mut c = Confirms::new();
        for _ in 0..3 {
            c.take_seq();
        }
        assert_eq!(confirms_written(&mut c), [(true, 3, true)]);
        let (a, b) = (c.take_seq(), c.take_seq());
        c.waiting.insert(a);
        c.take_seq();
        assert!(
            confirms_written(&mut c).is_empty(),
            "4 waits for the disk, so 5 and 6 wait too"
        );
        c.waiting.remove(&a);
        c.failed.insert(b);
        assert_eq!(
            confirms_written(&mut c),
            [(true, 4, false), (false, 5, false), (true, 6, false)]
        );
        assert!(confirms_written(&mut c).is_empty());
    }

    fn tags(v: &[Unacked]) -> Vec<u64> {
        v.iter().map(|u| u.tag).collect()
    }

    #[test]
    fn single_ack_takes_exactly_its_tag() {
        let mut ch = channel_with_tags(&[1, 2, 3]);
        assert_eq!(tags(&ch.take_unacked(2, false).unwrap()), [2]);
        assert_eq!(
            ch.take_unacked(2, false).unwrap_err().text,
            "PRECONDITION_FAILED - unknown delivery tag 2"
        );
        assert_eq!(ch.unacked.len(), 2);
    }

    #[test]
    fn multiple_ack_takes_everything_up_to_the_tag() {
        let mut ch = channel_with_tags(&[1, 2, 4, 5, 6]);
        assert!(
            ch.take_unacked(3, true).is_err(),
            "the named tag must be outstanding"
        );
        assert_eq!(ch.unacked.len(), 5, "a refused ack takes nothing");
        assert_eq!(tags(&ch.take_unacked(4, true).unwrap()), [1, 2, 4]);
        assert_eq!(tags(&ch.take_unacked(0, true).unwrap()), [5, 6]);
        assert!(
            ch.take_unacked(0, true).unwrap().is_empty(),
            "tag 0 with multiple is fine on nothing"
        );
        assert!(ch.take_unacked(0, false).is_err());
    }
}
