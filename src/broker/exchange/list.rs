//! Bindings kept as a plain list, for the exchange types that look at every binding when they
//! route (fanout: all match; headers: each binding's arguments are tested).

use super::{Binding, BindingTable, Destination, RoutingInput};
use warren_amqp::FieldTable;

/// Whether a binding takes a message.
pub type Matcher = fn(&Binding, &RoutingInput<'_>) -> bool;

#[derive(Debug)]
pub struct ListTable {
    bindings: Vec<Binding>,
    matches: Matcher,
}

impl ListTable {
    pub fn new(matches: Matcher) -> Self {
        Self {
            bindings: Vec::new(),
            matches,
        }
    }
}

impl BindingTable for ListTable {
    fn add(&mut self, binding: Binding) -> bool {
        let key = binding.routing_key.as_str();
        if self
            .bindings
            .iter()
            .any(|b| b.same(&binding.destination, key, &binding.arguments))
        {
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

    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        let matching = self.bindings.iter().filter(|b| (self.matches)(b, input));
        out.extend(matching.map(|b| b.destination.clone()));
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
