//! Recreating durable exchanges, queues and bindings from their records at start.

use super::VHost;
use crate::broker::exchange::dedup::ExchangeDedup;
use crate::broker::exchange::{declared_type, Binding, Destination, Exchange, Flavour};
use crate::broker::queue::{Queue, QueueArgs};
use crate::store::{BindingRecord, ExchangeRecord, QueueRecord};
use std::sync::Arc;
use tracing::warn;

impl VHost {
    /// A recovered queue's settings. They were checked when it was declared; a record that
    /// no longer parses keeps the queue with default settings rather than losing it.
    fn recorded_args(&self, r: &QueueRecord) -> QueueArgs {
        let what = format!("queue '{}' in vhost '{}'", r.name, self.name);
        QueueArgs::parse(&r.arguments, true, false, r.auto_delete, &what).unwrap_or_else(|e| {
            warn!("{what}: recorded arguments no longer valid ({e}); using defaults");
            QueueArgs::default()
        })
    }

    /// Recreates a durable exchange from its record at start (nothing is written back).
    pub fn restore_exchange(&self, r: &ExchangeRecord) -> Result<(), String> {
        let what = format!("exchange '{}'", r.name);
        let (kind, flavour) =
            declared_type(&r.kind, &r.arguments).map_err(|e| format!("{what}: {}", e.text))?;
        let deduplicating = flavour == Flavour::Deduplicating;
        let dedup = ExchangeDedup::declared(deduplicating, &r.arguments, &what)
            .map_err(|e| format!("{what}: {}", e.text))?;
        // Recorded names came from short strings, so they fit; a damaged record cannot panic.
        let x = Exchange::new(
            warren_amqp::short_string(&r.name),
            kind,
            true,
            r.auto_delete,
            r.internal,
            r.arguments.clone(),
        )
        .with_flavour(flavour, dedup);
        self.exchanges.insert(r.name.clone(), Arc::new(x));
        Ok(())
    }

    /// Recreates a durable queue from its record at start; recovery then refills it.
    pub fn restore_queue(&self, r: &QueueRecord) -> Arc<Queue> {
        let q = Queue::new(
            warren_amqp::short_string(&r.name),
            self.name.clone(),
            true,
            None,
            r.auto_delete,
            r.arguments.clone(),
        )
        .with_args(self.recorded_args(r))
        .with_hooks(self.hooks.clone())
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
}
