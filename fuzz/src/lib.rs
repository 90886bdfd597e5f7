//! Helpers shared by the fuzz targets (fuzz_targets/*.rs) and the seed generator
//! (examples/gen_corpus.rs): a lenient frame splitter, nesting depth of parsed values, and one
//! sample of every AMQP 0-9-1 method Warren parses.

use bytes::{Bytes, BytesMut};
use warren_amqp::frame::{Frame, FrameKind};
use warren_amqp::protocol::{access, basic, channel, confirm, connection, exchange, queue, tx};
use warren_amqp::{AMQPClass, AMQPValue, BasicProperties, FieldArray, FieldTable, LongString};

/// Splits bytes into frames without judging them: the type octet picks a kind (mod 4), the
/// size is clamped to what is left, and the end octet is skipped whatever it is. Valid frames
/// come out exactly as `frame::decode` gives them, and a mutated stream still yields frames,
/// so targets behind the frame layer (the assembler) see mostly well-framed input.
pub fn lenient_frames(mut data: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while data.len() >= 7 {
        let kind = match data[0] % 4 {
            0 => FrameKind::Heartbeat,
            1 => FrameKind::Method,
            2 => FrameKind::Header,
            _ => FrameKind::Body,
        };
        let channel = u16::from_be_bytes([data[1], data[2]]);
        let size = u32::from_be_bytes([data[3], data[4], data[5], data[6]]) as usize;
        let rest = &data[7..];
        let size = size.min(rest.len());
        frames.push(Frame {
            kind,
            channel,
            payload: Bytes::copy_from_slice(&rest[..size]),
        });
        // The end octet, whatever it is.
        data = rest.get(size + 1..).unwrap_or(&[]);
    }
    frames
}

/// How deep a field table nests (itself counts as 1; each table or array inside adds one).
pub fn table_depth(table: &FieldTable) -> usize {
    1 + table.inner().values().map(value_depth).max().unwrap_or(0)
}

/// How deep a value nests (a scalar is 0, an array or table 1 plus what it holds).
pub fn value_depth(value: &AMQPValue) -> usize {
    match value {
        AMQPValue::FieldTable(t) => table_depth(t),
        AMQPValue::FieldArray(a) => 1 + a.as_slice().iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The deepest field table a method carries (0 if it has none).
pub fn method_depth(method: &AMQPClass) -> usize {
    match method {
        AMQPClass::Connection(connection::AMQPMethod::Start(m)) => {
            table_depth(&m.server_properties)
        }
        AMQPClass::Connection(connection::AMQPMethod::StartOk(m)) => {
            table_depth(&m.client_properties)
        }
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(m)) => table_depth(&m.arguments),
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(m)) => table_depth(&m.arguments),
        AMQPClass::Exchange(exchange::AMQPMethod::Unbind(m)) => table_depth(&m.arguments),
        AMQPClass::Queue(queue::AMQPMethod::Declare(m)) => table_depth(&m.arguments),
        AMQPClass::Queue(queue::AMQPMethod::Bind(m)) => table_depth(&m.arguments),
        AMQPClass::Queue(queue::AMQPMethod::Unbind(m)) => table_depth(&m.arguments),
        AMQPClass::Basic(basic::AMQPMethod::Consume(m)) => table_depth(&m.arguments),
        _ => 0,
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// A field table holding one value of every AMQP field type, nested two levels.
pub fn every_type_table() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("count".into(), AMQPValue::LongLongInt(3));
    inner.insert("reason".into(), text("expired"));
    let mut array = FieldArray::default();
    array.push(AMQPValue::FieldTable(inner.clone()));
    array.push(AMQPValue::ShortShortInt(-1));
    let mut t = FieldTable::default();
    t.insert("bool".into(), AMQPValue::Boolean(true));
    t.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    t.insert("u8".into(), AMQPValue::ShortShortUInt(8));
    t.insert("i16".into(), AMQPValue::ShortInt(-16));
    t.insert("u16".into(), AMQPValue::ShortUInt(16));
    t.insert("i32".into(), AMQPValue::LongInt(-32));
    t.insert("u32".into(), AMQPValue::LongUInt(32));
    t.insert("i64".into(), AMQPValue::LongLongInt(-64));
    t.insert("f32".into(), AMQPValue::Float(1.5));
    t.insert("f64".into(), AMQPValue::Double(-2.25));
    t.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(warren_amqp::types::DecimalValue {
            scale: 2,
            value: 314,
        }),
    );
    t.insert("short".into(), AMQPValue::ShortString("short".into()));
    t.insert("long".into(), text("long string"));
    t.insert("array".into(), AMQPValue::FieldArray(array));
    t.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
    t.insert("table".into(), AMQPValue::FieldTable(inner));
    t.insert(
        "bytes".into(),
        AMQPValue::ByteArray(vec![0u8, 1, 2, 255].into()),
    );
    t.insert("void".into(), AMQPValue::Void);
    t
}

/// Queue arguments as clients send them.
pub fn queue_arguments() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
    t.insert("x-max-length".into(), AMQPValue::LongInt(1000));
    t.insert("x-dead-letter-exchange".into(), text("dlx"));
    t.insert("x-queue-type".into(), text("classic"));
    t
}

