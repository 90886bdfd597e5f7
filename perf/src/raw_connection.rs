//! A bare AMQP 0-9-1 client connection: handshake, one channel, heartbeats and close, all on
//! the caller's tokio task. Connections mode holds thousands of these; the raw producers and
//! consumers (`--client raw`) publish and consume on them. lapin gives every connection an OS
//! thread and hands each frame across it, so with lapin the tool measured its own thread
//! switching rather than the broker. Frames go through warren-amqp, the codec the broker uses.

use crate::error::PerfError;
use bytes::BytesMut;
use lapin::uri::{AMQPScheme, AMQPUri};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{interval_at, timeout, Instant, Interval};
use warren_amqp::assembler::parse_method;
use warren_amqp::frame::{self, Frame, FrameKind};
use warren_amqp::protocol::{channel, connection as conn};
use warren_amqp::{encode, AMQPClass, AMQPValue, FieldTable, LongString, PROTOCOL_HEADER};

/// How long the broker gets to complete an open or a close: a broker that stops answering
/// becomes an error count instead of a run that never ends.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The channel each connection opens (connections mode: so that the broker's memory per
/// connection includes one, as with lapin), and the one producers and consumers use.
pub const CHANNEL: u16 = 1;
/// How much room a read leaves for the socket's bytes: a consumer at full speed takes many
/// deliveries per read instead of a few dozen bytes at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Frame size accepted before connection.tune says otherwise; connection.start is far smaller.
const PRE_TUNE_FRAME_MAX: u32 = 131_072;
/// The capabilities the common clients (Java, lapin, pika) announce.
const CAPABILITIES: [&str; 6] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    // Asks the broker for connection.close 403 on a wrong password rather than a bare EOF.
    "authentication_failure_close",
];

/// Reads --uri the way lapin does for the other modes (user, password and vhost
/// percent-decoded, "%2f" being "/"), refusing amqps://, which this client does not speak.
pub fn target(uri: &str) -> Result<AMQPUri, PerfError> {
    let invalid = |why: String| PerfError::Invalid(format!("--uri {uri}: {why}"));
    let target: AMQPUri = uri.parse().map_err(invalid)?;
    if target.scheme != AMQPScheme::AMQP {
        return Err(invalid("the raw client speaks plain amqp:// only".into()));
    }
    Ok(target)
}

/// One open connection with channel 1 open on it.
pub struct RawConnection {
    stream: TcpStream,
    /// Bytes read but not yet taken off as frames.
    input: BytesMut,
    /// Frames encoded but not yet written, so that tune-ok and open leave in one packet.
    output: BytesMut,
    /// The largest frame the broker may send, as tuned.
    frame_max: u32,
    /// Heartbeat interval in seconds as tuned (0: none).
    heartbeat: u16,
    /// When the broker was last heard from, to notice missed heartbeats.
    last_read: Instant,
}

/// What the broker sent that the caller has to look at: heartbeats, blocking notices and
/// closes never get this far.
#[derive(Debug)]
pub enum Incoming {
    Method(AMQPClass),
    /// A content header or body frame, left for the caller to assemble.
    Content(Frame),
}

impl RawConnection {
    /// Connects, negotiates and opens the vhost and one channel. `name` is the
    /// connection_name the broker's management view shows.
    pub async fn open(target: &AMQPUri, name: &str) -> Result<Self, PerfError> {
        timeout(REPLY_TIMEOUT, Self::handshake(target, name))
            .await
            .map_err(|_| PerfError::Timeout("opening the connection"))?
    }

    async fn handshake(target: &AMQPUri, name: &str) -> Result<Self, PerfError> {
        let stream =
            TcpStream::connect((target.authority.host.as_str(), target.authority.port)).await?;
        // Every handshake step is a small frame that waits for an answer: Nagle would hold
        // each one back for the previous one's ACK.
        stream.set_nodelay(true)?;
        let mut conn = RawConnection {
            stream,
            input: BytesMut::with_capacity(1024),
            output: BytesMut::with_capacity(512),
            frame_max: PRE_TUNE_FRAME_MAX,
            heartbeat: 0,
            last_read: Instant::now(),
        };
        conn.stream.write_all(PROTOCOL_HEADER).await?;
        conn.start(target, name).await?;
        conn.tune(&target.vhost).await?;
        conn.open_channel().await?;
        Ok(conn)
    }

