//! Exchanges, queues, bindings and messages through the management API, held to RabbitMQ
//! 3.10.8's replies (observed on this machine): PUT 201 then 204, its defaults, its error
//! bodies, and what the API creates is what AMQP clients then use.

mod common;

use common::api::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn exchanges_are_declared_shown_and_deleted_with_rabbitmqs_answers() {
    let broker = TestBroker::start().await;
    let x = "/api/exchanges/%2F/x2";
    assert_eq!(
        put(&broker, x, json!({"type": "direct", "durable": true})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&broker, x, json!({"type": "direct", "durable": true})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put_answer(&broker, x, json!({"type": "fanout", "durable": true})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "inequivalent arg 'type' for exchange 'x2' in vhost '/': received 'fanout' but current is 'direct'"})
        )
    );
    assert_eq!(
        put_answer(&broker, "/api/exchanges/%2F/x3", json!({"type": "bogus"})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "unknown exchange type 'bogus'"})
        )
    );
    let refused = json!({"error": "not_authorised", "reason": "Access refused."});
    assert_eq!(
        put_answer(&broker, "/api/exchanges/%2F/amq.foo", json!({})).await,
        (StatusCode::UNAUTHORIZED, refused.clone())
    );
    assert_eq!(
        put_answer(&broker, "/api/exchanges/nov/x7", json!({})).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    // RabbitMQ's defaults for a PUT without a body: a transient direct exchange.
    assert_eq!(
        put(&broker, "/api/exchanges/%2F/x4", json!({})).await,
        StatusCode::CREATED
    );
    let (status, mut shown) = get(&broker, "/api/exchanges/%2F/x4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["message_stats"]["publish_in"], 0);
    for key in ["message_stats", "incoming", "outgoing"] {
        shown.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(
        shown,
        json!({"name": "x4", "vhost": "/", "type": "direct", "durable": false,
               "auto_delete": false, "internal": false, "arguments": {}})
    );
    let (_, default) = get(&broker, "/api/exchanges/%2F/amq.default").await;
    assert_eq!(default["name"], "");
    let (_, all) = get(&broker, "/api/exchanges/%2F").await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.rabbitmq.event",
            "amq.rabbitmq.trace",
            "amq.topic",
            "x2",
            "x4"
        ]
    );
    assert_eq!(
        get(&broker, "/api/exchanges/%2F/nope").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    assert_eq!(
        delete(&broker, "/api/exchanges/%2F/amq.direct").await,
        (StatusCode::UNAUTHORIZED, refused)
    );
    // In use: a binding from x2 makes if-unused refuse.
    let (status, _) = post(
        &broker,
        "/api/bindings/%2F/e/x2/e/x4",
        json!({"routing_key": "k"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        delete(&broker, "/api/exchanges/%2F/x2?if-unused=true").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "exchange 'x2' in vhost '/' in use"})
        )
    );
    assert_eq!(
        delete(&broker, "/api/exchanges/%2F/x2").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&broker, "/api/exchanges/%2F/x2").await.0,
        StatusCode::NOT_FOUND
    );
    // Gone for AMQP clients too.
    let (_conn, ch) = broker.channel().await;
    let passive = ch
        .exchange_declare(
            "x2".into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    assert_eq!(reply_code(&passive.unwrap_err()), Some(404));
}

