//! Length limits and their overflow behaviours, priority queues, consumer priorities and
//! single active consumer, held to RabbitMQ 3.10's semantics, and message TTL across a
//! restart.

mod common;

use common::queues::*;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// length limits

#[tokio::test]
async fn x_max_length_drops_the_oldest_and_dead_letters_it_as_maxlen() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "bounded",
        with(dead_letter_to("dead"), &[("x-max-length", int(2))]),
    )
    .await;
    for b in ["m0", "m1", "m2", "m3"] {
        send(&ch, "bounded", b, BasicProperties::default()).await;
    }
    for expected in ["m0", "m1"] {
        let d = next_delivery(&mut dead).await;
        assert_eq!(body(&d), expected);
        assert_death(&deaths(&d)[0], 1, "maxlen", "bounded", "", &["bounded"]);
        assert_eq!(
            header(&d, "x-first-death-reason").as_deref(),
            Some("maxlen")
        );
    }
    assert_eq!(queue_counts(&ch, "bounded").await.0, 2);
    let (_c, mut consumer) = consumer_on(&conn, "bounded", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 2).await, ["m2", "m3"]);
}

#[tokio::test]
async fn x_max_length_bytes_counts_body_bytes() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "bytes",
        with(dead_letter_to("dead"), &[("x-max-length-bytes", int(10))]),
    )
    .await;
    for b in ["aaaa", "bbbb"] {
        send(&ch, "bytes", b, BasicProperties::default()).await;
    }
    assert_eq!(queue_counts(&ch, "bytes").await.0, 2, "8 bytes fit in 10");
    send(&ch, "bytes", "cccc", BasicProperties::default()).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "aaaa");
    assert_death(&deaths(&d)[0], 1, "maxlen", "bytes", "", &["bytes"]);
    // One large message pushes out everything before it.
    send(&ch, "bytes", "0123456789", BasicProperties::default()).await;
    assert_eq!(bodies(&mut dead, 2).await, ["bbbb", "cccc"]);
    assert_eq!(
        get(&ch, "bytes")
            .await
            .map(|m| body(&m.delivery))
            .as_deref(),
        Some("0123456789")
    );
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn reject_publish_nacks_the_publisher_and_keeps_the_old_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "full",
        with(
            dead_letter_to("dead"),
            &[
                ("x-max-length", int(2)),
                ("x-overflow", longstr("reject-publish")),
            ],
        ),
    )
    .await;
    send(&ch, "full", "m0", BasicProperties::default()).await;
    send(&ch, "full", "m1", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "full", "m2", BasicProperties::default()).await;
    assert!(
        matches!(refused, Confirmation::Nack(_)),
        "a publish to a full queue is nacked, got {refused:?}"
    );
    assert_no_delivery(&mut dead).await;
    assert_eq!(queue_counts(&ch, "full").await.0, 2);
    assert_eq!(
        get(&ch, "full").await.map(|m| body(&m.delivery)).as_deref(),
        Some("m0")
    );
    send(&ch, "full", "m3", BasicProperties::default()).await;
    let (_c, mut consumer) = consumer_on(&conn, "full", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 2).await, ["m1", "m3"]);
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters_the_refused_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "full",
        with(
            dead_letter_to("dead"),
            &[
                ("x-max-length", int(1)),
                ("x-overflow", longstr("reject-publish-dlx")),
            ],
        ),
    )
    .await;
    send(&ch, "full", "kept", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "full", "refused", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "got {refused:?}");
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "refused");
    assert_death(&deaths(&d)[0], 1, "maxlen", "full", "", &["full"]);
    assert_eq!(
        get(&ch, "full").await.map(|m| body(&m.delivery)).as_deref(),
        Some("kept")
    );
}

