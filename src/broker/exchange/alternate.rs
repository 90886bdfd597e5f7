//! Alternate exchanges: the `alternate-exchange` argument names where an exchange sends what
//! its own bindings cannot route. The vhost's router follows it (see `VHost::route_keys`);
//! this module reads and checks the argument.

use crate::error::{AmqpError, AmqpResult};
use warren_amqp::{AMQPValue, FieldTable};

/// The argument's key, as RabbitMQ spells it.
pub const ARGUMENT: &str = "alternate-exchange";

/// The alternate exchange an exchange's arguments name, if they name one as a string.
pub fn from_arguments(arguments: &FieldTable) -> Option<String> {
    match arguments.inner().get(ARGUMENT)? {
        AMQPValue::LongString(name) => Some(String::from_utf8_lossy(name.as_bytes()).into_owned()),
        AMQPValue::ShortString(name) => Some(name.to_string()),
        _ => None,
    }
}

/// RabbitMQ refuses a new exchange whose `alternate-exchange` is not a string (`what` is
/// "exchange 'x' in vhost '/'").
pub fn check(arguments: &FieldTable, what: &str) -> AmqpResult<()> {
    match arguments.inner().get(ARGUMENT) {
        None | Some(AMQPValue::LongString(_)) => Ok(()),
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "invalid type '{}' for arg '{ARGUMENT}' in {what}",
            crate::broker::field_types::name(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(ARGUMENT.into(), value);
        t
    }

    #[test]
    fn a_string_names_the_alternate_exchange() {
        let t = args(AMQPValue::LongString("ae".into()));
        assert_eq!(from_arguments(&t).as_deref(), Some("ae"));
        assert!(check(&t, "exchange 'x' in vhost '/'").is_ok());
        assert_eq!(from_arguments(&FieldTable::default()), None);
    }

    #[test]
    fn any_other_type_is_refused_with_rabbitmqs_text() {
        let t = args(AMQPValue::LongLongInt(5));
        let e = check(&t, "exchange 'ex21' in vhost '/'").unwrap_err();
        assert_eq!(e.code, 406);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid type 'long' for arg 'alternate-exchange' in exchange 'ex21' in vhost '/'"
        );
        assert_eq!(from_arguments(&t), None);
    }
}
