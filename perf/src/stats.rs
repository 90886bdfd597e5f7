//! Counters every producer and consumer bumps, read by the progress line and the final report,
//! and the latency histogram each consumer keeps to itself until the end.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many error messages a report quotes; the rest are only counted.
const ERROR_SAMPLES: usize = 5;

#[derive(Default)]
pub struct Counters {
    /// Publishes written to the socket.
    pub published: AtomicU64,
    /// Publishes the broker acked (publisher confirms).
    pub confirmed: AtomicU64,
    /// Publishes the broker nacked.
    pub nacked: AtomicU64,
    /// Deliveries received by consumers.
    pub consumed: AtomicU64,
    pub errors: AtomicU64,
    /// The first few error messages, for the report.
    samples: Mutex<Vec<String>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < ERROR_SAMPLES {
            samples.push(what.to_string());
        }
    }

    pub fn error_samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// End-to-end latency in microseconds, 3 significant digits, up to an hour.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Latency {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
        })
    }
}

/// How long a counter has not moved: what tells a slow broker from a stuck one.
pub struct Stall {
    seen: u64,
    since: Instant,
}

impl Stall {
    pub fn new(value: u64) -> Self {
        Self {
            seen: value,
            since: Instant::now(),
        }
    }

    /// Takes the counter's current value; returns how long it has been unchanged.
    pub fn observe(&mut self, value: u64) -> Duration {
        if value != self.seen {
            (self.seen, self.since) = (value, Instant::now());
        }
        self.since.elapsed()
    }

    /// When the counter last moved.
    pub fn last_change(&self) -> Instant {
        self.since
    }
}

/// Operations per second over `elapsed`, 0 when nothing was measured.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_summarises_a_histogram() {
        let mut h = latency_histogram();
        assert_eq!(Latency::from_histogram(&h), None);
        for v in 1..=100 {
            h.record(v).unwrap();
        }
        let l = Latency::from_histogram(&h).unwrap();
        assert_eq!(
            (l.samples, l.p50_us, l.p99_us, l.max_us),
            (100, 50, 99, 100)
        );
    }

    #[test]
    fn only_the_first_errors_are_quoted() {
        let c = Counters::default();
        for i in 0..10 {
            c.error(i);
        }
        assert_eq!(Counters::get(&c.errors), 10);
        assert_eq!(c.error_samples().len(), ERROR_SAMPLES);
    }
}
