//! exchange.declare / delete and queue.declare / delete: RabbitMQ's checks, and the records
//! durable ones leave in the store.

use super::equivalence::check_args_equivalent;
use super::VHost;
use crate::broker::events::{self, Fields};
use crate::broker::exchange::dedup::ExchangeDedup;
use crate::broker::exchange::{alternate, declared_type, Destination, Exchange, Flavour};
use crate::broker::queue::{ConnectionEvent, ConnectionId, Consumer};
use crate::broker::queue::{Queue, QueueArgs};
use crate::broker::stats::Stat;
use crate::error::{AmqpError, AmqpResult};
use crate::store::{ExchangeRecord, QueueRecord, StoreOp};
use std::sync::Arc;
use warren_amqp::{AMQPValue, FieldTable, ShortString};

/// The arguments of exchange.declare.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: String,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// The arguments of queue.declare (with the server-chosen name already filled in).
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// The server chose the name (the client declared ''): the reserved prefix is its own.
    pub server_named: bool,
}

/// Queue arguments RabbitMQ compares when a queue is declared again.
const EQUIVALENT_QUEUE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
];

impl VHost {
    /// Declares an exchange; `by` is the user who asked, for the event a creation emits.
    pub fn declare_exchange(&self, spec: ExchangeSpec, by: &str) -> AmqpResult<Arc<Exchange>> {
        if spec.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if spec.passive {
            return self.exchange(&spec.name);
        }
        let (kind, flavour) = declared_type(&spec.kind, &spec.arguments)?;
        let exchange = match self.exchanges.entry(spec.name.clone()) {
            dashmap::mapref::entry::Entry::Occupied(e) => e.get().clone(),
            dashmap::mapref::entry::Entry::Vacant(v) => {
                if spec.name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "exchange name '{}' contains reserved prefix 'amq.*'",
                        spec.name
                    )));
                }
                let what = format!("exchange '{}' in vhost '{}'", spec.name, self.name);
                alternate::check(&spec.arguments, &what)?;
                let deduplicating = flavour == Flavour::Deduplicating;
                let dedup = ExchangeDedup::declared(deduplicating, &spec.arguments, &what)?;
                let x = Exchange::new(
                    name_of(&spec.name)?,
                    kind,
                    spec.durable,
                    spec.auto_delete,
                    spec.internal,
                    spec.arguments.clone(),
                )
                .with_flavour(flavour, dedup);
                if let Some(m) = self.metadata.get() {
                    x.apply_policy_alternate(m.policy_alternate_exchange(&self.name, &spec.name));
                }
                if x.durable {
                    self.store
                        .submit(StoreOp::PutExchange(self.exchange_record(&x)));
                }
                self.emit_exchange_created(&x, by);
                return Ok(v.insert(Arc::new(x)).clone());
            }
        };
        let what = format!("exchange '{}' in vhost '{}'", spec.name, self.name);
        let inequivalent = |arg: &str, received: &str, current: &str| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for {what}: received '{received}' but current is '{current}'"
            ))
        };
        if exchange.kind != kind || exchange.flavour != flavour {
            let (received, current) = (atom(&spec.kind), atom(exchange.type_name()));
            return Err(inequivalent("type", &received, &current));
        }
        for (arg, received, current) in [
            ("durable", spec.durable, exchange.durable),
            ("auto_delete", spec.auto_delete, exchange.auto_delete),
            ("internal", spec.internal, exchange.internal),
        ] {
            if received != current {
                return Err(inequivalent(
                    arg,
                    &received.to_string(),
                    &current.to_string(),
                ));
            }
        }
        check_args_equivalent(
            &what,
            &spec.arguments,
            &exchange.arguments,
            &["alternate-exchange"],
        )?;
        Ok(exchange)
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool, by: &str) -> AmqpResult<()> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(exchange) = self.exchanges.get(name).map(|x| x.clone()) else {
            return Ok(());
        };
        if if_unused && exchange.has_bindings() {
            return Err(AmqpError::precondition_failed(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if self.exchanges.remove(name).is_some() {
            self.forget_exchange(&exchange, by);
        }
        Ok(())
    }

    /// Declares a queue for `connection`; `by` is the user who asked, for the event a
    /// creation emits.
    pub fn declare_queue(
        &self,
        mut spec: QueueSpec,
        connection: ConnectionId,
        by: &str,
    ) -> AmqpResult<Arc<Queue>> {
        self.apply_default_queue_type(&mut spec);
        if !spec.passive && !spec.server_named && spec.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        if spec.passive {
            let q = self.queue_for(&spec.name, connection)?;
            q.touch();
            return Ok(q);
        }
        let quorum = matches!(spec.arguments.inner().get("x-queue-type"),
            Some(AMQPValue::LongString(t)) if t.as_bytes() == b"quorum");
        if spec.server_named && quorum {
            return Err(AmqpError::precondition_failed(
                "Cannot declare a server-named queue for type rabbit_quorum_queue",
            ));
        }
        let owner = spec.exclusive.then_some(connection);
        let durable = spec.durable && !spec.exclusive;
        self.stats.counters.bump(Stat::QueueDeclared);

        // Counted before the entry is taken: the map's length locks every shard.
        let max = self.max_queues.load(std::sync::atomic::Ordering::Relaxed);
        if !self.queues.contains_key(&spec.name) && self.queues.len() >= max {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{}': queue limit in vhost '{}' ({max}) is reached",
                spec.name, self.name
            )));
        }
        let queue = match self.queues.entry(spec.name.clone()) {
            dashmap::mapref::entry::Entry::Occupied(e) => e.get().clone(),
            dashmap::mapref::entry::Entry::Vacant(v) => {
                // Arguments are checked when a queue is created; a redeclaration is compared
                // with the original instead, as RabbitMQ does.
                let args = QueueArgs::parse(
                    &spec.arguments,
                    spec.durable,
                    spec.exclusive,
                    spec.auto_delete,
                    &format!("queue '{}' in vhost '{}'", spec.name, self.name),
                )?;
                let mut q = Queue::new(
                    name_of(&spec.name)?,
                    self.name.clone(),
                    durable,
                    owner,
                    spec.auto_delete,
                    spec.arguments.clone(),
                );
                let overrides = self.queue_overrides(&spec.name);
                q = q
                    .with_args(args)
                    .with_policy(&overrides)
                    .with_hooks(self.hooks.clone());
                let id = self.store.next_queue_id();
                if durable {
                    self.store.submit(StoreOp::PutQueue(QueueRecord {
                        vhost: self.name.clone(),
                        name: spec.name.clone(),
                        id,
                        auto_delete: spec.auto_delete,
                        arguments: spec.arguments.clone(),
                    }));
                }
                q = q.with_storage(self.store.clone(), id, self.queue_window);
                self.stats.counters.bump(Stat::QueueCreated);
                self.emit_queue_created(&q, by);
                let q = v.insert(Arc::new(q)).clone();
                q.arm_timers();
                return Ok(q);
            }
        };
        queue.check_access(connection)?;
        if queue.exclusive_owner != owner {
            // Same connection, but the exclusive flag differs from the original declaration.
            return Err(queue.locked());
        }
        let what = format!("queue '{}' in vhost '{}'", spec.name, self.name);
        for (arg, received, current) in [
            ("durable", durable, queue.durable),
            ("auto_delete", spec.auto_delete, queue.auto_delete),
        ] {
            if received != current {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for {what}: received '{received}' but current is '{current}'"
                )));
            }
        }
        check_args_equivalent(
            &what,
            &spec.arguments,
            &queue.arguments,
            EQUIVALENT_QUEUE_ARGS,
        )?;
        queue.touch();
        Ok(queue)
    }

    /// A queue declared without `x-queue-type` gets the vhost's default type, when that is
    /// quorum and the queue can be one (durable, not exclusive, not auto-delete); otherwise
    /// it is classic, as in RabbitMQ 3.13 and later.
    fn apply_default_queue_type(&self, spec: &mut QueueSpec) {
        if spec.passive || spec.arguments.inner().contains_key("x-queue-type") {
            return;
        }
        let default = self
            .metadata
            .get()
            .and_then(|m| m.vhost(&self.name))
            .and_then(|v| v.default_queue_type.clone());
        let can_be_quorum = spec.durable && !spec.exclusive && !spec.auto_delete;
        if default.as_deref() == Some("quorum") && can_be_quorum && !spec.server_named {
            spec.arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(b"quorum".to_vec().into()),
            );
        }
    }

    /// queue.delete's if-unused and if-empty conditions.
    pub fn delete_queue_checks(
        &self,
        queue: &Queue,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<()> {
        let what = format!("queue '{}' in vhost '{}'", queue.name, self.name);
        if queue.is_quorum() && (if_unused || if_empty) {
            let flag = if if_unused { "if-unused" } else { "if-empty" };
            return Err(AmqpError::not_implemented(format!(
                "cannot delete {what}. queue.delete operations with {flag} flag set are not \
                 supported by quorum queues"
            )));
        }
        if if_unused && queue.consumer_count() > 0 {
            return Err(AmqpError::precondition_failed(format!("{what} in use")));
        }
        if if_empty && queue.message_count() > 0 {
            return Err(AmqpError::precondition_failed(format!("{what} not empty")));
        }
        Ok(())
    }

    /// Removes a queue unconditionally (exclusive owner gone, auto-delete, explicit delete).
    pub fn remove_queue(&self, queue: &Arc<Queue>, by: &str) -> (u32, Vec<Arc<Consumer>>) {
        let removed = self
            .queues
            .remove_if(queue.name.as_str(), |_, q| Arc::ptr_eq(q, queue));
        // Its bindings go first, as RabbitMQ reports them.
        self.unbind_everywhere(&Destination::Queue(queue.clone()), by);
        if removed.is_some() {
            self.stats.counters.bump(Stat::QueueDeleted);
        }
        if removed.is_some() && self.events_wanted() {
            self.emit(
                "queue.deleted",
                Fields::new().text("name", queue.name.as_str()).by(by),
            );
        }
        queue.delete()
    }

    /// Deletes a queue (queue.delete, the management API) and tells its consumers' connections,
    /// which send basic.cancel to clients that understand it. Returns its message count.
    pub fn delete_queue(&self, queue: &Arc<Queue>, by: &str) -> u32 {
        let (count, consumers) = self.remove_queue(queue, by);
        for c in consumers {
            let _ = c.mailbox.send(ConnectionEvent::ConsumerCancelled {
                channel: c.channel,
                consumer_tag: c.tag.clone(),
            });
        }
        count
    }

    /// Deletes everything the vhost holds, for the vhost's own deletion: every queue (with its
    /// messages and records) and every exchange (with its bindings and records). Returns the
    /// consumers the queues had.
    pub fn destroy(&self, by: &str) -> Vec<Arc<Consumer>> {
        let mut consumers = Vec::new();
        for queue in self.queues() {
            consumers.extend(self.remove_queue(&queue, by).1);
        }
        for exchange in self.exchanges() {
            if self.exchanges.remove(exchange.name.as_str()).is_some() {
                self.forget_exchange(&exchange, by);
            }
        }
        consumers
    }

    /// Drops every binding to `destination`, and auto-delete exchanges left without bindings.
    pub(super) fn unbind_everywhere(&self, destination: &Destination, by: &str) {
        let mut emptied = Vec::new();
        for x in self.exchanges() {
            let removed = x.unbind_destination(destination);
            for b in &removed {
                self.record_binding(&x, b, false, by);
            }
            if !removed.is_empty() && x.auto_delete && !x.has_bindings() {
                emptied.push(x);
            }
        }
        for x in emptied {
            self.remove_auto_deleted(&x, by);
        }
    }

    pub(super) fn remove_auto_deleted(&self, exchange: &Arc<Exchange>, by: &str) {
        if self
            .exchanges
            .remove_if(exchange.name.as_str(), |_, x| Arc::ptr_eq(x, exchange))
            .is_some()
        {
            self.forget_exchange(exchange, by);
        }
    }

    /// After an exchange left the map: its record, its bindings' records and the bindings
    /// leading to it go.
    fn forget_exchange(&self, exchange: &Arc<Exchange>, by: &str) {
        for b in exchange.bindings() {
            self.record_binding(exchange, &b, false, by);
        }
        if exchange.durable {
            self.store.submit(StoreOp::DeleteExchange {
                vhost: self.name.clone(),
                name: exchange.name.to_string(),
            });
        }
        if self.events_wanted() {
            self.emit(
                "exchange.deleted",
                Fields::new().text("name", exchange.name.as_str()).by(by),
            );
        }
        self.unbind_everywhere(&Destination::Exchange(exchange.clone()), by);
    }

    /// Announces the exchanges a new vhost starts with, as RabbitMQ does before
    /// `vhost.created`.
    pub fn announce_exchanges(&self, by: &str) {
        let mut exchanges = self.exchanges();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        for x in exchanges {
            self.emit_exchange_created(&x, by);
        }
    }

    fn emit_exchange_created(&self, x: &Exchange, by: &str) {
        if !self.events_wanted() {
            return;
        }
        let policy = self
            .metadata
            .get()
            .and_then(|m| m.exchange_policy(&self.name, x.name.as_str()))
            .unwrap_or_default();
        let fields = Fields::new()
            .text("name", x.name.as_str())
            .text("type", x.type_name())
            .flag("durable", x.durable)
            .flag("auto_delete", x.auto_delete)
            .flag("internal", x.internal)
            .value("arguments", events::terms(&x.arguments))
            .text("policy", &policy);
        self.emit("exchange.created", fields.by(by));
    }

    fn emit_queue_created(&self, q: &Queue, by: &str) {
        if !self.events_wanted() {
            return;
        }
        let owner = q
            .exclusive_owner
            .map(|c| events::pid(c, 0))
            .unwrap_or_default();
        let fields = Fields::new()
            .text("name", q.name.as_str())
            .flag("durable", q.durable)
            .flag("auto_delete", q.auto_delete)
            .flag("exclusive", q.exclusive_owner.is_some())
            .value("arguments", events::terms(&q.arguments))
            .text("owner_pid", &owner);
        self.emit("queue.created", fields.by(by));
    }

    fn exchange_record(&self, x: &Exchange) -> ExchangeRecord {
        ExchangeRecord {
            vhost: self.name.clone(),
            name: x.name.to_string(),
            kind: x.type_name().to_string(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments.clone(),
        }
    }
}

/// A name as the short string AMQP carries it. Names from AMQP methods always fit; other
/// callers (the management API) may pass longer ones, which no client could ever address.
fn name_of(name: &str) -> AmqpResult<ShortString> {
    ShortString::try_new(name).map_err(|_| {
        AmqpError::precondition_failed(format!(
            "name '{}...' is longer than 255 bytes",
            warren_amqp::short::truncate(name, 64)
        ))
    })
}

/// An exchange type as RabbitMQ prints it, an Erlang atom: `x-random` needs quotes of its own
/// (so the text reads `''x-random''` inside the message's quotes), `direct` does not.
fn atom(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
    match plain {
        true => name.to_owned(),
        false => format!("'{name}'"),
    }
}
