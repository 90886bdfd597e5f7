//! exchange.declare / delete and queue.declare / delete: RabbitMQ's checks, and the records
//! durable ones leave in the store.

use super::equivalence::check_args_equivalent;
use super::VHost;
use crate::broker::exchange::dedup::ExchangeDedup;
use crate::broker::exchange::{alternate, declared_type, Destination, Exchange, Flavour};
use crate::broker::queue::{ConnectionEvent, ConnectionId, Consumer};
use crate::broker::queue::{Queue, QueueArgs};
use crate::broker::stats::Stat;
use crate::error::{AmqpError, AmqpResult};
use crate::store::{ExchangeRecord, QueueRecord, StoreOp};
use std::sync::Arc;
use warren_amqp::{FieldTable, ShortString};

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
    pub fn declare_exchange(&self, spec: ExchangeSpec) -> AmqpResult<Arc<Exchange>> {
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
            return Err(inequivalent("type", &spec.kind, exchange.type_name()));
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

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> AmqpResult<()> {
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
            self.forget_exchange(&exchange);
        }
        Ok(())
    }

    pub fn declare_queue(
        &self,
        spec: QueueSpec,
        connection: ConnectionId,
    ) -> AmqpResult<Arc<Queue>> {
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

    /// queue.delete's if-unused and if-empty conditions.
    pub fn delete_queue_checks(
        &self,
        queue: &Queue,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<()> {
        let what = format!("queue '{}' in vhost '{}'", queue.name, self.name);
        if if_unused && queue.consumer_count() > 0 {
            return Err(AmqpError::precondition_failed(format!("{what} in use")));
        }
        if if_empty && queue.message_count() > 0 {
            return Err(AmqpError::precondition_failed(format!("{what} not empty")));
        }
        Ok(())
    }

    /// Removes a queue unconditionally (exclusive owner gone, auto-delete, explicit delete).
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> (u32, Vec<Arc<Consumer>>) {
        let removed = self
            .queues
            .remove_if(queue.name.as_str(), |_, q| Arc::ptr_eq(q, queue));
        if removed.is_some() {
            self.stats.counters.bump(Stat::QueueDeleted);
        }
        self.unbind_everywhere(&Destination::Queue(queue.clone()));
        queue.delete()
    }

    /// Deletes a queue (queue.delete, the management API) and tells its consumers' connections,
    /// which send basic.cancel to clients that understand it. Returns its message count.
    pub fn delete_queue(&self, queue: &Arc<Queue>) -> u32 {
        let (count, consumers) = self.remove_queue(queue);
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
    pub fn destroy(&self) -> Vec<Arc<Consumer>> {
        let mut consumers = Vec::new();
        for queue in self.queues() {
            consumers.extend(self.remove_queue(&queue).1);
        }
        for exchange in self.exchanges() {
            if self.exchanges.remove(exchange.name.as_str()).is_some() {
                self.forget_exchange(&exchange);
            }
        }
        consumers
    }

    /// Drops every binding to `destination`, and auto-delete exchanges left without bindings.
    pub(super) fn unbind_everywhere(&self, destination: &Destination) {
        let mut emptied = Vec::new();
        for x in self.exchanges() {
            let removed = x.unbind_destination(destination);
            for b in &removed {
                self.record_binding(&x, b, false);
            }
            if !removed.is_empty() && x.auto_delete && !x.has_bindings() {
                emptied.push(x);
            }
        }
        for x in emptied {
            self.remove_auto_deleted(&x);
        }
    }

    pub(super) fn remove_auto_deleted(&self, exchange: &Arc<Exchange>) {
        if self
            .exchanges
            .remove_if(exchange.name.as_str(), |_, x| Arc::ptr_eq(x, exchange))
            .is_some()
        {
            self.forget_exchange(exchange);
        }
    }

    /// After an exchange left the map: its record, its bindings' records and the bindings
    /// leading to it go.
    fn forget_exchange(&self, exchange: &Arc<Exchange>) {
        if exchange.durable {
            for b in exchange.bindings() {
                self.record_binding(exchange, &b, false);
            }
            self.store.submit(StoreOp::DeleteExchange {
                vhost: self.name.clone(),
                name: exchange.name.to_string(),
            });
        }
        self.unbind_everywhere(&Destination::Exchange(exchange.clone()));
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
