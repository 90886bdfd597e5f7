//! What can go wrong, and the exit code rabbitmqctl gives each (sysexits.h values).

/// A failed command: a one-line reason on stderr and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad flags or arguments, or an unknown command.
    #[error("{0}")]
    Usage(String),
    /// What the command names does not exist (a vhost, a user, a queue...).
    #[error("{0}")]
    Data(String),
    /// The broker cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The broker refused the credentials or the user's rights.
    #[error("{0}")]
    Refused(String),
    /// The broker answered something unexpected.
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Timeout(String),
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 64,
            CtlError::Data(_) => 65,
            CtlError::Unavailable(_) => 69,
            CtlError::Internal(_) => 70,
            CtlError::Timeout(_) => 75,
            CtlError::Refused(_) => 77,
        }
    }
}

pub type CtlResult<T> = Result<T, CtlError>;
