//! Throughput mode: producers and consumers run together over the run's queues; reports rates
//! and end-to-end latency. Fanout mode is this over a fanout exchange.

use super::load::{self, Consumers};
use crate::args::Args;
use crate::broker_stats::{self, cpu_per_million};
use crate::error::PerfError;
use crate::progress;
use crate::report::{BrokerReport, LoadReport, Report};
use crate::stats::{rate, Counters, Latency};
use crate::topology::Topology;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(args: &Args) -> Result<Report, PerfError> {
    let topology = Topology {
        exchange: args.exchange.clone(),
        exchange_type: args.exchange_type,
        queues: Topology::queue_names(&args.queue, args.queues),
        durable: args.durable_queues(),
        quorum: args.quorum,
    };
    run_over(
        args,
        "throughput",
        &topology,
        args.producers,
        args.consumers,
    )
    .await
}

/// Publishes through `topology` with `producers` while `consumers` drain its queues.
pub async fn run_over(
    args: &Args,
    mode: &'static str,
    topology: &Topology,
    producers: usize,
    consumers: usize,
) -> Result<Report, PerfError> {
    topology.declare(&args.uri).await?;
    let counters = Arc::new(Counters::default());
    let subscribed = load::subscribe(load::consumer_plans(args, topology, consumers)).await?;
    let sampler = broker_stats::start(args.broker_pid)?;
    let progress = progress::start(counters.clone(), args.json);
    let start = Instant::now();
    let consumers_running = Consumers::spawn(subscribed, &counters);
    let plans = load::producer_plans(args, topology, producers);
    let publish_time =
        load::run_producers(plans, args.limit(), args.drain_timeout(), &counters).await;

    let published = Counters::get(&counters.published);
    let per_publish = topology.deliveries_per_publish();
    let expected = if consumers > 0 {
        published * per_publish
    } else {
        0
    };
    let lost = consumers_running
        .drain(&counters, expected, args.drain_timeout())
        .await;
    let drained = consumers_running.finish(&counters).await;
    drop(progress);
    let usage = sampler.map(|s| s.finish());
    if !args.no_cleanup {
        if let Err(e) = topology.delete(&args.uri).await {
            counters.error(format!("cleanup: {e}"));
        }
    }

    let consumed = Counters::get(&counters.consumed);
    let confirmed = Counters::get(&counters.confirmed);
    let consume_time = drained
        .last_delivery
        .map_or(Default::default(), |t| t - start);
    let mut report = Report::new(mode);
    report.load = Some(LoadReport {
        producers,
        consumers,
        queues: topology.queues.len(),
        message_size: args.size,
        deliveries_per_publish: per_publish,
        published,
        confirmed,
        nacked: Counters::get(&counters.nacked),
        consumed,
        lost,
        publish_seconds: publish_time.as_secs_f64(),
        consume_seconds: consume_time.as_secs_f64(),
        published_per_s: rate(published, publish_time),
        confirmed_per_s: rate(confirmed, publish_time),
        consumed_per_s: rate(consumed, consume_time),
        latency: Latency::from_histogram(&drained.latency),
    });
    report.broker = usage.map(|usage| BrokerReport {
        cpu_s_per_million_published: cpu_per_million(&usage, published),
        cpu_s_per_million_delivered: (per_publish > 1)
            .then(|| cpu_per_million(&usage, consumed))
            .flatten(),
        usage,
    });
    report.errors = Counters::get(&counters.errors);
    report.error_samples = counters.error_samples();
    Ok(report)
}
