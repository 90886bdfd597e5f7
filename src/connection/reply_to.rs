//! Direct reply-to on a channel: consuming from `amq.rabbitmq.reply-to`, cancelling that
//! consumer, the channel's reply name for what it publishes, declaring reply names, and
//! writing replies out. The broker-wide registry is `broker::reply_to`.

use super::channel::{ChannelState, ReplyConsumer};
use super::Connection;
use crate::broker::message::Message;
use crate::broker::reply_to::{self, PSEUDO_QUEUE};
use crate::error::{AmqpError, AmqpResult};
use std::sync::Arc;
use warren_amqp::protocol::{basic as b, queue as q};
use warren_amqp::{encode, AMQPClass, ShortString};

impl Connection {
    /// basic.consume from `amq.rabbitmq.reply-to`, with RabbitMQ's checks.
    pub(super) fn consume_replies(&mut self, channel_id: u16, m: b::Consume) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        if channel.consumers.contains_key(&m.consumer_tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            )));
        }
        if !m.no_ack {
            // No queue would take back a reply the client rejected.
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if channel.reply_consumer.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let tag = if m.consumer_tag.as_str().is_empty() {
            super::channel::generated_consumer_tag()
        } else {
            m.consumer_tag
        };
        let token = self
            .broker
            .reply_to
            .register(self.mailbox.clone(), channel_id);
        self.channel(channel_id)?.reply_consumer = Some(ReplyConsumer {
            tag: tag.clone(),
            token,
        });
        let ok = b::ConsumeOk { consumer_tag: tag };
        self.reply(
            channel_id,
            m.nowait,
            AMQPClass::Basic(b::AMQPMethod::ConsumeOk(ok)),
        );
        Ok(())
    }

    /// Cancels the channel's reply consumer if `tag` is its tag; false if it is not.
    pub(super) fn cancel_replies(&mut self, channel_id: u16, tag: &ShortString) -> bool {
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return false;
        };
        match channel.reply_consumer.take() {
            Some(r) if &r.tag == tag => {
                self.broker.reply_to.unregister(&r.token);
                true
            }
            other => {
                channel.reply_consumer = other;
                false
            }
        }
    }

    /// The name that replaces `amq.rabbitmq.reply-to` in the reply_to of what this channel
    /// publishes.
    pub(super) fn reply_name(&mut self, channel_id: u16) -> AmqpResult<String> {
        match &self.channel(channel_id)?.reply_consumer {
            Some(r) => Ok(reply_to::reply_name(&r.token)),
            None => Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            )),
        }
    }

    /// queue.declare of the pseudo-queue or of a reply name, passive or not: it succeeds
    /// (0 messages, 1 consumer) while there is a consumer behind the name, and nothing is
    /// ever created.
    pub(super) fn declare_reply_queue(&mut self, channel_id: u16, m: q::Declare) -> AmqpResult<()> {
        let name = m.queue;
        if !self.broker.reply_to.exists(name.as_str()) {
            return Err(AmqpError::not_found(format!(
                "no queue '{name}' in vhost '{}'",
                self.vhost.name
            )));
        }
        self.channel(channel_id)?.last_queue = Some(name.clone());
        let ok = q::DeclareOk {
            queue: name,
            message_count: 0,
            consumer_count: 1,
        };
        self.reply(
            channel_id,
            m.nowait,
            AMQPClass::Queue(q::AMQPMethod::DeclareOk(ok)),
        );
        Ok(())
    }

    /// Writes a reply out to the channel's reply consumer, unless that consumer (or its
    /// channel) went away while the reply was on its way: then it is dropped.
    pub(super) fn deliver_reply(&mut self, channel_id: u16, token: &str, message: Arc<Message>) {
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return;
        };
        let tag = match &channel.reply_consumer {
            Some(r) if channel.state == ChannelState::Open && &*r.token == token => r.tag.clone(),
            _ => return,
        };
        let delivery_tag = channel.next_tag();
        let out = &mut self.io.output;
        encode::deliver(
            out,
            channel_id,
            tag.as_str(),
            delivery_tag,
            false,
            message.exchange.as_str(),
            message.routing_key.as_str(),
        );
        encode::content(
            out,
            channel_id,
            &message.raw_properties,
            &message.body,
            self.frame_max,
        );
    }

    /// Hands a message published to the default exchange to the reply consumers its routing
    /// keys name (each once).
    pub(super) fn send_replies(
        &self,
        routing_key: &str,
        extra_keys: &[String],
        message: &Arc<Message>,
    ) {
        let keys = std::iter::once(routing_key).chain(extra_keys.iter().map(String::as_str));
        for (i, key) in keys.clone().enumerate() {
            if reply_to::is_reply_name(key) && !keys.clone().take(i).any(|k| k == key) {
                self.broker.reply_to.deliver(key, message);
            }
        }
    }
}

/// Whether queue.declare names the pseudo-queue or something under it.
pub(super) fn is_reply_queue(name: &str) -> bool {
    name.starts_with(PSEUDO_QUEUE)
}
