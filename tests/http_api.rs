//! The management HTTP API as rabbitmqadmin and scripts use it, held to RabbitMQ 3.10.8's
//! replies (observed on this machine): Basic authentication and the management tags, whoami,
//! overview, vhosts, users and permissions, with RabbitMQ's status codes and error bodies.

mod common;

use common::api::*;
use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn credentials_and_management_tags_open_the_api() {
    let broker = TestBroker::start().await;
    assert_eq!(
        get(&broker, "/api/whoami").await,
        (
            StatusCode::OK,
            json!({"name": "guest", "tags": ["administrator"]})
        )
    );
    let response = Client::new()
        .get(broker.api("/api/whoami"))
        .basic_auth("guest", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"RabbitMQ Management\""
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "not_authorized", "reason": "Login failed"})
    );
    let anonymous = Client::new()
        .get(broker.api("/api/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        put(&broker, "/api/users/plain", json!({"password": "pw"})).await,
        StatusCode::CREATED
    );
    let (status, body) = call(
        &broker,
        reqwest::Method::GET,
        "/api/whoami",
        ("plain", "pw"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "Not management user"})
    );

    let tags = json!({"password": "pw", "tags": "management"});
    assert_eq!(
        put(&broker, "/api/users/viewer", tags).await,
        StatusCode::CREATED
    );
    let viewer = ("viewer", "pw");
    let (status, body) = call(&broker, reqwest::Method::GET, "/api/users", viewer, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Not administrator user");
    let (status, body) = call(&broker, reqwest::Method::GET, "/api/vhosts", viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([]),
        "a management user sees only vhosts it may use"
    );
}

