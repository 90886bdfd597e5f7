//! Deduplicating exchanges: a message whose deduplication key the exchange has seen recently is
//! not routed at all (a mandatory publisher gets it back as unroutable; a confirm still acks
//! it). Two ways to ask for one, after the two references:
//! - the RabbitMQ plugin's exchange type `x-message-deduplication`, which routes as fanout;
//!   `x-cache-size` is required, `x-cache-ttl` optional, `x-cache-persistence` accepted (keys
//!   are kept in memory either way);
//! - LavinMQ's `x-message-deduplication: true` argument on an exchange of any type, with
//!   optional `x-cache-size`, `x-cache-ttl` and `x-deduplication-header`.
//!
//! Keys come from the `x-deduplication-header` header (see `broker::dedup`); a message's own
//! `x-cache-ttl` header overrides the exchange's TTL for its key.

use crate::broker::dedup::{key_of, ttl_of, WindowCache, DEFAULT_CACHE_SIZE, DEFAULT_HEADER};
use crate::broker::message::now_ms;
use crate::error::{AmqpError, AmqpResult};
use std::sync::Mutex;
use warren_amqp::{AMQPValue, FieldTable};

/// The plugin's exchange type.
pub const DEDUP_TYPE: &str = "x-message-deduplication";

#[derive(Debug)]
pub struct ExchangeDedup {
    header: String,
    /// The TTL of a key, in ms, unless its message names one.
    ttl: Option<u64>,
    size: u64,
    cache: Mutex<WindowCache>,
}

impl ExchangeDedup {
    fn new(header: Option<String>, ttl: Option<u64>, size: Option<u64>) -> Self {
        Self {
            header: header.unwrap_or_else(|| DEFAULT_HEADER.to_owned()),
            ttl,
            size: size.unwrap_or(DEFAULT_CACHE_SIZE),
            cache: Mutex::new(WindowCache::default()),
        }
    }

    /// The deduplication an exchange's declaration asks for, if any: `of_type` for the
    /// plugin's type, otherwise LavinMQ's argument on an exchange of any type.
    pub fn declared(of_type: bool, args: &FieldTable, what: &str) -> AmqpResult<Option<Self>> {
        if of_type {
            return plugin_type(args).map(Some);
        }
        match args.inner().get("x-message-deduplication") {
            None => Ok(None),
            Some(AMQPValue::Boolean(false)) => Ok(None),
            Some(AMQPValue::Boolean(true)) => lavinmq_argument(args, what).map(Some),
            Some(v) => Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-message-deduplication' for {what}: {{unacceptable_type,{}}}",
                crate::broker::field_types::name(v)
            ))),
        }
    }

    /// Records the message's key; true when the exchange had seen it within its window.
    pub fn is_duplicate(&self, headers: Option<&FieldTable>) -> bool {
        let Some(key) = key_of(headers, &self.header) else {
            return false;
        };
        let ttl = ttl_of(headers).or(self.ttl);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        !cache.admit(&key, now_ms(), ttl, self.size, false, &mut Vec::new())
    }
}

/// The plugin's checks, with its reply texts.
fn plugin_type(args: &FieldTable) -> AmqpResult<ExchangeDedup> {
    let size = match args.inner().get("x-cache-size").map(positive) {
        Some(Some(n)) => n,
        _ => {
            return Err(AmqpError::precondition_failed(
                "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
            ))
        }
    };
    let ttl = match args.inner().get("x-cache-ttl").map(positive) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return Err(AmqpError::precondition_failed(
                "Invalid argument, 'x-cache-ttl' must be an integer greater than 0",
            ))
        }
    };
    match args.inner().get("x-cache-persistence").map(text) {
        None => {}
        Some(Some(p)) if p == "disk" || p == "memory" => {}
        Some(_) => {
            return Err(AmqpError::precondition_failed(
                "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
            ))
        }
    }
    Ok(ExchangeDedup::new(None, ttl, Some(size)))
}

