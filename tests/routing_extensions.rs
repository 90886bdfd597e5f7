//! RabbitMQ's routing extensions as a client sees them: alternate exchanges (chains, loops,
//! mandatory), sender-selected distribution (CC and BCC headers) and direct reply-to
//! (`amq.rabbitmq.reply-to`), with RabbitMQ 3.10's reply codes and texts for their errors.
//!
//! A publish and a basic.get on the same channel are handled in order, so reading queues right
//! after publishing observes exactly where a message went.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Event, ExchangeKind};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

// ---------------------------------------------------------------------------------------------
// helpers

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn longstr(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// An array of longstr, the type RabbitMQ wants for CC and BCC.
fn routes(keys: &[&str]) -> AMQPValue {
    let values: Vec<AMQPValue> = keys.iter().map(|k| longstr(k)).collect();
    AMQPValue::FieldArray(FieldArray::from(values))
}

/// Declares a non-durable exchange, with an alternate exchange if `ae` names one.
async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind, ae: Option<&str>) {
    let args = match ae {
        Some(ae) => table(&[("alternate-exchange", longstr(ae))]),
        None => FieldTable::default(),
    };
    ch.exchange_declare(name.into(), kind, ExchangeDeclareOptions::default(), args)
        .await
        .expect("exchange.declare");
}

/// Declares a queue and binds it to `exchange` with `key`.
async fn bound_queue(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    declare_queue(ch, queue).await;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

/// Takes every message in a queue (auto-ack) and returns their bodies in order.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let get = || ch.basic_get(queue.into(), BasicGetOptions { no_ack: true });
    while let Some(m) = within("basic.get", get()).await.expect("basic.get") {
        bodies.push(String::from_utf8(m.delivery.data.clone()).expect("utf-8 body"));
    }
    bodies
}

/// A channel in confirm mode, so that a mandatory publish's return (or its absence) is known
/// once its confirm arrives.
async fn confirming(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel opens");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// Publishes with mandatory set on a confirming channel; the message the broker returned, if
/// it did.
async fn publish_mandatory(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Option<lapin::message::BasicReturnMessage> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirmation = within(
        "the publisher confirm",
        ch.basic_publish(exchange.into(), key.into(), options, body, props)
            .await
            .expect("basic.publish"),
    )
    .await
    .expect("publisher confirm");
    let Confirmation::Ack(returned) = confirmation else {
        panic!("expected an ack, got {confirmation:?}");
    };
    returned
}

async fn publish_props(ch: &Channel, exchange: &str, key: &str, body: &[u8], p: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        p,
    )
    .await
    .expect("basic.publish");
}

