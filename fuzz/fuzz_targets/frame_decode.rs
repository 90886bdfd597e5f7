//! frame_decode: arbitrary bytes into the frame decoder, `warren_amqp::frame::decode`.
//!
//! Input: two control bytes (which frame_max, what piece size), then the byte stream.
//! Checks that decoding never panics, and that it agrees with a plain reading of the format:
//! each frame is exactly the type, channel and payload the bytes say, never larger than
//! frame_max; `Ok(None)` consumes nothing; the first error is the one the bytes call for; and
//! feeding the stream in small pieces (as a socket does) gives the same frames and the same
//! error as feeding it at once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_amqp::frame::{decode, Frame, FrameKind};
use warren_amqp::ProtocolError;

/// What the stream should decode to: its complete frames, then the first error if any.
fn expected(mut data: &[u8], frame_max: u32) -> (Vec<(u8, u16, Vec<u8>)>, Option<ProtocolError>) {
    let mut frames = Vec::new();
    while data.len() >= 7 {
        let kind = data[0];
        let channel = u16::from_be_bytes([data[1], data[2]]);
        let size = u32::from_be_bytes([data[3], data[4], data[5], data[6]]);
        if ![1, 2, 3, 8].contains(&kind) {
            return (frames, Some(ProtocolError::UnknownFrameType(kind)));
        }
        if frame_max != 0 && size > frame_max {
            return (
                frames,
                Some(ProtocolError::FrameTooLarge {
                    kind,
                    size,
                    max: frame_max,
                }),
            );
        }
        let total = 7 + size as usize + 1;
        if data.len() < total {
            break;
        }
        if data[total - 1] != 0xCE {
            return (
                frames,
                Some(ProtocolError::BadFrameEnd {
                    kind,
                    end: data[total - 1],
                }),
            );
        }
        frames.push((kind, channel, data[7..total - 1].to_vec()));
        data = &data[total..];
    }
    (frames, None)
}

fn octet(kind: FrameKind) -> u8 {
    match kind {
        FrameKind::Method => 1,
        FrameKind::Header => 2,
        FrameKind::Body => 3,
        FrameKind::Heartbeat => 8,
    }
}

fn flat(f: &Frame) -> (u8, u16, Vec<u8>) {
    (octet(f.kind), f.channel, f.payload.to_vec())
}

/// Decodes frames until `None` or an error, checking what each call consumed.
fn drain(
    buf: &mut BytesMut,
    frame_max: u32,
    out: &mut Vec<(u8, u16, Vec<u8>)>,
) -> Option<ProtocolError> {
    loop {
        let before = buf.len();
        match decode(buf, frame_max) {
            Ok(Some(frame)) => {
                if frame_max != 0 {
                    assert!(
                        frame.payload.len() <= frame_max as usize,
                        "payload over frame_max"
                    );
                }
                assert_eq!(
                    before - buf.len(),
                    frame.payload.len() + 8,
                    "consumed != frame"
                );
                out.push(flat(&frame));
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                return None;
            }
            Err(e) => {
                assert_eq!(buf.len(), before, "an error consumed bytes");
                let _ = (e.reply_code(), e.method(), e.to_string());
                return Some(e);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let frame_max = match data[0] % 5 {
        // 0 is "no limit": what the handshake-refusal and closing paths read with.
        0 => 0,
        1 => 4096,
        2 => 131072,
        3 => u32::from(data[1]),
        _ => 8 + u32::from(data[1]) * 16,
    };
    let piece = 1 + usize::from(data[1] % 32);
    let stream = &data[2..];
    let (want, want_err) = expected(stream, frame_max);

    // All at once.
    let mut buf = BytesMut::from(stream);
    let mut got = Vec::new();
    let err = drain(&mut buf, frame_max, &mut got);
    assert_eq!(got, want, "frames, all at once");
    assert_eq!(err, want_err, "error, all at once");

    // In pieces, as reads from a socket arrive.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut err = None;
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        err = drain(&mut buf, frame_max, &mut got);
        if err.is_some() {
            break;
        }
    }
    assert_eq!(got, want, "frames, in pieces of {piece}");
    assert_eq!(err, want_err, "error, in pieces of {piece}");
});
