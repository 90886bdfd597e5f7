//! Fanout exchange: every binding matches, whatever the routing key.

use super::list::ListTable;

/// A fanout exchange's bindings: every one of them takes every message.
pub fn table() -> ListTable {
    ListTable::new(|_, _| true)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{BindingTable, Destination};
    use super::*;
    use warren_amqp::FieldTable;

    #[test]
    fn routes_to_every_binding() {
        let (a, b) = (queue("a"), queue("b"));
        let mut t = table();
        t.add(binding(&a, ""));
        t.add(binding(&b, "ignored"));
        assert_eq!(routed(&t, "anything", None), ["a", "b"]);
        assert!(t.remove(&Destination::Queue(b), "ignored", &FieldTable::default()));
        assert_eq!(routed(&t, "", None), ["a"]);
    }
}
