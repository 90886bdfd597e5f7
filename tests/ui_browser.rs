//! The management UI in a real browser (headless chromium over WebDriver, see
//! common::browser): logging in, the overview, a queue's life from declaration to deletion
//! with an exchange and a binding, a user who then connects over AMQP, and a connection closed
//! from the UI. Each test saves screenshots under target/ui-screenshots/.

mod common;

use common::api::*;
use common::browser::Browser;
use common::*;
use lapin::{Connection, ConnectionProperties};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// Waits until the management API reports what `ok` wants for `path` (what a client sees).
async fn api_until(
    broker: &TestBroker,
    path: &str,
    ok: impl Fn(StatusCode, &serde_json::Value) -> bool,
) {
    let started = Instant::now();
    loop {
        let (status, body) = get(broker, path).await;
        if ok(status, &body) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} never became what was expected: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn logging_in_shows_the_overview_and_a_wrong_password_is_refused() {
    let broker = TestBroker::start().await;
    let Some(browser) = Browser::open(&broker).await else {
        return;
    };
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "counted").await;

    browser.log_in("guest", "wrong").await;
    browser
        .text_where("form.login .error", |t| t == "Login failed")
        .await;
    browser.screenshot("login-refused").await;

    browser.log_in("guest", "guest").await;
    browser.text_where("#total-queues", |t| t == "1").await;
    browser.text_where("#whoami", |t| t == "guest").await;
    browser.find("#chart-queued canvas").await;
    browser.find("#chart-rates canvas").await;
    browser.screenshot("overview").await;
    browser.close().await;
}

#[tokio::test]
async fn a_queue_is_declared_bound_fed_read_purged_and_deleted_from_the_ui() {
    let broker = TestBroker::start().await;
    let Some(b) = Browser::open(&broker).await else {
        return;
    };
    b.log_in("guest", "guest").await;
    b.text_where("#whoami", |t| t == "guest").await;

    b.goto("#/queues").await;
    b.fill("#queue-name", "ui-q").await;
    b.click("#add-queue button[type=submit]").await;
    b.text_where("#add-queue .status", |t| t.contains("added"))
        .await;
    api_until(&broker, "/api/queues/%2F/ui-q", |s, q| {
        s == StatusCode::OK && q["durable"] == true
    })
    .await;
    b.text_where("#queues-table", |t| t.contains("ui-q")).await;
    // A quorum queue from the same form.
    b.find("#queue-type")
        .await
        .select_by_value("quorum")
        .await
        .expect("selects the quorum type");
    b.fill("#queue-name", "ui-qq").await;
    b.click("#add-queue button[type=submit]").await;
    api_until(&broker, "/api/queues/%2F/ui-qq", |s, q| {
        s == StatusCode::OK && q["type"] == "quorum" && q["durable"] == true
    })
    .await;
    b.text_where("#queues-table", |t| {
        t.contains("ui-qq") && t.contains("quorum")
    })
    .await;
    b.screenshot("queues").await;

    b.goto("#/exchanges").await;
    b.fill("#exchange-name", "ui-x").await;
    b.click("#add-exchange button[type=submit]").await;
    b.text_where("#add-exchange .status", |t| t.contains("added"))
        .await;
    b.goto("#/exchanges/%2F/ui-x").await;
    b.fill("#binding-destination", "ui-q").await;
    b.fill("#binding-key", "k").await;
    b.click("#add-binding button[type=submit]").await;
    api_until(
        &broker,
        "/api/exchanges/%2F/ui-x/bindings/source",
        |_, list| {
            list.as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["routing_key"] == "k")
        },
    )
    .await;
    b.fill("#publish-key", "k").await;
    b.fill("#publish-payload", "through the exchange").await;
    b.click("#publish-message button[type=submit]").await;
    b.text_where("#publish-message .status", |t| t.contains("published"))
        .await;
    b.screenshot("exchange").await;
    api_until(&broker, "/api/queues/%2F/ui-q", |_, q| q["messages"] == 1).await;

    b.goto("#/queues/%2F/ui-q").await;
    b.fill("#publish-payload", "straight to the queue").await;
    b.click("#publish-message button[type=submit]").await;
    b.text_where("#publish-message .status", |t| t.contains("published"))
        .await;
    api_until(&broker, "/api/queues/%2F/ui-q", |_, q| q["messages"] == 2).await;
    // The page shows the new count: Messages, Total.
    let total = "#queue-messages tbody tr:first-child td:nth-child(2)";
    b.text_where(total, |t| t == "2").await;
    b.fill("#get-count", "2").await;
    b.click("#get-messages button[type=submit]").await;
    let first = b
        .text_where("#get-results .get-payload", |t| !t.is_empty())
        .await;
    assert_eq!(first, "through the exchange");
    b.screenshot("queue").await;

    b.click("#purge-queue").await;
    b.accept_confirm().await;
    api_until(&broker, "/api/queues/%2F/ui-q", |_, q| q["messages"] == 0).await;
    b.text_where(total, |t| t == "0").await;
    b.click("#delete-queue").await;
    b.accept_confirm().await;
    api_until(&broker, "/api/queues/%2F/ui-q", |s, _| {
        s == StatusCode::NOT_FOUND
    })
    .await;
    b.text_where("h2", |t| t == "Queues").await;
    b.close().await;
}

