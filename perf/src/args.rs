//! Command-line flags, in the spirit of RabbitMQ PerfTest, and the checks that catch runs that
//! could never finish (a prefetch smaller than the ack batch, queues nobody consumes).

use crate::error::PerfError;
use clap::{Parser, ValueEnum};
use std::time::Duration;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Producers → queues → consumers: msgs/s and end-to-end latency.
    Throughput,
    /// Open N connections, hold them, close them: time to open and broker memory per connection.
    Connections,
    /// Publish a backlog with no consumer, then drain it: both rates and the broker's peak RSS.
    Backlog,
    /// One producer, one fanout exchange, K bound queues each with its own consumer.
    Fanout,
    /// Queue declare/delete rate, then connection open/close rate.
    Churn,
}

/// The AMQP client producers and consumers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// lapin: an OS thread per connection, every frame handed across it.
    Lapin,
    /// The tool's own client on tokio tasks: each publish is one write from the producer's
    /// task, each delivery read by the consumer's task, no thread in between.
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
    Headers,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "warren-perf",
    version,
    about = "Load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ, LavinMQ, ...)"
)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "throughput")]
    pub mode: Mode,

    /// Broker to load.
    #[arg(
        long,
        env = "AMQP_ADDR",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub uri: String,

    /// An authority (PEM) to trust for amqps:// URIs besides the usual roots: the broker's own
    /// CA in a benchmark over TLS (lapin client only).
    #[arg(long, env = "WARREN_PERF_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// AMQP client of the producers and consumers (throughput, fanout and backlog modes):
    /// lapin, or raw, the tool's own, which leaves no thread hop between the task and the
    /// socket so that latency is the broker's and the kernel's.
    #[arg(long, value_enum, default_value = "lapin")]
    pub client: Client,

    /// Producers, each with its own connection and task.
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: usize,

    /// Consumers, each with its own connection and task (fanout mode: one per queue).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,

    /// Queue name; with --queues N > 1 the queues are NAME-1 ... NAME-N.
    #[arg(short = 'u', long, default_value = "warren-perf")]
    pub queue: String,

    /// Number of queues; producer i publishes to and consumer j reads from queue i mod N.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,

    /// Exchange to publish to ("" is the default exchange; fanout mode defaults to
    /// "warren-perf-fanout"). Queues are bound to it with their own name as routing key.
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,

    /// Type of --exchange when the tool declares it.
    #[arg(short = 't', long, value_enum, default_value = "direct")]
    pub exchange_type: ExchangeType,

    /// Message body size in bytes (at least 8: the body starts with the publish timestamp).
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,

    /// Messages per second per producer (0: as fast as possible).
    #[arg(short = 'r', long, default_value_t = 0.0)]
    pub rate: f64,

    /// Publisher confirms with at most N messages unconfirmed per producer (0: no confirms).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub confirm: usize,

    /// Persistent messages (delivery mode 2); implies --durable.
    #[arg(short = 'f', long)]
    pub persistent: bool,

    /// Durable queues and exchange.
    #[arg(long)]
    pub durable: bool,

    /// Quorum queues (x-queue-type quorum); implies --durable.
    #[arg(long)]
    pub quorum: bool,

    /// Consume with automatic acknowledgement (no-ack).
    #[arg(short = 'a', long)]
    pub auto_ack: bool,

    /// Per-consumer prefetch (basic.qos) with manual acks (0: unlimited).
    #[arg(short = 'q', long, default_value_t = 1000)]
    pub prefetch: u16,

    /// Acknowledge every K messages with multiple=true (1: ack each message).
    #[arg(short = 'k', long, default_value_t = 1)]
    pub multi_ack: u64,

    /// Seconds to publish for (connections mode: seconds to hold; churn: seconds per phase).
    #[arg(short = 'z', long)]
    pub duration: Option<f64>,

    /// Messages per producer (churn: operations per phase per worker).
    #[arg(short = 'C', long)]
    pub count: Option<u64>,

    /// Connections to open (connections mode).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,

    /// Queues bound to the fanout exchange, one consumer each (fanout mode).
    #[arg(long, default_value_t = 10)]
    pub fanout: usize,

    /// Parallel workers opening connections or churning (connections and churn modes).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,

    /// Keep the queues and exchange the run declared instead of deleting them at the end.
    #[arg(long)]
    pub no_cleanup: bool,

    /// Seconds without a delivery, once publishing stopped, before the remaining messages are
    /// counted as lost.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,

    /// Sample the broker process's CPU time and memory from /proc (same host only).
    #[arg(long)]
    pub broker_pid: Option<u32>,

    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How long a run goes on when neither --duration nor --count is given.
