//! connection: a whole Warren connection driven by arbitrary bytes after a valid handshake.
//!
//! The target runs a real broker in the process (over an in-memory store, on a tokio runtime
//! with one worker thread, whose stack is a worker's 2 MiB as in production) and serves each
//! input's connection over an in-memory pipe (`warren::connection::serve_stream`, no socket):
//! per input it does the handshake (PLAIN guest/guest, heartbeats off), sends the input as is,
//! half-closes, and reads until the broker closes its end.
//! Checks that nothing in the broker panics or overflows its stack (a panic in any task aborts
//! the process under libFuzzer), and that the broker ends the connection within 10 s of the
//! client's EOF. Every 200 inputs the fuzz vhost is deleted and made anew, so what inputs
//! declare and publish does not pile up.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::broker::metadata::permissions::PermissionSpec;
use warren::broker::metadata::VhostRecord;
use warren::broker::Broker;
use warren::store::memory::MemoryStore;
use warren::Config;
use warren_amqp::frame::{self, FrameKind};
use warren_amqp::protocol::connection as conn;
use warren_amqp::{AMQPClass, LongString, PROTOCOL_HEADER};

const VHOST: &str = "fuzz";
/// Inputs between two resets of the fuzz vhost.
const RESET_EVERY: u64 = 200;

struct Harness {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    /// Never changes: handed to every connection as the server's shutdown signal.
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The client's side of the handshake, sent in one write.
    handshake: Vec<u8>,
    runs: AtomicU64,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = Config {
            bind: [127, 0, 0, 1].into(),
            amqp_port: 0,
            data_dir: std::env::temp_dir().join("warren-fuzz-unused"),
            heartbeat: 0,
            close_linger: 0,
            handshake_timeout: 5,
            max_message_size: 1 << 20,
            ..Config::default()
        };
        let broker = Arc::new(
            Broker::with_store(config, Arc::new(MemoryStore::default())).expect("broker opens"),
        );
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        // The sender lives as long as the process: connections are never told to stop.
        std::mem::forget(_stop);
        rt.block_on(async { reset_vhost(&broker) });
        Harness {
            rt,
            broker,
            shutdown,
            handshake: handshake(),
            runs: AtomicU64::new(0),
        }
    })
}

fn reset_vhost(broker: &Broker) {
    broker.delete_vhost(VHOST, "fuzz");
    broker.add_vhost(VhostRecord::named(VHOST), "fuzz");
    let all = ".*".to_owned();
    broker
        .metadata
        .set_permissions(
            PermissionSpec {
                user: "guest".into(),
                vhost: VHOST.into(),
                configure: all.clone(),
                write: all.clone(),
                read: all,
            },
            "fuzz",
        )
        .expect("permissions");
}

fn handshake() -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(PROTOCOL_HEADER);
    let send = |buf: &mut BytesMut, m: conn::AMQPMethod| {
        warren_amqp::encode::method(buf, 0, &AMQPClass::Connection(m))
    };
    send(
        &mut buf,
        conn::AMQPMethod::StartOk(conn::StartOk {
            client_properties: warren_fuzz::client_properties(),
            mechanism: "PLAIN".into(),
            response: LongString::from(b"\0guest\0guest".to_vec()),
            locale: "en_US".into(),
        }),
    );
    send(
        &mut buf,
        conn::AMQPMethod::TuneOk(conn::TuneOk {
            channel_max: 64,
            frame_max: 131072,
            heartbeat: 0,
        }),
    );
    send(
        &mut buf,
        conn::AMQPMethod::Open(conn::Open {
            virtual_host: VHOST.into(),
        }),
    );
    buf.to_vec()
}

/// Reads until connection.open-ok; false if the broker refused or closed instead.
async fn opened(stream: &mut DuplexStream) -> bool {
    let mut input = BytesMut::with_capacity(4096);
    loop {
        while let Ok(Some(f)) = frame::decode(&mut input, 0) {
            if f.kind == FrameKind::Method && f.payload.starts_with(&[0, 10, 0, 41]) {
                return true;
            }
            if f.kind == FrameKind::Method && f.payload.starts_with(&[0, 10, 0, 50]) {
                return false;
            }
        }
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

async fn drive(h: &Harness, data: &[u8]) {
    let (mut stream, server) = tokio::io::duplex(256 * 1024);
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let local = SocketAddr::from(([127, 0, 0, 1], 5672));
    tokio::spawn(warren::connection::serve_stream(
        server,
        peer,
        local,
        h.broker.clone(),
        h.shutdown.clone(),
    ));
    stream.write_all(&h.handshake).await.unwrap();
    assert!(opened(&mut stream).await, "the handshake failed");
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Write and read at once: the broker stops reading while its output waits.
    let write = async move {
        let _ = writer.write_all(data).await;
        let _ = writer.shutdown().await;
    };
    let read = async move {
        let mut scratch = vec![0u8; 64 * 1024];
        while let Ok(n) = reader.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(write, read);
    })
    .await;
    assert!(
        ended.is_ok(),
        "the broker kept the connection open 10 s after the client's EOF"
    );
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    if h.runs.fetch_add(1, Ordering::Relaxed) % RESET_EVERY == RESET_EVERY - 1 {
        h.rt.block_on(async { reset_vhost(&h.broker) });
    }
    h.rt.block_on(drive(h, data));
});
