//! assemble: a sequence of frames, of any kind, in any order, on any channel, into the command
//! assembler (`warren_amqp::assembler::CommandAssembler`, one per channel as a connection
//! keeps them).
//!
//! Input: one control byte (which max_body), then frames split leniently (see
//! `warren_fuzz::lenient_frames`: valid frames come out as the decoder gives them). After an
//! error the channel goes on, as a fresh assembler would, to reach more states.
//! Checks that pushing never panics, and the size limits: a completed content's body is
//! exactly the body frames pushed since its header, as long as the header declared, and never
//! over max_body; a header declaring more than max_body gives `TooLarge` with that size (and
//! its body frames are swallowed); a body frame past the declared size is an error. Also that
//! content comes with content-bearing methods only, its properties are the parse of its raw
//! properties, and a completed command or an error leaves the channel idle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use warren_amqp::assembler::{Assembled, CommandAssembler};
use warren_amqp::frame::FrameKind;
use warren_amqp::protocol::basic;
use warren_amqp::AMQPClass;

/// What the target remembers of a channel's last content header.
#[derive(Default)]
struct Seen {
    /// Body size the header declared, its raw properties, and the body frames since.
    content: Option<(u64, Vec<u8>, Vec<u8>)>,
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

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let max_body = match control % 6 {
        0 => 0,
        1 => 1,
        2 => 16,
        3 => 4096,
        4 => 131072,
        _ => u64::MAX,
    };
    let mut channels: HashMap<u16, (CommandAssembler, Seen)> = HashMap::new();
    for frame in warren_fuzz::lenient_frames(rest) {
        let (asm, seen) = channels.entry(frame.channel).or_default();
        let kind = frame.kind;
        let payload = frame.payload.clone();
        let result = asm.push(frame, max_body);
        match kind {
            FrameKind::Header if payload.len() >= 14 => {
                let declared = u64::from_be_bytes(payload[4..12].try_into().unwrap());
                seen.content = Some((declared, payload[12..].to_vec(), Vec::new()));
            }
            FrameKind::Body => {
                if let Some((_, _, body)) = seen.content.as_mut() {
                    body.extend_from_slice(&payload);
                }
            }
            _ => seen.content = None,
        }
        match result {
            Ok(Assembled::Command(command)) => {
                assert!(!asm.in_content(), "idle after a command");
                match (&command.content, kind) {
                    (None, FrameKind::Method) => {
                        assert!(
                            !carries_content(&command.method),
                            "content-bearing method without content"
                        )
                    }
                    (Some(content), FrameKind::Header | FrameKind::Body) => {
                        assert!(
                            carries_content(&command.method),
                            "content on {:?}",
                            command.method
                        );
                        let (declared, raw, body) =
                            seen.content.take().expect("a header came first");
                        assert_eq!(
                            content.body.len() as u64,
                            declared,
                            "body length != declared"
                        );
                        assert!(declared <= max_body, "body over max_body");
                        assert_eq!(&content.body[..], &body[..], "body != the body frames");
                        assert_eq!(&content.raw_properties[..], &raw[..], "raw properties");
                        let (_, parsed) =
                            basic::parse_properties(&raw[..]).expect("properties parse");
                        assert_eq!(format!("{:?}", content.properties), format!("{parsed:?}"));
                    }
                    (content, kind) => panic!(
                        "{kind:?} frame completed a command, content: {}",
                        content.is_some()
                    ),
                }
            }
            Ok(Assembled::TooLarge { size }) => {
                assert_eq!(kind, FrameKind::Header, "TooLarge from a {kind:?} frame");
                assert!(size > max_body, "TooLarge at {size} <= max_body {max_body}");
                let (declared, ..) = seen.content.take().expect("a header");
                assert_eq!(size, declared);
                // Its body is swallowed: remember nothing of it.
            }
            Ok(Assembled::Incomplete) => {
                if kind == FrameKind::Body {
                    // Either a body still short of its declared size, or one being discarded.
                    if let Some((declared, _, body)) = &seen.content {
                        assert!(
                            (body.len() as u64) < *declared,
                            "complete body not delivered"
                        );
                    }
                }
            }
            Err(e) => {
                assert!(!asm.in_content(), "idle after an error");
                let _ = (e.reply_code(), e.method(), e.to_string());
                seen.content = None;
            }
        }
    }
});
