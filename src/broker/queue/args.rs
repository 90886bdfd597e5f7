//! Queue arguments (`x-message-ttl`, `x-max-length`, `x-dead-letter-exchange`, ...): parsed
//! and checked once at declaration, with RabbitMQ's error texts, into the settings a queue
//! runs with.

use crate::broker::field_types::{integer, name as type_name};
use crate::error::{AmqpError, AmqpResult};
use warren_amqp::{AMQPValue, FieldTable};

/// What a full queue does with one more message (`x-overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest message to make room.
    #[default]
    DropHead,
    /// Refuse the new message (the publisher gets basic.nack under confirms).
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

/// The queue type (`x-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueKind {
    #[default]
    Classic,
    /// A quorum queue, on one node: durable, every message stored, returns counted and sent
    /// to the back of the queue (see `quorum`).
    Quorum,
}

impl QueueKind {
    /// The name the management API and `x-queue-type` use.
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::Classic => "classic",
            QueueKind::Quorum => "quorum",
        }
    }
}

/// What a quorum queue does with a message dead-lettered (`x-dead-letter-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadLetterStrategy {
    #[default]
    AtMostOnce,
    AtLeastOnce,
}

/// A queue's settings from its arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// Lanes above the base one: messages' priorities are capped at this.
    pub max_priority: u8,
    pub single_active_consumer: bool,
    /// `x-message-deduplication`: drop publishes whose deduplication key the queue holds.
    pub deduplication: Option<Dedup>,
    /// `x-consumer-timeout`: milliseconds a consumer may hold a delivery unacknowledged.
    pub consumer_timeout: Option<u64>,
    pub kind: QueueKind,
    /// `x-delivery-limit` (quorum queues): deliveries after the first before a returned
    /// message is dropped or dead-lettered.
    pub delivery_limit: Option<u64>,
    pub dead_letter_strategy: DeadLetterStrategy,
}

/// What a deduplicating queue compares. Without `x-cache-size` and `x-cache-ttl` a key counts
/// while a message carrying it is in the queue (the RabbitMQ plugin's meaning); with either,
/// while it is in a bounded cache of recently seen keys (LavinMQ's meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dedup {
    /// `x-cache-size`: how many keys at most (oldest forgotten first).
    pub cache_size: Option<u64>,
    /// `x-cache-ttl`: how long a key is remembered, in milliseconds.
    pub cache_ttl: Option<u64>,
    /// `x-deduplication-header`: the header holding the key, if not the default one.
    pub header: Option<String>,
}

impl Dedup {
    pub fn header(&self) -> &str {
        self.header
            .as_deref()
            .unwrap_or(crate::broker::dedup::DEFAULT_HEADER)
    }

    /// Keys live in a bounded cache rather than for as long as their message is queued.
    pub fn is_cache(&self) -> bool {
        self.cache_size.is_some() || self.cache_ttl.is_some()
    }
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// How an integer argument may be bounded.
enum Bound {
    NonNegative,
    Positive,
    AtMost(i64),
}

struct Checker<'a> {
    args: &'a FieldTable,
    /// "queue 'q' in vhost '/'"
    what: &'a str,
}

