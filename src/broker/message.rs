//! A published message as the queues hold it: shared by every queue it was routed to.

use bytes::Bytes;
use std::sync::Arc;
use warren_amqp::{BasicProperties, ShortString};

#[derive(Debug)]
pub struct Message {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    /// The properties exactly as published, forwarded verbatim in every delivery.
    pub raw_properties: Bytes,
    pub body: Bytes,
    /// delivery_mode 2: stored on disk when routed to a durable queue.
    pub persistent: bool,
    pub priority: u8,
    /// The id of the stored copy durable queues share; 0 when the message is not stored.
    pub store_id: u64,
}

impl Message {
    pub fn new(
        exchange: ShortString,
        routing_key: ShortString,
        properties: &BasicProperties,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Arc<Self> {
        Arc::new(Self::from_parts(
            exchange,
            routing_key,
            properties,
            raw_properties,
            body,
        ))
    }

    pub fn from_parts(
        exchange: ShortString,
        routing_key: ShortString,
        properties: &BasicProperties,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Self {
        Self {
            exchange,
            routing_key,
            raw_properties,
            body,
            persistent: *properties.delivery_mode() == Some(2),
            priority: properties.priority().unwrap_or(0),
            store_id: 0,
        }
    }

    /// Marks the message as stored under `id`.
    pub fn with_store_id(mut self, id: u64) -> Self {
        self.store_id = id;
        self
    }

    /// Body bytes, as counted by x-max-length-bytes and the management API.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

/// A message's place in one queue. `seq` orders the queue, so a requeued message goes back to
/// where it was.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// The priority lane the entry sits in (0 in queues without priorities).
    pub lane: u8,
    /// The id of the message record this entry points to on disk; 0 when it has none.
    pub disk: u64,
}

impl QueueEntry {
    pub fn new(seq: u64, message: Arc<Message>) -> Self {
        Self {
            seq,
            message,
            redelivered: false,
            lane: 0,
            disk: 0,
        }
    }
}
