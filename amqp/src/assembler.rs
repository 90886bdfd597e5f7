//! Per-channel assembly of frames into commands: a method frame, and for content-bearing
//! methods (basic.publish, and the server's deliver/get-ok/return) a content header frame and
//! as many body frames as the header's body size needs.

use crate::error::ProtocolError;
use crate::frame::{Frame, FrameKind};
use crate::nesting::{self, MAX_NESTING};
use amq_protocol::protocol::{basic, parse_class, AMQPClass, BasicProperties};
use bytes::{Buf, Bytes, BytesMut};

/// One complete AMQP command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub method: AMQPClass,
    pub content: Option<Content>,
}

/// The content of a basic.publish: properties as parsed and as received, and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub properties: BasicProperties,
    /// Property flags and list exactly as the publisher sent them, so deliveries carry the same
    /// bytes (field-table order and value types included) without re-encoding.
    pub raw_properties: Bytes,
    pub body: Bytes,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    WantHeader(AMQPClass),
    WantBody(Box<PartialContent>),
    /// Swallows the body of a content refused as too large.
    Discard(u64),
}

/// A content-bearing method whose header arrived and whose body is still coming.
#[derive(Debug)]
struct PartialContent {
    method: AMQPClass,
    properties: BasicProperties,
    raw_properties: Bytes,
    body: BodyParts,
    remaining: u64,
}