/// Publishes on `ch` and returns the error the server closes the channel with, checking that
/// only the channel closed.
async fn publish_refused(
    conn: &Connection,
    ch: &Channel,
    exchange: &str,
    key: &str,
    props: BasicProperties,
) -> lapin::Error {
    // Listen before acting, so the close cannot be missed.
    let mut events = Box::pin(conn.events_listener());
    publish_props(ch, exchange, key, b"refused", props).await;
    let err = within("the server's channel.close", async {
        loop {
            match events.next().await {
                Some(Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await;
    assert!(!ch.status().connected(), "the failed channel is still open");
    assert!(
        conn.status().connected(),
        "a channel error closed the connection"
    );
    err
}

#[track_caller]
fn assert_reply(err: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(err), Some(code), "reply code of: {err}");
    assert_eq!(
        reply_text(err).as_deref(),
        Some(text),
        "reply text of: {err}"
    );
}

/// Starts a no-ack consumer of the direct reply-to pseudo-queue.
async fn consume_replies(ch: &Channel) -> lapin::Consumer {
    ch.basic_consume(
        REPLY_TO.into(),
        "replies".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume of amq.rabbitmq.reply-to")
}

async fn consume(ch: &Channel, queue: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

fn request_props() -> BasicProperties {
    BasicProperties::default()
        .with_reply_to(REPLY_TO.into())
        .with_correlation_id("call-1".into())
}

/// Publishes a request to queue `rpc` asking for a direct reply, and returns the reply name
/// the server side saw in its reply_to.
async fn send_request(client: &Channel, server: &mut lapin::Consumer) -> String {
    publish_props(client, "", "rpc", b"question", request_props()).await;
    let request = next_delivery(server).await;
    assert_eq!(request.data, b"question");
    let reply_to = request
        .properties
        .reply_to()
        .as_ref()
        .expect("the request carries a reply_to")
        .to_string();
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 1,
        "reply_to was not rewritten to a reply name: {reply_to}"
    );
    assert_eq!(
        request
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("call-1"),
        "the other properties are kept"
    );
    reply_to
}

/// Passive queue.declare on a disposable channel: (message count, consumer count), or the
/// error.
async fn probe(conn: &Connection, name: &str) -> lapin::Result<(u32, u32)> {
    let ch = conn.create_channel().await.expect("channel opens");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(name.into(), passive, FieldTable::default())
        .await?;
    Ok((q.message_count(), q.consumer_count()))
}

// ---------------------------------------------------------------------------------------------
// alternate exchanges

#[tokio::test]
async fn what_an_exchange_cannot_route_goes_to_its_alternate_exchange() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "my-ae", ExchangeKind::Fanout, None).await;
    exchange(&ch, "my-direct", ExchangeKind::Direct, Some("my-ae")).await;
    bound_queue(&ch, "routed", "my-direct", "key1").await;
    bound_queue(&ch, "unrouted", "my-ae", "").await;

    publish(&ch, "my-direct", "key1", b"matched").await;
    publish(&ch, "my-direct", "key2", b"unmatched").await;

    assert_eq!(drain(&ch, "routed").await, ["matched"]);
    assert_eq!(
        drain(&ch, "unrouted").await,
        ["unmatched"],
        "only what the exchange could not route goes to the alternate exchange"
    );
}

#[tokio::test]
async fn alternate_exchanges_chain_until_one_routes() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "ae-last", ExchangeKind::Fanout, None).await;
    exchange(&ch, "ae-middle", ExchangeKind::Topic, Some("ae-last")).await;
    exchange(&ch, "ae-first", ExchangeKind::Direct, Some("ae-middle")).await;
    bound_queue(&ch, "by-middle", "ae-middle", "only.#").await;
    bound_queue(&ch, "by-last", "ae-last", "").await;

    publish(&ch, "ae-first", "only.this", b"one").await;
    publish(&ch, "ae-first", "other", b"two").await;

    assert_eq!(drain(&ch, "by-middle").await, ["one"]);
    assert_eq!(drain(&ch, "by-last").await, ["two"]);
}

#[tokio::test]
async fn a_loop_of_alternate_exchanges_ends_and_the_message_is_unroutable() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    // a → b → a, and c → c.
    exchange(&ch, "loop-a", ExchangeKind::Direct, Some("loop-b")).await;
    exchange(&ch, "loop-b", ExchangeKind::Direct, Some("loop-a")).await;
    exchange(&ch, "loop-c", ExchangeKind::Direct, Some("loop-c")).await;
    bound_queue(&ch, "in-b", "loop-b", "hit").await;

    for x in ["loop-a", "loop-b", "loop-c"] {
        let returned = publish_mandatory(&ch, x, "miss", b"lost", BasicProperties::default())
            .await
            .unwrap_or_else(|| panic!("a message looping from {x} was not returned"));
        assert_eq!(
            (returned.reply_code, returned.reply_text.as_str()),
            (312, "NO_ROUTE")
        );
        assert_eq!(returned.delivery.exchange.as_str(), x);
    }
    let returned = publish_mandatory(&ch, "loop-a", "hit", b"found", Default::default()).await;
    assert!(
        returned.is_none(),
        "routed through the loop's second exchange"
    );
    assert_eq!(
        drain(&ch, "in-b").await,
        ["found"],
        "delivered exactly once"
    );
}

