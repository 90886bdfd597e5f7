//! Publisher confirms and transactions as a client sees them, and the content header as it
//! reaches the wire.

mod common;

use common::flows::*;
use common::*;
use lapin::options::*;
use lapin::{BasicProperties, Confirmation};

// ---------------------------------------------------------------------------------------------
// publisher confirms and transactions

#[tokio::test]
async fn publisher_confirms_ack_every_one_of_a_thousand_publishes() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                &i.to_be_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for (i, confirm) in confirms.into_iter().enumerate() {
        assert_eq!(
            within("a confirm", confirm).await.unwrap(),
            Confirmation::Ack(None),
            "publish {i}"
        );
    }
    assert_eq!(queue_counts(&ch, "q").await, (1000, 0));
}

#[tokio::test]
async fn transactional_publishes_are_invisible_until_commit_and_discarded_on_rollback() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let (_conn2, observer) = broker.channel().await;
    declare_queue(&ch, "q").await;
    ch.tx_select().await.unwrap();
    publish(&ch, "", "q", b"1").await;
    publish(&ch, "", "q", b"2").await;
    assert_eq!(
        queue_counts(&observer, "q").await.0,
        0,
        "nothing before commit"
    );
    ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&observer, "q").await.0, 2, "both after commit");

    publish(&ch, "", "q", b"rolled-back").await;
    ch.tx_rollback().await.unwrap();
    publish(&ch, "", "q", b"3").await;
    ch.tx_commit().await.unwrap();
    let mut bodies = Vec::new();
    while let Some(m) = get(&observer, "q").await {
        bodies.push(body(&m.delivery));
    }
    assert_eq!(bodies, ["1", "2", "3"]);
}

#[tokio::test]
async fn acks_in_a_rolled_back_transaction_leave_the_messages_unacked() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=2).await;
    ch.tx_select().await.unwrap();
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_ack(one.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_ack(two.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();

    // Still unacked: acking 2 again is valid (an unknown tag would close the channel with 406).
    ch.basic_ack(two.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let m = get(&other, "q")
        .await
        .expect("1 was requeued when its channel closed");
    assert_eq!(body(&m.delivery), "1");
    assert!(m.delivery.redelivered);
    assert!(
        get(&other, "q").await.is_none(),
        "2 was acked by the committed transaction"
    );
}

#[tokio::test]
async fn acks_in_an_uncommitted_transaction_are_not_applied() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "", "q", b"x").await;
    ch.tx_select().await.unwrap();
    let m = get(&ch, "q").await.unwrap();
    ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    let again = get(&other, "q")
        .await
        .expect("the uncommitted ack did not remove it");
    assert!(again.delivery.redelivered);
}

// ---------------------------------------------------------------------------------------------
// the content header on the wire

/// The content header's bytes (class, weight, body size, property flags and every property,
/// headers holding each field type RabbitMQ knows) come back byte for byte in basic.get-ok and
/// basic.deliver. Built by hand so no client library normalises anything.
#[tokio::test]
async fn content_header_bytes_are_delivered_exactly_as_published() {
    let broker = TestBroker::start().await;
    let mut wire = within("the raw handshake", wire::Client::connect(broker.addr())).await;
    wire.call(
        1,
        50,
        10,
        &wire::args(|a| a.u16(0).shortstr("raw").u8(0).table(&[])),
        50,
        11,
    )
    .await;

    let body = b"raw body".to_vec();
    let header = wire::content_header(body.len() as u64, &wire::all_properties());
    let publish = wire::args(|a| a.u16(0).shortstr("").shortstr("raw").u8(0));

    wire.publish(1, &publish, &header, &body).await;
    wire.send_method(1, 60, 70, &wire::args(|a| a.u16(0).shortstr("raw").u8(1)))
        .await;
    wire.expect_method(1, 60, 71).await;
    assert_eq!(
        wire.expect_frame(2, 1).await,
        header,
        "content header of basic.get-ok"
    );
    assert_eq!(wire.expect_frame(3, 1).await, body);

    let no_ack = 0b10;
    let consume = wire::args(|a| {
        a.u16(0)
            .shortstr("raw")
            .shortstr("ctag")
            .u8(no_ack)
            .table(&[])
    });
    wire.call(1, 60, 20, &consume, 60, 21).await;
    wire.publish(1, &publish, &header, &body).await;
    wire.expect_method(1, 60, 60).await;
    assert_eq!(
        wire.expect_frame(2, 1).await,
        header,
        "content header of basic.deliver"
    );
    assert_eq!(wire.expect_frame(3, 1).await, body);
}

