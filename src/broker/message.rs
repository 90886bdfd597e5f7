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
}

impl Message {
    pub fn new(
        exchange: ShortString,
        routing_key: ShortString,
        properties: &BasicProperties,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Arc<Self> {
        Arc::new(Self {
            exchange,
            routing_key,
            raw_properties,
            body,
            persistent: *properties.delivery_mode() == Some(2),
            priority: properties.priority().unwrap_or(0),
        })
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
}
