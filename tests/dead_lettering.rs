//! Dead-lettering as RabbitMQ 3.10 does it: rejected, expired and dropped messages, the
//! `x-death` history, cycles, and dead-letter routing keys.

mod common;

use common::queues::*;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// dead-lettering

/// An "orders" direct exchange routing "new" to queue "work", which dead-letters to the "dlx"
/// direct exchange with `work_args`; "dead" is bound to "dlx" with `dead_key`.
async fn orders_topology(ch: &Channel, work_args: FieldTable, dead_key: &str) {
    exchange(ch, "orders", ExchangeKind::Direct).await;
    exchange(ch, "dlx", ExchangeKind::Direct).await;
    declare(ch, "work", work_args).await;
    bind(ch, "work", "orders", "new").await;
    declare(ch, "dead", FieldTable::default()).await;
    bind(ch, "dead", "dlx", dead_key).await;
}

#[tokio::test]
async fn a_rejected_message_is_dead_lettered_with_its_history() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let work_args = table(&[
        ("x-dead-letter-exchange", longstr("dlx")),
        ("x-dead-letter-routing-key", longstr("dead-key")),
    ]);
    orders_topology(&ch, work_args, "dead-key").await;
    let mut dead = watch(&conn, "dead").await;
    let props = BasicProperties::default()
        .with_message_id("id-1".into())
        .with_headers(table(&[("app", longstr("kept"))]));
    assert_eq!(
        send_to(&ch, "orders", "new", "order", props).await,
        Confirmation::Ack(None)
    );
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("basic.reject");

    let dl = next_delivery(&mut dead).await;
    assert_eq!(body(&dl), "order");
    assert_eq!(dl.exchange.as_str(), "dlx", "delivered from the DLX");
    assert_eq!(
        dl.routing_key.as_str(),
        "dead-key",
        "with the dead-letter routing key"
    );
    assert!(!dl.redelivered);
    let x_death = deaths(&dl);
    assert_eq!(x_death.len(), 1, "{x_death:?}");
    assert_death(&x_death[0], 1, "rejected", "work", "orders", &["new"]);
    assert!(!x_death[0].inner().contains_key("original-expiration"));
    for (h, v) in [
        ("x-first-death-reason", "rejected"),
        ("x-first-death-queue", "work"),
        ("x-first-death-exchange", "orders"),
        ("x-last-death-reason", "rejected"),
        ("x-last-death-queue", "work"),
        ("x-last-death-exchange", "orders"),
        ("app", "kept"),
    ] {
        assert_eq!(header(&dl, h).as_deref(), Some(v), "header {h}");
    }
    assert_eq!(
        dl.properties.message_id().as_ref().map(|s| s.to_string()),
        Some("id-1".to_string()),
        "other properties travel with the message"
    );
    assert_eq!(queue_counts(&ch, "work").await.0, 0);
}

#[tokio::test]
async fn a_nacked_message_keeps_its_routing_key_without_a_dead_letter_routing_key() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let work_args = table(&[("x-dead-letter-exchange", longstr("dlx"))]);
    orders_topology(&ch, work_args, "new").await;
    let mut dead = watch(&conn, "dead").await;
    for b in ["n1", "n2"] {
        assert_eq!(
            send_to(&ch, "orders", "new", b, BasicProperties::default()).await,
            Confirmation::Ack(None)
        );
    }
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    next_delivery(&mut worker).await;
    let second = next_delivery(&mut worker).await;
    second
        .nack(BasicNackOptions {
            multiple: true,
            requeue: false,
        })
        .await
        .expect("basic.nack");
    for expected in ["n1", "n2"] {
        let dl = next_delivery(&mut dead).await;
        assert_eq!(body(&dl), expected);
        assert_eq!(dl.exchange.as_str(), "dlx");
        assert_eq!(dl.routing_key.as_str(), "new", "the original routing key");
        assert_death(&deaths(&dl)[0], 1, "rejected", "work", "orders", &["new"]);
    }
    assert_eq!(queue_counts(&ch, "work").await.0, 0);
}

