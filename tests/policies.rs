//! Policies and operator policies as a client sees them: the highest-priority matching policy
//! applies to queues and exchanges, at once to those that exist and at declare to new ones;
//! limits take the lowest of the queue's argument, the policy and the operator policy (as
//! RabbitMQ 3.10 does: x-max-length 10, policy 5, operator policy 3 keep 3); dead-lettering
//! and alternate exchanges come from a policy unless the object's own argument says; clearing
//! a policy gives the object back its own settings; policies survive a restart.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::json;
use warren::broker::metadata::policies::{ApplyTo, PolicySpec};

fn policy(name: &str, pattern: &str, priority: i64, definition: serde_json::Value) -> PolicySpec {
    PolicySpec {
        vhost: "/".into(),
        name: name.into(),
        pattern: pattern.into(),
        apply_to: ApplyTo::All,
        priority,
        definition: definition.as_object().cloned().unwrap(),
    }
}

async fn queue_with(ch: &Channel, name: &str, args: &[(&str, AMQPValue)]) {
    let mut table = FieldTable::default();
    for (k, v) in args {
        table.insert((*k).into(), v.clone());
    }
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), table)
        .await
        .expect("queue.declare");
}

/// Publishes `n` messages through the default exchange and waits until the broker has them.
async fn fill(ch: &Channel, queue: &str, n: usize) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ok();
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn the_lowest_of_argument_policy_and_operator_policy_limits_a_queue() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    b.set_policy(
        policy("p", "^pq-", 1, json!({"max-length": 5})),
        false,
        "guest",
    )
    .unwrap();
    b.set_policy(
        policy("op", "^pq-", 1, json!({"max-length": 3})),
        true,
        "guest",
    )
    .unwrap();
    let (_c, ch) = broker.channel().await;
    queue_with(&ch, "pq-arg10", &[("x-max-length", AMQPValue::LongInt(10))]).await;
    queue_with(&ch, "pq-arg2", &[("x-max-length", AMQPValue::LongInt(2))]).await;
    queue_with(&ch, "pq-none", &[]).await;
    for q in ["pq-arg10", "pq-arg2", "pq-none"] {
        fill(&ch, q, 20).await;
    }
    assert_eq!(queue_counts(&ch, "pq-arg10").await.0, 3);
    assert_eq!(queue_counts(&ch, "pq-arg2").await.0, 2);
    assert_eq!(queue_counts(&ch, "pq-none").await.0, 3);
    let q = b.vhost("/").unwrap().queue("pq-none").unwrap();
    let effective = q.effective();
    assert_eq!(effective.policy.as_deref(), Some("p"));
    assert_eq!(effective.operator_policy.as_deref(), Some("op"));
}

#[tokio::test]
async fn a_policy_applies_at_once_to_existing_queues_and_clearing_it_gives_them_back() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    let (_c, ch) = broker.channel().await;
    queue_with(&ch, "live", &[]).await;
    fill(&ch, "live", 10).await;
    b.set_policy(
        policy("cap", "^live$", 0, json!({"max-length": 4})),
        false,
        "guest",
    )
    .unwrap();
    assert_eq!(
        queue_counts(&ch, "live").await.0,
        4,
        "the head was dropped when the policy came"
    );
    let got = ch
        .basic_get("live".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(got.delivery.data, b"6", "the oldest went first");
    assert!(b.clear_policy("/", "cap", false, "guest"));
    fill(&ch, "live", 10).await;
    assert_eq!(
        queue_counts(&ch, "live").await.0,
        13,
        "no limit once cleared"
    );
}

#[tokio::test]
async fn the_highest_priority_policy_wins_and_applies_to_new_queues() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    b.set_policy(
        policy("low", "^orders", 0, json!({"max-length": 1})),
        false,
        "guest",
    )
    .unwrap();
    b.set_policy(
        policy("high", "^orders\\.", 10, json!({"max-length": 2})),
        false,
        "guest",
    )
    .unwrap();
    let (_c, ch) = broker.channel().await;
    queue_with(&ch, "orders.eu", &[]).await;
    queue_with(&ch, "orders-us", &[]).await;
    fill(&ch, "orders.eu", 5).await;
    fill(&ch, "orders-us", 5).await;
    assert_eq!(queue_counts(&ch, "orders.eu").await.0, 2, "high applies");
    assert_eq!(
        queue_counts(&ch, "orders-us").await.0,
        1,
        "only low matches"
    );
}

