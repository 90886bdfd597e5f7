//! Consumer and acknowledgement errors a client can provoke, answered as RabbitMQ 3.10
//! answers them (reply code, text and scope): basic.consume, cancel, qos, ack, nack, reject.

mod common;

use common::provoke::*;
use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

// ---------------------------------------------------------------------------------------------
// consumers

#[tokio::test]
async fn reusing_a_consumer_tag_on_one_channel_closes_the_connection_with_530() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let _first = consume(&ch, "q19", "t1", false)
        .await
        .expect("basic.consume");
    let other = open_channel(&conn).await;
    let _second = consume(&other, "q19", "t1", false)
        .await
        .expect("the same tag on another channel is fine");

    let text = "NOT_ALLOWED - attempt to reuse consumer tag 't1'";
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19", "t1", false).await?;
        consume(&ch, "q19", "t1", false).await
    })
    .await;
    assert!(conn.status().connected());
}

#[tokio::test]
async fn exclusive_consumers_conflict_with_others_with_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["q19", "q19x"] {
        queue(&ch, name, Default::default(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
    let _plain = consume(&ch, "q19", "plain", false)
        .await
        .expect("basic.consume");
    let _sole = consume(&ch, "q19x", "sole", true)
        .await
        .expect("exclusive basic.consume");

    let in_use = |name: &str| format!("ACCESS_REFUSED - queue '{name}' {VHOST} in exclusive use");
    for (name, exclusive) in [("q19", true), ("q19x", false), ("q19x", true)] {
        channel_error(&conn, Via::Reply, 403, &in_use(name), |ch| async move {
            consume(&ch, name, "late", exclusive).await
        })
        .await;
    }
}

#[tokio::test]
async fn consuming_or_getting_from_a_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!("NOT_FOUND - no queue 'nosuchq19' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        consume(&ch, "nosuchq19", "c", false).await
    })
    .await;
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        get(&ch, "nosuchq19").await.map(|m| m.is_some())
    })
    .await;
}

#[tokio::test]
async fn cancelling_an_unknown_or_cancelled_consumer_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let consumer = ch
        .basic_consume(
            "q19".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let tag = consumer.tag().to_string();
    assert!(
        tag.starts_with("amq.ctag-") && tag.len() == "amq.ctag-".len() + 22,
        "server-generated consumer tag {tag:?}"
    );
    for t in ["never-existed", tag.as_str(), tag.as_str()] {
        within(
            "basic.cancel-ok",
            ch.basic_cancel(t.into(), BasicCancelOptions::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("basic.cancel of {t}: {e}"));
    }
    assert_eq!(queue_counts(&ch, "q19").await, (0, 0));
}

#[tokio::test]
async fn a_consumer_of_a_deleted_queue_is_cancelled_and_cancelling_it_again_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q24", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let mut consumer = ch
        .basic_consume(
            "q24".into(),
            "t24".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ch.queue_delete("q24".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    assert!(
        within("the server's basic.cancel", consumer.next())
            .await
            .is_none(),
        "the consumer of a deleted queue was not cancelled"
    );
    within(
        "basic.cancel-ok",
        ch.basic_cancel("t24".into(), BasicCancelOptions::default()),
    )
    .await
    .expect("cancelling a consumer the server already cancelled");
    assert_works(&ch, "the channel after the cancels").await;
}

#[tokio::test]
async fn an_auto_delete_queue_that_never_had_a_consumer_survives_its_connection() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    queue(&ch, "q24a", options, FieldTable::default())
        .await
        .expect("queue.declare");
    within("connection.close-ok", conn.close(200, "bye".into()))
        .await
        .expect("connection.close");
    let (_conn, ch) = broker.channel().await;
    assert_eq!(queue_counts(&ch, "q24a").await, (0, 0));
}

#[tokio::test]
async fn a_consumer_priority_that_is_not_an_integer_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19e", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = format!(
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q19e' {VHOST}: \
         \"expected integer, got longstr\""
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        ch.basic_consume(
            "q19e".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", longstr("abc"))]),
        )
        .await
        .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn consume_arguments_of_the_wrong_type_are_406_with_rabbitmqs_texts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19f", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let invalid = |arg: &str, detail: &str| {
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue 'q19f' {VHOST}: {detail}")
    };
    let failover = "x-cancel-on-ha-failover";
    let cases = [
        (
            vec![("x-priority", AMQPValue::Boolean(true))],
            invalid("x-priority", "\"expected integer, got bool\""),
        ),
        (
            vec![(failover, longstr("yes"))],
            invalid(failover, "{unacceptable_type,longstr}"),
        ),
        (
            vec![(failover, long(1))],
            invalid(failover, "{unacceptable_type,long}"),
        ),
        (
            vec![(failover, AMQPValue::Void)],
            invalid(failover, "{unacceptable_type,void}"),
        ),
        // x-priority is checked first, whatever the order of the table.
        (
            vec![(failover, longstr("yes")), ("x-priority", longstr("high"))],
            invalid("x-priority", "\"expected integer, got longstr\""),
        ),
        // Only a stream queue reads from an offset.
        (
            vec![("x-stream-offset", longstr("first"))],
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'q19f' {VHOST} \
                 of queue type rabbit_classic_queue"
            ),
        ),
    ];
    for (args, text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            ch.basic_consume(
                "q19f".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                table(&args),
            )
            .await
            .map(|_| ())
        })
        .await;
    }
    assert_eq!(
        queue_counts(&ch, "q19f").await,
        (0, 0),
        "no consumer was added"
    );
}