#[tokio::test]
async fn a_message_routed_by_an_alternate_exchange_counts_as_routed_for_mandatory() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    exchange(&ch, "m-ae", ExchangeKind::Fanout, None).await;
    exchange(&ch, "m-main", ExchangeKind::Direct, Some("m-ae")).await;
    exchange(
        &ch,
        "m-missing-ae",
        ExchangeKind::Direct,
        Some("no-such-exchange"),
    )
    .await;
    exchange(&ch, "m-empty-ae", ExchangeKind::Direct, Some("m-main")).await;
    bound_queue(&ch, "caught", "m-ae", "").await;

    let returned = publish_mandatory(&ch, "m-main", "x", b"via ae", Default::default()).await;
    assert!(returned.is_none(), "returned although the AE routed it");
    assert_eq!(drain(&ch, "caught").await, ["via ae"]);

    // A missing alternate exchange is ignored: the message is simply unroutable.
    let returned = publish_mandatory(&ch, "m-missing-ae", "x", b"lost", Default::default())
        .await
        .expect("returned: its alternate exchange does not exist");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.delivery.exchange.as_str(), "m-missing-ae");

    // An AE whose own AE routes it: routed two hops away, still not returned.
    let returned = publish_mandatory(&ch, "m-empty-ae", "x", b"two hops", Default::default()).await;
    assert!(returned.is_none());
    assert_eq!(drain(&ch, "caught").await, ["two hops"]);
}

#[tokio::test]
async fn an_exchange_reached_through_an_exchange_binding_uses_its_own_alternate_exchange() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "e2e-ae", ExchangeKind::Fanout, None).await;
    exchange(&ch, "e2e-front", ExchangeKind::Fanout, None).await;
    exchange(&ch, "e2e-inner", ExchangeKind::Direct, Some("e2e-ae")).await;
    ch.exchange_bind(
        "e2e-inner".into(),
        "e2e-front".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    bound_queue(&ch, "e2e-routed", "e2e-inner", "k").await;
    bound_queue(&ch, "e2e-caught", "e2e-ae", "").await;

    publish(&ch, "e2e-front", "k", b"bound").await;
    publish(&ch, "e2e-front", "other", b"unbound").await;

    assert_eq!(drain(&ch, "e2e-routed").await, ["bound"]);
    assert_eq!(drain(&ch, "e2e-caught").await, ["unbound"]);
}

#[tokio::test]
async fn a_durable_exchange_keeps_its_alternate_exchange_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = TestBroker::start_in(dir.path()).await;
    {
        let (_conn, ch) = broker.channel().await;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            "d-ae".into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
        let args = table(&[("alternate-exchange", longstr("d-ae"))]);
        ch.exchange_declare("d-main".into(), ExchangeKind::Direct, durable, args)
            .await
            .expect("exchange.declare");
        let durable_q = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("d-caught".into(), durable_q, FieldTable::default())
            .await
            .expect("queue.declare");
        ch.queue_bind(
            "d-caught".into(),
            "d-ae".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
    }
    within("a graceful stop", broker.server.stop())
        .await
        .expect("the broker stops cleanly");
    let broker = TestBroker::start_in(dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "d-main", "nowhere", b"after restart").await;
    assert_eq!(drain(&ch, "d-caught").await, ["after restart"]);
}

// ---------------------------------------------------------------------------------------------
// sender-selected distribution: CC and BCC

#[tokio::test]
async fn cc_and_bcc_headers_add_routing_keys_and_each_queue_gets_one_copy() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for q in ["to", "cc", "bcc", "other"] {
        bound_queue(&ch, &format!("ssd-{q}"), "amq.direct", q).await;
    }
    bound_queue(&ch, "ssd-topic", "amq.topic", "*.cc").await;

    let headers = table(&[
        ("CC", routes(&["cc", "to"])),
        ("BCC", routes(&["bcc", "cc"])),
    ]);
    let props = BasicProperties::default().with_headers(headers.clone());
    publish_props(&ch, "amq.direct", "to", b"direct", props.clone()).await;
    let props = BasicProperties::default().with_headers(table(&[("CC", routes(&["a.cc"]))]));
    publish_props(&ch, "amq.topic", "nothing", b"topic", props).await;

    assert_eq!(drain(&ch, "ssd-to").await, ["direct"]);
    assert_eq!(drain(&ch, "ssd-cc").await, ["direct"]);
    assert_eq!(drain(&ch, "ssd-bcc").await, ["direct"]);
    assert!(drain(&ch, "ssd-other").await.is_empty());
    assert_eq!(drain(&ch, "ssd-topic").await, ["topic"]);
}

