//! Flow control: publishers to a queue whose consumers fall behind are paused for a moment at
//! a time, never for good, and never a connection that consumes too (its acks would wait).

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use std::time::Duration;

const MESSAGES: usize = 5_000;

/// Consumes "q" with a prefetch of 10, acking one by one.
async fn consume_slowly(ch: &lapin::Channel) -> lapin::Consumer {
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    ch.basic_consume(
        "q".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap()
}

/// Takes and acks MESSAGES deliveries, numbered in order.
/// The consumer is borrowed: dropping it would cancel it, and the tests count it afterwards.
async fn receive_in_order(consumer: &mut lapin::Consumer) {
    let received = async {
        for i in 0..MESSAGES {
            let delivery = consumer
                .next()
                .await
                .expect("a delivery")
                .expect("no consumer error");
            assert_eq!(delivery.data, i.to_string().as_bytes());
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), received)
        .await
        .expect("every message arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_and_acking_on_one_connection_gets_everything_through() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    let consumer_ch = conn.create_channel().await.unwrap();
    declare_queue(&publisher, "q").await;
    // A small prefetch keeps the consumer behind, so the queue backlogs: the connection's acks
    // must still be read.
    let mut consumer = consume_slowly(&consumer_ch).await;
    let publishing = tokio::spawn(async move {
        for i in 0..MESSAGES {
            publish(&publisher, "", "q", i.to_string().as_bytes()).await;
        }
        publisher
    });
    receive_in_order(&mut consumer).await;
    let publisher = publishing.await.unwrap();
    assert_eq!(queue_counts(&publisher, "q").await, (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_ahead_of_a_slow_consumer_still_gets_everything_through() {
    let broker = TestBroker::start().await;
    let (_pc, publisher) = broker.channel().await;
    let (_cc, consumer_ch) = broker.channel().await;
    declare_queue(&publisher, "q").await;
    let mut consumer = consume_slowly(&consumer_ch).await;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let publishing = tokio::spawn(async move {
        let mut confirms = Vec::with_capacity(MESSAGES);
        for i in 0..MESSAGES {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    "q".into(),
                    BasicPublishOptions::default(),
                    i.to_string().as_bytes(),
                    Default::default(),
                )
                .await
                .expect("basic.publish");
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.expect("a confirm").is_ack());
        }
    });
    receive_in_order(&mut consumer).await;
    within("every confirm", publishing)
        .await
        .expect("the publisher is done");
}
