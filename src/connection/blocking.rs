//! connection.blocked and connection.unblocked: while a memory or disk alarm is raised
//! (`broker::alarms`), a connection that publishes stops being read, so TCP pushes back on its
//! publishers, and a client that announced the `connection.blocked` capability is told why.
//! A connection that has not published goes on (consumers keep draining queues) until it
//! publishes. When the alarms clear, reading resumes and the client is told.

use crate::broker::alarms::AlarmState;
use tokio::sync::watch;
use warren_amqp::protocol::connection as conn;
use warren_amqp::{short_string, AMQPClass};

pub(super) struct Blocking {
    /// The broker's alarms as they change.
    alarms: watch::Receiver<AlarmState>,
    /// The alarms as last seen.
    raised: AlarmState,
    /// The connection has published: it is blocked while an alarm is raised.
    pub published: bool,
    /// Reading is paused.
    blocked: bool,
    /// The client announced the `connection.blocked` capability.
    notify: bool,
}

impl Blocking {
    pub fn new(alarms: watch::Receiver<AlarmState>, notify: bool) -> Self {
        let raised = *alarms.borrow();
        Self {
            alarms,
            raised,
            published: false,
            blocked: false,
            notify,
        }
    }

    /// Whether the connection is not read.
    #[inline]
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// Takes the alarms' new state (after `alarms.changed()` fired).
    pub fn alarms_changed(&mut self) {
        self.raised = *self.alarms.borrow_and_update();
    }

    /// Blocks or unblocks as the alarms and the connection's publishing say; returns what to
    /// tell the client, if anything.
    pub fn update(&mut self) -> Option<AMQPClass> {
        let block = self.published && self.raised.any();
        if block == self.blocked {
            return None;
        }
        self.blocked = block;
        if !self.notify {
            return None;
        }
        Some(AMQPClass::Connection(match block {
            true => conn::AMQPMethod::Blocked(conn::Blocked {
                reason: short_string(self.raised.reason()),
            }),
            false => conn::AMQPMethod::Unblocked(conn::Unblocked {}),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_publishers_are_blocked_and_only_while_an_alarm_is_raised() {
        let (tx, rx) = watch::channel(AlarmState::default());
        let mut b = Blocking::new(rx, true);
        tx.send_replace(AlarmState {
            memory: true,
            disk: false,
        });
        b.alarms_changed();
        assert!(b.update().is_none(), "it has not published");
        assert!(!b.blocked());
        b.published = true;
        let told = b.update();
        assert!(matches!(
            told,
            Some(AMQPClass::Connection(conn::AMQPMethod::Blocked(ref m))) if m.reason.as_str() == "low on memory"
        ));
        assert!(b.blocked());
        assert!(b.update().is_none(), "told once");
        tx.send_replace(AlarmState::default());
        b.alarms_changed();
        assert!(matches!(
            b.update(),
            Some(AMQPClass::Connection(conn::AMQPMethod::Unblocked(_)))
        ));
        assert!(!b.blocked());
    }

    #[test]
    fn clients_without_the_capability_are_throttled_silently() {
        let (_tx, rx) = watch::channel(AlarmState {
            memory: false,
            disk: true,
        });
        let mut b = Blocking::new(rx, false);
        b.published = true;
        assert!(b.update().is_none());
        assert!(b.blocked());
    }
}
