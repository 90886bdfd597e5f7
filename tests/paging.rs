//! Backlogs beyond a queue's in-memory window wait on disk and come back in order.
//! The window is set to a handful of messages so every test crosses it many times, and the
//! memory allowance to nothing so transient messages page as well as persistent ones.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

const WINDOW: usize = 8;

/// A window of a few messages, and no memory allowance, so transient messages page too.
fn paging(c: &mut warren::Config) {
    c.queue_window = WINDOW;
    c.paging_watermark = 0;
}

async fn small_window_broker() -> TestBroker {
    TestBroker::start_with(paging).await
}

async fn publish_numbered(
    ch: &Channel,
    queue: &str,
    range: std::ops::Range<u32>,
    persistent: bool,
) {
    let props = if persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    for i in range {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                props.clone(),
            )
            .await
            .expect("publish");
        within("confirm", confirm).await.expect("confirmed");
    }
}

async fn confirming_channel(broker: &TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Consumes `n` messages with acks and returns their bodies in arrival order.
async fn consume(ch: &Channel, queue: &str, n: usize) -> Vec<String> {
    ch.basic_qos(50, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        let d = next_delivery(&mut consumer).await;
        bodies.push(String::from_utf8_lossy(&d.data).into_owned());
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_no_delivery(&mut consumer).await;
    bodies
}

fn numbered(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn a_transient_backlog_far_beyond_the_window_is_consumed_in_order() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "backlog").await;
    publish_numbered(&ch, "backlog", 0..500, false).await;
    assert_eq!(
        queue_counts(&ch, "backlog").await,
        (500, 0),
        "paged messages still count"
    );
    assert_eq!(consume(&ch, "backlog", 500).await, numbered(0..500));
    assert_eq!(queue_counts(&ch, "backlog").await.0, 0);
}

#[tokio::test]
async fn basic_get_reads_paged_messages_back_in_order() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "got").await;
    publish_numbered(&ch, "got", 0..60, false).await;
    for i in 0..60u32 {
        let msg = ch
            .basic_get("got".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("message {i} missing"));
        assert_eq!(msg.delivery.data, format!("m{i}").as_bytes());
        assert_eq!(msg.message_count, 59 - i);
    }
    let empty = ch
        .basic_get("got".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(empty.is_none());
}

#[tokio::test]
async fn publishing_while_consuming_a_paged_backlog_keeps_fifo_order() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "mixed").await;
    publish_numbered(&ch, "mixed", 0..100, false).await;
    let first: Vec<String> = {
        let mut got = Vec::new();
        for _ in 0..30 {
            let m = ch
                .basic_get("mixed".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .unwrap();
            got.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
        got
    };
    assert_eq!(first, numbered(0..30));
    publish_numbered(&ch, "mixed", 100..150, false).await;
    assert_eq!(consume(&ch, "mixed", 120).await, numbered(30..150));
}

#[tokio::test]
async fn requeued_messages_go_back_before_the_paged_tail() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "rq").await;
    publish_numbered(&ch, "rq", 0..40, false).await;
    let m = ch
        .basic_get("rq".into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery.data, b"m0");
    m.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = ch
        .basic_get("rq".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.delivery.data, b"m0");
    assert!(again.delivery.redelivered);
    assert_eq!(consume(&ch, "rq", 39).await, numbered(1..40));
}

#[tokio::test]
async fn purge_drops_the_paged_tail_too() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "pq").await;
    publish_numbered(&ch, "pq", 0..100, false).await;
    let purged = ch
        .queue_purge("pq".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 100);
    assert_eq!(queue_counts(&ch, "pq").await, (0, 0));
    publish_numbered(&ch, "pq", 100..120, false).await;
    assert_eq!(consume(&ch, "pq", 20).await, numbered(100..120));
}

