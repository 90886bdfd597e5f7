//! One task per client socket: the handshake, then a loop that reads frames, runs methods,
//! takes deliveries from the connection's mailbox and writes everything through one ordered
//! output buffer. Channels are plain state owned by this task; errors raised anywhere below
//! come back here and become channel.close or connection.close in one place (`fail`).

mod access;
mod ack_timeout;
mod basic;
mod blocking;
mod channel;
mod close;
mod describe;
mod dispatch;
mod events;
mod exchange;
mod handshake;
mod queue;
mod reply_to;
mod rewrite;
mod tx;

use crate::broker::connections::{ConnectionDetails, ConnectionInfo};
use crate::broker::queue::Queue;
use crate::broker::queue::{ConnectionEvent, ConnectionId};
use crate::broker::stats::Stat;
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use crate::error::AmqpError;
use crate::store::writer::ConfirmSink;
use bytes::BytesMut;
use channel::Channel;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warren_amqp::frame::{self, Frame};
use warren_amqp::{encode, reply, AMQPClass};

/// Stop reading from the socket and the mailbox while this much output waits to be written:
/// a client that does not read cannot make the server buffer without bound.
const OUTPUT_HIGH_WATER: usize = 1 << 20;
/// Mailbox events handled per wakeup before output is written.
const EVENT_BATCH: usize = 256;
/// How long to wait for connection.close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves one plain TCP client until it disconnects, fails, or the server shuts down.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let (reader, writer) = stream.into_split();
    let io = Io::new(Box::new(reader), Box::new(writer), false);
    serve_io(io, peer, local, None, broker, shutdown).await
}

/// Serves one AMQPS client: the TLS handshake (within `handshake_timeout`), then AMQP over it.
pub async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let limit = Duration::from_secs(broker.config.handshake_timeout);
    let stream = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // A plaintext client on the TLS port ends here too.
            warn!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            warn!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let session = crate::tls::Session::of(stream.get_ref().1);
    let (reader, writer) = tokio::io::split(stream);
    let io = Io::new(Box::new(reader), Box::new(writer), true);
    serve_io(io, peer, local, Some(session), broker, shutdown).await
}

/// Serves one client over any byte stream: the same connection as over TCP, with `peer` and
/// `local` as its addresses. What tests and the fuzzer drive through an in-memory pipe.
pub async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let io = Io::new(Box::new(reader), Box::new(writer), true);
    serve_io(io, peer, local, None, broker, shutdown).await
}

/// The AMQP connection on an established transport.
async fn serve_io(
    mut io: Io,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<crate::tls::Session>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let id = broker.next_connection_id();
    let socket = handshake::Socket {
        id,
        peer,
        local,
        tls: tls.as_ref(),
    };
    let negotiated = match handshake::run(&mut io, &broker, socket).await {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => {
            debug!(%peer, "handshake ended: {e}");
            return;
        }
    };
    info!(%peer, user = %negotiated.user, vhost = %negotiated.vhost.name, "connection opened");
    let (mailbox, events) = mpsc::unbounded_channel();
    let details = Arc::new(ConnectionDetails {
        local,
        client_properties: negotiated.client_properties,
        connected_at: crate::broker::message::now_ms(),
        mechanism: negotiated.mechanism,
        frame_max: negotiated.frame_max,
        channel_max: negotiated.channel_max,
        heartbeat: negotiated.heartbeat,
        tls,
        stats: Default::default(),
        channels: Default::default(),
    });
    let info = ConnectionInfo::new(
        &negotiated.user,
        &negotiated.vhost.name,
        peer,
        details.clone(),
        mailbox.clone(),
    );
    broker.connections.register(id, info);
    let alarms = broker.alarms.subscribe();
    let blocking = blocking::Blocking::new(alarms, negotiated.blocked_notify);
    let mut connection = Connection {
        id,
        peer,
        details,
        broker,
        vhost: negotiated.vhost,
        io,
        frame_max: negotiated.frame_max,
        channel_max: negotiated.channel_max,
        heartbeat: negotiated.heartbeat,
        channels: HashMap::new(),
        confirm_sink: Arc::new(mailbox.clone()),
        mailbox,
        exclusive_queues: Vec::new(),
        routing_scratch: Vec::new(),
        routed: Vec::new(),
        closing: None,
        user: negotiated.user.clone(),
        cancel_notify: negotiated.cancel_notify,
        blocking,
        flow: None,
        grants: access::Grants::new(
            Some(negotiated.permission),
            negotiated.topics,
            negotiated.generation,
        ),
        ack_timer: ack_timeout::AckTimer::new(),
        now: Instant::now(),
    };
    connection.emit_connection_created();
    let mut events = events;
    let end = connection.run(&mut events, shutdown.clone()).await;
    connection.broker.connections.unregister(id);
    // Its counts stay in the vhost's totals.
    let totals = connection.details.totals();
    connection.vhost.stats.counters.absorb(&totals);
    connection.cleanup(&mut events);
    connection.emit_connection_closed();
    match end {
        Ok(Closed::ByClient(reason)) => {
            info!(%peer, "connection closed: {reason}");
            let linger = Duration::from_secs(connection.broker.config.close_linger);
            connection.io.linger(linger, shutdown).await;
        }
        Ok(Closed::ByServer(reason)) => info!(%peer, "connection closed: {reason}"),
        Err(e) => info!(%peer, "connection closed: {e}"),
    }
}

