//! A virtual host: its exchanges and queues, and the operations clients and the management
//! API perform on them, with RabbitMQ's checks and error texts.

use super::consumer::ConnectionId;
use super::exchange::{Binding, Destination, Exchange, ExchangeKind, RoutingInput};
use super::queue::Queue;
use crate::error::{AmqpError, AmqpResult};
use crate::store::{BindingRecord, ExchangeRecord, QueueRecord, StoreHandle, StoreOp};
use dashmap::DashMap;
use std::sync::Arc;
use warren_amqp::{AMQPValue, FieldTable, ShortString};

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    exchanges: DashMap<String, Arc<Exchange>>,
    queues: DashMap<String, Arc<Queue>>,
    /// Where durable exchanges, queues and bindings are recorded, and queues page to.
    store: Arc<StoreHandle>,
    /// Messages per queue lane kept in memory before the rest goes to disk.
    queue_window: usize,
}

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
    pub fn new(name: &str, store: Arc<StoreHandle>, queue_window: usize) -> Self {
        let vhost = Self {
            name: name.to_string(),
            exchanges: DashMap::new(),
            queues: DashMap::new(),
            store,
            queue_window,
        };
        let standard = [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ];
        for (name, kind) in standard {
            let x = Exchange::new(name.into(), kind, true, false, false, FieldTable::default());
            vhost.exchanges.insert(name.to_string(), Arc::new(x));
        }
        vhost
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    pub fn exchange(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        self.exchanges
            .get(name)
            .map(|x| x.clone())
            .ok_or_else(|| self.no_exchange(name))
    }

    pub fn queue(&self, name: &str) -> AmqpResult<Arc<Queue>> {
        self.queues
            .get(name)
            .map(|q| q.clone())
            .ok_or_else(|| self.no_queue(name))
    }

    /// A queue the given connection may use (exclusive queues belong to one connection).
    pub fn queue_for(&self, name: &str, connection: ConnectionId) -> AmqpResult<Arc<Queue>> {
        let q = self.queue(name)?;
        q.check_access(connection)?;
        Ok(q)
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.iter().map(|e| e.value().clone()).collect()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.iter().map(|q| q.value().clone()).collect()
    }

    pub fn declare_exchange(&self, spec: ExchangeSpec) -> AmqpResult<Arc<Exchange>> {
        if spec.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if spec.passive {
            return self.exchange(&spec.name);
        }
        let kind = ExchangeKind::parse(&spec.kind).ok_or_else(|| {
            AmqpError::command_invalid(format!("invalid exchange type '{}'", spec.kind))
        })?;
        let exchange = match self.exchanges.entry(spec.name.clone()) {
            dashmap::mapref::entry::Entry::Occupied(e) => e.get().clone(),
            dashmap::mapref::entry::Entry::Vacant(v) => {
                if spec.name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "exchange name '{}' contains reserved prefix 'amq.*'",
                        spec.name
                    )));
                }
                let x = Exchange::new(
                    spec.name.as_str().into(),
                    kind,
                    spec.durable,
                    spec.auto_delete,
                    spec.internal,
                    spec.arguments.clone(),
                );
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
        if exchange.kind != kind {
            return Err(inequivalent("type", kind.as_str(), exchange.kind.as_str()));
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
            return self.queue_for(&spec.name, connection);
        }
        let owner = spec.exclusive.then_some(connection);
        let durable = spec.durable && !spec.exclusive;
        let queue = match self.queues.entry(spec.name.clone()) {
            dashmap::mapref::entry::Entry::Occupied(e) => e.get().clone(),
            dashmap::mapref::entry::Entry::Vacant(v) => {
                let mut q = Queue::new(
                    spec.name.as_str().into(),
                    self.name.clone(),
                    durable,
                    owner,
                    spec.auto_delete,
                    spec.arguments.clone(),
                );
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
                return Ok(v.insert(Arc::new(q)).clone());
            }
        };
        queue.check_access(connection)?;
        if queue.exclusive_owner != owner {
            // Same connection, but the exclusive flag differs from the original declaration.
            return Err(queue.check_access(u64::MAX).unwrap_err());
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
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> (u32, Vec<Arc<super::consumer::Consumer>>) {
        self.queues
            .remove_if(queue.name.as_str(), |_, q| Arc::ptr_eq(q, queue));
        self.unbind_everywhere(&Destination::Queue(queue.clone()));
        queue.delete()
    }

    /// Drops every binding to `destination`, and auto-delete exchanges left without bindings.
    fn unbind_everywhere(&self, destination: &Destination) {
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

    fn remove_auto_deleted(&self, exchange: &Arc<Exchange>) {
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
            kind: x.kind.as_str().to_string(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments.clone(),
        }
    }

    /// Records a binding being added (`put`) or removed, when both its ends are durable.
    fn record_binding(&self, source: &Exchange, b: &Binding, put: bool) {
        let (destination, durable, destination_is_queue) = match &b.destination {
            Destination::Queue(q) => (q.name.to_string(), q.durable, true),
            Destination::Exchange(x) => (x.name.to_string(), x.durable, false),
        };
        if !(source.durable && durable) {
            return;
        }
        let record = BindingRecord {
            vhost: self.name.clone(),
            source: source.name.to_string(),
            destination,
            destination_is_queue,
            routing_key: b.routing_key.to_string(),
            arguments: b.arguments.clone(),
        };
        self.store.submit(if put {
            StoreOp::PutBinding(record)
        } else {
            StoreOp::DeleteBinding(record)
        });
    }

    /// Adds a binding, recording it if it is new and durable.
    fn add_binding(&self, source: &Exchange, binding: Binding) {
        let record = binding.clone();
        if source.bind(binding) {
            self.record_binding(source, &record, true);
        }
    }

    /// Removes a binding (recording that), and an auto-delete source left without bindings.
    fn remove_binding(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) {
        if source.unbind(&destination, routing_key, arguments) {
            let binding = Binding {
                destination,
                routing_key: routing_key.into(),
                arguments: arguments.clone(),
            };
            self.record_binding(source, &binding, false);
            if source.auto_delete && !source.has_bindings() {
                self.remove_auto_deleted(source);
            }
        }
    }

    fn source_for_binding(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.exchange(name)
    }

    pub fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
        connection: ConnectionId,
    ) -> AmqpResult<()> {
        let x = self.source_for_binding(exchange)?;
        let q = self.queue_for(queue, connection)?;
        x.kind
            .validate_binding(&arguments)
            .map_err(AmqpError::precondition_failed)?;
        self.add_binding(
            &x,
            Binding {
                destination: Destination::Queue(q),
                routing_key: routing_key.into(),
                arguments,
            },
        );
        Ok(())
    }

    /// Removes a binding. Like RabbitMQ, unbinding what does not exist (binding, queue or
    /// exchange) succeeds, and exclusive queues may be unbound from any connection.
    pub fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        let x = self.source_for_binding(exchange);
        if let (Ok(x), Ok(q)) = (x, self.queue(queue)) {
            self.remove_binding(&x, Destination::Queue(q), routing_key, arguments);
        } else if exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        Ok(())
    }

    pub fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        let d = self.source_for_binding(destination)?;
        let s = self.source_for_binding(source)?;
        s.kind
            .validate_binding(&arguments)
            .map_err(AmqpError::precondition_failed)?;
        self.add_binding(
            &s,
            Binding {
                destination: Destination::Exchange(d),
                routing_key: routing_key.into(),
                arguments,
            },
        );
        Ok(())
    }

    pub fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if let (Ok(d), Ok(s)) = (self.exchange(destination), self.exchange(source)) {
            self.remove_binding(&s, Destination::Exchange(d), routing_key, arguments);
        }
        Ok(())
    }

    /// Recreates a durable exchange from its record at start (nothing is written back).
    pub fn restore_exchange(&self, r: &ExchangeRecord) -> Result<(), String> {
        let kind = ExchangeKind::parse(&r.kind)
            .ok_or_else(|| format!("exchange '{}' has unknown type '{}'", r.name, r.kind))?;
        let x = Exchange::new(
            r.name.as_str().into(),
            kind,
            true,
            r.auto_delete,
            r.internal,
            r.arguments.clone(),
        );
        self.exchanges.insert(r.name.clone(), Arc::new(x));
        Ok(())
    }

    /// Recreates a durable queue from its record at start; recovery then refills it.
    pub fn restore_queue(&self, r: &QueueRecord) -> Arc<Queue> {
        let q = Queue::new(
            r.name.as_str().into(),
            self.name.clone(),
            true,
            None,
            r.auto_delete,
            r.arguments.clone(),
        )
        .with_storage(self.store.clone(), r.id, self.queue_window);
        let q = Arc::new(q);
        self.queues.insert(r.name.clone(), q.clone());
        q
    }

    /// Recreates a binding between recovered durable objects at start.
    pub fn restore_binding(&self, r: &BindingRecord) -> Result<(), String> {
        let missing = |what: &str, name: &str| {
            format!("binding from '{}' to missing {what} '{name}'", r.source,)
        };
        let source = self
            .exchanges
            .get(&r.source)
            .map(|x| x.clone())
            .ok_or_else(|| missing("exchange", &r.source))?;
        let destination = if r.destination_is_queue {
            Destination::Queue(
                self.queues
                    .get(&r.destination)
                    .map(|q| q.clone())
                    .ok_or_else(|| missing("queue", &r.destination))?,
            )
        } else {
            Destination::Exchange(
                self.exchanges
                    .get(&r.destination)
                    .map(|x| x.clone())
                    .ok_or_else(|| missing("exchange", &r.destination))?,
            )
        };
        source.bind(Binding {
            destination,
            routing_key: r.routing_key.as_str().into(),
            arguments: r.arguments.clone(),
        });
        Ok(())
    }

    /// The queues a message reaches from `exchange`, each once, following exchange-to-exchange
    /// bindings (each exchange visited once, so cycles end).
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        input: &RoutingInput<'_>,
        scratch: &mut Vec<Destination>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        out.clear();
        if exchange.name.as_str().is_empty() {
            if let Some(q) = self.queues.get(input.routing_key) {
                out.push(q.clone());
            }
            return;
        }
        scratch.clear();
        exchange.route(input, scratch);
        let mut visited: Vec<*const Exchange> = vec![Arc::as_ptr(exchange)];
        while let Some(d) = scratch.pop() {
            match d {
                Destination::Queue(q) => out.push(q),
                Destination::Exchange(x) => {
                    if !visited.contains(&Arc::as_ptr(&x)) {
                        visited.push(Arc::as_ptr(&x));
                        x.route(input, scratch);
                    }
                }
            }
        }
        if out.len() > 1 {
            out.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
    }
}

