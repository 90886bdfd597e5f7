//! Writes the seed corpus, fuzz/corpus/<target>/seed-*: valid frames of every method Warren
//! parses, encoded by warren_amqp's own encoder, in each target's input format.
//!
//! Run from fuzz/: `cargo run --example gen_corpus` (it replaces the seed-* files only; the
//! inputs a fuzzer adds beside them are left alone).

use bytes::BytesMut;
use std::fs;
use std::path::Path;
use warren_amqp::encode;
use warren_amqp::protocol::{basic, channel, confirm, queue, tx};
use warren_amqp::{AMQPClass, BasicProperties, FieldTable};
use warren_fuzz::{content_frames, every_method, full_properties, method_frame, publish};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// Clears a target's previous seeds.
fn clear(target: &str) {
    let dir = Path::new("corpus").join(target);
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("seed-") {
                fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

/// Connection methods go on channel 0, the rest on channel 1.
fn channel_of(method: &AMQPClass) -> u16 {
    match method {
        AMQPClass::Connection(_) => 0,
        _ => 1,
    }
}

fn frame(method: &AMQPClass) -> BytesMut {
    let mut buf = BytesMut::new();
    method_frame(&mut buf, channel_of(method), method);
    buf
}

/// A publish with its content on `channel`.
fn published(
    buf: &mut BytesMut,
    channel: u16,
    props: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    method_frame(buf, channel, &publish("amq.direct", "fuzz.q"));
    content_frames(buf, channel, props, body, frame_max);
}

/// A session as a client drives one after the handshake: what the connection target replays.
fn session() -> Vec<(&'static str, BytesMut)> {
    use AMQPClass as C;
    let open = C::Channel(channel::AMQPMethod::Open(channel::Open {}));
    let declare = every_method()
        .into_iter()
        .find(|(n, _)| *n == "queue.declare")
        .unwrap()
        .1;
    let m = |name: &str| {
        every_method()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    let mut out = Vec::new();

    let mut publish_consume = BytesMut::new();
    for method in [&open, &declare, &m("basic.qos"), &m("basic.consume")] {
        method_frame(&mut publish_consume, 1, method);
    }
    published(
        &mut publish_consume,
        1,
        &full_properties(),
        b"hello",
        131072,
    );
    method_frame(&mut publish_consume, 1, &m("basic.ack"));
    method_frame(&mut publish_consume, 1, &m("basic.cancel"));
    method_frame(&mut publish_consume, 1, &m("channel.close"));
    out.push(("publish-consume", publish_consume));

    let mut confirms = BytesMut::new();
    method_frame(&mut confirms, 1, &open);
    method_frame(&mut confirms, 1, &declare);
    method_frame(
        &mut confirms,
        1,
        &C::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    );
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    published(
        &mut confirms,
        1,
        &BasicProperties::default().with_delivery_mode(2),
        &big,
        4096,
    );
    published(&mut confirms, 1, &BasicProperties::default(), b"", 4096);
    method_frame(&mut confirms, 1, &m("basic.get"));
    method_frame(&mut confirms, 1, &m("basic.nack"));
    out.push(("confirms-get-nack", confirms));

    let mut tx = BytesMut::new();
    method_frame(&mut tx, 1, &open);
    method_frame(&mut tx, 1, &declare);
    method_frame(&mut tx, 1, &C::Tx(tx::AMQPMethod::Select(tx::Select {})));
    published(
        &mut tx,
        1,
        &BasicProperties::default(),
        b"in a transaction",
        131072,
    );
    method_frame(&mut tx, 1, &C::Tx(tx::AMQPMethod::Commit(tx::Commit {})));
    method_frame(&mut tx, 1, &m("basic.get"));
    method_frame(&mut tx, 1, &m("basic.reject"));
    method_frame(
        &mut tx,
        1,
        &C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
    );
    out.push(("tx", tx));

    let mut topology = BytesMut::new();
    method_frame(&mut topology, 1, &open);
    for name in [
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "exchange.bind",
        "exchange.unbind",
        "queue.unbind",
        "queue.purge",
        "basic.recover",
        "channel.flow",
        "queue.delete",
        "exchange.delete",
    ] {
        method_frame(&mut topology, 1, &m(name));
    }
    out.push(("topology", topology));

    let mut two_channels = BytesMut::new();
    method_frame(&mut two_channels, 1, &open);
    method_frame(&mut two_channels, 2, &open);
    method_frame(&mut two_channels, 1, &declare);
    method_frame(&mut two_channels, 1, &publish("", "fuzz.q"));
    method_frame(&mut two_channels, 2, &publish("", "fuzz.q"));
    content_frames(
        &mut two_channels,
        1,
        &BasicProperties::default(),
        b"one",
        4096,
    );
    content_frames(
        &mut two_channels,
        2,
        &BasicProperties::default(),
        b"two",
        4096,
    );
    method_frame(
        &mut two_channels,
        2,
        &C::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "fuzz.q".into(),
            ..Default::default()
        })),
    );
    encode::heartbeat(&mut two_channels);
    method_frame(&mut two_channels, 0, &m("connection.close"));
    out.push(("two-channels-close", two_channels));

    // Every method, each on a freshly opened channel (connection methods on channel 0).
    for (name, method) in every_method() {
        let mut buf = BytesMut::new();
        if channel_of(&method) == 1 {
            method_frame(&mut buf, 1, &open);
        }
        buf.extend_from_slice(&frame(&method));
        if matches!(
            method,
            C::Basic(
                basic::AMQPMethod::Publish(_)
                    | basic::AMQPMethod::Deliver(_)
                    | basic::AMQPMethod::GetOk(_)
                    | basic::AMQPMethod::Return(_)
            )
        ) {
            content_frames(&mut buf, 1, &BasicProperties::default(), b"body", 4096);
        }
        out.push((name, buf));
    }
    out
}

