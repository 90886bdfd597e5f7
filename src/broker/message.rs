//! A published message as the queues hold it: shared by every queue it was routed to.

use bytes::Bytes;
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// The id of the stored copy; 0 when the message is not on disk.
    pub store_id: u64,
    /// Durable queues holding the stored copy; the last one to let go removes it.
    durable_refs: AtomicU32,
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
            durable_refs: AtomicU32::new(0),
        }
    }

    /// Marks the message as stored under `id`.
    pub fn with_store_id(mut self, id: u64) -> Self {
        self.store_id = id;
        self
    }

    pub fn is_stored(&self) -> bool {
        self.store_id != 0
    }

    /// Counts one more durable queue holding the stored copy.
    pub fn retain_stored(&self) {
        self.durable_refs.fetch_add(1, Ordering::AcqRel);
    }

    pub fn stored_refs(&self) -> u32 {
        self.durable_refs.load(Ordering::Acquire)
    }

    /// One durable queue let go; true when it was the last, so the stored copy can go.
    pub fn release_stored(&self) -> bool {
        self.durable_refs.fetch_sub(1, Ordering::AcqRel) == 1
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
