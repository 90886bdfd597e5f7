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
}