#[tokio::test]
async fn length_limits_count_only_ready_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(
        &ch,
        "one",
        table(&[
            ("x-max-length", int(1)),
            ("x-overflow", longstr("reject-publish")),
        ]),
    )
    .await;
    send(&ch, "one", "m0", BasicProperties::default()).await;
    let (_c, mut consumer) = consumer_on(&conn, "one", "c", 1, FieldTable::default()).await;
    let unacked = next_delivery(&mut consumer).await;
    // m0 is unacked, not ready: there is room for m1.
    send(&ch, "one", "m1", BasicProperties::default()).await;
    let refused = send_to(&ch, "", "one", "m2", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "got {refused:?}");
    unacked.ack(BasicAckOptions::default()).await.expect("ack");
    assert_eq!(body(&next_delivery(&mut consumer).await), "m1");
}

// ---------------------------------------------------------------------------------------------
// priority queues

#[tokio::test]
async fn a_priority_queue_delivers_higher_priorities_first_and_fifo_within_one() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(10))])).await;
    let messages = [
        ("none-1", None),
        ("five-1", Some(5)),
        ("one", Some(1)),
        ("ten-1", Some(10)),
        ("five-2", Some(5)),
        ("above-max", Some(200)), // treated as 10, after ten-1
        ("zero", Some(0)),        // the same as none
        ("ten-2", Some(10)),
        ("none-2", None),
    ];
    for (b, p) in messages {
        let props = p.map_or_else(BasicProperties::default, prioritised);
        send(&ch, "prio", b, props).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "prio", "c", 0, FieldTable::default()).await;
    assert_eq!(
        bodies(&mut consumer, messages.len()).await,
        [
            "ten-1",
            "above-max",
            "ten-2",
            "five-1",
            "five-2",
            "one",
            "none-1",
            "zero",
            "none-2"
        ]
    );
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn a_queue_without_x_max_priority_ignores_message_priorities() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "plain", FieldTable::default()).await;
    for (b, p) in [("low", 0), ("high", 9), ("mid", 5)] {
        send(&ch, "plain", b, prioritised(p)).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "plain", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, 3).await, ["low", "high", "mid"]);
}

/// 64 messages over priorities 0–3, in an order that interleaves them; what a priority queue
/// must hand out: by priority, then in publish order.
fn interleaved_priorities() -> (Vec<(String, u8)>, Vec<String>) {
    let published: Vec<(String, u8)> = (0..64u8)
        .map(|i| (format!("p{}-{i:02}", (i * 3) % 4), (i * 3) % 4))
        .collect();
    let mut expected = published.clone();
    expected.sort_by_key(|(_, p)| std::cmp::Reverse(*p)); // stable: publish order within one
    (published, expected.into_iter().map(|(b, _)| b).collect())
}

#[tokio::test]
async fn priority_order_holds_for_a_consumer_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(3))])).await;
    let (published, expected) = interleaved_priorities();
    for (b, p) in &published {
        send(&ch, "prio", b, prioritised(*p)).await;
    }
    let (_c, mut consumer) = consumer_on(&conn, "prio", "c", 0, FieldTable::default()).await;
    assert_eq!(bodies(&mut consumer, expected.len()).await, expected);
}

#[tokio::test]
async fn priority_order_holds_for_basic_get_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (_conn, ch) = confirming(&broker).await;
    declare(&ch, "prio", table(&[("x-max-priority", int(3))])).await;
    let (published, expected) = interleaved_priorities();
    for (b, p) in &published {
        send(&ch, "prio", b, prioritised(*p)).await;
    }
    let mut got = Vec::new();
    while let Some(m) = get(&ch, "prio").await {
        got.push(body(&m.delivery));
    }
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// consumer priorities

fn consumer_priority(p: i64) -> FieldTable {
    table(&[("x-priority", int(p))])
}

