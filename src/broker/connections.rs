//! The open AMQP connections, as the broker and the management API see them: who is connected
//! to which vhost, and a way to close them (a deleted vhost or user closes its connections
//! with 320 CONNECTION_FORCED, as in RabbitMQ). A connection registers once its handshake is
//! done and leaves when it ends; closing one posts to its mailbox, so no lock is held while
//! the connection does it.

use super::queue::{ConnectionEvent, ConnectionId, Mailbox};
use crate::error::AmqpError;
use dashmap::DashMap;
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub user: String,
    pub vhost: String,
    pub peer: SocketAddr,
    /// Where the connection task takes events, a close among them.
    mailbox: Mailbox,
}

impl ConnectionInfo {
    pub fn new(user: &str, vhost: &str, peer: SocketAddr, mailbox: Mailbox) -> Self {
        Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            peer,
            mailbox,
        }
    }
}

#[derive(Debug, Default)]
pub struct Connections {
    open: DashMap<ConnectionId, ConnectionInfo>,
}

impl Connections {
    pub fn register(&self, id: ConnectionId, info: ConnectionInfo) {
        self.open.insert(id, info);
    }

    pub fn unregister(&self, id: ConnectionId) {
        self.open.remove(&id);
    }

    pub fn count(&self) -> usize {
        self.open.len()
    }

    /// Asks every connection that `matches` to close with `error`; returns how many.
    pub fn close_where(
        &self,
        matches: impl Fn(&ConnectionInfo) -> bool,
        error: impl Fn() -> AmqpError,
    ) -> usize {
        let mut closed = 0;
        for entry in self.open.iter().filter(|e| matches(e.value())) {
            let _ = entry.mailbox.send(ConnectionEvent::Close(error()));
            closed += 1;
        }
        closed
    }
}
