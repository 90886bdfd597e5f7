//! Routing as a client sees it: which queues a publish reaches through direct, fanout, topic and
//! headers exchanges, exchange-to-exchange bindings and the default exchange; unbinding;
//! mandatory returns; auto-delete and internal exchanges.
//!
//! A publish and a basic.get on the same channel are handled in order, so reading the queues
//! right after publishing observes exactly where the message was routed.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    declare_exchange_with(ch, name, kind, ExchangeDeclareOptions::default()).await;
}

async fn declare_exchange_with(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) {
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .expect("exchange.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    bind_with(ch, queue, exchange, key, FieldTable::default()).await;
}

async fn bind_with(ch: &Channel, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    )
    .await
    .expect("queue.bind");
}

async fn bind_exchange(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
}

async fn publish_with_headers(ch: &Channel, exchange: &str, headers: FieldTable, body: &str) {
    let props = BasicProperties::default().with_headers(headers);
    ch.basic_publish(
        exchange.into(),
        "".into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .expect("basic.publish");
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

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

/// A passive exchange.declare; Err carries the broker's reply code.
async fn exchange_exists(broker: &TestBroker, name: &str) -> Result<(), Option<u16>> {
    let (_conn, ch) = broker.channel().await;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Direct,
        passive,
        FieldTable::default(),
    )
    .await
    .map_err(|e| reply_code(&e))
}

// ---------------------------------------------------------------------------------------------
// direct and fanout

#[tokio::test]
async fn direct_exchange_routes_on_the_exact_routing_key() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "dx", ExchangeKind::Direct).await;
    for exchange in ["dx", "amq.direct"] {
        for q in ["red1", "red2", "green"] {
            declare_queue(&ch, &format!("q-{exchange}-{q}")).await;
        }
        bind(&ch, &format!("q-{exchange}-red1"), exchange, "red").await;
        bind(&ch, &format!("q-{exchange}-red2"), exchange, "red").await;
        bind(&ch, &format!("q-{exchange}-green"), exchange, "green").await;

        publish(&ch, exchange, "red", b"r").await;
        publish(&ch, exchange, "green", b"g").await;
        for unmatched in ["Red", "red.x", "re", "", "blue"] {
            publish(&ch, exchange, unmatched, b"lost").await;
        }
        assert_eq!(
            drain(&ch, &format!("q-{exchange}-red1")).await,
            ["r"],
            "{exchange}"
        );
        assert_eq!(
            drain(&ch, &format!("q-{exchange}-red2")).await,
            ["r"],
            "{exchange}"
        );
        assert_eq!(
            drain(&ch, &format!("q-{exchange}-green")).await,
            ["g"],
            "{exchange}"
        );
    }
}

#[tokio::test]
async fn direct_exchange_delivers_once_to_a_queue_bound_twice_with_the_same_key() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "amq.direct", "k").await;
    bind(&ch, "q", "amq.direct", "k").await;
    publish(&ch, "amq.direct", "k", b"once").await;
    assert_eq!(drain(&ch, "q").await, ["once"]);
}