    /// connection.start → start-ok with PLAIN credentials.
    async fn start(&mut self, target: &AMQPUri, name: &str) -> Result<(), PerfError> {
        let start = match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::Start(start)) => start,
            other => return Err(unexpected(&other, "connection.start")),
        };
        let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            return Err(PerfError::Unexpected(format!(
                "the broker offers {mechanisms:?}, not PLAIN"
            )));
        }
        self.queue(0, conn::AMQPMethod::StartOk(start_ok(target, name)));
        self.flush().await
    }

    /// connection.tune → tune-ok accepting the broker's limits and heartbeat, then open.
    async fn tune(&mut self, vhost: &str) -> Result<(), PerfError> {
        let tune = match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::Tune(tune)) => tune,
            other => return Err(unexpected(&other, "connection.tune")),
        };
        self.frame_max = tune.frame_max;
        self.heartbeat = tune.heartbeat;
        let tune_ok = conn::TuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: tune.heartbeat,
        };
        self.queue(0, conn::AMQPMethod::TuneOk(tune_ok));
        let open = conn::Open {
            virtual_host: vhost.into(),
        };
        self.queue(0, conn::AMQPMethod::Open(open));
        self.flush().await?;
        match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected(&other, "connection.open-ok")),
        }
    }

    async fn open_channel(&mut self) -> Result<(), PerfError> {
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        encode::method(&mut self.output, CHANNEL, &open);
        self.flush().await?;
        match self.next_method().await? {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected(&other, "channel.open-ok")),
        }
    }

    /// Holds the connection until `stop` says so (or its sender is gone): heartbeats at half
    /// the tuned interval, and an error if the broker closes the connection, sends anything
    /// but heartbeats, or stays silent for two intervals.
    pub async fn hold(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), PerfError> {
        let mut ticker = self.ticker();
        loop {
            // Every branch's future is cancel-safe: reads only append to `input`.
            tokio::select! {
                _ = stopped(stop) => return Ok(()),
                _ = tick(&mut ticker) => self.beat().await?,
                frame = self.read_frame() => {
                    if let Some(incoming) = self.on_frame(frame?).await? {
                        return Err(unexpected_incoming(&incoming, "nothing while holding"));
                    }
                }
            }
        }
    }

    /// Sends `method` on the channel and waits for the broker's answer to it (confirm.select,
    /// basic.qos, basic.consume), which the caller checks.
    pub async fn call(&mut self, method: AMQPClass) -> Result<AMQPClass, PerfError> {
        encode::method(&mut self.output, CHANNEL, &method);
        timeout(REPLY_TIMEOUT, async {
            self.flush().await?;
            self.next_method().await
        })
        .await
        .map_err(|_| PerfError::Timeout("waiting for the broker's answer to a method"))?
    }

    /// The largest frame either side may send, as tuned (0: no limit).
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// A ticker at half the tuned heartbeat interval, or none when heartbeats are off; each
    /// tick is the caller's cue to call `beat`.
    pub fn ticker(&self) -> Option<Interval> {
        let beat = Duration::from_secs(u64::from(self.heartbeat));
        (self.heartbeat > 0).then(|| interval_at(Instant::now() + beat / 2, beat / 2))
    }

    /// Sends a heartbeat, or fails if the broker has been silent for two intervals.
    pub async fn beat(&mut self) -> Result<(), PerfError> {
        let beat = Duration::from_secs(u64::from(self.heartbeat));
        if self.last_read.elapsed() > beat * 2 {
            return Err(PerfError::Unexpected(
                "missed heartbeats from the broker".into(),
            ));
        }
        encode::heartbeat(&mut self.output);
        self.flush().await
    }

    /// connection.close (200) and the broker's close-ok.
    pub async fn close(mut self) -> Result<(), PerfError> {
        let close = conn::Close {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        };
        self.queue(0, conn::AMQPMethod::Close(close));
        timeout(REPLY_TIMEOUT, async {
            self.flush().await?;
            loop {
                // The spec has the closing side discard anything else until close-ok.
                let frame = self.read_frame().await?;
                if let Some(Incoming::Method(AMQPClass::Connection(conn::AMQPMethod::CloseOk(_)))) =
                    self.on_frame(frame).await?
                {
                    return Ok(());
                }
            }
        })
        .await
        .map_err(|_| PerfError::Timeout("waiting for connection.close-ok"))?
    }

    /// The next method the caller has to look at; content is not expected.
    async fn next_method(&mut self) -> Result<AMQPClass, PerfError> {
        loop {
            let frame = self.read_frame().await?;
            match self.on_frame(frame).await? {
                Some(Incoming::Method(method)) => return Ok(method),
                Some(content) => return Err(unexpected_incoming(&content, "a method")),
                None => {}
            }
        }
    }

    /// The next frame for the caller among those already received, without waiting: what a
    /// producer looks at between publishes, so that a confirm or a close is seen even while
    /// it never has to wait.
    pub async fn recv_now(&mut self) -> Result<Option<Incoming>, PerfError> {
        loop {
            if let Some(frame) = frame::decode(&mut self.input, self.frame_max)? {
                if let Some(incoming) = self.on_frame(frame).await? {
                    return Ok(Some(incoming));
                }
                continue;
            }
            self.input.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => return Err(eof().into()),
                Ok(_) => self.last_read = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deals with what needs no caller: heartbeats, blocking notices, and closes from the
    /// broker, which are acknowledged as the spec asks and then become errors with the reply.
    /// Cancel-safe up to its first await, which only comes with a close.
    pub async fn on_frame(&mut self, frame: Frame) -> Result<Option<Incoming>, PerfError> {
        match frame.kind {
            FrameKind::Heartbeat => return Ok(None),
            FrameKind::Method => {}
            FrameKind::Header | FrameKind::Body => return Ok(Some(Incoming::Content(frame))),
        }
        match parse_method(&frame.payload)? {
            // A blocked producer's writes simply wait for the broker to read them again.
            AMQPClass::Connection(
                conn::AMQPMethod::Blocked(_) | conn::AMQPMethod::Unblocked(_),
            ) => Ok(None),
            AMQPClass::Connection(conn::AMQPMethod::Close(close)) => {
                self.queue(0, conn::AMQPMethod::CloseOk(conn::CloseOk {}));
                // The error to report is the broker's close, not a failure to acknowledge it.
                let _ = self.flush().await;
                Err(closed(
                    "connection",
                    close.reply_code,
                    close.reply_text.as_str(),
                ))
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(close)) => {
                let close_ok =
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                encode::method(&mut self.output, frame.channel, &close_ok);
                let _ = self.flush().await;
                Err(closed(
                    "channel",
                    close.reply_code,
                    close.reply_text.as_str(),
                ))
            }
            method => Ok(Some(Incoming::Method(method))),
        }
    }

    /// Takes the next frame off the socket. Cancel-safe: a cancelled read leaves its bytes in
    /// `input`, and nothing awaits once a frame is decoded.
    pub async fn read_frame(&mut self) -> Result<Frame, PerfError> {
        loop {
            if let Some(frame) = frame::decode(&mut self.input, self.frame_max)? {
                return Ok(frame);
            }
            self.input.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(eof().into());
            }
            self.last_read = Instant::now();
        }
    }

    /// Frames to send; `flush` writes them.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    fn queue(&mut self, channel: u16, method: conn::AMQPMethod) {
        encode::method(&mut self.output, channel, &AMQPClass::Connection(method));
    }

    /// Writes everything queued in one go (small frames leave at once: TCP_NODELAY is on).
    pub async fn flush(&mut self) -> Result<(), PerfError> {
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        Ok(())
    }
}