/// Client properties as a RabbitMQ client sends them in connection.start-ok.
pub fn client_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        caps.insert(name.into(), AMQPValue::Boolean(true));
    }
    let mut t = FieldTable::default();
    t.insert("product".into(), text("warren-fuzz"));
    t.insert("platform".into(), text("Rust"));
    t.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    t
}

/// One sample of every method Warren parses (every class and method
/// `assembler::parse_method` knows), named as `class.method`.
pub fn every_method() -> Vec<(&'static str, AMQPClass)> {
    use AMQPClass as C;
    let conn = |m| C::Connection(m);
    let chan = |m| C::Channel(m);
    let exch = |m| C::Exchange(m);
    let q = |m| C::Queue(m);
    let b = |m| C::Basic(m);
    vec![
        (
            "connection.start",
            conn(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: client_properties(),
                mechanisms: "PLAIN AMQPLAIN".into(),
                locales: "en_US".into(),
            })),
        ),
        (
            "connection.start-ok",
            conn(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(),
                mechanism: "PLAIN".into(),
                response: LongString::from(b"\0guest\0guest".to_vec()),
                locale: "en_US".into(),
            })),
        ),
        (
            "connection.secure",
            conn(connection::AMQPMethod::Secure(connection::Secure {
                challenge: "challenge".into(),
            })),
        ),
        (
            "connection.secure-ok",
            conn(connection::AMQPMethod::SecureOk(connection::SecureOk {
                response: "response".into(),
            })),
        ),
        (
            "connection.tune",
            conn(connection::AMQPMethod::Tune(connection::Tune {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 60,
            })),
        ),
        (
            "connection.tune-ok",
            conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 0,
            })),
        ),
        (
            "connection.open",
            conn(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ),
        (
            "connection.open-ok",
            conn(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        ),
        (
            "connection.close",
            conn(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "Goodbye".into(),
                class_id: 0,
                method_id: 0,
            })),
        ),
        (
            "connection.close-ok",
            conn(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        ),
        (
            "connection.blocked",
            conn(connection::AMQPMethod::Blocked(connection::Blocked {
                reason: "low on memory".into(),
            })),
        ),
        (
            "connection.unblocked",
            conn(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
        ),
        (
            "connection.update-secret",
            conn(connection::AMQPMethod::UpdateSecret(
                connection::UpdateSecret {
                    new_secret: "secret".into(),
                    reason: "refresh".into(),
                },
            )),
        ),
        (
            "connection.update-secret-ok",
            conn(connection::AMQPMethod::UpdateSecretOk(
                connection::UpdateSecretOk {},
            )),
        ),
        (
            "channel.open",
            chan(channel::AMQPMethod::Open(channel::Open {})),
        ),
        (
            "channel.open-ok",
            chan(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        ),
        (
            "channel.flow",
            chan(channel::AMQPMethod::Flow(channel::Flow { active: false })),
        ),
        (
            "channel.flow-ok",
            chan(channel::AMQPMethod::FlowOk(channel::FlowOk {
                active: true,
            })),
        ),
        (
            "channel.close",
            chan(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        ),
        (
            "channel.close-ok",
            chan(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        ),
        (
            "access.request",
            C::Access(access::AMQPMethod::Request(access::Request {
                realm: "/data".into(),
                exclusive: false,
                passive: true,
                active: true,
                write: true,
                read: true,
            })),
        ),
        (
            "access.request-ok",
            C::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
        ),
        (
            "exchange.declare",
            exch(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: "fuzz.topic".into(),
                kind: "topic".into(),
                durable: true,
                arguments: every_type_table(),
                ..Default::default()
            })),
        ),
        (
            "exchange.declare-ok",
            exch(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        ),
        (
            "exchange.delete",
            exch(exchange::AMQPMethod::Delete(exchange::Delete {
                exchange: "fuzz.topic".into(),
                if_unused: true,
                nowait: false,
            })),
        ),
        (
            "exchange.delete-ok",
            exch(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
        ),
        (
            "exchange.bind",
            exch(exchange::AMQPMethod::Bind(exchange::Bind {
                destination: "fuzz.topic".into(),
                source: "amq.topic".into(),
                routing_key: "a.*.c".into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        ),
        (
            "exchange.bind-ok",
            exch(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
        ),
        (
            "exchange.unbind",
            exch(exchange::AMQPMethod::Unbind(exchange::Unbind {
                destination: "fuzz.topic".into(),
                source: "amq.topic".into(),
                routing_key: "a.*.c".into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        ),
        (
            "exchange.unbind-ok",
            exch(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
        ),
        (
            "queue.declare",
            q(queue::AMQPMethod::Declare(queue::Declare {
                queue: "fuzz.q".into(),
                auto_delete: true,
                arguments: queue_arguments(),
                ..Default::default()
            })),
        ),
        (
            "queue.declare-ok",
            q(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: "fuzz.q".into(),
                message_count: 5,
                consumer_count: 1,
            })),
        ),
        (
            "queue.bind",
            q(queue::AMQPMethod::Bind(queue::Bind {
                queue: "fuzz.q".into(),
                exchange: "amq.direct".into(),
                routing_key: "fuzz.q".into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        ),
        (
            "queue.bind-ok",
            q(queue::AMQPMethod::BindOk(queue::BindOk {})),
        ),
        (
            "queue.purge",
            q(queue::AMQPMethod::Purge(queue::Purge {
                queue: "fuzz.q".into(),
                nowait: false,
            })),
        ),
        (
            "queue.purge-ok",
            q(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: 3,
            })),
        ),
        (
            "queue.delete",
            q(queue::AMQPMethod::Delete(queue::Delete {
                queue: "fuzz.q".into(),
                if_unused: false,
                if_empty: true,
                nowait: false,
            })),
        ),
        (
            "queue.delete-ok",
            q(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: 0,
            })),
        ),
        (
            "queue.unbind",
            q(queue::AMQPMethod::Unbind(queue::Unbind {
                queue: "fuzz.q".into(),
                exchange: "amq.direct".into(),
                routing_key: "fuzz.q".into(),
                arguments: FieldTable::default(),
            })),
        ),
        (
            "queue.unbind-ok",
            q(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        ),
        (
            "basic.qos",
            b(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 10,
                global: false,
            })),
        ),
        ("basic.qos-ok", b(basic::AMQPMethod::QosOk(basic::QosOk {}))),
        (
            "basic.consume",
            b(basic::AMQPMethod::Consume(basic::Consume {
                queue: "fuzz.q".into(),
                consumer_tag: "ctag".into(),
                no_ack: false,
                arguments: {
                    let mut t = FieldTable::default();
                    t.insert("x-priority".into(), AMQPValue::LongInt(5));
                    t
                },
                ..Default::default()
            })),
        ),
        (
            "basic.consume-ok",
            b(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: "ctag".into(),
            })),
        ),
        (
            "basic.cancel",
            b(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: "ctag".into(),
                nowait: false,
            })),
        ),
        (
            "basic.cancel-ok",
            b(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: "ctag".into(),
            })),
        ),
        ("basic.publish", publish("", "fuzz.q")),
        (
            "basic.return",
            b(basic::AMQPMethod::Return(basic::Return {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "amq.direct".into(),
                routing_key: "nowhere".into(),
            })),
        ),
        (
            "basic.deliver",
            b(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "ctag".into(),
                delivery_tag: 1,
                redelivered: false,
                exchange: "".into(),
                routing_key: "fuzz.q".into(),
            })),
        ),
        (
            "basic.get",
            b(basic::AMQPMethod::Get(basic::Get {
                queue: "fuzz.q".into(),
                no_ack: false,
            })),
        ),
        (
            "basic.get-ok",
            b(basic::AMQPMethod::GetOk(basic::GetOk {
                delivery_tag: 1,
                redelivered: true,
                exchange: "".into(),
                routing_key: "fuzz.q".into(),
                message_count: 0,
            })),
        ),
        (
            "basic.get-empty",
            b(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
        ),
        (
            "basic.ack",
            b(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 1,
                multiple: false,
            })),
        ),
        (
            "basic.reject",
            b(basic::AMQPMethod::Reject(basic::Reject {
                delivery_tag: 1,
                requeue: true,
            })),
        ),
        (
            "basic.recover-async",
            b(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync {
                requeue: true,
            })),
        ),
        (
            "basic.recover",
            b(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
        ),
        (
            "basic.recover-ok",
            b(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
        ),
        (
            "basic.nack",
            b(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 1,
                multiple: true,
                requeue: false,
            })),
        ),
        ("tx.select", C::Tx(tx::AMQPMethod::Select(tx::Select {}))),
        (
            "tx.select-ok",
            C::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        ),
        ("tx.commit", C::Tx(tx::AMQPMethod::Commit(tx::Commit {}))),
        (
            "tx.commit-ok",
            C::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        ),
        (
            "tx.rollback",
            C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        ),
        (
            "tx.rollback-ok",
            C::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        ),
        (
            "confirm.select",
            C::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        ),
        (
            "confirm.select-ok",
            C::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        ),
    ]
}

/// basic.publish to `exchange` with `routing_key`.
pub fn publish(exchange: &str, routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    }))
}

/// Properties with every field set.
pub fn full_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(every_type_table())
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-1".into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("fuzz".into())
        .with_user_id("guest".into())
        .with_app_id("warren-fuzz".into())
        .with_cluster_id("c1".into())
}

/// A method frame on `channel`.
pub fn method_frame(buf: &mut BytesMut, channel: u16, method: &AMQPClass) {
    warren_amqp::encode::method(buf, channel, method);
}

/// A content header and body frames on `channel`, split by `frame_max`.
pub fn content_frames(
    buf: &mut BytesMut,
    channel: u16,
    props: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    let mut raw = BytesMut::new();
    warren_amqp::encode::properties(&mut raw, props);
    warren_amqp::encode::content(buf, channel, &raw, &Bytes::copy_from_slice(body), frame_max);
}
