//! Publishing from outside an AMQP connection (the management API's `publish`): the same
//! routing as basic.publish — CC and BCC keys, delayed exchanges, the store for persistent
//! messages on durable queues — without a channel, so no mandatory return and no confirm
//! beyond what the caller awaits.

use super::delayed;
use super::delivery::{enqueue, Enqueued};
use super::exchange::{Exchange, RoutingInput};
use super::message::Message;
use super::sender_selected;
use super::vhost::VHost;
use super::Broker;
use crate::error::{AmqpError, AmqpResult};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use warren_amqp::{encode, BasicProperties, ShortString};

/// What a publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// At least one queue took it (or a delayed exchange holds it).
    pub routed: bool,
    /// It went to the store: it is durable once the store is next flushed.
    pub stored: bool,
}

impl Broker {
    pub fn publish(
        &self,
        vhost: &VHost,
        exchange: &Arc<Exchange>,
        routing_key: &str,
        properties: BasicProperties,
        body: Bytes,
    ) -> AmqpResult<Published> {
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, vhost.name
            )));
        }
        let routing_key = ShortString::try_new(routing_key)
            .map_err(|_| AmqpError::precondition_failed("routing key is longer than 255 bytes"))?;
        let (extra_keys, kept) = match properties.headers() {
            Some(h) => (
                sender_selected::extra_keys(h)?,
                sender_selected::without_bcc(h),
            ),
            None => (Vec::new(), None),
        };
        let delay = match exchange.is_delayed() {
            true => delayed::delay_of(properties.headers().as_ref()),
            false => None,
        };
        // A held message keeps BCC until it is released and routed.
        let properties = match (kept, delay) {
            (Some(headers), None) => properties.with_headers(headers),
            _ => properties,
        };
        let mut raw = BytesMut::new();
        encode::properties(&mut raw, &properties);
        let message = Message::from_parts(
            exchange.name.clone(),
            routing_key.clone(),
            &properties,
            raw.freeze(),
            body,
        );
        if let Some(delay) = delay {
            let stored = delayed::hold(&self.store, &self.held, &vhost.name, message, delay);
            return Ok(Published {
                routed: true,
                stored,
            });
        }
        let input = RoutingInput {
            routing_key: routing_key.as_str(),
            headers: properties.headers().as_ref(),
            properties: Some(&properties),
        };
        let (mut scratch, mut queues) = (Vec::new(), Vec::new());
        vhost.route_keys(exchange, &input, &extra_keys, &mut scratch, &mut queues);
        let routed = !queues.is_empty();
        exchange.count_publish(routed);
        let Enqueued { stored, .. } = enqueue(&self.store, message, &mut queues);
        Ok(Published { routed, stored })
    }

    /// Publishes what the broker itself emits (trace copies, events) to one of its internal
    /// exchanges: routed without being traced, never returned, confirmed or refused.
    pub(super) fn publish_internal(
        &self,
        vhost: &VHost,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        body: Bytes,
    ) {
        let Ok(x) = vhost.exchange(exchange) else {
            return;
        };
        let key = warren_amqp::short_string(routing_key);
        let input = RoutingInput {
            routing_key: key.as_str(),
            headers: None,
            properties: None,
        };
        let (mut scratch, mut queues) = (Vec::new(), Vec::new());
        vhost.route(&x, &input, &mut scratch, &mut queues);
        if queues.is_empty() {
            return;
        }
        let mut raw = BytesMut::new();
        encode::properties(&mut raw, &properties);
        let message = Message::from_parts(x.name.clone(), key, &properties, raw.freeze(), body);
        enqueue(&self.store, message, &mut queues);
    }
}
