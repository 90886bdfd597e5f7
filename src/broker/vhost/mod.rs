//! A virtual host: its exchanges and queues, and the operations clients and the management
//! API perform on them, with RabbitMQ's checks and error texts. Declarations live in
//! `declare`, bindings in `bindings`, start-up recreation in `restore`.

mod bindings;
mod declare;
mod equivalence;
mod restore;

pub use declare::{ExchangeSpec, QueueSpec};

use super::events::{self, EventSink, Fields};
use super::exchange::{Destination, Exchange, ExchangeKind, RoutingInput};
use super::metadata::Metadata;
use super::queue::ConnectionId;
use super::queue::PolicyOverrides;
use super::queue::{Queue, QueueHooks};
use crate::error::{AmqpError, AmqpResult};
use crate::store::StoreHandle;
use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tracing::debug;
use warren_amqp::{FieldTable, ShortString};

/// Every vhost's firehose exchange (see `broker::trace`): topic, durable, internal.
pub const TRACE_EXCHANGE: &str = "amq.rabbitmq.trace";

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    exchanges: DashMap<String, Arc<Exchange>>,
    queues: DashMap<String, Arc<Queue>>,
    /// Where durable exchanges, queues and bindings are recorded, and queues page to.
    store: Arc<StoreHandle>,
    /// Messages per queue lane kept in memory before the rest goes to disk.
    queue_window: usize,
    /// Handed to every queue: the broker's dead-letter and timer services.
    hooks: QueueHooks,
    /// The vhost's `max-queues` limit (`usize::MAX`: none).
    max_queues: AtomicUsize,
    /// Where policies are looked up, once the broker's metadata exists (recovery restores
    /// queues before it does; the broker then applies policies to them all).
    metadata: OnceLock<Arc<Metadata>>,
    /// The counts of connections that closed, and the vhost's samples (its totals are these
    /// counts plus its open connections').
    pub stats: crate::broker::stats::Stats,
    /// Where the vhost's objects report their creation and deletion (`broker::events`).
    events: OnceLock<EventSink>,
    /// Firehose tracing: every publish and delivery is copied to `amq.rabbitmq.trace`.
    /// Read once per publish and delivery.
    tracing: std::sync::atomic::AtomicBool,
}

