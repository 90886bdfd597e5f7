//! One consumer on the tool's own client (`--client raw`): its connection, channel and task on
//! one queue. The task reads each delivery's frames itself and takes its latency when the last
//! body byte is in; acks (multiple=true every K) are written by the same task. What it counts
//! and records is `consumer`'s.

use crate::consumer::{Consumed, ConsumerPlan};
use crate::error::PerfError;
use crate::message::latency_micros;
use crate::raw_connection::{self, stopped, tick, unexpected, unexpected_incoming};
use crate::raw_connection::{Incoming, RawConnection, CHANNEL, REPLY_TIMEOUT};
use crate::stats::{latency_histogram, Counters};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::time::timeout;
use warren_amqp::frame::{Frame, FrameKind};
use warren_amqp::protocol::basic;
use warren_amqp::{encode, AMQPClass, FieldTable, CLASS_BASIC};

/// A consumer that is subscribed and waiting for `consume`.
pub struct RawConsumer {
    plan: ConsumerPlan,
    conn: RawConnection,
}

/// Opens the connection, sets the prefetch and subscribes, so that the run can start
/// publishing only once every consumer is in place.
pub async fn subscribe(plan: ConsumerPlan) -> Result<RawConsumer, PerfError> {
    let target = raw_connection::target(&plan.uri)?;
    let name = format!("warren-perf consumer {}", plan.id);
    let mut conn = RawConnection::open(&target, &name).await?;
    if !plan.auto_ack && plan.prefetch > 0 {
        let qos = basic::Qos {
            prefetch_count: plan.prefetch,
            global: false,
        };
        match conn
            .call(AMQPClass::Basic(basic::AMQPMethod::Qos(qos)))
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
            other => return Err(unexpected(&other, "basic.qos-ok")),
        }
    }
    let consume = basic::Consume {
        queue: plan.queue.as_str().into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack: plan.auto_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    match conn
        .call(AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
        .await?
    {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
        other => return Err(unexpected(&other, "basic.consume-ok")),
    }
    Ok(RawConsumer { plan, conn })
}

impl RawConsumer {
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
        let mut ticker = self.conn.ticker();
        let mut receiving = Receiving::default();
        // Deliveries received and not yet acknowledged, and the newest one's tag.
        let (mut unacked, mut last_tag) = (0u64, 0u64);
        loop {
            // Every branch's future is cancel-safe: reads only append to the input buffer.
            let frame = tokio::select! {
                biased;
                _ = stopped(&mut done) => break,
                _ = tick(&mut ticker) => {
                    self.conn.beat().await?;
                    continue;
                }
                frame = self.conn.read_frame() => frame?,
            };
            let Some(incoming) = self.conn.on_frame(frame).await? else {
                continue;
            };
            let Some(tag) = receiving.push(incoming, &mut consumed, &self.plan)? else {
                continue;
            };
            Counters::add(&counters.consumed, 1);
            if self.plan.auto_ack {
                continue;
            }
            unacked += 1;
            last_tag = tag;
            if unacked >= self.plan.multi_ack {
                self.ack(last_tag, self.plan.multi_ack > 1).await?;
                unacked = 0;
            }
        }
        if unacked > 0 {
            timeout(REPLY_TIMEOUT, self.ack(last_tag, true))
                .await
                .map_err(|_| PerfError::Timeout("writing the last ack"))??;
        }
        // As with lapin, a failed close does not undo what was consumed.
        let _ = self.conn.close().await;
        Ok(consumed)
    }

    async fn ack(&mut self, tag: u64, multiple: bool) -> Result<(), PerfError> {
        // A client's basic.ack has the same form as the broker's publisher confirm.
        encode::confirm(self.conn.output(), CHANNEL, true, tag, multiple);
        self.conn.flush().await
    }
}

/// Where the delivery being received stands.
#[derive(Default)]
enum Receiving {
    /// Between deliveries.
    #[default]
    Idle,
    /// basic.deliver came; its content header is next.
    Header { tag: u64 },
    /// The header announced `remaining` more body bytes; `body` holds those of earlier
    /// frames when the body spans several.
    Body {
        tag: u64,
        remaining: u64,
        body: BytesMut,
    },
}

impl Receiving {
    /// Takes one frame of a delivery; when it completes one, records its latency (now, with
    /// the whole body in) and returns its delivery tag.
    fn push(
        &mut self,
        incoming: Incoming,
        consumed: &mut Consumed,
        plan: &ConsumerPlan,
    ) -> Result<Option<u64>, PerfError> {
        let (tag, body) = match (std::mem::take(self), incoming) {
            (Receiving::Idle, Incoming::Method(method)) => {
                *self = Receiving::Header {
                    tag: delivery_tag(method, plan)?,
                };
                return Ok(None);
            }
            (Receiving::Header { tag }, Incoming::Content(frame)) => {
                let size = body_size(&frame)?;
                if size > 0 {
                    *self = Receiving::Body {
                        tag,
                        remaining: size,
                        body: BytesMut::new(),
                    };
                    return Ok(None);
                }
                (tag, Bytes::new())
            }
            (
                Receiving::Body {
                    tag,
                    remaining,
                    mut body,
                },
                Incoming::Content(frame),
            ) => {
                let len = frame.payload.len() as u64;
                if frame.kind != FrameKind::Body || len > remaining {
                    return Err(PerfError::Unexpected(format!(
                        "expected at most {remaining} more body bytes, got a {:?} frame of {len}",
                        frame.kind
                    )));
                }
                if len == remaining && body.is_empty() {
                    // The usual case: the whole body in one frame, used where it lies.
                    (tag, frame.payload)
                } else {
                    body.extend_from_slice(&frame.payload);
                    if len < remaining {
                        *self = Receiving::Body {
                            tag,
                            remaining: remaining - len,
                            body,
                        };
                        return Ok(None);
                    }
                    (tag, body.freeze())
                }
            }
            (_, incoming) => return Err(unexpected_incoming(&incoming, "a delivery's next frame")),
        };
        consumed.last_delivery = Some(Instant::now());
        if let Some(micros) = latency_micros(&body) {
            consumed.latency.saturating_record(micros.max(1));
        }
        Ok(Some(tag))
    }
}