/// How a connection ended by the close handshake.
enum Closed {
    /// The client sent connection.close and has its close-ok: the client closes the socket.
    ByClient(String),
    /// The server sent connection.close and had its close-ok (or gave up waiting).
    ByServer(String),
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The transport's halves (a TCP socket's, or a TLS stream's) and their buffers.
pub(crate) struct Io {
    reader: Reader,
    writer: Writer,
    input: BytesMut,
    output: BytesMut,
    /// The writer keeps bytes of its own (TLS records) until flushed.
    buffers: bool,
    /// Bytes were written to a buffering writer since its last flush.
    unflushed: bool,
}

impl Io {
    fn new(reader: Reader, writer: Writer, buffers: bool) -> Self {
        Self {
            reader,
            writer,
            input: BytesMut::with_capacity(64 * 1024),
            output: BytesMut::with_capacity(64 * 1024),
            buffers,
            unflushed: false,
        }
    }

    /// Whether the loop has anything to write or flush.
    fn wants_write(&self) -> bool {
        !self.output.is_empty() || self.unflushed
    }

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

    /// After close-ok to a client's connection.close, the client is the one to close the socket
    /// (the spec's close-ok lets it "release resources for the connection and close the
    /// socket"). Closing first races the client: its reader sees EOF before it has shut down
    /// and reports a lost connection, and bytes it wrote after its close (publishes buffered
    /// behind it) turn the server's close into a reset that discards the close-ok. So, as
    /// RabbitMQ does, the socket stays fully open and what arrives is read and dropped until
    /// the client closes, `limit` passes, or the server shuts down.
    async fn linger(&mut self, limit: Duration, mut shutdown: watch::Receiver<bool>) {
        // Nothing more is parsed or sent: the buffers go back now, not when the client closes.
        self.input = BytesMut::new();
        self.output = BytesMut::new();
        let drain = async {
            let mut scratch = [0u8; 8192];
            while let Ok(n) = self.reader.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(limit, drain) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        while !self.output.is_empty() {
            self.writer.write_buf(&mut self.output).await?;
        }
        self.writer.flush().await?;
        self.unflushed = false;
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
    /// What the management API reads of this connection, its statistics among them.
    details: Arc<ConnectionDetails>,
    broker: Arc<Broker>,
    vhost: Arc<VHost>,
    io: Io,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    channels: HashMap<u16, Channel>,
    /// Given to this connection's consumers so queues can deliver to it.
    mailbox: mpsc::UnboundedSender<ConnectionEvent>,
    /// The mailbox as the store sees it: told when persistent publishes are on disk.
    confirm_sink: Arc<dyn ConfirmSink>,
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
    /// Paused while a resource alarm is raised, once the connection publishes.
    blocking: blocking::Blocking,
    /// A queue this connection published to is backlogged: reading pauses until it drains.
    flow: Option<Arc<Queue>>,
    /// The user's permissions in the vhost, as the last check read them.
    grants: access::Grants,
    /// Fires when an unacked delivery may have outlived its consumer's timeout.
    ack_timer: ack_timeout::AckTimer,
    /// The time as of this wakeup of the loop: deliveries' deadlines count from it, so a
    /// batch of deliveries reads the clock once.
    now: Instant,
}

impl Connection {
    async fn run(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<ConnectionEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Closed, ConnectionEnd> {
        let beat = Duration::from_secs(u64::from(self.heartbeat.max(1)));
        // The first heartbeat is due half an interval after the handshake, not at once.
        let mut ticker = tokio::time::interval_at(Instant::now() + beat / 2, beat / 2);
        let mut last_read = Instant::now();
        let mut wrote_since_tick = false;
        let store = self.broker.store.clone();
        // What the client sent right behind connection.open (a pipelined channel.open, say)
        // is already buffered: it is handled now, not when more bytes arrive.
        if !self.io.input.is_empty() {
            self.now = Instant::now();
            if let Some(reason) = self.on_input()? {
                self.io.flush().await?;
                return Ok(Closed::ByClient(reason));
            }
        }
        loop {
            if self.closing.is_some() {
                return self.finish_close().await.map(Closed::ByServer);
            }
            // Alarms arrive as mailbox events (ConnectionEvent::AlarmsChanged), so watching them
            // costs the loop nothing.
            if let Some(told) = self.blocking.update() {
                self.io.send(0, &told);
                last_read = Instant::now();
            }
            let blocked = self.blocking.blocked();
            let room = self.io.output.len() < OUTPUT_HIGH_WATER;
            let flow = self.flow.clone();
            // While the store is behind, publishers stop being read (TCP pushes back on them).
            let congested = store.congested();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.closing = Some(AmqpError::new(reply::CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'"));
                    self.send_connection_close();
                }
                written = write_some(&mut self.io.writer, &mut self.io.output, self.io.buffers, &mut self.io.unflushed), if self.io.wants_write() => {
                    self.details.stats.counters.add(Stat::SendOct, written? as u64);
                    wrote_since_tick = true;
                }
                _ = store.relieved(), if congested => {
                    last_read = Instant::now();
                }
                _ = wait_for_flow(flow.as_deref()), if flow.is_some() => {
                    self.flow = None;
                    last_read = Instant::now();
                }
                read = read_more(&mut self.io.reader, &mut self.io.input), if room && !congested && !blocked && flow.is_none() => {
                    let read = read?;
                    if read == 0 {
                        return Err(ConnectionEnd::Eof);
                    }
                    self.details.stats.counters.add(Stat::RecvOct, read as u64);
                    last_read = Instant::now();
                    self.now = last_read;
                    if let Some(reason) = self.on_input()? {
                        self.io.flush().await?;
                        return Ok(Closed::ByClient(reason));
                    }
                }
                event = events.recv(), if room => {
                    // The connection holds a sender itself, so the mailbox never closes here.
                    if let Some(event) = event {
                        self.now = Instant::now();
                        self.on_event(event);
                        for _ in 1..EVENT_BATCH {
                            if self.closing.is_some() {
                                // Nothing goes out after connection.close; what is left in the
                                // mailbox goes back to its queues at cleanup.
                                break;
                            }
                            match events.try_recv() {
                                Ok(event) => self.on_event(event),
                                Err(_) => break,
                            }
                        }
                        self.flush_confirms();
                    }
                }
                _ = self.ack_timer.fired(), if self.ack_timer.is_armed() => {
                    self.on_ack_timer();
                }
                _ = ticker.tick(), if self.heartbeat > 0 => {
                    if last_read.elapsed() > beat * 2 && !congested && !blocked {
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
}

/// Waits for a backlogged queue to drain (or for the longest pause).
async fn wait_for_flow(queue: Option<&Queue>) {
    if let Some(queue) = queue {
        queue.flow.drained().await;
    }
}

/// Writes some of the output, or flushes a buffering writer (`buffers`) once the output is
/// out: a TLS stream holds records back until flushed.
async fn write_some(
    writer: &mut Writer,
    output: &mut BytesMut,
    buffers: bool,
    unflushed: &mut bool,
) -> std::io::Result<usize> {
    if output.is_empty() {
        writer.flush().await?;
        *unflushed = false;
        return Ok(0);
    }
    let written = writer.write_buf(output).await?;
    *unflushed = buffers;
    Ok(written)
}

/// Reads whatever the socket has, growing the buffer in 64 KiB steps.
async fn read_more(reader: &mut Reader, input: &mut BytesMut) -> std::io::Result<usize> {
    if input.capacity() - input.len() < 4096 {
        input.reserve(64 * 1024);
    }
    reader.read_buf(input).await
}
