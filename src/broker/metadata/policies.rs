//! Policies and operator policies: per vhost, a pattern over queue or exchange names, what it
//! applies to, a priority and a definition of settings. The highest-priority matching policy
//! applies to an object, and so does the highest-priority matching operator policy; where both
//! set a limit the lower one wins, as it does against a queue's own arguments (checked on
//! RabbitMQ 3.10: x-max-length 10, policy 5, operator policy 3 keep 3 messages).
//!
//! Stored and exported in RabbitMQ's definitions format; definitions are checked with
//! RabbitMQ's rules and texts.

use super::permissions::{compile, BadPattern};
use crate::broker::queue::{DeadLetterStrategy, Overflow, PolicyOverrides};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApplyTo {
    #[default]
    All,
    Queues,
    Exchanges,
    ClassicQueues,
    QuorumQueues,
    Streams,
}

/// What a policy is looked up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Queue,
    Exchange,
}

impl ApplyTo {
    fn covers(self, target: Target) -> bool {
        match target {
            Target::Queue => matches!(self, Self::All | Self::Queues | Self::ClassicQueues),
            Target::Exchange => matches!(self, Self::All | Self::Exchanges),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default)]
    pub apply_to: ApplyTo,
    #[serde(default)]
    pub priority: i64,
    pub definition: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub spec: PolicySpec,
    pattern: Regex,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    BadPattern(#[from] BadPattern),
    /// RabbitMQ's "Validation failed" detail.
    #[error("Validation failed\n\n{0}\n")]
    Invalid(String),
}

/// Keys a policy may set that Warren acts on.
const ACTED_ON: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "alternate-exchange",
    "consumer-timeout",
    "delivery-limit",
    "dead-letter-strategy",
];
/// Keys RabbitMQ accepts that mean nothing for a classic queue on one node: accepted (so
/// definitions from RabbitMQ import) and without effect.
const ACCEPTED: &[&str] = &[
    "queue-mode",
    "queue-version",
    "queue-master-locator",
    "queue-leader-locator",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "federation-upstream",
    "federation-upstream-set",
];
/// Keys an operator policy may set.
const OPERATOR: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// A value as Erlang prints it in RabbitMQ's validation messages.
fn erlang(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

/// Checks a definition with RabbitMQ's rules; `operator` for an operator policy.
fn validate(definition: &Map<String, Value>, operator: bool) -> Result<(), PolicyError> {
    if definition.is_empty() {
        return Err(PolicyError::Invalid("no policy provided".into()));
    }
    let unknown: Vec<String> = definition
        .iter()
        .filter(|(k, _)| match operator {
            true => !OPERATOR.contains(&k.as_str()),
            false => !ACTED_ON.contains(&k.as_str()) && !ACCEPTED.contains(&k.as_str()),
        })
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erlang(v)))
        .collect();
    if !unknown.is_empty() {
        return Err(PolicyError::Invalid(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        )));
    }
    for (key, v) in definition {
        let bad = |what: &str| {
            Err(PolicyError::Invalid(format!(
                "{} is not a valid {what}",
                erlang(v)
            )))
        };
        let int = v.as_i64();
        match key.as_str() {
            "message-ttl" if int.is_none_or(|n| n < 0) => return bad("message TTL"),
            "expires" if int.is_none_or(|n| n < 1) => return bad("queue expiry"),
            "max-length" if int.is_none_or(|n| n < 0) => return bad("maximum length"),
            "max-length-bytes" if int.is_none_or(|n| n < 0) => {
                return bad("maximum length in bytes")
            }
            "consumer-timeout" if int.is_none_or(|n| n < 0) => return bad("consumer timeout"),
            "delivery-limit" if int.is_none_or(|n| n < 0) => return bad("delivery limit"),
            "dead-letter-strategy" if v.as_str().and_then(dead_letter_strategy).is_none() => {
                return bad("dead-letter strategy")
            }
            "overflow" if v.as_str().and_then(overflow).is_none() => return bad("overflow value"),
            "dead-letter-exchange" | "dead-letter-routing-key" | "alternate-exchange"
                if !v.is_string() =>
            {
                return bad("exchange name")
            }
            _ => {}
        }
    }
    Ok(())
}

fn dead_letter_strategy(text: &str) -> Option<DeadLetterStrategy> {
    match text {
        "at-most-once" => Some(DeadLetterStrategy::AtMostOnce),
        "at-least-once" => Some(DeadLetterStrategy::AtLeastOnce),
        _ => None,
    }
}

fn overflow(text: &str) -> Option<Overflow> {
    match text {
        "drop-head" => Some(Overflow::DropHead),
        "reject-publish" => Some(Overflow::RejectPublish),
        "reject-publish-dlx" => Some(Overflow::RejectPublishDlx),
        _ => None,
    }
}

impl Policy {
    /// A checked policy (`operator` for an operator policy).
    pub fn new(spec: PolicySpec, operator: bool) -> Result<Self, PolicyError> {
        validate(&spec.definition, operator)?;
        Ok(Self {
            pattern: compile(&spec.pattern)?,
            spec,
        })
    }

    pub fn applies(&self, target: Target, name: &str) -> bool {
        self.spec.apply_to.covers(target) && self.pattern.is_match(name)
    }

    fn int(&self, key: &str) -> Option<u64> {
        self.spec.definition.get(key)?.as_u64()
    }

    fn text(&self, key: &str) -> Option<String> {
        Some(self.spec.definition.get(key)?.as_str()?.to_owned())
    }

    /// The alternate exchange it sets, if any.
    pub fn alternate_exchange(&self) -> Option<String> {
        self.text("alternate-exchange")
    }
}

