//! The event exchange (`amq.rabbitmq.event`): what is created and deleted, connections,
//! channels, consumers and logins arrive as messages routed by the event's name, with
//! RabbitMQ's headers, in the order things happened.

mod common;

use common::api::*;
use common::provoke::{channel_error, Via};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, Consumer};
use reqwest::StatusCode;
use serde_json::json;

/// One event as a client receives it.
#[derive(Debug)]
struct Event {
    name: String,
    headers: FieldTable,
}

impl Event {
    fn get(&self, name: &str) -> &AMQPValue {
        self.headers
            .inner()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {} {:?}", self.name, self.headers))
    }

    fn text(&self, name: &str) -> String {
        match self.get(name) {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("{name} of {} is not a string: {other:?}", self.name),
        }
    }

    fn flag(&self, name: &str) -> bool {
        match self.get(name) {
            AMQPValue::Boolean(b) => *b,
            other => panic!("{name} of {} is not a boolean: {other:?}", self.name),
        }
    }

    fn number(&self, name: &str) -> i64 {
        match self.get(name) {
            AMQPValue::LongLongInt(n) => *n,
            other => panic!("{name} of {} is not a 64-bit integer: {other:?}", self.name),
        }
    }

    fn texts(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            AMQPValue::FieldArray(a) => a
                .as_slice()
                .iter()
                .map(|v| match v {
                    AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => panic!("{name} of {} holds {other:?}", self.name),
                })
                .collect(),
            other => panic!("{name} of {} is not an array: {other:?}", self.name),
        }
    }
}

/// A consumer of every event, bound before anything the test looks at happens.
async fn listen(broker: &TestBroker) -> (Connection, Consumer) {
    let (conn, ch) = broker.channel().await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.queue_bind(
        q.name().clone(),
        "amq.rabbitmq.event".into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, consumer)
}

/// The next event, with the properties every event has checked.
async fn next_event(events: &mut Consumer) -> Event {
    let d = next_delivery(events).await;
    let name = d.routing_key.to_string();
    assert!(d.data.is_empty(), "{name} has a body");
    assert_eq!(*d.properties.delivery_mode(), Some(2), "{name}");
    let headers = d.properties.headers().clone().expect("headers");
    let event = Event { name, headers };
    let ms = event.number("timestamp_in_ms");
    assert_eq!(*d.properties.timestamp(), Some(ms as u64 / 1000));
    event
}

/// Events up to and including the first that `last` picks.
async fn events_until(events: &mut Consumer, last: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = next_event(events).await;
        let done = last(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn find<'a>(events: &'a [Event], name: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(events)))
}

