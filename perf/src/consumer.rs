//! One consumer: its own connection, channel and task on one queue, with automatic acks or
//! manual acks (multiple=true every K messages) under a prefetch. It records each delivery's
//! end-to-end latency in a histogram of its own.

use crate::args::Client;
use crate::connect::connect;
use crate::error::PerfError;
use crate::in_flight::InFlight;
use crate::message::latency_micros;
use crate::stats::{latency_histogram, Counters};
use futures_lite::StreamExt;
use hdrhistogram::Histogram;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ConsumerPlan {
    pub uri: String,
    pub client: Client,
    pub id: usize,
    pub queue: String,
    pub auto_ack: bool,
    /// basic.qos prefetch for manual acks; 0 is unlimited.
    pub prefetch: u16,
    /// Acknowledge every this many deliveries at once.
    pub multi_ack: u64,
}

/// A consumer that is subscribed and waiting for `consume`.
pub struct Consumer {
    plan: ConsumerPlan,
    conn: Connection,
    channel: Channel,
    stream: lapin::Consumer,
}

/// What a consumer saw.
pub struct Consumed {
    pub latency: Histogram<u64>,
    /// When its last delivery arrived.
    pub last_delivery: Option<Instant>,
}

/// Opens the connection and subscribes, so that the run can start publishing only once every
/// consumer is in place.
pub async fn subscribe(plan: ConsumerPlan) -> Result<Consumer, PerfError> {
    let conn = connect(&plan.uri, &format!("warren-perf consumer {}", plan.id)).await?;
    let channel = conn.create_channel().await?;
    if !plan.auto_ack && plan.prefetch > 0 {
        channel
            .basic_qos(plan.prefetch, BasicQosOptions::default())
            .await?;
    }
    let options = BasicConsumeOptions {
        no_ack: plan.auto_ack,
        ..Default::default()
    };
    let stream = channel
        .basic_consume(
            plan.queue.as_str().into(),
            "".into(),
            options,
            FieldTable::default(),
        )
        .await?;
    Ok(Consumer {
        plan,
        conn,
        channel,
        stream,
    })
}

// Lives on the stack for one loop turn; boxing would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Event {
    Done,
    Delivered(Option<lapin::Result<Delivery>>),
    Acked(lapin::Result<()>),
}

impl Consumer {
    /// Consumes until `done` turns true, then acknowledges what it holds and closes.
    pub async fn consume(
        mut self,
        counters: Arc<Counters>,
        mut done: watch::Receiver<bool>,
    ) -> Result<Consumed, PerfError> {
        let mut consumed = Consumed {
            latency: latency_histogram(),
            last_delivery: None,
        };
        let mut acks = InFlight::default();
        // Deliveries received and not yet acknowledged, and the newest one's tag.
        let (mut unacked, mut last_tag) = (0u64, 0u64);
        loop {
            let event = tokio::select! {
                biased;
                _ = done.wait_for(|done| *done) => Event::Done,
                delivery = self.stream.next() => Event::Delivered(delivery),
                acked = acks.next() => Event::Acked(acked),
            };
            let delivery = match event {
                Event::Done => break,
                Event::Acked(acked) => {
                    acked?;
                    continue;
                }
                Event::Delivered(None) => {
                    return Err(PerfError::Invalid(format!(
                        "consumer {} on {:?} was cancelled",
                        self.plan.id, self.plan.queue
                    )))
                }
                Event::Delivered(Some(delivery)) => delivery?,
            };
            Counters::add(&counters.consumed, 1);
            consumed.last_delivery = Some(Instant::now());
            if let Some(micros) = latency_micros(&delivery.data) {
                consumed.latency.saturating_record(micros.max(1));
            }
            if self.plan.auto_ack {
                continue;
            }
            unacked += 1;
            last_tag = delivery.delivery_tag;
            if unacked >= self.plan.multi_ack {
                acks.start(ack(self.channel.clone(), last_tag, self.plan.multi_ack > 1))
                    .await;
                unacked = 0;
            }
            while let Some(acked) = acks.try_next().await {
                acked?;
            }
        }
        if unacked > 0 {
            acks.start(ack(self.channel.clone(), last_tag, true)).await;
        }
        while !acks.is_empty() {
            acks.next().await?;
        }
        let _ = self.conn.close(200, "done".into()).await;
        Ok(consumed)
    }
}

async fn ack(channel: Channel, tag: u64, multiple: bool) -> lapin::Result<()> {
    channel.basic_ack(tag, BasicAckOptions { multiple }).await
}
