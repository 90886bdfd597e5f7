//! Connections mode: open N connections (each with one channel) from `concurrency` workers,
//! hold them, close them. Reports the time to open and the broker's memory per connection.
//!
//! Connections are `RawConnection`s, one tokio task each, so that holding many thousands of
//! them costs the tool little and the figures are the broker's.

use crate::args::Args;
use crate::broker_stats;
use crate::error::PerfError;
use crate::raw_connection::{self, RawConnection};
use crate::report::{BrokerReport, ConnectionsReport, Report};
use crate::stats::{latency_histogram, rate, Counters, Latency};
use hdrhistogram::Histogram;
use lapin::uri::AMQPUri;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A held connection: its number (for error messages) and the task holding then closing it.
type Held = (usize, JoinHandle<Result<(), PerfError>>);

/// What one opening worker got.
struct Opened {
    held: Vec<Held>,
    latency: Histogram<u64>,
}

pub async fn run(args: &Args) -> Result<Report, PerfError> {
    let target = Arc::new(raw_connection::target(&args.uri)?);
    let counters = Arc::new(Counters::default());
    let sampler = broker_stats::start(args.broker_pid)?;
    // Tells every holding task to close; they also hold through the opening phase.
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency.min(args.connections.max(1)))
        .map(|_| {
            tokio::spawn(open(
                target.clone(),
                args.connections,
                next.clone(),
                counters.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let mut held = Vec::with_capacity(args.connections);
    let mut latency = latency_histogram();
    for worker in workers {
        let opened = worker.await?;
        held.extend(opened.held);
        let _ = latency.add(&opened.latency);
    }
    let open_time = start.elapsed();

    tokio::time::sleep(args.hold()).await;
    let held_kib = sampler.as_ref().map(|s| s.now().rss_kib);
    let opened = held.len();
    let closing = Instant::now();
    stop.send_replace(true);
    for (i, task) in held {
        if let Err(e) = task.await? {
            counters.error(format!("connection {i} while held or closing: {e}"));
        }
    }
    let close_time = closing.elapsed();
    let usage = sampler.map(|s| s.finish());

    let mut report = Report::new("connections");
    let per_connection = match (held_kib, &usage) {
        (Some(held), Some(u)) if opened > 0 => {
            Some((held as f64 - u.rss_before_kib as f64) / opened as f64)
        }
        _ => None,
    };
    report.connections = Some(ConnectionsReport {
        requested: args.connections,
        opened,
        failed: args.connections - opened,
        open_seconds: open_time.as_secs_f64(),
        opened_per_s: rate(opened as u64, open_time),
        open_latency: Latency::from_histogram(&latency),
        hold_seconds: args.hold().as_secs_f64(),
        close_seconds: close_time.as_secs_f64(),
        broker_rss_held_kib: held_kib,
        broker_rss_per_connection_kib: per_connection,
    });
    report.broker = usage.map(|usage| BrokerReport {
        usage,
        cpu_s_per_million_published: None,
        cpu_s_per_million_delivered: None,
    });
    report.errors = Counters::get(&counters.errors);
    report.error_samples = counters.error_samples();
    Ok(report)
}

/// Opens connections until `total` were attempted across all workers, handing each to a task
/// of its own that holds it until `stop`.
async fn open(
    target: Arc<AMQPUri>,
    total: usize,
    next: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Opened {
    let mut opened = Opened {
        held: Vec::new(),
        latency: latency_histogram(),
    };
    loop {
        let i = next.fetch_add(1, Relaxed);
        if i >= total {
            return opened;
        }
        let began = Instant::now();
        let name = format!("warren-perf connection {i}");
        match RawConnection::open(&target, &name).await {
            Ok(conn) => {
                opened
                    .latency
                    .saturating_record(began.elapsed().as_micros() as u64);
                opened
                    .held
                    .push((i, tokio::spawn(hold(conn, stop.clone()))));
            }
            Err(e) => counters.error(format!("connection {i}: {e}")),
        }
    }
}

async fn hold(mut conn: RawConnection, mut stop: watch::Receiver<bool>) -> Result<(), PerfError> {
    conn.hold(&mut stop).await?;
    conn.close().await
}
