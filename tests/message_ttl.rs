//! Message TTL (per queue and per message) and queue expiry (`x-expires`), held to RabbitMQ
//! 3.10's semantics. Timed behaviour uses TTLs of tens to hundreds of milliseconds and waits
//! for what a client can see happen; the few fixed pauses let a deadline pass where nothing
//! observable would mark it.

mod common;

use common::queues::*;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// message TTL

#[tokio::test]
async fn messages_past_the_queue_ttl_are_never_delivered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "ttl", table(&[("x-message-ttl", int(300))])).await;
    let published = Instant::now();
    for i in 0..3 {
        send(&ch, "ttl", &format!("m{i}"), BasicProperties::default()).await;
    }
    if published.elapsed() < Duration::from_millis(250) {
        assert_eq!(queue_counts(&ch, "ttl").await, (3, 0), "not expired yet");
    }
    sleep_until(published + Duration::from_millis(450)).await;
    assert!(
        get(&ch, "ttl").await.is_none(),
        "basic.get after the TTL gets get-empty"
    );
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "late", 0, FieldTable::default()).await;
    assert_no_delivery(&mut consumer).await;
    assert_eq!(queue_counts(&ch, "ttl").await.0, 0);
}

#[tokio::test]
async fn a_message_consumed_before_its_ttl_is_delivered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "ttl", table(&[("x-message-ttl", int(60_000))])).await;
    send(&ch, "ttl", "fresh", expiring("60000")).await;
    let (_c, mut consumer) = consumer_on(&conn, "ttl", "c", 0, FieldTable::default()).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "fresh");
    assert_eq!(
        d.properties.expiration().as_ref().map(|e| e.to_string()),
        Some("60000".to_string()),
        "a delivered message keeps its expiration property"
    );
}

#[tokio::test]
async fn the_smaller_of_queue_ttl_and_message_expiration_wins() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "long-ttl",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(60_000))]),
    )
    .await;
    declare(
        &ch,
        "short-ttl",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(50))]),
    )
    .await;

    // Queue TTL 60 s, message expiration 50 ms: the message's expiration applies.
    let started = Instant::now();
    send(&ch, "long-ttl", "short-expiration", expiring("50")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "short-expiration");
    assert!(started.elapsed() < Duration::from_secs(5));
    let death = &deaths(&d)[0];
    assert_death(death, 1, "expired", "long-ttl", "", &["long-ttl"]);
    assert_eq!(field(death, "original-expiration").as_deref(), Some("50"));
    assert!(
        d.properties.expiration().is_none(),
        "a dead-lettered message carries no expiration"
    );

    // Queue TTL 50 ms, message expiration 60 s: the queue's TTL applies.
    let started = Instant::now();
    send(&ch, "short-ttl", "long-expiration", expiring("60000")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "long-expiration");
    assert!(started.elapsed() < Duration::from_secs(5));
    let death = &deaths(&d)[0];
    assert_death(death, 1, "expired", "short-ttl", "", &["short-ttl"]);
    assert_eq!(
        field(death, "original-expiration").as_deref(),
        Some("60000"),
        "the message's own expiration is recorded even when the queue's TTL expired it"
    );
    assert!(d.properties.expiration().is_none());

    // Expired by the queue's TTL alone: no original-expiration.
    send(
        &ch,
        "short-ttl",
        "queue-ttl-only",
        BasicProperties::default(),
    )
    .await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "queue-ttl-only");
    assert!(!deaths(&d)[0].inner().contains_key("original-expiration"));
    assert_eq!(queue_counts(&ch, "long-ttl").await.0, 0);
    assert_eq!(queue_counts(&ch, "short-ttl").await.0, 0);
}

#[tokio::test]
async fn x_message_ttl_0_delivers_only_to_a_consumer_waiting_at_publish_time() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "now-or-never",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(0))]),
    )
    .await;

    // Nobody waiting: the message expires on arrival.
    send(&ch, "now-or-never", "unseen", BasicProperties::default()).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "unseen");
    assert_death(
        &deaths(&d)[0],
        1,
        "expired",
        "now-or-never",
        "",
        &["now-or-never"],
    );
    assert!(get(&ch, "now-or-never").await.is_none());

    // A consumer with credit waiting: it gets the message.
    let (_c, mut waiting) =
        consumer_on(&conn, "now-or-never", "waiting", 1, FieldTable::default()).await;
    send(&ch, "now-or-never", "caught", BasicProperties::default()).await;
    let caught = next_delivery(&mut waiting).await;
    assert_eq!(body(&caught), "caught");

    // The consumer is out of credit (prefetch 1, unacked): the next one expires.
    send(&ch, "now-or-never", "blocked", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut dead).await), "blocked");
    caught.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut waiting).await;
    assert_eq!(queue_counts(&ch, "now-or-never").await, (0, 1));
}

#[tokio::test]
async fn a_message_expiration_of_0_delivers_only_to_a_waiting_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "q", FieldTable::default()).await;
    send(&ch, "q", "unseen", expiring("0")).await;
    assert!(get(&ch, "q").await.is_none(), "expired on arrival");
    let (_c, mut consumer) = consumer_on(&conn, "q", "c", 0, FieldTable::default()).await;
    send(&ch, "q", "caught", expiring("0")).await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "caught");
    assert_no_delivery(&mut consumer).await;
}

