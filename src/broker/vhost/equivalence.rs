//! Whether a redeclaration's arguments match the original's, with RabbitMQ's error texts.

use crate::broker::field_types;
use crate::broker::field_types::integer;
use crate::error::{AmqpError, AmqpResult};
use warren_amqp::{AMQPValue, FieldTable};

/// Compares the listed arguments of a redeclaration with the original, with RabbitMQ's texts.
/// Integers of different widths are equivalent when their values are.
pub(super) fn check_args_equivalent(
    what: &str,
    received: &FieldTable,
    current: &FieldTable,
    keys: &[&str],
) -> AmqpResult<()> {
    for key in keys {
        let (r, c) = (received.inner().get(*key), current.inner().get(*key));
        let classic = |v: Option<&AMQPValue>| matches!(v, Some(AMQPValue::LongString(s)) if s.as_bytes() == b"classic");
        let same = match (r, c) {
            // A classic queue is what no x-queue-type means.
            (None, Some(_)) | (Some(_), None)
                if *key == "x-queue-type" && (classic(r) || classic(c)) =>
            {
                true
            }
            (Some(r), Some(c)) => {
                arg_value(r) == arg_value(c) && (integer(r).is_some() == integer(c).is_some())
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        let detail = match (r, c) {
            (Some(r), Some(c)) => format!(
                "received '{}' but current is '{}'",
                arg_value(r),
                arg_value(c)
            ),
            (Some(r), None) => format!("received {} but current is none", described(r)),
            (None, Some(c)) => format!("received none but current is {}", described(c)),
            (None, None) => unreachable!("equal arguments were skipped"),
        };
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{key}' for {what}: {detail}"
        )));
    }
    Ok(())
}

/// An argument's value as RabbitMQ prints it.
fn arg_value(v: &AMQPValue) -> String {
    if let Some(n) = integer(v) {
        return n.to_string();
    }
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// "the value 'V' of type 'T'", with RabbitMQ's type names.
fn described(v: &AMQPValue) -> String {
    format!(
        "the value '{}' of type '{}'",
        arg_value(v),
        field_types::name(v)
    )
}
