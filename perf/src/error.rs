//! The tool's error type: what stops a run before it can report (bad flags, a broker that
//! refuses the connection or the topology). Errors during the load are counted, not raised.

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("{0}")]
    Invalid(String),
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Bytes from the broker that are not AMQP frames (connections mode's own client).
    #[error("AMQP framing: {0}")]
    Framing(#[from] warren_amqp::ProtocolError),
    /// The broker closed the connection or its channel, with the reply it gave.
    #[error("{scope} closed by the broker: {code} {text}")]
    Closed {
        scope: &'static str,
        code: u16,
        text: String,
    },
    /// A well-formed frame the handshake or a held connection did not expect.
    #[error("{0}")]
    Unexpected(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
}
