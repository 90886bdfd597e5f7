//! Exchanges and their bindings. Each exchange type is a binding table behind one trait
//! (`BindingTable`): adding and removing bindings, and routing a message to destinations.
//! Tables sit behind a read-write lock per exchange: publishers route concurrently under
//! read locks; only bind/unbind take the write lock.

pub mod alternate;
pub mod consistent_hash;
pub mod dedup;
mod direct;
mod fanout;
mod headers;
mod list;
mod random;
mod topic;

use super::queue::Queue;
use crate::error::{AmqpError, AmqpResult};
use std::sync::{Arc, RwLock};
use warren_amqp::{FieldTable, ShortString};

/// The exchange type that delays messages (as RabbitMQ's delayed-message plugin names it).
pub const DELAYED_TYPE: &str = "x-delayed-message";

/// What an exchange type from a plugin adds to routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// One of AMQP's four types.
    Plain,
    /// `x-delayed-message`: holds messages for their `x-delay`, then routes as its
    /// `x-delayed-type` says.
    Delayed,
    /// `x-message-deduplication`: drops duplicates, then routes as fanout.
    Deduplicating,
}

/// The routing type and flavour of an exchange declared with type `kind`.
pub fn declared_type(kind: &str, arguments: &FieldTable) -> AmqpResult<(ExchangeKind, Flavour)> {
    if kind == dedup::DEDUP_TYPE {
        return Ok((ExchangeKind::Fanout, Flavour::Deduplicating));
    }
    if kind != DELAYED_TYPE {
        let parsed = ExchangeKind::parse(kind)
            .ok_or_else(|| AmqpError::command_invalid(format!("invalid exchange type '{kind}'")))?;
        parsed.validate_arguments(arguments)?;
        return Ok((parsed, Flavour::Plain));
    }
    let underlying = match arguments.inner().get("x-delayed-type") {
        Some(warren_amqp::AMQPValue::LongString(s)) => {
            ExchangeKind::parse(&String::from_utf8_lossy(s.as_bytes()))
        }
        _ => None,
    };
    underlying.map(|k| (k, Flavour::Delayed)).ok_or_else(|| {
        AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-consistent-hash`: one destination per message, by a hash, in proportion to weights.
    ConsistentHash,
    /// `x-random`: one binding per message, uniformly at random.
    Random,
}

impl ExchangeKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            consistent_hash::TYPE => Some(Self::ConsistentHash),
            random::TYPE => Some(Self::Random),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
            Self::ConsistentHash => consistent_hash::TYPE,
            Self::Random => random::TYPE,
        }
    }

    /// Checks a new binding (headers exchanges check their arguments, consistent-hash
    /// exchanges their weights).
    pub fn validate_binding(self, routing_key: &str, arguments: &FieldTable) -> Result<(), String> {
        match self {
            Self::Headers => headers::validate_binding(arguments),
            Self::ConsistentHash => consistent_hash::weight(routing_key).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Checks an exchange's arguments at declare (only consistent-hash exchanges have any).
    pub fn validate_arguments(self, arguments: &FieldTable) -> AmqpResult<()> {
        match self {
            Self::ConsistentHash => consistent_hash::hash_on(arguments).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn new_table(self, arguments: &FieldTable) -> Box<dyn BindingTable> {
        match self {
            Self::Direct => Box::<direct::DirectTable>::default(),
            Self::Fanout => Box::new(fanout::table()),
            Self::Topic => Box::<topic::TopicTable>::default(),
            Self::Headers => Box::new(headers::table()),
            Self::ConsistentHash => {
                let on = consistent_hash::hash_on(arguments)
                    .unwrap_or(consistent_hash::HashOn::RoutingKey);
                Box::new(consistent_hash::HashTable::new(on))
            }
            Self::Random => Box::new(random::RandomTable::new()),
        }
    }
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Queue(a), Self::Queue(b)) => Arc::ptr_eq(a, b),
            (Self::Exchange(a), Self::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortString,
    pub arguments: FieldTable,
}

impl Binding {
    fn same(&self, destination: &Destination, routing_key: &str, arguments: &FieldTable) -> bool {
        &self.destination == destination
            && self.routing_key.as_str() == routing_key
            && &self.arguments == arguments
    }
}

/// What a message offers to routing.
pub struct RoutingInput<'a> {
    pub routing_key: &'a str,
    pub headers: Option<&'a FieldTable>,
    /// The message's properties, for exchanges that route by one (consistent-hash).
    pub properties: Option<&'a warren_amqp::BasicProperties>,
}

/// The binding table of one exchange type.
pub trait BindingTable: Send + Sync + std::fmt::Debug {
    /// Adds a binding; false if an identical one exists.
    fn add(&mut self, binding: Binding) -> bool;
    /// Removes the identical binding; false if there was none.
    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool;
    /// Appends every matching binding's destination (duplicates allowed).
    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>);
    /// Drops every binding to a destination; returns how many went.
    fn remove_destination(&mut self, destination: &Destination) -> usize;
    fn bindings(&self) -> Vec<Binding>;
    fn is_empty(&self) -> bool;
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortString,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// Where messages go that this exchange's bindings cannot route: its
    /// `alternate-exchange` argument, or else what a policy sets. Read only for messages
    /// nothing else takes.
    alternate: RwLock<Option<String>>,
    /// The `alternate-exchange` argument it was declared with.
    declared_alternate: Option<String>,
    /// A delaying or deduplicating exchange type, or a plain one.
    pub flavour: Flavour,
    /// The keys of recent messages, if the exchange drops duplicates (by its type or by
    /// LavinMQ's `x-message-deduplication` argument).
    dedup: Option<dedup::ExchangeDedup>,
    table: RwLock<Box<dyn BindingTable>>,
    /// publish_in and publish_out, and their samples, for the management API.
    pub stats: crate::broker::stats::Stats,
}

impl Exchange {
    pub fn new(
        name: ShortString,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let table = RwLock::new(kind.new_table(&arguments));
        Self {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            alternate: RwLock::new(alternate::from_arguments(&arguments)),
            declared_alternate: alternate::from_arguments(&arguments),
            flavour: Flavour::Plain,
            dedup: None,
            arguments,
            table,
            stats: Default::default(),
        }
    }

    /// Gives the exchange a plugin type's behaviour, and deduplication if its declaration
    /// asks for it.
    pub fn with_flavour(mut self, flavour: Flavour, dedup: Option<dedup::ExchangeDedup>) -> Self {
        self.flavour = flavour;
        self.dedup = dedup;
        self
    }

    /// Counts a message published to the exchange, and whether it was routed out of it.
    #[inline]
    pub fn count_publish(&self, routed: bool) {
        use crate::broker::stats::Stat;
        self.stats.counters.bump(Stat::PublishIn);
        if routed {
            self.stats.counters.bump(Stat::PublishOut);
        }
    }

    /// The alternate exchange, if it has one.
    pub fn alternate(&self) -> Option<String> {
        self.alternate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies the alternate exchange a policy sets; the declared argument wins over it.
    pub fn apply_policy_alternate(&self, from_policy: Option<String>) {
        let effective = self.declared_alternate.clone().or(from_policy);
        *self.alternate.write().unwrap_or_else(|p| p.into_inner()) = effective;
    }

    /// An `x-delayed-message` exchange: it holds messages for their `x-delay` before routing
    /// them as its `x-delayed-type` (`kind`) would.
    pub fn is_delayed(&self) -> bool {
        self.flavour == Flavour::Delayed
    }

    /// Whether a message with these headers is a duplicate the exchange drops (recording its
    /// key if not).
    pub fn is_duplicate(&self, headers: Option<&FieldTable>) -> bool {
        self.dedup.as_ref().is_some_and(|d| d.is_duplicate(headers))
    }

    /// The type as clients declare it.
    pub fn type_name(&self) -> &'static str {
        match self.flavour {
            Flavour::Plain => self.kind.as_str(),
            Flavour::Delayed => DELAYED_TYPE,
            Flavour::Deduplicating => dedup::DEDUP_TYPE,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Box<dyn BindingTable>> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Box<dyn BindingTable>> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bind(&self, binding: Binding) -> bool {
        self.write().add(binding)
    }

    pub fn unbind(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.write().remove(destination, routing_key, arguments)
    }

    /// Removes every binding to `destination` and returns them.
    pub fn unbind_destination(&self, destination: &Destination) -> Vec<Binding> {
        let mut table = self.write();
        let removed: Vec<Binding> = table
            .bindings()
            .into_iter()
            .filter(|b| &b.destination == destination)
            .collect();
        if !removed.is_empty() {
            table.remove_destination(destination);
        }
        removed
    }

    pub fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        self.read().route(input, out)
    }

    /// Routes with the message's routing key and `extra_keys` (its CC and BCC headers), under
    /// one read of the table. Fanout and headers exchanges ignore keys, so only the first
    /// pass counts for them.
    pub fn route_keys(
        &self,
        input: &RoutingInput<'_>,
        extra_keys: &[String],
        out: &mut Vec<Destination>,
    ) {
        let table = self.read();
        table.route(input, out);
        if matches!(self.kind, ExchangeKind::Direct | ExchangeKind::Topic) {
            for key in extra_keys {
                let input = RoutingInput {
                    routing_key: key,
                    headers: input.headers,
                    properties: input.properties,
                };
                table.route(&input, out);
            }
        }
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.read().bindings()
    }

    pub fn has_bindings(&self) -> bool {
        !self.read().is_empty()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Distinct queues to bind in table tests.
    pub fn queue(name: &str) -> Arc<Queue> {
        Arc::new(Queue::new(
            name.into(),
            "/".into(),
            false,
            None,
            false,
            FieldTable::default(),
        ))
    }

    pub fn binding(q: &Arc<Queue>, key: &str) -> Binding {
        Binding {
            destination: Destination::Queue(q.clone()),
            routing_key: key.into(),
            arguments: FieldTable::default(),
        }
    }

    /// Names of the queues a table routes to, sorted and deduplicated.
    pub fn routed(
        table: &dyn BindingTable,
        key: &str,
        headers: Option<&FieldTable>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        table.route(
            &RoutingInput {
                routing_key: key,
                headers,
                properties: None,
            },
            &mut out,
        );
        let mut names: Vec<String> = out
            .into_iter()
            .map(|d| match d {
                Destination::Queue(q) => q.name.to_string(),
                Destination::Exchange(e) => format!("x:{}", e.name),
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
