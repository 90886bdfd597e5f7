//! The pieces the message-moving modes (throughput, backlog, fanout) share: starting producers
//! and consumers as tasks, stopping producers on time or count, and waiting for consumers to
//! drain what was published.

use crate::args::{Args, Client, Limit};
use crate::consumer::{self, Consumer, ConsumerPlan};
use crate::error::PerfError;
use crate::producer::{self, ProducerPlan};
use crate::raw_consumer::{self, RawConsumer};
use crate::raw_producer;
use crate::stats::{latency_histogram, Counters, Stall};
use crate::topology::Topology;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How often the drain loop looks at the consumed counter.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// How often stopped producers are checked for progress.
const STALL_POLL: Duration = Duration::from_millis(100);

pub fn producer_plans(args: &Args, topology: &Topology, producers: usize) -> Vec<ProducerPlan> {
    let count = match args.limit() {
        Limit::Count(n) => Some(n),
        Limit::Duration(_) => None,
    };
    (0..producers)
        .map(|id| ProducerPlan {
            uri: args.uri.clone(),
            client: args.client,
            id,
            route: topology.route(id),
            size: args.size,
            rate: args.rate,
            confirm: args.confirm,
            persistent: args.persistent,
            count,
        })
        .collect()
}

pub fn consumer_plans(args: &Args, topology: &Topology, consumers: usize) -> Vec<ConsumerPlan> {
    (0..consumers)
        .map(|id| ConsumerPlan {
            uri: args.uri.clone(),
            client: args.client,
            id,
            queue: topology.queues[id % topology.queues.len()].clone(),
            auto_ack: args.auto_ack,
            prefetch: args.prefetch,
            multi_ack: args.multi_ack,
        })
        .collect()
}

/// Runs producers to their limit (or Ctrl-C) and returns the longest time one of them took,
/// including waiting for its confirms. Producer failures are counted as errors; so are
/// producers that, once stopped, make no progress for `drain_timeout` (the broker is not
/// reading their publishes or not confirming them), which are then abandoned.
pub async fn run_producers(
    plans: Vec<ProducerPlan>,
    limit: Limit,
    drain_timeout: Duration,
    counters: &Arc<Counters>,
) -> Duration {
    let started = Instant::now();
    let mut remaining = plans.len();
    let (stop, stop_rx) = watch::channel(false);
    let (results, mut finished) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for plan in plans {
        let (counters, stop_rx, results) = (counters.clone(), stop_rx.clone(), results.clone());
        tasks.spawn(async move {
            let id = plan.id;
            let result = match plan.client {
                Client::Lapin => producer::run(plan, counters, stop_rx).await,
                Client::Raw => raw_producer::run(plan, counters, stop_rx).await,
            };
            let _ = results.send((id, result));
        });
    }
    let deadline = match limit {
        Limit::Duration(d) => Some(tokio::time::Instant::now() + d),
        Limit::Count(_) => None,
    };
    let (mut longest, mut stopped) = (Duration::ZERO, false);
    let mut stall = Stall::new(producer_progress(counters));
    let mut tick = tokio::time::interval(STALL_POLL);
    while remaining > 0 {
        tokio::select! {
            Some((id, result)) = finished.recv() => {
                remaining -= 1;
                match result {
                    Ok(elapsed) => longest = longest.max(elapsed),
                    Err(e) => counters.error(format!("producer {id}: {e}")),
                }
            }
            _ = sleep_until(deadline), if !stopped && deadline.is_some() => stopped = true,
            _ = tokio::signal::ctrl_c(), if !stopped => stopped = true,
            _ = tick.tick(), if stopped => {
                if stall.observe(producer_progress(counters)) > drain_timeout {
                    counters.error(format!(
                        "{remaining} producer(s) made no progress for {drain_timeout:?} after \
                         being stopped (publishes unwritten or unconfirmed)"
                    ));
                    // Publishing went on until the last write or confirm.
                    longest = longest.max(stall.last_change().saturating_duration_since(started));
                    break;
                }
            }
        }
        if stopped {
            stop.send_replace(true);
        }
    }
    tasks.abort_all();
    longest
}

/// What moves while producers finish: writes, confirms and nacks.
fn producer_progress(c: &Counters) -> u64 {
    Counters::get(&c.published) + Counters::get(&c.confirmed) + Counters::get(&c.nacked)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// A consumer on either client, subscribed and waiting to consume.
// One per consumer, held only until they all start: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Subscribed {
    Lapin(Consumer),
    Raw(RawConsumer),
}

impl Subscribed {
    async fn new(plan: ConsumerPlan) -> Result<Self, PerfError> {
        Ok(match plan.client {
            Client::Lapin => Subscribed::Lapin(consumer::subscribe(plan).await?),
            Client::Raw => Subscribed::Raw(raw_consumer::subscribe(plan).await?),
        })
    }

    async fn consume(
        self,
        counters: Arc<Counters>,
        done: watch::Receiver<bool>,
    ) -> Result<consumer::Consumed, PerfError> {
        match self {
            Subscribed::Lapin(c) => c.consume(counters, done).await,
            Subscribed::Raw(c) => c.consume(counters, done).await,
        }
    }
}

/// Subscribes every consumer at once; the run publishes only after all are in place.
pub async fn subscribe(plans: Vec<ConsumerPlan>) -> Result<Vec<Subscribed>, PerfError> {
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| tokio::spawn(Subscribed::new(plan)))
        .collect();
    let mut consumers = Vec::with_capacity(tasks.len());
    for task in tasks {
        consumers.push(task.await??);
    }
    Ok(consumers)
}

/// Consumers running as tasks until `finish`.
pub struct Consumers {
    done: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<consumer::Consumed, PerfError>>>,
}

/// What all consumers saw.
pub struct Drained {
    pub latency: Histogram<u64>,
    pub last_delivery: Option<Instant>,
}

impl Consumers {
    pub fn spawn(consumers: Vec<Subscribed>, counters: &Arc<Counters>) -> Self {
        let (done, done_rx) = watch::channel(false);
        let tasks = consumers
            .into_iter()
            .map(|c| tokio::spawn(c.consume(counters.clone(), done_rx.clone())))
            .collect();
        Self { done, tasks }
    }

    /// Waits until `expected` deliveries were consumed, or until none arrived for
    /// `idle_timeout`; returns how many never came, counting them as an error.
    pub async fn drain(&self, counters: &Counters, expected: u64, idle_timeout: Duration) -> u64 {
        let mut stall = Stall::new(Counters::get(&counters.consumed));
        loop {
            let consumed = Counters::get(&counters.consumed);
            if consumed >= expected {
                return 0;
            }
            if stall.observe(consumed) > idle_timeout {
                let lost = expected - consumed;
                counters.error(format!("{lost} of {expected} deliveries never arrived"));
                return lost;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Stops the consumers (they ack what they hold) and merges what they measured.
    pub async fn finish(self, counters: &Counters) -> Drained {
        self.done.send_replace(true);
        let mut drained = Drained {
            latency: latency_histogram(),
            last_delivery: None,
        };
        for (id, task) in self.tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(consumed)) => {
                    let _ = drained.latency.add(&consumed.latency);
                    drained.last_delivery = drained.last_delivery.max(consumed.last_delivery);
                }
                Ok(Err(e)) => counters.error(format!("consumer {id}: {e}")),
                Err(e) => counters.error(format!("consumer {id}: {e}")),
            }
        }
        drained
    }
}
