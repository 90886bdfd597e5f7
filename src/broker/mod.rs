//! The broker: what connections and the management API share. Virtual hosts hold exchanges,
//! bindings and queues; connections call in directly, queues deliver into connection
//! mailboxes. Durable state goes through the store (`crate::store`), on its own thread.

pub mod alarms;
pub mod connections;
pub mod dead_letter;
pub mod dedup;
pub mod definitions;
pub mod delayed;
pub mod delivery;
pub mod events;
pub mod exchange;
pub mod field_json;
pub mod field_types;
pub mod memory;
pub mod message;
pub mod metadata;
pub mod publish;
pub mod queue;
mod recovery;
pub mod reply_to;
pub mod sampler;
pub mod sender_selected;
pub mod stats;
pub mod timers;
pub mod trace;
pub mod vhost;

use crate::config::Config;
use crate::error;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError, StoreHandle};
use dashmap::DashMap;
use metadata::Metadata;
use queue::QueueHooks;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use vhost::VHost;
use warren_amqp::reply;

/// A socket the server listens on, and the protocol it serves (`amqp`, `http`...).
#[derive(Debug, Clone)]
pub struct Listener {
    pub protocol: &'static str,
    pub addr: std::net::SocketAddr,
}

#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    vhosts: DashMap<String, Arc<VHost>>,
    /// Vhost records, users, permissions and policies.
    pub metadata: Arc<Metadata>,
    /// The open AMQP connections.
    pub connections: connections::Connections,
    /// Logins refused since the start (wrong credentials, or a loopback-only user from afar).
    failed_logins: AtomicU64,
    /// `warren@<host>`, as RabbitMQ names its nodes `rabbit@<host>`.
    node_name: String,
    /// When the broker started, for the node's uptime.
    started: std::time::Instant,
    /// The sockets the server listens on, once it does (the management API shows them).
    listeners: std::sync::OnceLock<Vec<Listener>>,
    /// What every queue of every vhost is connected to (dead-lettering, timers, memory).
    hooks: QueueHooks,
    next_connection_id: AtomicU64,
    pub store: Arc<StoreHandle>,
    /// The receiving ends of the broker's services, until `start` runs them.
    services: Mutex<Option<Services>>,
    /// Where delayed exchanges hand the messages they hold.
    pub held: delayed::HeldSink,
    /// Direct reply-to consumers, which any connection's replies may reach.
    pub reply_to: reply_to::ReplyTo,
    /// The node's message totals, as the sampler last summed them, and their history.
    pub stats: stats::Stats,
    /// Where connections, vhosts and the metadata emit events for `amq.rabbitmq.event`.
    pub events: events::EventSink,
    /// The memory and disk alarms, which block publishing connections while raised.
    pub alarms: alarms::Alarms,
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
        let recovery::Recovery {
            vhosts,
            store,
            held: recovered_held,
            meta,
        } = recovery::recover(
            store,
            config.queue_window,
            hooks.clone(),
            &config.default_vhost,
        )?;
        let (held, held_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = events::channel();
        for message in recovered_held {
            let _ = held.send(message);
        }
        let defaults = metadata::Defaults {
            user: config.default_user.clone(),
            password: config.default_pass.clone(),
            vhost: config.default_vhost.clone(),
        };
        let metadata = Arc::new(Metadata::recover(
            store.clone(),
            meta,
            &defaults,
            events.clone(),
        ));
        let services = Services {
            dead_letters: dead_letter_rx,
            timers: timer_rx,
            held: held_rx,
            memory: Arc::downgrade(&memory),
            events: events_rx,
        };
        let alarms = alarms::Alarms::new(&config);
        let broker = Self {
            config,
            vhosts,
            metadata,
            connections: connections::Connections::default(),
            failed_logins: AtomicU64::new(0),
            node_name: format!("warren@{}", host_name()),
            started: std::time::Instant::now(),
            listeners: std::sync::OnceLock::new(),
            hooks,
            next_connection_id: AtomicU64::new(1),
            store,
            services: Mutex::new(Some(services)),
            held,
            reply_to: reply_to::ReplyTo::default(),
            stats: stats::Stats::default(),
            events,
            alarms,
        };
        broker.reconcile_vhosts();
        Ok(broker)
    }

    /// Every vhost the metadata names exists, and every vhost durable definitions were found
    /// in has a record (a store from before vhosts had records).
    fn reconcile_vhosts(&self) {
        for record in self.metadata.vhosts() {
            let vhost = self.vhost_or_new(&record.name);
            vhost.set_max_queues(metadata::limit(&record.limits, "max-queues"));
            vhost.set_tracing(record.tracing);
        }
        for vhost in self.vhosts.iter() {
            self.attach(&vhost);
            vhost.apply_policies();
        }
        let unrecorded: Vec<String> = self
            .vhosts
            .iter()
            .filter(|v| self.metadata.vhost(v.key()).is_none())
            .map(|v| v.key().clone())
            .collect();
        for name in unrecorded {
            let record = metadata::VhostRecord::named(&name);
            self.metadata.put_vhost(record, events::INTERNAL_USER);
        }
    }

    /// Creates a vhost (or updates its record if it exists) and returns it running. `by` is
    /// who asked, for events.
    pub fn add_vhost(&self, record: metadata::VhostRecord, by: &str) -> Arc<VHost> {
        let (name, max_queues, tracing) = (
            record.name.clone(),
            metadata::limit(&record.limits, "max-queues"),
            record.tracing,
        );
        let created = self.metadata.vhost(&name).is_none();
        let vhost = self.vhost_or_new(&name);
        if created {
            vhost.announce_exchanges(by);
        }
        self.metadata.put_vhost(record, by);
        vhost.set_max_queues(max_queues);
        vhost.set_tracing(tracing);
        vhost
    }

    /// Replaces a vhost's limits (`max-connections`, `max-queues`).
    pub fn set_vhost_limits(
        &self,
        name: &str,
        limits: metadata::Limits,
    ) -> Result<(), metadata::MetaError> {
        self.metadata.set_vhost_limits(name, limits.clone())?;
        if let Some(vhost) = self.vhost(name) {
            vhost.set_max_queues(metadata::limit(&limits, "max-queues"));
        }
        Ok(())
    }

    /// Sets a policy (`operator`: an operator policy) and applies it at once to what it
    /// matches in its vhost.
    pub fn set_policy(
        &self,
        spec: metadata::policies::PolicySpec,
        operator: bool,
        by: &str,
    ) -> Result<(), metadata::policies::PolicyError> {
        let vhost = spec.vhost.clone();
        self.metadata.set_policy(spec, operator, by)?;
        if let Some(v) = self.vhost(&vhost) {
            v.apply_policies();
        }
        Ok(())
    }

    /// Clears a policy; what it applied to goes back to its own arguments (or the next
    /// policy). False if there was none.
    pub fn clear_policy(&self, vhost: &str, name: &str, operator: bool, by: &str) -> bool {
        let cleared = self.metadata.clear_policy(vhost, name, operator, by);
        if let (true, Some(v)) = (cleared, self.vhost(vhost)) {
            v.apply_policies();
        }
        cleared
    }

    /// Deletes a vhost: its connections are closed with 320, then its queues (and their
    /// messages), exchanges, bindings and permissions go. False if there was no such vhost.
    pub fn delete_vhost(&self, name: &str, by: &str) -> bool {
        if !self.metadata.remove_vhost(name, by) {
            return false;
        }
        self.connections.close_where(
            |c| c.vhost == name,
            || {
                error::AmqpError::new(
                    reply::CONNECTION_FORCED,
                    format!("vhost '{name}' is deleted"),
                )
            },
        );
        if let Some((_, vhost)) = self.vhosts.remove(name) {
            vhost.destroy(by);
        }
        self.metadata.vhost_deleted(name, by);
        true
    }

    /// Replaces a user's limits (`max-connections`, `max-channels`).
    pub fn set_user_limits(
        &self,
        name: &str,
        limits: metadata::Limits,
    ) -> Result<(), metadata::MetaError> {
        self.metadata.set_user_limits(name, limits)
    }

    /// Deletes a user and its permissions; its connections are closed with 320. False if
    /// there was no such user.
    pub fn delete_user(&self, name: &str, by: &str) -> bool {
        if !self.metadata.remove_user(name, by) {
            return false;
        }
        self.connections.close_where(
            |c| c.user == name,
            || {
                error::AmqpError::new(
                    reply::CONNECTION_FORCED,
                    format!("user '{name}' is deleted"),
                )
            },
        );
        true
    }

    /// The running vhost of that name, created empty if it does not exist.
    fn vhost_or_new(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .entry(name.to_owned())
            .or_insert_with(|| {
                let vhost = VHost::new(
                    name,
                    self.store.clone(),
                    self.config.queue_window,
                    self.hooks.clone(),
                );
                self.attach(&vhost);
                Arc::new(vhost)
            })
            .clone()
    }

    /// Connects a vhost to the metadata (policies) and the event sink; the default vhost
    /// also gets the event exchange.
    fn attach(&self, vhost: &VHost) {
        vhost.attach(self.metadata.clone(), self.events.clone());
        if vhost.name == self.config.default_vhost {
            vhost.add_event_exchange();
        }
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
        tokio::spawn(events::run(services.events, Arc::downgrade(self)));
        let every = std::time::Duration::from_millis(self.config.memory_monitor_interval);
        tokio::spawn(alarms::run(Arc::downgrade(self), every));
        let every = std::time::Duration::from_millis(self.config.collect_statistics_interval);
        tokio::spawn(sampler::run(Arc::downgrade(self), every));
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// Every running vhost.
    pub fn all_vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.iter().map(|v| v.value().clone()).collect()
    }

    pub fn next_connection_id(&self) -> queue::ConnectionId {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the sockets the server listens on (once, when it starts serving).
    pub fn set_listeners(&self, listeners: Vec<Listener>) {
        let _ = self.listeners.set(listeners);
    }

    pub fn listeners(&self) -> &[Listener] {
        self.listeners.get().map_or(&[], Vec::as_slice)
    }

    /// Bytes of messages the queues hold in memory.
    pub fn queued_memory(&self) -> u64 {
        self.hooks.memory.used()
    }

    /// Milliseconds since the broker started.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The node's name, as the management API reports it.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Counts a refused login.
    pub fn login_failed(&self) {
        self.failed_logins.fetch_add(1, Ordering::Relaxed);
    }

    /// Logins refused since the start.
    pub fn failed_logins(&self) -> u64 {
        self.failed_logins.load(Ordering::Relaxed)
    }

    /// Checks a user's password.
    pub fn authenticate(&self, user: &str, password: &str) -> bool {
        self.metadata.authenticate(user, password).is_some()
    }
}

/// The machine's host name (its first label), or "localhost".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The receiving ends of the broker's background services.
#[derive(Debug)]
struct Services {
    dead_letters: mpsc::UnboundedReceiver<queue::DeadLetter>,
    timers: mpsc::UnboundedReceiver<queue::Wake>,
    held: mpsc::UnboundedReceiver<delayed::Held>,
    memory: std::sync::Weak<memory::MemoryGauge>,
    events: events::EventReceiver,
}