#[tokio::test]
async fn fanout_exchange_ignores_the_routing_key_and_reaches_every_bound_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "fx", ExchangeKind::Fanout).await;
    for exchange in ["fx", "amq.fanout"] {
        let (a, b, unbound) = (
            format!("q-{exchange}-a"),
            format!("q-{exchange}-b"),
            format!("q-{exchange}-unbound"),
        );
        for q in [&a, &b, &unbound] {
            declare_queue(&ch, q).await;
        }
        bind(&ch, &a, exchange, "").await;
        bind(&ch, &b, exchange, "some.key").await;
        // A second binding of the same queue under another key must not duplicate deliveries.
        bind(&ch, &b, exchange, "other").await;

        publish(&ch, exchange, "whatever", b"1").await;
        publish(&ch, exchange, "", b"2").await;
        assert_eq!(drain(&ch, &a).await, ["1", "2"], "{exchange}");
        assert_eq!(drain(&ch, &b).await, ["1", "2"], "{exchange}");
        assert!(drain(&ch, &unbound).await.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// topic

/// (binding key, routing key, routed)
const TOPIC_CASES: &[(&str, &str, bool)] = &[
    ("a.b.c", "a.b.c", true),
    ("a.b.c", "a.b", false),
    ("a.b", "a.b.c", false),
    ("a.b.c", "a.B.c", false),
    ("a.*.c", "a.b.c", true),
    ("a.*.c", "a.c", false),
    ("a.*.c", "a.b.b.c", false),
    ("*", "a", true),
    ("*", "a.b", false),
    ("*", "", false),
    ("*.*", "a.b", true),
    ("*.*", "a", false),
    ("#", "", true),
    ("#", "a", true),
    ("#", "a.b.c", true),
    ("a.#", "a", true),
    ("a.#", "a.b.c", true),
    ("a.#", "b.a", false),
    ("a.#", "ab", false),
    ("#.c", "c", true),
    ("#.c", "a.b.c", true),
    ("#.c", "c.d", false),
    ("a.#.c", "a.c", true),
    ("a.#.c", "a.x.y.c", true),
    ("a.#.c", "a.x.y.d", false),
    ("#.b.#", "b", true),
    ("#.b.#", "a.b.c", true),
    ("#.b.#", "a.c", false),
    ("#.#", "", true),
    ("#.#", "a.b", true),
    ("*.#", "", false),
    ("*.#", "a", true),
    ("#.*", "a.b", true),
    ("a.*.#", "a", false),
    ("a.*.#", "a.b", true),
    ("a.*.#", "a.b.c.d", true),
    ("*.b.#.d", "x.b.c.c.d", true),
    ("*.b.#.d", "x.c.d", false),
    ("", "", true),
    ("", "a", false),
    ("a", "", false),
    // Empty words (between dots, or at either end) are words too.
    ("a..b", "a..b", true),
    ("a.*.b", "a..b", true),
    ("a.b", "a..b", false),
    ("a.#.b", "a..b", true),
    ("*.*", "a.", true),
    ("*.*", ".", true),
    ("*", ".", false),
    ("a.#", "a.", true),
    ("*.b", ".b", true),
];

#[tokio::test]
async fn topic_exchange_matches_star_hash_and_empty_words_like_rabbitmq() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let mut wrong = Vec::new();
    for (i, (binding_key, routing_key, expected)) in TOPIC_CASES.iter().enumerate() {
        let (x, q) = (format!("topic-{i}"), format!("q-{i}"));
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        declare_queue(&ch, &q).await;
        bind(&ch, &q, &x, binding_key).await;
        publish(&ch, &x, routing_key, b"m").await;
        let routed = !drain(&ch, &q).await.is_empty();
        if routed != *expected {
            wrong.push(format!(
                "binding {binding_key:?} routing key {routing_key:?}: routed={routed}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "topic matches differ from RabbitMQ:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn amq_topic_routes_to_every_matching_queue_once_however_many_bindings_match() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for q in ["all", "nyse", "usd", "none"] {
        declare_queue(&ch, q).await;
    }
    for key in [
        "stock.#",
        "#.nyse",
        "stock.*.nyse",
        "stock.usd.nyse",
        "#",
        "*.*.*",
    ] {
        bind(&ch, "all", "amq.topic", key).await;
    }
    bind(&ch, "nyse", "amq.topic", "*.*.nyse").await;
    bind(&ch, "usd", "amq.topic", "stock.usd").await;
    bind(&ch, "none", "amq.topic", "bond.#").await;

    publish(&ch, "amq.topic", "stock.usd.nyse", b"1").await;
    publish(&ch, "amq.topic", "stock.usd", b"2").await;
    assert_eq!(drain(&ch, "all").await, ["1", "2"]);
    assert_eq!(drain(&ch, "nyse").await, ["1"]);
    assert_eq!(drain(&ch, "usd").await, ["2"]);
    assert!(drain(&ch, "none").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// headers

#[tokio::test]
async fn headers_x_match_all_requires_every_bound_header_and_is_the_default() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "explicit").await;
    declare_queue(&ch, "default").await;
    declare_queue(&ch, "everything").await;
    let args = table(&[
        ("x-match", s("all")),
        ("format", s("pdf")),
        ("type", s("report")),
    ]);
    bind_with(&ch, "explicit", "amq.headers", "", args).await;
    bind_with(
        &ch,
        "default",
        "amq.headers",
        "",
        table(&[("format", s("pdf")), ("type", s("report"))]),
    )
    .await;
    // x-match all with nothing to compare matches every message, with or without headers.
    bind_with(
        &ch,
        "everything",
        "amq.headers",
        "",
        table(&[("x-match", s("all"))]),
    )
    .await;

    let cases: Vec<(FieldTable, bool)> = vec![
        (table(&[("format", s("pdf")), ("type", s("report"))]), true),
        (
            table(&[
                ("format", s("pdf")),
                ("type", s("report")),
                ("extra", AMQPValue::LongInt(1)),
            ]),
            true,
        ),
        (table(&[("format", s("pdf"))]), false),
        (table(&[("format", s("pdf")), ("type", s("log"))]), false),
        (table(&[("format", s("PDF")), ("type", s("report"))]), false),
        (table(&[]), false),
    ];
    for (i, (headers, routed)) in cases.into_iter().enumerate() {
        publish_with_headers(&ch, "amq.headers", headers, &i.to_string()).await;
        let expected: Vec<String> = if routed { vec![i.to_string()] } else { vec![] };
        assert_eq!(
            drain(&ch, "explicit").await,
            expected,
            "case {i} with x-match all"
        );
        assert_eq!(
            drain(&ch, "default").await,
            expected,
            "case {i} without x-match"
        );
        assert_eq!(drain(&ch, "everything").await, [i.to_string()], "case {i}");
    }
    // No headers property at all.
    publish(&ch, "amq.headers", "", b"bare").await;
    assert!(drain(&ch, "explicit").await.is_empty());
    assert_eq!(drain(&ch, "everything").await, ["bare"]);
}

#[tokio::test]
async fn headers_x_match_any_requires_one_matching_header() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "any").await;
    declare_queue(&ch, "any-empty").await;
    let args = table(&[
        ("x-match", s("any")),
        ("format", s("pdf")),
        ("type", s("report")),
    ]);
    bind_with(&ch, "any", "amq.match", "", args).await;
    // x-match any with nothing to compare matches nothing.
    bind_with(
        &ch,
        "any-empty",
        "amq.match",
        "",
        table(&[("x-match", s("any"))]),
    )
    .await;

    let cases: Vec<(FieldTable, bool)> = vec![
        (table(&[("format", s("pdf")), ("type", s("report"))]), true),
        (table(&[("type", s("report"))]), true),
        (table(&[("format", s("pdf")), ("type", s("log"))]), true),
        (table(&[("format", s("zip")), ("type", s("log"))]), false),
        (table(&[("other", s("pdf"))]), false),
        (table(&[]), false),
    ];
    for (i, (headers, routed)) in cases.into_iter().enumerate() {
        publish_with_headers(&ch, "amq.match", headers, &i.to_string()).await;
        let expected: Vec<String> = if routed { vec![i.to_string()] } else { vec![] };
        assert_eq!(drain(&ch, "any").await, expected, "case {i}");
        assert!(drain(&ch, "any-empty").await.is_empty(), "case {i}");
    }
}

#[tokio::test]
async fn headers_x_prefixed_keys_count_only_with_all_with_x_and_any_with_x() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers).await;
    let bindings = [
        (
            "all",
            table(&[
                ("x-match", s("all")),
                ("x-tag", s("t")),
                ("format", s("pdf")),
            ]),
        ),
        (
            "all-with-x",
            table(&[
                ("x-match", s("all-with-x")),
                ("x-tag", s("t")),
                ("format", s("pdf")),
            ]),
        ),
        ("any", table(&[("x-match", s("any")), ("x-tag", s("t"))])),
        (
            "any-with-x",
            table(&[
                ("x-match", s("any-with-x")),
                ("x-tag", s("t")),
                ("format", s("zip")),
            ]),
        ),
    ];
    for (q, args) in bindings {
        declare_queue(&ch, q).await;
        bind_with(&ch, q, "hx", "", args).await;
    }

    // (headers, queues that get the message)
    let cases: Vec<(FieldTable, Vec<&str>)> = vec![
        (
            table(&[("format", s("pdf")), ("x-tag", s("t"))]),
            vec!["all", "all-with-x", "any-with-x"],
        ),
        (
            table(&[("format", s("pdf")), ("x-tag", s("other"))]),
            vec!["all"],
        ),
        (table(&[("format", s("pdf"))]), vec!["all"]),
        (table(&[("x-tag", s("t"))]), vec!["any-with-x"]),
        (table(&[("format", s("zip"))]), vec!["any-with-x"]),
    ];
    for (i, (headers, expected)) in cases.into_iter().enumerate() {
        publish_with_headers(&ch, "hx", headers, &i.to_string()).await;
        for q in ["all", "all-with-x", "any", "any-with-x"] {
            let got = drain(&ch, q).await;
            let want: Vec<String> = if expected.contains(&q) {
                vec![i.to_string()]
            } else {
                vec![]
            };
            assert_eq!(got, want, "case {i}, queue bound with x-match {q}");
        }
    }
}

#[tokio::test]
async fn headers_void_binding_value_matches_any_value_of_a_present_header() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "hv", ExchangeKind::Headers).await;
    declare_queue(&ch, "all").await;
    declare_queue(&ch, "any").await;
    bind_with(
        &ch,
        "all",
        "hv",
        "",
        table(&[("flag", AMQPValue::Void), ("kind", s("a"))]),
    )
    .await;
    bind_with(
        &ch,
        "any",
        "hv",
        "",
        table(&[("x-match", s("any")), ("flag", AMQPValue::Void)]),
    )
    .await;

    let cases: Vec<(FieldTable, bool, bool)> = vec![
        (
            table(&[("flag", s("anything")), ("kind", s("a"))]),
            true,
            true,
        ),
        (
            table(&[("flag", AMQPValue::Boolean(false)), ("kind", s("a"))]),
            true,
            true,
        ),
        (
            table(&[("flag", AMQPValue::Void), ("kind", s("a"))]),
            true,
            true,
        ),
        (table(&[("flag", AMQPValue::LongInt(0))]), false, true),
        (table(&[("kind", s("a"))]), false, false),
        (table(&[("other", s("x"))]), false, false),
    ];
    for (i, (headers, to_all, to_any)) in cases.into_iter().enumerate() {
        publish_with_headers(&ch, "hv", headers, &i.to_string()).await;
        assert_eq!(
            !drain(&ch, "all").await.is_empty(),
            to_all,
            "case {i}, x-match all"
        );
        assert_eq!(
            !drain(&ch, "any").await.is_empty(),
            to_any,
            "case {i}, x-match any"
        );
    }
}

