//! The broker: what connections and the management API share. Virtual hosts hold exchanges,
//! bindings and queues; connections call in directly, queues deliver into connection
//! mailboxes. Durable state goes through the store (`crate::store`), on its own thread.

pub mod dead_letter;
pub mod dedup;
pub mod delayed;
pub mod delivery;
pub mod exchange;
pub mod field_types;
pub mod memory;
pub mod message;
pub mod queue;
mod recovery;
pub mod reply_to;
pub mod sender_selected;
pub mod timers;
pub mod vhost;

use crate::config::Config;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError, StoreHandle};
use dashmap::DashMap;
use queue::QueueHooks;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use vhost::VHost;

#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    vhosts: DashMap<String, Arc<VHost>>,
    next_connection_id: AtomicU64,
    pub store: Arc<StoreHandle>,
    /// The receiving ends of the broker's services, until `start` runs them.
    services: Mutex<Option<Services>>,
    /// Where delayed exchanges hand the messages they hold.
    pub held: delayed::HeldSink,
    /// Direct reply-to consumers, which any connection's replies may reach.
    pub reply_to: reply_to::ReplyTo,
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
        let (dead_letters, dead_letter_rx) = mpsc::unbounded_channel();
        let (timers, timer_rx) = mpsc::unbounded_channel();
        let memory = Arc::new(memory::MemoryGauge::new(config.paging_watermark));
        let hooks = QueueHooks {
            dead_letters,
            timers,
            memory: memory.clone(),
        };
        let (vhosts, store, recovered_held) = recovery::recover(store, config.queue_window, hooks)?;
        let (held, held_rx) = mpsc::unbounded_channel();
        for message in recovered_held {
            let _ = held.send(message);
        }
        let services = Services {
            dead_letters: dead_letter_rx,
            timers: timer_rx,
            held: held_rx,
            memory: Arc::downgrade(&memory),
        };
        Ok(Self {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            store,
            services: Mutex::new(Some(services)),
            held,
            reply_to: reply_to::ReplyTo::default(),
        })
    }

    /// Starts the broker's own tasks (dead-lettering, queue timers). Call once, from within
    /// the runtime, before serving clients.
    pub fn start(self: &Arc<Self>) {
        let Some(services) = self.services.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        tokio::spawn(dead_letter::run(
            services.dead_letters,
            Arc::downgrade(self),
        ));
        tokio::spawn(timers::run(services.timers, Arc::downgrade(self)));
        tokio::spawn(delayed::run(services.held, Arc::downgrade(self)));
        tokio::spawn(memory::trim_after_drains(services.memory));
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    pub fn next_connection_id(&self) -> queue::ConnectionId {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks a user's password. Users beyond the configured default come with the
    /// management issue; until then there is exactly one.
    pub fn authenticate(&self, user: &str, password: &str) -> bool {
        user == self.config.default_user && password == self.config.default_pass
    }
}

/// The receiving ends of the broker's background services.
#[derive(Debug)]
struct Services {
    dead_letters: mpsc::UnboundedReceiver<queue::DeadLetter>,
    timers: mpsc::UnboundedReceiver<queue::Wake>,
    held: mpsc::UnboundedReceiver<delayed::Held>,
    memory: std::sync::Weak<memory::MemoryGauge>,
}
