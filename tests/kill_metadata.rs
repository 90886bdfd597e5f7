//! Metadata durability against a crash: what the first start creates, and every change the
//! management API answered 2xx for, is on disk. The real binary is killed with SIGKILL right
//! after the answer and started again on the same directory.

mod common;

use common::process::*;
use common::*;
use lapin::Connection;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

async fn connect(uri: &str) -> Connection {
    within(
        "a connection",
        Connection::connect(uri, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connects")
}

async fn api(
    broker: &BrokerProcess,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Client::new()
        .request(method, format!("http://{}{path}", broker.http))
        .basic_auth("guest", Some("guest"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = within("the API's answer", request.send())
        .await
        .expect("answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The user and vhost the first start creates are on disk before the broker says it is ready:
/// killed at once, a second start with other defaults finds them and creates nothing.
#[tokio::test]
async fn the_first_starts_user_and_vhost_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let first = [
        ("WARREN_DEFAULT_USER", "admin"),
        ("WARREN_DEFAULT_PASS", "secret"),
        ("WARREN_DEFAULT_VHOST", "app"),
    ];
    BrokerProcess::start_with(dir.path(), &first).await.kill();
    let other = [
        ("WARREN_DEFAULT_USER", "other"),
        ("WARREN_DEFAULT_PASS", "other"),
        ("WARREN_DEFAULT_VHOST", "elsewhere"),
    ];
    let broker = BrokerProcess::start_with(dir.path(), &other).await;
    let admin = format!("amqp://admin:secret@{}/app", broker.addr);
    let conn = connect(&admin).await;
    conn.create_channel().await.expect("admin works in app");
    let uri = format!("amqp://other:other@{}/elsewhere", broker.addr);
    let refused = Connection::connect(&uri, lapin::ConnectionProperties::default()).await;
    assert!(refused.is_err(), "the second start created its defaults");
}

/// Every kind of change the API makes, killed right after the last answer: a restart has
/// them all, and the definitions read back are the same.
#[tokio::test]
async fn what_the_api_answered_for_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let changes: Vec<(Method, &str, Value)> = vec![
        (
            Method::PUT,
            "/api/vhosts/shop",
            json!({"description": "the shop", "tags": "a,b"}),
        ),
        (
            Method::PUT,
            "/api/users/clerk",
            json!({"password": "till", "tags": "management"}),
        ),
        (
            Method::PUT,
            "/api/permissions/shop/clerk",
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        ),
        (
            Method::PUT,
            "/api/topic-permissions/shop/clerk",
            json!({"exchange": "amq.topic", "write": "^sale", "read": ".*"}),
        ),
        (
            Method::PUT,
            "/api/vhost-limits/shop/max-queues",
            json!({"value": 50}),
        ),
        (
            Method::PUT,
            "/api/user-limits/clerk/max-channels",
            json!({"value": 7}),
        ),
        (
            Method::PUT,
            "/api/policies/shop/lazy",
            json!({"pattern": "^q", "definition": {"max-length": 9}}),
        ),
        (
            Method::PUT,
            "/api/global-parameters/cluster_name",
            json!({"value": "shop-cluster"}),
        ),
        (
            Method::PUT,
            "/api/parameters/shovel/shop/s1",
            json!({"value": {"src-uri": "amqp://"}}),
        ),
        (
            Method::PUT,
            "/api/exchanges/shop/sales",
            json!({"type": "topic", "durable": true}),
        ),
        (
            Method::PUT,
            "/api/queues/shop/q.sales",
            json!({"durable": true}),
        ),
        (
            Method::POST,
            "/api/bindings/shop/e/sales/q/q.sales",
            json!({"routing_key": "sale.#"}),
        ),
    ];
    for (method, path, body) in changes {
        let (status, answer) = api(&broker, method, path, Some(body)).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
    let (_, before) = api(&broker, Method::GET, "/api/definitions", None).await;
    broker.kill();

    let broker = BrokerProcess::start(dir.path()).await;
    let (_, after) = api(&broker, Method::GET, "/api/definitions", None).await;
    assert_eq!(before, after);
    assert_eq!(after["queues"][0]["name"], "q.sales");
    let conn = connect(&format!("amqp://clerk:till@{}/shop", broker.addr)).await;
    conn.create_channel()
        .await
        .expect("the clerk works in the shop");
    // A deletion is as durable as a creation.
    let (status, _) = api(&broker, Method::DELETE, "/api/queues/shop/q.sales", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    broker.kill();
    let broker = BrokerProcess::start(dir.path()).await;
    let (status, _) = api(&broker, Method::GET, "/api/queues/shop/q.sales", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
