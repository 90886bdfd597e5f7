//! properties: arbitrary bytes into the decoders of basic properties and field tables.
//!
//! Input: one control byte picks the decoder, the rest is its input:
//! - 0: content header properties (flags and list) as the assembler reads them: a content
//!   header frame behind a basic.publish, through `CommandAssembler::push`;
//! - 1: a field table in its wire form (`encode::decode_field_table`, what the store reads
//!   arguments back with, and what an AMQPLAIN response is).
//! Checks that decoding never panics, that nothing accepted nests deeper than
//! `warren_amqp::MAX_NESTING`, and the round trip decode → encode (encode.rs) → decode gives the same value and then the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren_amqp::assembler::{Assembled, CommandAssembler};
use warren_amqp::frame::{Frame, FrameKind};
use warren_amqp::{encode, BasicProperties};

fn same<T: std::fmt::Debug>(a: &T, b: &T, what: &str) {
    // Debug, not PartialEq: a NaN float is the same value when it prints the same.
    assert_eq!(
        format!("{a:?}"),
        format!("{b:?}"),
        "{what} changed in a round trip"
    );
}

fn properties_bytes(props: &BasicProperties) -> BytesMut {
    let mut raw = BytesMut::new();
    encode::properties(&mut raw, props);
    raw
}

/// The assembler's view of `raw` as a publish's content header (body size 0).
fn through_assembler(raw: &[u8]) -> Option<BasicProperties> {
    let mut asm = CommandAssembler::new();
    let mut method = BytesMut::new();
    encode::method(&mut method, 1, &warren_fuzz::publish("", "q"));
    let frame = warren_amqp::frame::decode(&mut method, 0).unwrap().unwrap();
    assert_eq!(asm.push(frame, u64::MAX), Ok(Assembled::Incomplete));
    let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(raw);
    let header = Frame {
        kind: FrameKind::Header,
        channel: 1,
        payload: Bytes::from(payload),
    };
    match asm.push(header, u64::MAX) {
        Ok(Assembled::Command(command)) => {
            let content = command.content.expect("content");
            assert_eq!(&content.raw_properties[..], raw);
            assert!(content.body.is_empty());
            Some(content.properties)
        }
        Ok(other) => panic!("a body-less content header gave {other:?}"),
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    match control % 2 {
        0 => {
            let Some(props) = through_assembler(input) else {
                return;
            };
            if let Some(headers) = props.headers() {
                assert!(warren_fuzz::table_depth(headers) <= warren_amqp::MAX_NESTING);
            }
            let raw = properties_bytes(&props);
            let again = through_assembler(&raw).expect("re-encoded properties are accepted");
            same(&again, &props, "properties");
            assert_eq!(
                properties_bytes(&again),
                raw,
                "encoding is not a fixed point"
            );
        }
        _ => {
            let Some(table) = encode::decode_field_table(input) else {
                return;
            };
            assert!(warren_fuzz::table_depth(&table) <= warren_amqp::MAX_NESTING);
            let mut raw = BytesMut::new();
            encode::field_table(&mut raw, &table);
            let again = encode::decode_field_table(&raw).expect("a re-encoded table decodes");
            same(&again, &table, "field table");
            let mut raw2 = BytesMut::new();
            encode::field_table(&mut raw2, &again);
            assert_eq!(raw2, raw, "encoding is not a fixed point");
        }
    }
});
