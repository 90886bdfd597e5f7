//! Consumers as queues see them, and the credit that bounds what a queue may push to one.
//!
//! A queue delivers by sending events into the consumer's connection mailbox; the connection
//! task owns delivery tags and unacked state. Credit (prefetch, and a window of deliveries not
//! yet written to the socket) is shared between the two through atomics, so neither side
//! locks the other. When a queue skips a consumer for lack of credit it marks it `starved`;
//! whoever gives credit back sees the mark and asks the queue to dispatch again.

use super::Queue;
use crate::broker::message::{Message, QueueEntry};
use crate::store::writer::ConfirmSink;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use warren_amqp::ShortString;

pub type ConnectionId = u64;

/// Deliveries a consumer may have in its connection's mailbox, not yet written to the socket.
/// Bounds memory for no-ack consumers and consumers without a prefetch limit.
pub const TRANSIT_WINDOW: u32 = 1000;

/// What queues (and the broker) tell a connection task.
#[derive(Debug)]
pub enum ConnectionEvent {
    Deliver {
        queue: Arc<Queue>,
        consumer: Arc<Consumer>,
        entry: QueueEntry,
    },
    /// The queue went away: the client is sent basic.cancel.
    ConsumerCancelled {
        channel: u16,
        consumer_tag: ShortString,
    },
    /// The persistent copies of every publish up to `upto` in confirm mode `epoch` of the
    /// channel are safe: on disk, or consumed and acked (or the store failed: `ok` false).
    Persisted {
        channel: u16,
        epoch: u64,
        upto: u64,
        ok: bool,
    },
    /// A transaction's persistent messages reached the disk: commit-ok may go.
    TxDurable { channel: u16 },
    /// The broker closes the connection (its vhost or user was deleted): connection.close
    /// with this error.
    Close(crate::error::AmqpError),
    /// A memory or disk alarm was raised or cleared (`broker::alarms`): the connection
    /// blocks or unblocks.
    AlarmsChanged,
    /// The management API asks for the connection's channels.
    Describe(tokio::sync::oneshot::Sender<Vec<ChannelView>>),
    /// A direct reply-to reply for the channel's reply consumer registered under `token`.
    Reply {
        channel: u16,
        token: Arc<str>,
        message: Arc<Message>,
    },
}

/// One channel as the management API shows it.
#[derive(Debug, Clone, Default)]
pub struct ChannelView {
    pub number: u16,
    pub prefetch_count: u32,
    pub global_prefetch_count: u32,
    pub consumer_count: usize,
    pub unacked: usize,
    pub unconfirmed: usize,
    pub uncommitted: usize,
    pub confirm: bool,
    pub transactional: bool,
}

pub type Mailbox = mpsc::UnboundedSender<ConnectionEvent>;

/// The store tells a connection through its mailbox that its persistent publishes are safe.
impl ConfirmSink for Mailbox {
    fn persisted(&self, channel: u16, epoch: u64, upto: u64, ok: bool) {
        let _ = self.send(ConnectionEvent::Persisted {
            channel,
            epoch,
            upto,
            ok,
        });
    }
}

/// A count against an optional limit (0 = unlimited), changed by both sides without locks.
#[derive(Debug, Default)]
pub struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Self {
            limit: AtomicU32::new(limit),
            used: AtomicU32::new(0),
        }
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    pub fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (limit == 0 || used < limit).then_some(used + 1)
            })
            .is_ok()
    }

    pub fn give_back(&self, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// The limit (0: none).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }
}

/// State of a channel that its consumers share: the global (per-channel) qos.
#[derive(Debug, Default)]
pub struct ChannelGate {
    pub prefetch: Credit,
}

impl ChannelGate {
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Debug)]
pub struct Consumer {
    pub tag: ShortString,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`: higher-priority consumers get messages while they have credit.
    pub priority: i64,
    pub mailbox: Mailbox,
    /// basic.qos prefetch_count (global=false) in force when the consumer started.
    pub prefetch: Credit,
    pub gate: Arc<ChannelGate>,
    /// Deliveries sent to the mailbox and not yet written out.
    pub in_transit: Credit,
    /// Set when a queue passed this consumer over for lack of credit.
    pub starved: AtomicBool,
    /// Set while its channel closes: it takes nothing more.
    pub closing: AtomicBool,
    /// How long it may hold a delivery unacknowledged before its channel is closed (its
    /// own argument, else its queue's, else the broker's `consumer_timeout`); None: forever.
    pub ack_timeout: Option<std::time::Duration>,
}

impl Consumer {
    /// Takes the credit for one delivery, or marks the consumer starved.
    pub fn try_reserve(&self) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return false;
        }
        if !self.in_transit.try_take() {
            self.starved.store(true, Ordering::Release);
            return false;
        }
        if !self.no_ack {
            if !self.prefetch.try_take() {
                self.in_transit.give_back(1);
                self.starved.store(true, Ordering::Release);
                return false;
            }
            if !self.gate.prefetch.try_take() {
                self.prefetch.give_back(1);
                self.in_transit.give_back(1);
                self.starved.store(true, Ordering::Release);
                return false;
            }
        }
        true
    }

    /// Gives back the credit of `n` acknowledged (or requeued) deliveries.
    pub fn settle(&self, n: u32) {
        if !self.no_ack {
            self.prefetch.give_back(n);
            self.gate.prefetch.give_back(n);
        }
    }

    /// True once if a queue skipped this consumer since the last call.
    pub fn take_starved(&self) -> bool {
        self.starved.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(no_ack: bool, prefetch: u32, gate: Arc<ChannelGate>) -> Consumer {
        let (tx, _rx) = mpsc::unbounded_channel();
        Consumer {
            ack_timeout: None,
            tag: "c".into(),
            channel: 1,
            connection: 1,
            no_ack,
            exclusive: false,
            priority: 0,
            mailbox: tx,
            prefetch: Credit::new(prefetch),
            gate,
            in_transit: Credit::new(TRANSIT_WINDOW),
            starved: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    #[test]
    fn prefetch_limits_unacked_deliveries() {
        let c = consumer(false, 2, Arc::new(ChannelGate::new()));
        assert!(c.try_reserve());
        assert!(c.try_reserve());
        assert!(!c.try_reserve());
        assert!(c.take_starved());
        assert!(!c.take_starved());
        c.settle(1);
        assert!(c.try_reserve());
    }

    #[test]
    fn channel_prefetch_is_shared_and_no_ack_ignores_it() {
        let gate = Arc::new(ChannelGate::new());
        gate.prefetch.set_limit(1);
        let a = consumer(false, 0, gate.clone());
        let b = consumer(false, 0, gate.clone());
        assert!(a.try_reserve());
        assert!(!b.try_reserve());
        assert_eq!(
            b.prefetch.used(),
            0,
            "a refused reservation gives its own credit back"
        );
        let n = consumer(true, 0, gate);
        assert!(n.try_reserve());
    }
}