impl Checker<'_> {
    fn invalid(&self, arg: &str, detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::precondition_failed(format!("invalid arg '{arg}' for {}: {detail}", self.what))
    }

    fn integer(&self, arg: &str, bound: Bound) -> AmqpResult<Option<u64>> {
        let Some(v) = self.args.inner().get(arg) else {
            return Ok(None);
        };
        let n = integer(v).ok_or_else(|| {
            self.invalid(arg, format!("\"expected integer, got {}\"", type_name(v)))
        })?;
        match bound {
            _ if n < 0 => Err(self.invalid(arg, format!("{{value_negative,{n}}}"))),
            Bound::Positive if n == 0 => Err(self.invalid(arg, format!("{{value_zero,{n}}}"))),
            Bound::AtMost(max) if n > max => {
                Err(self.invalid(arg, format!("{{max_value_exceeded,{n}}}")))
            }
            _ => Ok(Some(n as u64)),
        }
    }

    fn string(&self, arg: &str) -> AmqpResult<Option<String>> {
        let Some(v) = self.args.inner().get(arg) else {
            return Ok(None);
        };
        text(v).map(Some).ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid type '{}' for arg '{arg}' in {}",
                type_name(v),
                self.what
            ))
        })
    }

    fn overflow(&self) -> AmqpResult<Overflow> {
        let Some(v) = self.args.inner().get("x-overflow") else {
            return Ok(Overflow::DropHead);
        };
        match text(v).as_deref() {
            Some("drop-head") => Ok(Overflow::DropHead),
            Some("reject-publish") => Ok(Overflow::RejectPublish),
            Some("reject-publish-dlx") => Ok(Overflow::RejectPublishDlx),
            Some(_) => Err(self.invalid("x-overflow", "invalid_overflow")),
            None => Err(self.invalid(
                "x-overflow",
                format!("{{unacceptable_type,{}}}", type_name(v)),
            )),
        }
    }

    fn flag(&self, arg: &str) -> AmqpResult<bool> {
        match self.args.inner().get(arg) {
            None => Ok(false),
            Some(AMQPValue::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.invalid(arg, format!("{{unacceptable_type,{}}}", type_name(v)))),
        }
    }

    fn queue_type(&self) -> AmqpResult<QueueKind> {
        let Some(v) = self.args.inner().get("x-queue-type") else {
            return Ok(QueueKind::Classic);
        };
        match text(v).as_deref() {
            Some("classic") => Ok(QueueKind::Classic),
            Some("quorum") => Ok(QueueKind::Quorum),
            Some("stream") => Err(AmqpError::precondition_failed(format!(
                "queue type 'stream' is not supported by Warren yet; declare a classic or \
                 quorum queue for {}",
                self.what
            ))),
            Some(other) => Err(self.invalid(
                "x-queue-type",
                format!("\"unsupported queue type '{other}'\""),
            )),
            None => Err(self.invalid(
                "x-queue-type",
                format!("{{unacceptable_type,{}}}", type_name(v)),
            )),
        }
    }

    /// Arguments a quorum queue refuses, as RabbitMQ does.
    fn quorum_only(&self) -> AmqpResult<()> {
        const REFUSED: [&str; 4] = [
            "x-max-priority",
            "x-queue-mode",
            "x-queue-master-locator",
            "x-queue-version",
        ];
        match REFUSED
            .iter()
            .find(|arg| self.args.inner().contains_key(**arg))
        {
            Some(arg) => Err(AmqpError::precondition_failed(format!(
                "invalid arg '{arg}' for {} of queue type rabbit_quorum_queue",
                self.what
            ))),
            None => Ok(()),
        }
    }

    /// `x-delivery-limit`: a negative limit acts as 0.
    fn delivery_limit(&self) -> AmqpResult<Option<u64>> {
        let Some(v) = self.args.inner().get("x-delivery-limit") else {
            return Ok(None);
        };
        let n = integer(v).ok_or_else(|| {
            self.invalid(
                "x-delivery-limit",
                format!("\"expected integer, got {}\"", type_name(v)),
            )
        })?;
        Ok(Some(n.max(0) as u64))
    }

    fn dead_letter_strategy(&self) -> AmqpResult<DeadLetterStrategy> {
        let Some(v) = self.args.inner().get("x-dead-letter-strategy") else {
            return Ok(DeadLetterStrategy::AtMostOnce);
        };
        match text(v).as_deref() {
            Some("at-most-once") => Ok(DeadLetterStrategy::AtMostOnce),
            Some("at-least-once") => Ok(DeadLetterStrategy::AtLeastOnce),
            _ => Err(self.invalid("x-dead-letter-strategy", "invalid_dlx_strategy")),
        }
    }

    fn queue_mode(&self) -> AmqpResult<()> {
        let Some(v) = self.args.inner().get("x-queue-mode") else {
            return Ok(());
        };
        // Every Warren queue pages to disk past its window: "lazy" and "default" both fit.
        match text(v).as_deref() {
            Some("default" | "lazy") => Ok(()),
            Some(other) => Err(self.invalid(
                "x-queue-mode",
                format!("\"unsupported queue mode '{other}'\""),
            )),
            None => Err(self.invalid(
                "x-queue-mode",
                format!("{{unacceptable_type,{}}}", type_name(v)),
            )),
        }
    }
}

