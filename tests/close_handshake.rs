//! The end of a connection the client closes. After close-ok the client, not the broker, closes
//! the socket, as with RabbitMQ: a broker that hangs up first races the client's own shutdown
//! (Go's amqp091 then reports `Exception (501) "EOF"` for a clean close), and one that hangs up
//! with the client's later bytes unread turns its close into a reset that discards the
//! close-ok (amqplib then never sees its close complete).

mod common;

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{connection, AMQPClass};
use common::raw::RawClient;
use common::wire::{body, header, publish_to, raw_client};
use common::*;
use std::time::Duration;

/// How long a test watches for the broker to hang up when it must not.
const WATCH: Duration = Duration::from_secs(1);

fn bytes_of(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("frame encodes")
        .write
}

fn connection_close() -> AMQPFrame {
    AMQPFrame::Method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "Goodbye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
}

/// A publish of a 16-byte body to a queue that does not exist: method, header and body.
fn publish_frames(out: &mut Vec<u8>) {
    out.extend(publish_to(1, "nowhere"));
    out.extend(header(1, 60, 16));
    out.extend(body(1, &[7; 16]));
}

async fn expect_close_ok(client: &mut RawClient) {
    match within("connection.close-ok", client.recv_method()).await {
        Some((0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
}

/// Asserts that the broker neither sends anything nor hangs up for a while.
async fn expect_open_and_silent(client: &mut RawClient, after: &str) {
    if let Ok(got) = tokio::time::timeout(WATCH, client.recv()).await {
        match got {
            None => panic!("the broker closed the socket {after}"),
            Some(frame) => panic!("the broker sent {frame:?} {after}"),
        }
    }
}

#[tokio::test]
async fn after_close_ok_the_socket_stays_open_until_the_client_closes_it() {
    let broker = TestBroker::start().await;
    let mut client = raw_client(&broker).await;
    client.send(&connection_close()).await;
    expect_close_ok(&mut client).await;
    expect_open_and_silent(&mut client, "after close-ok, before the client closed it").await;
    client.shutdown().await;
    assert!(
        within("the broker to close its side", client.recv())
            .await
            .is_none(),
        "the broker sent a frame after close-ok"
    );
}

#[tokio::test]
async fn publishes_written_after_connection_close_are_read_and_dropped_without_a_reset() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let mut client = raw_client(&broker).await;
    // One write: the close, then 2,000 publishes the client had buffered behind it.
    let mut burst = bytes_of(&connection_close());
    for _ in 0..2000 {
        publish_frames(&mut burst);
    }
    client
        .send_bytes(&burst)
        .await
        .expect("the burst is written");
    expect_close_ok(&mut client).await;
    expect_open_and_silent(
        &mut client,
        "after close-ok to a close with publishes behind it",
    )
    .await;
    client.shutdown().await;
    assert!(within("the broker to close its side", client.recv())
        .await
        .is_none());
    // The publishes after the close were not acted on, and the broker serves others.
    declare_queue(&ch, "nowhere").await;
    assert_eq!(queue_counts(&ch, "nowhere").await, (0, 0));
}

#[tokio::test]
async fn a_client_that_never_closes_after_close_ok_is_closed_after_the_linger() {
    let broker = TestBroker::start_with(|c| c.close_linger = 1).await;
    let mut client = raw_client(&broker).await;
    client.send(&connection_close()).await;
    expect_close_ok(&mut client).await;
    assert!(
        within("the broker to give up on the client", client.recv())
            .await
            .is_none(),
        "the broker sent a frame after close-ok"
    );
}

#[tokio::test]
async fn lingering_sockets_do_not_hold_up_a_graceful_stop() {
    let broker = TestBroker::start().await;
    let mut client = raw_client(&broker).await;
    client.send(&connection_close()).await;
    expect_close_ok(&mut client).await;
    // The linger is 30 s and a stop waits up to 5 s for connections: it must not wait at all.
    tokio::time::timeout(Duration::from_secs(3), broker.server.stop())
        .await
        .expect("the stop waited for a lingering socket")
        .expect("the broker stops cleanly");
    assert!(within("the socket to close", client.recv()).await.is_none());
}

#[tokio::test]
async fn lapin_closes_200_connections_without_an_error() {
    use futures_lite::StreamExt;
    let broker = TestBroker::start().await;
    let mut listeners = Vec::new();
    for _ in 0..200 {
        let (conn, ch) = broker.channel().await;
        listeners.push(Box::pin(conn.events_listener()));
        publish(&ch, "", "nowhere", b"before the close").await;
        within("connection.close-ok", conn.close(200, "bye".into()))
            .await
            .expect("lapin's close succeeds");
    }
    // An error from a socket closed under lapin would follow the close: give it time to come.
    tokio::time::sleep(QUIET).await;
    let mut errors = Vec::new();
    for events in &mut listeners {
        while let Some(Some(event)) = futures_lite::future::poll_once(events.next()).await {
            if let lapin::Event::Error(e) = event {
                errors.push(e.to_string());
            }
        }
    }
    assert_eq!(errors, Vec::<String>::new());
}

#[tokio::test]
async fn amqprs_closes_200_connections_without_a_network_failure() {
    use amqprs::connection::{Connection, OpenConnectionArguments};
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    for i in 0..200 {
        let args =
            OpenConnectionArguments::new(&addr.ip().to_string(), addr.port(), "guest", "guest");
        let conn = within("amqprs connects", Connection::open(&args))
            .await
            .expect("amqprs connects");
        let watcher = conn.clone();
        let failure = tokio::spawn(async move { watcher.listen_network_io_failure().await });
        within("amqprs's close", conn.close())
            .await
            .expect("amqprs's close succeeds");
        let failed = within("amqprs's I/O to end", failure)
            .await
            .expect("joined");
        assert!(!failed, "amqprs reported a network failure on close {i}");
    }
}
