//! One producer on the tool's own client (`--client raw`): its connection, channel and task,
//! publishing timestamped bodies to one route. Each publish is encoded straight into the
//! connection's output and written by this task (with whatever else is ready, in one write);
//! the same task reads the confirms. Window, rate and stopping rules are `producer`'s.

use crate::error::PerfError;
use crate::message::stamp;
use crate::producer::{sleep_until, Pace, ProducerPlan, BATCH};
use crate::raw_connection::{self, tick, unexpected, unexpected_incoming};
use crate::raw_connection::{Incoming, RawConnection, CHANNEL};
use crate::stats::Counters;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use warren_amqp::frame::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_OVERHEAD};
use warren_amqp::protocol::{basic, confirm};
use warren_amqp::{encode, AMQPClass, BasicProperties, CLASS_BASIC};

/// Frame size used when the broker tunes none (0): RabbitMQ's default.
const UNTUNED_FRAME_MAX: u32 = 131_072;

/// Publishes until `count` is reached or `stop` turns true, then waits for outstanding
/// confirms. Returns how long that took.
pub async fn run(
    plan: ProducerPlan,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<Duration, PerfError> {
    let target = raw_connection::target(&plan.uri)?;
    let name = format!("warren-perf producer {}", plan.id);
    let mut conn = RawConnection::open(&target, &name).await?;
    if plan.confirm > 0 {
        let select = confirm::AMQPMethod::Select(confirm::Select { nowait: false });
        match conn.call(AMQPClass::Confirm(select)).await? {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
            other => return Err(unexpected(&other, "confirm.select-ok")),
        }
    }
    let mut producer = Producer::new(plan, conn, counters);
    producer.publish_until(stop).await?;
    let elapsed = producer.start.elapsed();
    // As with lapin, a failed close does not undo a run that went well. After a failure the
    // socket is simply dropped: the broker may be the reason, and waiting on it could hang.
    let _ = producer.conn.close().await;
    Ok(elapsed)
}

struct Producer {
    plan: ProducerPlan,
    conn: RawConnection,
    counters: Arc<Counters>,
    /// The basic.publish frame: the same for every message, so encoded once.
    publish: Bytes,
    /// The content header's property flags and list, also the same for every message.
    properties: Bytes,
    /// A zeroed body of the run's size; `stamp` writes each message's head over it, which
    /// gives the same bytes as the lapin producer's fresh body.
    body: Vec<u8>,
    /// The largest body frame payload the tuned frame_max allows.
    max_payload: usize,
    /// Delivery tags written and not yet confirmed (with publisher confirms): a set, as a
    /// broker may confirm out of order when messages go to several queues.
    unconfirmed: BTreeSet<u64>,
    sent: u64,
    start: Instant,
    pace: Pace,
}

impl Producer {
    fn new(plan: ProducerPlan, conn: RawConnection, counters: Arc<Counters>) -> Self {
        let publish = basic::Publish {
            exchange: plan.route.exchange.as_str().into(),
            routing_key: plan.route.routing_key.as_str().into(),
            mandatory: false,
            immediate: false,
        };
        let mut frame = BytesMut::new();
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(publish));
        encode::method(&mut frame, CHANNEL, &publish);
        let mut properties = BytesMut::new();
        encode::properties(&mut properties, &message_properties(&plan));
        let frame_max = match conn.frame_max() {
            0 => UNTUNED_FRAME_MAX,
            tuned => tuned,
        };
        let (rate, start) = (plan.rate, Instant::now());
        Self {
            body: vec![0; plan.size],
            plan,
            conn,
            counters,
            publish: frame.freeze(),
            properties: properties.freeze(),
            max_payload: (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1),
            unconfirmed: BTreeSet::new(),
            sent: 0,
            start,
            pace: Pace { rate, start },
        }
    }

    async fn publish_until(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), PerfError> {
        // Also set when the run's coordinator is gone, so a closed watch cannot spin the loop.
        let mut stopped = false;
        let mut ticker = self.conn.ticker();
        loop {
            // Confirms (or a close) that already came in, without waiting for more.
            while let Some(incoming) = self.conn.recv_now().await? {
                self.on_incoming(incoming)?;
            }
            stopped |= *stop.borrow();
            let stopping = stopped || self.plan.count.is_some_and(|n| self.sent >= n);
            if stopping && self.unconfirmed.is_empty() {
                return Ok(());
            }
            // One reading of the clock for the budget and the wake-up, so that they agree.
            let now = Instant::now();
            let budget = if stopping { 0 } else { self.budget(now) };
            if budget > 0 {
                self.publish(budget.min(BATCH as u64)).await?;
                continue;
            }
            let wake = if stopping {
                None
            } else {
                self.pace.next_at(self.sent, now)
            };
            // Every branch's future is cancel-safe: reads only append to the input buffer.
            tokio::select! {
                frame = self.conn.read_frame() => {
                    if let Some(incoming) = self.conn.on_frame(frame?).await? {
                        self.on_incoming(incoming)?;
                    }
                }
                _ = sleep_until(wake), if wake.is_some() => {}
                changed = stop.changed(), if !stopping => stopped |= changed.is_err(),
                _ = tick(&mut ticker) => self.conn.beat().await?,
            }
        }
    }

    /// How many more messages may go now: the confirm window, the rate limit and the message
    /// count all bound it. Writes need no window: each is done before the next starts.
    fn budget(&self, now: Instant) -> u64 {
        let mut budget = u64::MAX;
        if self.plan.confirm > 0 {
            budget = self.plan.confirm.saturating_sub(self.unconfirmed.len()) as u64;
        }
        if let Some(count) = self.plan.count {
            budget = budget.min(count.saturating_sub(self.sent));
        }
        budget.min(self.pace.allowance(self.sent, now))
    }

    /// Encodes `n` messages and writes them at once. Each body is stamped as it is encoded,
    /// just before the write.
    async fn publish(&mut self, n: u64) -> Result<(), PerfError> {
        for _ in 0..n {
            stamp(&mut self.body, self.sent);
            self.sent += 1;
            let out = self.conn.output();
            out.put_slice(&self.publish);
            content(out, &self.properties, &self.body, self.max_payload);
            if self.plan.confirm > 0 {
                // Delivery tags count the channel's publishes from 1.
                self.unconfirmed.insert(self.sent);
            }
        }
        self.conn.flush().await?;
        Counters::add(&self.counters.published, n);
        Ok(())
    }

    fn on_incoming(&mut self, incoming: Incoming) -> Result<(), PerfError> {
        let counters = self.counters.clone();
        match incoming {
            Incoming::Method(AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                self.settle(ack.delivery_tag, ack.multiple, &counters.confirmed);
            }
            Incoming::Method(AMQPClass::Basic(basic::AMQPMethod::Nack(nack))) => {
                self.settle(nack.delivery_tag, nack.multiple, &counters.nacked);
            }
            other => return Err(unexpected_incoming(&other, "a publisher confirm")),
        }
        Ok(())
    }

    /// Takes a confirm off the window and counts what it settled. Tags the window does not
    /// hold (already settled, or never sent) settle nothing.
    fn settle(&mut self, tag: u64, multiple: bool, counter: &AtomicU64) {
        let settled = if multiple {
            let newer = self.unconfirmed.split_off(&tag.saturating_add(1));
            std::mem::replace(&mut self.unconfirmed, newer).len() as u64
        } else {
            u64::from(self.unconfirmed.remove(&tag))
        };
        Counters::add(counter, settled);
    }
}

