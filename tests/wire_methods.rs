//! Abuse on the wire, from a raw socket: content assembly out of order, unknown, malformed and
//! refused methods, and the handshake.
//! Where Warren deliberately differs from RabbitMQ, see `common/wire.rs`.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{
    basic as amqp_basic, connection as amqp_connection, queue as amqp_queue, AMQPClass,
};
use amq_protocol::types::{FieldTable as RawFieldTable, LongString};
use common::raw::RawClient;
use common::wire::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// content assembly

#[tokio::test]
async fn content_frames_without_a_method_close_the_connection_with_505() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let cases = [
        vec![header(1, 60, 3)],
        vec![body(1, b"abc")],
        vec![header(5, 60, 3)],
        vec![body(5, b"abc")],
        // The header completed a zero-length message; the body has no method.
        vec![publish_to(1, "q"), header(1, 60, 0), body(1, b"abc")],
    ];
    for frames in cases {
        abuse(
            &broker,
            &mut bystander,
            &frames,
            close(505, EXPECTED_METHOD, 0, 0),
        )
        .await;
    }
}

#[tokio::test]
async fn frames_out_of_order_within_content_close_the_connection_with_505() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let cases = [
        // publish, then a method before the header
        (
            vec![publish_to(1, "q"), queue_declare(1, "q")],
            EXPECTED_HEADER,
        ),
        // publish, then a body before the header
        (vec![publish_to(1, "q"), body(1, b"abc")], EXPECTED_HEADER),
        // publish, then a header of another class
        (
            vec![publish_to(1, "q"), header(1, 50, 3)],
            Text::Is(
                "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
            ),
        ),
        // a body shorter than declared, then a method
        (
            vec![
                publish_to(1, "q"),
                header(1, 60, 10),
                body(1, b"abc"),
                queue_declare(1, "q"),
            ],
            EXPECTED_BODY,
        ),
    ];
    for (frames, text) in cases {
        abuse(&broker, &mut bystander, &frames, close(505, text, 60, 40)).await;
    }
}

#[tokio::test]
async fn a_body_longer_than_declared_closes_the_connection_with_505_at_once() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut client = raw_client(&broker).await;
    declare_ok(&mut client, 1, "long").await;
    drop(client);
    let cases = [
        vec![
            publish_to(1, "long"),
            header(1, 60, 10),
            body(1, &[b'x'; 20]),
        ],
        vec![
            publish_to(1, "long"),
            header(1, 60, 10),
            body(1, &[b'x'; 6]),
            body(1, &[b'x'; 6]),
        ],
    ];
    for frames in cases {
        abuse(
            &broker,
            &mut bystander,
            &frames,
            close_any_ids(505, Text::Prefix("UNEXPECTED_FRAME - ")),
        )
        .await;
    }
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        queue_counts(&ch, "long").await,
        (0, 0),
        "a message with an overlong body was enqueued"
    );
}

