//! Publishing, transaction, confirm, recover and flow errors, and connection.open refusals,
//! answered as RabbitMQ 3.10 answers them (reply code, text and scope).

mod common;

use common::provoke::*;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

// ---------------------------------------------------------------------------------------------
// publishing

#[tokio::test]
async fn publishing_with_immediate_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q15", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "NOT_IMPLEMENTED - immediate=true";
    connection_error(&broker, Via::Event, 540, text, |ch| async move {
        let options = BasicPublishOptions {
            immediate: true,
            ..Default::default()
        };
        ch.basic_publish(
            "".into(),
            "q15".into(),
            options,
            b"now",
            BasicProperties::default(),
        )
        .await
        .map(|_| ())
    })
    .await;
    assert_eq!(
        queue_counts(&ch, "q15").await,
        (0, 0),
        "the immediate message was enqueued"
    );
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_returned_before_its_confirm() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let props = BasicProperties::default().with_content_type("text/plain".into());
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            "nobind".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"back to sender",
            props,
        )
        .await
        .expect("basic.publish");
    let confirmation = within("the publisher confirm", confirm)
        .await
        .expect("confirmation");
    assert!(confirmation.is_ack(), "{confirmation:?}");
    // lapin attaches a basic.return to the ack only if it arrived first.
    let returned = confirmation
        .take_message()
        .expect("the basic.return arrived before the ack");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.exchange.as_str(), "amq.direct");
    assert_eq!(returned.routing_key.as_str(), "nobind");
    assert_eq!(returned.delivery.data, b"back to sender");
    assert_eq!(
        returned
            .delivery
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("text/plain")
    );
}

// ---------------------------------------------------------------------------------------------
// transactions, confirms, recover and flow

#[tokio::test]
async fn switching_between_tx_and_confirm_mode_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    channel_error(
        &conn,
        Via::Reply,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        |ch| async move {
            ch.tx_select().await?;
            ch.tx_select().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await
        },
    )
    .await;
    channel_error(
        &conn,
        Via::Reply,
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        |ch| async move {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.tx_select().await
        },
    )
    .await;
}

#[tokio::test]
async fn commit_or_rollback_without_tx_select_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = "PRECONDITION_FAILED - channel is not transactional";
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.tx_commit().await
    })
    .await;
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.tx_rollback().await
    })
    .await;
    channel_error(&conn, Via::Reply, 406, text, |ch| async move {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        ch.tx_commit().await
    })
    .await;
}

#[tokio::test]
async fn recover_without_requeue_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let text = "NOT_IMPLEMENTED - requeue=false";
    connection_error(&broker, Via::Reply, 540, text, |ch| async move {
        ch.basic_recover(BasicRecoverOptions { requeue: false })
            .await
    })
    .await;
    connection_error(&broker, Via::Event, 540, text, |ch| async move {
        ch.basic_recover_async(BasicRecoverAsyncOptions { requeue: false })
            .await
    })
    .await;
}

#[tokio::test]
async fn channel_flow_active_is_confirmed_and_inactive_closes_the_connection_with_540() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let active = within(
        "channel.flow-ok",
        ch.channel_flow(ChannelFlowOptions { active: true }),
    )
    .await
    .expect("channel.flow active=true");
    assert!(active, "channel.flow-ok should echo active=true");
    let text = "NOT_IMPLEMENTED - active=false";
    connection_error(&broker, Via::Reply, 540, text, |ch| async move {
        ch.channel_flow(ChannelFlowOptions { active: false }).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// connection.open

async fn connect_as(broker: &TestBroker, user: &str, pass: &str, vhost: &str) -> lapin::Error {
    let uri = format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr());
    match within(
        "the refused connection",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    {
        Ok(_) => panic!("connecting as {user} to {vhost:?} succeeded"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let text = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                For details see the broker logfile.";
    for (user, pass) in [("guest", "wrong"), ("nobody", "guest")] {
        // lapin announces authentication_failure_close, so it is told why.
        let err = connect_as(&broker, user, pass, "%2f").await;
        assert_reply(&err, 403, text);
    }
    assert_eq!(broker.server.broker.failed_logins(), 2, "both are counted");
    assert_works(&ch, "a connection opened before the refusals").await;
}

#[tokio::test]
async fn opening_a_missing_vhost_is_refused_with_530() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let err = connect_as(&broker, "guest", "guest", "%2Fnope").await;
    assert_reply(&err, 530, "NOT_ALLOWED - vhost /nope not found");
    assert_works(&ch, "a connection opened before the refusal").await;
}