#[tokio::test]
async fn a_higher_priority_consumer_gets_everything_while_it_has_credit() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    // The low-priority consumer comes first: priority, not order, decides.
    let (_l, mut low) = consumer_on(&conn, "work", "low", 10, FieldTable::default()).await;
    let (_h, mut high) = consumer_on(&conn, "work", "high", 3, consumer_priority(10)).await;

    for b in ["h0", "h1", "h2"] {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    let first = next_delivery(&mut high).await;
    assert_eq!(body(&first), "h0");
    assert_eq!(bodies(&mut high, 2).await, ["h1", "h2"]);
    assert_no_delivery(&mut low).await;

    // The high-priority consumer is blocked (prefetch 3 reached): the low one gets the rest.
    for b in ["l0", "l1"] {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut low, 2).await, ["l0", "l1"]);
    assert_no_delivery(&mut high).await;

    // Credit back: the high-priority consumer is served first again.
    first.ack(BasicAckOptions::default()).await.expect("ack");
    send(&ch, "work", "h3", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut high).await), "h3");
    assert_no_delivery(&mut low).await;
}

#[tokio::test]
async fn an_unlimited_high_priority_consumer_starves_the_others() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    let (_l, mut low) = consumer_on(&conn, "work", "low", 0, consumer_priority(-5)).await;
    let (_m, mut mid) = consumer_on(&conn, "work", "mid", 0, FieldTable::default()).await;
    let (_h, mut high) = consumer_on(&conn, "work", "high", 0, consumer_priority(1)).await;
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for b in &expected {
        send(&ch, "work", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut high, 10).await, expected);
    assert_no_delivery(&mut mid).await;
    assert_no_delivery(&mut low).await;
}

#[tokio::test]
async fn consumers_of_equal_priority_take_turns() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "work", FieldTable::default()).await;
    let (_a, mut a) = consumer_on(&conn, "work", "a", 0, consumer_priority(5)).await;
    let (_l, mut low) = consumer_on(&conn, "work", "low", 0, FieldTable::default()).await;
    let (_b, mut b) = consumer_on(&conn, "work", "b", 0, consumer_priority(5)).await;
    for i in 0..6 {
        send(&ch, "work", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut a, 3).await, ["m0", "m2", "m4"]);
    assert_eq!(bodies(&mut b, 3).await, ["m1", "m3", "m5"]);
    assert_no_delivery(&mut low).await;
}

// ---------------------------------------------------------------------------------------------
// single active consumer

fn single_active() -> FieldTable {
    table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])
}

#[tokio::test]
async fn only_the_first_consumer_of_a_single_active_consumer_queue_gets_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 0, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    assert_eq!(queue_counts(&ch, "sac").await.1, 2, "both are registered");
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    let got = bodies(&mut first, 3).await;
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert_no_delivery(&mut second).await;

    first_ch
        .basic_cancel("first".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    for i in 3..5 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut second, 2).await, ["m3", "m4"]);
}

#[tokio::test]
async fn when_the_active_consumer_cancels_the_next_one_gets_the_remaining_messages() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..4 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    let held = next_delivery(&mut first).await;
    assert_eq!(body(&held), "m0");
    assert_no_delivery(&mut second).await;
    assert_eq!(
        queue_counts(&ch, "sac").await.0,
        3,
        "waiting for the active one"
    );

    first_ch
        .basic_cancel("first".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    assert_eq!(bodies(&mut second, 3).await, ["m1", "m2", "m3"]);
    // The cancelled consumer's delivery is still its channel's to settle.
    held.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut second).await;
    assert_eq!(queue_counts(&ch, "sac").await, (0, 1));
}

#[tokio::test]
async fn when_the_active_consumers_channel_closes_the_next_one_gets_everything_in_order() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    assert_no_delivery(&mut second).await;

    first_ch
        .close(200, "bye".into())
        .await
        .expect("channel.close");
    let m0 = next_delivery(&mut second).await;
    assert_eq!(body(&m0), "m0", "the requeued message is back at the head");
    assert!(m0.redelivered);
    assert_eq!(bodies(&mut second, 2).await, ["m1", "m2"]);
}

#[tokio::test]
async fn when_the_active_consumers_channel_closes_the_next_one_gets_every_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (first_ch, mut first) = consumer_on(&conn, "sac", "first", 1, FieldTable::default()).await;
    let (_s, mut second) = consumer_on(&conn, "sac", "second", 0, FieldTable::default()).await;
    for i in 0..3 {
        send(&ch, "sac", &format!("m{i}"), BasicProperties::default()).await;
    }
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    assert_no_delivery(&mut second).await;
    first_ch
        .close(200, "bye".into())
        .await
        .expect("channel.close");
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut second).await;
        assert_eq!(
            d.redelivered,
            body(&d) == "m0",
            "only m0 was delivered before"
        );
        got.push(body(&d));
    }
    got.sort();
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert_no_delivery(&mut second).await;
}

