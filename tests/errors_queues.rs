//! Queue errors a client can provoke, answered as RabbitMQ 3.10 answers them (reply code,
//! text and scope): queue.declare and its arguments, exclusive queues, queue.delete, purge,
//! bind and unbind.

mod common;

use common::provoke::*;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;

// ---------------------------------------------------------------------------------------------
// queue.declare

#[tokio::test]
async fn declaring_a_queue_with_the_reserved_amq_prefix_is_403_and_passive_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.foo18", "amq.gen-foo18"] {
        let text = format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            queue(&ch, name, Default::default(), FieldTable::default()).await
        })
        .await;
    }
    let text = format!("NOT_FOUND - no queue 'amq.foo18' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        queue(&ch, "amq.foo18", PASSIVE_Q, FieldTable::default()).await
    })
    .await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404_and_of_an_existing_one_checks_nothing() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["nosuchq18", ""] {
        let text = format!("NOT_FOUND - no queue '{name}' {VHOST}");
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            queue(&ch, name, PASSIVE_Q, FieldTable::default()).await
        })
        .await;
    }
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let different = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..PASSIVE_Q
    };
    let args = table(&[("x-message-ttl", long(1000))]);
    let q = queue(&ch, "q18", different, args)
        .await
        .expect("a passive declare ignores flags and arguments");
    assert_eq!(q.name().as_str(), "q18");
}

#[tokio::test]
async fn redeclaring_a_queue_with_other_durability_or_auto_delete_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    queue(&ch, "q18d", durable, FieldTable::default())
        .await
        .expect("durable queue.declare");

    let cases = [
        (
            "q18",
            "durable",
            durable,
            "received 'true' but current is 'false'",
        ),
        (
            "q18",
            "auto_delete",
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            "received 'true' but current is 'false'",
        ),
        (
            "q18d",
            "durable",
            QueueDeclareOptions::default(),
            "received 'false' but current is 'true'",
        ),
    ];
    for (name, arg, options, detail) in cases {
        let text = format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' {VHOST}: {detail}"
        );
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, options, FieldTable::default()).await
        })
        .await;
    }
}

#[tokio::test]
async fn redeclaring_a_queue_with_other_arguments_is_406_with_rabbitmqs_texts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let ttl = table(&[("x-message-ttl", long(1000))]);
    queue(&ch, "q18t", Default::default(), ttl.clone())
        .await
        .expect("queue.declare with x-message-ttl");

    let inequivalent = |name: &str, arg: &str, detail: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' {VHOST}: {detail}"
        )
    };
    let cases = [
        (
            "q18",
            table(&[("x-message-ttl", long(1000))]),
            inequivalent(
                "q18",
                "x-message-ttl",
                "received the value '1000' of type 'long' but current is none",
            ),
        ),
        (
            "q18t",
            table(&[("x-message-ttl", long(2000))]),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received '2000' but current is '1000'",
            ),
        ),
        (
            "q18t",
            FieldTable::default(),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received none but current is the value '1000' of type 'long'",
            ),
        ),
        (
            "q18t",
            table(&[("x-message-ttl", longstr("1000"))]),
            inequivalent(
                "q18t",
                "x-message-ttl",
                "received '1000' but current is '1000'",
            ),
        ),
        (
            "q18",
            table(&[("x-expires", long(60000))]),
            inequivalent(
                "q18",
                "x-expires",
                "received the value '60000' of type 'long' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-max-length", long(10))]),
            inequivalent(
                "q18",
                "x-max-length",
                "received the value '10' of type 'long' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-dead-letter-exchange", longstr("dlx"))]),
            inequivalent(
                "q18",
                "x-dead-letter-exchange",
                "received the value 'dlx' of type 'longstr' but current is none",
            ),
        ),
        (
            "q18",
            table(&[("x-queue-type", longstr("quorum"))]),
            inequivalent(
                "q18",
                "x-queue-type",
                "received the value 'quorum' of type 'longstr' but current is none",
            ),
        ),
    ];
    for (name, args, text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, Default::default(), args).await
        })
        .await;
    }

    // 32-bit and 64-bit integers of the same value are the same argument.
    let q = queue(
        &ch,
        "q18t",
        Default::default(),
        table(&[("x-message-ttl", AMQPValue::LongInt(1000))]),
    )
    .await
    .expect("x-message-ttl as a 32-bit 1000 is equivalent to a 64-bit 1000");
    assert_eq!(q.name().as_str(), "q18t");
    queue(&ch, "q18t", Default::default(), ttl)
        .await
        .expect("an identical redeclaration is fine");
    queue(
        &ch,
        "q18",
        Default::default(),
        table(&[("x-unknown-arg", longstr("whatever"))]),
    )
    .await
    .expect("arguments RabbitMQ does not know are not compared");
}

