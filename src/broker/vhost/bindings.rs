//! Bindings between exchanges and queues or exchanges, and their records in the store when
//! both ends are durable.

use super::VHost;
use crate::broker::events::{self, Fields};
use crate::broker::exchange::{Binding, Destination, Exchange};
use crate::broker::queue::ConnectionId;
use crate::error::{AmqpError, AmqpResult};
use crate::store::{BindingRecord, StoreOp};
use std::sync::Arc;
use warren_amqp::FieldTable;

impl VHost {
    /// Records a binding being added (`put`) or removed, when both its ends are durable.
    /// Emits its event too; `by` is the user who asked.
    pub(super) fn record_binding(&self, source: &Exchange, b: &Binding, put: bool, by: &str) {
        let (destination, durable, destination_is_queue) = match &b.destination {
            Destination::Queue(q) => (q.name.to_string(), q.durable, true),
            Destination::Exchange(x) => (x.name.to_string(), x.durable, false),
        };
        self.binding_changed(source);
        self.emit_binding(source, b, put, &destination, destination_is_queue, by);
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

    fn emit_binding(
        &self,
        source: &Exchange,
        b: &Binding,
        put: bool,
        destination: &str,
        destination_is_queue: bool,
        by: &str,
    ) {
        if !self.events_wanted() {
            return;
        }
        let fields = Fields::new()
            .text("source_name", source.name.as_str())
            .text("source_kind", "exchange")
            .text("destination_name", destination)
            .text(
                "destination_kind",
                if destination_is_queue {
                    "queue"
                } else {
                    "exchange"
                },
            )
            .text("routing_key", b.routing_key.as_str())
            .value("arguments", events::terms(&b.arguments))
            .by(by);
        let event = if put {
            "binding.created"
        } else {
            "binding.deleted"
        };
        self.emit(event, fields);
    }

    /// Adds a binding, recording it if it is new and durable.
    fn add_binding(&self, source: &Exchange, binding: Binding, by: &str) {
        let record = binding.clone();
        if source.bind(binding) {
            self.record_binding(source, &record, true, by);
        }
    }

    /// Removes a binding (recording that), and an auto-delete source left without bindings.
    fn remove_binding(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        by: &str,
    ) {
        if source.unbind(&destination, routing_key, arguments) {
            let binding = Binding {
                destination,
                routing_key: routing_key.into(),
                arguments: arguments.clone(),
            };
            self.record_binding(source, &binding, false, by);
            if source.auto_delete && !source.has_bindings() {
                self.remove_auto_deleted(source, by);
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
        by: &str,
    ) -> AmqpResult<()> {
        let x = self.source_for_binding(exchange)?;
        let q = self.queue_for(queue, connection)?;
        x.kind
            .validate_binding(routing_key, &arguments)
            .map_err(AmqpError::precondition_failed)?;
        self.add_binding(
            &x,
            Binding {
                destination: Destination::Queue(q),
                routing_key: routing_key.into(),
                arguments,
            },
            by,
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
        by: &str,
    ) -> AmqpResult<()> {
        let x = self.source_for_binding(exchange);
        if let (Ok(x), Ok(q)) = (x, self.queue(queue)) {
            self.remove_binding(&x, Destination::Queue(q), routing_key, arguments, by);
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
        by: &str,
    ) -> AmqpResult<()> {
        let d = self.source_for_binding(destination)?;
        let s = self.source_for_binding(source)?;
        s.kind
            .validate_binding(routing_key, &arguments)
            .map_err(AmqpError::precondition_failed)?;
        self.add_binding(
            &s,
            Binding {
                destination: Destination::Exchange(d),
                routing_key: routing_key.into(),
                arguments,
            },
            by,
        );
        Ok(())
    }

    pub fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
        by: &str,
    ) -> AmqpResult<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if let (Ok(d), Ok(s)) = (self.exchange(destination), self.exchange(source)) {
            self.remove_binding(&s, Destination::Exchange(d), routing_key, arguments, by);
        }
        Ok(())
    }
}