/// The properties quorum and stream queues require, checked as RabbitMQ does before anything
/// else (Warren then refuses streams, which it does not implement, rather than downgrade them).
fn check_queue_type_properties(
    args: &FieldTable,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    what: &str,
) -> AmqpResult<()> {
    let kind = args.inner().get("x-queue-type").and_then(text);
    if !matches!(kind.as_deref(), Some("quorum" | "stream")) {
        return Ok(());
    }
    let property = if !durable {
        Some("non-durable")
    } else if exclusive {
        Some("exclusive-owner")
    } else if auto_delete {
        Some("auto-delete")
    } else {
        None
    };
    match property {
        Some(p) => Err(AmqpError::precondition_failed(format!(
            "invalid property '{p}' for {what}"
        ))),
        None => Ok(()),
    }
}

/// What the policy and the operator policy that apply to a queue set (the lower of their two
/// limits already taken), and their names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub consumer_timeout: Option<u64>,
    pub delivery_limit: Option<u64>,
    pub dead_letter_strategy: Option<DeadLetterStrategy>,
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
}

/// The settings of a live queue that policies may change: its own arguments combined with
/// its policies as RabbitMQ combines them. Limits take the lower value; overflow and
/// dead-lettering take the queue's argument when it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    /// How long a consumer may hold a delivery unacknowledged (ms), if the queue says.
    pub consumer_timeout: Option<u64>,
    /// Returns a quorum queue's message may have before it is dropped or dead-lettered.
    pub delivery_limit: Option<u64>,
    pub dead_letter_strategy: DeadLetterStrategy,
    /// The policies behind it, for the management API.
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
}

impl Effective {
    pub fn of(args: &QueueArgs, declared: &FieldTable, policy: &PolicyOverrides) -> Self {
        let lower = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut overflow = match declared.inner().contains_key("x-overflow") {
            true => args.overflow,
            false => policy.overflow.unwrap_or(args.overflow),
        };
        // A quorum queue treats reject-publish-dlx as drop-head, as RabbitMQ's do.
        if args.kind == QueueKind::Quorum && overflow == Overflow::RejectPublishDlx {
            overflow = Overflow::DropHead;
        }
        let dead_letter_exchange = args
            .dead_letter_exchange
            .clone()
            .or_else(|| policy.dead_letter_exchange.clone());
        let dead_letter_routing_key = args
            .dead_letter_routing_key
            .clone()
            .or_else(|| policy.dead_letter_routing_key.clone());
        Self {
            message_ttl: lower(args.message_ttl, policy.message_ttl),
            expires: lower(args.expires, policy.expires),
            max_length: lower(args.max_length, policy.max_length),
            max_length_bytes: lower(args.max_length_bytes, policy.max_length_bytes),
            overflow,
            dead_letter_exchange,
            dead_letter_routing_key,
            consumer_timeout: lower(args.consumer_timeout, policy.consumer_timeout),
            dead_letter_strategy: match declared.inner().contains_key("x-dead-letter-strategy") {
                true => args.dead_letter_strategy,
                false => policy
                    .dead_letter_strategy
                    .unwrap_or(args.dead_letter_strategy),
            },
            delivery_limit: match args.kind {
                QueueKind::Quorum => lower(args.delivery_limit, policy.delivery_limit),
                QueueKind::Classic => None,
            },
            policy: policy.policy.clone(),
            operator_policy: policy.operator_policy.clone(),
        }
    }
}