#[tokio::test]
async fn x_queue_type_classic_is_equivalent_to_no_queue_type() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    queue(
        &ch,
        "q18",
        Default::default(),
        table(&[("x-queue-type", longstr("classic"))]),
    )
    .await
    .expect("x-queue-type=classic on a classic queue");
}

#[tokio::test]
async fn invalid_queue_arguments_are_refused_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let invalid = |arg: &str, name: &str, detail: &str| {
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' {VHOST}: {detail}")
    };
    let expected_integer = |got: &str| format!("\"expected integer, got {got}\"");
    let cases = vec![
        (
            "qa21",
            ("x-max-length", longstr("abc")),
            invalid("x-max-length", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-max-length", AMQPValue::Boolean(true)),
            invalid("x-max-length", "qa21", &expected_integer("bool")),
        ),
        (
            "qa21",
            ("x-max-length", long(-1)),
            invalid("x-max-length", "qa21", "{value_negative,-1}"),
        ),
        (
            "qa21",
            ("x-max-length-bytes", longstr("abc")),
            invalid("x-max-length-bytes", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-message-ttl", longstr("abc")),
            invalid("x-message-ttl", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-expires", longstr("abc")),
            invalid("x-expires", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-max-priority", longstr("abc")),
            invalid("x-max-priority", "qa21", &expected_integer("longstr")),
        ),
        (
            "qa21",
            ("x-message-ttl", long(-1)),
            invalid("x-message-ttl", "qa21", "{value_negative,-1}"),
        ),
        (
            "qa21",
            ("x-expires", long(0)),
            invalid("x-expires", "qa21", "{value_zero,0}"),
        ),
        (
            "qa21",
            ("x-max-priority", long(300)),
            invalid("x-max-priority", "qa21", "{max_value_exceeded,300}"),
        ),
        (
            "qa21",
            ("x-dead-letter-exchange", long(5)),
            format!(
                "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'qa21' {VHOST}"
            ),
        ),
        (
            "qa21",
            ("x-dead-letter-routing-key", longstr("rk")),
            invalid(
                "x-dead-letter-routing-key",
                "qa21",
                "routing_key_but_no_dlx_defined",
            ),
        ),
        (
            "qa21",
            ("x-overflow", longstr("foo")),
            invalid("x-overflow", "qa21", "invalid_overflow"),
        ),
        (
            "qa21",
            ("x-overflow", long(5)),
            invalid("x-overflow", "qa21", "{unacceptable_type,long}"),
        ),
        (
            "qa21",
            ("x-single-active-consumer", longstr("abc")),
            invalid(
                "x-single-active-consumer",
                "qa21",
                "{unacceptable_type,longstr}",
            ),
        ),
        (
            "qt21",
            ("x-queue-type", longstr("foo")),
            invalid("x-queue-type", "qt21", "\"unsupported queue type 'foo'\""),
        ),
        (
            "qa21",
            ("x-queue-mode", longstr("foo")),
            invalid("x-queue-mode", "qa21", "\"unsupported queue mode 'foo'\""),
        ),
    ];
    for (name, (arg, value), text) in cases {
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            queue(&ch, name, Default::default(), table(&[(arg, value)])).await
        })
        .await;
    }
}

#[tokio::test]
async fn quorum_and_stream_queues_with_invalid_properties_are_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let cases = [
        ("quorum", QueueDeclareOptions::default(), "non-durable"),
        (
            "quorum",
            QueueDeclareOptions {
                exclusive: true,
                ..durable
            },
            "exclusive-owner",
        ),
        (
            "quorum",
            QueueDeclareOptions {
                auto_delete: true,
                ..durable
            },
            "auto-delete",
        ),
        ("stream", QueueDeclareOptions::default(), "non-durable"),
    ];
    for (kind, options, property) in cases {
        let text =
            format!("PRECONDITION_FAILED - invalid property '{property}' for queue 'qq21' {VHOST}");
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            let args = table(&[("x-queue-type", longstr(kind))]);
            queue(&ch, "qq21", options, args).await
        })
        .await;
    }
}