/// LavinMQ's arguments: each optional, integers positive, the header name a string.
fn lavinmq_argument(args: &FieldTable, what: &str) -> AmqpResult<ExchangeDedup> {
    let invalid = |arg: &str, v: &AMQPValue| {
        AmqpError::precondition_failed(format!(
            "invalid arg '{arg}' for {what}: {{unacceptable_type,{}}}",
            crate::broker::field_types::name(v)
        ))
    };
    let int = |arg: &str| match args.inner().get(arg) {
        None => Ok(None),
        Some(v) => positive(v).map(Some).ok_or_else(|| invalid(arg, v)),
    };
    let (size, ttl) = (int("x-cache-size")?, int("x-cache-ttl")?);
    let header = match args.inner().get("x-deduplication-header") {
        None => None,
        Some(v) => Some(text(v).ok_or_else(|| invalid("x-deduplication-header", v))?),
    };
    Ok(ExchangeDedup::new(header, ttl, size))
}

/// A positive integer, given as a number or (as the plugin allows) as a string of digits.
fn positive(v: &AMQPValue) -> Option<u64> {
    let n = match v {
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => text(v)?.trim().parse().ok()?,
        _ => crate::broker::field_types::integer(v)?,
    };
    u64::try_from(n).ok().filter(|n: &u64| *n > 0)
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::LongString;

    fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
    }

    fn keyed(key: &str) -> FieldTable {
        args(&[(DEFAULT_HEADER, s(key))])
    }

    #[test]
    fn the_plugin_type_needs_a_positive_cache_size() {
        let what = "exchange 'x' in vhost '/'";
        for bad in [args(&[]), args(&[("x-cache-size", AMQPValue::LongInt(0))])] {
            let e = ExchangeDedup::declared(true, &bad, what).unwrap_err();
            assert_eq!(e.code, 406);
            assert!(e
                .text
                .contains("'x-cache-size' must be an integer greater than 0"));
        }
        let ok = args(&[("x-cache-size", s("5")), ("x-cache-ttl", s("1000"))]);
        assert!(ExchangeDedup::declared(true, &ok, what).unwrap().is_some());
        let bad_ttl = args(&[
            ("x-cache-size", AMQPValue::LongInt(5)),
            ("x-cache-ttl", s("x")),
        ]);
        assert!(ExchangeDedup::declared(true, &bad_ttl, what).is_err());
        let disk = args(&[
            ("x-cache-size", AMQPValue::LongInt(5)),
            ("x-cache-persistence", s("disk")),
        ]);
        assert!(ExchangeDedup::declared(true, &disk, what).is_ok());
        let other = args(&[
            ("x-cache-size", AMQPValue::LongInt(5)),
            ("x-cache-persistence", s("ram")),
        ]);
        assert!(ExchangeDedup::declared(true, &other, what).is_err());
    }

    #[test]
    fn other_types_deduplicate_only_when_asked() {
        let what = "exchange 'x' in vhost '/'";
        assert!(ExchangeDedup::declared(false, &args(&[]), what)
            .unwrap()
            .is_none());
        let on = args(&[("x-message-deduplication", AMQPValue::Boolean(true))]);
        let d = ExchangeDedup::declared(false, &on, what).unwrap().unwrap();
        assert!(!d.is_duplicate(Some(&keyed("a"))));
        assert!(d.is_duplicate(Some(&keyed("a"))));
        assert!(
            !d.is_duplicate(None),
            "a message without a key is never a duplicate"
        );
        assert!(!d.is_duplicate(None));
        let custom = args(&[
            ("x-message-deduplication", AMQPValue::Boolean(true)),
            ("x-deduplication-header", s("order")),
            ("x-cache-size", AMQPValue::LongInt(1)),
        ]);
        let d = ExchangeDedup::declared(false, &custom, what)
            .unwrap()
            .unwrap();
        let order = |k: &str| args(&[("order", s(k))]);
        assert!(!d.is_duplicate(Some(&order("1"))));
        assert!(
            !d.is_duplicate(Some(&keyed("1"))),
            "the default header is not read"
        );
        assert!(d.is_duplicate(Some(&order("1"))));
        assert!(!d.is_duplicate(Some(&order("2"))));
        assert!(!d.is_duplicate(Some(&order("1"))), "evicted by 2 (size 1)");
    }
}
