//! Connections mode: open N connections (each with one channel) from `concurrency` workers,
//! hold them, close them. Reports the time to open and the broker's memory per connection.

use crate::args::Args;
use crate::broker_stats;
use crate::connect::connect;
use crate::error::PerfError;
use crate::report::{BrokerReport, ConnectionsReport, Report};
use crate::stats::{latency_histogram, rate, Counters, Latency};
use hdrhistogram::Histogram;
use lapin::{Channel, Connection};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// What one opening worker got.
struct Opened {
    held: Vec<(Connection, Channel)>,
    latency: Histogram<u64>,
}

pub async fn run(args: &Args) -> Result<Report, PerfError> {
    let counters = Arc::new(Counters::default());
    let sampler = broker_stats::start(args.broker_pid)?;
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency.min(args.connections.max(1)))
        .map(|_| {
            tokio::spawn(open(
                args.uri.clone(),
                args.connections,
                next.clone(),
                counters.clone(),
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
    let closes: Vec<_> = held
        .into_iter()
        .map(|(conn, channel)| {
            tokio::spawn(async move {
                // lapin closes a dropped channel: keep it until the connection closes.
                let closed = conn.close(200, "done".into()).await;
                drop(channel);
                closed
            })
        })
        .collect();
    for close in closes {
        if let Err(e) = close.await? {
            counters.error(format!("close: {e}"));
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

/// Opens connections until `total` were attempted across all workers.
async fn open(
    uri: String,
    total: usize,
    next: Arc<AtomicUsize>,
    counters: Arc<Counters>,
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
        let result = async {
            let conn = connect(&uri, &format!("warren-perf connection {i}")).await?;
            let channel = conn.create_channel().await?;
            Ok::<_, lapin::Error>((conn, channel))
        }
        .await;
        match result {
            Ok(pair) => {
                opened
                    .latency
                    .saturating_record(began.elapsed().as_micros() as u64);
                opened.held.push(pair);
            }
            Err(e) => counters.error(format!("connection {i}: {e}")),
        }
    }
}
