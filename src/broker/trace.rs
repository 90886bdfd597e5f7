//! Firehose tracing, as RabbitMQ's `amq.rabbitmq.trace`: while a vhost's `tracing` flag is
//! on, every publish is copied to that exchange with the key `publish.<exchange>` and every
//! delivery with `deliver.<queue>`, the original body in the copy and what happened in its
//! headers. Copies are enqueued directly, so they are never traced themselves; with the flag
//! off, a publish or delivery pays one relaxed atomic load.

use super::message::Message;
use super::queue::Queue;
use super::vhost::VHost;
use super::Broker;
use bytes::Bytes;
use std::sync::Arc;
use warren_amqp::{AMQPValue, BasicProperties, FieldArray, FieldTable, ShortString};

/// The trace exchange of every vhost: topic, durable, internal.
pub use super::vhost::TRACE_EXCHANGE as EXCHANGE;

/// Who published or received what a copy reports.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub user: &'a str,
    /// The connection's name (`peer -> local`).
    pub connection: &'a str,
    pub channel: u16,
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn texts<'a>(items: impl Iterator<Item = &'a str>) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(items.map(text).collect::<Vec<_>>()))
}

/// A message's properties as the table trace copies carry (RabbitMQ's field names).
pub fn properties_table(p: &BasicProperties) -> FieldTable {
    let mut t = FieldTable::default();
    let mut put = |name: &str, v: Option<AMQPValue>| {
        if let Some(v) = v {
            t.insert(name.into(), v);
        }
    };
    let short = |v: &Option<ShortString>| v.as_ref().map(|s| text(s.as_str()));
    put("content_type", short(p.content_type()));
    put("content_encoding", short(p.content_encoding()));
    put("headers", p.headers().clone().map(AMQPValue::FieldTable));
    put(
        "delivery_mode",
        p.delivery_mode().map(AMQPValue::ShortShortUInt),
    );
    put("priority", p.priority().map(AMQPValue::ShortShortUInt));
    put("correlation_id", short(p.correlation_id()));
    put("reply_to", short(p.reply_to()));
    put("expiration", short(p.expiration()));
    put("message_id", short(p.message_id()));
    put("timestamp", p.timestamp().map(AMQPValue::Timestamp));
    put("type", short(p.kind()));
    put("user_id", short(p.user_id()));
    put("app_id", short(p.app_id()));
    put("cluster_id", short(p.cluster_id()));
    t
}

impl Broker {
    /// The headers every copy has.
    fn trace_headers(&self, vhost: &VHost, origin: &Origin<'_>, exchange: &str) -> FieldTable {
        let mut h = FieldTable::default();
        h.insert("exchange_name".into(), text(exchange));
        h.insert("vhost".into(), text(&vhost.name));
        h.insert("user".into(), text(origin.user));
        h.insert("node".into(), text(self.node_name()));
        h.insert("connection".into(), text(origin.connection));
        h.insert(
            "channel".into(),
            AMQPValue::LongInt(i32::from(origin.channel)),
        );
        h
    }

    /// Copies a publish: its routing keys (the key, then CC, then BCC), its properties and
    /// the queues it reached.
    #[allow(clippy::too_many_arguments)]
    pub fn trace_publish(
        &self,
        vhost: &VHost,
        origin: &Origin<'_>,
        exchange: &str,
        routing_key: &str,
        extra_keys: &[String],
        properties: &BasicProperties,
        body: &Bytes,
        routed: &[Arc<Queue>],
    ) {
        let mut h = self.trace_headers(vhost, origin, exchange);
        let keys = std::iter::once(routing_key).chain(extra_keys.iter().map(String::as_str));
        h.insert("routing_keys".into(), texts(keys));
        h.insert(
            "properties".into(),
            AMQPValue::FieldTable(properties_table(properties)),
        );
        let queues = routed.iter().map(|q| q.name.as_str());
        h.insert("routed_queues".into(), texts(queues));
        self.send_trace(vhost, &format!("publish.{exchange}"), h, body.clone());
    }

    /// Copies a delivery (basic.deliver or basic.get-ok) of `message` from `queue`.
    pub fn trace_deliver(
        &self,
        vhost: &VHost,
        origin: &Origin<'_>,
        queue: &str,
        message: &Message,
        redelivered: bool,
    ) {
        if message.exchange.as_str() == EXCHANGE {
            // A trace copy is never traced again.
            return;
        }
        let properties =
            warren_amqp::protocol::basic::parse_properties(&message.raw_properties[..])
                .map(|(_, p)| p)
                .unwrap_or_default();
        let mut h = self.trace_headers(vhost, origin, message.exchange.as_str());
        h.insert(
            "routing_keys".into(),
            texts(std::iter::once(message.routing_key.as_str())),
        );
        h.insert(
            "properties".into(),
            AMQPValue::FieldTable(properties_table(&properties)),
        );
        h.insert(
            "redelivered".into(),
            AMQPValue::LongInt(i32::from(redelivered)),
        );
        self.send_trace(vhost, &format!("deliver.{queue}"), h, message.body.clone());
    }

    fn send_trace(&self, vhost: &VHost, key: &str, headers: FieldTable, body: Bytes) {
        let properties = BasicProperties::default().with_headers(headers);
        self.publish_internal(vhost, EXCHANGE, key, properties, body);
    }
}
