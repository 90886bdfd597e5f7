//! warren-perf's own client (`--client raw`) against a Warren started in-process: the counts
//! add up (published == confirmed == consumed, a latency sample per delivery) with small and
//! multi-frame bodies, persistent messages, headers routing and automatic acks.

mod common;

use common::{broker, perf};
use std::time::Duration;
use warren_perf::report::LoadReport;

/// A throughput run on the raw client, bounded so that a hang fails the test.
async fn raw_run(flags: &[&str]) -> LoadReport {
    let broker = broker().await;
    let flags: Vec<&str> = ["--client", "raw"].iter().chain(flags).copied().collect();
    let report = tokio::time::timeout(Duration::from_secs(60), perf(&broker, &flags))
        .await
        .expect("the run finishes");
    report.load.expect("load report")
}

fn assert_nothing_lost(load: &LoadReport, messages: u64) {
    assert_eq!(
        (load.published, load.confirmed, load.nacked, load.consumed),
        (messages, messages, 0, messages)
    );
    assert_eq!(load.lost, 0);
    assert_eq!(load.latency.as_ref().expect("latency").samples, messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_and_multi_acks_count_every_message() {
    let load = raw_run(&["-x", "1", "-y", "1", "-C", "300", "-c", "10", "-k", "10"]).await;
    assert_nothing_lost(&load, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_spanning_several_frames_arrive_whole() {
    // 200 KiB bodies need two frames at Warren's 128 KiB frame_max.
    let flags = [
        "-x", "2", "-y", "2", "-s", "204800", "-C", "50", "-c", "10", "-q", "20", "-k", "5",
    ];
    let load = raw_run(&flags).await;
    assert_nothing_lost(&load, 100);
    assert_eq!(load.message_size, 204_800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_through_a_headers_exchange_reach_their_own_queue() {
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
    let load = raw_run(&flags).await;
    assert_nothing_lost(&load, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_publishes_with_automatic_acks_all_arrive() {
    let load = raw_run(&["-x", "2", "-y", "1", "-C", "2000", "-a"]).await;
    assert_eq!((load.published, load.confirmed), (4000, 0));
    assert_eq!(load.consumed, 4000);
    assert_eq!(load.latency.expect("latency").samples, 4000);
}
