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
    /// A frame out of order; `method` is the command being assembled (0, 0 if none).
    #[error("{text}")]
    UnexpectedFrame { text: String, method: (u16, u16) },
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// Bytes that do not decode; `method` is the method they belong to (0, 0 if unknown).
    #[error("cannot decode {text}")]
    Malformed { text: String, method: (u16, u16) },
}

impl ProtocolError {
    /// The reply code RabbitMQ closes the connection with for this error.
    pub fn reply_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge { .. }
            | Self::BadFrameEnd { .. }
            | Self::UnknownFrameType(_)
            | Self::Malformed { .. } => reply::FRAME_ERROR,
            Self::UnexpectedFrame { .. } => reply::UNEXPECTED_FRAME,
            Self::UnknownMethod { .. } => reply::COMMAND_INVALID,
        }
    }

    /// The class and method ids the close names, as RabbitMQ reports them.
    pub fn method(&self) -> (u16, u16) {
        match self {
            Self::UnexpectedFrame { method, .. } | Self::Malformed { method, .. } => *method,
            Self::UnknownMethod {
                class_id,
                method_id,
            } => (*class_id, *method_id),
            _ => (0, 0),
        }
    }

    pub fn unexpected(text: impl Into<String>, method: (u16, u16)) -> Self {
        Self::UnexpectedFrame {
            text: text.into(),
            method,
        }
    }

    pub fn malformed(text: impl Into<String>, method: (u16, u16)) -> Self {
        Self::Malformed {
            text: text.into(),
            method,
        }
    }
}