#[tokio::test]
async fn well_typed_and_unknown_consume_arguments_are_accepted() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19g", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let accepted = [
        ("x-priority", long(1 << 40)),
        ("x-priority", AMQPValue::ShortShortInt(-3)),
        ("x-cancel-on-ha-failover", AMQPValue::Boolean(true)),
        ("x-no-such-argument", longstr("ignored")),
    ];
    let mut consumers = Vec::new();
    for (i, (arg, value)) in accepted.into_iter().enumerate() {
        let consumer = within(
            "basic.consume-ok",
            ch.basic_consume(
                "q19g".into(),
                format!("c{i}").as_str().into(),
                BasicConsumeOptions::default(),
                table(&[(arg, value.clone())]),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("basic.consume with {arg} = {value:?}: {e}"));
        consumers.push(consumer);
    }
    assert_eq!(queue_counts(&ch, "q19g").await, (0, 4));
}

#[tokio::test]
async fn a_reused_consumer_tag_is_refused_before_the_queue_or_arguments_are_looked_at() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q19h", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "NOT_ALLOWED - attempt to reuse consumer tag 't1'";
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19h", "t1", false).await?;
        consume(&ch, "nosuchq19h", "t1", false).await
    })
    .await;
    connection_error(&broker, Via::Reply, 530, text, |ch| async move {
        let _first = consume(&ch, "q19h", "t1", false).await?;
        ch.basic_consume(
            "q19h".into(),
            "t1".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", longstr("high"))]),
        )
        .await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// acknowledgements

#[tokio::test]
async fn acknowledging_an_unknown_delivery_tag_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 99";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ack(&ch, 99, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_nack(99, BasicNackOptions::default()).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_reject(99, BasicRejectOptions::default()).await
    })
    .await;
    // With a delivery outstanding too, the unknown tag is still refused, and that delivery
    // goes back to the queue with the channel.
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        get_one(&ch, "q19").await?;
        ack(&ch, 99, false).await
    })
    .await;
    assert_eq!(queue_counts(&ch, "q19").await, (1, 0));
}

#[tokio::test]
async fn acknowledging_tag_0_alone_is_406_with_or_without_outstanding_deliveries() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 0";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ack(&ch, 0, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        get_one(&ch, "q19").await?;
        ack(&ch, 0, false).await
    })
    .await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.basic_reject(0, BasicRejectOptions::default()).await
    })
    .await;
}

#[tokio::test]
async fn acknowledging_everything_with_tag_0_and_multiple_is_fine_when_nothing_is_outstanding() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ack(&ch, 0, true).await.expect("basic.ack(0, multiple)");
    // A reply to a later method proves the server took the ack without closing the channel.
    assert_works(&ch, "the channel after basic.ack(0, multiple)").await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn a_multiple_ack_must_name_an_outstanding_tag() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 5";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        let first = get_one(&ch, "q19").await?;
        let second = get_one(&ch, "q19").await?;
        assert_eq!((first, second), (1, 2));
        ack(&ch, 5, true).await
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q19").await,
        (2, 0),
        "the refused multiple ack acknowledged something"
    );
}

#[tokio::test]
async fn acknowledging_a_delivery_twice_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q19", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "PRECONDITION_FAILED - unknown delivery tag 1";
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        let tag = get_one(&ch, "q19").await?;
        assert_eq!(tag, 1);
        ack(&ch, tag, false).await?;
        ack(&ch, tag, false).await
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q19").await,
        (0, 0),
        "the first ack did not take the message"
    );

    // A no-ack delivery has nothing to acknowledge.
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        publish(&ch, "", "q19", b"m").await;
        let got = ch
            .basic_get("q19".into(), BasicGetOptions { no_ack: true })
            .await?
            .expect("a message to get");
        ack(&ch, got.delivery.delivery_tag, false).await
    })
    .await;

    // In a transaction the second ack is refused at once, not at commit.
    publish(&ch, "", "q19", b"m").await;
    channel_error(&conn, Via::Event, 406, text, |ch| async move {
        ch.tx_select().await?;
        let got = get(&ch, "q19").await?.expect("a message to get");
        let tag = got.delivery.delivery_tag;
        ack(&ch, tag, false).await?;
        ack(&ch, tag, false).await
    })
    .await;
}