#[tokio::test]
async fn headers_values_of_different_integer_widths_compare_by_value() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "n").await;
    bind_with(
        &ch,
        "n",
        "amq.headers",
        "",
        table(&[
            ("n", AMQPValue::LongInt(5)),
            ("ok", AMQPValue::Boolean(true)),
        ]),
    )
    .await;
    let t = AMQPValue::Boolean(true);
    let cases: Vec<(AMQPValue, bool)> = vec![
        (AMQPValue::LongInt(5), true),
        (AMQPValue::ShortShortUInt(5), true),
        (AMQPValue::ShortShortInt(5), true),
        (AMQPValue::ShortInt(5), true),
        (AMQPValue::ShortUInt(5), true),
        (AMQPValue::LongUInt(5), true),
        (AMQPValue::LongLongInt(5), true),
        (AMQPValue::LongInt(6), false),
        (AMQPValue::LongInt(-5), false),
        (s("5"), false),
    ];
    for (i, (n, routed)) in cases.into_iter().enumerate() {
        publish_with_headers(
            &ch,
            "amq.headers",
            table(&[("n", n.clone()), ("ok", t.clone())]),
            "m",
        )
        .await;
        assert_eq!(
            !drain(&ch, "n").await.is_empty(),
            routed,
            "case {i}: header n = {n:?}"
        );
    }
    // The boolean must match too.
    publish_with_headers(
        &ch,
        "amq.headers",
        table(&[
            ("n", AMQPValue::LongInt(5)),
            ("ok", AMQPValue::Boolean(false)),
        ]),
        "m",
    )
    .await;
    assert!(drain(&ch, "n").await.is_empty());
}