const DEFAULT_SECONDS: f64 = 10.0;
/// Backlog mode publishes this many messages per producer unless told otherwise.
const DEFAULT_BACKLOG: u64 = 100_000;
/// Connections mode holds the connections this long unless told otherwise.
const DEFAULT_HOLD_SECONDS: f64 = 2.0;
/// Each churn phase lasts this long unless told otherwise.
const DEFAULT_CHURN_SECONDS: f64 = 5.0;

/// When producers stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Duration(Duration),
    Count(u64),
}

impl Args {
    /// Rejects combinations that would hang or measure nothing.
    pub fn validate(&self) -> Result<(), PerfError> {
        let invalid = |text: &str| Err(PerfError::Invalid(text.into()));
        if self.size < 8 {
            return invalid("--size must be at least 8 (the body carries a timestamp)");
        }
        if self.queues == 0 || self.fanout == 0 {
            return invalid("--queues and --fanout must be at least 1");
        }
        if self.multi_ack == 0 {
            return invalid("--multi-ack must be at least 1");
        }
        if !self.auto_ack && self.prefetch > 0 && self.multi_ack > u64::from(self.prefetch) {
            return invalid("--multi-ack larger than --prefetch would never ack");
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            return invalid("--rate must be a non-negative number");
        }
        if matches!(self.duration, Some(d) if d <= 0.0 || !d.is_finite()) {
            return invalid("--duration must be positive");
        }
        if self.concurrency == 0 {
            return invalid("--concurrency must be at least 1");
        }
        // Other modes size their consumers themselves.
        if self.mode == Mode::Throughput && self.consumers > 0 && self.consumers < self.queues {
            return invalid("every queue needs a consumer: use --consumers >= --queues");
        }
        Ok(())
    }

    /// Producers' stopping rule for the load modes.
    pub fn limit(&self) -> Limit {
        match (self.count, self.duration, self.mode) {
            (Some(n), _, _) => Limit::Count(n),
            (None, Some(s), _) => Limit::Duration(Duration::from_secs_f64(s)),
            (None, None, Mode::Backlog) => Limit::Count(DEFAULT_BACKLOG),
            (None, None, _) => Limit::Duration(Duration::from_secs_f64(DEFAULT_SECONDS)),
        }
    }

    /// How long connections mode holds its connections open.
    pub fn hold(&self) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(DEFAULT_HOLD_SECONDS))
    }

    /// Churn's stopping rule for each of its phases.
    pub fn churn_limit(&self) -> Limit {
        match (self.count, self.duration) {
            (Some(n), _) => Limit::Count(n),
            (None, s) => {
                Limit::Duration(Duration::from_secs_f64(s.unwrap_or(DEFAULT_CHURN_SECONDS)))
            }
        }
    }

    pub fn durable_queues(&self) -> bool {
        self.durable || self.persistent || self.quorum
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("warren-perf").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_run_throughput_for_ten_seconds() {
        let args = parse(&[]);
        assert_eq!(args.mode, Mode::Throughput);
        assert_eq!(args.limit(), Limit::Duration(Duration::from_secs(10)));
        args.validate().unwrap();
    }

    #[test]
    fn count_wins_and_backlog_has_its_own_default() {
        assert_eq!(parse(&["-C", "5", "-z", "3"]).limit(), Limit::Count(5));
        assert_eq!(parse(&["backlog"]).limit(), Limit::Count(DEFAULT_BACKLOG));
    }

    #[test]
    fn impossible_runs_are_rejected() {
        assert!(parse(&["--size", "4"]).validate().is_err());
        assert!(parse(&["-q", "10", "-k", "100"]).validate().is_err());
        assert!(parse(&["--queues", "3", "-y", "2"]).validate().is_err());
        assert_eq!(parse(&[]).client, Client::Lapin);
        assert_eq!(parse(&["--client", "raw"]).client, Client::Raw);
        parse(&["-a", "-q", "10", "-k", "100"]).validate().unwrap();
    }
}