#[tokio::test]
async fn dead_lettering_comes_from_a_policy_unless_the_queue_says() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    let (_c, ch) = broker.channel().await;
    queue_with(&ch, "from-policy", &[]).await;
    queue_with(&ch, "from-argument", &[]).await;
    let own = AMQPValue::LongString("".into());
    let own_key = AMQPValue::LongString("from-argument".into());
    queue_with(
        &ch,
        "work-own",
        &[
            ("x-dead-letter-exchange", own),
            ("x-dead-letter-routing-key", own_key),
        ],
    )
    .await;
    queue_with(&ch, "work", &[]).await;
    let definition = json!({"dead-letter-exchange": "", "dead-letter-routing-key": "from-policy"});
    b.set_policy(policy("dlx", "^work", 0, definition), false, "guest")
        .unwrap();
    for q in ["work", "work-own"] {
        fill(&ch, q, 1).await;
        let got = ch
            .basic_get(q.into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message");
        got.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
    let mut consumer = ch
        .basic_consume(
            "from-policy".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    next_delivery(&mut consumer).await;
    let mut consumer = ch
        .basic_consume(
            "from-argument".into(),
            "c2".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    next_delivery(&mut consumer).await;
    assert_eq!(queue_counts(&ch, "from-policy").await.0, 0);
}

#[tokio::test]
async fn an_alternate_exchange_can_come_from_a_policy() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    let (_c, ch) = broker.channel().await;
    ch.exchange_declare(
        "ae".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue_with(&ch, "unrouted", &[]).await;
    ch.queue_bind(
        "unrouted".into(),
        "ae".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut ae = policy("ae", "^orders$", 0, json!({"alternate-exchange": "ae"}));
    ae.apply_to = ApplyTo::Exchanges;
    b.set_policy(ae, false, "guest").unwrap();
    publish(&ch, "orders", "nobody", b"lost without the policy").await;
    assert_eq!(queue_counts(&ch, "unrouted").await.0, 1);
    assert!(b.clear_policy("/", "ae", false, "guest"));
    publish(&ch, "orders", "nobody", b"dropped").await;
    assert_eq!(queue_counts(&ch, "unrouted").await.0, 1);
}

#[tokio::test]
async fn policies_survive_a_restart_and_apply_to_recovered_queues() {
    let dir = tempfile::tempdir().unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    {
        let broker = TestBroker::start_in(dir.path()).await;
        let (_c, ch) = broker.channel().await;
        ch.queue_declare("kept".into(), durable, FieldTable::default())
            .await
            .unwrap();
        broker
            .server
            .broker
            .set_policy(
                policy("cap", "^kept$", 0, json!({"max-length": 2})),
                false,
                "guest",
            )
            .unwrap();
        broker.server.stop().await.unwrap();
    }
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    fill(&ch, "kept", 5).await;
    assert_eq!(queue_counts(&ch, "kept").await.0, 2);
    assert_eq!(broker.server.broker.metadata.policies("/", false).len(), 1);
}

/// As RabbitMQ 3.10 does (observed): a message's expiry is fixed when it arrives, so a
/// message-ttl policy applies to messages published after it, not to those already queued.
#[tokio::test]
async fn a_message_ttl_policy_applies_to_messages_published_after_it() {
    let broker = TestBroker::start().await;
    let b = &broker.server.broker;
    let (_c, ch) = broker.channel().await;
    queue_with(&ch, "ttl", &[]).await;
    fill(&ch, "ttl", 1).await;
    b.set_policy(
        policy("short", "^ttl$", 0, json!({"message-ttl": 50})),
        false,
        "guest",
    )
    .unwrap();
    fill(&ch, "ttl", 1).await;
    // Time is what expires a message: nothing to await but the clock.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let got = ch
        .basic_get("ttl".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message from before the policy");
    assert_eq!(got.delivery.data, b"0");
    assert!(
        ch.basic_get("ttl".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none(),
        "the message published under the policy expired"
    );
}