/// The highest-priority policy among `candidates` that applies (ties: the first by name).
pub fn pick<'a>(
    candidates: impl Iterator<Item = &'a std::sync::Arc<Policy>>,
    target: Target,
    name: &str,
) -> Option<std::sync::Arc<Policy>> {
    candidates
        .filter(|p| p.applies(target, name))
        .max_by(|a, b| {
            (a.spec.priority, std::cmp::Reverse(&a.spec.name))
                .cmp(&(b.spec.priority, std::cmp::Reverse(&b.spec.name)))
        })
        .cloned()
}

/// The definition a policy and an operator policy make together, as the management API shows
/// it: the policy's keys, with the operator policy's where it sets a lower limit or a key the
/// policy does not.
pub fn effective_definition(
    policy: Option<&Policy>,
    operator: Option<&Policy>,
) -> serde_json::Map<String, Value> {
    let mut merged = policy
        .map(|p| p.spec.definition.clone())
        .unwrap_or_default();
    for (key, value) in operator
        .map(|p| p.spec.definition.iter())
        .into_iter()
        .flatten()
    {
        let lower = match (merged.get(key).and_then(Value::as_u64), value.as_u64()) {
            (Some(mine), Some(theirs)) => theirs < mine,
            _ => true,
        };
        if lower {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// What a policy and an operator policy set for a queue, the lower limit winning.
pub fn queue_overrides(policy: Option<&Policy>, operator: Option<&Policy>) -> PolicyOverrides {
    let lower = |key: &str| {
        let values = [
            policy.and_then(|p| p.int(key)),
            operator.and_then(|p| p.int(key)),
        ];
        values.into_iter().flatten().min()
    };
    PolicyOverrides {
        message_ttl: lower("message-ttl"),
        expires: lower("expires"),
        max_length: lower("max-length"),
        max_length_bytes: lower("max-length-bytes"),
        overflow: policy
            .and_then(|p| p.text("overflow"))
            .and_then(|t| overflow(&t)),
        dead_letter_exchange: policy.and_then(|p| p.text("dead-letter-exchange")),
        dead_letter_routing_key: policy.and_then(|p| p.text("dead-letter-routing-key")),
        consumer_timeout: policy.and_then(|p| p.int("consumer-timeout")),
        delivery_limit: lower("delivery-limit"),
        dead_letter_strategy: policy
            .and_then(|p| p.text("dead-letter-strategy"))
            .and_then(|t| dead_letter_strategy(&t)),
        policy: policy.map(|p| p.spec.name.clone()),
        operator_policy: operator.map(|p| p.spec.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spec(name: &str, pattern: &str, priority: i64, definition: Value) -> PolicySpec {
        PolicySpec {
            vhost: "/".into(),
            name: name.into(),
            pattern: pattern.into(),
            apply_to: ApplyTo::Queues,
            priority,
            definition: definition.as_object().cloned().unwrap_or_default(),
        }
    }

    fn invalid(definition: Value, operator: bool) -> String {
        match Policy::new(spec("p", ".*", 0, definition), operator) {
            Err(PolicyError::Invalid(text)) => text,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn definitions_are_checked_with_rabbitmqs_texts() {
        use serde_json::json;
        assert_eq!(invalid(json!({}), false), "no policy provided");
        assert_eq!(
            invalid(json!({"max-priority": 5}), false),
            "[{<<\"max-priority\">>,5}] are not recognised policy settings"
        );
        assert_eq!(
            invalid(json!({"message-ttl": -1}), false),
            "-1 is not a valid message TTL"
        );
        assert_eq!(
            invalid(json!({"expires": 0}), false),
            "0 is not a valid queue expiry"
        );
        assert_eq!(
            invalid(json!({"overflow": "bogus"}), false),
            "<<\"bogus\">> is not a valid overflow value"
        );
        assert_eq!(
            invalid(json!({"max-length": "5"}), false),
            "<<\"5\">> is not a valid maximum length"
        );
        assert_eq!(
            invalid(json!({"dead-letter-exchange": "x"}), true),
            "[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings"
        );
        assert!(Policy::new(spec("p", ".*", 0, json!({"queue-mode": "lazy"})), false).is_ok());
        assert!(Policy::new(spec("p", ".*", 0, json!({"max-length": 3})), true).is_ok());
    }

    #[test]
    fn the_highest_priority_applies_and_the_lower_limit_wins() {
        use serde_json::json;
        let policies: Vec<Arc<Policy>> = [
            spec(
                "low",
                "^q",
                0,
                json!({"max-length": 1, "dead-letter-exchange": "low"}),
            ),
            spec(
                "high",
                "^q",
                5,
                json!({"max-length": 5, "dead-letter-exchange": "high"}),
            ),
            spec("other", "^x", 9, json!({"max-length": 9})),
        ]
        .into_iter()
        .map(|s| Arc::new(Policy::new(s, false).unwrap()))
        .collect();
        let chosen = pick(policies.iter(), Target::Queue, "queue").unwrap();
        assert_eq!(chosen.spec.name, "high");
        assert!(
            pick(policies.iter(), Target::Exchange, "queue").is_none(),
            "queues only"
        );
        let operator = Policy::new(spec("op", ".*", 0, json!({"max-length": 3})), true).unwrap();
        let o = queue_overrides(Some(&chosen), Some(&operator));
        assert_eq!(o.max_length, Some(3));
        assert_eq!(o.dead_letter_exchange.as_deref(), Some("high"));
        assert_eq!(o.policy.as_deref(), Some("high"));
        assert_eq!(o.operator_policy.as_deref(), Some("op"));
    }
}
