//! Exchange errors a client can provoke, answered as RabbitMQ 3.10 answers them (reply code,
//! text and scope: a channel error closes only its channel), and the missing-object cases
//! RabbitMQ is lenient about: exchange.declare, delete, bind and unbind, publishing.

mod common;

use common::provoke::*;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ExchangeKind;

// ---------------------------------------------------------------------------------------------
// exchange.declare

#[tokio::test]
async fn declaring_an_exchange_with_the_reserved_amq_prefix_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.foo", "amq.default"] {
        let text =
            format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            exchange(
                &ch,
                name,
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["nosuchex17", "amq.foo"] {
        let text = format!("NOT_FOUND - no exchange '{name}' {VHOST}");
        channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
            exchange(
                &ch,
                name,
                ExchangeKind::Direct,
                PASSIVE_X,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn redeclaring_amq_direct_with_another_type_or_durability_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    exchange(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("amq.direct redeclared exactly as it is");

    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' {VHOST}: \
         received 'fanout' but current is 'direct'"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "amq.direct",
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
    })
    .await;
    let text = format!(
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' {VHOST}: \
         received 'false' but current is 'true'"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "amq.direct",
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn redeclaring_an_exchange_with_other_properties_is_406_naming_the_first_difference() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("an identical redeclaration is fine");

    let inequivalent = |arg: &str, detail: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange 'ux17' {VHOST}: {detail}"
        )
    };
    let text = inequivalent("type", "received 'fanout' but current is 'direct'");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        exchange(
            &ch,
            "ux17",
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    let flags = [
        (
            "durable",
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
        ),
        (
            "auto_delete",
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
        ),
        (
            "internal",
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
        ),
    ];
    for (arg, options) in flags {
        let text = inequivalent(arg, "received 'true' but current is 'false'");
        channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
            exchange(
                &ch,
                "ux17",
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
    let text = inequivalent(
        "alternate-exchange",
        "received the value 'amq.fanout' of type 'longstr' but current is none",
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let args = table(&[("alternate-exchange", longstr("amq.fanout"))]);
        exchange(&ch, "ux17", ExchangeKind::Direct, Default::default(), args).await
    })
    .await;
}

#[tokio::test]
async fn passive_declare_of_an_existing_exchange_checks_nothing_else() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let different = ExchangeDeclareOptions {
        durable: true,
        auto_delete: true,
        internal: true,
        ..PASSIVE_X
    };
    let args = table(&[("alternate-exchange", longstr("amq.fanout"))]);
    for name in ["ux17", "amq.direct"] {
        exchange(&ch, name, ExchangeKind::Fanout, different, args.clone())
            .await
            .unwrap_or_else(|e| panic!("passive declare of {name} with other properties: {e}"));
    }
    assert!(ch.status().connected());
}

#[tokio::test]
async fn declaring_the_default_exchange_is_refused_with_403_passive_or_not() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    for options in [ExchangeDeclareOptions::default(), PASSIVE_X] {
        channel_error(&conn, Via::Reply, 403, text, |ch| async move {
            exchange(
                &ch,
                "",
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
}

#[tokio::test]
async fn an_unknown_exchange_type_closes_the_connection_with_503() {
    let broker = TestBroker::start().await;
    for kind in ["foo", ""] {
        let text = format!("COMMAND_INVALID - invalid exchange type '{kind}'");
        connection_error(&broker, Via::Reply, 503, &text, |ch| async move {
            exchange(
                &ch,
                "ux17",
                ExchangeKind::Custom(kind.into()),
                Default::default(),
                FieldTable::default(),
            )
            .await
        })
        .await;
    }
    let (_conn, ch) = broker.channel().await;
    let r = exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await;
    assert_eq!(
        r.map_err(|e| reply_code(&e)).err(),
        Some(Some(404)),
        "a refused declaration created the exchange"
    );
}

#[tokio::test]
async fn an_alternate_exchange_argument_that_is_not_a_string_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!(
        "PRECONDITION_FAILED - invalid type 'long' for arg 'alternate-exchange' in exchange 'ex21' {VHOST}"
    );
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        let args = table(&[("alternate-exchange", long(5))]);
        exchange(&ch, "ex21", ExchangeKind::Direct, Default::default(), args).await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// exchange.delete, exchange.bind and unbind, publishing to exchanges

#[tokio::test]
async fn deleting_a_system_exchange_is_refused_with_403_even_when_it_does_not_exist() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["amq.direct", "amq.nosuch", "amq.default"] {
        let text =
            format!("ACCESS_REFUSED - deletion of system exchange '{name}' {VHOST} not allowed");
        channel_error(&conn, Via::Reply, 403, &text, |ch| async move {
            ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await
        })
        .await;
    }
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    channel_error(&conn, Via::Reply, 403, text, |ch| async move {
        ch.exchange_delete("".into(), ExchangeDeleteOptions::default())
            .await
    })
    .await;
    let ch = open_channel(&conn).await;
    exchange(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("amq.direct survived the refused delete");
}

#[tokio::test]
async fn exchange_delete_if_unused_refuses_the_source_of_a_binding_with_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    for name in ["ux17", "dest17"] {
        exchange(
            &ch,
            name,
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
    }
    queue(&ch, "q17", Default::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    bind(&ch, "q17", "ux17", "k").await.expect("queue.bind");
    ch.exchange_bind(
        "dest17".into(),
        "amq.fanout".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");

    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        ..Default::default()
    };
    let text = format!("PRECONDITION_FAILED - exchange 'ux17' {VHOST} in use");
    channel_error(&conn, Via::Reply, 406, &text, |ch| async move {
        ch.exchange_delete("ux17".into(), if_unused).await
    })
    .await;
    exchange(
        &ch,
        "ux17",
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("the exchange in use survived");

    ch.exchange_delete("dest17".into(), if_unused)
        .await
        .expect("an exchange that is only a binding's destination is unused");
    ch.exchange_delete("ux17".into(), ExchangeDeleteOptions::default())
        .await
        .expect("without if-unused an exchange in use is deleted");
    for name in ["ux17", "dest17"] {
        let ch = open_channel(&conn).await;
        let r = exchange(
            &ch,
            name,
            ExchangeKind::Direct,
            PASSIVE_X,
            FieldTable::default(),
        )
        .await;
        assert_eq!(
            r.map_err(|e| reply_code(&e)).err(),
            Some(Some(404)),
            "{name} was not deleted"
        );
    }
}

#[tokio::test]
async fn deleting_a_missing_exchange_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for if_unused in [false, true] {
        ch.exchange_delete(
            "nosuchex17".into(),
            ExchangeDeleteOptions {
                if_unused,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("exchange.delete if_unused={if_unused}: {e}"));
    }
    assert_works(&ch, "the channel after deleting missing exchanges").await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in ["no-such-ex", "amq.default"] {
        let text = format!("NOT_FOUND - no exchange '{name}' {VHOST}");
        channel_error(&conn, Via::Event, 404, &text, |ch| async move {
            publish(&ch, name, "k", b"lost").await;
            Ok(())
        })
        .await;
    }
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = open_channel(&conn).await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    exchange(
        &ch,
        "ux17i",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let text = format!("ACCESS_REFUSED - cannot publish to internal exchange 'ux17i' {VHOST}");
    channel_error(&conn, Via::Event, 403, &text, |ch| async move {
        publish(&ch, "ux17i", "", b"refused").await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn exchange_bind_to_a_missing_destination_is_404_and_unbinding_nothing_succeeds() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = format!("NOT_FOUND - no exchange 'nosuch' {VHOST}");
    channel_error(&conn, Via::Reply, 404, &text, |ch| async move {
        ch.exchange_bind(
            "nosuch".into(),
            "amq.direct".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    let ch = open_channel(&conn).await;
    for (destination, source) in [("amq.fanout", "amq.direct"), ("nosuch", "nosuch2")] {
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            "k".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("exchange.unbind {destination} from {source}: {e}"));
    }
    assert_works(&ch, "the channel after unbinding nothing").await;
}