#[tokio::test]
async fn a_user_and_vhost_made_in_the_ui_can_connect_over_amqp() {
    let broker = TestBroker::start().await;
    let Some(b) = Browser::open(&broker).await else {
        return;
    };
    b.log_in("guest", "guest").await;
    b.text_where("#whoami", |t| t == "guest").await;

    b.goto("#/admin/vhosts").await;
    b.fill("#vhost-name", "ui-vhost").await;
    b.click("#add-vhost button[type=submit]").await;
    api_until(&broker, "/api/vhosts/ui-vhost", |s, _| s == StatusCode::OK).await;

    b.goto("#/admin/users").await;
    b.fill("#user-name", "ui-user").await;
    b.fill("#user-password", "s3cret").await;
    b.fill("#user-password-confirm", "s3cret").await;
    b.click("#add-user button[type=submit]").await;
    api_until(&broker, "/api/users/ui-user", |s, _| s == StatusCode::OK).await;
    assert!(
        connect_as(&broker, "ui-user", "s3cret", "ui-vhost")
            .await
            .is_err(),
        "no permissions yet"
    );

    b.goto("#/admin/users/ui-user").await;
    b.find("#perm-vhost option[value='ui-vhost']")
        .await
        .click()
        .await
        .expect("picks the vhost");
    b.click("#set-permission button[type=submit]").await;
    api_until(&broker, "/api/permissions/ui-vhost/ui-user", |s, _| {
        s == StatusCode::OK
    })
    .await;
    b.screenshot("admin-user").await;
    let conn = connect_as(&broker, "ui-user", "s3cret", "ui-vhost")
        .await
        .expect("the new user connects");
    let ch = conn.create_channel().await.expect("a channel");
    declare_queue(&ch, "made-by-ui-user").await;
    b.close().await;
}

#[tokio::test]
async fn a_connection_closed_from_the_ui_gets_320_with_the_reason() {
    let broker = TestBroker::start().await;
    let Some(b) = Browser::open(&broker).await else {
        return;
    };
    let conn = Connection::connect(
        &broker.uri(),
        ConnectionProperties::default().with_connection_name("doomed".into()),
    )
    .await
    .unwrap();
    let (_, list) = get(&broker, "/api/connections").await;
    let name = list[0]["name"].as_str().expect("a connection").to_owned();

    b.log_in("guest", "guest").await;
    b.text_where("#whoami", |t| t == "guest").await;
    b.goto("#/connections").await;
    b.text_where("#connections-table", |t| t.contains("doomed"))
        .await;
    b.screenshot("connections").await;
    let route = format!("#/connections/{}", urlencode(&name));
    b.goto(&route).await;
    b.text_where("main", |t| t.contains("doomed")).await;
    b.screenshot("connection").await;
    // Listening before the click: the close may come before the next line runs.
    let closed = closed_with(&conn);
    b.fill("#close-reason", "maintenance window").await;
    b.click("#close-connection-button").await;
    b.accept_confirm().await;
    let error = closed.await;
    assert_eq!(reply_code(&error), Some(320));
    assert!(
        reply_text(&error).is_some_and(|t| t.contains("maintenance window")),
        "{error}"
    );
    b.close().await;
}

/// A path segment as the UI's routes encode it (encodeURIComponent).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}