/// Compares the listed arguments of a redeclaration with the original, with RabbitMQ's texts.
/// Integers of different widths are equivalent when their values are.
fn check_args_equivalent(
    what: &str,
    received: &FieldTable,
    current: &FieldTable,
    keys: &[&str],
) -> AmqpResult<()> {
    for key in keys {
        let (r, c) = (received.inner().get(*key), current.inner().get(*key));
        let classic = |v: Option<&AMQPValue>| matches!(v, Some(AMQPValue::LongString(s)) if s.as_bytes() == b"classic");
        let same = match (r, c) {
            // A classic queue is what no x-queue-type means.
            (None, Some(_)) | (Some(_), None)
                if *key == "x-queue-type" && (classic(r) || classic(c)) =>
            {
                true
            }
            (Some(r), Some(c)) => {
                arg_value(r) == arg_value(c) && (integer(r).is_some() == integer(c).is_some())
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        let detail = match (r, c) {
            (Some(r), Some(c)) => format!(
                "received '{}' but current is '{}'",
                arg_value(r),
                arg_value(c)
            ),
            (Some(r), None) => format!("received {} but current is none", described(r)),
            (None, Some(c)) => format!("received none but current is {}", described(c)),
            (None, None) => unreachable!("equal arguments were skipped"),
        };
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{key}' for {what}: {detail}"
        )));
    }
    Ok(())
}

fn integer(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i128::from(*n),
        AMQPValue::ShortShortUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::LongLongInt(n) => i128::from(*n),
        _ => return None,
    })
}

/// An argument's value as RabbitMQ prints it.
fn arg_value(v: &AMQPValue) -> String {
    if let Some(n) = integer(v) {
        return n.to_string();
    }
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// "the value 'V' of type 'T'", with RabbitMQ's type names.
fn described(v: &AMQPValue) -> String {
    let kind = match v {
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::Double(_) => "double",
        AMQPValue::Float(_) => "float",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::FieldArray(_) => "array",
        _ => "other",
    };
    format!("the value '{}' of type '{kind}'", arg_value(v))
}

/// A server-generated queue name, `amq.gen-` and 22 url-safe characters like RabbitMQ's.
pub fn generated_queue_name() -> ShortString {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let suffix: String = (0..22)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    format!("amq.gen-{suffix}").into()
}
