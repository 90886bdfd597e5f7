//! Frames written byte by byte, raw clients and bystanders, and the closes the server must answer
//! abuse with. Shared by the wire_* tests, which check the close the server sends (reply code,
//! text, and the class and method it names), that close-ok is followed by the end of the socket
//! within a bounded time, and that a well-behaved connection opened before the abuse is still
//! served afterwards.
//!
//! Where Warren deliberately differs from RabbitMQ 3.10 the tests expect Warren's behaviour:
//! unknown methods get 503 rather than a dropped socket, a body longer than its header declared
//! gets 505 at once, malformed field tables get 501, frame-error texts carry no Erlang octet dump,
//! and a failed handshake is told why with connection.close.

use super::raw::RawClient;
use super::*;
use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{
    basic as amqp_basic, channel as amqp_channel, connection as amqp_connection,
    queue as amqp_queue, AMQPClass,
};
use amq_protocol::types::FieldTable as RawFieldTable;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::time::Duration;

/// How long the server may take to hang up after close-ok, or after a wrong protocol header.
/// RabbitMQ does both at once; this stays below the 3 s after which a server gives up waiting
/// for close-ok, so a server that ignored the close-ok would fail.
pub const HANGUP: Duration = Duration::from_secs(2);

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

pub fn frame_ending(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(end);
    f
}

pub fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    frame_ending(kind, channel, payload, FRAME_END)
}

/// A method frame with hand-written arguments.
pub fn method(channel: u16, class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class_id.to_be_bytes().to_vec();
    payload.extend_from_slice(&method_id.to_be_bytes());
    payload.extend_from_slice(args);
    frame(FRAME_METHOD, channel, &payload)
}

/// A method frame as amq-protocol encodes it.
pub fn encoded(channel: u16, method: AMQPClass) -> Vec<u8> {
    gen_frame(&AMQPFrame::Method(channel, method))(WriteContext::from(Vec::new()))
        .expect("frame encodes")
        .write
}

/// A content header frame with no properties.
pub fn header(channel: u16, class_id: u16, body_size: u64) -> Vec<u8> {
    let mut payload = class_id.to_be_bytes().to_vec();
    payload.extend_from_slice(&0u16.to_be_bytes());
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes());
    frame(FRAME_HEADER, channel, &payload)
}

pub fn body(channel: u16, bytes: &[u8]) -> Vec<u8> {
    frame(FRAME_BODY, channel, bytes)
}

pub fn heartbeat(channel: u16) -> Vec<u8> {
    frame(FRAME_HEARTBEAT, channel, &[])
}

/// basic.publish to the default exchange with routing key `queue`.
pub fn publish_to(channel: u16, queue: &str) -> Vec<u8> {
    encoded(
        channel,
        AMQPClass::Basic(amqp_basic::AMQPMethod::Publish(amqp_basic::Publish {
            exchange: "".into(),
            routing_key: queue.into(),
            mandatory: false,
            immediate: false,
        })),
    )
}

pub fn queue_declare(channel: u16, name: &str) -> Vec<u8> {
    encoded(
        channel,
        AMQPClass::Queue(amqp_queue::AMQPMethod::Declare(amqp_queue::Declare {
            queue: name.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: RawFieldTable::default(),
        })),
    )
}

pub fn channel_method(channel: u16, m: amqp_channel::AMQPMethod) -> Vec<u8> {
    encoded(channel, AMQPClass::Channel(m))
}

pub fn channel_open(channel: u16) -> Vec<u8> {
    channel_method(
        channel,
        amqp_channel::AMQPMethod::Open(amqp_channel::Open {}),
    )
}

pub fn channel_close_ok(channel: u16) -> Vec<u8> {
    channel_method(
        channel,
        amqp_channel::AMQPMethod::CloseOk(amqp_channel::CloseOk {}),
    )
}

pub fn connection_close_ok() -> Vec<u8> {
    encoded(
        0,
        AMQPClass::Connection(amqp_connection::AMQPMethod::CloseOk(
            amqp_connection::CloseOk {},
        )),
    )
}

/// queue.declare arguments: reserved short, then the queue name's short string as given.
pub fn queue_declare_args(name_field: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0];
    args.extend_from_slice(name_field);
    args.extend_from_slice(rest);
    args
}

/// A raw client past the handshake (heartbeats off), with channel 1 open.
pub async fn raw_client(broker: &TestBroker) -> RawClient {
    let (mut client, _) = within(
        "the raw handshake",
        RawClient::open(broker.addr(), |tune| amqp_connection::TuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 0,
        }),
    )
    .await;
    within("channel.open-ok", client.open_channel(1)).await;
    client
}

pub async fn send(client: &mut RawClient, bytes: &[u8]) {
    client.send_bytes(bytes).await.expect("bytes sent");
}

/// A well-behaved lapin connection, opened before the abuse, with a consumer on its own queue.
pub struct Bystander {
    pub _conn: Connection,
    pub ch: Channel,
    pub consumer: Consumer,
    pub served: usize,
}

