//! A published message as Warren keeps it: routing information, the property bytes exactly as
//! published, and the body. Queues share one `Arc<Message>`; the store writes and reads it
//! back. It sits at the store's layer because the store keeps it, and knows no queue.

use bytes::Bytes;
use std::sync::Arc;
use warren_amqp::{BasicProperties, ShortString};

#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    /// The properties exactly as published, forwarded verbatim in every delivery.
    pub raw_properties: Bytes,
    pub body: Bytes,
    /// delivery_mode 2: stored on disk when routed to a durable queue.
    pub persistent: bool,
    pub priority: u8,
    /// The `expiration` property in milliseconds, when it is a valid one.
    pub expiration: Option<u64>,
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
            expiration: properties
                .expiration()
                .as_ref()
                .and_then(|e| e.as_str().parse().ok()),
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