/// A minimal AMQP 0-9-1 client over a raw socket: frames and arguments encoded by hand.
mod wire {
    use super::within;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const FRAME_END: u8 = 0xCE;

    /// Method arguments and property lists, big-endian as on the wire.
    #[derive(Default)]
    pub struct Args(pub Vec<u8>);

    impl Args {
        pub fn u8(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        pub fn u16(&mut self, v: u16) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
            self.0.extend_from_slice(v);
            self
        }
        pub fn shortstr(&mut self, v: &str) -> &mut Self {
            self.u8(v.len() as u8).bytes(v.as_bytes())
        }
        pub fn longstr(&mut self, v: &[u8]) -> &mut Self {
            self.u32(v.len() as u32).bytes(v)
        }
        /// A field table from already encoded (name, type tag and value) entries.
        pub fn table(&mut self, entries: &[(&str, Vec<u8>)]) -> &mut Self {
            let mut t = Args::default();
            for (name, value) in entries {
                t.shortstr(name).bytes(value);
            }
            self.longstr(&t.0)
        }
    }

    pub fn args(f: impl FnOnce(&mut Args) -> &mut Args) -> Vec<u8> {
        let mut a = Args::default();
        f(&mut a);
        a.0
    }

    /// One field value: its type tag, then the value.
    fn field(tag: u8, f: impl FnOnce(&mut Args) -> &mut Args) -> Vec<u8> {
        let mut a = Args::default();
        a.u8(tag);
        f(&mut a);
        a.0
    }

    /// Headers with every field type RabbitMQ decodes, in no particular key order.
    fn headers() -> Vec<(&'static str, Vec<u8>)> {
        let nested = args(|a| {
            a.table(&[
                ("k", field(b'S', |a| a.longstr(b"v"))),
                ("n", field(b'I', |a| a.u32(7))),
            ])
        });
        let mut array = Args::default();
        for v in [
            field(b'I', |a| a.u32(1)),
            field(b'S', |a| a.longstr(b"two")),
            field(b't', |a| a.u8(1)),
            field(b'V', |a| a),
        ] {
            array.bytes(&v);
        }
        vec![
            ("z-last", field(b't', |a| a.u8(1))),
            ("bool", field(b't', |a| a.u8(0))),
            ("i8", field(b'b', |a| a.u8(0xF8))),
            ("u8", field(b'B', |a| a.u8(200))),
            ("i16", field(b's', |a| a.u16((-1600i16) as u16))),
            ("u16", field(b'u', |a| a.u16(60000))),
            ("i32", field(b'I', |a| a.u32((-320_000i32) as u32))),
            ("u32", field(b'i', |a| a.u32(4_000_000_000))),
            ("i64", field(b'l', |a| a.u64((-64_000_000_000i64) as u64))),
            ("float", field(b'f', |a| a.u32(1.5f32.to_bits()))),
            ("double", field(b'd', |a| a.u64((-2.25f64).to_bits()))),
            ("decimal", field(b'D', |a| a.u8(2).u32(12345))),
            (
                "string",
                field(b'S', |a| a.longstr("ünïcødé\0bytes".as_bytes())),
            ),
            ("timestamp", field(b'T', |a| a.u64(1_700_000_000))),
            ("table", field(b'F', |a| a.bytes(&nested))),
            ("array", field(b'A', |a| a.longstr(&array.0))),
            ("bytes", field(b'x', |a| a.longstr(&[0, 1, 254, 255]))),
            ("void", field(b'V', |a| a)),
        ]
    }

    /// Property flags with all fourteen bits set, then the fourteen properties in order.
    pub fn all_properties() -> Vec<u8> {
        args(|a| {
            a.u16(0xFFFC)
                .shortstr("application/octet-stream")
                .shortstr("identity")
                .table(&headers())
                .u8(2)
                .u8(9)
                .shortstr("corr")
                .shortstr("reply")
                .shortstr("1000000")
                .shortstr("message-id")
                .u64(1_234_567_890)
                .shortstr("type")
                .shortstr("guest")
                .shortstr("app")
                .shortstr("cluster")
        })
    }

