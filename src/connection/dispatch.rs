//! From frames to methods: the per-frame checks RabbitMQ makes (channel 0, unopened and
//! closing channels), and the one `match` that sends each method to its handler.

use super::channel::{Channel, ChannelState};
use super::{Connection, ConnectionEnd};
use crate::broker::metadata::limit;
use crate::error::{AmqpError, AmqpResult};
use tracing::debug;
use warren_amqp::assembler::Assembled;
use warren_amqp::frame::{self, Frame, FrameKind};
use warren_amqp::protocol::{channel as ch, connection as conn};
use warren_amqp::{reply, AMQPClass, Command};

impl Connection {
    /// Handles every complete frame in the input buffer. Returns a reason when the client
    /// closed the connection cleanly.
    pub(super) fn on_input(&mut self) -> Result<Option<String>, ConnectionEnd> {
        loop {
            let frame = match frame::decode(&mut self.io.input, self.frame_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.fail(0, e.into());
                    return Ok(None);
                }
            };
            if let Some(reason) = self.on_frame(frame) {
                return Ok(Some(reason));
            }
            if self.closing.is_some() {
                return Ok(None);
            }
        }
        self.flush_confirms();
        Ok(None)
    }

    pub(super) fn on_frame(&mut self, frame: Frame) -> Option<String> {
        let channel_id = frame.channel;
        if frame.kind == FrameKind::Heartbeat {
            if !frame.payload.is_empty() {
                self.fail(0, warren_amqp::ProtocolError::UnknownFrameType(8).into());
            } else if channel_id != 0 {
                let e = AmqpError::new(
                    reply::UNEXPECTED_FRAME,
                    format!("type 8 (heartbeat) on channel {channel_id}"),
                );
                self.fail(0, e);
            }
            return None;
        }
        if channel_id == 0 {
            return self.on_channel_zero(frame);
        }
        let max_body = self.broker.config.max_message_size;
        if let Some(size) = qos_prefetch_size(&frame) {
            // amq-protocol drops this field, so it is read here: RabbitMQ refuses byte limits.
            self.fail(
                0,
                AmqpError::not_implemented(format!("prefetch_size!=0 ({size})")).during(60, 10),
            );
            return None;
        }
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            self.on_unopened_channel(frame);
            return None;
        };
        // Frames still assemble on a closing channel (a stray frame is still an error), but
        // only channel.close and close-ok are acted on.
        let closing = channel.state == ChannelState::Closing;
        let assembled = channel.assembler.push(frame, max_body);
        match assembled {
            Ok(Assembled::Incomplete) => {}
            Ok(Assembled::Command(command)) if closing => {
                self.on_closing_channel(channel_id, command.method)
            }
            Ok(Assembled::TooLarge { .. }) if closing => {}
            Ok(Assembled::Command(command)) => {
                let (class_id, method_id) = (
                    command.method.get_amqp_class_id(),
                    command.method.get_amqp_method_id(),
                );
                if let Err(e) = self.on_command(channel_id, *command) {
                    self.fail(channel_id, e.during(class_id, method_id));
                }
            }
            Ok(Assembled::TooLarge { size }) => {
                let max = max_body;
                self.fail(
                    channel_id,
                    AmqpError::precondition_failed(format!(
                        "message size {size} is larger than configured max size {max}"
                    ))
                    .during(60, 40),
                );
            }
            Err(e) => self.fail(0, e.into()),
        }
        None
    }

    pub(super) fn on_channel_zero(&mut self, frame: Frame) -> Option<String> {
        if frame.kind != FrameKind::Method {
            self.fail(
                0,
                AmqpError::new(
                    reply::UNEXPECTED_FRAME,
                    format!("{:?} frame on channel 0", frame.kind),
                ),
            );
            return None;
        }
        let method = match warren_amqp::assembler::parse_method(&frame.payload) {
            Ok(m) => m,
            Err(e) if frame.payload.starts_with(&[0, 10, 0, 50]) => {
                // RabbitMQ's answer to a connection.close it cannot read.
                debug!(peer = %self.peer, "undecodable connection.close: {e}");
                self.fail(
                    0,
                    AmqpError {
                        text: "INTERNAL_ERROR".into(),
                        ..AmqpError::internal("")
                    },
                );
                return None;
            }
            Err(e) => {
                self.fail(0, e.into());
                return None;
            }
        };
        match method {
            AMQPClass::Connection(conn::AMQPMethod::Close(close)) => {
                // Requeue what the client held and drop its exclusive queues before confirming
                // the close, as RabbitMQ does.
                self.flush_confirms();
                self.release_all();
                self.io.send(
                    0,
                    &AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
                );
                Some(format!(
                    "client closed it ({} {})",
                    close.reply_code, close.reply_text
                ))
            }
            AMQPClass::Connection(conn::AMQPMethod::UpdateSecret(_)) => {
                self.io.send(
                    0,
                    &AMQPClass::Connection(conn::AMQPMethod::UpdateSecretOk(
                        conn::UpdateSecretOk {},
                    )),
                );
                None
            }
            AMQPClass::Connection(
                conn::AMQPMethod::Blocked(_) | conn::AMQPMethod::Unblocked(_),
            ) => None,
            other => {
                let (c, m) = (other.get_amqp_class_id(), other.get_amqp_method_id());
                let e = AmqpError::channel_error("unexpected method in connection state running");
                self.fail(0, e.during(c, m));
                None
            }
        }
    }

    pub(super) fn on_unopened_channel(&mut self, frame: Frame) {
        let method = match frame.kind {
            FrameKind::Method => warren_amqp::assembler::parse_method(&frame.payload),
            _ => Err(warren_amqp::ProtocolError::unexpected(
                "expected method frame, got non method frame instead",
                (0, 0),
            )),
        };
        match method {
            Ok(AMQPClass::Channel(ch::AMQPMethod::Open(_))) => {
                // Like RabbitMQ, channel_max limits how many channels are open, not their ids.
                if self.channels.len() >= usize::from(self.channel_max) {
                    let e = AmqpError::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        self.channels.len(),
                        self.channel_max
                    ));
                    self.fail(0, e);
                    return;
                }
                let user_max = self
                    .broker
                    .metadata
                    .user(&self.user)
                    .and_then(|u| limit(&u.limits, "max-channels"));
                if let Err(max) = self
                    .broker
                    .connections
                    .open_channel(&self.user, self.id, user_max)
                {
                    let e = AmqpError::not_allowed(format!(
                        "number of channels opened for user '{}' has reached the maximum \
                         allowed user limit of ({max})",
                        self.user
                    ));
                    self.fail(0, e);
                    return;
                }
                let stats = self.details.open_channel(frame.channel);
                self.channels.insert(frame.channel, Channel::new(stats));
                self.emit_channel_created(frame.channel);
                self.io.send(
                    frame.channel,
                    &AMQPClass::Channel(ch::AMQPMethod::OpenOk(ch::OpenOk {})),
                );
            }
            Ok(other) => {
                let (c, m) = (other.get_amqp_class_id(), other.get_amqp_method_id());
                self.fail(
                    0,
                    AmqpError::channel_error("expected 'channel.open'").during(c, m),
                );
            }
            Err(e) => self.fail(0, e.into()),
        }
    }

    /// After the server closed a channel, only channel.close and close-ok mean anything.
    pub(super) fn on_closing_channel(&mut self, channel_id: u16, method: AMQPClass) {
        match method {
            AMQPClass::Channel(ch::AMQPMethod::CloseOk(_)) => {
                self.forget_channel(channel_id);
            }
            AMQPClass::Channel(ch::AMQPMethod::Close(_)) => {
                self.io.send(
                    channel_id,
                    &AMQPClass::Channel(ch::AMQPMethod::CloseOk(ch::CloseOk {})),
                );
            }
            AMQPClass::Channel(ch::AMQPMethod::Open(_)) => {
                self.fail(
                    0,
                    AmqpError::channel_error("second 'channel.open' seen").during(20, 10),
                );
            }
            _ => {}
        }
    }

    pub(super) fn on_command(&mut self, channel_id: u16, command: Command) -> AmqpResult<()> {
        use warren_amqp::protocol::{basic as b, confirm as cf, exchange as x, queue as q, tx};
        let Command { method, content } = command;
        match method {
            AMQPClass::Channel(ch::AMQPMethod::Open(_)) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            AMQPClass::Channel(ch::AMQPMethod::Close(_)) => {
                // Confirms for publishes before the close go out before close-ok.
                self.flush_confirms();
                self.close_channel(channel_id);
                self.forget_channel(channel_id);
                self.io.send(
                    channel_id,
                    &AMQPClass::Channel(ch::AMQPMethod::CloseOk(ch::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(ch::AMQPMethod::Flow(flow)) => {
                self.channel_flow(channel_id, flow.active)
            }
            AMQPClass::Exchange(x::AMQPMethod::Declare(m)) => self.exchange_declare(channel_id, m),
            AMQPClass::Exchange(x::AMQPMethod::Delete(m)) => self.exchange_delete(channel_id, m),
            AMQPClass::Exchange(x::AMQPMethod::Bind(m)) => self.exchange_bind(channel_id, m),
            AMQPClass::Exchange(x::AMQPMethod::Unbind(m)) => self.exchange_unbind(channel_id, m),
            AMQPClass::Queue(q::AMQPMethod::Declare(m)) => self.queue_declare(channel_id, m),
            AMQPClass::Queue(q::AMQPMethod::Bind(m)) => self.queue_bind(channel_id, m),
            AMQPClass::Queue(q::AMQPMethod::Unbind(m)) => self.queue_unbind(channel_id, m),
            AMQPClass::Queue(q::AMQPMethod::Purge(m)) => self.queue_purge(channel_id, m),
            AMQPClass::Queue(q::AMQPMethod::Delete(m)) => self.queue_delete(channel_id, m),
            AMQPClass::Basic(b::AMQPMethod::Publish(m)) => match content {
                Some(content) => self.basic_publish(channel_id, m, content),
                None => Err(AmqpError::internal("publish without content")),
            },
            AMQPClass::Basic(b::AMQPMethod::Consume(m)) => self.basic_consume(channel_id, m),
            AMQPClass::Basic(b::AMQPMethod::Cancel(m)) => self.basic_cancel(channel_id, m),
            AMQPClass::Basic(b::AMQPMethod::Get(m)) => self.basic_get(channel_id, m),
            AMQPClass::Basic(b::AMQPMethod::Ack(m)) => {
                self.basic_ack(channel_id, m.delivery_tag, m.multiple)
            }
            AMQPClass::Basic(b::AMQPMethod::Nack(m)) => {
                self.basic_reject(channel_id, m.delivery_tag, m.multiple, m.requeue)
            }
            AMQPClass::Basic(b::AMQPMethod::Reject(m)) => {
                self.basic_reject(channel_id, m.delivery_tag, false, m.requeue)
            }
            AMQPClass::Basic(b::AMQPMethod::Qos(m)) => self.basic_qos(channel_id, m),
            AMQPClass::Basic(b::AMQPMethod::Recover(m)) => {
                self.basic_recover(channel_id, m.requeue, true)
            }
            AMQPClass::Basic(b::AMQPMethod::RecoverAsync(m)) => {
                self.basic_recover(channel_id, m.requeue, false)
            }
            AMQPClass::Confirm(cf::AMQPMethod::Select(m)) => {
                self.confirm_select(channel_id, m.nowait)
            }
            AMQPClass::Tx(tx::AMQPMethod::Select(_)) => self.tx_select(channel_id),
            AMQPClass::Tx(tx::AMQPMethod::Commit(_)) => self.tx_commit(channel_id),
            AMQPClass::Tx(tx::AMQPMethod::Rollback(_)) => self.tx_rollback(channel_id),
            AMQPClass::Access(warren_amqp::protocol::access::AMQPMethod::Request(_)) => {
                let ok = warren_amqp::protocol::access::RequestOk {};
                self.io.send(
                    channel_id,
                    &AMQPClass::Access(warren_amqp::protocol::access::AMQPMethod::RequestOk(ok)),
                );
                Ok(())
            }
            // Server-only methods, connection methods off channel 0, an unsolicited close-ok.
            _ => Err(AmqpError::command_invalid("unimplemented method")),
        }
    }

    pub(super) fn channel(&mut self, id: u16) -> AmqpResult<&mut Channel> {
        self.channels
            .get_mut(&id)
            .ok_or_else(|| AmqpError::channel_error("expected 'channel.open'"))
    }

    /// Like RabbitMQ, clients may not pause deliveries with channel.flow (prefetch does that).
    pub(super) fn channel_flow(&mut self, channel_id: u16, active: bool) -> AmqpResult<()> {
        if !active {
            return Err(AmqpError::not_implemented("active=false"));
        }
        self.io.send(
            channel_id,
            &AMQPClass::Channel(ch::AMQPMethod::FlowOk(ch::FlowOk { active })),
        );
        Ok(())
    }
}

/// A basic.qos frame's prefetch_size, when it is not zero.
fn qos_prefetch_size(frame: &Frame) -> Option<u32> {
    let p = &frame.payload;
    if frame.kind != FrameKind::Method || p.len() < 8 || p[..4] != [0, 60, 0, 10] {
        return None;
    }
    Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]])).filter(|size| *size != 0)
}
