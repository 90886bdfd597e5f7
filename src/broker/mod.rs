//! The broker: what connections and the management API share. Virtual hosts hold exchanges,
//! bindings and queues; connections call in directly, queues deliver into connection
//! mailboxes. Durable state goes through the store (`crate::store`), on its own thread.

pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
mod recovery;
pub mod vhost;

use crate::config::Config;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError, StoreHandle};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vhost::VHost;

#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    vhosts: DashMap<String, Arc<VHost>>,
    next_connection_id: AtomicU64,
    pub store: Arc<StoreHandle>,
}

impl Broker {
    /// Opens the store in the configured data directory and recovers what it holds.
    pub fn open(config: Config) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Engine(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let store = SledStore::open(&config.data_dir)?;
        Self::with_store(config, Arc::new(store))
    }

    /// A broker over any store (tests use `MemoryStore`).
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let (vhosts, store) = recovery::recover(store, config.queue_window)?;
        Ok(Self {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            store,
        })
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
