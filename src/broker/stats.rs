//! Message statistics as RabbitMQ's management API reports them: monotonic counters per
//! object (channel, queue, exchange), bumped on the message path with one relaxed atomic add
//! each — no map lookup, no lock — and a sampler (`sampler.rs`) that turns them into rates and
//! keeps a short history for charts.
//!
//! Counters that only one task writes (a channel's, written by its connection) cost an
//! uncontended add. Totals (connection, vhost, node) are sums taken by the sampler: a channel
//! that closes hands its counts to its connection's `retired` counters, a connection that
//! closes hands its totals to its vhost's, so totals never go backwards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What is counted. Each object reports the subset RabbitMQ reports for its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    Publish,
    PublishIn,
    PublishOut,
    Confirm,
    ReturnUnroutable,
    DropUnroutable,
    Deliver,
    DeliverNoAck,
    Get,
    GetNoAck,
    GetEmpty,
    Ack,
    Redeliver,
    RecvOct,
    SendOct,
    // Churn: counted as objects come and go, never per message.
    ConnectionCreated,
    ConnectionClosed,
    ChannelCreated,
    ChannelClosed,
    QueueDeclared,
    QueueCreated,
    QueueDeleted,
}

pub const STATS: usize = 22;

impl Stat {
    pub const ALL: [Stat; STATS] = [
        Stat::Publish,
        Stat::PublishIn,
        Stat::PublishOut,
        Stat::Confirm,
        Stat::ReturnUnroutable,
        Stat::DropUnroutable,
        Stat::Deliver,
        Stat::DeliverNoAck,
        Stat::Get,
        Stat::GetNoAck,
        Stat::GetEmpty,
        Stat::Ack,
        Stat::Redeliver,
        Stat::RecvOct,
        Stat::SendOct,
        Stat::ConnectionCreated,
        Stat::ConnectionClosed,
        Stat::ChannelCreated,
        Stat::ChannelClosed,
        Stat::QueueDeclared,
        Stat::QueueCreated,
        Stat::QueueDeleted,
    ];

    /// RabbitMQ's name for it in `message_stats`.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Publish => "publish",
            Stat::PublishIn => "publish_in",
            Stat::PublishOut => "publish_out",
            Stat::Confirm => "confirm",
            Stat::ReturnUnroutable => "return_unroutable",
            Stat::DropUnroutable => "drop_unroutable",
            Stat::Deliver => "deliver",
            Stat::DeliverNoAck => "deliver_no_ack",
            Stat::Get => "get",
            Stat::GetNoAck => "get_no_ack",
            Stat::GetEmpty => "get_empty",
            Stat::Ack => "ack",
            Stat::Redeliver => "redeliver",
            Stat::RecvOct => "recv_oct",
            Stat::SendOct => "send_oct",
            Stat::ConnectionCreated => "connection_created",
            Stat::ConnectionClosed => "connection_closed",
            Stat::ChannelCreated => "channel_created",
            Stat::ChannelClosed => "channel_closed",
            Stat::QueueDeclared => "queue_declared",
            Stat::QueueCreated => "queue_created",
            Stat::QueueDeleted => "queue_deleted",
        }
    }
}

/// One object's counters.
#[derive(Debug, Default)]
pub struct Counters([AtomicU64; STATS]);

/// Counts read at one moment.
pub type Counts = [u64; STATS];

impl Counters {
    #[inline]
    pub fn add(&self, stat: Stat, n: u64) {
        self.0[stat as usize].fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn bump(&self, stat: Stat) {
        self.add(stat, 1);
    }

    pub fn get(&self, stat: Stat) -> u64 {
        self.0[stat as usize].load(Ordering::Relaxed)
    }

    pub fn read(&self) -> Counts {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }

    /// Adds counts read elsewhere (a closed channel's, into its connection's retired ones).
    pub fn absorb(&self, counts: &Counts) {
        for (slot, n) in self.0.iter().zip(counts) {
            slot.fetch_add(*n, Ordering::Relaxed);
        }
    }
}

pub fn sum(a: &Counts, b: &Counts) -> Counts {
    std::array::from_fn(|i| a[i] + b[i])
}

/// How many samples an object keeps: ten minutes at one every five seconds, RabbitMQ's
/// basic retention.
pub const HISTORY: usize = 120;

/// One sample: when, the counts, and the queue lengths (messages, ready, unacked) where the
/// object has them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    pub counts: Counts,
    pub lengths: [u64; 3],
}

/// An object's samples, newest last, and the rates between the last two.
#[derive(Debug, Default)]
pub struct Series {
    samples: Mutex<VecDeque<Sample>>,
}

impl Series {
    pub fn record(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == HISTORY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.iter().copied().collect()
    }

    /// Per-second rates of the counts and of the lengths between the last two samples.
    pub fn rates(&self) -> ([f64; STATS], [f64; 3]) {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let n = samples.len();
        if n < 2 {
            return ([0.0; STATS], [0.0; 3]);
        }
        let (a, b) = (&samples[n - 2], &samples[n - 1]);
        let seconds = (b.at.saturating_sub(a.at)) as f64 / 1000.0;
        if seconds <= 0.0 {
            return ([0.0; STATS], [0.0; 3]);
        }
        let per_second = |x: u64, y: u64| (y as f64 - x as f64) / seconds;
        (
            std::array::from_fn(|i| per_second(a.counts[i], b.counts[i])),
            std::array::from_fn(|i| per_second(a.lengths[i], b.lengths[i])),
        )
    }
}

/// An object's counters and their samples.
#[derive(Debug, Default)]
pub struct Stats {
    pub counters: Counters,
    pub series: Series,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_and_series_give_rates() {
        let c = Counters::default();
        c.bump(Stat::Publish);
        c.add(Stat::Ack, 4);
        let counts = c.read();
        assert_eq!(counts[Stat::Publish as usize], 1);
        assert_eq!(sum(&counts, &counts)[Stat::Ack as usize], 8);
        let s = Series::default();
        let mut sample = Sample {
            at: 10_000,
            counts,
            lengths: [0; 3],
        };
        s.record(sample);
        sample.at = 15_000;
        sample.counts[Stat::Publish as usize] = 51;
        sample.lengths = [10, 10, 0];
        s.record(sample);
        let (rates, lengths) = s.rates();
        assert_eq!(rates[Stat::Publish as usize], 10.0);
        assert_eq!(lengths[0], 2.0);
        for i in 0..HISTORY + 5 {
            sample.at = i as u64;
            s.record(sample);
        }
        assert_eq!(s.samples().len(), HISTORY);
    }
}