impl QueueArgs {
    /// Parses and checks a queue.declare's arguments. `what` names the queue in errors.
    pub fn parse(
        args: &FieldTable,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        what: &str,
    ) -> AmqpResult<Self> {
        check_queue_type_properties(args, durable, exclusive, auto_delete, what)?;
        let c = Checker { args, what };
        let kind = c.queue_type()?;
        if kind == QueueKind::Quorum {
            c.quorum_only()?;
        }
        c.queue_mode()?;
        let mut parsed = Self {
            message_ttl: c.integer("x-message-ttl", Bound::NonNegative)?,
            expires: c.integer("x-expires", Bound::Positive)?,
            dead_letter_exchange: c.string("x-dead-letter-exchange")?,
            dead_letter_routing_key: c.string("x-dead-letter-routing-key")?,
            max_length: c.integer("x-max-length", Bound::NonNegative)?,
            max_length_bytes: c.integer("x-max-length-bytes", Bound::NonNegative)?,
            overflow: c.overflow()?,
            max_priority: c
                .integer("x-max-priority", Bound::AtMost(255))?
                .unwrap_or(0) as u8,
            single_active_consumer: c.flag("x-single-active-consumer")?,
            deduplication: if c.flag("x-message-deduplication")? {
                Some(Dedup {
                    cache_size: c.integer("x-cache-size", Bound::Positive)?,
                    cache_ttl: c.integer("x-cache-ttl", Bound::Positive)?,
                    header: c.string("x-deduplication-header")?,
                })
            } else {
                None
            },
            consumer_timeout: c.integer("x-consumer-timeout", Bound::NonNegative)?,
            kind,
            delivery_limit: None,
            dead_letter_strategy: DeadLetterStrategy::AtMostOnce,
        };
        if kind == QueueKind::Quorum {
            parsed.delivery_limit = c.delivery_limit()?;
            parsed.dead_letter_strategy = c.dead_letter_strategy()?;
            c.integer("x-quorum-initial-group-size", Bound::Positive)?;
            c.integer("x-max-in-memory-length", Bound::NonNegative)?;
            c.integer("x-max-in-memory-bytes", Bound::NonNegative)?;
        }
        if parsed.dead_letter_routing_key.is_some() && parsed.dead_letter_exchange.is_none() {
            return Err(c.invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined",
            ));
        }
        Ok(parsed)
    }
}

/// A consumer's `x-consumer-timeout` argument (milliseconds), which overrides its queue's.
pub fn consumer_timeout(args: &FieldTable, what: &str) -> AmqpResult<Option<u64>> {
    Checker { args, what }.integer("x-consumer-timeout", Bound::NonNegative)
}

/// A consumer's `x-priority` argument (0 when absent).
pub fn consumer_priority(args: &FieldTable, what: &str) -> AmqpResult<i64> {
    match args.inner().get("x-priority") {
        None => Ok(0),
        Some(v) => integer(v).ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid arg 'x-priority' for {what}: \"expected integer, got {}\"",
                type_name(v)
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn parse(pairs: &[(&str, AMQPValue)]) -> AmqpResult<QueueArgs> {
        QueueArgs::parse(&args(pairs), true, false, false, "queue 'q' in vhost '/'")
    }

    #[test]
    fn parses_every_setting() {
        let a = parse(&[
            ("x-message-ttl", AMQPValue::LongInt(500)),
            ("x-expires", AMQPValue::LongLongInt(60_000)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("dlx".into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString("dead".into()),
            ),
            ("x-max-length", AMQPValue::ShortShortUInt(3)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            ("x-max-priority", AMQPValue::LongInt(10)),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
            ("x-queue-type", AMQPValue::LongString("classic".into())),
        ])
        .unwrap();
        assert_eq!(a.message_ttl, Some(500));
        assert_eq!(a.expires, Some(60_000));
        assert_eq!(a.dead_letter_routing_key.as_deref(), Some("dead"));
        assert_eq!(a.max_length, Some(3));
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.max_priority, 10);
        assert!(a.single_active_consumer);
    }

    #[test]
    fn refuses_like_rabbitmq() {
        let text = |pairs: &[(&str, AMQPValue)]| parse(pairs).unwrap_err().text;
        assert_eq!(
            text(&[("x-max-length", AMQPValue::LongString("abc".into()))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        assert!(text(&[("x-expires", AMQPValue::LongInt(0))]).ends_with("{value_zero,0}"));
        assert!(text(&[("x-max-priority", AMQPValue::LongInt(300))])
            .ends_with("{max_value_exceeded,300}"));
        assert!(text(&[("x-message-ttl", AMQPValue::LongInt(-1))]).ends_with("{value_negative,-1}"));
        assert!(text(&[(
            "x-dead-letter-routing-key",
            AMQPValue::LongString("k".into())
        )])
        .ends_with("routing_key_but_no_dlx_defined"));
        assert!(
            text(&[("x-queue-type", AMQPValue::LongString("stream".into()))])
                .contains("not supported")
        );
        let quorum = args(&[("x-queue-type", AMQPValue::LongString("quorum".into()))]);
        let e =
            QueueArgs::parse(&quorum, false, false, false, "queue 'q' in vhost '/'").unwrap_err();
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
    }
}
