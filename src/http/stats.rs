//! Statistics as RabbitMQ's API writes them: `message_stats` with a count and a
//! `<stat>_details.rate` per counter, `messages_details` and the like for queue lengths, and
//! with `msg_rates_age`/`lengths_age` (and `_incr`) in the query, the sample lists charts draw.

use crate::broker::stats::{Counts, Sample, Series, Stat};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// What a queue counts.
pub const QUEUE: &[Stat] = &[
    Stat::Publish,
    Stat::Deliver,
    Stat::DeliverNoAck,
    Stat::Get,
    Stat::GetNoAck,
    Stat::Ack,
    Stat::Redeliver,
];

/// What an exchange counts.
pub const EXCHANGE: &[Stat] = &[Stat::PublishIn, Stat::PublishOut];

/// What channels count, and so connections, vhosts and the node.
pub const CHANNEL: &[Stat] = &[
    Stat::Publish,
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
];

/// What the overview's `churn_rates` shows.
pub const CHURN: &[Stat] = &[
    Stat::ChannelClosed,
    Stat::ChannelCreated,
    Stat::ConnectionClosed,
    Stat::ConnectionCreated,
    Stat::QueueCreated,
    Stat::QueueDeclared,
    Stat::QueueDeleted,
];

/// The sample windows a request asks for, in seconds.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Ages {
    pub lengths_age: Option<u64>,
    pub lengths_incr: Option<u64>,
    pub msg_rates_age: Option<u64>,
    pub msg_rates_incr: Option<u64>,
}

/// Samples from the last `age` seconds, at least `incr` seconds apart, newest first.
fn window(samples: &[Sample], age: u64, incr: u64) -> Vec<Sample> {
    let Some(newest) = samples.last() else {
        return Vec::new();
    };
    let since = newest.at.saturating_sub(age * 1000);
    let mut picked: Vec<Sample> = Vec::new();
    for s in samples.iter().rev().filter(|s| s.at >= since) {
        if picked
            .last()
            .is_none_or(|p| p.at.saturating_sub(s.at) >= incr.max(1) * 1000)
        {
            picked.push(*s);
        }
    }
    picked
}

/// `{"rate": r}`, with `samples`, `avg` and `avg_rate` over `picked` when there are any.
fn details(rate: f64, picked: Option<&[Sample]>, value: impl Fn(&Sample) -> u64) -> Value {
    let mut d = json!({"rate": rate});
    let Some(picked) = picked.filter(|p| !p.is_empty()) else {
        return d;
    };
    let samples: Vec<Value> = picked
        .iter()
        .map(|s| json!({"sample": value(s), "timestamp": s.at}))
        .collect();
    let avg = picked.iter().map(|s| value(s) as f64).sum::<f64>() / picked.len() as f64;
    let (newest, oldest) = (&picked[0], &picked[picked.len() - 1]);
    let seconds = newest.at.saturating_sub(oldest.at) as f64 / 1000.0;
    let avg_rate = match seconds > 0.0 {
        true => (value(newest) as f64 - value(oldest) as f64) / seconds,
        false => 0.0,
    };
    if let Some(o) = d.as_object_mut() {
        o.insert("samples".into(), Value::from(samples));
        o.insert("avg".into(), Value::from(avg));
        o.insert("avg_rate".into(), Value::from(avg_rate));
    }
    d
}

fn deliver_get(c: &Counts) -> u64 {
    [Stat::Deliver, Stat::DeliverNoAck, Stat::Get, Stat::GetNoAck]
        .iter()
        .map(|s| c[*s as usize])
        .sum()
}

/// `message_stats` for `counts` (the counters now), with rates from `series`.
pub fn message_stats(counts: &Counts, series: &Series, kinds: &[Stat], ages: &Ages) -> Value {
    let (rates, _) = series.rates();
    let picked = ages
        .msg_rates_age
        .map(|age| window(&series.samples(), age, ages.msg_rates_incr.unwrap_or(5)));
    let mut out = Map::new();
    for stat in kinds {
        let i = *stat as usize;
        out.insert(stat.name().into(), Value::from(counts[i]));
        out.insert(
            format!("{}_details", stat.name()),
            details(rates[i], picked.as_deref(), |s| s.counts[i]),
        );
    }
    if kinds.contains(&Stat::Deliver) {
        let rate = [Stat::Deliver, Stat::DeliverNoAck, Stat::Get, Stat::GetNoAck]
            .iter()
            .map(|s| rates[*s as usize])
            .sum::<f64>();
        out.insert("deliver_get".into(), Value::from(deliver_get(counts)));
        out.insert(
            "deliver_get_details".into(),
            details(rate, picked.as_deref(), |s| deliver_get(&s.counts)),
        );
    }
    Value::Object(out)
}

/// `messages_details`, `messages_ready_details` and `messages_unacknowledged_details`.
pub fn length_details(series: &Series, ages: &Ages) -> [(&'static str, Value); 3] {
    let (_, rates) = series.rates();
    let picked = ages
        .lengths_age
        .map(|age| window(&series.samples(), age, ages.lengths_incr.unwrap_or(5)));
    let names = [
        "messages_details",
        "messages_ready_details",
        "messages_unacknowledged_details",
    ];
    std::array::from_fn(|i| {
        (
            names[i],
            details(rates[i], picked.as_deref(), |s| s.lengths[i]),
        )
    })
}

/// A byte counter's `<name>_details`.
pub fn octet_details(series: &Series, stat: Stat) -> Value {
    details(series.rates().0[stat as usize], None, |_| 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::stats::STATS;

    #[test]
    fn windows_pick_samples_newest_first_at_the_increment() {
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                at: i * 1000,
                counts: [i; STATS],
                lengths: [i; 3],
            })
            .collect();
        let picked = window(&samples, 10, 5);
        let at: Vec<u64> = picked.iter().map(|s| s.at).collect();
        assert_eq!(at, [19_000, 14_000, 9_000]);
        let d = details(1.0, Some(&picked), |s| s.lengths[0]);
        assert_eq!(d["samples"][0], json!({"sample": 19, "timestamp": 19_000}));
        assert_eq!(d["avg_rate"], 1.0);
    }
}