#[tokio::test]
async fn queues_are_declared_with_arguments_and_shown_with_their_counts() {
    let broker = TestBroker::start().await;
    let q = "/api/queues/%2F/q2";
    let body = json!({"durable": true, "arguments": {"x-max-length": 5}});
    assert_eq!(put(&broker, q, body.clone()).await, StatusCode::CREATED);
    assert_eq!(put(&broker, q, body).await, StatusCode::NO_CONTENT);
    assert_eq!(
        put_answer(&broker, q, json!({"durable": false})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "inequivalent arg 'durable' for queue 'q2' in vhost '/': received 'false' but current is 'true'"})
        )
    );
    assert_eq!(
        put_answer(
            &broker,
            q,
            json!({"durable": true, "arguments": {"x-max-length": 6}})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "inequivalent arg 'x-max-length' for queue 'q2' in vhost '/': received '6' but current is '5'"})
        )
    );
    assert_eq!(
        put_answer(
            &broker,
            "/api/queues/%2F/q3",
            json!({"arguments": {"x-max-length": "abc"}})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "invalid arg 'x-max-length' for queue 'q3' in vhost '/': \"expected integer, got longstr\""})
        )
    );
    assert_eq!(
        put_answer(&broker, "/api/queues/%2F/amq.q", json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put_answer(&broker, "/api/queues/%2F/q9", json!("not an object")).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "not_json"})
        )
    );

    // Six messages over AMQP into a queue of at most five.
    let (_conn, ch) = broker.channel().await;
    for i in 0..6 {
        publish(&ch, "", "q2", format!("m{i}").as_bytes()).await;
    }
    let (_, shown) = within("the queue shows its messages", async {
        loop {
            let (status, shown) = get(&broker, q).await;
            if shown["messages"] == 5 {
                return (status, shown);
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(shown["name"], "q2");
    assert_eq!(shown["vhost"], "/");
    assert_eq!(shown["durable"], true);
    assert_eq!(shown["type"], "classic");
    assert_eq!(shown["state"], "running");
    assert_eq!(shown["arguments"], json!({"x-max-length": 5}));
    assert_eq!(shown["messages_ready"], 5);
    assert_eq!(shown["messages_unacknowledged"], 0);
    assert_eq!(shown["message_bytes"], 10);
    assert_eq!(shown["consumers"], 0);
    assert_eq!(shown["consumer_details"], json!([]));
    assert!(shown["idle_since"].as_str().unwrap().ends_with("+00:00"));

    assert_eq!(
        delete(&broker, "/api/queues/%2F/q2?if-empty=true").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "queue 'q2' in vhost '/' not empty"})
        )
    );
    assert_eq!(
        delete(&broker, "/api/queues/%2F/q2/contents").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(queue_counts(&ch, "q2").await, (0, 0));
    assert_eq!(
        delete(&broker, "/api/queues/%2F/q2?if-empty=true").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&broker, "/api/queues/%2F/q2").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
}

#[tokio::test]
async fn deleting_a_queue_through_the_api_cancels_its_consumers() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "watched").await;
    let mut consumer = ch
        .basic_consume(
            "watched".into(),
            "c1".into(),
            Default::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let (_, shown) = get(&broker, "/api/queues/%2F/watched").await;
    assert_eq!(shown["consumers"], 1);
    assert_eq!(shown["consumer_details"][0]["consumer_tag"], "c1");
    assert_eq!(
        delete(&broker, "/api/queues/%2F/watched").await.0,
        StatusCode::NO_CONTENT
    );
    use futures_lite::StreamExt;
    let end = within("the consumer is cancelled", consumer.next()).await;
    assert!(end.is_none(), "the consumer stream ends: {end:?}");
}