/// RabbitMQ compares the binding's value with the header's value decoded to a plain Erlang term
/// (`=:=`), so the wire type of a string or a float does not matter: a byte array equals a long
/// string with the same bytes.
#[tokio::test]
async fn headers_byte_array_and_long_string_with_equal_bytes_match() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "bytes").await;
    declare_queue(&ch, "string").await;
    let bytes = || AMQPValue::ByteArray(ByteArray::from(&b"abc"[..]));
    let string = || AMQPValue::LongString(LongString::from("abc"));
    bind_with(&ch, "bytes", "amq.headers", "", table(&[("b", bytes())])).await;
    bind_with(&ch, "string", "amq.headers", "", table(&[("b", string())])).await;

    publish_with_headers(&ch, "amq.headers", table(&[("b", string())]), "as-string").await;
    publish_with_headers(&ch, "amq.headers", table(&[("b", bytes())]), "as-bytes").await;
    assert_eq!(drain(&ch, "bytes").await, ["as-string", "as-bytes"]);
    assert_eq!(drain(&ch, "string").await, ["as-string", "as-bytes"]);
}

/// The same for floating point: a float and a double of equal value are the same Erlang float.
#[tokio::test]
async fn headers_float_and_double_of_equal_value_match() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "f").await;
    bind_with(
        &ch,
        "f",
        "amq.headers",
        "",
        table(&[("v", AMQPValue::Float(2.5))]),
    )
    .await;
    publish_with_headers(
        &ch,
        "amq.headers",
        table(&[("v", AMQPValue::Double(2.5))]),
        "double",
    )
    .await;
    publish_with_headers(
        &ch,
        "amq.headers",
        table(&[("v", AMQPValue::Float(2.5))]),
        "float",
    )
    .await;
    publish_with_headers(
        &ch,
        "amq.headers",
        table(&[("v", AMQPValue::Double(2.25))]),
        "other",
    )
    .await;
    assert_eq!(drain(&ch, "f").await, ["double", "float"]);
}