#[tokio::test]
async fn queue_and_exchange_names_of_255_characters_are_fine() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let name = "n".repeat(255);
    exchange(
        &ch,
        &name,
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("a 255-character exchange name");
    let q = queue(&ch, &name, Default::default(), FieldTable::default())
        .await
        .expect("a 255-character queue name");
    assert_eq!(q.name().as_str(), name);
    bind(&ch, &name, &name, "k").await.expect("queue.bind");
}

// ---------------------------------------------------------------------------------------------
// exclusive queues

/// A reply text longer than a short string holds is cut to 252 bytes and "...", as RabbitMQ
/// cuts it, and the other channels of the connection go on (the cut once panicked the task).
#[tokio::test]
async fn a_reply_text_over_255_bytes_is_cut_and_closes_only_its_channel() {
    let broker = TestBroker::start().await;
    let (_owner, mine) = broker.channel().await;
    let name = "q".repeat(200);
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    queue(&mine, &name, exclusive, FieldTable::default())
        .await
        .expect("exclusive queue.declare");
    let full = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' {VHOST}. It \
         could be originally declared on another connection or the exclusive property value does \
         not match that of the original declaration."
    );
    let cut = format!("{}...", &full[..252]);
    let other = broker.connect().await;
    channel_error(&other, Via::Reply, 405, &cut, |ch| {
        let name = name.clone();
        async move { queue(&ch, &name, PASSIVE_Q, FieldTable::default()).await }
    })
    .await;
    channel_error(&other, Via::Reply, 405, &cut, |ch| {
        let name = name.clone();
        async move { consume(&ch, &name, "intruder", false).await }
    })
    .await;
}

#[tokio::test]
async fn an_exclusive_queue_is_locked_to_its_connection_with_405() {
    let broker = TestBroker::start().await;
    let (owner, mine) = broker.channel().await;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    queue(&mine, "qx18", exclusive, FieldTable::default())
        .await
        .expect("exclusive queue.declare");
    bind(&mine, "qx18", "amq.direct", "kx")
        .await
        .expect("queue.bind by the owner");

    let locked = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'qx18' {VHOST}. It could \
         be originally declared on another connection or the exclusive property value does not \
         match that of the original declaration."
    );
    let other = broker.connect().await;
    for options in [QueueDeclareOptions::default(), exclusive, PASSIVE_Q] {
        channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
            queue(&ch, "qx18", options, FieldTable::default()).await
        })
        .await;
    }
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        consume(&ch, "qx18", "intruder", false).await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        get(&ch, "qx18").await.map(|m| m.is_some())
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        ch.queue_delete("qx18".into(), QueueDeleteOptions::default())
            .await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        ch.queue_purge("qx18".into(), QueuePurgeOptions::default())
            .await
    })
    .await;
    channel_error(&other, Via::Reply, 405, &locked, |ch| async move {
        bind(&ch, "qx18", "amq.fanout", "").await
    })
    .await;

    // Publishing to it and unbinding it are allowed from anywhere.
    let theirs = open_channel(&other).await;
    publish(&theirs, "", "qx18", b"from another connection").await;
    theirs
        .queue_unbind(
            "qx18".into(),
            "amq.direct".into(),
            "kx".into(),
            FieldTable::default(),
        )
        .await
        .expect("queue.unbind from another connection");
    publish(&theirs, "amq.direct", "kx", b"after the unbind").await;
    let got = get(&mine, "qx18")
        .await
        .expect("basic.get by the owner")
        .expect("the message published from the other connection");
    assert_eq!(got.delivery.data, b"from another connection");
    assert!(
        get(&mine, "qx18").await.expect("basic.get").is_none(),
        "the binding removed from the other connection still routes"
    );

    // On the owning connection: exclusivity must match, durability is not compared.
    channel_error(&owner, Via::Reply, 405, &locked, |ch| async move {
        queue(
            &ch,
            "qx18",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    queue(
        &mine,
        "qx18",
        QueueDeclareOptions {
            durable: true,
            ..exclusive
        },
        FieldTable::default(),
    )
    .await
    .expect("redeclaring an exclusive queue as durable is accepted");
    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'qx18' {VHOST}: \
         received 'true' but current is 'false'"
    );
    channel_error(&owner, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeclareOptions {
            auto_delete: true,
            ..exclusive
        };
        queue(&ch, "qx18", options, FieldTable::default()).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// queue.delete, purge, bind and unbind

#[tokio::test]
async fn queue_delete_if_unused_or_if_empty_refuses_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["qd18", "qe18"] {
        queue(&ch, name, Default::default(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
    let _consumer = consume(&ch, "qd18", "c", false)
        .await
        .expect("basic.consume");
    publish(&ch, "", "qe18", b"one").await;

    let text = format!("PRECONDITION_FAILED - queue 'qd18' {VHOST} in use");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        ch.queue_delete("qd18".into(), options).await
    })
    .await;
    let text = format!("PRECONDITION_FAILED - queue 'qe18' {VHOST} not empty");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let options = QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        ch.queue_delete("qe18".into(), options).await
    })
    .await;
    assert_eq!(queue_counts(&ch, "qd18").await, (0, 1));
    assert_eq!(queue_counts(&ch, "qe18").await, (1, 0));
}

#[tokio::test]
async fn deleting_a_missing_queue_succeeds_with_count_0_but_purging_one_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for (if_unused, if_empty) in [(false, false), (true, false), (false, true), (true, true)] {
        let options = QueueDeleteOptions {
            if_unused,
            if_empty,
            ..Default::default()
        };
        let count = ch
            .queue_delete("nosuchq18".into(), options)
            .await
            .unwrap_or_else(|e| panic!("queue.delete of a missing queue with {options:?}: {e}"));
        assert_eq!(count, 0);
    }
    let text = format!("NOT_FOUND - no queue 'nosuchq18' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        ch.queue_purge("nosuchq18".into(), QueuePurgeOptions::default())
            .await
    })
    .await;
}

