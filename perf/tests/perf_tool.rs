//! warren-perf against a Warren started in-process on 127.0.0.1:0: a short run of every mode,
//! checking that the counts add up (published == confirmed == consumed), plus one run of the
//! binary itself with --json.

mod common;

use common::{broker, broker_with, perf, perf_at};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_confirms_and_manual_acks_counts_every_message() {
    let broker = broker().await;
    let pid = std::process::id().to_string();
    let flags = [
        "-x",
        "2",
        "-y",
        "2",
        "-C",
        "300",
        "-s",
        "64",
        "-c",
        "50",
        "-q",
        "20",
        "-k",
        "5",
        "--broker-pid",
        &pid,
    ];
    let report = perf(&broker, &flags).await;
    let load = report.load.expect("load report");
    assert_eq!(load.published, 600);
    assert_eq!(load.confirmed, 600);
    assert_eq!(load.consumed, 600);
    assert_eq!(load.latency.expect("latency").samples, 600);
    let broker_usage = report.broker.expect("broker usage");
    assert!(broker_usage.usage.rss_peak_kib > 0);
    assert!(broker_usage.cpu_s_per_million_published.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_through_a_headers_exchange_reach_their_own_queue() {
    let broker = broker().await;
    let flags = [
        "-x",
        "2",
        "-y",
        "2",
        "--queues",
        "2",
        "-e",
        "perf-headers",
        "-t",
        "headers",
        "-C",
        "100",
        "-f",
        "-c",
        "10",
        "-r",
        "2000",
    ];
    let load = perf(&broker, &flags).await.load.expect("load report");
    assert_eq!(
        (load.published, load.confirmed, load.consumed),
        (200, 200, 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_fills_then_drains() {
    let broker = broker().await;
    let report = perf(&broker, &["backlog", "-C", "300", "-c", "100"]).await;
    let backlog = report.backlog.expect("backlog report");
    assert_eq!((backlog.published, backlog.confirmed), (300, 300));
    assert_eq!((backlog.consumed, backlog.lost), (300, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_each_message_to_every_queue() {
    let broker = broker().await;
    let report = perf(&broker, &["fanout", "--fanout", "3", "-C", "200", "-a"]).await;
    let load = report.load.expect("load report");
    assert_eq!((load.published, load.deliveries_per_publish), (200, 3));
    assert_eq!(load.consumed, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_opened_held_and_closed() {
    let broker = broker().await;
    let pid = std::process::id().to_string();
    let flags = [
        "connections",
        "--connections",
        "50",
        "--concurrency",
        "5",
        "-z",
        "0.1",
        "--broker-pid",
        &pid,
    ];
    let report = perf(&broker, &flags).await;
    let connections = report.connections.expect("connections report");
    assert_eq!((connections.opened, connections.failed), (50, 0));
    assert_eq!(connections.open_latency.expect("open latency").samples, 50);
    assert!(connections.broker_rss_per_connection_kib.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_keep_the_broker_from_timing_them_out() {
    // The broker drops a connection it hears nothing from for two heartbeat intervals: a hold
    // of three seconds with one-second heartbeats only survives if the tool sends its own.
    let broker = broker_with(|config| config.heartbeat = 1).await;
    let flags = ["connections", "--connections", "3", "-z", "3"];
    let connections = perf(&broker, &flags).await.connections.expect("report");
    assert_eq!((connections.opened, connections.failed), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_counted_as_failed_connections_with_the_reply() {
    let broker = broker().await;
    let uri = broker
        .server
        .amqp_uri()
        .replace("guest:guest", "guest:wrong");
    let flags = ["connections", "--connections", "4", "--concurrency", "2"];
    let report = tokio::time::timeout(Duration::from_secs(20), perf_at(&uri, &flags))
        .await
        .expect("refused connections do not hang the run");
    let connections = report.connections.expect("connections report");
    assert_eq!((connections.opened, connections.failed), (0, 4));
    assert_eq!(report.errors, 4);
    assert!(
        report.error_samples[0].contains("403 ACCESS_REFUSED"),
        "{:?}",
        report.error_samples
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_declares_and_deletes_queues_and_connections() {
    let broker = broker().await;
    let report = perf(&broker, &["churn", "-C", "5", "--concurrency", "2"]).await;
    let churn = report.churn.expect("churn report");
    assert_eq!((churn.queues.operations, churn.queues.failed), (10, 0));
    assert_eq!(
        (churn.connections.operations, churn.connections.failed),
        (10, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_a_json_report() {
    let broker = broker().await;
    let uri = broker.server.amqp_uri();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_warren-perf"))
            .args(["--uri", &uri, "-C", "100", "-a", "--json"])
            .output()
    })
    .await
    .unwrap()
    .expect("warren-perf runs");
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["mode"], "throughput");
    assert_eq!(report["load"]["consumed"], 100);
    assert_eq!(report["errors"], 0);
}
