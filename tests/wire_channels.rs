//! Abuse on the wire, from a raw socket: methods on the wrong channel, channels opened twice
//! or past channel_max, closing channels, and what channel 0 accepts.
//! Where Warren deliberately differs from RabbitMQ, see `common/wire.rs`.

mod common;

use amq_protocol::protocol::{
    channel as amqp_channel, connection as amqp_connection, queue as amqp_queue, AMQPClass,
};
use common::raw::RawClient;
use common::wire::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// channels

#[tokio::test]
async fn a_method_on_a_channel_never_opened_closes_the_connection_with_504() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let cases = [
        (queue_declare(5, "q5"), 50, 10),
        (
            channel_method(
                5,
                amqp_channel::AMQPMethod::Close(amqp_channel::Close {
                    reply_code: 200,
                    reply_text: "bye".into(),
                    class_id: 0,
                    method_id: 0,
                }),
            ),
            20,
            40,
        ),
        (channel_close_ok(5), 20, 41),
    ];
    for (frame, class_id, method_id) in cases {
        abuse(
            &broker,
            &mut bystander,
            &[frame],
            close(504, EXPECTED_OPEN, class_id, method_id),
        )
        .await;
    }
}

#[tokio::test]
async fn opening_an_open_channel_again_closes_the_connection_with_504() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    abuse(
        &broker,
        &mut bystander,
        &[channel_open(1)],
        close(
            504,
            Text::Is("CHANNEL_ERROR - second 'channel.open' seen"),
            20,
            10,
        ),
    )
    .await;
}

#[tokio::test]
async fn a_closing_channel_discards_methods_until_close_ok_then_reopens() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut client = raw_client(&broker).await;
    declare_ok(&mut client, 1, "q").await;
    // A passive declare of a missing queue: channel.close 404.
    let mut passive = queue_declare_args(&[6], b"nosuch");
    passive.extend_from_slice(&[1, 0, 0, 0, 0]);
    send(&mut client, &method(1, 50, 10, &passive)).await;
    match within("channel.close", client.recv_method()).await {
        Some((1, AMQPClass::Channel(amqp_channel::AMQPMethod::Close(close)))) => {
            assert_eq!(
                (
                    close.reply_code,
                    close.reply_text.as_str(),
                    close.class_id,
                    close.method_id
                ),
                (404, "NOT_FOUND - no queue 'nosuch' in vhost '/'", 50, 10)
            );
        }
        other => panic!("expected channel.close 404, got {other:?}"),
    }
    // Until close-ok, methods and content on the channel are dropped without a reply.
    for f in [
        queue_declare(1, "q"),
        method(1, 20, 20, &[0]),
        publish_to(1, "q"),
        header(1, 60, 3),
        body(1, b"abc"),
    ] {
        send(&mut client, &f).await;
    }
    client.open_channel(2).await;
    expect_silence(&mut client).await;
    // channel.close instead of close-ok is answered with close-ok.
    send(
        &mut client,
        &channel_method(
            1,
            amqp_channel::AMQPMethod::Close(amqp_channel::Close {
                reply_code: 200,
                reply_text: "ok".into(),
                class_id: 0,
                method_id: 0,
            }),
        ),
    )
    .await;
    match within("channel.close-ok", client.recv_method()).await {
        Some((1, AMQPClass::Channel(amqp_channel::AMQPMethod::CloseOk(_)))) => {}
        other => panic!("expected channel.close-ok, got {other:?}"),
    }
    send(&mut client, &channel_close_ok(1)).await;
    within("channel.open-ok", client.open_channel(1)).await;
    assert_eq!(
        declare_ok(&mut client, 1, "q").await,
        0,
        "a publish on the closing channel was routed"
    );
    bystander.assert_served().await;
}

#[tokio::test]
async fn opening_a_channel_that_is_closing_closes_the_connection_with_504() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut passive = queue_declare_args(&[6], b"nosuch");
    passive.extend_from_slice(&[1, 0, 0, 0, 0]);
    let mut client = raw_client(&broker).await;
    send(&mut client, &method(1, 50, 10, &passive)).await;
    match within("channel.close", client.recv_method()).await {
        Some((1, AMQPClass::Channel(amqp_channel::AMQPMethod::Close(_)))) => {}
        other => panic!("expected channel.close, got {other:?}"),
    }
    send(&mut client, &channel_open(1)).await;
    expect_connection_close(
        &mut client,
        close(
            504,
            Text::Is("CHANNEL_ERROR - second 'channel.open' seen"),
            20,
            10,
        ),
    )
    .await;
    bystander.assert_served().await;
}

#[tokio::test]
async fn a_stray_content_header_on_a_closing_channel_is_505() {
    let broker = TestBroker::start().await;
    let mut passive = queue_declare_args(&[6], b"nosuch");
    passive.extend_from_slice(&[1, 0, 0, 0, 0]);
    let mut client = raw_client(&broker).await;
    send(&mut client, &method(1, 50, 10, &passive)).await;
    match within("channel.close", client.recv_method()).await {
        Some((1, AMQPClass::Channel(amqp_channel::AMQPMethod::Close(_)))) => {}
        other => panic!("expected channel.close, got {other:?}"),
    }
    send(&mut client, &header(1, 60, 3)).await;
    expect_connection_close(&mut client, close(505, EXPECTED_METHOD, 0, 0)).await;
}