#[tokio::test]
async fn a_connection_life_arrives_in_order_with_rabbitmq_headers() {
    let broker = TestBroker::start().await;
    let (_listener, mut events) = listen(&broker).await;
    let conn = Connection::connect(
        &broker.uri(),
        ConnectionProperties::default().with_connection_name("evtest".into()),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-foo".into(), AMQPValue::LongString("bar".into()));
    ch.exchange_declare(
        "ex1".into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("q1".into(), durable, args).await.unwrap();
    let mut args = FieldTable::default();
    args.insert("a".into(), AMQPValue::LongInt(1));
    let bind = |args: FieldTable| {
        ch.queue_bind(
            "q1".into(),
            "ex1".into(),
            "k.#".into(),
            QueueBindOptions::default(),
            args,
        )
    };
    bind(args.clone()).await.unwrap();
    ch.basic_qos(5, BasicQosOptions::default()).await.unwrap();
    let mut priority = FieldTable::default();
    priority.insert("x-priority".into(), AMQPValue::LongInt(3));
    ch.basic_consume(
        "q1".into(),
        "c1".into(),
        BasicConsumeOptions::default(),
        priority,
    )
    .await
    .unwrap();
    ch.basic_cancel("c1".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    ch.queue_unbind("q1".into(), "ex1".into(), "k.#".into(), args)
        .await
        .unwrap();
    ch.queue_delete("q1".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete("ex1".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("mine".into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    let seen = events_until(&mut events, |e| {
        e.name == "connection.closed" && e.texts("client_properties").len() > 1
    })
    .await;
    // The listener's own binding and consumer came first.
    let from = seen
        .iter()
        .position(|e| e.name == "user.authentication.success")
        .expect("a login");
    let seen = &seen[from..];
    assert_eq!(
        names(seen),
        [
            "user.authentication.success",
            "connection.created",
            "channel.created",
            "exchange.created",
            "queue.created",
            "binding.created",
            "consumer.created",
            "consumer.deleted",
            "binding.deleted",
            "queue.deleted",
            "exchange.deleted",
            "queue.created",
            "channel.closed",
            "queue.deleted",
            "connection.closed",
        ]
    );

    let login = &seen[0];
    assert_eq!(login.text("name"), "guest");
    assert_eq!(login.text("auth_mechanism"), "PLAIN");
    assert!(!login.flag("ssl"));
    let connection_name = login.text("connection_name");
    assert!(connection_name.contains(" -> "), "{connection_name}");

    let created = &seen[1];
    assert_eq!(created.text("user_provided_name"), "evtest");
    assert_eq!(created.text("name"), connection_name);
    assert_eq!(created.text("user"), "guest");
    assert_eq!(created.text("vhost"), "/");
    assert_eq!(created.text("user_who_performed_action"), "guest");
    assert_eq!(created.text("type"), "network");
    assert_eq!(created.number("peer_port"), login.number("peer_port"));
    assert_eq!(created.number("port"), i64::from(broker.addr().port()));
    assert!(created.number("frame_max") > 0);
    assert!(created.number("connected_at") > 0);
    assert!(created
        .texts("client_properties")
        .iter()
        .any(|p| p == r#"{<<"connection_name">>,longstr,<<"evtest">>}"#));
    let pid = created.text("pid");

    let channel = &seen[2];
    assert_eq!(channel.number("number"), 1);
    assert_eq!(channel.text("connection"), pid);
    assert_eq!(channel.text("name"), format!("{connection_name} (1)"));
    let channel_pid = channel.text("pid");

    let exchange = &seen[3];
    assert_eq!(exchange.text("name"), "ex1");
    assert_eq!(exchange.text("type"), "topic");
    assert!(exchange.flag("durable") && !exchange.flag("internal"));
    assert_eq!(
        exchange.texts("arguments"),
        [r#"{<<"x-foo">>,longstr,<<"bar">>}"#]
    );
    assert_eq!(exchange.text("policy"), "");

    let queue = &seen[4];
    assert_eq!(queue.text("name"), "q1");
    assert_eq!(queue.text("vhost"), "/");
    assert!(queue.flag("durable") && !queue.flag("exclusive") && !queue.flag("auto_delete"));
    assert_eq!(
        queue.texts("arguments"),
        [r#"{<<"x-max-length">>,signedint,10}"#]
    );
    assert_eq!(queue.text("owner_pid"), "");

    let binding = &seen[5];
    assert_eq!(binding.text("source_name"), "ex1");
    assert_eq!(binding.text("source_kind"), "exchange");
    assert_eq!(binding.text("destination_name"), "q1");
    assert_eq!(binding.text("destination_kind"), "queue");
    assert_eq!(binding.text("routing_key"), "k.#");
    assert_eq!(binding.texts("arguments"), [r#"{<<"a">>,signedint,1}"#]);

    let consumer = &seen[6];
    assert_eq!(consumer.text("consumer_tag"), "c1");
    assert_eq!(consumer.text("queue"), "q1");
    assert_eq!(consumer.text("channel"), channel_pid);
    assert_eq!(consumer.number("prefetch_count"), 5);
    assert!(consumer.flag("ack_required") && !consumer.flag("exclusive"));
    assert_eq!(
        consumer.texts("arguments"),
        [r#"{<<"x-priority">>,signedint,3}"#]
    );
    assert_eq!(seen[7].text("consumer_tag"), "c1");
    assert_eq!(seen[7].text("user_who_performed_action"), "guest");
    assert_eq!(seen[9].text("name"), "q1");
    assert_eq!(seen[10].text("name"), "ex1");

    let mine = &seen[11];
    assert!(mine.flag("exclusive"));
    assert_eq!(mine.text("owner_pid"), pid);
    assert_eq!(seen[12].text("pid"), channel_pid);
    // The exclusive queue goes with its connection: the broker deleted it.
    assert_eq!(seen[13].text("name"), "mine");
    assert_eq!(seen[13].text("user_who_performed_action"), "rmq-internal");
    let closed = &seen[14];
    assert_eq!(closed.text("pid"), pid);
    assert_eq!(closed.text("user_provided_name"), "evtest");
    assert!(!closed.headers.inner().contains_key("vhost"));
}

#[tokio::test]
async fn a_refused_login_is_a_failure_and_no_connection() {
    let broker = TestBroker::start().await;
    let (_listener, mut events) = listen(&broker).await;
    assert!(connect_as(&broker, "guest", "wrong", "/").await.is_err());
    let seen = events_until(&mut events, |e| e.name == "connection.closed").await;
    let from = seen
        .iter()
        .position(|e| e.name.starts_with("user.authentication"))
        .expect("a login");
    let seen = &seen[from..];
    assert_eq!(
        names(seen),
        ["user.authentication.failure", "connection.closed"]
    );
    assert_eq!(seen[0].text("name"), "guest");
    assert_eq!(seen[0].text("error"), "user 'guest' - invalid credentials");
}

#[tokio::test]
async fn auto_delete_queues_go_as_the_broker_with_their_last_consumer() {
    let broker = TestBroker::start().await;
    let (_listener, mut events) = listen(&broker).await;
    let (_conn, ch) = broker.channel().await;
    let auto = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare("ad1".into(), auto, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "ad1".into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_consume(
        "ad1".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    let seen = events_until(&mut events, |e| {
        e.name == "queue.deleted" && e.text("name") == "ad1"
    })
    .await;
    // The consumer goes, then the queue's bindings, then the queue.
    assert_eq!(
        names(&seen[seen.len() - 3..]),
        ["consumer.deleted", "binding.deleted", "queue.deleted"]
    );
    let deleted = seen.last().expect("an event");
    assert_eq!(deleted.text("user_who_performed_action"), "rmq-internal");
    let unbound = &seen[seen.len() - 2];
    assert_eq!(unbound.text("destination_name"), "ad1");
    assert_eq!(unbound.text("user_who_performed_action"), "rmq-internal");
    assert_eq!(find(&seen, "consumer.deleted").text("queue"), "ad1");
}

#[tokio::test]
async fn management_changes_are_events_of_the_user_who_made_them() {
    let broker = TestBroker::start().await;
    let (_listener, mut events) = listen(&broker).await;
    assert_eq!(
        put(&broker, "/api/vhosts/v1", json!({})).await,
        StatusCode::CREATED
    );
    let seen = events_until(&mut events, |e| e.name == "permission.created").await;
    let exchanges: Vec<_> = seen
        .iter()
        .filter(|e| e.name == "exchange.created")
        .map(|e| e.text("name"))
        .collect();
    assert_eq!(exchanges.len(), 7, "{exchanges:?}");
    assert!(exchanges.iter().any(|x| x == "amq.rabbitmq.trace"));
    assert!(!exchanges.iter().any(|x| x == "amq.rabbitmq.event"));
    let vhost = find(&seen, "vhost.created");
    assert_eq!(vhost.text("name"), "v1");
    assert_eq!(vhost.text("user_who_performed_action"), "guest");
    assert_eq!(
        names(&seen[seen.len() - 2..]),
        ["vhost.created", "permission.created"]
    );
    // The event exchange is the default vhost's alone; events of v1 arrive there.
    assert_eq!(
        get(&broker, "/api/exchanges/v1/amq.rabbitmq.event").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, x) = get(&broker, "/api/exchanges/%2F/amq.rabbitmq.event").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (x["type"].clone(), x["internal"].clone()),
        (json!("topic"), json!(true))
    );
    assert_eq!(
        put(&broker, "/api/queues/v1/qv", json!({})).await,
        StatusCode::CREATED
    );
    let q = events_until(&mut events, |e| e.name == "queue.created").await;
    assert_eq!(q.last().unwrap().text("vhost"), "v1");

    let user = json!({"password": "p1", "tags": "management"});
    assert_eq!(
        put(&broker, "/api/users/u1", user).await,
        StatusCode::CREATED
    );
    let seen = events_until(&mut events, |e| e.name == "user.tags.set").await;
    assert_eq!(names(&seen), ["user.created", "user.tags.set"]);
    assert_eq!(seen[1].texts("tags"), ["management"]);
    let user = json!({"password": "p2", "tags": "monitoring"});
    assert_eq!(
        put(&broker, "/api/users/u1", user).await,
        StatusCode::NO_CONTENT
    );
    let seen = events_until(&mut events, |e| e.name == "user.tags.set").await;
    assert_eq!(names(&seen), ["user.password.changed", "user.tags.set"]);
    // Without a password, the user's is cleared: its tags are set first, as in RabbitMQ.
    let user = json!({"tags": "monitoring"});
    assert_eq!(
        put(&broker, "/api/users/u1", user).await,
        StatusCode::NO_CONTENT
    );
    let seen = events_until(&mut events, |e| e.name == "user.password.cleared").await;
    assert_eq!(names(&seen), ["user.tags.set", "user.password.cleared"]);

    let rights = json!({"configure": ".*", "write": "w", "read": "r"});
    put(&broker, "/api/permissions/v1/u1", rights).await;
    delete(&broker, "/api/permissions/v1/u1").await;
    let policy = json!({"pattern": "^q", "definition": {"max-length": 5}, "apply-to": "queues"});
    put(&broker, "/api/policies/v1/p1", policy).await;
    delete(&broker, "/api/policies/v1/p1").await;
    delete(&broker, "/api/users/u1").await;
    let seen = events_until(&mut events, |e| e.name == "user.deleted").await;
    assert_eq!(
        names(&seen),
        [
            "permission.created",
            "permission.deleted",
            "policy.set",
            "policy.cleared",
            "user.deleted"
        ]
    );
    assert_eq!(seen[0].text("write"), "w");
    assert_eq!(seen[0].text("vhost"), "v1");
    assert_eq!(seen[2].text("pattern"), "^q");
    assert_eq!(seen[2].text("apply-to"), "queues");
    assert_eq!(seen[2].number("priority"), 0);
    assert!(seen
        .iter()
        .all(|e| e.text("user_who_performed_action") == "guest"));

    delete(&broker, "/api/vhosts/v1").await;
    let seen = events_until(&mut events, |e| e.name == "vhost.deleted").await;
    assert_eq!(seen[0].name, "permission.deleted", "{:?}", names(&seen));
    let queue = find(&seen, "queue.deleted");
    assert_eq!(
        (queue.text("name"), queue.text("vhost")),
        ("qv".into(), "v1".into())
    );
    assert_eq!(
        seen.iter().filter(|e| e.name == "exchange.deleted").count(),
        7
    );
}

#[tokio::test]
async fn clients_cannot_publish_to_the_event_exchange() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let text = "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.event' in \
                vhost '/'";
    channel_error(&conn, Via::Event, 403, text, |ch| async move {
        publish(&ch, "amq.rabbitmq.event", "queue.created", b"forged").await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_durable_queue_bound_to_the_event_exchange_hears_events_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (conn, ch) = broker.channel().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("audit".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "audit".into(),
        "amq.rabbitmq.event".into(),
        "queue.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    drop((ch, conn));
    let broker = common::durable::restart(broker, dir.path()).await;
    let (_conn, ch) = broker.channel().await;
    ch.queue_declare(
        "after-restart".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut events = ch
        .basic_consume(
            "audit".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.name.as_str(), e.text("name")),
        ("queue.created", "after-restart".into())
    );
}