#[tokio::test]
async fn cc_on_the_default_exchange_names_more_queues() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for q in ["dq-1", "dq-2", "dq-3"] {
        declare_queue(&ch, q).await;
    }
    let headers = table(&[
        ("CC", routes(&["dq-2", "missing"])),
        ("BCC", routes(&["dq-3"])),
    ]);
    let props = BasicProperties::default().with_headers(headers);
    publish_props(&ch, "", "dq-1", b"m", props).await;
    for q in ["dq-1", "dq-2", "dq-3"] {
        assert_eq!(drain(&ch, q).await, ["m"], "{q}");
    }
}

#[tokio::test]
async fn bcc_is_removed_from_delivered_headers_and_cc_is_kept() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    bound_queue(&ch, "hdr-to", "amq.direct", "to").await;
    bound_queue(&ch, "hdr-bcc", "amq.direct", "secret").await;
    let mut consumer = consume(&ch, "hdr-bcc").await;
    let headers = table(&[
        ("CC", routes(&["nobody"])),
        ("BCC", routes(&["secret"])),
        ("kept", longstr("yes")),
    ]);
    let props = BasicProperties::default()
        .with_headers(headers)
        .with_message_id("m-7".into());
    publish_props(&ch, "amq.direct", "to", b"body", props).await;

    let expected = table(&[("CC", routes(&["nobody"])), ("kept", longstr("yes"))]);
    let delivered = next_delivery(&mut consumer).await;
    assert_eq!(delivered.data, b"body");
    assert_eq!(
        delivered.routing_key.as_str(),
        "to",
        "the published routing key"
    );
    assert_eq!(delivered.properties.headers().as_ref(), Some(&expected));
    assert_eq!(
        delivered
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some("m-7")
    );
    let got = ch
        .basic_get("hdr-to".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("a message in hdr-to");
    assert_eq!(got.delivery.properties.headers().as_ref(), Some(&expected));

    // A message with CC alone keeps its headers as they were.
    let only_cc = table(&[("CC", routes(&["secret"]))]);
    let props = BasicProperties::default().with_headers(only_cc.clone());
    publish_props(&ch, "amq.direct", "to", b"cc only", props).await;
    let delivered = next_delivery(&mut consumer).await;
    assert_eq!(delivered.properties.headers().as_ref(), Some(&only_cc));
}

#[tokio::test]
async fn a_mandatory_message_routed_only_by_its_cc_is_not_returned() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    bound_queue(&ch, "cc-only", "amq.direct", "copy").await;
    let props = BasicProperties::default().with_headers(table(&[("BCC", routes(&["copy"]))]));
    let returned = publish_mandatory(&ch, "amq.direct", "nowhere", b"m", props).await;
    assert!(returned.is_none(), "its BCC routed it");
    assert_eq!(drain(&ch, "cc-only").await, ["m"]);

    let props = BasicProperties::default().with_headers(table(&[("CC", routes(&["nope"]))]));
    let returned = publish_mandatory(&ch, "amq.direct", "nowhere", b"m", props)
        .await
        .expect("returned: neither key routes");
    assert_eq!(returned.reply_code, 312);
}

#[tokio::test]
async fn a_cc_header_that_is_not_an_array_closes_the_channel_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for (header, value, kind) in [
        ("CC", longstr("one"), "longstr"),
        ("BCC", AMQPValue::LongLongInt(5), "long"),
    ] {
        let ch = conn.create_channel().await.expect("channel opens");
        let props = BasicProperties::default().with_headers(table(&[(header, value)]));
        let err = publish_refused(&conn, &ch, "amq.direct", "k", props).await;
        let text = format!(
            "PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,\"{header}\",{kind}}}"
        );
        assert_reply(&err, 406, &text);
    }
}