#[tokio::test]
async fn a_requeued_rejection_is_not_dead_lettered() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "dead", FieldTable::default()).await;
    let mut dead = watch(&conn, "dead").await;
    declare(&ch, "work", table(&dead_letter_to("dead"))).await;
    send(&ch, "work", "again", BasicProperties::default()).await;
    let (_c, mut worker) = consumer_on(&conn, "work", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: true })
        .await
        .expect("basic.reject");
    let again = next_delivery(&mut worker).await;
    assert_eq!(body(&again), "again");
    assert!(again.redelivered);
    assert_no_delivery(&mut dead).await;
}

#[tokio::test]
async fn dying_twice_in_the_same_queue_for_the_same_reason_counts_up_one_entry() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    // Rejections dead-letter straight back into the same queue.
    declare(&ch, "retry", table(&dead_letter_to("retry"))).await;
    send(&ch, "retry", "job", BasicProperties::default()).await;
    let (_c, mut worker) = consumer_on(&conn, "retry", "w", 0, FieldTable::default()).await;
    let first = next_delivery(&mut worker).await;
    assert!(first.properties.headers().is_none());
    first
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    for count in 1..=3 {
        let d = next_delivery(&mut worker).await;
        assert_eq!(body(&d), "job");
        assert_eq!(d.routing_key.as_str(), "retry");
        let x_death = deaths(&d);
        assert_eq!(
            x_death.len(),
            1,
            "one entry per queue and reason: {x_death:?}"
        );
        assert_death(&x_death[0], count, "rejected", "retry", "", &["retry"]);
        assert_eq!(header(&d, "x-first-death-queue").as_deref(), Some("retry"));
        if count < 3 {
            d.reject(BasicRejectOptions { requeue: false })
                .await
                .expect("reject");
        } else {
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    assert_no_delivery(&mut worker).await;
}

#[tokio::test]
async fn first_and_last_death_headers_follow_a_message_through_two_queues() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    declare(&ch, "end", FieldTable::default()).await;
    declare(&ch, "second", table(&dead_letter_to("end"))).await;
    declare(
        &ch,
        "first",
        with(dead_letter_to("second"), &[("x-message-ttl", int(30))]),
    )
    .await;
    send(&ch, "first", "traveller", BasicProperties::default()).await;
    // Expired in "first", then rejected in "second".
    let (_c, mut second) = consumer_on(&conn, "second", "s", 0, FieldTable::default()).await;
    let d = next_delivery(&mut second).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let mut end = watch(&conn, "end").await;
    let d = next_delivery(&mut end).await;
    assert_eq!(body(&d), "traveller");
    let x_death = deaths(&d);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    assert_death(&x_death[0], 1, "rejected", "second", "", &["second"]);
    assert_death(&x_death[1], 1, "expired", "first", "", &["first"]);
    for (h, v) in [
        ("x-first-death-reason", "expired"),
        ("x-first-death-queue", "first"),
        ("x-first-death-exchange", ""),
        ("x-last-death-reason", "rejected"),
        ("x-last-death-queue", "second"),
        ("x-last-death-exchange", ""),
    ] {
        assert_eq!(header(&d, h).as_deref(), Some(v), "header {h}");
    }
}

