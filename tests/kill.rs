//! Durability against a crash: the real binary is killed with SIGKILL and started again on the
//! same directory; every message whose publisher confirm was an ack must be back, whenever the
//! kill landed.

mod common;

use common::durable::*;
use common::process::*;
use common::*;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{
    Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn connect(uri: &str) -> Connection {
    within(
        "a connection",
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connects")
}

/// Publishers publish to this durable fanout exchange, which feeds both queues below.
const CRASH_EXCHANGE: &str = "crash";
/// Nobody consumes from it while the publishers run: every confirmed message must be back.
const KEPT_QUEUE: &str = "crash-kept";
/// A consumer acks from it while the publishers run: every confirmed message it did not ack
/// must be back.
const CONSUMED_QUEUE: &str = "crash-consumed";
/// A durable queue the verifier publishes one persistent message to after acking everything:
/// its confirm means those acks are on disk too, so no earlier round may reappear.
const FENCE_QUEUE: &str = "crash-fence";
const PUBLISHERS: u32 = 4;
const ROUNDS: u32 = 5;
/// Publishes a publisher keeps unconfirmed at most.
const WINDOW: usize = 64;

/// Identifies a published message: which kill round, which publisher, its place in that
/// publisher's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct MessageId {
    round: u32,
    publisher: u32,
    seq: u64,
}

impl MessageId {
    fn name(&self) -> String {
        format!("{}.{}.{}", self.round, self.publisher, self.seq)
    }

    fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('.');
        let id = Self {
            round: parts.next()?.parse().ok()?,
            publisher: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }

    /// The id a delivery carries in its message-id property.
    fn of(d: &Delivery) -> Self {
        let name = d
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        Self::parse(&name)
            .unwrap_or_else(|| panic!("a delivery without a valid message id: {name:?}"))
    }

    /// The body: the name, then bytes that depend on the id, of a length that varies.
    fn body(&self) -> Vec<u8> {
        let mut body = format!("{}|", self.name()).into_bytes();
        let len = (self.seq.wrapping_mul(7919) % 1500) as usize;
        body.extend((0..len as u64).map(|i| ((i ^ self.seq).wrapping_mul(31) >> 2) as u8));
        body
    }
}

/// What one publisher did before the broker died under it.
#[derive(Debug, Default)]
struct Published {
    /// Publishes sent (seq 0 up to this).
    sent: u64,
    /// Seqs whose confirm was an ack, in order.
    acked: Vec<u64>,
    nacked: u64,
}

/// Publishes persistent numbered messages with confirms until `killed` says the broker is gone.
async fn publish_until_killed(
    uri: String,
    round: u32,
    publisher: u32,
    ready: Arc<tokio::sync::Barrier>,
    mut killed: tokio::sync::watch::Receiver<bool>,
) -> Published {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ready.wait().await;
    let mut out = Published::default();
    let mut in_flight: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let publishing = async {
        loop {
            if in_flight.len() >= WINDOW {
                let (seq, confirm) = in_flight.pop_front().unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                if !record(&mut out, seq, confirm, deadline).await {
                    return;
                }
                continue;
            }
            let id = MessageId {
                round,
                publisher,
                seq: out.sent,
            };
            let props = persistent().with_message_id(id.name().into());
            let published = ch
                .basic_publish(
                    CRASH_EXCHANGE.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &id.body(),
                    props,
                )
                .await;
            let Ok(confirm) = published else { return };
            in_flight.push_back((out.sent, confirm));
            out.sent += 1;
        }
    };
    // Whatever lapin does with a dead connection, the kill ends this. A confirm being awaited
    // at that moment is dropped uncounted, which only makes the check weaker, never wrong.
    tokio::select! {
        _ = publishing => {}
        _ = killed.wait_for(|k| *k) => {}
    }
    // Confirms that arrived before the broker died are decided already; the rest fail as soon
    // as lapin notices the connection is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (seq, confirm) in in_flight {
        record(&mut out, seq, confirm, deadline).await;
    }
    out
}

/// Waits for one confirm and records it; false once the connection is gone.
async fn record(
    out: &mut Published,
    seq: u64,
    confirm: PublisherConfirm,
    deadline: tokio::time::Instant,
) -> bool {
    match tokio::time::timeout_at(deadline, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => {
            out.acked.push(seq);
            true
        }
        Ok(Ok(Confirmation::Nack(_))) => {
            out.nacked += 1;
            true
        }
        Ok(Ok(Confirmation::NotRequested)) => panic!("confirms were not enabled"),
        Ok(Err(_)) | Err(_) => false,
    }
}