#[tokio::test]
async fn headers_binding_with_an_invalid_x_match_is_refused_with_406() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let err = ch
        .queue_bind(
            "q".into(),
            "amq.headers".into(),
            "".into(),
            QueueBindOptions::default(),
            table(&[("x-match", s("some"))]),
        )
        .await
        .expect_err("an x-match other than all, any, all-with-x or any-with-x is invalid");
    assert_eq!(reply_code(&err), Some(406), "{err}");
}

// ---------------------------------------------------------------------------------------------
// exchange-to-exchange bindings

#[tokio::test]
async fn exchange_to_exchange_chains_route_through_every_type() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "x-direct", ExchangeKind::Direct).await;
    declare_exchange(&ch, "x-fanout", ExchangeKind::Fanout).await;
    declare_exchange(&ch, "x-topic", ExchangeKind::Topic).await;
    declare_exchange(&ch, "x-headers", ExchangeKind::Headers).await;
    // direct --"a.b"--> fanout --> topic --"a.*"--> q-topic; fanout --> q-fanout;
    // fanout --> headers --{h=1}--> q-headers
    bind_exchange(&ch, "x-fanout", "x-direct", "a.b").await;
    bind_exchange(&ch, "x-topic", "x-fanout", "").await;
    bind_exchange(&ch, "x-headers", "x-fanout", "").await;
    for q in ["q-topic", "q-fanout", "q-headers"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "q-topic", "x-topic", "a.*").await;
    bind(&ch, "q-fanout", "x-fanout", "").await;
    bind_with(
        &ch,
        "q-headers",
        "x-headers",
        "",
        table(&[("h", AMQPValue::LongInt(1))]),
    )
    .await;

    let props = BasicProperties::default().with_headers(table(&[("h", AMQPValue::LongInt(1))]));
    ch.basic_publish(
        "x-direct".into(),
        "a.b".into(),
        BasicPublishOptions::default(),
        b"1",
        props.clone(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "x-direct".into(),
        "a.c".into(),
        BasicPublishOptions::default(),
        b"2",
        props,
    )
    .await
    .unwrap();
    publish(&ch, "x-fanout", "b.c", b"3").await;

    assert_eq!(drain(&ch, "q-topic").await, ["1"]);
    assert_eq!(drain(&ch, "q-fanout").await, ["1", "3"]);
    assert_eq!(drain(&ch, "q-headers").await, ["1"]);

    let delivered = {
        publish(&ch, "x-direct", "a.b", b"4").await;
        ch.basic_get("q-fanout".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("routed through the chain")
    };
    assert_eq!(
        delivered.delivery.exchange.as_str(),
        "x-direct",
        "deliveries name the exchange published to"
    );
    assert_eq!(delivered.delivery.routing_key.as_str(), "a.b");
}

#[tokio::test]
async fn exchange_binding_cycle_does_not_loop_and_delivers_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "A", ExchangeKind::Fanout).await;
    declare_exchange(&ch, "B", ExchangeKind::Fanout).await;
    bind_exchange(&ch, "B", "A", "").await;
    bind_exchange(&ch, "A", "B", "").await;
    declare_queue(&ch, "on-b").await;
    declare_queue(&ch, "on-both").await;
    bind(&ch, "on-b", "B", "").await;
    bind(&ch, "on-both", "A", "").await;
    bind(&ch, "on-both", "B", "").await;

    publish(&ch, "A", "", b"from-a").await;
    publish(&ch, "B", "", b"from-b").await;
    assert_eq!(drain(&ch, "on-b").await, ["from-a", "from-b"]);
    assert_eq!(drain(&ch, "on-both").await, ["from-a", "from-b"]);

    // A self-binding is a cycle too.
    bind_exchange(&ch, "A", "A", "").await;
    publish(&ch, "A", "", b"self").await;
    assert_eq!(drain(&ch, "on-both").await, ["self"]);
    assert_eq!(drain(&ch, "on-b").await, ["self"]);
}

