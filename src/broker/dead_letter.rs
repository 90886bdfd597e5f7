//! Dead-lettering: a message rejected without requeue, expired, or dropped by a length limit
//! goes to its queue's dead-letter exchange, carrying an `x-death` history exactly as
//! RabbitMQ writes it. Routing happens on a task of its own, never under the queue's lock
//! (a dead-letter exchange may well route back into the same queue).

use super::delivery::enqueue;
use super::exchange::RoutingInput;
use super::message::Message;
use super::queue::{DeadLetter, Reason};
use super::Broker;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::warn;
use warren_amqp::{short_string, AMQPValue, BasicProperties, FieldTable, LongString};

/// How often letters held at least once are tried again while their target cannot take them.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Routes dead letters until the broker is gone. At-least-once letters that found no taker
/// (no route, or a target refusing publishes) are kept and tried again.
pub async fn run(mut letters: mpsc::UnboundedReceiver<DeadLetter>, broker: Weak<Broker>) {
    let mut scratch = Vec::new();
    let mut routed = Vec::new();
    let mut waiting: Vec<DeadLetter> = Vec::new();
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let letter = tokio::select! {
            letter = letters.recv() => match letter {
                Some(letter) => Some(letter),
                None => return,
            },
            _ = retry.tick(), if !waiting.is_empty() => None,
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let batch = match letter {
            Some(letter) => vec![letter],
            None => std::mem::take(&mut waiting),
        };
        for letter in batch {
            if let Some(again) = deliver(&broker, letter, &mut scratch, &mut routed) {
                waiting.push(again);
            }
        }
    }
}

/// Routes one letter; gives back an at-least-once letter nobody took yet.
fn deliver(
    broker: &Broker,
    mut letter: DeadLetter,
    scratch: &mut Vec<super::exchange::Destination>,
    routed: &mut Vec<Arc<super::queue::Queue>>,
) -> Option<DeadLetter> {
    let taken = route(broker, &letter, scratch, routed);
    let entry = letter.held.take()?;
    // The source queue: gone (or a new one by that name) means nothing is held any more.
    let source = broker
        .vhost(&letter.vhost)
        .and_then(|v| v.queue(&letter.queue).ok())
        .filter(|q| !q.is_deleted());
    let source = source?;
    if taken {
        source.dead_lettered(&entry);
        return None;
    }
    letter.held = Some(entry);
    Some(letter)
}