#[tokio::test]
async fn messages_are_published_and_got_through_the_api() {
    let broker = TestBroker::start().await;
    assert_eq!(
        put(&broker, "/api/queues/%2F/q1", json!({"durable": true})).await,
        StatusCode::CREATED
    );
    let publish_to = "/api/exchanges/%2F/amq.default/publish";
    let message = |payload: &str, encoding: &str, properties: Value| {
        json!({"routing_key": "q1", "payload": payload, "payload_encoding": encoding,
               "properties": properties})
    };
    for body in [
        message("hello world", "string", json!({})),
        message("AAEC/w==", "base64", json!({})),
        message(
            "persistent msg",
            "string",
            json!({"delivery_mode": 2, "headers": {"h": 1}}),
        ),
    ] {
        assert_eq!(
            post(&broker, publish_to, body).await,
            (StatusCode::OK, json!({"routed": true}))
        );
    }
    assert_eq!(
        post(
            &broker,
            publish_to,
            json!({"routing_key": "nope", "payload": "x", "payload_encoding": "string", "properties": {}})
        )
        .await,
        (StatusCode::OK, json!({"routed": false}))
    );
    assert_eq!(
        post(&broker, publish_to, json!({})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,routing_key},\n {key_missing,properties},\n {key_missing,payload},\n {key_missing,payload_encoding}]"})
        )
    );
    assert_eq!(
        post(&broker, publish_to, message("x", "bogus", json!({}))).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["unsupported_encoding", "bogus"]})
        )
    );
    assert_eq!(
        post(
            &broker,
            "/api/exchanges/%2F/nope/publish",
            message("x", "string", json!({}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'nope' in vhost '/'"})
        )
    );
    assert_eq!(
        post(
            &broker,
            publish_to,
            message("x", "string", json!({"user_id": "alice"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "406 PRECONDITION_FAILED - user_id property set to 'alice' but authenticated user was 'guest'"})
        )
    );

    // An internal exchange refuses the publish as a channel would: 400 with the 403 inside.
    assert_eq!(
        post(
            &broker,
            "/api/exchanges/%2F/amq.rabbitmq.trace/publish",
            message("x", "string", json!({}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "403 ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.trace' in vhost '/'"})
        )
    );

    let get_from = "/api/queues/%2F/q1/get";
    let (status, got) = post(
        &broker,
        get_from,
        json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got,
        json!([
            {"payload_bytes": 11, "redelivered": false, "exchange": "", "routing_key": "q1",
             "message_count": 2, "properties": [], "payload": "hello world",
             "payload_encoding": "string"},
            {"payload_bytes": 4, "redelivered": false, "exchange": "", "routing_key": "q1",
             "message_count": 1, "properties": [], "payload": "AAEC/w==",
             "payload_encoding": "base64"}
        ])
    );
    // Requeued: the same messages again, now redelivered, and the third.
    let (_, got) = post(
        &broker,
        get_from,
        json!({"count": 3, "ackmode": "ack_requeue_true", "encoding": "base64", "truncate": 5}),
    )
    .await;
    assert_eq!(got[0]["redelivered"], true);
    assert_eq!(got[0]["payload"], "aGVsbG8=");
    assert_eq!(got[0]["payload_bytes"], 11);
    assert_eq!(
        got[2]["properties"],
        json!({"delivery_mode": 2, "headers": {"h": 1}})
    );
    assert_eq!(
        post(&broker, get_from, json!({"count": 1})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,ackmode},{key_missing,encoding}]"})
        )
    );
    assert_eq!(
        post(
            &broker,
            get_from,
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "bogus"})
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."})
        )
    );
    // Acked: gone for good.
    let (_, got) = post(
        &broker,
        get_from,
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert_eq!(got[0]["payload"], "hello world");
    let (_conn, ch) = broker.channel().await;
    assert_eq!(queue_counts(&ch, "q1").await, (2, 0));
    assert_eq!(
        post(
            &broker,
            "/api/queues/%2F/nope/get",
            json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "NOT_FOUND - no queue 'nope' in vhost '/'"})
        )
    );
}

