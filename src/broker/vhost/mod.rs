//! A virtual host: its exchanges and queues, and the operations clients and the management
//! API perform on them, with RabbitMQ's checks and error texts. Declarations live in
//! `declare`, bindings in `bindings`, start-up recreation in `restore`.

mod bindings;
mod declare;
mod equivalence;
mod restore;

pub use declare::{ExchangeSpec, QueueSpec};

use super::consumer::ConnectionId;
use super::exchange::{Destination, Exchange, ExchangeKind, RoutingInput};
use super::queue::Queue;
use crate::error::{AmqpError, AmqpResult};
use crate::store::StoreHandle;
use dashmap::DashMap;
use std::sync::Arc;
use warren_amqp::{FieldTable, ShortString};

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
