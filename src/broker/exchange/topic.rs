//! Topic exchange: binding keys are dot-separated words where `*` matches exactly one word and
//! `#` matches zero or more. Bindings sit in a trie keyed by word, so routing walks the words
//! of the routing key instead of testing every binding.

use super::{Binding, BindingTable, Destination, RoutingInput};
use std::collections::HashMap;
use warren_amqp::FieldTable;

#[derive(Debug, Default)]
pub struct TopicTable {
    root: Node,
    count: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Bindings whose key ends at this node.
    bindings: Vec<Binding>,
}

/// An empty key has no words (so `#` matches it and `*` does not), as in RabbitMQ.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.bindings.is_empty()
    }

    fn collect(&self, words: &[&str], out: &mut Vec<Destination>) {
        if let Some(hash) = self.children.get("#") {
            // `#` swallows zero or more words: try every split.
            for skip in 0..=words.len() {
                hash.collect(&words[skip..], out);
            }
        }
        let Some((first, rest)) = words.split_first() else {
            out.extend(self.bindings.iter().map(|b| b.destination.clone()));
            return;
        };
        if let Some(child) = self.children.get(*first) {
            child.collect(rest, out);
        }
        if *first != "*" {
            if let Some(star) = self.children.get("*") {
                star.collect(rest, out);
            }
        }
    }

    /// Removes matching bindings below this node along `path`; prunes emptied nodes.
    fn remove(&mut self, path: &[&str], keep: &dyn Fn(&Binding) -> bool) -> usize {
        let Some((first, rest)) = path.split_first() else {
            let before = self.bindings.len();
            self.bindings.retain(keep);
            return before - self.bindings.len();
        };
        let Some(child) = self.children.get_mut(*first) else {
            return 0;
        };
        let removed = child.remove(rest, keep);
        if child.is_empty() {
            self.children.remove(*first);
        }
        removed
    }

    fn remove_everywhere(&mut self, keep: &dyn Fn(&Binding) -> bool) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(keep);
        let mut removed = before - self.bindings.len();
        self.children.retain(|_, child| {
            removed += child.remove_everywhere(keep);
            !child.is_empty()
        });
        removed
    }

    fn all(&self, out: &mut Vec<Binding>) {
        out.extend(self.bindings.iter().cloned());
        for child in self.children.values() {
            child.all(out);
        }
    }
}

impl BindingTable for TopicTable {
    fn add(&mut self, binding: Binding) -> bool {
        let mut node = &mut self.root;
        for word in words(binding.routing_key.as_str()) {
            node = node.children.entry(word.into()).or_default();
        }
        if node.bindings.iter().any(|b| {
            b.same(
                &binding.destination,
                binding.routing_key.as_str(),
                &binding.arguments,
            )
        }) {
            return false;
        }
        node.bindings.push(binding);
        self.count += 1;
        true
    }

    fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let removed = self.root.remove(&words(routing_key), &|b| {
            !b.same(destination, routing_key, arguments)
        });
        self.count -= removed;
        removed > 0
    }

    fn route(&self, input: &RoutingInput<'_>, out: &mut Vec<Destination>) {
        self.root.collect(&words(input.routing_key), out);
    }

    fn remove_destination(&mut self, destination: &Destination) -> usize {
        let removed = self
            .root
            .remove_everywhere(&|b| &b.destination != destination);
        self.count -= removed;
        removed
    }

    fn bindings(&self) -> Vec<Binding> {
        let mut out = Vec::with_capacity(self.count);
        self.root.all(&mut out);
        out
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    /// (binding key, routing key, matches)
    const CASES: &[(&str, &str, bool)] = &[
        ("a.b.c", "a.b.c", true),
        ("a.b.c", "a.b", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.*", "a.b.c", false),
        ("*", "a", true),
        ("*", "", false),
        ("#", "", true),
        ("#", "a.b.c", true),
        ("a.#", "a", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b.a", false),
        ("#.c", "a.b.c", true),
        ("#.c", "c", true),
        ("#.c", "c.d", false),
        ("a.#.c", "a.c", true),
        ("a.#.c", "a.x.y.c", true),
        ("a.#.c", "a.x.y.d", false),
        ("#.#", "a", true),
        ("*.#", "", false),
        ("#.*", "a.b", true),
        ("a..b", "a..b", true),
        ("a.*.b", "a..b", true),
        ("", "", true),
        ("", "a", false),
        ("a.*.#", "a.b", true),
        ("a.*.#", "a", false),
        ("*.b.#.d", "x.b.d", true),
        ("*.b.#.d", "x.b.c.c.d", true),
        ("*.b.#.d", "x.c.d", false),
    ];

    #[test]
    fn matching_table() {
        for (i, (binding_key, routing_key, expected)) in CASES.iter().enumerate() {
            let q = queue(&format!("q{i}"));
            let mut t = TopicTable::default();
            t.add(binding(&q, binding_key));
            let hit = !routed(&t, routing_key, None).is_empty();
            assert_eq!(
                hit, *expected,
                "binding '{binding_key}' with routing key '{routing_key}'"
            );
        }
    }

    #[test]
    fn many_bindings_route_to_all_matches_once_each_after_dedup() {
        let (a, b, c) = (queue("a"), queue("b"), queue("c"));
        let mut t = TopicTable::default();
        t.add(binding(&a, "stock.#"));
        t.add(binding(&a, "#.nyse"));
        t.add(binding(&b, "stock.*.nyse"));
        t.add(binding(&c, "stock.usd"));
        assert_eq!(routed(&t, "stock.usd.nyse", None), ["a", "b"]);
        assert_eq!(routed(&t, "stock.usd", None), ["a", "c"]);
        assert_eq!(t.bindings().len(), 4);
        assert!(t.remove(
            &Destination::Queue(a.clone()),
            "stock.#",
            &FieldTable::default()
        ));
        assert!(!t.remove(
            &Destination::Queue(a.clone()),
            "stock.#",
            &FieldTable::default()
        ));
        assert_eq!(routed(&t, "stock.usd", None), ["c"]);
        assert_eq!(t.remove_destination(&Destination::Queue(a)), 1);
        assert_eq!(t.bindings().len(), 2);
    }
}