#[tokio::test]
async fn exchange_unbind_stops_routing_through_the_binding() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_exchange(&ch, "src", ExchangeKind::Direct).await;
    declare_exchange(&ch, "dst", ExchangeKind::Fanout).await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "dst", "").await;
    bind_exchange(&ch, "dst", "src", "k").await;
    publish(&ch, "src", "k", b"before").await;
    assert_eq!(drain(&ch, "q").await, ["before"]);

    ch.exchange_unbind(
        "dst".into(),
        "src".into(),
        "k".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "src", "k", b"after").await;
    publish(&ch, "dst", "", b"direct-to-dst").await;
    assert_eq!(drain(&ch, "q").await, ["direct-to-dst"]);
}

// ---------------------------------------------------------------------------------------------
// default exchange

#[tokio::test]
async fn default_exchange_routes_to_the_queue_named_by_the_routing_key() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "alpha").await;
    declare_queue(&ch, "beta").await;
    publish(&ch, "", "alpha", b"a").await;
    publish(&ch, "", "beta", b"b").await;
    publish(&ch, "", "ALPHA", b"lost").await;
    publish(&ch, "", "gamma", b"lost").await;
    assert_eq!(drain(&ch, "alpha").await, ["a"]);
    assert_eq!(drain(&ch, "beta").await, ["b"]);

    let m = {
        publish(&ch, "", "alpha", b"again").await;
        ch.basic_get("alpha".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(m.delivery.exchange.as_str(), "");
    assert_eq!(m.delivery.routing_key.as_str(), "alpha");

    // A deleted queue is no longer reachable.
    ch.queue_delete("beta".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let (_conn2, confirm_ch) = broker.channel().await;
    confirm_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirmation = confirm_ch
        .basic_publish(
            "".into(),
            "beta".into(),
            mandatory,
            b"gone",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let returned = confirmation
        .take_message()
        .expect("returned: the queue no longer exists");
    assert_eq!(returned.reply_code, 312);
}

#[tokio::test]
async fn default_exchange_routes_to_a_server_named_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let server_named = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare with an empty name gets a server-generated name");
    let name = server_named.name().as_str();
    assert!(name.starts_with("amq.gen-"), "{name}");
    publish(&ch, "", name, b"s").await;
    assert_eq!(drain(&ch, name).await, ["s"]);
}

#[tokio::test]
async fn binding_to_the_default_exchange_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let err = ch
        .queue_bind(
            "q".into(),
            "".into(),
            "other".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("the default exchange's bindings are implicit");
    assert_eq!(reply_code(&err), Some(403), "{err}");
}

// ---------------------------------------------------------------------------------------------
// unbinding

#[tokio::test]
async fn unbinding_stops_routing_for_every_exchange_type() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let headers = table(&[("x-match", s("any")), ("h", s("v"))]);
    // (exchange, binding key, binding arguments, routing key of the publishes)
    let cases = [
        ("amq.direct", "key", FieldTable::default(), "key"),
        ("amq.fanout", "", FieldTable::default(), "key"),
        ("amq.topic", "a.#", FieldTable::default(), "a.b"),
        ("amq.headers", "", headers, "key"),
    ];
    for (exchange, binding_key, args, routing_key) in cases {
        let (q, other) = (format!("q-{exchange}"), format!("other-{exchange}"));
        declare_queue(&ch, &q).await;
        declare_queue(&ch, &other).await;
        bind_with(&ch, &q, exchange, binding_key, args.clone()).await;
        // An identical binding of another queue stays: only the unbound one stops routing.
        bind_with(&ch, &other, exchange, binding_key, args.clone()).await;
        let props = BasicProperties::default().with_headers(table(&[("h", s("v"))]));
        let opts = BasicPublishOptions::default();

        ch.basic_publish(
            exchange.into(),
            routing_key.into(),
            opts,
            b"before",
            props.clone(),
        )
        .await
        .unwrap();
        assert_eq!(drain(&ch, &q).await, ["before"], "{exchange}");
        ch.queue_unbind(q.as_str().into(), exchange.into(), binding_key.into(), args)
            .await
            .unwrap();
        ch.basic_publish(exchange.into(), routing_key.into(), opts, b"after", props)
            .await
            .unwrap();
        assert!(
            drain(&ch, &q).await.is_empty(),
            "{exchange} still routes after queue.unbind"
        );
        assert_eq!(drain(&ch, &other).await, ["before", "after"], "{exchange}");
    }
}

#[tokio::test]
async fn headers_unbind_removes_only_the_binding_with_equal_arguments() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    bind_with(&ch, "q", "amq.headers", "", table(&[("a", s("1"))])).await;
    bind_with(&ch, "q", "amq.headers", "", table(&[("b", s("2"))])).await;
    ch.queue_unbind(
        "q".into(),
        "amq.headers".into(),
        "".into(),
        table(&[("a", s("1"))]),
    )
    .await
    .unwrap();

    publish_with_headers(&ch, "amq.headers", table(&[("a", s("1"))]), "a").await;
    publish_with_headers(&ch, "amq.headers", table(&[("b", s("2"))]), "b").await;
    assert_eq!(drain(&ch, "q").await, ["b"]);
}