/// A body usually arrives in one frame, which is kept as is; only multi-frame bodies are copied
/// into one buffer.
#[derive(Debug)]
enum BodyParts {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    fn push(&mut self, part: Bytes) {
        *self = match std::mem::replace(self, BodyParts::Empty) {
            BodyParts::Empty => BodyParts::One(part),
            BodyParts::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() * 2 + part.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
            BodyParts::Many(mut all) => {
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

/// The frame-to-command state machine of one channel.
#[derive(Debug, Default)]
pub struct CommandAssembler {
    state: State,
}

/// What a frame did to the assembler.
#[derive(Debug, PartialEq)]
pub enum Assembled {
    /// The frame completed a command.
    Command(Box<Command>),
    /// More frames are needed.
    Incomplete,
    /// The content header announced a body larger than `max_body`: RabbitMQ answers that with a
    /// channel exception (406), not a connection one, so the caller decides.
    TooLarge { size: u64 },
}

impl CommandAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a content-bearing method waits for its header or body.
    pub fn in_content(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Forgets any partial command (used when the channel closes).
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    pub fn push(&mut self, frame: Frame, max_body: u64) -> Result<Assembled, ProtocolError> {
        match (std::mem::take(&mut self.state), frame.kind) {
            (State::Idle, FrameKind::Method) => {
                let method = parse_method(&frame.payload)?;
                if carries_content(&method) {
                    self.state = State::WantHeader(method);
                    Ok(Assembled::Incomplete)
                } else {
                    Ok(complete(method, None))
                }
            }
            (State::Idle, _) => Err(ProtocolError::unexpected(
                "expected method frame, got non method frame instead",
                (0, 0),
            )),
            (State::WantHeader(method), FrameKind::Header) => {
                self.on_header(method, frame.payload, max_body)
            }
            (State::WantHeader(method), _) => Err(ProtocolError::unexpected(
                format!(
                    "expected content header for class {}, got non content header frame instead",
                    method.get_amqp_class_id(),
                ),
                ids(&method),
            )),
            (State::WantBody(mut partial), FrameKind::Body) => {
                let len = frame.payload.len() as u64;
                if len > partial.remaining {
                    return Err(ProtocolError::unexpected(
                        format!(
                            "expected content body of at most {} bytes, got a body frame of {len} bytes",
                            partial.remaining
                        ),
                        ids(&partial.method),
                    ));
                }
                if len > 0 {
                    partial.body.push(frame.payload);
                }
                partial.remaining -= len;
                if partial.remaining == 0 {
                    let PartialContent {
                        method,
                        properties,
                        raw_properties,
                        body,
                        ..
                    } = *partial;
                    let content = Content {
                        properties,
                        raw_properties,
                        body: body.into_bytes(),
                    };
                    return Ok(complete(method, Some(content)));
                }
                self.state = State::WantBody(partial);
                Ok(Assembled::Incomplete)
            }
            (State::Discard(remaining), FrameKind::Body) => {
                let left = remaining.saturating_sub(frame.payload.len() as u64);
                if left > 0 {
                    self.state = State::Discard(left);
                }
                Ok(Assembled::Incomplete)
            }
            (State::Discard(_), _) => Err(ProtocolError::unexpected(
                "expected content body, got non content body frame instead",
                (60, 40),
            )),
            (State::WantBody(partial), _) => Err(ProtocolError::unexpected(
                "expected content body, got non content body frame instead",
                ids(&partial.method),
            )),
        }
    }

    fn on_header(
        &mut self,
        method: AMQPClass,
        mut payload: Bytes,
        max_body: u64,
    ) -> Result<Assembled, ProtocolError> {
        if payload.len() < 14 {
            return Err(ProtocolError::malformed(
                "content header frame",
                ids(&method),
            ));
        }
        let class_id = payload.get_u16();
        let _weight = payload.get_u16();
        let body_size = payload.get_u64();
        if class_id != method.get_amqp_class_id() {
            return Err(ProtocolError::unexpected(
                format!(
                    "expected content header for class {}, got one for class {class_id} instead",
                    method.get_amqp_class_id()
                ),
                ids(&method),
            ));
        }
        if !nesting::properties_within_limit(&payload) {
            return Err(ProtocolError::malformed(
                format!(
                    "content header properties: headers nested deeper than {MAX_NESTING} levels"
                ),
                ids(&method),
            ));
        }
        let properties = match basic::parse_properties(&payload[..]) {
            Ok((_, properties)) => properties,
            Err(_) => {
                return Err(ProtocolError::malformed(
                    "content header properties",
                    ids(&method),
                ))
            }
        };
        if body_size > max_body {
            self.state = State::Discard(body_size);
            return Ok(Assembled::TooLarge { size: body_size });
        }
        if body_size == 0 {
            let content = Content {
                properties,
                raw_properties: payload,
                body: Bytes::new(),
            };
            return Ok(complete(method, Some(content)));
        }
        self.state = State::WantBody(Box::new(PartialContent {
            method,
            properties,
            raw_properties: payload,
            body: BodyParts::Empty,
            remaining: body_size,
        }));
        Ok(Assembled::Incomplete)
    }
}

fn ids(method: &AMQPClass) -> (u16, u16) {
    (method.get_amqp_class_id(), method.get_amqp_method_id())
}

fn complete(method: AMQPClass, content: Option<Content>) -> Assembled {
    Assembled::Command(Box::new(Command { method, content }))
}

/// Parses a method frame's payload, telling unknown methods apart from malformed arguments.
pub fn parse_method(payload: &[u8]) -> Result<AMQPClass, ProtocolError> {
    if payload.len() < 4 {
        return Err(ProtocolError::malformed(
            "method frame shorter than its class and method ids",
            (0, 0),
        ));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    if !is_known_method(class_id, method_id) {
        return Err(ProtocolError::UnknownMethod {
            class_id,
            method_id,
        });
    }
    let malformed = || {
        ProtocolError::malformed(
            format!("arguments of method {class_id}.{method_id}"),
            (class_id, method_id),
        )
    };
    if !nesting::method_within_limit(class_id, method_id, &payload[4..]) {
        return Err(ProtocolError::malformed(
            format!(
                "arguments of method {class_id}.{method_id}: a field table nested deeper than {MAX_NESTING} levels"
            ),
            (class_id, method_id),
        ));
    }
    match parse_class(payload) {
        // Trailing bytes mean the arguments were not what the method says they are.
        Ok(([], method)) => Ok(method),
        _ => Err(malformed()),
    }
}

fn is_known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

fn carries_content(method: &AMQPClass) -> bool {
    matches!(
        method,
        AMQPClass::Basic(
            basic::AMQPMethod::Publish(_)
                | basic::AMQPMethod::Deliver(_)
                | basic::AMQPMethod::GetOk(_)
                | basic::AMQPMethod::Return(_)
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};

    fn method_frame(method: &AMQPClass) -> Frame {
        let mut buf = BytesMut::new();
        encode::method(&mut buf, 1, method);
        crate::frame::decode(&mut buf, 0).unwrap().unwrap()
    }

    fn publish() -> AMQPClass {
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "x".into(),
            routing_key: "rk".into(),
            mandatory: true,
            immediate: false,
        }))
    }

    fn content_frames(props: &BasicProperties, body: &[u8], frame_max: u32) -> Vec<Frame> {
        let mut raw = BytesMut::new();
        encode::properties(&mut raw, props);
        let mut buf = BytesMut::new();
        encode::content(&mut buf, 1, &raw, &Bytes::copy_from_slice(body), frame_max);
        let mut frames = Vec::new();
        while let Some(f) = crate::frame::decode(&mut buf, frame_max).unwrap() {
            frames.push(f);
        }
        frames
    }

    #[test]
    fn assembles_a_publish_split_over_several_body_frames() {
        let mut asm = CommandAssembler::new();
        assert_eq!(
            asm.push(method_frame(&publish()), u64::MAX).unwrap(),
            Assembled::Incomplete
        );
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("text/plain".into());
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let frames = content_frames(&props, &body, 4096);
        assert_eq!(frames.len(), 4, "one header and three body frames");
        let mut result = None;
        for f in frames {
            if let Assembled::Command(cmd) = asm.push(f, u64::MAX).unwrap() {
                result = Some(cmd);
            }
        }
        let cmd = result.expect("command completes on the last body frame");
        assert_eq!(cmd.method, publish());
        let content = cmd.content.unwrap();
        assert_eq!(content.properties, props);
        assert_eq!(&content.body[..], &body[..]);
        assert!(!asm.in_content());
    }

    #[test]
    fn zero_length_body_completes_on_the_header() {
        let mut asm = CommandAssembler::new();
        asm.push(method_frame(&publish()), u64::MAX).unwrap();
        let frames = content_frames(&BasicProperties::default(), b"", 4096);
        assert_eq!(frames.len(), 1);
        let done = asm
            .push(frames.into_iter().next().unwrap(), u64::MAX)
            .unwrap();
        assert!(
            matches!(done, Assembled::Command(c) if c.content.as_ref().is_some_and(|ct| ct.body.is_empty()))
        );
    }

    #[test]
    fn out_of_order_frames_are_unexpected() {
        let mut asm = CommandAssembler::new();
        let mut frames = content_frames(&BasicProperties::default(), b"abc", 4096);
        let body = frames.pop().unwrap();
        let header = frames.pop().unwrap();
        let err = asm.push(header.clone(), u64::MAX).unwrap_err();
        assert_eq!(err.reply_code(), crate::reply::UNEXPECTED_FRAME);
        asm.reset();
        assert!(asm.push(body.clone(), u64::MAX).is_err());
        asm.reset();
        asm.push(method_frame(&publish()), u64::MAX).unwrap();
        assert!(
            asm.push(method_frame(&publish()), u64::MAX).is_err(),
            "method instead of header"
        );
    }

    #[test]
    fn body_longer_than_declared_is_rejected() {
        let mut asm = CommandAssembler::new();
        asm.push(method_frame(&publish()), u64::MAX).unwrap();
        let mut frames = content_frames(&BasicProperties::default(), b"0123456789", 4096);
        let header = frames.remove(0);
        asm.push(header, u64::MAX).unwrap();
        let long = Frame {
            kind: FrameKind::Body,
            channel: 1,
            payload: Bytes::from_static(&[0; 20]),
        };
        assert_eq!(
            asm.push(long, u64::MAX).unwrap_err().reply_code(),
            crate::reply::UNEXPECTED_FRAME
        );
    }

    #[test]
    fn oversized_content_is_reported_to_the_caller() {
        let mut asm = CommandAssembler::new();
        asm.push(method_frame(&publish()), u64::MAX).unwrap();
        let frames = content_frames(&BasicProperties::default(), b"0123456789", 4096);
        let header = frames.into_iter().next().unwrap();
        assert_eq!(
            asm.push(header, 5).unwrap(),
            Assembled::TooLarge { size: 10 }
        );
    }

    /// `{"k": [[...]]}` nested `depth` levels, the table counting as one.
    fn nested(depth: usize) -> FieldTable {
        let mut value = AMQPValue::Void;
        for _ in 1..depth {
            let mut array = FieldArray::default();
            array.push(value);
            value = AMQPValue::FieldArray(array);
        }
        let mut table = FieldTable::default();
        table.insert("k".into(), value);
        table
    }

    /// Every method that carries a field table, with `table` in it.
    fn methods_with_a_table(table: FieldTable) -> Vec<AMQPClass> {
        use amq_protocol::protocol::{connection, exchange, queue};
        let t = || table.clone();
        vec![
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: t(),
                mechanisms: "PLAIN".into(),
                locales: "en_US".into(),
            })),
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: t(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: "ex".into(),
                kind: "topic".into(),
                durable: true,
                arguments: t(),
                ..Default::default()
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                destination: "dst".into(),
                source: "src".into(),
                routing_key: "a.b".into(),
                nowait: true,
                arguments: t(),
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                destination: "dst".into(),
                source: "src".into(),
                routing_key: "a.b".into(),
                nowait: false,
                arguments: t(),
            })),
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "q".into(),
                exclusive: true,
                arguments: t(),
                ..Default::default()
            })),
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: "q".into(),
                exchange: "amq.topic".into(),
                routing_key: "#".into(),
                nowait: false,
                arguments: t(),
            })),
            AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                queue: "q".into(),
                exchange: "amq.topic".into(),
                routing_key: "#".into(),
                arguments: t(),
            })),
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "q".into(),
                consumer_tag: "ctag".into(),
                no_ack: true,
                arguments: t(),
                ..Default::default()
            })),
        ]
    }

    /// Fuzzing regression (method_parse): field tables nested past MAX_NESTING are refused in
    /// every method that carries one, and tables up to it still parse.
    #[test]
    fn tables_nested_past_the_limit_are_refused_in_every_method() {
        for method in methods_with_a_table(nested(MAX_NESTING)) {
            let frame = method_frame(&method);
            assert_eq!(parse_method(&frame.payload).unwrap(), method);
        }
        for method in methods_with_a_table(nested(MAX_NESTING + 1)) {
            let frame = method_frame(&method);
            let err = parse_method(&frame.payload).unwrap_err();
            assert_eq!(err.reply_code(), crate::reply::FRAME_ERROR, "{err}");
            assert_eq!(err.method(), ids(&method));
        }
    }

    /// Fuzzing regression: a connection.start-ok (read before any login) or queue.declare whose
    /// table nests 30,000 arrays, 150 KB, overflowed the parser's stack and aborted the process;
    /// so did a publish whose headers nest as deep. Now they are frame errors. Run on a thread
    /// with a tokio worker's 2 MiB stack.
    #[test]
    fn a_deeply_nested_table_is_refused_without_overflowing_the_stack() {
        let deep = crate::nesting::tests::nested_table(30_000);
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let mut start_ok = vec![0, 10, 0, 11];
                start_ok.extend_from_slice(&deep);
                start_ok.extend_from_slice(&[5, b'P', b'L', b'A', b'I', b'N', 0, 0, 0, 0, 0]);
                let mut declare = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
                declare.extend_from_slice(&deep);
                for payload in [start_ok, declare] {
                    let err = parse_method(&payload).unwrap_err();
                    assert_eq!(err.reply_code(), crate::reply::FRAME_ERROR);
                }
                // A publish whose headers (the third property) nest as deep.
                let mut asm = CommandAssembler::new();
                asm.push(method_frame(&publish()), u64::MAX).unwrap();
                let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                payload.extend_from_slice(&(1u16 << 13).to_be_bytes());
                payload.extend_from_slice(&deep);
                let header = Frame {
                    kind: FrameKind::Header,
                    channel: 1,
                    payload: Bytes::from(payload),
                };
                let err = asm.push(header, u64::MAX).unwrap_err();
                assert_eq!(err.reply_code(), crate::reply::FRAME_ERROR);
                assert_eq!(err.method(), (60, 40));
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
    }

    /// Fuzzing regression (properties): headers up to MAX_NESTING deep are delivered, one level
    /// more is a frame error, whatever properties come before them.
    #[test]
    fn headers_nested_past_the_limit_are_refused() {
        for props in [
            BasicProperties::default(),
            BasicProperties::default().with_content_type("text/plain".into()),
            BasicProperties::default().with_content_encoding("gzip".into()),
            BasicProperties::default()
                .with_content_type("text/plain".into())
                .with_content_encoding("gzip".into())
                .with_priority(1),
        ] {
            for (depth, ok) in [(MAX_NESTING, true), (MAX_NESTING + 1, false)] {
                let props = props.clone().with_headers(nested(depth));
                let mut asm = CommandAssembler::new();
                asm.push(method_frame(&publish()), u64::MAX).unwrap();
                let header = content_frames(&props, b"", 4096).remove(0);
                match asm.push(header, u64::MAX) {
                    Ok(Assembled::Command(cmd)) if ok => {
                        assert_eq!(cmd.content.unwrap().properties, props)
                    }
                    Err(e) if !ok => assert_eq!(e.reply_code(), crate::reply::FRAME_ERROR),
                    other => panic!("depth {depth}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn unknown_and_malformed_methods_are_told_apart() {
        assert_eq!(
            parse_method(&[0, 99, 0, 10]),
            Err(ProtocolError::UnknownMethod {
                class_id: 99,
                method_id: 10
            })
        );
        assert!(matches!(
            parse_method(&[0, 60, 3, 231]),
            Err(ProtocolError::UnknownMethod { .. })
        ));
        // queue.declare whose queue name claims 200 bytes that are not there
        let err = parse_method(&[0, 50, 0, 10, 0, 0, 200, b'q']).unwrap_err();
        assert_eq!(err.reply_code(), crate::reply::FRAME_ERROR);
        assert!(parse_method(&[0, 1]).is_err());
    }
}