#[tokio::test]
async fn persistent_and_transient_runs_in_a_durable_queue_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in_with(dir.path(), paging).await;
    let (_c, ch) = confirming_channel(&broker).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("mixed".into(), durable, FieldTable::default())
        .await
        .unwrap();
    // Persistent messages wait in the store, transient ones in the paged files: the queue
    // reads both back as one sequence.
    for run in 0..12u32 {
        publish_numbered(&ch, "mixed", run * 15..run * 15 + 15, run % 3 == 0).await;
    }
    assert_eq!(consume(&ch, "mixed", 180).await, numbered(0..180));
    let paged = std::fs::read_dir(dir.path().join("paged")).unwrap().count();
    assert_eq!(paged, 0, "a drained queue leaves no paged file behind");
}

#[tokio::test]
async fn a_persistent_backlog_beyond_the_window_survives_a_restart_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start_in_with(dir.path(), paging).await;
        let (conn, ch) = confirming_channel(&broker).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("kept".into(), durable, FieldTable::default())
            .await
            .unwrap();
        publish_numbered(&ch, "kept", 0..200, true).await;
        // Transient messages in the same durable queue are paged too, and dropped at restart.
        publish_numbered(&ch, "kept", 200..230, false).await;
        let taken = consume_some(&ch, "kept", 5).await;
        assert_eq!(taken, numbered(0..5));
        conn.close(200, "bye".into()).await.unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in_with(dir.path(), paging).await;
    let (_c, ch) = confirming_channel(&broker).await;
    assert_eq!(queue_counts(&ch, "kept").await, (195, 0));
    assert_eq!(consume(&ch, "kept", 195).await, numbered(5..200));
}

/// Takes `n` messages with basic.get and acks them.
async fn consume_some(ch: &Channel, queue: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let m = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    out
}

#[tokio::test]
async fn many_consumers_share_a_paged_backlog_without_loss_or_duplicates() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "shared").await;
    publish_numbered(&ch, "shared", 0..400, false).await;
    let mut seen = Vec::new();
    let (_c2, ch2) = broker.channel().await;
    ch2.basic_qos(7, BasicQosOptions::default()).await.unwrap();
    ch.basic_qos(5, BasicQosOptions::default()).await.unwrap();
    let mut a = ch
        .basic_consume(
            "shared".into(),
            "a".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut b = ch2
        .basic_consume(
            "shared".into(),
            "b".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    while seen.len() < 400 {
        let d = tokio::select! {
            Some(Ok(d)) = a.next() => d,
            Some(Ok(d)) = b.next() => d,
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => panic!("stalled after {}", seen.len()),
        };
        seen.push(String::from_utf8_lossy(&d.data).into_owned());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    seen.sort_by_key(|s| s[1..].parse::<u32>().unwrap());
    assert_eq!(seen, numbered(0..400));
}

#[tokio::test]
async fn below_the_memory_watermark_transient_messages_stay_in_memory_past_the_window() {
    // Same backlog, default watermark: nothing needs to go to disk, and order still holds.
    let broker = TestBroker::start_with(|c| c.queue_window = WINDOW).await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "roomy").await;
    publish_numbered(&ch, "roomy", 0..300, false).await;
    assert_eq!(queue_counts(&ch, "roomy").await.0, 300);
    assert_eq!(consume(&ch, "roomy", 300).await, numbered(0..300));
}

#[tokio::test]
async fn x_max_length_drops_from_the_head_even_when_the_head_is_on_disk() {
    let broker = small_window_broker().await;
    let (_c, ch) = confirming_channel(&broker).await;
    for (queue, durable, persistent) in [("capped", true, true), ("capped-t", false, false)] {
        let dead = format!("dropped-{queue}");
        declare_queue(&ch, &dead).await;
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(30));
        args.insert(
            "x-dead-letter-exchange".into(),
            lapin::types::AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            lapin::types::AMQPValue::LongString(dead.as_str().into()),
        );
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
        // Far more than the window: most of what is over the limit is on disk, not in memory.
        publish_numbered(&ch, queue, 0..100, persistent).await;
        assert_eq!(queue_counts(&ch, queue).await.0, 30, "{queue}");
        // Those dropped while on disk are dead-lettered too, in order, without a consumer
        // of the capped queue having to read them first.
        assert_eq!(consume(&ch, &dead, 70).await, numbered(0..70), "{queue}");
        assert_eq!(consume(&ch, queue, 30).await, numbered(70..100), "{queue}");
    }
}
