//! queue.declare, bind, unbind, purge and delete.

use super::access::Resource;
use super::Connection;
use crate::broker::metadata::permissions::Access;
use crate::broker::vhost::{generated_queue_name, QueueSpec};
use crate::error::AmqpResult;
use warren_amqp::protocol::queue as q;
use warren_amqp::AMQPClass;

impl Connection {
    pub(super) fn queue_declare(&mut self, channel: u16, m: q::Declare) -> AmqpResult<()> {
        if super::reply_to::is_reply_queue(m.queue.as_str()) {
            return self.declare_reply_queue(channel, m);
        }
        let name = match (m.queue.as_str().is_empty(), m.passive) {
            (false, _) => m.queue.clone(),
            (true, false) => generated_queue_name(),
            // A passive declare of '' names the channel's last queue, as other methods do.
            (true, true) => self
                .channel(channel)?
                .last_queue
                .clone()
                .unwrap_or_default(),
        };
        if !m.passive {
            self.check(Access::Configure, Resource::Queue, name.as_str())?;
        }
        let queue = self.vhost.declare_queue(
            QueueSpec {
                name: name.to_string(),
                passive: m.passive,
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
                arguments: m.arguments,
                server_named: m.queue.as_str().is_empty() && !m.passive,
            },
            self.id,
            &self.user,
        )?;
        if queue.exclusive_owner == Some(self.id)
            && !self
                .exclusive_queues
                .iter()
                .any(|q| std::sync::Arc::ptr_eq(q, &queue))
        {
            self.exclusive_queues.push(queue.clone());
        }
        self.channel(channel)?.last_queue = Some(name.clone());
        let ok = q::DeclareOk {
            queue: name,
            message_count: queue.message_count(),
            consumer_count: queue.consumer_count(),
        };
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Queue(q::AMQPMethod::DeclareOk(ok)),
        );
        Ok(())
    }

    pub(super) fn queue_bind(&mut self, channel: u16, m: q::Bind) -> AmqpResult<()> {
        let name = self.channel(channel)?.queue_name(&m.queue)?;
        self.check_queue_binding(name.as_str(), m.exchange.as_str(), m.routing_key.as_str())?;
        self.vhost.bind_queue(
            name.as_str(),
            m.exchange.as_str(),
            m.routing_key.as_str(),
            m.arguments,
            self.id,
            &self.user,
        )?;
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})),
        );
        Ok(())
    }

    pub(super) fn queue_unbind(&mut self, channel: u16, m: q::Unbind) -> AmqpResult<()> {
        let name = self.channel(channel)?.queue_name(&m.queue)?;
        self.check_queue_binding(name.as_str(), m.exchange.as_str(), m.routing_key.as_str())?;
        self.vhost.unbind_queue(
            name.as_str(),
            m.exchange.as_str(),
            m.routing_key.as_str(),
            &m.arguments,
            &self.user,
        )?;
        self.reply(
            channel,
            false,
            AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) fn queue_purge(&mut self, channel: u16, m: q::Purge) -> AmqpResult<()> {
        let name = self.channel(channel)?.queue_name(&m.queue)?;
        self.check(Access::Read, Resource::Queue, name.as_str())?;
        let queue = self.vhost.queue_for(name.as_str(), self.id)?;
        let message_count = queue.purge();
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk { message_count })),
        );
        Ok(())
    }

    pub(super) fn queue_delete(&mut self, channel: u16, m: q::Delete) -> AmqpResult<()> {
        let name = self.channel(channel)?.queue_name(&m.queue)?;
        self.check(Access::Configure, Resource::Queue, name.as_str())?;
        let message_count = match self.vhost.queue(name.as_str()) {
            Ok(queue) => {
                queue.check_access(self.id)?;
                // Checks first, through the vhost, then the deletion that notifies consumers.
                self.vhost
                    .delete_queue_checks(&queue, m.if_unused, m.if_empty)?;
                self.delete_queue_now(&queue, &self.user)
            }
            Err(_) => 0,
        };
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Queue(q::AMQPMethod::DeleteOk(q::DeleteOk { message_count })),
        );
        Ok(())
    }

    /// Binding a queue needs write on the queue and read on the exchange, and on a topic
    /// exchange with topic permissions, read on the binding key.
    fn check_queue_binding(&mut self, queue: &str, exchange: &str, key: &str) -> AmqpResult<()> {
        self.check(Access::Write, Resource::Queue, queue)?;
        self.check(Access::Read, Resource::Exchange, exchange)?;
        if let Ok(x) = self.vhost.exchange(exchange) {
            self.check_topic(Access::Read, &x, key)?;
        }
        Ok(())
    }
}
