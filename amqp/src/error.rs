//! Errors the wire layer detects. Every one of them is a connection exception in AMQP 0-9-1:
//! once framing is in doubt, nothing else on the socket can be trusted.

use crate::reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame size {size} exceeds frame_max {max}")]
    FrameTooLarge { size: u32, max: u32 },
    #[error("frame end octet 0x{0:02x} is not 0xce")]
    BadFrameEnd(u8),
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    #[error("{0}")]
    UnexpectedFrame(String),
    #[error("unknown method class {class_id} method {method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    #[error("malformed {0}")]
    Syntax(String),
}

impl ProtocolError {
    /// The reply code RabbitMQ closes the connection with for this error.
    pub fn reply_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge { .. } | Self::BadFrameEnd(_) | Self::UnknownFrameType(_) => {
                reply::FRAME_ERROR
            }
            Self::UnexpectedFrame(_) => reply::UNEXPECTED_FRAME,
            Self::UnknownMethod { .. } => reply::COMMAND_INVALID,
            Self::Syntax(_) => reply::SYNTAX_ERROR,
        }
    }
}
