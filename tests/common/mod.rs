//! Shared test harness: a real Warren on 127.0.0.1 with an ephemeral port and a temporary data
//! directory, and lapin clients connected to it.
#![allow(dead_code)]

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use std::time::Duration;
use warren::{Config, Server};

pub mod api;
pub mod browser;
pub mod certs;
pub mod durable;
pub mod flows;
pub mod panics;
pub mod process;
pub mod provoke;
pub mod queues;
pub mod raw;
pub mod wire;

pub struct TestBroker {
    pub server: Server,
    /// The temporary data directory, unless the test brought its own (`start_in`).
    _data: Option<tempfile::TempDir>,
    /// Fails the test, when the broker is dropped, if anything but the test's own code panicked.
    _panics: panics::PanicCheck,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `adjust` has changed the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut broker = Self::start_in_with(data.path(), adjust).await;
        broker._data = Some(data);
        broker
    }

    /// Starts a broker on a data directory the test keeps, so that a later broker can start
    /// on what this one left behind.
    pub async fn start_in(dir: &std::path::Path) -> Self {
        Self::start_in_with(dir, |_| {}).await
    }

    pub async fn start_in_with(dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warren=debug")
            .with_test_writer()
            .try_init();
        let mut config = Config {
            bind: [127, 0, 0, 1].into(),
            amqp_port: 0,
            http_port: 0,
            prometheus_port: 0,
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        adjust(&mut config);
        let _panics = panics::PanicCheck::install();
        let server = Server::start(config).await.expect("broker starts");
        Self {
            server,
            _data: None,
            _panics,
        }
    }

    pub fn uri(&self) -> String {
        self.server.amqp_uri()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.amqp_addr
    }

    /// The management API's URL for `path` (which starts with /api).
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.http_addr)
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.uri(), ConnectionProperties::default())
            .await
            .expect("connects")
    }

    /// A new connection with one open channel.
    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("channel opens");
        (conn, ch)
    }
}

/// The AMQP reply code of a lapin error, if the broker sent one.
pub fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The reply text of a lapin error, if the broker sent one.
pub fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

/// Bounds an await so a broken broker fails the test instead of hanging it.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// How long a test waits before concluding that nothing more is coming.
pub const QUIET: Duration = Duration::from_millis(200);

/// Declares a plain (non-durable, non-exclusive) queue.
pub async fn declare_queue(ch: &Channel, name: &str) -> lapin::Queue {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.declare")
}

/// The queue's message and consumer counts, as a passive queue.declare reports them.
pub async fn queue_counts(ch: &Channel, name: &str) -> (u32, u32) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
        .expect("passive queue.declare");
    (q.message_count(), q.consumer_count())
}

/// Publishes a body with default properties.
pub async fn publish(ch: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    let options = BasicPublishOptions::default();
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        options,
        body,
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish");
}

/// The next delivery of a consumer; fails the test if it errors, ends or takes too long.
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    match within("a delivery", consumer.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("consumer failed: {e}"),
        None => panic!("consumer ended while a delivery was expected"),
    }
}

/// Asserts that a consumer receives nothing more within `QUIET`.
pub async fn assert_no_delivery(consumer: &mut Consumer) {
    if let Ok(Some(next)) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!(
            "expected no further delivery, got {:?}",
            next.map(|d| String::from_utf8_lossy(&d.data).into_owned())
        );
    }
}

/// The error a server's connection.close brings to a lapin connection.
pub fn closed_with(conn: &Connection) -> impl std::future::Future<Output = lapin::Error> + '_ {
    let mut events = Box::pin(conn.events_listener());
    within("the server's close", async move {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
}

/// A URI for `user` on `vhost`.
pub fn uri_as(b: &TestBroker, user: &str, pass: &str, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2F");
    format!("amqp://{user}:{pass}@{}/{vhost}", b.addr())
}

pub async fn connect_as(
    b: &TestBroker,
    user: &str,
    pass: &str,
    vhost: &str,
) -> lapin::Result<Connection> {
    within(
        "connection.open",
        Connection::connect(
            &uri_as(b, user, pass, vhost),
            ConnectionProperties::default(),
        ),
    )
    .await
}

pub async fn channel_as(
    b: &TestBroker,
    user: &str,
    pass: &str,
    vhost: &str,
) -> (Connection, Channel) {
    let conn = connect_as(b, user, pass, vhost)
        .await
        .unwrap_or_else(|e| panic!("{user} connects to {vhost}: {e}"));
    let ch = conn.create_channel().await.expect("channel.open");
    (conn, ch)
}