impl Bystander {
    pub async fn start(broker: &TestBroker) -> Self {
        let (conn, ch) = broker.channel().await;
        declare_queue(&ch, "bystander").await;
        let consumer = within(
            "basic.consume-ok",
            ch.basic_consume(
                "bystander".into(),
                "bystander".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("basic.consume");
        Self {
            _conn: conn,
            ch,
            consumer,
            served: 0,
        }
    }

    /// Publishes and consumes one message: the abuse elsewhere did not disturb the broker.
    pub async fn assert_served(&mut self) {
        self.served += 1;
        let text = format!("bystander {}", self.served);
        publish(&self.ch, "", "bystander", text.as_bytes()).await;
        let delivery = next_delivery(&mut self.consumer).await;
        assert_eq!(
            String::from_utf8_lossy(&delivery.data),
            text,
            "the bystander got another message"
        );
        within("basic.ack", delivery.acker.ack(BasicAckOptions::default()))
            .await
            .expect("the bystander acks");
    }
}

/// The reply text expected in a close.
#[derive(Debug, Clone, Copy)]
pub enum Text {
    /// Exactly this, as RabbitMQ words it.
    Is(&'static str),
    /// Starts with the first, holds the second and ends with the third: frame errors, where
    /// Warren leaves out RabbitMQ's octet dump (`FRAME_ERROR - type 3, all octets = <<>>: …`)
    /// and its line wrapping, but keeps the reason.
    Frame(&'static str, &'static str, &'static str),
    /// Starts like this: Warren's own wording where RabbitMQ sends nothing to compare with.
    Prefix(&'static str),
}

impl Text {
    pub fn check(self, text: &str) -> bool {
        match self {
            Text::Is(s) => text == s,
            Text::Frame(start, reason, end) => {
                text.starts_with(start) && text.contains(reason) && text.ends_with(end)
            }
            Text::Prefix(start) => text.starts_with(start),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Close {
    pub code: u16,
    pub text: Text,
    /// The class and method the close names, where RabbitMQ's answer or the spec pins them.
    pub ids: Option<(u16, u16)>,
}

pub const fn close(code: u16, text: Text, class_id: u16, method_id: u16) -> Close {
    Close {
        code,
        text,
        ids: Some((class_id, method_id)),
    }
}

/// A close whose class and method ids are not checked: Warren's own answers, where RabbitMQ
/// sends no close to compare with.
pub const fn close_any_ids(code: u16, text: Text) -> Close {
    Close {
        code,
        text,
        ids: None,
    }
}

/// Expects connection.close as `expected` says, answers close-ok, and expects the socket to
/// end within `HANGUP` with nothing else sent.
pub async fn expect_connection_close(client: &mut RawClient, expected: Close) {
    let got = within("connection.close", client.recv_method()).await;
    let close = match got {
        Some((0, AMQPClass::Connection(amqp_connection::AMQPMethod::Close(close)))) => close,
        other => panic!("expected connection.close {expected:?}, got {other:?}"),
    };
    let actual = (
        close.reply_code,
        close.reply_text.as_str(),
        close.class_id,
        close.method_id,
    );
    assert!(
        close.reply_code == expected.code
            && expected.text.check(close.reply_text.as_str())
            && expected
                .ids
                .is_none_or(|ids| ids == (close.class_id, close.method_id)),
        "expected connection.close {expected:?}, got {actual:?}"
    );
    // The server may already have hung up (fatal frame errors): the close-ok can then fail.
    let _ = client.send_bytes(&connection_close_ok()).await;
    expect_eof(client).await;
}

/// Expects the server to close the socket within `HANGUP`, sending nothing more.
pub async fn expect_eof(client: &mut RawClient) {
    match tokio::time::timeout(HANGUP, client.recv()).await {
        Ok(None) => {}
        Ok(Some(frame)) => panic!("expected the socket to end, got {frame:?}"),
        Err(_) => panic!("the socket is still open {HANGUP:?} after the close"),
    }
}

/// Opens a raw client, sends `frames` and expects the connection to be closed as `expected`;
/// then checks that the bystander is still served.
pub async fn abuse(
    broker: &TestBroker,
    bystander: &mut Bystander,
    frames: &[Vec<u8>],
    expected: Close,
) {
    let mut client = raw_client(broker).await;
    for f in frames {
        send(&mut client, f).await;
    }
    expect_connection_close(&mut client, expected).await;
    bystander.assert_served().await;
}

/// Asserts that the server sends nothing for a while.
pub async fn expect_silence(client: &mut RawClient) {
    if let Ok(frame) = tokio::time::timeout(QUIET, client.recv()).await {
        panic!("expected no reply, got {frame:?}");
    }
}

/// Declares `queue` on channel `ch` and waits for declare-ok, proving the connection works and
/// that everything sent before it has been handled.
pub async fn declare_ok(client: &mut RawClient, ch: u16, queue: &str) -> u32 {
    send(client, &queue_declare(ch, queue)).await;
    match within("queue.declare-ok", client.recv_method()).await {
        Some((c, AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(ok)))) if c == ch => {
            ok.message_count
        }
        other => panic!("expected queue.declare-ok on channel {ch}, got {other:?}"),
    }
}

pub const EXPECTED_METHOD: Text =
    Text::Is("UNEXPECTED_FRAME - expected method frame, got non method frame instead");
pub const EXPECTED_HEADER: Text = Text::Is(
    "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
);
pub const EXPECTED_BODY: Text =
    Text::Is("UNEXPECTED_FRAME - expected content body, got non content body frame instead");
pub const UNIMPLEMENTED: Text = Text::Is("COMMAND_INVALID - unimplemented method");
pub const EXPECTED_OPEN: Text = Text::Is("CHANNEL_ERROR - expected 'channel.open'");
pub const NOT_RUNNING: Text =
    Text::Is("CHANNEL_ERROR - unexpected method in connection state running");
