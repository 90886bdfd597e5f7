//! Fanout exchange: every binding matches, whatever the routing key.

use super::{Binding, BindingTable, Destination, RoutingInput};
use warren_amqp::FieldTable;

#[derive(Debug, Default)]
pub struct FanoutTable {
    bindings: Vec<Binding>,
}

impl BindingTable for FanoutTable {
    fn add(&mut self, binding: Binding) -> bool {
        if self.bindings.iter().any(|b| {
            b.same(
                &binding.destination,
                binding.routing_key.as_str(),
                &binding.arguments,
            )
        }) {
            return false;
        }
        self.bindings.push(binding);
        true
    }

    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let before = self.bindings.len();
        self.bindings
            .retain(|b| !b.same(destination, routing_key, arguments));
        before != self.bindings.len()
    }

    fn route(&self, _input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        out.extend(self.bindings.iter().map(|b| b.destination.clone()));
    }

    fn remove_destination(&mut self, destination: &Destination) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|b| &b.destination != destination);
        before - self.bindings.len()
    }

    fn bindings(&self) -> Vec<Binding> {
        self.bindings.clone()
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn routes_to_every_binding() {
        let (a, b) = (queue("a"), queue("b"));
        let mut t = FanoutTable::default();
        t.add(binding(&a, ""));
        t.add(binding(&b, "ignored"));
        assert_eq!(routed(&t, "anything", None), ["a", "b"]);
        assert!(t.remove(&Destination::Queue(b), "ignored", &FieldTable::default()));
        assert_eq!(routed(&t, "", None), ["a"]);
    }
}