    /// A content header frame's payload: class 60, weight 0, body size, properties.
    pub fn content_header(body_size: u64, properties: &[u8]) -> Vec<u8> {
        args(|a| a.u16(60).u16(0).u64(body_size).bytes(properties))
    }

    pub struct Client {
        stream: TcpStream,
    }

    impl Client {
        /// Opens a connection as guest on vhost "/" and channel 1.
        pub async fn connect(addr: SocketAddr) -> Self {
            let mut c = Self {
                stream: TcpStream::connect(addr).await.expect("tcp connect"),
            };
            c.stream.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
            c.expect_method(0, 10, 10).await;
            let start_ok = args(|a| {
                a.table(&[])
                    .shortstr("PLAIN")
                    .longstr(b"\0guest\0guest")
                    .shortstr("en_US")
            });
            c.send_method(0, 10, 11, &start_ok).await;
            let tune = c.expect_method(0, 10, 30).await;
            let (channel_max, frame_max) = (&tune[0..2], &tune[2..6]);
            c.send_method(
                0,
                10,
                31,
                &args(|a| a.bytes(channel_max).bytes(frame_max).u16(0)),
            )
            .await;
            c.call(
                0,
                10,
                40,
                &args(|a| a.shortstr("/").shortstr("").u8(0)),
                10,
                41,
            )
            .await;
            c.call(1, 20, 10, &args(|a| a.shortstr("")), 20, 11).await;
            c
        }

        pub async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
            let frame = args(|a| a.u8(kind).u16(channel).longstr(payload).u8(FRAME_END));
            self.stream.write_all(&frame).await.expect("write");
        }

        pub async fn send_method(
            &mut self,
            channel: u16,
            class: u16,
            method: u16,
            arguments: &[u8],
        ) {
            self.send_frame(
                1,
                channel,
                &args(|a| a.u16(class).u16(method).bytes(arguments)),
            )
            .await;
        }

        /// Sends a method and waits for its reply; returns the reply's arguments.
        pub async fn call(
            &mut self,
            channel: u16,
            class: u16,
            method: u16,
            arguments: &[u8],
            rc: u16,
            rm: u16,
        ) -> Vec<u8> {
            self.send_method(channel, class, method, arguments).await;
            self.expect_method(channel, rc, rm).await
        }

        pub async fn publish(
            &mut self,
            channel: u16,
            publish_args: &[u8],
            header: &[u8],
            body: &[u8],
        ) {
            self.send_method(channel, 60, 40, publish_args).await;
            self.send_frame(2, channel, header).await;
            self.send_frame(3, channel, body).await;
        }

        /// The next frame other than a heartbeat: (type, channel, payload).
        pub async fn read_frame(&mut self) -> (u8, u16, Vec<u8>) {
            loop {
                let mut head = [0u8; 7];
                within("a frame", self.stream.read_exact(&mut head))
                    .await
                    .expect("frame header");
                let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                let mut payload = vec![0u8; size + 1];
                within("a frame", self.stream.read_exact(&mut payload))
                    .await
                    .expect("frame payload");
                assert_eq!(payload.pop(), Some(FRAME_END), "frame end octet");
                if head[0] != 8 {
                    return (head[0], u16::from_be_bytes([head[1], head[2]]), payload);
                }
            }
        }

        pub async fn expect_frame(&mut self, kind: u8, channel: u16) -> Vec<u8> {
            let (k, ch, payload) = self.read_frame().await;
            assert_eq!(
                (k, ch),
                (kind, channel),
                "frame type and channel (payload {payload:?})"
            );
            payload
        }

        /// Reads a method frame and checks its class and method ids; returns its arguments.
        pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Vec<u8> {
            let payload = self.expect_frame(1, channel).await;
            let ids = (
                u16::from_be_bytes([payload[0], payload[1]]),
                u16::from_be_bytes([payload[2], payload[3]]),
            );
            assert_eq!(
                ids,
                (class, method),
                "method (arguments {:?})",
                String::from_utf8_lossy(&payload[4..])
            );
            payload[4..].to_vec()
        }
    }
}
