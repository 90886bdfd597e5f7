//! A channel's state, owned by its connection task: the frame assembler, consumers, unacked
//! deliveries, publisher-confirm and transaction state.

use crate::broker::consumer::{ChannelGate, Consumer};
use crate::broker::message::QueueEntry;
use crate::broker::queue::Queue;
use crate::error::{AmqpError, AmqpResult};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use warren_amqp::{CommandAssembler, ShortString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// The server sent channel.close and discards everything until channel.close-ok.
    Closing,
}

/// A delivery the client has not acknowledged yet.
#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub entry: QueueEntry,
    /// None for basic.get deliveries, which hold no consumer credit.
    pub consumer: Option<Arc<Consumer>>,
}

/// A consumer as its channel knows it.
#[derive(Debug)]
pub struct ChannelConsumer {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
}

/// A publish or acknowledgement held back by an open transaction.
#[derive(Debug)]
pub enum TxOp {
    Publish(Box<super::basic::Publication>),
    /// Deliveries acked (or rejected, with their requeue flag) inside the transaction: taken
    /// off the unacked list at once, settled at commit, put back at rollback.
    Settle {
        deliveries: Vec<Unacked>,
        requeue: Option<bool>,
    },
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
    /// Set by confirm.select: the sequence number of the next publish.
    pub confirm_next: Option<u64>,
    /// Confirms decided but not yet written (first and last sequence number), coalesced into
    /// one multiple ack per batch of input.
    pub pending_ack: Option<(u64, u64)>,
    /// Set by tx.select: operations waiting for tx.commit.
    pub tx: Option<Vec<TxOp>>,
    /// The queue named by the last queue.declare, used when a method names the empty queue.
    pub last_queue: Option<ShortString>,
}

impl Channel {
    pub fn new() -> Self {
        Self {
            state: ChannelState::Open,
            assembler: CommandAssembler::new(),
            gate: Arc::new(ChannelGate::new()),
            consumer_prefetch: 0,
            consumers: HashMap::new(),
            unacked: VecDeque::new(),
            next_delivery_tag: 1,
            confirm_next: None,
            pending_ack: None,
            tx: None,
            last_queue: None,
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
        let mut ch = Channel::new();
        for &tag in tags {
            let entry = QueueEntry {
                seq: tag,
                message: message.clone(),
                redelivered: false,
            };
            ch.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                entry,
                consumer: None,
            });
        }
        ch
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