// ---------------------------------------------------------------------------------------------
// direct reply-to

#[tokio::test]
async fn direct_reply_to_round_trip_between_two_connections() {
    let broker = TestBroker::start().await;
    let (_server_conn, server) = broker.channel().await;
    declare_queue(&server, "rpc").await;
    let mut requests = consume(&server, "rpc").await;
    let (client_conn, client) = broker.channel().await;
    let mut replies = consume_replies(&client).await;

    let reply_to = send_request(&client, &mut requests).await;
    assert_eq!(
        probe(&client_conn, &reply_to)
            .await
            .expect("the reply name exists"),
        (0, 1),
        "a reply name declares as an empty queue with one consumer"
    );
    let props = BasicProperties::default().with_correlation_id("call-1".into());
    publish_props(&server, "", &reply_to, b"answer", props).await;

    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.data, b"answer");
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert!(!reply.redelivered);
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("call-1")
    );
    // A second call on the same channel gets the same name, and its reply arrives too.
    assert_eq!(send_request(&client, &mut requests).await, reply_to);
    publish(&server, "", &reply_to, b"second answer").await;
    assert_eq!(next_delivery(&mut replies).await.data, b"second answer");
    assert_no_delivery(&mut replies).await;
}

#[tokio::test]
async fn one_channel_can_both_ask_and_answer() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "rpc").await;
    let mut requests = consume(&ch, "rpc").await;
    let mut replies = consume_replies(&ch).await;
    let reply_to = send_request(&ch, &mut requests).await;
    publish(&ch, "", &reply_to, b"to myself").await;
    assert_eq!(next_delivery(&mut replies).await.data, b"to myself");
}

#[tokio::test]
async fn a_mandatory_reply_is_delivered_and_also_returned_as_rabbitmq_does() {
    // RabbitMQ's docs: with mandatory, a reply name counts as no queue, so the reply is
    // returned with NO_ROUTE even though the requester gets it.
    let broker = TestBroker::start().await;
    let server_conn = broker.connect().await;
    let server = confirming(&server_conn).await;
    declare_queue(&server, "rpc").await;
    let mut requests = consume(&server, "rpc").await;
    let (_client_conn, client) = broker.channel().await;
    let mut replies = consume_replies(&client).await;
    let reply_to = send_request(&client, &mut requests).await;

    let returned = publish_mandatory(&server, "", &reply_to, b"answer", Default::default())
        .await
        .expect("a mandatory reply is returned");
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(returned.delivery.routing_key.as_str(), reply_to);
    assert_eq!(next_delivery(&mut replies).await.data, b"answer");
}

#[tokio::test]
async fn replies_to_a_requester_that_went_away_are_dropped_or_returned_if_mandatory() {
    let broker = TestBroker::start().await;
    let server_conn = broker.connect().await;
    let server = confirming(&server_conn).await;
    declare_queue(&server, "rpc").await;
    let mut requests = consume(&server, "rpc").await;

    // The requester's channel closes; then its whole connection does.
    let (client_conn, client) = broker.channel().await;
    let _replies = consume_replies(&client).await;
    let closed_channel = send_request(&client, &mut requests).await;
    client
        .close(200, "done".into())
        .await
        .expect("channel.close");
    let other = client_conn.create_channel().await.expect("channel opens");
    let _replies = consume_replies(&other).await;
    let closed_connection = send_request(&other, &mut requests).await;
    client_conn
        .close(200, "done".into())
        .await
        .expect("connection.close");

    for reply_to in [closed_channel, closed_connection] {
        let err = probe(&server_conn, &reply_to)
            .await
            .expect_err("the reply name of a gone consumer does not exist");
        assert_reply(
            &err,
            404,
            &format!("NOT_FOUND - no queue '{reply_to}' in vhost '/'"),
        );
        let returned = publish_mandatory(&server, "", &reply_to, b"late", Default::default())
            .await
            .expect("returned");
        assert_eq!(returned.reply_code, 312);
        publish(&server, "", &reply_to, b"late").await;
    }
    // Still serving: the dropped replies closed nothing.
    declare_queue(&server, "after").await;
    publish(&server, "", "after", b"fine").await;
    assert_eq!(drain(&server, "after").await, ["fine"]);
}

