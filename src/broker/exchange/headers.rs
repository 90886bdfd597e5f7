//! Headers exchange: bindings match on message headers, per the binding's `x-match`
//! (`all` by default, `any`, and RabbitMQ's `all-with-x` / `any-with-x` that also compare
//! `x-` prefixed keys). A binding value of type void matches any value of that header.

use super::list::ListTable;
use warren_amqp::{AMQPValue, FieldTable};

/// A headers exchange's bindings: each takes the messages whose headers match its arguments.
pub fn table() -> ListTable {
    ListTable::new(|binding, input| matches(&binding.arguments, input.headers))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchMode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

fn mode(arguments: &FieldTable) -> MatchMode {
    match arguments.inner().get("x-match") {
        Some(AMQPValue::LongString(s)) => match_mode_name(&String::from_utf8_lossy(s.as_bytes())),
        Some(AMQPValue::ShortString(s)) => match_mode_name(s.as_str()),
        _ => MatchMode::All,
    }
}

fn match_mode_name(name: &str) -> MatchMode {
    match name {
        "any" => MatchMode::Any,
        "all-with-x" => MatchMode::AllWithX,
        "any-with-x" => MatchMode::AnyWithX,
        _ => MatchMode::All,
    }
}

/// Checks a headers binding's `x-match`, with RabbitMQ's texts.
pub fn validate_binding(arguments: &FieldTable) -> Result<(), String> {
    match arguments.inner().get("x-match") {
        None => Ok(()),
        Some(AMQPValue::LongString(s)) => match s.as_bytes() {
            b"all" | b"any" | b"all-with-x" | b"any-with-x" => Ok(()),
            other => Err(format!(
                "Invalid x-match field value <<\"{}\">>; expected all, any, all-with-x, or any-with-x",
                String::from_utf8_lossy(other)
            )),
        },
        Some(other) => Err(format!(
            "Invalid x-match field type {} (value {other:?}); expected longstr",
            other.get_type()
        )),
    }
}

/// Numbers compare by value and strings by bytes whatever their wire type, as RabbitMQ 3.x
/// compares the decoded values (5 equals 5.0, a byte array equals a long string of the same
/// bytes).
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    fn as_int(v: &AMQPValue) -> Option<i128> {
        Some(match v {
            AMQPValue::ShortShortInt(n) => i128::from(*n),
            AMQPValue::ShortShortUInt(n) => i128::from(*n),
            AMQPValue::ShortInt(n) => i128::from(*n),
            AMQPValue::ShortUInt(n) => i128::from(*n),
            AMQPValue::LongInt(n) => i128::from(*n),
            AMQPValue::LongUInt(n) => i128::from(*n),
            AMQPValue::LongLongInt(n) => i128::from(*n),
            AMQPValue::Timestamp(n) => i128::from(*n),
            _ => return None,
        })
    }
    fn as_float(v: &AMQPValue) -> Option<f64> {
        match v {
            AMQPValue::Float(f) => Some(f64::from(*f)),
            AMQPValue::Double(d) => Some(*d),
            other => as_int(other).map(|n| n as f64),
        }
    }
    fn as_bytes(v: &AMQPValue) -> Option<&[u8]> {
        match v {
            AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
            AMQPValue::LongString(s) => Some(s.as_bytes()),
            AMQPValue::ByteArray(b) => Some(b.as_slice()),
            _ => None,
        }
    }
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (as_float(a), as_float(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (as_bytes(a), as_bytes(b)) {
        return x == y;
    }
    a == b
}

/// Does a binding with these arguments match a message with these headers?
pub fn matches(arguments: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = mode(arguments);
    let with_x = matches!(mode, MatchMode::AllWithX | MatchMode::AnyWithX);
    let mut considered = arguments
        .inner()
        .iter()
        .filter(|(k, _)| k.as_str() != "x-match" && (with_x || !k.as_str().starts_with("x-")));
    let header_matches = |(key, expected): (&warren_amqp::ShortString, &AMQPValue)| {
        let found = headers.and_then(|h| h.inner().get(key.as_str()));
        match (expected, found) {
            (_, None) => false,
            (AMQPValue::Void, Some(_)) => true,
            (expected, Some(actual)) => values_equal(expected, actual),
        }
    };
    match mode {
        MatchMode::All | MatchMode::AllWithX => considered.all(header_matches),
        MatchMode::Any | MatchMode::AnyWithX => considered.any(header_matches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(v.into())
    }

    #[test]
    fn matching_table() {
        let msg = table(&[
            ("format", s("pdf")),
            ("type", s("report")),
            ("x-tag", s("t")),
            ("n", AMQPValue::LongInt(5)),
        ]);
        let cases: Vec<(FieldTable, bool)> = vec![
            (table(&[("format", s("pdf")), ("type", s("report"))]), true),
            (table(&[("format", s("pdf")), ("type", s("log"))]), false),
            (
                table(&[
                    ("x-match", s("any")),
                    ("format", s("pdf")),
                    ("type", s("log")),
                ]),
                true,
            ),
            (
                table(&[
                    ("x-match", s("any")),
                    ("format", s("zip")),
                    ("type", s("log")),
                ]),
                false,
            ),
            (table(&[("format", s("pdf")), ("x-tag", s("other"))]), true),
            (
                table(&[
                    ("x-match", s("all-with-x")),
                    ("format", s("pdf")),
                    ("x-tag", s("other")),
                ]),
                false,
            ),
            (
                table(&[("x-match", s("all-with-x")), ("x-tag", s("t"))]),
                true,
            ),
            (
                table(&[
                    ("x-match", s("any-with-x")),
                    ("x-tag", s("t")),
                    ("format", s("zip")),
                ]),
                true,
            ),
            (table(&[("n", AMQPValue::ShortShortUInt(5))]), true),
            (table(&[("n", AMQPValue::Double(5.0))]), true),
            (
                table(&[("format", AMQPValue::ByteArray(b"pdf".to_vec().into()))]),
                true,
            ),
            (table(&[("n", AMQPValue::Void)]), true),
            (table(&[("missing", AMQPValue::Void)]), false),
            (
                table(&[("format", AMQPValue::ShortString("pdf".into()))]),
                true,
            ),
            (table(&[]), true),
            (table(&[("x-match", s("any"))]), false),
        ];
        for (i, (args, expected)) in cases.iter().enumerate() {
            assert_eq!(matches(args, Some(&msg)), *expected, "case {i}: {args:?}");
        }
        assert!(!matches(&table(&[("format", s("pdf"))]), None));
        assert!(validate_binding(&table(&[("x-match", s("any-with-x"))])).is_ok());
        let bad = validate_binding(&table(&[("x-match", s("some"))])).unwrap_err();
        assert_eq!(bad, "Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x");
        assert!(validate_binding(&table(&[("x-match", AMQPValue::LongInt(1))])).is_err());
        assert!(matches(&table(&[]), None));
    }
}