#[tokio::test]
async fn bindings_are_created_listed_addressed_and_deleted() {
    let broker = TestBroker::start().await;
    put(&broker, "/api/exchanges/%2F/x1", json!({"type": "topic"})).await;
    put(&broker, "/api/queues/%2F/q1", json!({})).await;
    let between = "/api/bindings/%2F/e/x1/q/q1";
    let response = send(
        &broker,
        Method::POST,
        between,
        GUEST,
        Some(json!({"routing_key": "a/b c", "arguments": {}})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "q1/a%252Fb%2Bc");
    let (status, _) = post(&broker, between, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post(
        &broker,
        between,
        json!({"routing_key": "k", "arguments": {"x": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, listed) = get(&broker, between).await;
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["properties_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.contains(&"~") && keys.contains(&"a%2Fb+c"), "{keys:?}");
    let with_args = keys.iter().find(|k| k.starts_with("k~")).unwrap();
    let (status, one) = get(&broker, &format!("{between}/{with_args}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one,
        json!({"source": "x1", "vhost": "/", "destination": "q1", "destination_type": "queue",
               "routing_key": "k", "arguments": {"x": 1}, "properties_key": with_args})
    );

    // The default exchange's implicit binding comes first in the queue's list.
    let (_, of_queue) = get(&broker, "/api/queues/%2F/q1/bindings").await;
    assert_eq!(of_queue[0]["source"], "");
    assert_eq!(of_queue[0]["routing_key"], "q1");
    assert_eq!(of_queue.as_array().unwrap().len(), 4);

    // The binding routes over AMQP.
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "x1", "k", b"routed").await;
    assert_eq!(queue_counts(&ch, "q1").await.0, 1);

    assert_eq!(
        delete(&broker, &format!("{between}/{with_args}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&broker, &format!("{between}/{with_args}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&broker, "/api/bindings/%2F/e/x1/q/nope", json!({})).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "no queue 'nope' in vhost '/'"})
        )
    );
    assert_eq!(
        post(&broker, "/api/bindings/%2F/e/amq.default/q/q1", json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (_, source) = get(&broker, "/api/exchanges/%2F/x1/bindings/source").await;
    assert_eq!(source.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn lists_page_sort_filter_and_prune_as_rabbitmq_does() {
    let broker = TestBroker::start().await;
    for name in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        put(&broker, &format!("/api/queues/%2F/{name}"), json!({})).await;
    }
    let (status, page) = get(&broker, "/api/queues?page=2&page_size=2&columns=name").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page,
        json!({"filtered_count": 5, "item_count": 2,
               "items": [{"name": "delta"}, {"name": "epsilon"}],
               "page": 2, "page_count": 3, "page_size": 2, "total_count": 5})
    );
    let (_, found) = get(
        &broker,
        "/api/queues/%2F?name=^.E&use_regex=true&columns=name&sort=name&sort_reverse=true",
    )
    .await;
    assert_eq!(found, json!([{"name": "delta"}, {"name": "beta"}]));
    let (_, vhosts) = get(&broker, "/api/vhosts?page=1&page_size=1&columns=name").await;
    assert_eq!(vhosts["items"], json!([{"name": "/"}]));
    let (_, users) = get(&broker, "/api/users?name=gue&columns=name").await;
    assert_eq!(users, json!([{"name": "guest"}]));
    let (_, found) = get(&broker, "/api/queues?name=[&use_regex=true").await;
    assert_eq!(found, json!([]));
    let (_, found) = get(&broker, "/api/queues?name=LTA&columns=name").await;
    assert_eq!(found, json!([{"name": "delta"}]));
    assert_eq!(
        get(&broker, "/api/queues?page=4&page_size=2").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "page_out_of_range", "reason": "Page out of range, page: 4 page size: 2, len: 5"})
        )
    );
    assert_eq!(
        get(&broker, "/api/queues?page=1&page_size=501").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_pagination_parameters", "reason": "Invalid pagination parameters: page number 1, page size 501"})
        )
    );
}

#[tokio::test]
async fn ten_thousand_queues_list_in_pages() {
    let broker = TestBroker::start().await;
    let vhost = broker.server.broker.vhost("/").unwrap();
    for i in 0..10_000 {
        vhost
            .declare_queue(
                warren::broker::vhost::QueueSpec {
                    name: format!("q{i:05}"),
                    ..Default::default()
                },
                0,
                "guest",
            )
            .unwrap();
    }
    let (status, page) = get(
        &broker,
        "/api/queues?page=3&page_size=500&name=q0&columns=name",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total_count"], 10_000);
    assert_eq!(page["filtered_count"], 10_000);
    assert_eq!(page["items"][0]["name"], "q01000");
}

#[tokio::test]
async fn an_exchange_shows_the_policy_that_applies_to_it() {
    let broker = TestBroker::start().await;
    assert_eq!(
        put(
            &broker,
            "/api/exchanges/%2F/routed",
            json!({"type": "direct"})
        )
        .await,
        StatusCode::CREATED
    );
    let policy = json!({"pattern": "^routed$", "definition": {"alternate-exchange": "amq.fanout"}, "apply-to": "exchanges"});
    assert_eq!(
        put(&broker, "/api/policies/%2F/ae", policy).await,
        StatusCode::CREATED
    );
    let (_, x) = get(&broker, "/api/exchanges/%2F/routed").await;
    assert_eq!(x["policy"], "ae");
    let (_, all) = get(&broker, "/api/exchanges/%2F").await;
    let listed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "routed")
        .unwrap();
    assert_eq!(listed["policy"], "ae");
    let (_, direct) = get(&broker, "/api/exchanges/%2F/amq.direct").await;
    assert!(direct.get("policy").is_none(), "{direct}");
}