impl VHost {
    pub fn new(
        name: &str,
        store: Arc<StoreHandle>,
        queue_window: usize,
        hooks: QueueHooks,
    ) -> Self {
        let vhost = Self {
            name: name.to_string(),
            exchanges: DashMap::new(),
            queues: DashMap::new(),
            store,
            queue_window,
            hooks,
            max_queues: AtomicUsize::new(usize::MAX),
            metadata: OnceLock::new(),
            events: OnceLock::new(),
            stats: Default::default(),
            tracing: Default::default(),
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
        // Internal: clients cannot publish to it; the broker's trace copies go through it.
        let trace = Exchange::new(
            TRACE_EXCHANGE.into(),
            ExchangeKind::Topic,
            true,
            false,
            true,
            FieldTable::default(),
        );
        vhost
            .exchanges
            .insert(TRACE_EXCHANGE.to_string(), Arc::new(trace));
        vhost
    }

    /// Whether publishes and deliveries in this vhost are traced.
    #[inline]
    pub fn tracing(&self) -> bool {
        self.tracing.load(Ordering::Relaxed)
    }

    pub fn set_tracing(&self, on: bool) {
        self.tracing.store(on, Ordering::Relaxed);
    }

    /// Lets the vhost look up policies for what is declared in it, and emit events.
    pub fn attach(&self, metadata: Arc<Metadata>, events: EventSink) {
        let _ = self.metadata.set(metadata);
        let _ = self.events.set(events);
        // Bindings recovered from the store were restored before the sink was attached.
        if let Ok(x) = self.exchange(events::EXCHANGE) {
            self.binding_changed(&x);
        }
    }

    /// Adds `amq.rabbitmq.event` (the default vhost has it): topic, durable, internal.
    pub fn add_event_exchange(&self) {
        self.exchanges
            .entry(events::EXCHANGE.to_string())
            .or_insert_with(|| {
                Arc::new(Exchange::new(
                    events::EXCHANGE.into(),
                    ExchangeKind::Topic,
                    true,
                    false,
                    true,
                    FieldTable::default(),
                ))
            });
    }

    /// Whether events about this vhost's objects would reach anyone (check before building
    /// one: it costs an atomic load).
    fn events_wanted(&self) -> bool {
        self.events.get().is_some_and(EventSink::wanted)
    }

    /// Emits an event about this vhost's objects, with the vhost's name in its headers.
    fn emit(&self, name: &'static str, fields: Fields) {
        if let Some(sink) = self.events.get() {
            sink.emit(name, fields.text("vhost", &self.name));
        }
    }

    /// Tells the event sink whether anything is bound to the event exchange, after a binding
    /// from `source` came or went.
    fn binding_changed(&self, source: &Exchange) {
        if source.name.as_str() == events::EXCHANGE {
            if let Some(sink) = self.events.get() {
                sink.set_listened(source.has_bindings());
            }
        }
    }

    /// What the policies that apply to a queue of this name set.
    pub(super) fn queue_overrides(&self, name: &str) -> PolicyOverrides {
        self.metadata
            .get()
            .map(|m| m.queue_overrides(&self.name, name))
            .unwrap_or_default()
    }

    /// Applies the vhost's policies, as they are now, to every queue and exchange in it.
    pub fn apply_policies(&self) {
        let Some(metadata) = self.metadata.get() else {
            return;
        };
        for queue in self.queues() {
            queue.apply_policy(&metadata.queue_overrides(&self.name, queue.name.as_str()));
        }
        for exchange in self.exchanges() {
            let alternate = metadata.policy_alternate_exchange(&self.name, exchange.name.as_str());
            exchange.apply_policy_alternate(alternate);
        }
    }

    /// Sets the vhost's `max-queues` limit (`None`: none).
    pub fn set_max_queues(&self, max: Option<usize>) {
        self.max_queues
            .store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
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

    /// The queues a message reaches from `exchange` with its routing key alone.
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        input: &RoutingInput<'_>,
        scratch: &mut Vec<Destination>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        self.route_keys(exchange, input, &[], scratch, out);
    }

    /// The queues a message reaches from `exchange` with its routing key and `extra_keys` (its
    /// CC and BCC headers), each once. Exchange-to-exchange bindings are followed, and so is an
    /// exchange's alternate exchange when its own bindings match nothing; each exchange is
    /// visited once, so cycles of either kind end.
    pub fn route_keys(
        &self,
        exchange: &Arc<Exchange>,
        input: &RoutingInput<'_>,
        extra_keys: &[String],
        scratch: &mut Vec<Destination>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        out.clear();
        if exchange.name.as_str().is_empty() {
            // The default exchange: every key names a queue. It has no alternate exchange.
            for key in
                std::iter::once(input.routing_key).chain(extra_keys.iter().map(|k| k.as_str()))
            {
                if let Some(q) = self.queues.get(key) {
                    out.push(q.clone());
                }
            }
        } else {
            scratch.clear();
            self.route_one(exchange, input, extra_keys, scratch);
            // Stays unallocated unless the message crosses to another exchange.
            let mut visited: Vec<*const Exchange> = Vec::new();
            while let Some(d) = scratch.pop() {
                match d {
                    Destination::Queue(q) => out.push(q),
                    Destination::Exchange(x) => {
                        let at = Arc::as_ptr(&x);
                        if at != Arc::as_ptr(exchange) && !visited.contains(&at) {
                            visited.push(at);
                            self.route_one(&x, input, extra_keys, scratch);
                        }
                    }
                }
            }
        }
        if out.len() > 1 {
            out.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
    }

    /// One exchange's destinations, or its alternate exchange when it has none.
    fn route_one(
        &self,
        x: &Exchange,
        input: &RoutingInput<'_>,
        extra_keys: &[String],
        scratch: &mut Vec<Destination>,
    ) {
        if x.is_duplicate(input.headers) {
            // Not routed at all: not to the alternate exchange either.
            return;
        }
        let before = scratch.len();
        x.route_keys(input, extra_keys, scratch);
        if scratch.len() > before {
            return;
        }
        let Some(name) = x.alternate() else { return };
        match self.exchanges.get(name.as_str()) {
            Some(ae) => scratch.push(Destination::Exchange(ae.clone())),
            // Logged at debug level: this happens per message, and would flood a warning log.
            None => debug!(
                "alternate exchange '{name}' of exchange '{}' in vhost '{}' does not exist",
                x.name, self.name
            ),
        }
    }
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
