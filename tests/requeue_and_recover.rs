//! Rejections and requeueing to the original position, basic.cancel and basic.recover, and
//! acknowledgements as a client sees them.

mod common;

use common::flows::*;
use common::*;
use futures_lite::StreamExt;
use lapin::options::*;

// ---------------------------------------------------------------------------------------------
// rejections and requeueing

#[tokio::test]
async fn nack_with_requeue_puts_the_message_back_at_its_original_position_redelivered() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    assert_eq!(
        (body(&one.delivery).as_str(), body(&two.delivery).as_str()),
        ("1", "2")
    );

    ch.basic_nack(
        one.delivery.delivery_tag,
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    )
    .await
    .unwrap();
    let again = get(&ch, "q").await.expect("the requeued message");
    assert_eq!(body(&again.delivery), "1", "back at the head, before 3");
    assert!(again.delivery.redelivered);
    assert_eq!(again.message_count, 1);
    let three = get(&ch, "q").await.unwrap();
    assert_eq!(body(&three.delivery), "3");
    assert!(!three.delivery.redelivered);
    assert!(
        get(&ch, "q").await.is_none(),
        "2 is still unacked, not requeued"
    );
}

#[tokio::test]
async fn reject_with_requeue_puts_the_message_back_at_its_original_position_redelivered() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let _one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_reject(
        two.delivery.delivery_tag,
        BasicRejectOptions { requeue: true },
    )
    .await
    .unwrap();
    let again = get(&ch, "q").await.unwrap();
    assert_eq!(body(&again.delivery), "2");
    assert!(again.delivery.redelivered);
    assert_eq!(body(&get(&ch, "q").await.unwrap().delivery), "3");
}

#[tokio::test]
async fn nack_multiple_with_requeue_restores_all_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=4).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let mut tags = Vec::new();
    for _ in 1..=4 {
        tags.push(next_delivery(&mut consumer).await.delivery_tag);
    }
    // Acks 4 first, so the multiple nack of 3 covers 1, 2 and 3 only.
    ch.basic_ack(tags[3], BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_nack(
        tags[2],
        BasicNackOptions {
            requeue: true,
            multiple: true,
        },
    )
    .await
    .unwrap();
    for expected in ["1", "2", "3"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), expected);
        assert!(d.redelivered);
    }
    assert_no_delivery(&mut consumer).await;
}

#[tokio::test]
async fn reject_and_nack_without_requeue_drop_the_message() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let one = get(&ch, "q").await.unwrap();
    let two = get(&ch, "q").await.unwrap();
    ch.basic_reject(
        one.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    ch.basic_nack(
        two.delivery.delivery_tag,
        BasicNackOptions {
            requeue: false,
            multiple: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(body(&get(&ch, "q").await.unwrap().delivery), "3");
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let three = get(&other, "q")
        .await
        .expect("3 was unacked and is requeued with its channel");
    assert_eq!(body(&three.delivery), "3");
    assert!(
        get(&other, "q").await.is_none(),
        "the rejected and nacked messages are gone"
    );
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order_for_another_consumer() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=5).await;
    qos(&ch, 3, false).await;
    let mut first = consume(&ch, "q", "first").await;
    for expected in ["1", "2", "3"] {
        assert_eq!(body(&next_delivery(&mut first).await), expected);
    }
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    assert_eq!(queue_counts(&other, "q").await, (5, 0));
    let mut second = consume(&other, "q", "second").await;
    for expected in 1..=5 {
        let d = next_delivery(&mut second).await;
        assert_eq!(body(&d), expected.to_string());
        assert_eq!(d.redelivered, expected <= 3, "message {expected}");
    }
    assert_no_delivery(&mut second).await;
}

#[tokio::test]
async fn closing_a_connection_requeues_its_unacked_messages_in_order_for_another_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=4).await;
    // Two channels hold deliveries: one through a consumer, one through basic.get.
    qos(&ch, 2, false).await;
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "1");
    assert_eq!(body(&next_delivery(&mut consumer).await), "2");
    let ch2 = conn.create_channel().await.unwrap();
    assert_eq!(body(&get(&ch2, "q").await.unwrap().delivery), "3");
    conn.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    let mut after = consume(&other, "q", "after").await;
    for expected in 1..=4 {
        let d = next_delivery(&mut after).await;
        assert_eq!(body(&d), expected.to_string());
        assert_eq!(d.redelivered, expected <= 3, "message {expected}");
    }
    assert_no_delivery(&mut after).await;
}

// ---------------------------------------------------------------------------------------------
// cancel and recover

#[tokio::test]
async fn basic_cancel_stops_deliveries_and_drops_the_consumer_count() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(queue_counts(&ch, "q").await, (0, 1));
    publish(&ch, "", "q", b"before").await;
    let held = next_delivery(&mut consumer).await;

    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert_eq!(queue_counts(&ch, "q").await, (0, 0));
    publish(&ch, "", "q", b"after").await;
    match within("the consumer stream to end", consumer.next()).await {
        None => {}
        Some(d) => panic!("delivery after basic.cancel: {:?}", d.map(|d| body(&d))),
    }
    assert_eq!(
        queue_counts(&ch, "q").await,
        (1, 0),
        "the new message waits in the queue"
    );

    // A delivery made before the cancel stays unacked on the channel and can still be acked.
    held.ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert_eq!(body(&get(&other, "q").await.unwrap().delivery), "after");
    assert!(
        get(&other, "q").await.is_none(),
        "the acked delivery was not requeued"
    );
}

#[tokio::test]
async fn basic_recover_with_requeue_redelivers_unacked_messages() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let first = next_delivery(&mut consumer).await;
    for expected in ["2", "3"] {
        assert_eq!(body(&next_delivery(&mut consumer).await), expected);
    }
    first.ack(BasicAckOptions::default()).await.unwrap();

    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    for expected in ["2", "3"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), expected);
        assert!(d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_no_delivery(&mut consumer).await;
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert_eq!(queue_counts(&other, "q").await, (0, 0));
}

#[tokio::test]
async fn basic_recover_requeues_basic_get_deliveries() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=2).await;
    get(&ch, "q").await.unwrap();
    get(&ch, "q").await.unwrap();
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    for expected in ["1", "2"] {
        let m = get(&ch, "q").await.expect("requeued by basic.recover");
        assert_eq!(body(&m.delivery), expected);
        assert!(m.delivery.redelivered);
    }
}

// ---------------------------------------------------------------------------------------------
// acknowledgements

#[tokio::test]
async fn multiple_ack_acknowledges_every_delivery_up_to_the_tag() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=5).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let mut deliveries = Vec::new();
    for _ in 0..5 {
        deliveries.push(next_delivery(&mut consumer).await);
    }
    ch.basic_ack(
        deliveries[2].delivery_tag,
        BasicAckOptions { multiple: true },
    )
    .await
    .unwrap();
    ch.close(200, "bye".into()).await.unwrap();

    let (_conn2, other) = broker.channel().await;
    for expected in ["4", "5"] {
        let m = get(&other, "q")
            .await
            .expect("unacked deliveries were requeued");
        assert_eq!(body(&m.delivery), expected);
        assert!(m.delivery.redelivered);
    }
    assert!(
        get(&other, "q").await.is_none(),
        "1 to 3 were acked by the one multiple ack"
    );
}

#[tokio::test]
async fn multiple_ack_of_tag_zero_acknowledges_everything_outstanding() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    publish_numbered(&ch, "q", 1..=3).await;
    for _ in 0..3 {
        get(&ch, "q").await.unwrap();
    }
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let (_conn2, other) = broker.channel().await;
    assert!(get(&other, "q").await.is_none());
}
