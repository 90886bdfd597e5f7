//! `AmqpError`: a reply code and text, raised anywhere in the broker and turned into a
//! channel.close or connection.close in one place (the connection task).

use std::fmt;
use warren_amqp::reply;

/// An AMQP exception. Whether it closes the channel or the whole connection follows from the
/// reply code, exactly as the spec classifies them (soft 3xx/4xx codes close the channel, hard
/// 5xx codes and 320/402 close the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    pub text: String,
    /// The method that caused it, filled in by the connection when it is not known earlier.
    pub class_id: u16,
    pub method_id: u16,
}

pub type AmqpResult<T> = Result<T, AmqpError>;

impl AmqpError {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            text: format!("{} - {}", reply::name(code), text.into()),
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_FOUND, text)
    }
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(reply::ACCESS_REFUSED, text)
    }
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(reply::RESOURCE_LOCKED, text)
    }
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(reply::PRECONDITION_FAILED, text)
    }
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(reply::COMMAND_INVALID, text)
    }
    pub fn channel_error(text: impl Into<String>) -> Self {
        Self::new(reply::CHANNEL_ERROR, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_ALLOWED, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_IMPLEMENTED, text)
    }
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(reply::INTERNAL_ERROR, text)
    }

    /// Records which method raised the error, unless it already says.
    pub fn during(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Hard errors close the connection; soft ones only the channel.
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self.code,
            reply::CONTENT_TOO_LARGE
                | reply::NO_ROUTE
                | reply::NO_CONSUMERS
                | reply::ACCESS_REFUSED
                | reply::NOT_FOUND
                | reply::RESOURCE_LOCKED
                | reply::PRECONDITION_FAILED
        )
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.text, self.code)
    }
}

impl std::error::Error for AmqpError {}

impl From<warren_amqp::ProtocolError> for AmqpError {
    fn from(e: warren_amqp::ProtocolError) -> Self {
        let (class_id, method_id) = e.method();
        Self::new(e.reply_code(), e.to_string()).during(class_id, method_id)
    }
}
