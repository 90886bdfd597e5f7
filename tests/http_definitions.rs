//! Definitions through the management API and at boot. The fixture was exported from a real
//! RabbitMQ 3.10.8 on this machine (tests/fixtures/rabbitmq-3.10.8-definitions.json: users
//! app/app-secret, ops/ops-pw, admin/admin-pw; vhost `orders` with permissions, a topic
//! permission, a queue limit, a TTL policy, three exchanges, three queues and bindings between
//! them, one exchange-to-exchange with headers arguments).

mod common;

use common::api::*;
use common::*;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::StatusCode;
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/rabbitmq-3.10.8-definitions.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the fixture is JSON")
}

/// Names of a list's items, sorted.
fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// What a RabbitMQ export recreates, seen over AMQP and the API.
async fn assert_orders_work(broker: &TestBroker) {
    // Users log in with the passwords they had on RabbitMQ.
    let (_conn, ch) = channel_as(broker, "app", "app-secret", "orders").await;
    assert!(connect_as(broker, "app", "wrong", "orders").await.is_err());
    let (_, ops) = call(
        broker,
        reqwest::Method::GET,
        "/api/overview",
        ("ops", "ops-pw"),
        None,
    )
    .await;
    assert_eq!(ops["product_name"], "Warren");

    // The topic exchange routes order.created into orders.new.
    publish(&ch, "orders.topic", "order.created", b"o-1").await;
    assert_eq!(queue_counts(&ch, "orders.new").await, (1, 0));
    // The headers exchange passes matching messages to the topic exchange.
    let mut headers = FieldTable::default();
    headers.insert("kind".into(), AMQPValue::LongString("order".into()));
    ch.basic_publish(
        "orders.headers".into(),
        "order.created".into(),
        BasicPublishOptions::default(),
        b"o-2",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(queue_counts(&ch, "orders.new").await, (2, 0));

    // The TTL policy applies to ttl.events; the queue limit and arguments hold.
    let (_, q) = get(broker, "/api/queues/orders/ttl.events").await;
    assert_eq!(q["policy"], "ttl");
    assert_eq!(
        q["effective_policy_definition"],
        json!({"message-ttl": 60000})
    );
    let (_, q) = get(broker, "/api/queues/orders/orders.new").await;
    assert_eq!(
        q["arguments"],
        json!({"x-dead-letter-exchange": "orders.dlx", "x-max-length": 1000})
    );
    assert_eq!(
        get(broker, "/api/vhost-limits/orders").await.1,
        json!([{"vhost": "orders", "value": {"max-queues": 100}}])
    );
    assert_eq!(
        get(broker, "/api/user-limits/app").await.1,
        json!([{"user": "app", "value": {"max-connections": 10}}])
    );
    assert_eq!(
        get(broker, "/api/cluster-name").await.1,
        json!({"name": "fixture-cluster"})
    );

    // app may configure only orders.* names, and publish to orders.topic only order.* keys.
    let refused = ch
        .queue_declare(
            "other".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("configure is limited to ^orders\\.");
    assert_eq!(reply_code(&refused), Some(403));
    let (_conn, ch) = channel_as(broker, "app", "app-secret", "orders").await;
    // In confirm mode the publish's own answer is the channel's close (a next method could
    // meet the channel already closing, without the reply).
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "orders.topic".into(),
            "invoice.created".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let refused = within("the channel close", confirm)
        .await
        .expect_err("the topic permission refused the key");
    assert_eq!(reply_code(&refused), Some(403), "{refused}");
}

#[tokio::test]
async fn a_rabbitmq_export_imports_and_works_and_importing_twice_is_harmless() {
    let broker = TestBroker::start().await;
    assert_eq!(
        post(&broker, "/api/definitions", fixture()).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_orders_work(&broker).await;
    let (_, before) = get(&broker, "/api/definitions").await;
    assert_eq!(
        post(&broker, "/api/definitions", fixture()).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, after) = get(&broker, "/api/definitions").await;
    assert_eq!(before, after, "a second import changes nothing");
    // The messages published meanwhile are still there.
    let (_conn, ch) = channel_as(&broker, "admin", "admin-pw", "orders").await;
    assert_eq!(queue_counts(&ch, "orders.new").await, (2, 0));
}

#[tokio::test]
async fn an_export_from_warren_recreates_everything_in_another_warren() {
    let first = TestBroker::start().await;
    post(&first, "/api/definitions", fixture()).await;
    let (status, exported) = get(&first, "/api/definitions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(exported["rabbitmq_version"], "3.10.8");
    assert_eq!(names(&exported["users"]), ["admin", "app", "guest", "ops"]);
    assert_eq!(names(&exported["vhosts"]), ["/", "orders"]);
    assert_eq!(
        names(&exported["exchanges"]),
        ["orders.dlx", "orders.headers", "orders.topic"]
    );
    assert_eq!(
        names(&exported["queues"]),
        ["orders.dead", "orders.new", "ttl.events"]
    );
    assert_eq!(exported["bindings"].as_array().unwrap().len(), 3);
    assert_eq!(
        exported["parameters"],
        json!([{"value": {"max-queues": 100}, "vhost": "orders", "component": "vhost-limits", "name": "limits"}])
    );
    let policy = &exported["policies"][0];
    assert_eq!(
        (&policy["name"], &policy["apply-to"], &policy["priority"]),
        (&json!("ttl"), &json!("queues"), &json!(1))
    );

    let second = TestBroker::start().await;
    assert_eq!(
        post(&second, "/api/definitions", exported.clone()).await.0,
        StatusCode::NO_CONTENT
    );
    assert_orders_work(&second).await;
}

#[tokio::test]
async fn one_vhosts_definitions_export_and_import_without_vhost_fields() {
    let broker = TestBroker::start().await;
    post(&broker, "/api/definitions", fixture()).await;
    let (status, of_orders) = get(&broker, "/api/definitions/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(of_orders.get("users").is_none());
    assert!(of_orders["queues"][0].get("vhost").is_none());
    put(&broker, "/api/vhosts/copy", json!({})).await;
    assert_eq!(
        post(&broker, "/api/definitions/copy", of_orders).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, queues) = get(&broker, "/api/queues/copy").await;
    assert_eq!(names(&queues), ["orders.dead", "orders.new", "ttl.events"]);
    let (_, q) = get(&broker, "/api/queues/copy/ttl.events").await;
    assert_eq!(q["policy"], "ttl");
}

#[tokio::test]
async fn bad_definitions_are_refused_with_rabbitmqs_reasons() {
    let broker = TestBroker::start().await;
    let not_json = reqwest::Client::new()
        .post(broker.api("/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        not_json.json::<Value>().await.unwrap(),
        json!({"error": "bad_request", "reason": "failed_to_parse_json"})
    );
    let missing_vhost = json!({"queues": [{"name": "qx", "vhost": "nov", "durable": true,
                                           "auto_delete": false, "arguments": {}}]});
    assert_eq!(
        post(&broker, "/api/definitions", missing_vhost).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["no_such_vhost", "nov"]})
        )
    );
    assert_eq!(
        get(&broker, "/api/definitions/nov").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "vhost_not_found"})
        )
    );
    assert_eq!(
        post(&broker, "/api/definitions", json!({})).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn definitions_load_at_boot_and_what_the_api_changed_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("definitions.json");
    std::fs::write(&path, FIXTURE).unwrap();
    let data = tempfile::tempdir().unwrap();
    let broker =
        TestBroker::start_in_with(data.path(), |c| c.load_definitions = Some(path.clone())).await;
    assert_orders_work(&broker).await;
    // Changed through the API after the boot: on disk before the answer.
    assert_eq!(
        put(
            &broker,
            "/api/queues/orders/orders.audit",
            json!({"durable": true})
        )
        .await,
        StatusCode::CREATED
    );
    drop(broker);
    let broker = TestBroker::start_in(data.path()).await;
    let (_, queues) = get(&broker, "/api/queues/orders").await;
    assert_eq!(
        names(&queues),
        ["orders.audit", "orders.dead", "orders.new", "ttl.events"]
    );
}