// ---------------------------------------------------------------------------------------------
// mandatory

#[tokio::test]
async fn mandatory_unroutable_publish_is_returned_with_312_no_route_body_and_properties() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("m-1".into())
        .with_correlation_id("c-1".into())
        .with_delivery_mode(2)
        .with_headers(table(&[("h", s("v")), ("n", AMQPValue::LongInt(7))]));
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirmation = ch
        .basic_publish(
            "amq.direct".into(),
            "nowhere".into(),
            mandatory,
            b"returned body",
            props.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let Confirmation::Ack(Some(returned)) = confirmation else {
        panic!("expected an ack carrying the returned message, got {confirmation:?}");
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(returned.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(returned.delivery.data, b"returned body");
    assert_eq!(returned.delivery.properties, props);
}

#[tokio::test]
async fn mandatory_publish_is_returned_when_bindings_lead_to_no_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_exchange(&ch, "front", ExchangeKind::Fanout).await;
    declare_exchange(&ch, "empty", ExchangeKind::Fanout).await;
    bind_exchange(&ch, "empty", "front", "").await;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };

    for (exchange, key) in [("front", "k"), ("", "no-such-queue"), ("amq.topic", "a.b")] {
        let confirmation = ch
            .basic_publish(
                exchange.into(),
                key.into(),
                mandatory,
                b"x",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_ack());
        let returned = confirmation
            .take_message()
            .unwrap_or_else(|| panic!("publish to '{exchange}' not returned"));
        assert_eq!(
            (returned.reply_code, returned.reply_text.as_str()),
            (312, "NO_ROUTE")
        );
        assert_eq!(returned.delivery.exchange.as_str(), exchange);
        assert_eq!(returned.delivery.routing_key.as_str(), key);
    }
}

