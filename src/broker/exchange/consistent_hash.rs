//! The consistent-hash exchange (`x-consistent-hash`, RabbitMQ's bundled plugin): each
//! message goes to exactly one destination, picked by a hash of its routing key (or of a
//! header or property the exchange names), in proportion to the bindings' weights, which are
//! their binding keys. The same key always lands on the same destination while the bindings
//! stay, and removing the binding added last moves no other destination's keys.
//!
//! The buckets are the bindings' weights laid end to end in the order the bindings came;
//! jump consistent hashing (Lamping and Veach) picks a bucket. A binding's removal shifts the
//! buckets of the bindings after it, so only removing the last one is free of moves, which is
//! what the plugin promises too.

use super::{Binding, BindingTable, Destination, RoutingInput};
use crate::error::{AmqpError, AmqpResult};
use warren_amqp::{AMQPValue, FieldTable};

pub const TYPE: &str = "x-consistent-hash";

/// The largest weight a binding may have: RabbitMQ has no bound and runs out of memory on a
/// huge one.
pub const MAX_WEIGHT: u64 = 10_000;

/// What the exchange hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    RoutingKey,
    Header(String),
    MessageId,
    CorrelationId,
    Timestamp,
}

fn text_argument(arguments: &FieldTable, name: &str) -> AmqpResult<Option<String>> {
    match arguments.inner().get(name) {
        None => Ok(None),
        Some(AMQPValue::LongString(s)) => Ok(Some(String::from_utf8_lossy(s.as_bytes()).into())),
        Some(AMQPValue::ShortString(s)) => Ok(Some(s.to_string())),
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "{name} must be a string, got {}",
            crate::broker::field_types::name(other)
        ))),
    }
}

/// Reads and checks the exchange's `hash-header` / `hash-property` arguments.
pub fn hash_on(arguments: &FieldTable) -> AmqpResult<HashOn> {
    let header = text_argument(arguments, "hash-header")?;
    let property = text_argument(arguments, "hash-property")?;
    match (header, property) {
        (Some(_), Some(_)) => Err(AmqpError::precondition_failed(
            "hash-header and hash-property are mutually exclusive",
        )),
        (Some(h), None) => Ok(HashOn::Header(h)),
        (None, Some(p)) => match p.as_str() {
            "message_id" => Ok(HashOn::MessageId),
            "correlation_id" => Ok(HashOn::CorrelationId),
            "timestamp" => Ok(HashOn::Timestamp),
            other => Err(AmqpError::precondition_failed(format!(
                "Unsupported property: {other}"
            ))),
        },
        (None, None) => Ok(HashOn::RoutingKey),
    }
}

/// A binding key as a weight, with the plugin's error texts.
pub fn weight(routing_key: &str) -> Result<u64, String> {
    let parsed: i64 =
        routing_key
            .trim_start_matches('+')
            .parse()
            .map_err(|_| match routing_key {
                // An Erlang binary as RabbitMQ prints it: the empty one is `<<>>`.
                "" => "The binding key must be an integer: <<>>".to_owned(),
                key => format!("The binding key must be an integer: <<\"{key}\">>"),
            })?;
    if parsed < 1 {
        return Err("The binding key must be greater than 0".into());
    }
    if parsed as u64 > MAX_WEIGHT {
        return Err(format!(
            "The binding key must be at most {MAX_WEIGHT} on Warren"
        ));
    }
    Ok(parsed as u64)
}

/// FNV-1a, 64 bits: a stable hash of the bytes to route by.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump(mut key: u64, buckets: u64) -> u64 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u64
}

#[derive(Debug)]
pub struct HashTable {
    on: HashOn,
    /// In the order they were bound, each with its weight.
    bindings: Vec<(Binding, u64)>,
    total: u64,
}

impl HashTable {
    pub fn new(on: HashOn) -> Self {
        Self {
            on,
            bindings: Vec::new(),
            total: 0,
        }
    }