#[tokio::test]
async fn a_method_on_a_channel_closed_by_the_client_closes_the_connection_with_504() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let mut client = raw_client(&broker).await;
    send(
        &mut client,
        &channel_method(
            1,
            amqp_channel::AMQPMethod::Close(amqp_channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            }),
        ),
    )
    .await;
    match within("channel.close-ok", client.recv_method()).await {
        Some((1, AMQPClass::Channel(amqp_channel::AMQPMethod::CloseOk(_)))) => {}
        other => panic!("expected channel.close-ok, got {other:?}"),
    }
    send(&mut client, &queue_declare(1, "q")).await;
    expect_connection_close(&mut client, close(504, EXPECTED_OPEN, 50, 10)).await;
    bystander.assert_served().await;
}

#[tokio::test]
async fn exceeding_channel_max_open_channels_closes_the_connection_with_530() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let (mut client, _) = within(
        "the raw handshake",
        RawClient::open(broker.addr(), |tune| amqp_connection::TuneOk {
            channel_max: 2,
            frame_max: tune.frame_max,
            heartbeat: 0,
        }),
    )
    .await;
    // channel_max limits how many channels are open, not their numbers.
    within("channel.open-ok", client.open_channel(100)).await;
    within("channel.open-ok", client.open_channel(1)).await;
    send(&mut client, &channel_open(2)).await;
    expect_connection_close(
        &mut client,
        close(
            530,
            Text::Is(
                "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)",
            ),
            0,
            0,
        ),
    )
    .await;
    bystander.assert_served().await;
}

#[tokio::test]
async fn tune_ok_with_zero_limits_means_the_servers_limits() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let (mut client, tune) = within(
        "the raw handshake",
        RawClient::open(broker.addr(), |_| amqp_connection::TuneOk {
            channel_max: 0,
            frame_max: 0,
            heartbeat: 0,
        }),
    )
    .await;
    assert_eq!((tune.channel_max, tune.frame_max), (2047, 131_072));
    within("channel.open-ok", client.open_channel(1)).await;
    declare_ok(&mut client, 1, "q").await;
    let over = vec![b'x'; 131_073];
    for f in [publish_to(1, "q"), header(1, 60, 131_073), body(1, &over)] {
        send(&mut client, &f).await;
    }
    expect_connection_close(
        &mut client,
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
    bystander.assert_served().await;
}

// ---------------------------------------------------------------------------------------------
// channel 0

#[tokio::test]
async fn a_non_connection_method_on_channel_0_closes_the_connection_with_504() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let cases = [
        (queue_declare(0, "q0"), 50, 10),
        (channel_open(0), 20, 10),
        (publish_to(0, "q0"), 60, 40),
        (
            encoded(
                0,
                AMQPClass::Connection(amqp_connection::AMQPMethod::OpenOk(
                    amqp_connection::OpenOk {},
                )),
            ),
            10,
            41,
        ),
    ];
    for (frame, class_id, method_id) in cases {
        abuse(
            &broker,
            &mut bystander,
            &[frame],
            close(504, NOT_RUNNING, class_id, method_id),
        )
        .await;
    }
}

#[tokio::test]
async fn a_content_frame_on_channel_0_closes_the_connection_with_505() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for frame in [header(0, 60, 3), body(0, b"abc")] {
        abuse(
            &broker,
            &mut bystander,
            &[frame],
            close(505, Text::Prefix("UNEXPECTED_FRAME - "), 0, 0),
        )
        .await;
    }
}

#[tokio::test]
async fn a_heartbeat_on_a_channel_other_than_0_closes_the_connection_with_505() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    for channel in [1, 7] {
        abuse(
            &broker,
            &mut bystander,
            &[heartbeat(channel)],
            close(505, Text::Prefix("UNEXPECTED_FRAME - type 8"), 0, 0),
        )
        .await;
    }
    // A heartbeat on channel 0, even in the middle of a message, is fine.
    let mut client = raw_client(&broker).await;
    declare_ok(&mut client, 1, "hb").await;
    for f in [
        heartbeat(0),
        publish_to(1, "hb"),
        heartbeat(0),
        header(1, 60, 3),
        heartbeat(0),
        body(1, b"abc"),
    ] {
        send(&mut client, &f).await;
    }
    assert_eq!(declare_ok(&mut client, 1, "hb").await, 1);
}

#[tokio::test]
async fn a_heartbeat_with_a_payload_closes_the_connection_with_501() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    abuse(
        &broker,
        &mut bystander,
        &[frame(FRAME_HEARTBEAT, 0, b"abc")],
        close(
            501,
            Text::Frame("FRAME_ERROR - type 8", ": unknown_frame", ""),
            0,
            0,
        ),
    )
    .await;
}

#[tokio::test]
async fn server_only_and_misplaced_methods_close_the_connection_with_503() {
    let broker = TestBroker::start().await;
    let mut bystander = Bystander::start(&broker).await;
    let declare_ok = encoded(
        1,
        AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(amqp_queue::DeclareOk {
            queue: "q".into(),
            message_count: 0,
            consumer_count: 0,
        })),
    );
    let open_ok = channel_method(1, amqp_channel::AMQPMethod::OpenOk(amqp_channel::OpenOk {}));
    let connection_open = encoded(
        1,
        AMQPClass::Connection(amqp_connection::AMQPMethod::Open(amqp_connection::Open {
            virtual_host: "/".into(),
        })),
    );
    let cases = [
        (declare_ok, 50, 11),
        (open_ok, 20, 11),
        (channel_close_ok(1), 20, 41),
        (connection_open, 10, 40),
    ];
    for (frame, class_id, method_id) in cases {
        abuse(
            &broker,
            &mut bystander,
            &[frame],
            close(503, UNIMPLEMENTED, class_id, method_id),
        )
        .await;
    }
}