#[tokio::test]
async fn queue_bind_to_a_missing_exchange_or_queue_is_404_exchange_first() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let no_exchange = |name: &str| format!("NOT_FOUND - no exchange '{name}' {VHOST}");
    let cases = [
        ("q18", "nosuchex18", no_exchange("nosuchex18")),
        (
            "nosuchq18",
            "amq.direct",
            format!("NOT_FOUND - no queue 'nosuchq18' {VHOST}"),
        ),
        ("nosuchq18", "nosuchex18", no_exchange("nosuchex18")),
        ("q18", "amq.default", no_exchange("amq.default")),
    ];
    for (q, x, text) in cases {
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            bind(&ch, q, x, "k").await
        })
        .await;
    }
}

#[tokio::test]
async fn binding_or_unbinding_the_default_exchange_is_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        bind(&ch, "q18", "", "q18").await
    })
    .await;
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        ch.queue_unbind("q18".into(), "".into(), "q18".into(), FieldTable::default())
            .await
    })
    .await;
}

#[tokio::test]
async fn unbinding_a_missing_binding_queue_or_exchange_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "q18", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    for (q, x) in [
        ("q18", "amq.direct"),
        ("nosuchq18", "amq.direct"),
        ("q18", "nosuchex18"),
        ("nosuchq18", "nosuchex18"),
    ] {
        ch.queue_unbind(q.into(), x.into(), "k".into(), FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue.unbind of {q} from {x}: {e}"));
    }
    assert_works(&ch, "the channel after unbinding nothing").await;
}

#[tokio::test]
async fn the_empty_queue_name_without_a_declared_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    channel_error(
        &conn,
        Via::Reply,
        404,
        "NOT_FOUND - no previously declared queue",
        |ch| async move { bind(&ch, "", "amq.direct", "k").await },
    )
    .await;
    let ch = open_channel(&conn).await;
    let q = queue(&ch, "q18l", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    for round in ["first", "second"] {
        ch.queue_delete("".into(), QueueDeleteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{round} delete of the last declared queue: {e}"));
    }
    let r = queue(&ch, q.name().as_str(), PASSIVE_Q, FieldTable::default()).await;
    assert_eq!(
        r.map_err(|e| reply_code(&e)).err(),
        Some(Some(404)),
        "'' did not name the channel's last declared queue"
    );
}