    /// The bytes a message is hashed by (empty when the header or property is missing: all
    /// such messages share a bucket).
    fn key(&self, input: &RoutingInput<'_>) -> Vec<u8> {
        let header = |name: &str| {
            input
                .headers
                .and_then(|h| h.inner().get(name))
                .map(|v| match v {
                    AMQPValue::LongString(s) => s.as_bytes().to_vec(),
                    AMQPValue::ShortString(s) => s.as_str().as_bytes().to_vec(),
                    other => format!("{other:?}").into_bytes(),
                })
        };
        let properties = input.properties;
        let found = match &self.on {
            HashOn::RoutingKey => Some(input.routing_key.as_bytes().to_vec()),
            HashOn::Header(name) => header(name),
            HashOn::MessageId => properties
                .and_then(|p| p.message_id().clone())
                .map(|s| s.as_str().as_bytes().to_vec()),
            HashOn::CorrelationId => properties
                .and_then(|p| p.correlation_id().clone())
                .map(|s| s.as_str().as_bytes().to_vec()),
            HashOn::Timestamp => properties
                .and_then(|p| *p.timestamp())
                .map(|t| t.to_string().into_bytes()),
        };
        found.unwrap_or_default()
    }

    fn recount(&mut self) {
        self.total = self.bindings.iter().map(|(_, w)| w).sum();
    }
}

impl BindingTable for HashTable {
    fn add(&mut self, binding: Binding) -> bool {
        let key = binding.routing_key.as_str();
        if self
            .bindings
            .iter()
            .any(|(b, _)| b.same(&binding.destination, key, &binding.arguments))
        {
            return false;
        }
        // Checked at bind (validate_binding): an unparsable key cannot get here.
        let w = weight(key).unwrap_or(1);
        self.bindings.push((binding, w));
        self.recount();
        true
    }

    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let before = self.bindings.len();
        self.bindings
            .retain(|(b, _)| !b.same(destination, routing_key, arguments));
        self.recount();
        before != self.bindings.len()
    }

    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        if self.total == 0 {
            return;
        }
        let mut bucket = jump(fnv(&self.key(input)), self.total);
        for (b, w) in &self.bindings {
            if bucket < *w {
                out.push(b.destination.clone());
                return;
            }
            bucket -= w;
        }
    }

    fn remove_destination(&mut self, destination: &Destination) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|(b, _)| &b.destination != destination);
        self.recount();
        before - self.bindings.len()
    }

    fn bindings(&self) -> Vec<Binding> {
        self.bindings.iter().map(|(b, _)| b.clone()).collect()
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn weights_are_checked_as_the_plugin_checks_them() {
        assert_eq!(weight("3"), Ok(3));
        assert_eq!(weight("+3"), Ok(3));
        assert_eq!(
            weight("").unwrap_err(),
            "The binding key must be an integer: <<>>"
        );
        assert_eq!(
            weight("abc").unwrap_err(),
            "The binding key must be an integer: <<\"abc\">>"
        );
        assert_eq!(
            weight("0").unwrap_err(),
            "The binding key must be greater than 0"
        );
        assert!(weight("10001").is_err());
    }

    #[test]
    fn shares_follow_weights_and_keys_stay_put() {
        let (a, b) = (queue("a"), queue("b"));
        let mut t = HashTable::new(HashOn::RoutingKey);
        t.add(binding(&a, "1"));
        t.add(binding(&b, "3"));
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut placed = HashMap::new();
        for i in 0..4000 {
            let key = format!("key-{i}");
            let to = routed(&t, &key, None);
            assert_eq!(to.len(), 1, "exactly one destination");
            *counts.entry(to[0].clone()).or_default() += 1;
            placed.insert(key, to[0].clone());
        }
        let share = counts["a"] as f64 / 4000.0;
        assert!((0.21..0.29).contains(&share), "a's share {share}");
        // A third binding takes keys from the others; removing it puts every key back.
        let c = queue("c");
        t.add(binding(&c, "2"));
        assert!(t.remove(&Destination::Queue(c), "2", &FieldTable::default()));
        for (key, to) in &placed {
            assert_eq!(&routed(&t, key, None)[0], to);
        }
    }

    #[test]
    fn hash_arguments_are_checked() {
        let mut args = FieldTable::default();
        args.insert(
            "hash-property".into(),
            AMQPValue::LongString("priority".into()),
        );
        assert_eq!(
            hash_on(&args).unwrap_err().text,
            "PRECONDITION_FAILED - Unsupported property: priority"
        );
        args.insert("hash-header".into(), AMQPValue::LongString("h".into()));
        assert!(hash_on(&args)
            .unwrap_err()
            .text
            .contains("mutually exclusive"));
        let mut args = FieldTable::default();
        args.insert("hash-header".into(), AMQPValue::LongLongInt(1));
        assert!(hash_on(&args).is_err());
    }
}
