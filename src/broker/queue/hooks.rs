//! What a queue hands to the broker's services: dead letters (to the dead-letter task) and
//! requests to be woken (to the timer task). The queue owns these types and the services
//! import them, so the queue never imports the modules that act on what it emits.

use crate::broker::memory::MemoryGauge;
use crate::broker::message::{Message, QueueEntry};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Queue;

/// The broker services a queue hands work to.
#[derive(Debug, Clone)]
pub struct QueueHooks {
    pub dead_letters: DeadLetterSink,
    pub timers: TimerSink,
    /// Memory held by queued messages, broker-wide.
    pub memory: Arc<MemoryGauge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    MaxLen,
    /// A quorum queue's message returned more often than its `x-delivery-limit`.
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message leaving `queue` for its dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    pub vhost: String,
    pub queue: String,
    pub exchange: String,
    /// `x-dead-letter-routing-key`; without it the message's own routing keys are used.
    pub routing_key: Option<String>,
    pub reason: Reason,
    pub message: Arc<Message>,
    /// At-least-once dead-lettering (quorum queues): the entry stays in the source queue, on
    /// disk, until the dead-letter target has taken the message; the router hands it back
    /// with `Queue::dead_lettered` then, and retries meanwhile.
    pub held: Option<QueueEntry>,
}

pub type DeadLetterSink = mpsc::UnboundedSender<DeadLetter>;

/// A queue's request to be woken at `at`.
#[derive(Debug)]
pub struct Wake {
    pub at: Instant,
    pub queue: Weak<Queue>,
}

pub type TimerSink = mpsc::UnboundedSender<Wake>;