/// Routes a letter to the queues its dead-letter exchange picks; whether any took it.
fn route(
    broker: &Broker,
    letter: &DeadLetter,
    scratch: &mut Vec<super::exchange::Destination>,
    routed: &mut Vec<Arc<super::queue::Queue>>,
) -> bool {
    let Some(vhost) = broker.vhost(&letter.vhost) else {
        return false;
    };
    let Ok(exchange) = vhost.exchange(&letter.exchange) else {
        if letter.held.is_none() {
            warn!(
                "dead-letter exchange '{}' of queue '{}' in vhost '{}' does not exist; message dropped",
                letter.exchange, letter.queue, letter.vhost
            );
        }
        return false;
    };
    let Some((properties, keys)) = dead_lettered_properties(letter, now_seconds()) else {
        return false;
    };
    let mut queues = Vec::new();
    for key in &keys {
        let input = RoutingInput {
            routing_key: key,
            headers: properties.headers().as_ref(),
            properties: Some(&properties),
        };
        vhost.route(&exchange, &input, scratch, routed);
        for q in routed.drain(..) {
            if !queues
                .iter()
                .any(|known: &Arc<super::queue::Queue>| Arc::ptr_eq(known, &q))
            {
                queues.push(q);
            }
        }
    }
    let deaths = properties
        .headers()
        .as_ref()
        .and_then(|h| match h.inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => Some(a.clone()),
            _ => None,
        });
    if queues.is_empty() {
        return false;
    }
    if letter.reason != Reason::Rejected {
        if let Some(deaths) = &deaths {
            queues.retain(|q| !is_cycle(q.name.as_str(), deaths.as_slice()));
        }
    }
    if queues.is_empty() {
        // Only a cycle would take it: dropped, as RabbitMQ drops it (and nothing to retry).
        return true;
    }
    let mut raw = bytes::BytesMut::new();
    warren_amqp::encode::properties(&mut raw, &properties);
    let routing_key = keys.first().cloned().unwrap_or_default();
    let message = Message::from_parts(
        short_string(&letter.exchange),
        short_string(&routing_key),
        &properties,
        raw.freeze(),
        letter.message.body.clone(),
    );
    !enqueue(&broker.store, message, &mut queues).rejected
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn text(v: Option<&AMQPValue>) -> Option<String> {
    match v {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The message's routing keys: its routing key and its `CC` header's keys.
fn original_routing_keys(message: &Message, headers: Option<&FieldTable>) -> Vec<String> {
    let mut keys = vec![message.routing_key.to_string()];
    if let Some(AMQPValue::FieldArray(cc)) = headers.and_then(|h| h.inner().get("CC")) {
        keys.extend(cc.as_slice().iter().filter_map(|v| text(Some(v))));
    }
    keys
}

/// The properties a dead-lettered message carries on (x-death updated, expiration moved into
/// x-death), and the routing keys it is routed with.
pub fn dead_lettered_properties(
    letter: &DeadLetter,
    now: u64,
) -> Option<(BasicProperties, Vec<String>)> {
    let mut properties =
        warren_amqp::protocol::basic::parse_properties(&letter.message.raw_properties[..])
            .ok()?
            .1;
    let mut headers = properties.headers().clone().unwrap_or_default();
    let original_keys = original_routing_keys(&letter.message, Some(&headers));
    let mut death = FieldTable::default();
    death.insert("count".into(), AMQPValue::LongLongInt(1));
    death.insert("reason".into(), longstr(letter.reason.as_str()));
    death.insert("queue".into(), longstr(&letter.queue));
    death.insert("time".into(), AMQPValue::Timestamp(now));
    death.insert("exchange".into(), longstr(letter.message.exchange.as_str()));
    let keys: Vec<AMQPValue> = original_keys.iter().map(|k| longstr(k)).collect();
    death.insert("routing-keys".into(), AMQPValue::FieldArray(keys.into()));
    if let Some(expiration) = properties.expiration().clone() {
        death.insert("original-expiration".into(), longstr(expiration.as_str()));
        properties = without_expiration(properties);
    }
    let previous = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    if previous.is_empty() {
        headers.insert(
            "x-first-death-reason".into(),
            longstr(letter.reason.as_str()),
        );
        headers.insert("x-first-death-queue".into(), longstr(&letter.queue));
        headers.insert(
            "x-first-death-exchange".into(),
            longstr(letter.message.exchange.as_str()),
        );
    }
    headers.insert(
        "x-last-death-reason".into(),
        longstr(letter.reason.as_str()),
    );
    headers.insert("x-last-death-queue".into(), longstr(&letter.queue));
    headers.insert(
        "x-last-death-exchange".into(),
        longstr(letter.message.exchange.as_str()),
    );
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(updated_deaths(previous, death, letter).into()),
    );
    let keys = match &letter.routing_key {
        Some(k) => vec![k.clone()],
        None => original_keys,
    };
    Some((properties.with_headers(headers), keys))
}

/// RabbitMQ keeps one x-death entry per (queue, reason): a repeat death increments that
/// entry's count and moves it to the front; a new one goes in front with count 1.
fn updated_deaths(
    previous: Vec<AMQPValue>,
    death: FieldTable,
    letter: &DeadLetter,
) -> Vec<AMQPValue> {
    let same = |v: &AMQPValue| match v {
        AMQPValue::FieldTable(t) => {
            text(t.inner().get("queue")).as_deref() == Some(letter.queue.as_str())
                && text(t.inner().get("reason")).as_deref() == Some(letter.reason.as_str())
        }
        _ => false,
    };
    let mut front = AMQPValue::FieldTable(death);
    let mut rest = Vec::with_capacity(previous.len());
    for v in previous {
        if same(&v) {
            if let AMQPValue::FieldTable(mut t) = v {
                let count = t
                    .inner()
                    .get("count")
                    .and_then(super::field_types::integer)
                    .unwrap_or(0);
                t.insert("count".into(), AMQPValue::LongLongInt(count + 1));
                front = AMQPValue::FieldTable(t);
            }
        } else {
            rest.push(v);
        }
    }
    let mut all = vec![front];
    all.extend(rest);
    all
}

fn without_expiration(p: BasicProperties) -> BasicProperties {
    // amq-protocol has no way to clear one property, so the others are copied over.
    let mut out = BasicProperties::default();
    macro_rules! copy {
        ($($get:ident => $with:ident),*) => {
            $(if let Some(v) = p.$get().clone() { out = out.$with(v); })*
        };
    }
    copy!(content_type => with_content_type, content_encoding => with_content_encoding, headers => with_headers,
        delivery_mode => with_delivery_mode, priority => with_priority, correlation_id => with_correlation_id,
        reply_to => with_reply_to, message_id => with_message_id, timestamp => with_timestamp,
        kind => with_type, user_id => with_user_id, app_id => with_app_id, cluster_id => with_cluster_id);
    out
}

/// Would dead-lettering into `queue` complete a cycle with no rejection in it? Such a message
/// is dropped instead of circling forever (RabbitMQ's rule).
fn is_cycle(queue: &str, deaths: &[AMQPValue]) -> bool {
    let table = |v: &AMQPValue| match v {
        AMQPValue::FieldTable(t) => Some(t.clone()),
        _ => None,
    };
    let Some(at) = deaths.iter().position(|d| {
        table(d).is_some_and(|t| text(t.inner().get("queue")).as_deref() == Some(queue))
    }) else {
        return false;
    };
    deaths[..=at].iter().all(|d| {
        table(d).is_some_and(|t| text(t.inner().get("reason")).as_deref() != Some("rejected"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};

    fn letter(props: BasicProperties, reason: Reason) -> DeadLetter {
        let mut raw = BytesMut::new();
        warren_amqp::encode::properties(&mut raw, &props);
        let message = Message::new(
            "orig-x".into(),
            "orig-rk".into(),
            &props,
            raw.freeze(),
            Bytes::from_static(b"b"),
        );
        DeadLetter {
            vhost: "/".into(),
            queue: "q1".into(),
            exchange: "dlx".into(),
            routing_key: None,
            reason,
            message,
            held: None,
        }
    }

    fn deaths(p: &BasicProperties) -> Vec<FieldTable> {
        match p.headers().as_ref().and_then(|h| h.inner().get("x-death")) {
            Some(AMQPValue::FieldArray(a)) => a
                .as_slice()
                .iter()
                .filter_map(|v| match v {
                    AMQPValue::FieldTable(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn first_death_records_everything_and_moves_the_expiration() {
        let props = BasicProperties::default().with_expiration("500".into());
        let (p, keys) = dead_lettered_properties(&letter(props, Reason::Expired), 1000).unwrap();
        assert_eq!(keys, ["orig-rk"]);
        assert!(p.expiration().is_none());
        let d = &deaths(&p)[0];
        assert_eq!(text(d.inner().get("reason")).as_deref(), Some("expired"));
        assert_eq!(text(d.inner().get("queue")).as_deref(), Some("q1"));
        assert_eq!(text(d.inner().get("exchange")).as_deref(), Some("orig-x"));
        assert_eq!(
            text(d.inner().get("original-expiration")).as_deref(),
            Some("500")
        );
        assert_eq!(d.inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(d.inner().get("time"), Some(&AMQPValue::Timestamp(1000)));
        let h = p.headers().clone().unwrap();
        assert_eq!(
            text(h.inner().get("x-first-death-reason")).as_deref(),
            Some("expired")
        );
        assert_eq!(
            text(h.inner().get("x-last-death-queue")).as_deref(),
            Some("q1")
        );
    }

    #[test]
    fn a_repeat_death_counts_up_and_cycles_without_rejects_are_detected() {
        let (p, _) =
            dead_lettered_properties(&letter(BasicProperties::default(), Reason::Expired), 1)
                .unwrap();
        let again = letter(p, Reason::Expired);
        let (p2, _) = dead_lettered_properties(&again, 2).unwrap();
        let d = deaths(&p2);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(2)));
        let arr: Vec<AMQPValue> = d.into_iter().map(AMQPValue::FieldTable).collect();
        assert!(is_cycle("q1", &arr));
        assert!(!is_cycle("q2", &arr));
        let (p3, _) =
            dead_lettered_properties(&letter(BasicProperties::default(), Reason::Rejected), 1)
                .unwrap();
        let arr3: Vec<AMQPValue> = deaths(&p3).into_iter().map(AMQPValue::FieldTable).collect();
        assert!(!is_cycle("q1", &arr3), "a rejection breaks the cycle");
    }
}
