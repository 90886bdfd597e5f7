//! exchange.declare, delete, bind and unbind.

use super::access::Resource;
use super::Connection;
use crate::broker::metadata::permissions::Access;
use crate::broker::vhost::ExchangeSpec;
use crate::error::AmqpResult;
use warren_amqp::protocol::exchange as x;
use warren_amqp::AMQPClass;

impl Connection {
    pub(super) fn exchange_declare(&mut self, channel: u16, m: x::Declare) -> AmqpResult<()> {
        if !m.passive {
            self.check(Access::Configure, Resource::Exchange, m.exchange.as_str())?;
        }
        self.vhost.declare_exchange(
            ExchangeSpec {
                name: m.exchange.to_string(),
                kind: m.kind.to_string(),
                passive: m.passive,
                durable: m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments: m.arguments,
            },
            &self.user,
        )?;
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Exchange(x::AMQPMethod::DeclareOk(x::DeclareOk {})),
        );
        Ok(())
    }

    pub(super) fn exchange_delete(&mut self, channel: u16, m: x::Delete) -> AmqpResult<()> {
        self.check(Access::Configure, Resource::Exchange, m.exchange.as_str())?;
        self.vhost
            .delete_exchange(m.exchange.as_str(), m.if_unused, &self.user)?;
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Exchange(x::AMQPMethod::DeleteOk(x::DeleteOk {})),
        );
        Ok(())
    }

    pub(super) fn exchange_bind(&mut self, channel: u16, m: x::Bind) -> AmqpResult<()> {
        self.check_exchange_binding(m.destination.as_str(), m.source.as_str())?;
        self.vhost.bind_exchange(
            m.destination.as_str(),
            m.source.as_str(),
            m.routing_key.as_str(),
            m.arguments,
            &self.user,
        )?;
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Exchange(x::AMQPMethod::BindOk(x::BindOk {})),
        );
        Ok(())
    }

    pub(super) fn exchange_unbind(&mut self, channel: u16, m: x::Unbind) -> AmqpResult<()> {
        self.check_exchange_binding(m.destination.as_str(), m.source.as_str())?;
        self.vhost.unbind_exchange(
            m.destination.as_str(),
            m.source.as_str(),
            m.routing_key.as_str(),
            &m.arguments,
            &self.user,
        )?;
        self.reply(
            channel,
            m.nowait,
            AMQPClass::Exchange(x::AMQPMethod::UnbindOk(x::UnbindOk {})),
        );
        Ok(())
    }

    /// An exchange-to-exchange binding needs write on its destination and read on its source.
    fn check_exchange_binding(&mut self, destination: &str, source: &str) -> AmqpResult<()> {
        self.check(Access::Write, Resource::Exchange, destination)?;
        self.check(Access::Read, Resource::Exchange, source)
    }

    /// Sends a method's -ok reply unless the client asked for nowait.
    pub(super) fn reply(&mut self, channel: u16, nowait: bool, ok: AMQPClass) {
        if !nowait {
            self.io.send(channel, &ok);
        }
    }
}
