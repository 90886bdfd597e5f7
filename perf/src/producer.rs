//! One producer: its own connection, channel and task, publishing timestamped bodies to one
//! route. Publishes are pipelined (a window of writes lapin has queued, not awaited one by
//! one); with confirms, at most `confirm` messages are unconfirmed at once.

use crate::args::Client;
use crate::connect::connect;
use crate::error::PerfError;
use crate::in_flight::InFlight;
use crate::message::stamp;
use crate::stats::Counters;
use crate::topology::Route;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
use lapin::{Confirmation, PublisherConfirm};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Publishes handed to lapin and not yet written: deep enough that its writer always has a
/// batch to send, small enough to bound the memory they hold.
const WRITE_WINDOW: usize = 1000;
/// Publishes started between two looks at what has completed.
pub(crate) const BATCH: usize = 100;

#[derive(Debug, Clone)]
pub struct ProducerPlan {
    pub uri: String,
    pub client: Client,
    pub id: usize,
    pub route: Route,
    pub size: usize,
    /// Messages per second; 0 is unlimited.
    pub rate: f64,
    /// Maximum unconfirmed messages; 0 disables publisher confirms.
    pub confirm: usize,
    pub persistent: bool,
    /// Messages to publish before stopping on its own.
    pub count: Option<u64>,
}

