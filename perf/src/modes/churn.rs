//! Churn mode: how fast the broker declares and deletes queues, then opens and closes
//! connections (with the tool's own client, each with one channel), each phase run by
//! `concurrency` workers for the duration or count.

use crate::args::{Args, Limit};
use crate::broker_stats;
use crate::connect::connect;
use crate::error::PerfError;
use crate::raw_connection::{self, RawConnection};
use crate::report::{BrokerReport, ChurnPhase, ChurnReport, Report};
use crate::stats::{latency_histogram, rate, Counters, Latency};
use hdrhistogram::Histogram;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(args: &Args) -> Result<Report, PerfError> {
    let counters = Arc::new(Counters::default());
    let sampler = broker_stats::start(args.broker_pid)?;
    let limit = args.churn_limit();
    let uri = args.uri.clone();
    let queues = phase(args.concurrency, &counters, |worker| {
        queue_churn(uri.clone(), worker, limit, counters.clone())
    })
    .await?;
    let connections = phase(args.concurrency, &counters, |worker| {
        connection_churn(uri.clone(), worker, limit, counters.clone())
    })
    .await?;
    let mut report = Report::new("churn");
    report.churn = Some(ChurnReport {
        queues,
        connections,
    });
    report.broker = sampler.map(|s| BrokerReport {
        usage: s.finish(),
        cpu_s_per_million_published: None,
        cpu_s_per_million_delivered: None,
    });
    report.errors = Counters::get(&counters.errors);
    report.error_samples = counters.error_samples();
    Ok(report)
}

/// What one worker did in a phase.
#[derive(Default)]
struct Worked {
    operations: u64,
    failed: u64,
    latency: Option<Histogram<u64>>,
}

impl Worked {
    fn record<E: std::fmt::Display>(
        &mut self,
        began: Instant,
        result: Result<(), E>,
        counters: &Counters,
    ) {
        match result {
            Ok(()) => {
                self.operations += 1;
                let latency = self.latency.get_or_insert_with(latency_histogram);
                latency.saturating_record(began.elapsed().as_micros() as u64);
            }
            Err(e) => {
                self.failed += 1;
                counters.error(e);
            }
        }
    }
}

/// Runs `worker` on `concurrency` tasks and adds up what they did.
async fn phase<F, Fut>(
    concurrency: usize,
    counters: &Counters,
    worker: F,
) -> Result<ChurnPhase, PerfError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Worked, PerfError>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency).map(|i| tokio::spawn(worker(i))).collect();
    let (mut operations, mut failed, mut latency) = (0, 0, latency_histogram());
    for task in tasks {
        match task.await? {
            Ok(worked) => {
                operations += worked.operations;
                failed += worked.failed;
                if let Some(h) = &worked.latency {
                    let _ = latency.add(h);
                }
            }
            Err(e) => counters.error(e),
        }
    }
    let elapsed = start.elapsed();
    Ok(ChurnPhase {
        operations,
        failed,
        seconds: elapsed.as_secs_f64(),
        per_s: rate(operations, elapsed),
        latency: Latency::from_histogram(&latency),
    })
}

/// Whether a worker that started at `start` and did `done` operations goes on.
fn goes_on(limit: Limit, start: Instant, done: u64) -> bool {
    match limit {
        Limit::Count(n) => done < n,
        Limit::Duration(d) => start.elapsed() < d,
    }
}

async fn queue_churn(
    uri: String,
    worker: usize,
    limit: Limit,
    counters: Arc<Counters>,
) -> Result<Worked, PerfError> {
    let conn = connect(&uri, &format!("warren-perf churn {worker}")).await?;
    let mut channel = conn.create_channel().await?;
    let (start, mut worked) = (Instant::now(), Worked::default());
    let mut i = 0u64;
    while goes_on(limit, start, i) {
        let name = format!("warren-perf-churn-{worker}-{i}");
        i += 1;
        let began = Instant::now();
        let result = async {
            let options = QueueDeclareOptions::default();
            channel
                .queue_declare(name.as_str().into(), options, FieldTable::default())
                .await?;
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await?;
            Ok::<(), lapin::Error>(())
        }
        .await;
        let failed = result.is_err();
        worked.record(began, result, &counters);
        if failed {
            // A failed method closes the channel; carry on with a new one.
            channel = conn.create_channel().await?;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(worked)
}

async fn connection_churn(
    uri: String,
    worker: usize,
    limit: Limit,
    counters: Arc<Counters>,
) -> Result<Worked, PerfError> {
    // The tool's own client, as in connections mode: lapin would start and stop a thread for
    // every connection, and the tool would measure that rather than the broker.
    let target = raw_connection::target(&uri)?;
    let name = format!("warren-perf churn {worker}");
    let (start, mut worked) = (Instant::now(), Worked::default());
    let mut i = 0u64;
    while goes_on(limit, start, i) {
        i += 1;
        let began = Instant::now();
        let result = async { RawConnection::open(&target, &name).await?.close().await }.await;
        worked.record(began, result, &counters);
    }
    Ok(worked)
}