#[tokio::test]
async fn a_later_higher_priority_consumer_does_not_take_over_a_single_active_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "sac", single_active()).await;
    let (_f, mut first) = consumer_on(&conn, "sac", "first", 0, FieldTable::default()).await;
    send(&ch, "sac", "m0", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut first).await), "m0");
    let (_p, mut eager) = consumer_on(&conn, "sac", "eager", 0, consumer_priority(10)).await;
    for b in ["m1", "m2"] {
        send(&ch, "sac", b, BasicProperties::default()).await;
    }
    assert_eq!(bodies(&mut first, 2).await, ["m1", "m2"]);
    assert_no_delivery(&mut eager).await;
}

// ---------------------------------------------------------------------------------------------
// durability

/// Stops a broker gracefully and starts another on the same directory.
async fn restart(broker: TestBroker, dir: &std::path::Path) -> TestBroker {
    within("a graceful stop", broker.server.stop())
        .await
        .expect("the broker stops cleanly");
    TestBroker::start_in_with(dir, |_| {}).await
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test]
async fn a_durable_ttl_queue_keeps_unexpired_persistent_messages_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "ttl", table(&[("x-message-ttl", int(5_000))])).await;
    let published = Instant::now();
    send(
        &ch,
        "ttl",
        "stale",
        persistent().with_expiration("100".into()),
    )
    .await;
    send(&ch, "ttl", "fresh", persistent()).await;
    drop((conn, ch));
    sleep_until(published + Duration::from_millis(150)).await;
    let broker = restart(broker, dir.path()).await;
    let (conn, _ch) = confirming(&broker).await;
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "c", 0, FieldTable::default()).await;
    let d = next_delivery(&mut consumer).await;
    assert!(
        published.elapsed() < Duration::from_millis(5_000),
        "the restart took too long to tell"
    );
    assert_eq!(body(&d), "fresh", "the expired message is gone");
    assert!(!d.redelivered);
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn persistent_messages_still_expire_on_time_after_a_restart() {
    const TTL: Duration = Duration::from_millis(1_500);
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "dead", FieldTable::default()).await;
    declare_durable(
        &ch,
        "ttl",
        with(
            dead_letter_to("dead"),
            &[("x-message-ttl", int(TTL.as_millis() as i64))],
        ),
    )
    .await;
    let published = Instant::now();
    send(&ch, "ttl", "m", persistent()).await;
    drop((conn, ch));
    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    assert!(
        published.elapsed() < TTL - Duration::from_millis(300),
        "the restart took too long to tell"
    );
    assert_eq!(queue_counts(&ch, "ttl").await, (1, 0), "still there");
    let mut dead = watch(&conn, "dead").await;
    let d = next_delivery(&mut dead).await;
    let at = published.elapsed();
    assert_eq!(body(&d), "m");
    assert_death(&deaths(&d)[0], 1, "expired", "ttl", "", &["ttl"]);
    assert!(at >= TTL, "expired early, after {at:?}");
    assert!(
        at < TTL + Duration::from_secs(2),
        "expired late, after {at:?}"
    );
    assert_eq!(queue_counts(&ch, "ttl").await.0, 0);
}

#[tokio::test]
async fn a_durable_queue_with_x_expires_still_expires_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in_with(dir.path(), |_| {}).await;
    let (conn, ch) = confirming(&broker).await;
    declare_durable(&ch, "fleeting", table(&[("x-expires", int(300))])).await;
    drop((conn, ch));
    let broker = restart(broker, dir.path()).await;
    let (conn, ch) = confirming(&broker).await;
    await_gone(&ch, "fleeting").await;
    assert_no_queue(&conn, "fleeting").await;
}