/// Resolves once `stop` is true or its sender is gone. The guard `wait_for` returns is dropped
/// here, as it must not be held across the select's other awaits.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The next heartbeat tick, or never when heartbeats are off.
pub async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn start_ok(target: &AMQPUri, name: &str) -> conn::StartOk {
    let user = &target.authority.userinfo;
    let mut capabilities = FieldTable::default();
    for capability in CAPABILITIES {
        capabilities.insert(capability.into(), AMQPValue::Boolean(true));
    }
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut properties = FieldTable::default();
    properties.insert("product".into(), text("warren-perf"));
    properties.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    properties.insert("platform".into(), text("Rust"));
    properties.insert("information".into(), text("warren-perf's own client"));
    properties.insert("connection_name".into(), text(name));
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    conn::StartOk {
        client_properties: properties,
        mechanism: "PLAIN".into(),
        // SASL PLAIN: authorization identity (empty), user, password.
        response: format!("\0{}\0{}", user.username, user.password).into(),
        locale: "en_US".into(),
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the broker closed the socket")
}

pub fn unexpected_incoming(got: &Incoming, wanted: &str) -> PerfError {
    match got {
        Incoming::Method(method) => unexpected(method, wanted),
        Incoming::Content(frame) => PerfError::Unexpected(format!(
            "expected {wanted}, got a {:?} frame on channel {}",
            frame.kind, frame.channel
        )),
    }
}

pub fn unexpected(got: &AMQPClass, wanted: &str) -> PerfError {
    let (class, method) = (got.get_amqp_class_id(), got.get_amqp_method_id());
    PerfError::Unexpected(format!("expected {wanted}, got method {class}.{method}"))
}

fn closed(scope: &'static str, code: u16, text: &str) -> PerfError {
    PerfError::Closed {
        scope,
        code,
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_gives_host_port_credentials_and_a_decoded_vhost() {
        let t = target("amqp://b%40b:p%3Aw@127.0.0.1:5697/%2f").unwrap();
        assert_eq!(
            (t.authority.host.as_str(), t.authority.port),
            ("127.0.0.1", 5697)
        );
        let user = &t.authority.userinfo;
        assert_eq!(
            (user.username.as_str(), user.password.as_str()),
            ("b@b", "p:w")
        );
        assert_eq!(t.vhost, "/");
        assert_eq!(target("amqp://h/my%2Fvhost").unwrap().vhost, "my/vhost");
        assert!(target("amqps://h/").is_err());
        assert!(target("not a uri").is_err());
    }

    #[test]
    fn start_ok_sends_plain_credentials_and_the_client_name() {
        let t = target("amqp://user:pass@h/").unwrap();
        let start_ok = start_ok(&t, "warren-perf connection 3");
        assert_eq!(start_ok.mechanism.as_str(), "PLAIN");
        assert_eq!(start_ok.response.as_bytes(), b"\0user\0pass");
        let props = start_ok.client_properties.inner();
        assert_eq!(
            props.get("connection_name"),
            Some(&AMQPValue::LongString("warren-perf connection 3".into()))
        );
        assert!(
            matches!(props.get("capabilities"), Some(AMQPValue::FieldTable(c))
            if c.inner().get("authentication_failure_close") == Some(&AMQPValue::Boolean(true)))
        );
    }
}