/// delivery_mode 2 for --persistent, and the headers a headers exchange routes on.
fn message_properties(plan: &ProducerPlan) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if plan.persistent {
        properties = properties.with_delivery_mode(2);
    }
    if let Some(headers) = &plan.route.headers {
        properties = properties.with_headers(headers.clone());
    }
    properties
}

/// A content header and the body in frames of at most `max_payload` bytes.
fn content(out: &mut BytesMut, properties: &[u8], body: &[u8], max_payload: usize) {
    out.put_u8(FRAME_HEADER);
    out.put_u16(CHANNEL);
    // Class, weight and body size, then the properties.
    out.put_u32((12 + properties.len()) as u32);
    out.put_u16(CLASS_BASIC);
    out.put_u16(0);
    out.put_u64(body.len() as u64);
    out.put_slice(properties);
    out.put_u8(FRAME_END);
    for chunk in body.chunks(max_payload) {
        out.put_u8(FRAME_BODY);
        out.put_u16(CHANNEL);
        out.put_u32(chunk.len() as u32);
        out.put_slice(chunk);
        out.put_u8(FRAME_END);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::assembler::{Assembled, CommandAssembler};
    use warren_amqp::frame::decode;

    #[test]
    fn a_publish_splits_its_body_into_frames_the_broker_reassembles() {
        let mut properties = BytesMut::new();
        let sent = BasicProperties::default().with_delivery_mode(2);
        encode::properties(&mut properties, &sent);
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "x".into(),
            routing_key: "rk".into(),
            mandatory: false,
            immediate: false,
        }));
        let mut out = BytesMut::new();
        encode::method(&mut out, CHANNEL, &publish);
        let body: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        content(&mut out, &properties, &body, 1000);
        let mut assembler = CommandAssembler::new();
        let mut frames = 0;
        while let Some(frame) = decode(&mut out, 1008).unwrap() {
            frames += 1;
            if let Assembled::Command(command) = assembler.push(frame, u64::MAX).unwrap() {
                assert_eq!(command.method, publish);
                let content = command.content.unwrap();
                assert_eq!(content.properties, sent);
                assert_eq!(&content.body[..], &body[..]);
            }
        }
        // Method, header and three body frames, nothing left over.
        assert_eq!(frames, 5);
        assert!(out.is_empty() && !assembler.in_content());
    }
}
