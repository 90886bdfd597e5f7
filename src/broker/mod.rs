//! The broker: what connections and the management API share. Virtual hosts hold exchanges,
//! bindings and queues; connections call in directly, queues deliver into connection
//! mailboxes. Nothing here does I/O.

pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
pub mod vhost;

use crate::config::Config;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vhost::VHost;

#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    vhosts: DashMap<String, Arc<VHost>>,
    next_connection_id: AtomicU64,
}

impl Broker {
    pub fn new(config: Config) -> Self {
        let vhosts = DashMap::new();
        vhosts.insert("/".to_string(), Arc::new(VHost::new("/")));
        Self {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
        }
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    pub fn next_connection_id(&self) -> consumer::ConnectionId {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks a user's password. Users beyond the configured default come with the
    /// management issue; until then there is exactly one.
    pub fn authenticate(&self, user: &str, password: &str) -> bool {
        user == self.config.default_user && password == self.config.default_pass
    }
}