#[tokio::test]
async fn empty_body_frames_and_interleaved_channels_are_fine() {
    let broker = TestBroker::start().await;
    let mut client = raw_client(&broker).await;
    client.open_channel(2).await;
    declare_ok(&mut client, 1, "q").await;
    for f in [
        publish_to(1, "q"),
        header(1, 60, 6),
        body(1, b"abc"),
        body(1, b""),
        queue_declare(2, "q2"),
        body(1, b"def"),
    ] {
        send(&mut client, &f).await;
    }
    match within("queue.declare-ok", client.recv_method()).await {
        Some((2, AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(_)))) => {}
        other => panic!("expected queue.declare-ok on channel 2, got {other:?}"),
    }
    assert_eq!(declare_ok(&mut client, 1, "q").await, 1);
    send(&mut client, &method(1, 60, 70, &[0, 0, 1, b'q', 1])).await;
    match within("basic.get-ok", client.recv()).await {
        Some(AMQPFrame::Method(1, AMQPClass::Basic(amqp_basic::AMQPMethod::GetOk(_)))) => {}
        other => panic!("expected basic.get-ok, got {other:?}"),
    }
    let _header = within("the content header", client.recv()).await;
    match within("the body", client.recv()).await {
        Some(AMQPFrame::Body(1, data)) => assert_eq!(data, b"abcdef"),
        other => panic!("expected the body, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// methods: unknown, malformed, refused

#[tokio::test]
async fn an_unknown_class_or_method_closes_the_connection_with_503() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for (channel, class_id, method_id) in [(1, 99, 10), (0, 99, 10), (1, 60, 999), (0, 10, 999)] {
        abuse(
            &broker,
            &mut bystander,
            &[method(channel, class_id, method_id, &[])],
            close_any_ids(503, Text::Prefix("COMMAND_INVALID - ")),
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_method_arguments_close_the_connection_with_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    // A field table holding a value of the unknown type 'Z'.
    let mut table = vec![1, b'k', b'Z', 0, 0, 0, 0];
    let mut bad_table = (table.len() as u32).to_be_bytes().to_vec();
    bad_table.append(&mut table);
    let mut with_bad_table = queue_declare_args(&[1, b'q'], &[0]);
    with_bad_table.extend_from_slice(&bad_table);
    let cannot_decode = close(501, Text::Prefix("FRAME_ERROR - cannot decode "), 50, 10);
    let cases = [
        // a queue name claiming 255 bytes with 3 present
        (
            method(1, 50, 10, &queue_declare_args(&[255], b"abc")),
            cannot_decode,
        ),
        // cut short before the arguments table
        (
            method(1, 50, 10, &queue_declare_args(&[4], b"q11b\x00")),
            cannot_decode,
        ),
        // trailing bytes after a complete argument list
        (
            method(
                1,
                50,
                10,
                &queue_declare_args(&[4], b"q11c\x04\x00\x00\x00\x00garbage"),
            ),
            cannot_decode,
        ),
        // a table RabbitMQ cannot parse either (it crashes and drops the socket)
        (
            method(1, 50, 10, &with_bad_table),
            close_any_ids(501, Text::Prefix("FRAME_ERROR - cannot decode ")),
        ),
        // not even class and method ids
        (
            frame(FRAME_METHOD, 1, &[0, 50]),
            close(501, Text::Prefix("FRAME_ERROR - "), 0, 0),
        ),
    ];
    for (frame, expected) in cases {
        abuse(&broker, &mut bystander, &[frame], expected).await;
    }
}

#[tokio::test]
async fn an_undecodable_connection_close_is_541() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    abuse(
        &broker,
        &mut bystander,
        &[method(0, 10, 50, &[0])],
        close(541, Text::Is("INTERNAL_ERROR"), 0, 0),
    )
    .await;
}

#[tokio::test]
async fn basic_qos_with_a_prefetch_size_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    // prefetch_size 1, prefetch_count 0, global false (amq-protocol cannot encode the size)
    abuse(
        &broker,
        &mut bystander,
        &[method(1, 60, 10, &[0, 0, 0, 1, 0, 0, 0])],
        close(
            540,
            Text::Is("NOT_IMPLEMENTED - prefetch_size!=0 (1)"),
            60,
            10,
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// handshake

/// Sends the protocol header and start-ok, and returns the client at the server's next word.
async fn start_ok(broker: &TestBroker, mechanism: &str, response: &[u8]) -> RawClient {
    let mut client = RawClient::connect(broker.addr()).await;
    send(&mut client, b"AMQP\x00\x00\x09\x01").await;
    match within("connection.start", client.recv_method()).await {
        Some((0, AMQPClass::Connection(amqp_connection::AMQPMethod::Start(_)))) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
    client
        .send_method(
            0,
            AMQPClass::Connection(amqp_connection::AMQPMethod::StartOk(
                amqp_connection::StartOk {
                    client_properties: RawFieldTable::default(),
                    mechanism: mechanism.into(),
                    response: LongString::from(response.to_vec()),
                    locale: "en_US".into(),
                },
            )),
        )
        .await;
    client
}

#[tokio::test]
async fn a_wrong_password_is_told_403_even_without_authentication_failure_close() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for response in [&b"\0guest\0wrong"[..], b"\0nobody\0guest"] {
        let mut client = start_ok(&broker, "PLAIN", response).await;
        expect_connection_close(
            &mut client,
            close(
                403,
                Text::Is(
                    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                     For details see the broker logfile.",
                ),
                0,
                0,
            ),
        )
        .await;
        bystander.assert_served().await;
    }
}

#[tokio::test]
async fn opening_a_missing_vhost_closes_the_connection_with_530() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut client = start_ok(&broker, "PLAIN", b"\0guest\0guest").await;
    let tune = match within("connection.tune", client.recv_method()).await {
        Some((0, AMQPClass::Connection(amqp_connection::AMQPMethod::Tune(tune)))) => tune,
        other => panic!("expected connection.tune, got {other:?}"),
    };
    client
        .send_method(
            0,
            AMQPClass::Connection(amqp_connection::AMQPMethod::TuneOk(
                amqp_connection::TuneOk {
                    channel_max: tune.channel_max,
                    frame_max: tune.frame_max,
                    heartbeat: 0,
                },
            )),
        )
        .await;
    client
        .send_method(
            0,
            AMQPClass::Connection(amqp_connection::AMQPMethod::Open(amqp_connection::Open {
                virtual_host: "/nope".into(),
            })),
        )
        .await;
    expect_connection_close(
        &mut client,
        close(530, Text::Is("NOT_ALLOWED - vhost /nope not found"), 10, 40),
    )
    .await;
    bystander.assert_served().await;
}