/// Warren expires a message wherever it sits in the queue; RabbitMQ only expires messages at
/// the head, so there the short-lived message would wait behind the long-lived one.
#[tokio::test]
async fn a_short_lived_message_behind_a_long_lived_one_expires_on_time() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(&ch, "mixed", table(&dead_letter_to("dead"))).await;
    send(&ch, "mixed", "long", expiring("60000")).await;
    let started = Instant::now();
    send(&ch, "mixed", "short", expiring("100")).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(body(&d), "short");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "dead-lettered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        queue_counts(&ch, "mixed").await.0,
        1,
        "the head stays in the queue"
    );
    assert_eq!(
        get(&ch, "mixed")
            .await
            .map(|m| body(&m.delivery))
            .as_deref(),
        Some("long")
    );
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn an_invalid_expiration_closes_the_channel_with_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "q", FieldTable::default()).await;
    for (expiration, detail) in [("abc", "no_integer"), ("-1", "{value_negative,-1}")] {
        let bad = conn.create_channel().await.expect("channel opens");
        bad.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let confirm = bad
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"x",
                expiring(expiration),
            )
            .await
            .expect("basic.publish is sent");
        let err = within("the channel close", confirm)
            .await
            .expect_err("an invalid expiration is refused");
        assert_eq!(reply_code(&err), Some(406), "{err}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"
            ))
        );
        assert!(!bad.status().connected(), "the channel is closed");
        assert!(conn.status().connected(), "only the channel is closed");
    }
    assert_eq!(queue_counts(&ch, "q").await, (0, 0), "nothing was enqueued");
}

#[tokio::test]
async fn expiry_dead_letters_a_backlog_beyond_the_in_memory_window() {
    let broker = TestBroker::start_with(|c| {
        c.queue_window = 8;
        c.paging_watermark = 0;
    })
    .await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(
        &ch,
        "backlog",
        with(dead_letter_to("dead"), &[("x-message-ttl", int(300))]),
    )
    .await;
    // Two batches far enough apart that the second, paged out behind the first, expires
    // after it; the second is read back from disk in several batches.
    let mut expected = Vec::new();
    for i in 0..8 {
        let b = format!("a{i}");
        send(&ch, "backlog", &b, BasicProperties::default()).await;
        expected.push(b);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    for i in 0..40 {
        let b = format!("b{i}");
        send(&ch, "backlog", &b, BasicProperties::default()).await;
        expected.push(b);
    }
    assert_eq!(bodies(&mut dead, expected.len()).await, expected);
    assert_eq!(queue_counts(&ch, "backlog").await.0, 0);
}

// ---------------------------------------------------------------------------------------------
// x-expires

#[tokio::test]
async fn an_unused_queue_is_deleted_after_x_expires() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let before = Instant::now();
    declare(&ch, "fleeting", table(&[("x-expires", int(200))])).await;
    await_gone(&ch, "fleeting").await;
    assert!(
        before.elapsed() >= Duration::from_millis(200),
        "deleted after {:?}, before x-expires",
        before.elapsed()
    );
    assert_no_queue(&conn, "fleeting").await;
}

#[tokio::test]
async fn a_queue_with_a_consumer_does_not_expire() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "busy", table(&[("x-expires", int(150))])).await;
    let (consumer_ch, consumer) = consumer_on(&conn, "busy", "c", 0, FieldTable::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exists(&ch, "busy").await, "a consumed queue is in use");
    consumer_ch
        .basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    drop(consumer);
    let cancelled = Instant::now();
    await_gone(&ch, "busy").await;
    assert!(
        cancelled.elapsed() >= Duration::from_millis(140),
        "x-expires counts from the last consumer going, deleted after {:?}",
        cancelled.elapsed()
    );
}

const LEASE_MS: u64 = 600;

/// Declares a queue with `x-expires` = LEASE_MS, uses it with `renew` part-way through its
/// lease, and asserts that it outlives the first lease and is deleted after the renewed one.
async fn assert_renews_the_lease(name: &str, renew: impl AsyncFnOnce(&Channel)) {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let declared = Instant::now();
    declare(&ch, name, table(&[("x-expires", int(LEASE_MS as i64))])).await;
    sleep_until(declared + Duration::from_millis(LEASE_MS * 6 / 10)).await;
    let user = conn.create_channel().await.expect("channel opens");
    renew(&user).await;
    let renewed = Instant::now();
    sleep_until(declared + Duration::from_millis(LEASE_MS + 150)).await;
    assert!(
        renewed.elapsed() < Duration::from_millis(LEASE_MS),
        "too slow to check between the two deadlines"
    );
    assert!(
        exists(&ch, name).await,
        "the queue outlived its first lease"
    );
    await_gone(&ch, name).await;
    assert!(
        renewed.elapsed() >= Duration::from_millis(LEASE_MS - 50),
        "deleted {:?} after the renewal",
        renewed.elapsed()
    );
    assert_no_queue(&conn, name).await;
}

#[tokio::test]
async fn redeclaring_a_queue_renews_its_x_expires_lease() {
    assert_renews_the_lease("redeclared", async |ch: &Channel| {
        declare(
            ch,
            "redeclared",
            table(&[("x-expires", int(LEASE_MS as i64))]),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn basic_get_renews_the_x_expires_lease() {
    assert_renews_the_lease("got", async |ch: &Channel| {
        assert!(get(ch, "got").await.is_none());
    })
    .await;
}

#[tokio::test]
async fn a_passive_declare_renews_the_x_expires_lease() {
    assert_renews_the_lease("peeked", async |ch: &Channel| {
        queue_counts(ch, "peeked").await;
    })
    .await;
}