#[tokio::test]
async fn an_expiry_cycle_without_rejections_drops_the_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    exchange(&ch, "to-a", ExchangeKind::Fanout).await;
    exchange(&ch, "to-b", ExchangeKind::Fanout).await;
    let ttl_to = |x: &str| {
        table(&[
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", longstr(x)),
        ])
    };
    declare(&ch, "cycle-a", ttl_to("to-b")).await;
    declare(&ch, "cycle-b", ttl_to("to-a")).await;
    bind(&ch, "cycle-a", "to-a", "").await;
    bind(&ch, "cycle-b", "to-b", "").await;
    // A bystander sees every dead-lettering of the message.
    declare(&ch, "watch", FieldTable::default()).await;
    bind(&ch, "watch", "to-a", "").await;
    bind(&ch, "watch", "to-b", "").await;
    let mut watcher = watch(&conn, "watch").await;

    send(&ch, "cycle-a", "round", BasicProperties::default()).await;
    let into_b = next_delivery(&mut watcher).await;
    assert_eq!(into_b.exchange.as_str(), "to-b");
    assert_eq!(deaths(&into_b).len(), 1);
    let into_a = next_delivery(&mut watcher).await;
    assert_eq!(into_a.exchange.as_str(), "to-a");
    let x_death = deaths(&into_a);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    assert_death(&x_death[0], 1, "expired", "cycle-b", "to-b", &["cycle-a"]);
    assert_death(&x_death[1], 1, "expired", "cycle-a", "", &["cycle-a"]);
    // Back into cycle-a would close the cycle: the message is dropped there, and nothing
    // more dies (each round would take 100 ms).
    if let Ok(Some(more)) = tokio::time::timeout(
        Duration::from_millis(600),
        futures_lite::StreamExt::next(&mut watcher),
    )
    .await
    {
        panic!(
            "the message kept cycling: {:?}",
            more.map(|d| deaths(&d).len())
        );
    }
    assert_eq!(queue_counts(&ch, "cycle-a").await.0, 0);
    assert_eq!(queue_counts(&ch, "cycle-b").await.0, 0);
}

#[tokio::test]
async fn a_cycle_with_a_rejection_in_it_continues() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    // "ttl" expires into "review"; "review" rejects back into "ttl".
    declare(
        &ch,
        "ttl",
        with(dead_letter_to("review"), &[("x-message-ttl", int(30))]),
    )
    .await;
    declare(&ch, "review", table(&dead_letter_to("ttl"))).await;
    send(&ch, "ttl", "boomerang", BasicProperties::default()).await;
    let (_c, mut reviewer) = consumer_on(&conn, "review", "r", 0, FieldTable::default()).await;
    let d = next_delivery(&mut reviewer).await;
    assert_eq!(deaths(&d).len(), 1);
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let d = next_delivery(&mut reviewer).await;
    assert_eq!(body(&d), "boomerang");
    let x_death = deaths(&d);
    assert_eq!(x_death.len(), 2, "{x_death:?}");
    // The repeated (queue, reason) moves to the front with its count raised.
    assert_death(&x_death[0], 2, "expired", "ttl", "", &["ttl"]);
    assert_death(&x_death[1], 1, "rejected", "review", "", &["review"]);
    assert_eq!(
        header(&d, "x-first-death-reason").as_deref(),
        Some("expired")
    );
    assert_eq!(
        header(&d, "x-last-death-reason").as_deref(),
        Some("expired")
    );
    d.ack(BasicAckOptions::default()).await.expect("ack");
    assert_no_delivery(&mut reviewer).await;
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_the_message_without_an_error() {
    let broker = TestBroker::start().await;
    let (conn, ch) = confirming(&broker).await;
    let to_nowhere = table(&[("x-dead-letter-exchange", longstr("no-such-exchange"))]);
    declare(&ch, "orphan", to_nowhere.clone()).await;
    send(&ch, "orphan", "rejected", BasicProperties::default()).await;
    let (worker_ch, mut worker) = consumer_on(&conn, "orphan", "w", 0, FieldTable::default()).await;
    let d = next_delivery(&mut worker).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    assert_no_delivery(&mut worker).await;
    assert_eq!(queue_counts(&worker_ch, "orphan").await, (0, 1));

    let mut expiring_args = to_nowhere;
    expiring_args.insert("x-message-ttl".into(), int(30));
    declare(&ch, "orphan-ttl", expiring_args).await;
    send(&ch, "orphan-ttl", "expired", BasicProperties::default()).await;
    within("the message to expire", async {
        while queue_counts(&ch, "orphan-ttl").await.0 > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(conn.status().connected());
    assert!(worker_ch.status().connected() && ch.status().connected());
    send(&ch, "orphan", "still fine", BasicProperties::default()).await;
    assert_eq!(body(&next_delivery(&mut worker).await), "still fine");
}
