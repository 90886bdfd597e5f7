//! AMQP field values as JSON and back, as RabbitMQ's management API and definitions files
//! convert them: tables
//! become objects, arrays lists, binary base64 text; from JSON, integers become `long`,
//! strings `longstr`, numbers with a fraction `double`, objects tables and lists arrays.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use warren_amqp::{AMQPValue, FieldArray, FieldTable, LongString};

pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect(),
    )
}

pub fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(*f),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::from(s.as_str()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => Value::from(text),
            Err(_) => Value::from(STANDARD.encode(s.as_bytes())),
        },
        AMQPValue::ByteArray(b) => Value::from(STANDARD.encode(b.as_slice())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

pub fn json_to_table(object: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in object {
        table.insert(k.as_str().into(), from_json(v));
    }
    table
}

pub fn from_json(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AMQPValue::LongLongInt(i),
            (None, Some(f)) => AMQPValue::Double(f),
            (None, None) => AMQPValue::Void,
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(from_json).collect::<Vec<_>>(),
        )),
        Value::Object(o) => AMQPValue::FieldTable(json_to_table(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_arguments_round_trip_as_rabbitmq_types() {
        let v = json!({"x-max-length": 5, "s": "text", "b": true, "f": 1.5,
                       "l": [1, "a"], "t": {"n": null}});
        let table = json_to_table(v.as_object().unwrap());
        assert_eq!(
            table.inner().get("x-max-length"),
            Some(&AMQPValue::LongLongInt(5))
        );
        assert_eq!(table_to_json(&table), v);
    }
}