/// Publishes until `count` is reached or `stop` turns true, then waits for outstanding writes
/// and confirms. Returns how long that took.
pub async fn run(
    plan: ProducerPlan,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<Duration, PerfError> {
    let conn = connect(&plan.uri, &format!("warren-perf producer {}", plan.id)).await?;
    let channel = conn.create_channel().await?;
    if plan.confirm > 0 {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    let mut producer = Producer::new(plan, channel, counters);
    let result = producer.publish_until(stop).await;
    let elapsed = producer.start.elapsed();
    let _ = conn.close(200, "done".into()).await;
    result.map(|()| elapsed)
}

struct Producer {
    plan: ProducerPlan,
    channel: Channel,
    counters: Arc<Counters>,
    exchange: ShortString,
    routing_key: ShortString,
    properties: BasicProperties,
    writes: InFlight<lapin::Result<PublisherConfirm>>,
    confirms: InFlight<lapin::Result<Confirmation>>,
    sent: u64,
    start: Instant,
    pace: Pace,
}

// Lives on the stack for one loop turn; boxing would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Event {
    Written(lapin::Result<PublisherConfirm>),
    Confirmed(lapin::Result<Confirmation>),
    Wake,
}

impl Producer {
    fn new(plan: ProducerPlan, channel: Channel, counters: Arc<Counters>) -> Self {
        let (rate, start) = (plan.rate, Instant::now());
        let mut properties = BasicProperties::default();
        if plan.persistent {
            properties = properties.with_delivery_mode(2);
        }
        if let Some(headers) = &plan.route.headers {
            properties = properties.with_headers(headers.clone());
        }
        Self {
            exchange: plan.route.exchange.as_str().into(),
            routing_key: plan.route.routing_key.as_str().into(),
            plan,
            channel,
            counters,
            properties,
            writes: InFlight::default(),
            confirms: InFlight::default(),
            sent: 0,
            start,
            pace: Pace { rate, start },
        }
    }

    async fn publish_until(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), PerfError> {
        // Also set when the run's coordinator is gone, so a closed watch cannot spin the loop.
        let mut stopped = false;
        loop {
            self.collect().await?;
            stopped |= *stop.borrow();
            let stopping = stopped || self.plan.count.is_some_and(|n| self.sent >= n);
            if stopping && self.writes.is_empty() && self.confirms.is_empty() {
                return Ok(());
            }
            // One reading of the clock for the budget and the wake-up, so that they agree.
            let now = Instant::now();
            let budget = if stopping { 0 } else { self.budget(now) };
            if budget > 0 {
                for _ in 0..budget.min(BATCH as u64) {
                    self.publish().await;
                }
                continue;
            }
            let wake = if stopping {
                None
            } else {
                self.pace.next_at(self.sent, now)
            };
            let event = tokio::select! {
                written = self.writes.next() => Event::Written(written),
                confirmed = self.confirms.next() => Event::Confirmed(confirmed),
                _ = sleep_until(wake), if wake.is_some() => Event::Wake,
                changed = stop.changed(), if !stopping => {
                    stopped |= changed.is_err();
                    Event::Wake
                }
            };
            match event {
                Event::Written(written) => self.on_written(written).await?,
                Event::Confirmed(confirmed) => self.on_confirmed(confirmed)?,
                Event::Wake => {}
            }
        }
    }

    /// Takes in every write and confirm that has completed.
    async fn collect(&mut self) -> Result<(), PerfError> {
        while let Some(written) = self.writes.try_next().await {
            self.on_written(written).await?;
        }
        while let Some(confirmed) = self.confirms.try_next().await {
            self.on_confirmed(confirmed)?;
        }
        Ok(())
    }

    async fn on_written(
        &mut self,
        written: lapin::Result<PublisherConfirm>,
    ) -> Result<(), PerfError> {
        let confirm = written?;
        Counters::add(&self.counters.published, 1);
        if self.plan.confirm > 0 {
            self.confirms.start(confirm).await;
        }
        Ok(())
    }

    fn on_confirmed(&mut self, confirmed: lapin::Result<Confirmation>) -> Result<(), PerfError> {
        match confirmed? {
            Confirmation::Nack(_) => Counters::add(&self.counters.nacked, 1),
            _ => Counters::add(&self.counters.confirmed, 1),
        }
        Ok(())
    }

    /// How many more messages may be started now: the write window, the confirm window, the
    /// rate limit and the message count all bound it.
    fn budget(&self, now: Instant) -> u64 {
        let in_flight = self.writes.len() + self.confirms.len();
        let mut window = WRITE_WINDOW.saturating_sub(self.writes.len());
        if self.plan.confirm > 0 {
            window = window.min(self.plan.confirm.saturating_sub(in_flight));
        }
        let mut budget = window as u64;
        if let Some(count) = self.plan.count {
            budget = budget.min(count.saturating_sub(self.sent));
        }
        budget.min(self.pace.allowance(self.sent, now))
    }

    async fn publish(&mut self) {
        let channel = self.channel.clone();
        let exchange = self.exchange.clone();
        let routing_key = self.routing_key.clone();
        let properties = self.properties.clone();
        let (size, seq) = (self.plan.size, self.sent);
        self.sent += 1;
        self.writes
            .start(async move {
                let mut body = vec![0u8; size];
                stamp(&mut body, seq);
                let options = BasicPublishOptions::default();
                channel
                    .basic_publish(exchange, routing_key, options, &body, properties)
                    .await
            })
            .await;
    }
}

/// The rate limit: message n may go at `start + n / rate`.
pub(crate) struct Pace {
    /// Messages per second; 0 is unlimited.
    pub rate: f64,
    pub start: Instant,
}

impl Pace {
    /// Messages that may go at `now` after `sent` went.
    pub fn allowance(&self, sent: u64, now: Instant) -> u64 {
        if self.rate <= 0.0 {
            return u64::MAX;
        }
        let elapsed = now.duration_since(self.start).as_secs_f64();
        ((self.rate * elapsed) as u64 + 1).saturating_sub(sent)
    }

    /// When the next message may go, if the rate holds it back at `now`. Both answers come
    /// from the same `now`: a wake-up computed from a later clock reading could be missing
    /// while the allowance was still 0, and the producer would sleep forever.
    pub fn next_at(&self, sent: u64, now: Instant) -> Option<Instant> {
        (self.allowance(sent, now) == 0)
            .then(|| self.start + Duration::from_secs_f64(sent as f64 / self.rate))
    }
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_lets_messages_go_at_the_rate_and_wakes_when_the_next_may() {
        let start = Instant::now();
        let pace = Pace {
            rate: 1000.0,
            start,
        };
        assert_eq!(pace.allowance(0, start), 1);
        assert_eq!(pace.next_at(0, start), None);
        assert_eq!(pace.allowance(1, start), 0);
        assert_eq!(
            pace.next_at(1, start),
            Some(start + Duration::from_millis(1))
        );
        let later = start + Duration::from_millis(10);
        assert_eq!(pace.allowance(1, later), 10);
        let unlimited = Pace { rate: 0.0, start };
        assert_eq!(unlimited.allowance(1_000_000, start), u64::MAX);
        assert_eq!(unlimited.next_at(1_000_000, start), None);
    }
}
