//! Turns counters into samples every `collect_statistics_interval`: one per queue, exchange,
//! channel, connection and vhost, and one for the node. Totals are summed here, off the
//! message path: a connection's from its channels, a vhost's from its connections (and those
//! that closed), the node's from its vhosts.

use super::message::now_ms;
use super::stats::{sum, Counts, Sample, STATS};
use super::Broker;
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

pub async fn run(broker: Weak<Broker>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        sample(&broker);
    }
}

/// Takes one sample of everything.
pub fn sample(broker: &Broker) {
    let at = now_ms();
    let record = |series: &super::stats::Series, counts: Counts, lengths: [u64; 3]| {
        series.record(Sample {
            at,
            counts,
            lengths,
        })
    };
    // Connections first: their totals go into their vhosts'.
    let mut per_vhost: HashMap<String, Counts> = HashMap::new();
    for (_, c) in broker.connections.list() {
        for (_, channel) in c.details.channel_stats() {
            record(&channel.series, channel.counters.read(), [0; 3]);
        }
        let totals = c.details.totals();
        record(&c.details.stats.series, totals, [0; 3]);
        let slot = per_vhost.entry(c.vhost.clone()).or_insert([0; STATS]);
        *slot = sum(slot, &totals);
    }
    let (mut node, mut node_lengths) = ([0; STATS], [0u64; 3]);
    for vhost in broker.all_vhosts() {
        let mut lengths = [0u64; 3];
        for q in vhost.queues() {
            let (ready, unacked) = q.lengths();
            let queue_lengths = [ready + unacked, ready, unacked];
            record(&q.stats.series, q.stats.counters.read(), queue_lengths);
            lengths = std::array::from_fn(|i| lengths[i] + queue_lengths[i]);
        }
        for x in vhost.exchanges() {
            record(&x.stats.series, x.stats.counters.read(), [0; 3]);
        }
        let live = per_vhost.remove(&vhost.name).unwrap_or([0; STATS]);
        let totals = sum(&vhost.stats.counters.read(), &live);
        record(&vhost.stats.series, totals, lengths);
        node = sum(&node, &totals);
        node_lengths = std::array::from_fn(|i| node_lengths[i] + lengths[i]);
    }
    let node = sum(&node, &broker.connections.churn.read());
    record(&broker.stats.series, node, node_lengths);
}

/// A vhost's counts now: its closed connections' and its open ones'.
pub fn vhost_totals(broker: &Broker, vhost: &super::vhost::VHost) -> Counts {
    broker
        .connections
        .list()
        .iter()
        .filter(|(_, c)| c.vhost == vhost.name)
        .fold(vhost.stats.counters.read(), |acc, (_, c)| {
            sum(&acc, &c.details.totals())
        })
}

/// The node's counts now, churn included.
pub fn node_totals(broker: &Broker) -> Counts {
    broker
        .all_vhosts()
        .iter()
        .fold(broker.connections.churn.read(), |acc, v| {
            sum(&acc, &vhost_totals(broker, v))
        })
}
