//! The random exchange (`x-random`, RabbitMQ's bundled plugin): each message goes to one
//! binding chosen uniformly at random, whatever its routing key; a destination bound four
//! times is four times as likely.

use super::list::ListTable;
use super::{BindingTable, Destination, RoutingInput};
use rand::Rng;
use warren_amqp::FieldTable;

pub const TYPE: &str = "x-random";

#[derive(Debug)]
pub struct RandomTable {
    /// Every binding takes a message; routing keeps one of them.
    all: ListTable,
}

impl RandomTable {
    pub fn new() -> Self {
        Self {
            all: ListTable::new(|_, _| true),
        }
    }
}

impl BindingTable for RandomTable {
    fn add(&mut self, binding: super::Binding) -> bool {
        self.all.add(binding)
    }

    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.all.remove(destination, routing_key, arguments)
    }

    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        let start = out.len();
        self.all.route(input, out);
        let candidates = out.len() - start;
        if candidates > 1 {
            let pick = start + rand::rng().random_range(0..candidates);
            out.swap(start, pick);
            out.truncate(start + 1);
        }
    }

    fn remove_destination(&mut self, destination: &Destination) -> usize {
        self.all.remove_destination(destination)
    }

    fn bindings(&self) -> Vec<super::Binding> {
        self.all.bindings()
    }

    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn one_binding_takes_each_message_in_proportion() {
        let (a, b) = (queue("a"), queue("b"));
        let mut t = RandomTable::new();
        t.add(binding(&a, "1"));
        t.add(binding(&b, "1"));
        t.add(binding(&b, "2"));
        t.add(binding(&b, "3"));
        let mut to_a = 0;
        for _ in 0..4000 {
            let to = routed(&t, "any", None);
            assert_eq!(to.len(), 1);
            to_a += usize::from(to[0] == "a");
        }
        let share = to_a as f64 / 4000.0;
        assert!((0.2..0.3).contains(&share), "a's share {share}");
    }
}
