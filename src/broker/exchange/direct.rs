//! Direct exchange: a binding matches when its key equals the routing key.

use super::{Binding, BindingTable, Destination, RoutingInput};
use std::collections::HashMap;
use warren_amqp::FieldTable;

#[derive(Debug, Default)]
pub struct DirectTable {
    by_key: HashMap<String, Vec<Binding>>,
}

impl BindingTable for DirectTable {
    fn add(&mut self, binding: Binding) -> bool {
        let list = self
            .by_key
            .entry(binding.routing_key.to_string())
            .or_default();
        if list.iter().any(|b| {
            b.same(
                &binding.destination,
                binding.routing_key.as_str(),
                &binding.arguments,
            )
        }) {
            return false;
        }
        list.push(binding);
        true
    }

    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let Some(list) = self.by_key.get_mut(routing_key) else {
            return false;
        };
        let before = list.len();
        list.retain(|b| !b.same(destination, routing_key, arguments));
        let removed = list.len() != before;
        if list.is_empty() {
            self.by_key.remove(routing_key);
        }
        removed
    }

    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        if let Some(list) = self.by_key.get(input.routing_key) {
            out.extend(list.iter().map(|b| b.destination.clone()));
        }
    }

    fn remove_destination(&mut self, destination: &Destination) -> usize {
        let mut removed = 0;
        self.by_key.retain(|_, list| {
            let before = list.len();
            list.retain(|b| &b.destination != destination);
            removed += before - list.len();
            !list.is_empty()
        });
        removed
    }

    fn bindings(&self) -> Vec<Binding> {
        self.by_key.values().flatten().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn routes_by_exact_key() {
        let (a, b) = (queue("a"), queue("b"));
        let mut t = DirectTable::default();
        assert!(t.add(binding(&a, "k")));
        assert!(
            !t.add(binding(&a, "k")),
            "identical binding is not added twice"
        );
        t.add(binding(&b, "k"));
        t.add(binding(&b, "other"));
        assert_eq!(routed(&t, "k", None), ["a", "b"]);
        assert_eq!(routed(&t, "other", None), ["b"]);
        assert!(routed(&t, "K", None).is_empty());
        assert!(t.remove(&Destination::Queue(a.clone()), "k", &FieldTable::default()));
        assert_eq!(routed(&t, "k", None), ["b"]);
        assert_eq!(t.remove_destination(&Destination::Queue(b)), 2);
        assert!(t.is_empty());
    }
}
