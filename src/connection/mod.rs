//! One task per client socket: the handshake, then a loop that reads frames, runs methods,
//! takes deliveries from the connection's mailbox and writes everything through one ordered
//! output buffer. Channels are plain state owned by this task; errors raised anywhere below
//! come back here and become channel.close or connection.close in one place (`fail`).

mod basic;
mod channel;
mod exchange;
mod handshake;
mod queue;

use crate::broker::consumer::{ConnectionEvent, ConnectionId};
use crate::broker::queue::{ConsumerRemoval, Queue};
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use crate::error::{AmqpError, AmqpResult};
use bytes::BytesMut;
use channel::{Channel, ChannelState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warren_amqp::assembler::Assembled;
use warren_amqp::frame::{self, Frame, FrameKind};
use warren_amqp::protocol::{channel as ch, connection as conn};
use warren_amqp::{encode, reply, AMQPClass, Command};

/// Stop reading from the socket and the mailbox while this much output waits to be written:
/// a client that does not read cannot make the server buffer without bound.
const OUTPUT_HIGH_WATER: usize = 1 << 20;
/// Mailbox events handled per wakeup before output is written.
const EVENT_BATCH: usize = 256;
/// How long to wait for connection.close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves one client until it disconnects, fails, or the server shuts down.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let id = broker.next_connection_id();
    let mut io = Io {
        reader,
        writer,
        input: BytesMut::with_capacity(64 * 1024),
        output: BytesMut::with_capacity(64 * 1024),
    };
    let negotiated = match handshake::run(&mut io, &broker, peer).await {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => {
            debug!(%peer, "handshake ended: {e}");
            return;
        }
    };
    info!(%peer, user = %negotiated.user, vhost = %negotiated.vhost.name, "connection opened");
    let (mailbox, events) = mpsc::unbounded_channel();
    let mut connection = Connection {
        id,
        peer,
        broker,
        vhost: negotiated.vhost,
        io,
        frame_max: negotiated.frame_max,
        channel_max: negotiated.channel_max,
        heartbeat: negotiated.heartbeat,
        channels: HashMap::new(),
        mailbox,
        exclusive_queues: Vec::new(),
        routing_scratch: Vec::new(),
        routed: Vec::new(),
        closing: None,
        user: negotiated.user.clone(),
        cancel_notify: negotiated.cancel_notify,
    };
    let mut events = events;
    let end = connection.run(&mut events, shutdown).await;
    connection.cleanup(&mut events);
    match end {
        Ok(reason) => info!(%peer, "connection closed: {reason}"),
        Err(e) => info!(%peer, "connection closed: {e}"),
    }
}

/// The socket halves and their buffers.
pub(crate) struct Io {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    input: BytesMut,
    output: BytesMut,
}

