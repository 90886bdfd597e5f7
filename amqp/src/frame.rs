//! The frame layer: `type(u8) channel(u16) size(u32) payload frame-end(0xCE)`.
//!
//! [`decode`] takes complete frames off the front of a read buffer without copying their
//! payloads: a payload is a `Bytes` slice of the buffer, so a message body that arrives in one
//! frame is never copied on its way to the queues.

use crate::error::ProtocolError;
use bytes::{Buf, Bytes, BytesMut};

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Type, channel and size; the frame end octet follows the payload.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Header plus frame end: what a frame costs beyond its payload.
pub const FRAME_OVERHEAD: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Method,
    Header,
    Body,
    Heartbeat,
}

impl FrameKind {
    fn from_octet(octet: u8) -> Option<Self> {
        match octet {
            FRAME_METHOD => Some(Self::Method),
            FRAME_HEADER => Some(Self::Header),
            FRAME_BODY => Some(Self::Body),
            FRAME_HEARTBEAT => Some(Self::Heartbeat),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub channel: u16,
    pub payload: Bytes,
}

/// The most [`decode`] reserves ahead for a frame that no `frame_max` bounds (`frame_max` 0):
/// the buffer still grows as the bytes arrive, but a 7-byte header announcing 4 GiB no longer
/// makes it allocate 4 GiB at once.
pub const UNBOUNDED_RESERVE: usize = 128 * 1024;

/// Takes one complete frame off the front of `buf`, or returns `None` when more bytes are
/// needed. `frame_max` bounds the whole frame (header, payload and end octet), as negotiated in
/// connection.tune. Like RabbitMQ, a payload of up to `frame_max` bytes is accepted (the limit
/// is nominally the whole frame); a larger size is rejected before its payload is buffered, so
/// a peer cannot make the server allocate more than `frame_max` per connection. `frame_max` 0
/// means no limit: a frame of any size is buffered as it arrives (at most
/// [`UNBOUNDED_RESERVE`] reserved ahead of it).
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, ProtocolError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let kind_octet = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    let kind =
        FrameKind::from_octet(kind_octet).ok_or(ProtocolError::UnknownFrameType(kind_octet))?;
    if frame_max != 0 && size > frame_max {
        return Err(ProtocolError::FrameTooLarge {
            kind: kind_octet,
            size,
            max: frame_max,
        });
    }
    let total = FRAME_HEADER_SIZE + size as usize + 1;
    if buf.len() < total {
        let missing = total - buf.len();
        buf.reserve(if frame_max == 0 {
            missing.min(UNBOUNDED_RESERVE)
        } else {
            missing
        });
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        return Err(ProtocolError::BadFrameEnd {
            kind: kind_octet,
            end,
        });
    }
    buf.advance(FRAME_HEADER_SIZE);
    let payload = buf.split_to(size as usize).freeze();
    buf.advance(1);
    Ok(Some(Frame {
        kind,
        channel,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u8, channel: u16, payload: &[u8], end: u8) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[kind]);
        b.extend_from_slice(&channel.to_be_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        b.extend_from_slice(payload);
        b.extend_from_slice(&[end]);
        b
    }

    #[test]
    fn decodes_a_complete_frame_and_leaves_the_rest() {
        let mut buf = raw(FRAME_BODY, 3, b"hello", FRAME_END);
        buf.extend_from_slice(&[1, 0]);
        let frame = decode(&mut buf, 131072).unwrap().unwrap();
        assert_eq!(frame.kind, FrameKind::Body);
        assert_eq!(frame.channel, 3);
        assert_eq!(&frame.payload[..], b"hello");
        assert_eq!(&buf[..], &[1, 0]);
    }

    #[test]
    fn waits_for_more_bytes() {
        let full = raw(FRAME_METHOD, 1, b"abcdef", FRAME_END);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut part, 131072).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn rejects_oversized_frames_before_buffering_them() {
        let mut buf = BytesMut::from(&[FRAME_BODY, 0, 1, 0, 1, 0, 0][..]);
        let err = decode(&mut buf, 4096).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::FrameTooLarge {
                kind: FRAME_BODY,
                size: 65536,
                max: 4096
            }
        );
        assert_eq!(err.reply_code(), crate::reply::FRAME_ERROR);
        assert_eq!(err.to_string(), "type 3: {frame_too_large,65536,4088}");
    }

    #[test]
    fn payloads_up_to_frame_max_are_accepted_as_rabbitmq_does() {
        let mut exact = raw(FRAME_BODY, 1, &[0; 4096], FRAME_END);
        assert!(decode(&mut exact, 4096).unwrap().is_some());
        let mut over = raw(FRAME_BODY, 1, &[0; 4097], FRAME_END);
        assert!(decode(&mut over, 4096).is_err());
    }

    /// Fuzzing regression (frame_decode, minimised): with no frame_max, a method frame header
    /// announcing 0xd00155ce bytes made `decode` reserve 3.5 GB at once (libFuzzer's
    /// out-of-memory); the handshake's refusal and the closing handshake read with frame_max 0.
    #[test]
    fn a_header_without_frame_max_does_not_reserve_its_whole_size() {
        let mut buf = BytesMut::from(&[0x01, 0x00, 0xb1, 0xd0, 0x01, 0x55, 0xce][..]);
        assert_eq!(decode(&mut buf, 0), Ok(None));
        assert!(
            buf.capacity() <= 7 + UNBOUNDED_RESERVE,
            "{}",
            buf.capacity()
        );
        let mut max = BytesMut::from(&[FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode(&mut max, 0), Ok(None));
        assert!(
            max.capacity() <= 7 + UNBOUNDED_RESERVE,
            "{}",
            max.capacity()
        );
        // A large frame still decodes once all of it is there.
        let mut big = raw(FRAME_BODY, 1, &vec![5; 3 * UNBOUNDED_RESERVE], FRAME_END);
        let frame = decode(&mut big, 0).unwrap().unwrap();
        assert_eq!(frame.payload.len(), 3 * UNBOUNDED_RESERVE);
    }

    #[test]
    fn rejects_bad_end_octet_and_unknown_type() {
        let mut bad_end = raw(FRAME_METHOD, 1, b"x", 0);
        assert_eq!(
            decode(&mut bad_end, 0),
            Err(ProtocolError::BadFrameEnd {
                kind: FRAME_METHOD,
                end: 0
            })
        );
        let mut bad_type = raw(9, 1, b"x", FRAME_END);
        assert_eq!(
            decode(&mut bad_type, 0),
            Err(ProtocolError::UnknownFrameType(9))
        );
    }
}