/// Acks every delivery from `CONSUMED_QUEUE`, one by one, until `killed` says the broker is
/// gone. Returns the ids it acked or tried to ack: they may or may not have reached the disk.
async fn consume_until_killed(
    uri: String,
    ready: Arc<tokio::sync::Barrier>,
    mut killed: tokio::sync::watch::Receiver<bool>,
) -> HashSet<MessageId> {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.basic_qos(50, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            CONSUMED_QUEUE.into(),
            "crash-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ready.wait().await;
    let mut acked = HashSet::new();
    let acking = async {
        while let Some(Ok(d)) = consumer.next().await {
            acked.insert(MessageId::of(&d));
            if d.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
    };
    // Whatever lapin does with a dead connection (an ack may wait on it), the kill ends this.
    tokio::select! {
        _ = acking => {}
        _ = killed.wait_for(|k| *k) => {}
    }
    acked
}

/// Consumes exactly what `queue` holds and checks it against what the clients of `round`
/// saw: no earlier round, bodies intact, each publisher's messages in order and once, and
/// every confirmed message back unless the consumer acked it (`consumed`; only messages of a
/// queue with a consumer may come back marked redelivered). Returns how many came back; they
/// are left unacked on `ch`.
async fn check_queue(
    ch: &Channel,
    queue: &str,
    round: u32,
    published: &BTreeMap<u32, Published>,
    consumed: Option<&HashSet<MessageId>>,
) -> usize {
    let (count, _) = queue_counts(ch, queue).await;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            format!("verify-{queue}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut seen: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for _ in 0..count {
        let d = next_delivery(&mut consumer).await;
        let id = MessageId::of(&d);
        let name = id.name();
        assert_eq!(
            id.round, round,
            "{queue}: message {name} reappeared although it was acked and a later confirm \
             made that durable"
        );
        assert_eq!(d.data, id.body(), "{queue}: body of {name}");
        assert_eq!(*d.properties.delivery_mode(), Some(2), "{queue}: {name}");
        assert!(
            !d.redelivered || consumed.is_some(),
            "{queue}: {name} is marked redelivered but was never delivered"
        );
        let sent = published.get(&id.publisher).map_or(0, |p| p.sent);
        assert!(id.seq < sent, "{queue}: {name} was never published");
        seen.entry(id.publisher).or_default().push(id.seq);
    }
    assert_no_delivery(&mut consumer).await;

    for (publisher, p) in published {
        let seqs = seen.get(publisher).map(Vec::as_slice).unwrap_or_default();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{queue}, round {round}, publisher {publisher}: out of order or duplicated: {seqs:?}"
        );
        let acked_by_consumer = |seq: u64| {
            consumed.is_some_and(|c| {
                c.contains(&MessageId {
                    round,
                    publisher: *publisher,
                    seq,
                })
            })
        };
        let missing: Vec<u64> = p
            .acked
            .iter()
            .copied()
            .filter(|&s| seqs.binary_search(&s).is_err() && !acked_by_consumer(s))
            .collect();
        assert!(
            missing.is_empty(),
            "{queue}, round {round}, publisher {publisher}: {} confirmed messages are missing \
             after the kill (first {:?}); {} confirmed, {} sent, {} back",
            missing.len(),
            &missing[..missing.len().min(10)],
            p.acked.len(),
            p.sent,
            seqs.len()
        );
    }
    count as usize
}

/// Checks both queues of a freshly restarted broker, then acks everything and makes the acks
/// durable with a confirmed publish to the fence queue. Returns how many came back per queue.
async fn verify_round(
    broker: &BrokerProcess,
    round: u32,
    published: &BTreeMap<u32, Published>,
    consumed: &HashSet<MessageId>,
) -> (usize, usize) {
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.expect("channel opens");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let kept = check_queue(&ch, KEPT_QUEUE, round, published, None).await;
    let back = check_queue(&ch, CONSUMED_QUEUE, round, published, Some(consumed)).await;
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .expect("basic.ack");
    let fence = publish_confirmed(&ch, "", FENCE_QUEUE, false, b"fence", persistent()).await;
    assert_eq!(fence, Confirmation::Ack(None));
    for q in [KEPT_QUEUE, CONSUMED_QUEUE] {
        assert_eq!(
            queue_counts(&ch, q).await.0,
            0,
            "{q} after acking everything"
        );
    }
    conn.close(200, "verified".into()).await.expect("close");
    (kept, back)
}

fn crash_seed() -> u64 {
    std::env::var("WARREN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

/// Five rounds on one data directory: four publishers with confirms and one consumer acking
/// are cut off by SIGKILL at a random moment, the broker restarts on what the previous one
/// left (itself recovered from a kill), and every confirmed message must be back, once, in
/// order, intact, unless the consumer had acked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_kill_9_at_random_moments() {
    let started = Instant::now();
    let seed = crash_seed();
    eprintln!("kill -9 test seed {seed} (WARREN_CRASH_SEED={seed} repeats the kill points)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path()).await;
    {
        let conn = connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        declare_exchange(&ch, CRASH_EXCHANGE, ExchangeKind::Fanout, true).await;
        for q in [KEPT_QUEUE, CONSUMED_QUEUE] {
            declare_durable_queue(&ch, q).await;
            bind(&ch, q, CRASH_EXCHANGE, "").await;
        }
        declare_durable_queue(&ch, FENCE_QUEUE).await;
        conn.close(200, "declared".into()).await.unwrap();
    }
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(100..=1500));
        let ready = Arc::new(tokio::sync::Barrier::new(PUBLISHERS as usize + 2));
        let (killed_tx, killed) = tokio::sync::watch::channel(false);
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let task =
                    publish_until_killed(broker.uri(), round, p, ready.clone(), killed.clone());
                (p, tokio::spawn(task))
            })
            .collect();
        let consumer = tokio::spawn(consume_until_killed(broker.uri(), ready.clone(), killed));
        within("the clients to connect", ready.wait()).await;
        tokio::time::sleep(kill_after).await;
        broker.kill();
        killed_tx.send_replace(true);
        let mut published = BTreeMap::new();
        for (p, task) in publishers {
            let outcome = within("a publisher to stop", task)
                .await
                .expect("publisher task");
            published.insert(p, outcome);
        }
        let consumed = within("the consumer to stop", consumer)
            .await
            .expect("consumer task");
        let restarted = Instant::now();
        broker = BrokerProcess::start(dir.path()).await;
        let recovery = restarted.elapsed();
        let (kept, back) = verify_round(&broker, round, &published, &consumed).await;
        let sent: u64 = published.values().map(|p| p.sent).sum();
        let confirmed: usize = published.values().map(|p| p.acked.len()).sum();
        let nacked: u64 = published.values().map(|p| p.nacked).sum();
        eprintln!(
            "round {round}: killed after {kill_after:?}: {sent} sent, {confirmed} confirmed, \
             {} acked by the consumer; back after {recovery:?}: {kept} in {KEPT_QUEUE}, {back} \
             in {CONSUMED_QUEUE}",
            consumed.len()
        );
        assert!(
            confirmed > 0,
            "round {round}: nothing was confirmed before the kill, so it proves nothing"
        );
        assert_eq!(nacked, 0, "the broker nacked publishes");
    }
    broker.kill();
    eprintln!("kill -9 test took {:?}", started.elapsed());
}

