//! method_parse: arbitrary bytes as a method frame's payload into
//! `warren_amqp::assembler::parse_method`, the parser of everything a client sends (on every
//! channel, the handshake's connection methods included).
//!
//! Checks that parsing never panics; that an accepted method has the class and method ids the
//! payload starts with and field tables no deeper than `warren_amqp::MAX_NESTING`; the round
//! trip decode → encode (`encode::method`, a whole frame) → decode gives the same method (compared
//! through Debug, so a NaN float compares equal to itself) and the same bytes again; and that
//! the hand-written encoders of the hot methods (deliver, get-ok, return, ack, nack) write the
//! same bytes as the generator.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_amqp::assembler::parse_method;
use warren_amqp::protocol::basic;
use warren_amqp::{encode, frame, reply, AMQPClass, ProtocolError};

fn frame_of(method: &AMQPClass) -> BytesMut {
    let mut buf = BytesMut::new();
    encode::method(&mut buf, 1, method);
    buf
}

fuzz_target!(|data: &[u8]| {
    let method = match parse_method(data) {
        Ok(method) => method,
        Err(e) => {
            assert!(matches!(
                e.reply_code(),
                reply::FRAME_ERROR | reply::COMMAND_INVALID
            ));
            if data.len() >= 4 && !matches!(e, ProtocolError::UnknownMethod { .. }) {
                // A malformed known method names itself.
                assert_eq!(
                    e.method(),
                    (
                        u16::from_be_bytes([data[0], data[1]]),
                        u16::from_be_bytes([data[2], data[3]])
                    )
                );
            }
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(
        (method.get_amqp_class_id(), method.get_amqp_method_id()),
        (
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[2], data[3]])
        )
    );
    assert!(
        warren_fuzz::method_depth(&method) <= warren_amqp::MAX_NESTING,
        "accepted a table nested {} deep",
        warren_fuzz::method_depth(&method)
    );

    // decode → encode → decode
    let mut encoded = frame_of(&method);
    let whole = encoded.clone();
    let f = frame::decode(&mut encoded, 0)
        .unwrap()
        .expect("one whole frame");
    assert!(encoded.is_empty());
    assert!(f.payload.len() >= 4, "the generator failed");
    let again = parse_method(&f.payload).expect("a re-encoded method parses");
    assert_eq!(format!("{again:?}"), format!("{method:?}"));
    assert_eq!(frame_of(&again), whole, "encoding is not a fixed point");

    // The hand-written encoders agree with the generator.
    let mut hand = BytesMut::new();
    match &method {
        AMQPClass::Basic(basic::AMQPMethod::Deliver(m)) => encode::deliver(
            &mut hand,
            1,
            m.consumer_tag.as_str(),
            m.delivery_tag,
            m.redelivered,
            m.exchange.as_str(),
            m.routing_key.as_str(),
        ),
        AMQPClass::Basic(basic::AMQPMethod::GetOk(m)) => encode::get_ok(
            &mut hand,
            1,
            m.delivery_tag,
            m.redelivered,
            m.exchange.as_str(),
            m.routing_key.as_str(),
            m.message_count,
        ),
        AMQPClass::Basic(basic::AMQPMethod::Return(m)) => encode::basic_return(
            &mut hand,
            1,
            m.reply_code,
            m.reply_text.as_str(),
            m.exchange.as_str(),
            m.routing_key.as_str(),
        ),
        AMQPClass::Basic(basic::AMQPMethod::Ack(m)) => {
            encode::confirm(&mut hand, 1, true, m.delivery_tag, m.multiple)
        }
        // The server's nack never asks to requeue.
        AMQPClass::Basic(basic::AMQPMethod::Nack(m)) if !m.requeue => {
            encode::confirm(&mut hand, 1, false, m.delivery_tag, m.multiple)
        }
        _ => return,
    }
    assert_eq!(
        hand, whole,
        "hand-written encoder differs from the generator"
    );
});
