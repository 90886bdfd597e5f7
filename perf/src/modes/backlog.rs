//! Backlog mode: publish with no consumer until the limit, then start the consumers and drain.
//! Reports both rates and what the queued backlog cost the broker in memory.

use super::load::{self, Consumers};
use crate::args::Args;
use crate::broker_stats::{self, cpu_per_million};
use crate::error::PerfError;
use crate::progress;
use crate::report::{BacklogReport, BrokerReport, Report};
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
    topology.declare(&args.uri).await?;
    let counters = Arc::new(Counters::default());
    let sampler = broker_stats::start(args.broker_pid)?;
    let progress = progress::start(counters.clone(), args.json);

    let plans = load::producer_plans(args, &topology, args.producers);
    let publish_time =
        load::run_producers(plans, args.limit(), args.drain_timeout(), &counters).await;
    let published = Counters::get(&counters.published);
    let full_kib = sampler.as_ref().map(|s| s.now().rss_kib);

    // Every queue needs a consumer for the backlog to drain.
    let consumers = args.consumers.max(topology.queues.len());
    let subscribed = load::subscribe(load::consumer_plans(args, &topology, consumers)).await?;
    let drain_start = Instant::now();
    let running = Consumers::spawn(subscribed, &counters);
    let expected = published * topology.deliveries_per_publish();
    let lost = running
        .drain(&counters, expected, args.drain_timeout())
        .await;
    let drained = running.finish(&counters).await;
    drop(progress);
    let usage = sampler.map(|s| s.finish());
    if !args.no_cleanup {
        if let Err(e) = topology.delete(&args.uri).await {
            counters.error(format!("cleanup: {e}"));
        }
    }

    let consumed = Counters::get(&counters.consumed);
    let drain_time = drained
        .last_delivery
        .map_or(Default::default(), |t| t - drain_start);
    let mut report = Report::new("backlog");
    report.backlog = Some(BacklogReport {
        published,
        confirmed: Counters::get(&counters.confirmed),
        publish_seconds: publish_time.as_secs_f64(),
        published_per_s: rate(published, publish_time),
        consumed,
        lost,
        drain_seconds: drain_time.as_secs_f64(),
        drained_per_s: rate(consumed, drain_time),
        broker_rss_full_kib: full_kib,
        latency: Latency::from_histogram(&drained.latency),
    });
    report.broker = usage.map(|usage| BrokerReport {
        cpu_s_per_million_published: cpu_per_million(&usage, published),
        cpu_s_per_million_delivered: None,
        usage,
    });
    report.errors = Counters::get(&counters.errors);
    report.error_samples = counters.error_samples();
    Ok(report)
}
