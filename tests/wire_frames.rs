//! Abuse on the wire, from a raw socket: wrong protocol headers and a malformed frame layer
//! (size, type, end octet). Each case checks the close the server sends, that the socket ends
//! after close-ok, and that a well-behaved connection opened before is still served.
//! Where Warren deliberately differs from RabbitMQ, see `common/wire.rs`.

mod common;

use amq_protocol::protocol::connection as amqp_connection;
use common::raw::RawClient;
use common::wire::*;
use common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// protocol header

/// Everything the server sends until it closes the socket.
async fn all_bytes(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(send).await.expect("header sent");
    let mut received = Vec::new();
    let read = tokio::time::timeout(HANGUP, async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the socket is still open {HANGUP:?} after a wrong protocol header, having sent {received:?}"
    );
    received
}

const WRONG_HEADERS: [&[u8]; 8] = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"XXXXXXXX",
    b"AMQP\x00\x00\x09\x00",
    b"AMQP\x00\x00\x09\x02",
    b"AMQP\x00\x00\x0a\x00",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x00\x01\x00\x00",
    b"AMQP\x03\x01\x00\x00",
];

#[tokio::test]
async fn a_wrong_protocol_header_is_answered_with_amqp_0_9_1s_and_nothing_else() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for header in WRONG_HEADERS {
        let received = all_bytes(broker.addr(), header).await;
        assert_eq!(
            received,
            b"AMQP\x00\x00\x09\x01",
            "{:?} was not answered with exactly the AMQP 0-9-1 protocol header",
            String::from_utf8_lossy(header)
        );
        bystander.assert_served().await;
    }
}

// ---------------------------------------------------------------------------------------------
// frame layer: size, type, end octet

#[tokio::test]
async fn a_frame_larger_than_frame_max_closes_the_connection_with_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let big = vec![b'x'; 200_000];
    abuse(
        &broker,
        &mut bystander,
        &[publish_to(1, "q"), header(1, 60, 200_000), body(1, &big)],
        close(
            501,
            Text::Frame(
                "FRAME_ERROR - type 3",
                ": {frame_too_large,200000,131064}",
                "",
            ),
            0,
            0,
        ),
    )
    .await;
    // 4 bytes of ids, 3 of reserved short and empty name, then filler: a 140026-byte payload
    let big_method = method(1, 50, 10, &queue_declare_args(&[0], &vec![0u8; 140_019]));
    abuse(
        &broker,
        &mut bystander,
        &[big_method],
        close(
            501,
            Text::Frame(
                "FRAME_ERROR - type 1",
                ": {frame_too_large,140026,131064}",
                "",
            ),
            0,
            0,
        ),
    )
    .await;
}

#[tokio::test]
async fn payloads_up_to_frame_max_are_accepted_and_one_byte_more_is_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut client = raw_client(&broker).await;
    declare_ok(&mut client, 1, "q").await;
    let exact = vec![b'x'; 131_072];
    for f in [
        publish_to(1, "q"),
        header(1, 60, exact.len() as u64),
        body(1, &exact),
    ] {
        send(&mut client, &f).await;
    }
    assert_eq!(
        declare_ok(&mut client, 1, "q").await,
        1,
        "a body frame of exactly frame_max bytes was not taken"
    );
    drop(client);

    let over = vec![b'x'; 131_073];
    abuse(
        &broker,
        &mut bystander,
        &[publish_to(1, "q"), header(1, 60, 131_073), body(1, &over)],
        close(
            501,
            Text::Frame(
                "FRAME_ERROR - type 3",
                ": {frame_too_large,131073,131064}",
                "",
            ),
            0,
            0,
        ),
    )
    .await;

    // A smaller negotiated frame_max is the one enforced.
    let (mut small, _) = within(
        "the raw handshake",
        RawClient::open(broker.addr(), |_| amqp_connection::TuneOk {
            channel_max: 0,
            frame_max: 4096,
            heartbeat: 0,
        }),
    )
    .await;
    within("channel.open-ok", small.open_channel(1)).await;
    for f in [
        publish_to(1, "q"),
        header(1, 60, 5000),
        body(1, &[b'y'; 5000]),
    ] {
        send(&mut small, &f).await;
    }
    expect_connection_close(
        &mut small,
        close(
            501,
            Text::Frame("FRAME_ERROR - type 3", ": {frame_too_large,5000,4088}", ""),
            0,
            0,
        ),
    )
    .await;
    bystander.assert_served().await;
}

#[tokio::test]
async fn an_unknown_frame_type_closes_the_connection_with_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for channel in [0, 1] {
        abuse(
            &broker,
            &mut bystander,
            &[frame(9, channel, b"abc")],
            close(
                501,
                Text::Frame("FRAME_ERROR - type 9", ": unknown_frame", ""),
                0,
                0,
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn a_wrong_frame_end_octet_closes_the_connection_with_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut declare = queue_declare(1, "q4");
    *declare.last_mut().expect("a frame") = 0x00;
    abuse(
        &broker,
        &mut bystander,
        &[declare],
        close(
            501,
            Text::Frame("FRAME_ERROR - type 1", "{invalid_frame_end_marker,", "0}"),
            0,
            0,
        ),
    )
    .await;
    abuse(
        &broker,
        &mut bystander,
        &[frame_ending(FRAME_HEARTBEAT, 0, &[], 0x01)],
        close(
            501,
            Text::Frame("FRAME_ERROR - type 8", ": {invalid_frame_end_marker,1}", ""),
            0,
            0,
        ),
    )
    .await;
}

#[tokio::test]
async fn frames_sent_right_behind_connection_open_are_answered_at_once() {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{channel, connection, AMQPClass};
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::tuned(broker.addr(), |t| connection::TuneOk {
        channel_max: t.channel_max,
        frame_max: t.frame_max,
        heartbeat: 0,
    })
    .await;
    // connection.open and channel.open in one write, as pipelining clients send them.
    let open = AMQPFrame::Method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    );
    let channel_open = AMQPFrame::Method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let mut both = common::raw::frame_bytes(&open);
    both.extend(common::raw::frame_bytes(&channel_open));
    client.send_bytes(&both).await.unwrap();
    assert!(matches!(
        within("connection.open-ok", client.recv_method()).await,
        Some((0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))))
    ));
    assert!(matches!(
        within("channel.open-ok", client.recv_method()).await,
        Some((1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))
    ));
}
