//! Firehose tracing (`amq.rabbitmq.trace`), switched per vhost through the management API:
//! a publish copy (`publish.<exchange>`) before each delivery copy (`deliver.<queue>`), with
//! RabbitMQ's headers, and nothing once it is off.

mod common;

use common::api::*;
use common::provoke::{channel_error, Via};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::StatusCode;
use serde_json::json;

fn header<'a>(headers: &'a FieldTable, name: &str) -> &'a AMQPValue {
    headers
        .inner()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

fn text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

#[tokio::test]
async fn publishes_and_deliveries_are_copied_while_tracing_is_on() {
    let broker = TestBroker::start().await;
    let (_, vhost) = get(&broker, "/api/vhosts/%2F").await;
    assert_eq!(vhost["tracing"], false);
    assert_eq!(
        put_answer(&broker, "/api/vhosts/%2F", json!({"tracing": "yes"})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["not_boolean", "yes"]})
        )
    );

    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "traces").await;
    ch.queue_bind(
        "traces".into(),
        "amq.rabbitmq.trace".into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(&ch, "work").await;
    publish(&ch, "", "work", b"untraced").await;
    assert_eq!(queue_counts(&ch, "traces").await.0, 0, "off by default");

    assert_eq!(
        put(&broker, "/api/vhosts/%2F", json!({"tracing": true})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(&broker, "/api/vhosts/%2F").await.1["tracing"], true);
    ch.queue_purge("work".into(), Default::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "CC".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString("cc-key".into())].into()),
    );
    ch.basic_publish(
        "".into(),
        "work".into(),
        BasicPublishOptions::default(),
        b"traced body",
        BasicProperties::default()
            .with_headers(headers)
            .with_message_id("m-1".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let got = ch
        .basic_get("work".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(got.delivery.data, b"traced body");

    // The publish copy, then the delivery copy.
    let publish_copy = ch
        .basic_get("traces".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a publish copy");
    assert_eq!(publish_copy.delivery.routing_key.as_str(), "publish.");
    assert_eq!(
        publish_copy.delivery.exchange.as_str(),
        "amq.rabbitmq.trace"
    );
    assert_eq!(publish_copy.delivery.data, b"traced body");
    let h = publish_copy.delivery.properties.headers().clone().unwrap();
    assert_eq!(text(header(&h, "exchange_name")), "");
    assert_eq!(text(header(&h, "vhost")), "/");
    assert_eq!(text(header(&h, "user")), "guest");
    assert_eq!(
        header(&h, "routing_keys"),
        &AMQPValue::FieldArray(
            vec![
                AMQPValue::LongString("work".into()),
                AMQPValue::LongString("cc-key".into())
            ]
            .into()
        )
    );
    assert_eq!(
        header(&h, "routed_queues"),
        &AMQPValue::FieldArray(vec![AMQPValue::LongString("work".into())].into())
    );
    assert_eq!(header(&h, "channel"), &AMQPValue::LongInt(1));
    let AMQPValue::FieldTable(props) = header(&h, "properties") else {
        panic!("properties is a table")
    };
    assert_eq!(text(header(props, "message_id")), "m-1");
    assert!(text(header(&h, "connection")).contains(" -> "));

    let deliver_copy = ch
        .basic_get("traces".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a delivery copy");
    assert_eq!(deliver_copy.delivery.routing_key.as_str(), "deliver.work");
    let h = deliver_copy.delivery.properties.headers().clone().unwrap();
    assert_eq!(header(&h, "redelivered"), &AMQPValue::LongInt(0));
    assert!(h.inner().get("routed_queues").is_none());

    // Clients cannot publish to the trace exchange.
    let text = "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.trace' in \
                vhost '/'";
    channel_error(
        &broker.connect().await,
        Via::Event,
        403,
        text,
        |ch| async move {
            publish(&ch, "amq.rabbitmq.trace", "x", b"x").await;
            Ok(())
        },
    )
    .await;

    // Off: no more copies.
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        put(&broker, "/api/vhosts/%2F", json!({"tracing": false})).await,
        StatusCode::NO_CONTENT
    );
    // What the channel checks above published was traced; nothing after this is.
    ch.queue_purge("traces".into(), Default::default())
        .await
        .unwrap();
    publish(&ch, "", "work", b"after").await;
    assert_eq!(queue_counts(&ch, "traces").await.0, 0);
}