#[tokio::test]
async fn vhosts_are_created_updated_listed_and_deleted() {
    let broker = TestBroker::start().await;
    let body = json!({"description": "orders", "tags": "prod,eu"});
    assert_eq!(
        put(&broker, "/api/vhosts/shop", body).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(
            &broker,
            "/api/vhosts/shop",
            json!({"description": "orders v2"})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let (status, shop) = get(&broker, "/api/vhosts/shop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["description"], "orders v2");
    assert_eq!(shop["tags"], json!(["prod", "eu"]));
    assert_eq!(shop["default_queue_type"], "undefined");
    let (_, root) = get(&broker, "/api/vhosts/%2F").await;
    assert_eq!(root["description"], "Default virtual host");
    let (_, all) = get(&broker, "/api/vhosts").await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // The creator may use it at once, as RabbitMQ grants it.
    let (status, permissions) = get(&broker, "/api/vhosts/shop/permissions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(permissions[0]["user"], "guest");
    let uri = format!("amqp://guest:guest@{}/shop", broker.addr());
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .expect("guest connects to the new vhost");

    assert_eq!(
        delete(&broker, "/api/vhosts/shop").await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = delete(&broker, "/api/vhosts/shop").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(
        get(&broker, "/api/vhosts/shop").await.0,
        StatusCode::NOT_FOUND
    );
    let mut events = Box::pin(conn.events_listener());
    use futures_lite::StreamExt;
    let closed = within("the vhost's connection to close", async {
        loop {
            if let Some(lapin::Event::Error(e)) = events.next().await {
                return e;
            }
        }
    })
    .await;
    assert_eq!(reply_code(&closed), Some(320));
}

#[tokio::test]
async fn users_and_permissions_are_managed_and_used_over_amqp() {
    let broker = TestBroker::start().await;
    // A user as a RabbitMQ export carries it: password "s3cret".
    let exported = json!({
        "password_hash": "UclMGAgN/EqdnV+52Wf4tgHfIMT13OQBfesk052nENbC4D8r",
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": ["monitoring"]
    });
    assert_eq!(
        put(&broker, "/api/users/alice", exported).await,
        StatusCode::CREATED
    );
    let (status, alice) = get(&broker, "/api/users/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alice["tags"], json!(["monitoring"]));
    assert_eq!(alice["hashing_algorithm"], "rabbit_password_hashing_sha256");

    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(
        put(&broker, "/api/permissions/%2F/alice", all.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&broker, "/api/permissions/%2F/alice", all).await,
        StatusCode::NO_CONTENT
    );
    let (_, p) = get(&broker, "/api/permissions/%2F/alice").await;
    assert_eq!(p["vhost"], "/");
    assert_eq!(p["configure"], ".*");
    let uri = format!("amqp://alice:s3cret@{}/%2f", broker.addr());
    lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .expect("alice logs in with her old password");

    // A PUT without a password clears an existing user's, as in RabbitMQ.
    let alice_api = ("alice", "s3cret");
    let retag = json!({"tags": "monitoring"});
    assert_eq!(
        call(
            &broker,
            reqwest::Method::GET,
            "/api/whoami",
            alice_api,
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        put(&broker, "/api/users/alice", retag).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/users/alice").await.1["password_hash"],
        ""
    );
    assert_eq!(
        call(
            &broker,
            reqwest::Method::GET,
            "/api/whoami",
            alice_api,
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    let bad = call(
        &broker,
        reqwest::Method::PUT,
        "/api/permissions/%2F/nobody",
        GUEST,
        Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    let not_json = Client::new()
        .put(broker.api("/api/permissions/%2F/alice"))
        .basic_auth("guest", Some("guest"))
        .body("{bad")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        not_json.json::<Value>().await.unwrap(),
        json!({"error": "bad_request", "reason": "not_json"})
    );

    assert_eq!(
        delete(&broker, "/api/permissions/%2F/alice").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&broker, "/api/permissions/%2F/alice").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&broker, "/api/users/alice").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/users/alice").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_overview_names_warren_and_counts_what_it_holds() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    declare_queue(&ch, "counted").await;
    publish(&ch, "", "counted", b"one").await;
    assert_eq!(queue_counts(&ch, "counted").await.0, 1);
    let (status, overview) = get(&broker, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["product_name"], "Warren");
    assert_eq!(overview["rabbitmq_version"], "3.10.8");
    assert_eq!(overview["object_totals"]["queues"], 1);
    assert_eq!(overview["object_totals"]["connections"], 1);
    assert_eq!(overview["queue_totals"]["messages_ready"], 1);
    assert!(overview["node"].as_str().unwrap().starts_with("warren@"));
}

#[tokio::test]
async fn policies_are_set_validated_applied_and_cleared() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    declare_queue(&ch, "capped").await;
    for _ in 0..5 {
        publish(&ch, "", "capped", b"m").await;
    }
    assert_eq!(queue_counts(&ch, "capped").await.0, 5);
    let body = json!({"pattern": "^capped$", "definition": {"max-length": 2},
                      "priority": 1, "apply-to": "queues"});
    assert_eq!(
        put(&broker, "/api/policies/%2F/cap", body).await,
        StatusCode::CREATED
    );
    assert_eq!(queue_counts(&ch, "capped").await.0, 2, "applied at once");
    let replaced = json!({"pattern": "^capped$", "definition": {"max-length": 3}});
    assert_eq!(
        put(&broker, "/api/policies/%2F/cap", replaced).await,
        StatusCode::NO_CONTENT
    );
    let (status, shown) = get(&broker, "/api/policies/%2F/cap").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown,
        json!({"vhost": "/", "name": "cap", "pattern": "^capped$", "apply-to": "all",
               "definition": {"max-length": 3}, "priority": 0})
    );
    let (_, all) = get(&broker, "/api/policies").await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    let bogus = json!({"pattern": "^a", "definition": {"bogus": 1}});
    let (status, body) = call(
        &broker,
        reqwest::Method::PUT,
        "/api/policies/%2F/bad",
        GUEST,
        Some(bogus),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "bad_request", "reason":
            "Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;&gt;,1}] are not recognised policy settings\n"})
    );
    let elsewhere = json!({"pattern": "^a", "definition": {"max-length": 1}});
    let (status, body) = call(
        &broker,
        reqwest::Method::PUT,
        "/api/policies/nope/p",
        GUEST,
        Some(elsewhere),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );

    let operator = json!({"pattern": "^capped$", "definition": {"max-length": 1}});
    assert_eq!(
        put(&broker, "/api/operator-policies/%2F/op", operator).await,
        StatusCode::CREATED
    );
    assert_eq!(
        queue_counts(&ch, "capped").await.0,
        1,
        "the lower limit wins"
    );

    assert_eq!(
        delete(&broker, "/api/policies/%2F/cap").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&broker, "/api/policies/%2F/cap").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&broker, "/api/operator-policies/%2F/op").await.0,
        StatusCode::NO_CONTENT
    );
}