impl Io {
    /// Reads until one complete frame is buffered (handshake and closing use this).
    async fn read_frame(&mut self, frame_max: u32) -> Result<Frame, ConnectionEnd> {
        loop {
            if let Some(f) = frame::decode(&mut self.input, frame_max)
                .map_err(|e| ConnectionEnd::Protocol(e.into()))?
            {
                return Ok(f);
            }
            if self.input.capacity() - self.input.len() < 4096 {
                self.input.reserve(64 * 1024);
            }
            if self.reader.read_buf(&mut self.input).await? == 0 {
                return Err(ConnectionEnd::Eof);
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        while !self.output.is_empty() {
            self.writer.write_buf(&mut self.output).await?;
        }
        Ok(())
    }

    fn send(&mut self, channel: u16, method: &AMQPClass) {
        encode::method(&mut self.output, channel, method);
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionEnd {
    #[error("client closed the socket")]
    Eof,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(AmqpError),
    #[error("missed heartbeats from client")]
    HeartbeatTimeout,
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("client sent a protocol header other than AMQP 0-9-1")]
    BadHeader,
}

pub(crate) struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    broker: Arc<Broker>,
    vhost: Arc<VHost>,
    io: Io,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    channels: HashMap<u16, Channel>,
    /// Given to this connection's consumers so queues can deliver to it.
    mailbox: mpsc::UnboundedSender<ConnectionEvent>,
    /// Exclusive queues die with the connection that declared them.
    exclusive_queues: Vec<Arc<Queue>>,
    /// Reused per publish so routing allocates nothing in the steady state.
    routing_scratch: Vec<crate::broker::exchange::Destination>,
    routed: Vec<Arc<Queue>>,
    /// The authenticated user, which publishes' user_id must match.
    user: String,
    /// Set once connection.close was sent: the reason, waiting for close-ok.
    closing: Option<AmqpError>,
    /// The client announced consumer_cancel_notify: it is told when its consumers are cancelled.
    cancel_notify: bool,
}

impl Connection {
    async fn run(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<ConnectionEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<String, ConnectionEnd> {
        let beat = Duration::from_secs(u64::from(self.heartbeat.max(1)));
        // The first heartbeat is due half an interval after the handshake, not at once.
        let mut ticker = tokio::time::interval_at(Instant::now() + beat / 2, beat / 2);
        let mut last_read = Instant::now();
        let mut wrote_since_tick = false;
        let store = self.broker.store.clone();
        loop {
            if self.closing.is_some() {
                return self.finish_close().await;
            }
            let room = self.io.output.len() < OUTPUT_HIGH_WATER;
            // While the store is behind, publishers stop being read (TCP pushes back on them).
            let congested = store.congested();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.closing = Some(AmqpError::new(reply::CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'"));
                    self.send_connection_close();
                }
                written = self.io.writer.write_buf(&mut self.io.output), if !self.io.output.is_empty() => {
                    written?;
                    wrote_since_tick = true;
                }
                _ = store.relieved(), if congested => {
                    last_read = Instant::now();
                }
                read = read_more(&mut self.io.reader, &mut self.io.input), if room && !congested => {
                    if read? == 0 {
                        return Err(ConnectionEnd::Eof);
                    }
                    last_read = Instant::now();
                    if let Some(reason) = self.on_input()? {
                        self.io.flush().await?;
                        return Ok(reason);
                    }
                }
                event = events.recv(), if room => {
                    // The connection holds a sender itself, so the mailbox never closes here.
                    if let Some(event) = event {
                        self.on_event(event);
                        for _ in 1..EVENT_BATCH {
                            match events.try_recv() {
                                Ok(event) => self.on_event(event),
                                Err(_) => break,
                            }
                        }
                        self.flush_confirms();
                    }
                }
                _ = ticker.tick(), if self.heartbeat > 0 => {
                    if last_read.elapsed() > beat * 2 && !congested {
                        warn!(peer = %self.peer, "missed heartbeats from client, timeout: {}s", self.heartbeat);
                        return Err(ConnectionEnd::HeartbeatTimeout);
                    }
                    if !wrote_since_tick {
                        encode::heartbeat(&mut self.io.output);
                    }
                    wrote_since_tick = false;
                }
            }
        }
    }

    /// Handles every complete frame in the input buffer. Returns a reason when the client
    /// closed the connection cleanly.
    fn on_input(&mut self) -> Result<Option<String>, ConnectionEnd> {
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

    fn on_frame(&mut self, frame: Frame) -> Option<String> {
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

    fn on_channel_zero(&mut self, frame: Frame) -> Option<String> {
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

    fn on_unopened_channel(&mut self, frame: Frame) {
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
                self.channels.insert(frame.channel, Channel::new());
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
    fn on_closing_channel(&mut self, channel_id: u16, method: AMQPClass) {
        match method {
            AMQPClass::Channel(ch::AMQPMethod::CloseOk(_)) => {
                self.channels.remove(&channel_id);
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

    fn on_command(&mut self, channel_id: u16, command: Command) -> AmqpResult<()> {
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
                self.channels.remove(&channel_id);
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

    fn channel(&mut self, id: u16) -> AmqpResult<&mut Channel> {
        self.channels
            .get_mut(&id)
            .ok_or_else(|| AmqpError::channel_error("expected 'channel.open'"))
    }

    /// Like RabbitMQ, clients may not pause deliveries with channel.flow (prefetch does that).
    fn channel_flow(&mut self, channel_id: u16, active: bool) -> AmqpResult<()> {
        if !active {
            return Err(AmqpError::not_implemented("active=false"));
        }
        self.io.send(
            channel_id,
            &AMQPClass::Channel(ch::AMQPMethod::FlowOk(ch::FlowOk { active })),
        );
        Ok(())
    }

    /// The single place errors become closes: soft errors close the channel, hard ones (and
    /// any error on channel 0) the connection.
    fn fail(&mut self, channel_id: u16, error: AmqpError) {
        if channel_id == 0 || error.closes_connection() {
            warn!(peer = %self.peer, "closing connection: {error}");
            self.closing = Some(error);
            self.send_connection_close();
            return;
        }
        debug!(peer = %self.peer, channel = channel_id, "closing channel: {error}");
        self.flush_confirms();
        self.close_channel(channel_id);
        if let Some(channel) = self.channels.get_mut(&channel_id) {
            // The assembler keeps its state: a refused publish's body frames are still coming.
            channel.state = ChannelState::Closing;
        }
        let close = ch::Close {
            reply_code: error.code,
            reply_text: error.text.as_str().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        };
        self.io.send(
            channel_id,
            &AMQPClass::Channel(ch::AMQPMethod::Close(close)),
        );
    }

    fn send_connection_close(&mut self) {
        if let Some(error) = &self.closing {
            let close = conn::Close {
                reply_code: error.code,
                reply_text: error.text.as_str().into(),
                class_id: error.class_id,
                method_id: error.method_id,
            };
            self.io
                .send(0, &AMQPClass::Connection(conn::AMQPMethod::Close(close)));
        }
    }

    /// After connection.close: write it, then wait (bounded) for close-ok, ignoring the rest.
    async fn finish_close(&mut self) -> Result<String, ConnectionEnd> {
        let reason = self
            .closing
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        self.io.flush().await?;
        let wait = async {
            loop {
                let frame = self.io.read_frame(0).await?;
                if frame.channel == 0 && frame.kind == FrameKind::Method {
                    if let Ok(AMQPClass::Connection(
                        conn::AMQPMethod::CloseOk(_) | conn::AMQPMethod::Close(_),
                    )) = warren_amqp::assembler::parse_method(&frame.payload)
                    {
                        return Ok::<(), ConnectionEnd>(());
                    }
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
        Ok(reason)
    }

    /// Releases a channel's consumers and requeues its unacked deliveries.
    fn close_channel(&mut self, channel_id: u16) {
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return;
        };
        let consumers: Vec<_> = channel.consumers.drain().map(|(_, c)| c).collect();
        let mut unacked: Vec<_> = channel.unacked.drain(..).collect();
        // Acks of an uncommitted transaction never happened: those deliveries go back too.
        for op in channel.tx.take().unwrap_or_default() {
            if let channel::TxOp::Settle { deliveries, .. } = op {
                unacked.extend(deliveries);
            }
        }
        unacked.sort_by_key(|u| u.tag);
        for c in consumers {
            self.release_consumer(channel_id, c.consumer.tag.as_str(), &c.queue);
        }
        requeue_all(unacked);
    }

    fn release_consumer(&mut self, channel_id: u16, tag: &str, queue: &Arc<Queue>) {
        if queue.remove_consumer(self.id, channel_id, tag)
            == ConsumerRemoval::RemovedLastOfAutoDelete
        {
            self.delete_queue_now(queue);
        }
    }

    /// Deletes a queue and tells every consumer it had, on any connection, via basic.cancel.
    /// The cancels travel through mailboxes, so on this connection they follow the reply to
    /// the method that deleted the queue, as in RabbitMQ.
    fn delete_queue_now(&mut self, queue: &Arc<Queue>) -> u32 {
        let (count, consumers) = self.vhost.remove_queue(queue);
        for c in consumers {
            let _ = c.mailbox.send(ConnectionEvent::ConsumerCancelled {
                channel: c.channel,
                consumer_tag: c.tag.clone(),
            });
        }
        count
    }

    /// Tells the client its consumer is gone, if it said it understands that
    /// (consumer_cancel_notify); otherwise the consumer silently stops, as in RabbitMQ.
    fn send_consumer_cancel(&mut self, channel: u16, tag: &warren_amqp::ShortString) {
        use warren_amqp::protocol::basic as b;
        if self.cancel_notify {
            let cancel = b::Cancel {
                consumer_tag: tag.clone(),
                nowait: true,
            };
            self.io
                .send(channel, &AMQPClass::Basic(b::AMQPMethod::Cancel(cancel)));
        }
    }

    /// Closes every channel (requeueing unacked deliveries) and deletes the connection's
    /// exclusive queues.
    fn release_all(&mut self) {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            self.close_channel(id);
        }
        self.channels.clear();
        for q in std::mem::take(&mut self.exclusive_queues) {
            if !q.is_deleted() {
                self.delete_queue_now(&q);
            }
        }
    }

    /// Everything the connection held goes back: consumers removed, deliveries requeued
    /// (including those still in the mailbox), exclusive queues deleted.
    fn cleanup(&mut self, events: &mut mpsc::UnboundedReceiver<ConnectionEvent>) {
        self.release_all();
        // No queue delivers to this connection any more; what it already sent goes back.
        events.close();
        while let Ok(event) = events.try_recv() {
            if let ConnectionEvent::Deliver {
                queue,
                consumer,
                entry,
            } = event
            {
                consumer.in_transit.give_back(1);
                consumer.settle(1);
                queue.restore(entry, !consumer.no_ack);
            }
        }
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

/// Reads whatever the socket has, growing the buffer in 64 KiB steps.
async fn read_more(reader: &mut OwnedReadHalf, input: &mut BytesMut) -> std::io::Result<usize> {
    if input.capacity() - input.len() < 4096 {
        input.reserve(64 * 1024);
    }
    reader.read_buf(input).await
}

/// Requeues deliveries, one call per run of deliveries from the same queue.
fn requeue_all(unacked: Vec<channel::Unacked>) {
    let mut by_queue: Vec<(Arc<Queue>, Vec<crate::broker::message::QueueEntry>)> = Vec::new();
    for u in unacked {
        if let Some(c) = &u.consumer {
            c.settle(1);
        }
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, entries)) => entries.push(u.entry),
            None => by_queue.push((u.queue, vec![u.entry])),
        }
    }
    for (queue, entries) in by_queue {
        queue.requeue(entries);
    }
}