/// Exclusive queues belong to a connection: even when the broker dies without closing it,
/// neither a server-named nor a named exclusive queue comes back, while a durable one does.
#[tokio::test]
async fn exclusive_queues_never_survive_even_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    let server_named = ch
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await
        .unwrap()
        .name()
        .to_string();
    assert!(server_named.starts_with("amq.gen-"), "{server_named}");
    ch.queue_declare("named-exclusive".into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "control").await;
    for q in [server_named.as_str(), "named-exclusive", "control"] {
        publish_persistent(&ch, "", q, q).await;
    }
    // Killed with the owning connection still open: nothing closed the exclusive queues.
    broker.kill();
    drop(conn);

    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    assert!(
        !queue_exists(&conn, &server_named).await,
        "the server-named exclusive queue came back"
    );
    assert!(
        !queue_exists(&conn, "named-exclusive").await,
        "the named exclusive queue came back"
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(contents(&ch, "control").await, fresh(&["control"]));
    broker.kill();
}

/// A persistent message handed straight to a consumer may skip the disk if it is acked at
/// once; one that is not acked must still be on disk, marked delivered, when its confirm
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_at_once_but_not_acked_is_on_disk_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_durable_queue(&ch, "dq").await;
    let consuming = conn.create_channel().await.unwrap();
    let mut consumer = consuming
        .basic_consume(
            "dq".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for body in ["one", "two"] {
        next_body(&ch, &mut consumer, body).await;
    }
    broker.kill();

    let broker = BrokerProcess::start(dir.path()).await;
    let conn = connect(&broker.uri()).await;
    let ch = conn.create_channel().await.unwrap();
    let redelivered = |b: &str| (b.to_string(), true);
    assert_eq!(
        contents(&ch, "dq").await,
        [redelivered("one"), redelivered("two")]
    );
}

/// Publishes `body` persistently, takes its delivery and waits for its confirm.
async fn next_body(ch: &Channel, consumer: &mut lapin::Consumer, body: &str) -> Delivery {
    let confirm = ch
        .basic_publish(
            "".into(),
            "dq".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .expect("basic.publish");
    let delivery = next_delivery(consumer).await;
    assert_eq!(text(&delivery), body);
    let confirmation = within("a publisher confirm", confirm).await.unwrap();
    assert!(confirmation.is_ack(), "{confirmation:?}");
    delivery
}
