//! The final report: one struct per mode's results, serialised with --json or printed as a few
//! readable lines.

use crate::broker_stats::BrokerUsage;
use crate::stats::Latency;
use serde::Serialize;
use std::fmt::{self, Display, Formatter};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<BacklogReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerReport>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

/// Throughput and fanout.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub producers: usize,
    pub consumers: usize,
    pub queues: usize,
    pub message_size: usize,
    /// Queues each publish reaches (fanout: all of them).
    pub deliveries_per_publish: u64,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub consumed: u64,
    /// Deliveries expected and never received.
    pub lost: u64,
    pub publish_seconds: f64,
    pub consume_seconds: f64,
    pub published_per_s: f64,
    pub confirmed_per_s: f64,
    pub consumed_per_s: f64,
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    pub published: u64,
    pub confirmed: u64,
    pub publish_seconds: f64,
    pub published_per_s: f64,
    pub consumed: u64,
    pub lost: u64,
    pub drain_seconds: f64,
    pub drained_per_s: f64,
    /// Broker RSS when the backlog was complete, before draining started.
    pub broker_rss_full_kib: Option<u64>,
    /// Time messages spent queued, publish to delivery.
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub requested: usize,
    pub opened: usize,
    pub failed: usize,
    pub open_seconds: f64,
    pub opened_per_s: f64,
    /// Connect + handshake + channel.open, per connection.
    pub open_latency: Option<Latency>,
    pub hold_seconds: f64,
    pub close_seconds: f64,
    /// Broker RSS while the connections were held.
    pub broker_rss_held_kib: Option<u64>,
    pub broker_rss_per_connection_kib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// queue.declare + queue.delete pairs.
    pub queues: ChurnPhase,
    /// Connection open (with one channel) + close.
    pub connections: ChurnPhase,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnPhase {
    pub operations: u64,
    pub failed: u64,
    pub seconds: f64,
    pub per_s: f64,
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerReport {
    #[serde(flatten)]
    pub usage: BrokerUsage,
    pub cpu_s_per_million_published: Option<f64>,
    /// Fanout: per million deliveries to consumers.
    pub cpu_s_per_million_delivered: Option<f64>,
}

impl Report {
    pub fn new(mode: &'static str) -> Self {
        Self {
            mode,
            load: None,
            backlog: None,
            connections: None,
            churn: None,
            broker: None,
            errors: 0,
            error_samples: Vec::new(),
        }
    }
}

impl Display for Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "warren-perf {}", self.mode)?;
        if let Some(l) = &self.load {
            writeln!(
                f,
                "  {} producer(s) → {} queue(s) → {} consumer(s), {}-byte messages, {} deliveries per publish",
                l.producers, l.queues, l.consumers, l.message_size, l.deliveries_per_publish
            )?;
            writeln!(
                f,
                "  published {:>10} in {:>7.2} s  {:>10.0} msgs/s",
                l.published, l.publish_seconds, l.published_per_s
            )?;
            writeln!(
                f,
                "  confirmed {:>10} in {:>7.2} s  {:>10.0} msgs/s  (nacked {})",
                l.confirmed, l.publish_seconds, l.confirmed_per_s, l.nacked
            )?;
            writeln!(
                f,
                "  consumed  {:>10} in {:>7.2} s  {:>10.0} msgs/s  (lost {})",
                l.consumed, l.consume_seconds, l.consumed_per_s, l.lost
            )?;
            write_latency(f, "latency", &l.latency)?;
        }
        if let Some(b) = &self.backlog {
            writeln!(
                f,
                "  filled  {:>10} in {:>7.2} s  {:>10.0} msgs/s  (confirmed {})",
                b.published, b.publish_seconds, b.published_per_s, b.confirmed
            )?;
            writeln!(
                f,
                "  drained {:>10} in {:>7.2} s  {:>10.0} msgs/s  (lost {})",
                b.consumed, b.drain_seconds, b.drained_per_s, b.lost
            )?;
            if let Some(kib) = b.broker_rss_full_kib {
                writeln!(f, "  broker RSS with the backlog queued: {}", mib(kib))?;
            }
            write_latency(f, "time queued", &b.latency)?;
        }
        if let Some(c) = &self.connections {
            writeln!(f, "  opened {}/{} connections in {:.2} s ({:.0}/s), {} failed; held {:.1} s; closed in {:.2} s", c.opened, c.requested, c.open_seconds, c.opened_per_s, c.failed, c.hold_seconds, c.close_seconds)?;
            write_latency(f, "open time", &c.open_latency)?;
            if let (Some(held), Some(per)) =
                (c.broker_rss_held_kib, c.broker_rss_per_connection_kib)
            {
                writeln!(
                    f,
                    "  broker RSS while held: {}, {per:.1} KiB per connection",
                    mib(held)
                )?;
            }
        }
        if let Some(c) = &self.churn {
            write_churn(f, "queue declare+delete", &c.queues)?;
            write_churn(f, "connection open+close", &c.connections)?;
        }
        if let Some(b) = &self.broker {
            let u = &b.usage;
            writeln!(
                f,
                "  broker pid {}: {:.2} CPU-s, RSS {} → {} (peak {}, VmHWM {})",
                u.pid,
                u.cpu_seconds,
                mib(u.rss_before_kib),
                mib(u.rss_after_kib),
                mib(u.rss_peak_kib),
                mib(u.vm_hwm_kib)
            )?;
            if let Some(cpu) = b.cpu_s_per_million_published {
                writeln!(f, "  broker CPU-s per million published: {cpu:.2}")?;
            }
            if let Some(cpu) = b.cpu_s_per_million_delivered {
                writeln!(f, "  broker CPU-s per million delivered: {cpu:.2}")?;
            }
        }
        writeln!(f, "  errors: {}", self.errors)?;
        for sample in &self.error_samples {
            writeln!(f, "    {sample}")?;
        }
        Ok(())
    }
}

fn write_latency(f: &mut Formatter<'_>, what: &str, latency: &Option<Latency>) -> fmt::Result {
    match latency {
        Some(l) => writeln!(
            f,
            "  {what}: p50 {}  p95 {}  p99 {}  max {}  ({} samples)",
            micros(l.p50_us),
            micros(l.p95_us),
            micros(l.p99_us),
            micros(l.max_us),
            l.samples
        ),
        None => Ok(()),
    }
}

fn write_churn(f: &mut Formatter<'_>, what: &str, phase: &ChurnPhase) -> fmt::Result {
    writeln!(
        f,
        "  {what}: {} in {:.2} s  {:.0}/s  ({} failed)",
        phase.operations, phase.seconds, phase.per_s, phase.failed
    )?;
    write_latency(f, "  latency", &phase.latency)
}

fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