/// The tag of a basic.deliver; a cancel from the broker, or any other method, ends the run.
fn delivery_tag(method: AMQPClass, plan: &ConsumerPlan) -> Result<u64, PerfError> {
    match method {
        AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)) => Ok(deliver.delivery_tag),
        AMQPClass::Basic(basic::AMQPMethod::Cancel(_)) => Err(PerfError::Invalid(format!(
            "consumer {} on {:?} was cancelled",
            plan.id, plan.queue
        ))),
        other => Err(unexpected(&other, "basic.deliver")),
    }
}

/// The body size a content header announces.
fn body_size(frame: &Frame) -> Result<u64, PerfError> {
    let header = &frame.payload;
    let class = header.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match (frame.kind, class, header.get(4..12)) {
        (FrameKind::Header, Some(CLASS_BASIC), Some(size)) => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(size);
            Ok(u64::from_be_bytes(bytes))
        }
        _ => Err(PerfError::Unexpected(format!(
            "expected a basic content header, got a {:?} frame of {} bytes",
            frame.kind,
            header.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Client;
    use crate::message::stamp;
    use bytes::BufMut;

    fn plan() -> ConsumerPlan {
        ConsumerPlan {
            uri: String::new(),
            client: Client::Raw,
            id: 0,
            queue: "q".into(),
            auto_ack: false,
            prefetch: 10,
            multi_ack: 1,
        }
    }

    fn consumed() -> Consumed {
        Consumed {
            latency: latency_histogram(),
            last_delivery: None,
        }
    }

    fn deliver(tag: u64) -> Incoming {
        Incoming::Method(AMQPClass::Basic(basic::AMQPMethod::Deliver(
            basic::Deliver {
                consumer_tag: "c".into(),
                delivery_tag: tag,
                redelivered: false,
                exchange: "".into(),
                routing_key: "q".into(),
            },
        )))
    }

    fn header(size: u64) -> Incoming {
        let mut payload = BytesMut::new();
        payload.put_u16(CLASS_BASIC);
        payload.put_u16(0);
        payload.put_u64(size);
        payload.put_u16(0);
        content(FrameKind::Header, payload.freeze())
    }

    fn content(kind: FrameKind, payload: Bytes) -> Incoming {
        Incoming::Content(Frame {
            kind,
            channel: CHANNEL,
            payload,
        })
    }

    #[test]
    fn a_body_in_several_frames_completes_on_its_last_byte() {
        let (mut receiving, mut seen, plan) = (Receiving::default(), consumed(), plan());
        let mut body = vec![0u8; 300];
        stamp(&mut body, 1);
        let body = Bytes::from(body);
        assert_eq!(receiving.push(deliver(7), &mut seen, &plan).unwrap(), None);
        assert_eq!(receiving.push(header(300), &mut seen, &plan).unwrap(), None);
        let first = content(FrameKind::Body, body.slice(..100));
        assert_eq!(receiving.push(first, &mut seen, &plan).unwrap(), None);
        assert_eq!(seen.latency.len(), 0);
        let rest = content(FrameKind::Body, body.slice(100..));
        assert_eq!(receiving.push(rest, &mut seen, &plan).unwrap(), Some(7));
        assert_eq!(seen.latency.len(), 1);
        // An empty body completes with its header, without a latency to record.
        receiving.push(deliver(8), &mut seen, &plan).unwrap();
        assert_eq!(
            receiving.push(header(0), &mut seen, &plan).unwrap(),
            Some(8)
        );
        assert!(matches!(receiving, Receiving::Idle));
    }

    #[test]
    fn frames_out_of_place_are_errors_not_panics() {
        let plan = plan();
        let push = |frames: Vec<Incoming>| {
            let (mut receiving, mut seen) = (Receiving::default(), consumed());
            frames
                .into_iter()
                .try_for_each(|f| receiving.push(f, &mut seen, &plan).map(|_| ()))
        };
        assert!(push(vec![header(1)]).is_err());
        assert!(push(vec![deliver(1), deliver(2)]).is_err());
        let short = content(FrameKind::Header, Bytes::from_static(&[0, 60, 0]));
        assert!(push(vec![deliver(1), short]).is_err());
        let too_long = content(FrameKind::Body, Bytes::from_static(&[0; 5]));
        assert!(push(vec![deliver(1), header(4), too_long]).is_err());
        let cancel = basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "c".into(),
            nowait: true,
        });
        let cancelled = push(vec![Incoming::Method(AMQPClass::Basic(cancel))]);
        assert!(cancelled.unwrap_err().to_string().contains("was cancelled"));
    }
}
