//! Errors the wire layer detects. Every one of them is a connection exception in AMQP 0-9-1:
//! once framing is in doubt, nothing else on the socket can be trusted.

use crate::reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("type {kind}: {{frame_too_large,{size},{}}}", max.saturating_sub(8))]
    FrameTooLarge { kind: u8, size: u32, max: u32 },
    #[error("type {kind}: {{invalid_frame_end_marker,{end}}}")]
    BadFrameEnd { kind: u8, end: u8 },
    #[error("type {0}: unknown_frame")]
    UnknownFrameType(u8),
    #[error("{0}")]
    UnexpectedFrame(String),
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    #[error("cannot decode {0}")]
    Malformed(String),
}

impl ProtocolError {
    /// The reply code RabbitMQ closes the connection with for this error.
    pub fn reply_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge { .. }
            | Self::BadFrameEnd { .. }
            | Self::UnknownFrameType(_)
            | Self::Malformed(_) => reply::FRAME_ERROR,
            Self::UnexpectedFrame(_) => reply::UNEXPECTED_FRAME,
            Self::UnknownMethod { .. } => reply::COMMAND_INVALID,
        }
    }
}
