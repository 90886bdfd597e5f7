//! warren-perf: a load generator for any AMQP 0-9-1 broker, in the spirit of RabbitMQ PerfTest
//! and lavinmqperf. `run` takes parsed flags and returns the report, so tests drive it directly
//! and `main` only parses, runs and prints.

pub mod args;
pub mod broker_stats;
mod connect;
pub mod consumer;
pub mod error;
mod in_flight;
pub mod message;
mod modes;
pub mod producer;
mod progress;
mod raw_connection;
mod raw_consumer;
mod raw_producer;
pub mod report;
pub mod stats;
pub mod topology;

pub use args::{Args, Mode};
pub use error::PerfError;
pub use report::Report;

/// Runs the mode the flags name and returns its report.
pub async fn run(args: &Args) -> Result<Report, PerfError> {
    args.validate()?;
    if let Some(path) = &args.tls_ca {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| PerfError::Invalid(format!("--tls-ca {}: {e}", path.display())))?;
        connect::trust(pem);
    }
    match args.mode {
        Mode::Throughput => modes::throughput::run(args).await,
        Mode::Connections => modes::connections::run(args).await,
        Mode::Backlog => modes::backlog::run(args).await,
        Mode::Fanout => modes::fanout::run(args).await,
        Mode::Churn => modes::churn::run(args).await,
    }
}