#[tokio::test]
async fn routable_mandatory_and_unroutable_plain_publishes_are_not_returned() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_queue(&ch, "q").await;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let routed = ch
        .basic_publish(
            "".into(),
            "q".into(),
            mandatory,
            b"routed",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let dropped = ch
        .basic_publish(
            "".into(),
            "nowhere".into(),
            BasicPublishOptions::default(),
            b"dropped",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(routed.await.unwrap(), Confirmation::Ack(None));
    assert_eq!(dropped.await.unwrap(), Confirmation::Ack(None));
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(drain(&ch, "q").await, ["routed"]);
}

// ---------------------------------------------------------------------------------------------
// auto-delete and internal exchanges

#[tokio::test]
async fn auto_delete_exchange_disappears_when_its_last_binding_is_removed() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare_exchange_with(&ch, "ad", ExchangeKind::Direct, auto_delete).await;
    // Never having had a binding, it stays.
    assert_eq!(exchange_exists(&broker, "ad").await, Ok(()));

    declare_queue(&ch, "q1").await;
    declare_queue(&ch, "q2").await;
    bind(&ch, "q1", "ad", "a").await;
    bind(&ch, "q2", "ad", "b").await;
    ch.queue_unbind("q1".into(), "ad".into(), "a".into(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(
        exchange_exists(&broker, "ad").await,
        Ok(()),
        "one binding is left"
    );

    ch.queue_unbind("q2".into(), "ad".into(), "b".into(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(exchange_exists(&broker, "ad").await, Err(Some(404)));
}

#[tokio::test]
async fn auto_delete_exchange_disappears_when_its_last_bound_queue_is_deleted() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare_exchange_with(&ch, "ad", ExchangeKind::Fanout, auto_delete).await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "ad", "").await;
    ch.queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(exchange_exists(&broker, "ad").await, Err(Some(404)));
}

#[tokio::test]
async fn auto_delete_exchange_disappears_when_its_last_exchange_binding_is_removed() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare_exchange_with(&ch, "ad-src", ExchangeKind::Fanout, auto_delete).await;
    declare_exchange(&ch, "dst", ExchangeKind::Fanout).await;
    bind_exchange(&ch, "dst", "ad-src", "").await;
    ch.exchange_unbind(
        "dst".into(),
        "ad-src".into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert_eq!(exchange_exists(&broker, "ad-src").await, Err(Some(404)));
    assert_eq!(exchange_exists(&broker, "dst").await, Ok(()));
}

#[tokio::test]
async fn internal_exchange_refuses_direct_publishes_with_403_but_routes_from_a_bound_exchange() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    declare_exchange_with(&ch, "inner", ExchangeKind::Fanout, internal).await;
    declare_exchange(&ch, "outer", ExchangeKind::Direct).await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "inner", "").await;
    bind_exchange(&ch, "inner", "outer", "k").await;

    publish(&ch, "outer", "k", b"via-outer").await;
    assert_eq!(drain(&ch, "q").await, ["via-outer"]);

    let (_conn2, publisher) = broker.channel().await;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = publisher
        .basic_publish(
            "inner".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within("the channel close", confirm)
        .await
        .expect_err("publishing to an internal exchange closes the channel");
    assert_eq!(reply_code(&err), Some(403), "{err}");
    assert!(
        !publisher.status().connected(),
        "the channel is closed: {:?}",
        publisher.status()
    );
    assert!(
        drain(&ch, "q").await.is_empty(),
        "the refused message was not routed"
    );
}
