//! Connections, channels and consumers through the management API, as RabbitMQ 3.10.8 shows
//! them (observed with pika on this machine): names `peer -> local` and `peer -> local (n)`,
//! the client's `connection_name`, and closing a connection with 320 and the `X-Reason` text.

mod common;

use common::api::*;
use common::*;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn named_connection(broker: &TestBroker, name: &str) -> Connection {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(&broker.uri(), properties)
        .await
        .expect("connects")
}

/// Path segments are percent-encoded; connection names hold spaces and `>`.
fn encoded(name: &str) -> String {
    name.replace(' ', "%20").replace('>', "%3E")
}

#[tokio::test]
async fn connections_channels_and_consumers_are_listed_and_closed() {
    let broker = TestBroker::start().await;
    let conn = named_connection(&broker, "ref-conn").await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_queue(&ch, "q2").await;
    let _consumer = ch
        .basic_consume(
            "q2".into(),
            "ref-ctag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (status, all) = get(&broker, "/api/connections").await;
    assert_eq!(status, StatusCode::OK);
    let c = &all[0];
    let name = c["name"].as_str().unwrap().to_owned();
    let port = c["peer_port"].as_u64().unwrap();
    assert_eq!(name, format!("127.0.0.1:{port} -> {}", broker.addr()));
    assert_eq!(c["user_provided_name"], "ref-conn");
    assert_eq!(c["client_properties"]["connection_name"], "ref-conn");
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["auth_mechanism"], "PLAIN");
    assert_eq!(c["protocol"], "AMQP 0-9-1");
    assert_eq!(c["channels"], 1);
    assert_eq!(c["port"], broker.addr().port());

    let (_, of_guest) = get(&broker, "/api/connections/username/guest").await;
    assert_eq!(of_guest[0]["name"], name.as_str());
    let (status, one) = get(&broker, &format!("/api/connections/{}", encoded(&name))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["name"], name.as_str());
    assert_eq!(
        get(&broker, "/api/connections/nope").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );

    let (_, channels) = get(
        &broker,
        &format!("/api/connections/{}/channels", encoded(&name)),
    )
    .await;
    let channel = &channels[0];
    assert_eq!(channel["name"], format!("{name} (1)"));
    assert_eq!(channel["number"], 1);
    assert_eq!(channel["prefetch_count"], 10);
    assert_eq!(channel["consumer_count"], 1);
    assert_eq!(channel["confirm"], true);
    assert_eq!(channel["connection_details"]["name"], name.as_str());
    let (_, all_channels) = get(&broker, "/api/vhosts/%2F/channels").await;
    assert_eq!(all_channels.as_array().unwrap().len(), 1);
    let (status, by_name) = get(&broker, &format!("/api/channels/{}%20(1)", encoded(&name))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_name["consumer_details"][0]["consumer_tag"], "ref-ctag");

    let (_, consumers) = get(&broker, "/api/consumers/%2F").await;
    assert_eq!(
        consumers,
        json!([{
            "arguments": {}, "ack_required": true, "active": true, "activity_status": "up",
            "channel_details": {"connection_name": name, "name": format!("{name} (1)"),
                                "node": one["node"], "number": 1, "peer_host": "127.0.0.1",
                                "peer_port": port, "user": "guest"},
            "consumer_tag": "ref-ctag", "consumer_timeout": 1_800_000, "exclusive": false, "prefetch_count": 10,
            "queue": {"name": "q2", "vhost": "/"}
        }])
    );

    // Closed by the operator, with the reason the client sees.
    let closing = closed_with(&conn);
    let response = Client::new()
        .request(
            Method::DELETE,
            broker.api(&format!("/api/connections/{}", encoded(&name))),
        )
        .basic_auth("guest", Some("guest"))
        .header("X-Reason", "bye")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let err = closing.await;
    assert_eq!(reply_code(&err), Some(320));
    assert_eq!(reply_text(&err).as_deref(), Some("CONNECTION_FORCED - bye"));
    within("the connection leaves the list", async {
        while get(&broker, "/api/connections").await.1 != json!([]) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn without_a_reason_the_close_names_the_management_api() {
    let broker = TestBroker::start().await;
    let conn = named_connection(&broker, "plain").await;
    let (_, all) = get(&broker, "/api/connections").await;
    let name = all[0]["name"].as_str().unwrap().to_owned();
    let closing = closed_with(&conn);
    assert_eq!(
        delete(&broker, &format!("/api/connections/{}", encoded(&name)))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        reply_text(&closing.await).as_deref(),
        Some("CONNECTION_FORCED - Closed via management plugin")
    );
}

use reqwest::Client;