#[tokio::test]
async fn declaring_the_pseudo_queue_succeeds_passive_or_not_and_creates_nothing() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    assert_eq!(
        probe(&conn, REPLY_TO).await.expect("passive declare"),
        (0, 1)
    );
    let q = ch
        .queue_declare(
            REPLY_TO.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    assert_eq!(q.name().as_str(), REPLY_TO);
    assert_eq!((q.message_count(), q.consumer_count()), (0, 1));
    for name in ["amq.rabbitmq.reply-to.nonsense", "amq.rabbitmq.reply-tox"] {
        let err = probe(&conn, name).await.expect_err("no such reply name");
        assert_reply(
            &err,
            404,
            &format!("NOT_FOUND - no queue '{name}' in vhost '/'"),
        );
    }
    // Nothing was created: publishing to the name routes nowhere.
    let confirm_ch = confirming(&conn).await;
    let returned = publish_mandatory(&confirm_ch, "", REPLY_TO, b"x", Default::default()).await;
    assert!(returned.is_some(), "amq.rabbitmq.reply-to is no queue");
}

#[tokio::test]
async fn consuming_replies_with_acknowledgements_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel opens");
    let err = ch
        .basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("an acking reply consumer is refused");
    assert_reply(
        &err,
        406,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge",
    );
    assert!(!ch.status().connected());
    assert!(conn.status().connected());
}

#[tokio::test]
async fn a_second_reply_consumer_on_one_channel_is_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let _first = consume_replies(&ch).await;
    let err = ch
        .basic_consume(
            REPLY_TO.into(),
            "second".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("one reply consumer per channel");
    assert_reply(
        &err,
        406,
        "PRECONDITION_FAILED - reply consumer already set",
    );
    assert!(conn.status().connected());
}

#[tokio::test]
async fn asking_for_a_direct_reply_without_a_reply_consumer_on_the_channel_is_406() {
    let broker = TestBroker::start().await;
    let (conn, consuming) = broker.channel().await;
    declare_queue(&consuming, "rpc").await;
    let _replies = consume_replies(&consuming).await;
    let text = "PRECONDITION_FAILED - fast reply consumer does not exist";

    // On a channel that never consumed replies, though another channel of the connection did.
    let other = conn.create_channel().await.expect("channel opens");
    let err = publish_refused(&conn, &other, "", "rpc", request_props()).await;
    assert_reply(&err, 406, text);

    // On a channel whose reply consumer was cancelled.
    let ch = conn.create_channel().await.expect("channel opens");
    let replies = ch
        .basic_consume(
            REPLY_TO.into(),
            "cancel-me".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ch.basic_cancel(replies.tag(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel-ok for the reply consumer");
    let err = publish_refused(&conn, &ch, "", "rpc", request_props()).await;
    assert_reply(&err, 406, text);

    assert_eq!(
        drain(&consuming, "rpc").await.len(),
        0,
        "refused requests were not routed"
    );
}

#[tokio::test]
async fn the_server_advertises_direct_reply_to() {
    use amq_protocol::protocol::{connection, AMQPClass};
    use amq_protocol::types::AMQPValue as V;
    let broker = TestBroker::start().await;
    let mut raw = raw::RawClient::connect(broker.addr()).await;
    raw.send_bytes(b"AMQP\x00\x00\x09\x01")
        .await
        .expect("protocol header sent");
    let Some((0, AMQPClass::Connection(connection::AMQPMethod::Start(start)))) =
        within("connection.start", raw.recv_method()).await
    else {
        panic!("expected connection.start");
    };
    let Some(V::FieldTable(caps)) = start.server_properties.inner().get("capabilities") else {
        panic!("no capabilities table");
    };
    assert_eq!(caps.inner().get("direct_reply_to"), Some(&V::Boolean(true)));
}
