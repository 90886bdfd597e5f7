//! What the `warren` binary reads besides its flags, as the container image uses it:
//! RabbitMQ's image variables as aliases, `--loopback-users`, and `--healthcheck`.

mod common;

use common::process::*;
use common::*;
use std::process::Command;

fn healthcheck(port: u16) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--healthcheck", "--amqp-port", &port.to_string()])
        .env_remove("WARREN_CONFIG")
        .output()
        .expect("warren runs")
        .status
        .code()
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_passes_against_a_broker_and_fails_without_one() {
    let broker = TestBroker::start().await;
    let port = broker.addr().port();
    let code = tokio::task::spawn_blocking(move || healthcheck(port))
        .await
        .unwrap();
    assert_eq!(code, 0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port();
    drop(closed);
    let code = tokio::task::spawn_blocking(move || healthcheck(free))
        .await
        .unwrap();
    assert_eq!(code, 1);
}

#[tokio::test]
async fn rabbitmqs_image_variables_name_the_first_user_and_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("RABBITMQ_DEFAULT_USER", "admin"),
        ("RABBITMQ_DEFAULT_PASS", "s3cret"),
        ("RABBITMQ_DEFAULT_VHOST", "app"),
    ];
    let broker = BrokerProcess::start_with(dir.path(), &env).await;
    let uri = format!("amqp://admin:s3cret@{}/app", broker.addr);
    let conn = within(
        "admin connects",
        lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("the aliases made admin in app");
    conn.create_channel().await.unwrap();
    let guest = format!("amqp://guest:guest@{}/%2f", broker.addr);
    let refused = lapin::Connection::connect(&guest, lapin::ConnectionProperties::default()).await;
    assert!(refused.is_err(), "no guest when credentials are given");
}
