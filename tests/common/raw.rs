//! A hand-driven AMQP 0-9-1 client on a plain socket, for what client libraries will not do:
//! stay silent past a heartbeat, open a channel above the negotiated channel_max. Frames are
//! encoded and parsed with amq-protocol, not with Warren's own codec, so the two check each other.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawClient {
    stream: TcpStream,
    /// Bytes read from the socket that do not yet form a whole frame.
    input: Vec<u8>,
}

impl RawClient {
    /// Connects and completes the handshake as guest/guest on vhost "/", answering the server's
    /// connection.tune with whatever `tune_ok` makes of it. Returns the server's tune too.
    pub async fn open(
        addr: SocketAddr,
        tune_ok: impl FnOnce(&connection::Tune) -> connection::TuneOk,
    ) -> (Self, connection::Tune) {
        let (mut client, tune) = Self::tuned(addr, tune_ok).await;
        let open = connection::Open {
            virtual_host: "/".into(),
        };
        client
            .send_method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))
            .await;
        match client.recv_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        (client, tune)
    }

    /// The handshake up to tune-ok, for tests that send connection.open their own way.
    pub async fn tuned(
        addr: SocketAddr,
        tune_ok: impl FnOnce(&connection::Tune) -> connection::TuneOk,
    ) -> (Self, connection::Tune) {
        let stream = TcpStream::connect(addr).await.expect("raw client connects");
        let mut client = Self {
            stream,
            input: Vec::new(),
        };
        client
            .stream
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("protocol header sent");
        match client.recv_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        let start_ok = connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(b"\0guest\0guest".to_vec()),
            locale: "en_US".into(),
        };
        client
            .send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)),
            )
            .await;
        let tune = match client.recv_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune)))) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        client
            .send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok(&tune))),
            )
            .await;
        (client, tune)
    }

    /// Connects without sending anything, for tests that drive the handshake themselves.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("raw client connects");
        Self {
            stream,
            input: Vec::new(),
        }
    }

    /// Writes bytes exactly as given: malformed frames, a protocol header, a close-ok to a
    /// server that may already have hung up (hence the result rather than a panic).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn send(&mut self, frame: &AMQPFrame) {
        self.stream
            .write_all(&frame_bytes(frame))
            .await
            .expect("frame sent");
    }

    pub async fn send_method(&mut self, channel: u16, method: AMQPClass) {
        self.send(&AMQPFrame::Method(channel, method)).await;
    }

    /// Opens a channel and waits for channel.open-ok.
    pub async fn open_channel(&mut self, id: u16) {
        self.send_method(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match self.recv_method().await {
            Some((ch, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))) if ch == id => {}
            other => panic!("expected channel.open-ok on channel {id}, got {other:?}"),
        }
    }

    /// Shuts the socket's write side, as a client does when it closes: the server reads EOF.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// The next frame from the server, heartbeats included; `None` once the server has closed
    /// the socket.
    pub async fn recv(&mut self) -> Option<AMQPFrame> {
        loop {
            if let Some(len) = self.complete_frame_len() {
                let frame = match parse_frame(&self.input[..len]) {
                    Ok((_, frame)) => frame,
                    Err(e) => panic!("server sent a frame amq-protocol cannot parse: {e:?}"),
                };
                self.input.drain(..len);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next method frame, skipping heartbeats; `None` at end of stream.
    pub async fn recv_method(&mut self) -> Option<(u16, AMQPClass)> {
        loop {
            match self.recv().await? {
                AMQPFrame::Heartbeat => continue,
                AMQPFrame::Method(channel, method) => return Some((channel, method)),
                other => panic!("expected a method frame, got {other:?}"),
            }
        }
    }

    /// The length of the whole frame at the front of the input, once it has all arrived.
    fn complete_frame_len(&self) -> Option<usize> {
        let input = &self.input;
        if input.starts_with(b"AMQP") {
            return (input.len() >= 8).then_some(8);
        }
        if input.len() < 7 {
            return None;
        }
        let size = u32::from_be_bytes([input[3], input[4], input[5], input[6]]) as usize;
        let len = 7 + size + 1;
        (input.len() >= len).then_some(len)
    }
}

/// A frame as bytes, for tests that send several in one write.
pub fn frame_bytes(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("frame encodes")
        .write
}
