//! Sender-selected distribution: a message's `CC` and `BCC` headers (arrays of longstr) add
//! routing keys to the one it was published with, and `BCC` is taken out of the headers before
//! any queue or consumer sees the message. The publish path asks this module only about
//! messages that have headers.

use super::field_types;
use crate::error::{AmqpError, AmqpResult};
use warren_amqp::{AMQPValue, FieldTable};

pub const CC: &str = "CC";
pub const BCC: &str = "BCC";

/// The routing keys a message's CC and BCC headers add, CC's first. Array elements that are
/// not strings are skipped; a header of any type but array is refused, as RabbitMQ does.
pub fn extra_keys(headers: &FieldTable) -> AmqpResult<Vec<String>> {
    let mut keys = Vec::new();
    for header in [CC, BCC] {
        match headers.inner().get(header) {
            None => {}
            Some(AMQPValue::FieldArray(routes)) => {
                keys.extend(routes.as_slice().iter().filter_map(|v| match v {
                    AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
                    _ => None,
                }))
            }
            Some(other) => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid message: {{unacceptable_type_in_header,\"{header}\",{}}}",
                    field_types::name(other)
                )))
            }
        }
    }
    Ok(keys)
}

/// The headers without BCC, when they have it.
pub fn without_bcc(headers: &FieldTable) -> Option<FieldTable> {
    if !headers.contains_key(BCC) {
        return None;
    }
    let mut kept = headers.inner().clone();
    kept.remove(BCC);
    Some(kept.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::FieldArray;

    fn strings(values: &[&str]) -> AMQPValue {
        let values: Vec<AMQPValue> = values
            .iter()
            .map(|v| AMQPValue::LongString((*v).into()))
            .collect();
        AMQPValue::FieldArray(FieldArray::from(values))
    }

    fn headers(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(k.into(), v);
        }
        t
    }

    #[test]
    fn cc_and_bcc_add_their_string_elements() {
        let mut cc = FieldArray::from(vec![AMQPValue::LongString("a".into())]);
        cc.push(AMQPValue::LongLongInt(7));
        let h = headers(vec![
            (BCC, strings(&["c"])),
            (CC, AMQPValue::FieldArray(cc)),
            ("cc", strings(&["lowercase is not special"])),
        ]);
        assert_eq!(extra_keys(&h).unwrap(), ["a", "c"]);
        assert!(extra_keys(&FieldTable::default()).unwrap().is_empty());
    }

    #[test]
    fn a_header_that_is_not_an_array_is_refused_with_rabbitmqs_text() {
        let h = headers(vec![(CC, AMQPValue::LongString("a".into()))]);
        let e = extra_keys(&h).unwrap_err();
        assert_eq!(e.code, 406);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
        );
    }

    #[test]
    fn only_bcc_is_stripped() {
        let h = headers(vec![(CC, strings(&["a"])), ("x", AMQPValue::Boolean(true))]);
        assert_eq!(without_bcc(&h), None);
        let mut with_bcc = h.clone();
        with_bcc.insert(BCC.into(), strings(&["b"]));
        assert_eq!(without_bcc(&with_bcc), Some(h));
    }
}