/// A field table `{"k": [[...]]}` nested `depth` levels (the table counts as one), on the wire.
fn nested(depth: usize) -> Vec<u8> {
    let mut value = vec![b'V'];
    for _ in 1..depth {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        outer.extend_from_slice(&value);
        value = outer;
    }
    let mut entries = vec![1, b'k'];
    entries.extend_from_slice(&value);
    let mut table = (entries.len() as u32).to_be_bytes().to_vec();
    table.extend_from_slice(&entries);
    table
}

fn main() {
    for target in [
        "frame_decode",
        "assemble",
        "method_parse",
        "properties",
        "connection",
    ] {
        clear(target);
    }
    let methods = every_method();

    // method_parse: each method's payload.
    for (name, method) in &methods {
        let f = frame(method);
        write("method_parse", name, &f[7..f.len() - 1]);
    }

    // Findings: tables nested one level past MAX_NESTING (refused, no longer a stack overflow).
    let deep = nested(warren_amqp::MAX_NESTING + 1);
    let mut declare = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
    declare.extend_from_slice(&deep);
    write("method_parse", "regression-deep-arguments", &declare);
    let mut headers = vec![0u8];
    headers.extend_from_slice(&(1u16 << 13).to_be_bytes());
    headers.extend_from_slice(&deep);
    write("properties", "regression-deep-headers", &headers);

    // frame_decode: two control bytes (frame_max choice, piece size), then frames.
    for (i, (name, method)) in methods.iter().enumerate() {
        let mut input = vec![[1, 2, 0][i % 3], i as u8];
        input.extend_from_slice(&frame(method));
        write("frame_decode", name, &input);
    }
    let mut content = BytesMut::from(&[1u8, 7][..]);
    published(&mut content, 1, &full_properties(), &[0x42; 5000], 4096);
    encode::heartbeat(&mut content);
    write("frame_decode", "publish-content-heartbeat", &content);

    // Findings, minimised: a 7-byte header announcing 3.5 GB with no frame_max.
    write(
        "frame_decode",
        "regression-unbounded-reserve",
        &[0x00, 0x41, 0x01, 0x00, 0xb1, 0xd0, 0x01, 0x55, 0xce],
    );

    // assemble: a control byte (max_body choice), then frames.
    for (i, (name, method)) in methods.iter().enumerate() {
        let mut input = vec![i as u8];
        input.extend_from_slice(&frame(method));
        write("assemble", name, &input);
    }
    for (control, body_len) in [(2u8, 10usize), (3, 5000), (5, 0), (1, 2)] {
        let mut input = BytesMut::from(&[control][..]);
        published(
            &mut input,
            1,
            &full_properties(),
            &vec![7u8; body_len],
            4096,
        );
        write(
            "assemble",
            &format!("publish-{body_len}-max{control}"),
            &input,
        );
    }
    let mut interleaved = BytesMut::from(&[5u8][..]);
    method_frame(&mut interleaved, 1, &publish("", "a"));
    method_frame(&mut interleaved, 2, &publish("", "b"));
    content_frames(
        &mut interleaved,
        2,
        &BasicProperties::default(),
        &[2; 6000],
        4096,
    );
    content_frames(
        &mut interleaved,
        1,
        &BasicProperties::default(),
        &[1; 6000],
        4096,
    );
    write("assemble", "interleaved-channels", &interleaved);

    // properties: 0 then flags and property list; 1 then a field table.
    let mut props: Vec<(String, BasicProperties)> = vec![
        ("default".into(), BasicProperties::default()),
        ("full".into(), full_properties()),
        (
            "persistent-text".into(),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("text/plain".into()),
        ),
    ];
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), warren_amqp::AMQPValue::LongInt(1000));
    props.push((
        "headers".into(),
        BasicProperties::default().with_headers(headers),
    ));
    for (name, p) in props {
        let mut input = BytesMut::from(&[0u8][..]);
        encode::properties(&mut input, &p);
        write("properties", &format!("props-{name}"), &input);
    }
    for (name, table) in [
        ("every-type", warren_fuzz::every_type_table()),
        ("queue-arguments", warren_fuzz::queue_arguments()),
        ("client-properties", warren_fuzz::client_properties()),
        ("empty", FieldTable::default()),
    ] {
        let mut input = BytesMut::from(&[1u8][..]);
        encode::field_table(&mut input, &table);
        write("properties", &format!("table-{name}"), &input);
    }

    // connection: what a client sends after the handshake.
    for (name, bytes) in session() {
        write("connection", name, &bytes);
    }
    println!("seeds written under corpus/");
}
