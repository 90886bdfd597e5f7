//! Topic permissions, limits, parameters, the node, health checks and bulk user deletion
//! through the management API, held to RabbitMQ 3.10.8's replies (observed on this machine).

mod common;

use common::api::*;
use common::provoke::{channel_error, Via};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn topic_permissions_are_set_listed_and_enforced() {
    let broker = TestBroker::start().await;
    let path = "/api/topic-permissions/%2F/guest";
    let body = json!({"exchange": "amq.topic", "write": "^a", "read": ".*"});
    assert_eq!(put(&broker, path, body.clone()).await, StatusCode::CREATED);
    assert_eq!(put(&broker, path, body).await, StatusCode::NO_CONTENT);
    let expected = json!([{"user": "guest", "vhost": "/", "exchange": "amq.topic",
                           "write": "^a", "read": ".*"}]);
    assert_eq!(get(&broker, path).await, (StatusCode::OK, expected.clone()));
    assert_eq!(get(&broker, "/api/topic-permissions").await.1, expected);
    assert_eq!(
        get(&broker, "/api/users/guest/topic-permissions").await.1,
        expected
    );
    assert_eq!(
        put_answer(&broker, path, json!({"write": ".*", "read": ".*"})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,exchange}]"})
        )
    );
    assert_eq!(
        put_answer(
            &broker,
            "/api/topic-permissions/%2F/nope",
            json!({"exchange": "x", "write": "", "read": ""})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
        )
    );

    // Enforced over AMQP: publishing with a key the write pattern refuses is 403.
    let conn = broker.connect().await;
    let text = "ACCESS_REFUSED - access to topic 'b.key' in exchange 'amq.topic' in vhost '/' \
                refused for user 'guest'";
    channel_error(&conn, Via::Event, 403, text, |ch| async move {
        publish(&ch, "amq.topic", "b.key", b"x").await;
        Ok(())
    })
    .await;

    assert_eq!(delete(&broker, path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        delete(&broker, path).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
}

#[tokio::test]
async fn vhost_and_user_limits_are_set_with_rabbitmqs_validation() {
    let broker = TestBroker::start().await;
    put(&broker, "/api/vhosts/v1", json!({})).await;
    let path = "/api/vhost-limits/v1/max-queues";
    assert_eq!(
        put(&broker, path, json!({"value": 5})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put(&broker, path, json!({"value": 1})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/vhost-limits/v1").await.1,
        json!([{"vhost": "v1", "value": {"max-queues": 1}}])
    );
    assert_eq!(
        get(&broker, "/api/vhost-limits").await.1,
        json!([{"vhost": "v1", "value": {"max-queues": 1}}])
    );
    assert_eq!(
        get(&broker, "/api/parameters").await.1,
        json!([{"value": {"max-queues": 1}, "vhost": "v1", "component": "vhost-limits", "name": "limits"}])
    );
    assert_eq!(
        put_answer(&broker, path, json!({"value": "x"})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>\n"})
        )
    );
    assert_eq!(
        put_answer(&broker, "/api/vhost-limits/v1/bogus", json!({"value": 5})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "Validation failed\n\nUnrecognised terms [{<<\"bogus\">>,5}] in limits\n"})
        )
    );
    assert_eq!(
        put_answer(
            &broker,
            "/api/vhost-limits/nov/max-queues",
            json!({"value": 5})
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    // The limit holds: a second queue in v1 is refused.
    assert_eq!(
        put(&broker, "/api/queues/v1/one", json!({})).await,
        StatusCode::CREATED
    );
    let (status, body) = put_answer(&broker, "/api/queues/v1/two", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["reason"],
        "cannot declare queue 'two': queue limit in vhost 'v1' (1) is reached"
    );
    assert_eq!(delete(&broker, path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(delete(&broker, path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(get(&broker, "/api/vhost-limits/v1").await.1, json!([]));

    let user_path = "/api/user-limits/guest/max-connections";
    assert_eq!(
        put(&broker, user_path, json!({"value": 3})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/user-limits/guest").await.1,
        json!([{"user": "guest", "value": {"max-connections": 3}}])
    );
    assert_eq!(
        put_answer(
            &broker,
            "/api/user-limits/nope/max-connections",
            json!({"value": 3})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["no_such_user", "nope"]})
        )
    );
    assert_eq!(
        put_answer(&broker, user_path, json!({"value": "x"}))
            .await
            .1["reason"],
        "max-connections should be a number, actually was <<\"x\">>"
    );
    assert_eq!(delete(&broker, user_path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(get(&broker, "/api/user-limits").await.1, json!([]));
}

#[tokio::test]
async fn parameters_and_the_cluster_name_are_kept() {
    let broker = TestBroker::start().await;
    let path = "/api/global-parameters/foo";
    assert_eq!(
        put(&broker, path, json!({"value": {"a": 1}})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&broker, path, json!({"value": {"a": 2}})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, path).await,
        (StatusCode::OK, json!({"value": {"a": 2}, "name": "foo"}))
    );
    assert_eq!(
        put_answer(&broker, path, json!({"a": 1})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,value}]"})
        )
    );
    assert_eq!(delete(&broker, path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(delete(&broker, path).await.0, StatusCode::NOT_FOUND);

    let upstream = "/api/parameters/federation-upstream/%2F/up1";
    assert_eq!(
        put(&broker, upstream, json!({"value": {"uri": "amqp://"}})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        get(&broker, "/api/parameters/federation-upstream").await.1,
        json!([{"value": {"uri": "amqp://"}, "vhost": "/", "component": "federation-upstream", "name": "up1"}])
    );
    assert_eq!(delete(&broker, upstream).await.0, StatusCode::NO_CONTENT);
    assert_eq!(get(&broker, upstream).await.0, StatusCode::NOT_FOUND);

    let node = broker.server.broker.node_name().to_owned();
    assert_eq!(
        get(&broker, "/api/cluster-name").await.1,
        json!({"name": node})
    );
    assert_eq!(
        put(&broker, "/api/cluster-name", json!({"name": "my-cluster"})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/cluster-name").await.1,
        json!({"name": "my-cluster"})
    );
    assert_eq!(
        get(&broker, "/api/overview").await.1["cluster_name"],
        "my-cluster"
    );
}

#[tokio::test]
async fn the_node_and_health_checks_answer_as_rabbitmq() {
    let broker = TestBroker::start().await;
    let (status, nodes) = get(&broker, "/api/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let node = &nodes[0];
    let name = node["name"].as_str().unwrap();
    assert!(name.starts_with("warren@"), "{name}");
    assert_eq!(node["running"], true);
    assert_eq!(node["being_drained"], false);
    assert!(node["mem_used"].as_u64().unwrap() > 0);
    assert_eq!(
        get(&broker, &format!("/api/nodes/{name}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&broker, "/api/nodes/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let ok = (StatusCode::OK, json!({"status": "ok"}));
    for check in [
        "alarms",
        "local-alarms",
        "virtual-hosts",
        "ready-to-serve-clients",
    ] {
        assert_eq!(
            get(&broker, &format!("/api/health/checks/{check}")).await,
            ok,
            "{check}"
        );
    }
    let port = broker.addr().port();
    assert_eq!(
        get(&broker, &format!("/api/health/checks/port-listener/{port}")).await,
        (StatusCode::OK, json!({"status": "ok", "port": port}))
    );
    let (status, failed) = get(&broker, "/api/health/checks/port-listener/1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed["reason"], "No active listener");
    assert_eq!(
        get(&broker, "/api/health/checks/port-listener/abc").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "Invalid port"})
        )
    );
    assert_eq!(
        get(&broker, "/api/health/checks/protocol-listener/amqp").await,
        (StatusCode::OK, json!({"status": "ok", "protocol": "amqp"}))
    );
    assert_eq!(
        get(&broker, "/api/health/checks/protocol-listener/amqps")
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&broker, "/api/health/checks/node-is-quorum-critical").await,
        (
            StatusCode::OK,
            json!({"status": "ok", "reason": "single node cluster"})
        )
    );
    assert_eq!(get(&broker, "/api/aliveness-test/%2F").await, ok);
    assert_eq!(
        get(&broker, "/api/aliveness-test/nov").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn users_are_deleted_in_bulk_even_when_one_is_missing() {
    let broker = TestBroker::start().await;
    for name in ["alice", "bob"] {
        put(
            &broker,
            &format!("/api/users/{name}"),
            json!({"password": "pw", "tags": ""}),
        )
        .await;
    }
    assert_eq!(
        post(
            &broker,
            "/api/users/bulk-delete",
            json!({"users": ["alice", "nope"]})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["no_such_user", "nope"]})
        )
    );
    assert_eq!(
        get(&broker, "/api/users/alice").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&broker, "/api/users/bulk-delete", json!({"users": ["bob"]}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, "/api/users/bob").await.0,
        StatusCode::NOT_FOUND
    );
}
