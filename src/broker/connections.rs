//! The open AMQP connections, as the broker and the management API see them: who is connected
//! to which vhost, and a way to close them (a deleted vhost or user closes its connections
//! with 320 CONNECTION_FORCED, as in RabbitMQ). A connection is admitted (counted against the
//! vhost's and the user's connection limits) at connection.open, registers once its handshake
//! is done and leaves when it ends; closing one posts to its mailbox, so no lock is held while
//! the connection does it. Channels are counted per user, for the user's channel limit.

pub use super::queue::ChannelView;
use super::queue::{ConnectionEvent, ConnectionId, Mailbox};
use super::stats::{self, Stats};
use crate::error::AmqpError;
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use warren_amqp::FieldTable;

#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub user: String,
    pub vhost: String,
    pub peer: SocketAddr,
    /// What the handshake settled, for the management API.
    pub details: Arc<ConnectionDetails>,
    /// Where the connection task takes events, a close among them.
    mailbox: Mailbox,
}

/// What the management API shows of a connection beyond its user, vhost and peer: what the
/// handshake settled, and the statistics of the connection and its channels.
#[derive(Debug)]
pub struct ConnectionDetails {
    /// The address the client connected to.
    pub local: SocketAddr,
    pub client_properties: FieldTable,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    pub mechanism: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    /// What the TLS handshake settled, for a connection on the AMQPS port.
    pub tls: Option<crate::tls::Session>,
    /// Octets in and out, and the counts of channels that closed.
    pub stats: Stats,
    /// The open channels' statistics, by channel number. Changed as channels open and close.
    pub channels: Mutex<BTreeMap<u16, Arc<Stats>>>,
}

impl ConnectionDetails {
    /// A channel opens: its counters join the connection's.
    pub fn open_channel(&self, number: u16) -> Arc<Stats> {
        let stats = Arc::new(Stats::default());
        self.channel_map().insert(number, stats.clone());
        stats
    }

    /// A channel closes: its counts stay in the connection's totals.
    pub fn close_channel(&self, number: u16) {
        if let Some(stats) = self.channel_map().remove(&number) {
            self.stats.counters.absorb(&stats.counters.read());
        }
    }

    fn channel_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Arc<Stats>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open channels' statistics.
    pub fn channel_stats(&self) -> Vec<(u16, Arc<Stats>)> {
        self.channel_map()
            .iter()
            .map(|(n, s)| (*n, s.clone()))
            .collect()
    }

    /// The connection's counts: its own, its closed channels' and its open channels'.
    pub fn totals(&self) -> stats::Counts {
        self.channel_map()
            .values()
            .fold(self.stats.counters.read(), |acc, s| {
                stats::sum(&acc, &s.counters.read())
            })
    }
}

impl ConnectionInfo {
    pub fn new(
        user: &str,
        vhost: &str,
        peer: SocketAddr,
        details: Arc<ConnectionDetails>,
        mailbox: Mailbox,
    ) -> Self {
        Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            peer,
            details,
            mailbox,
        }
    }

    /// RabbitMQ's name for a connection: `peer -> local`.
    pub fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.details.local)
    }

    /// Asks the connection task for its channels; `None` if it is gone or does not answer
    /// within `wait` (it answers between the frames it handles, never from the message path).
    pub async fn channels(&self, wait: Duration) -> Option<Vec<ChannelView>> {
        let (tx, rx) = oneshot::channel();
        self.mailbox.send(ConnectionEvent::Describe(tx)).ok()?;
        tokio::time::timeout(wait, rx).await.ok()?.ok()
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The broker's `max_connections`.
    Node(usize),
    Vhost(usize),
    User(usize),
}

#[derive(Debug, Default)]
pub struct Connections {
    open: DashMap<ConnectionId, ConnectionInfo>,
    /// Connections admitted per vhost and per user, and channels open per user. Changed
    /// only when connections and channels open and close, never per message.
    counts: Mutex<Counts>,
    /// Connections and channels created and closed since the start.
    pub churn: stats::Counters,
}

#[derive(Debug, Default)]
struct Counts {
    /// Connections admitted in all.
    total: usize,
    per_vhost: HashMap<String, usize>,
    per_user: HashMap<String, usize>,
    channels: HashMap<String, usize>,
    /// Channels open per connection, for the management API.
    per_connection: HashMap<ConnectionId, usize>,
}

/// `by` less of `key`, forgetting keys that reach zero.
fn decrement(map: &mut HashMap<String, usize>, key: &str, by: usize) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(by);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Connections {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection of `user` to `vhost` unless that passes a limit (`None`: none):
    /// the broker's, the vhost's or the user's, checked in that order as RabbitMQ does.
    pub fn admit(
        &self,
        user: &str,
        vhost: &str,
        limits: [Option<usize>; 3],
    ) -> Result<(), Refusal> {
        let [node_max, vhost_max, user_max] = limits;
        let mut counts = self.counts();
        if let Some(max) = node_max.filter(|max| counts.total >= *max) {
            return Err(Refusal::Node(max));
        }
        let in_vhost = counts.per_vhost.get(vhost).copied().unwrap_or(0);
        if let Some(max) = vhost_max.filter(|max| in_vhost >= *max) {
            return Err(Refusal::Vhost(max));
        }
        let of_user = counts.per_user.get(user).copied().unwrap_or(0);
        if let Some(max) = user_max.filter(|max| of_user >= *max) {
            return Err(Refusal::User(max));
        }
        counts.total += 1;
        *counts.per_vhost.entry(vhost.to_owned()).or_default() += 1;
        *counts.per_user.entry(user.to_owned()).or_default() += 1;
        Ok(())
    }

    /// Uncounts an admitted connection.
    pub fn release(&self, user: &str, vhost: &str) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        decrement(&mut counts.per_vhost, vhost, 1);
        decrement(&mut counts.per_user, user, 1);
    }

    /// Counts a channel the user opens on a connection, unless the user has `max` open
    /// already.
    pub fn open_channel(
        &self,
        user: &str,
        connection: ConnectionId,
        max: Option<usize>,
    ) -> Result<(), usize> {
        let mut counts = self.counts();
        let open = counts.channels.get(user).copied().unwrap_or(0);
        if let Some(max) = max.filter(|max| open >= *max) {
            return Err(max);
        }
        *counts.channels.entry(user.to_owned()).or_default() += 1;
        *counts.per_connection.entry(connection).or_default() += 1;
        self.churn.bump(stats::Stat::ChannelCreated);
        Ok(())
    }

    /// The channels open on a connection.
    pub fn channels_on(&self, connection: ConnectionId) -> usize {
        self.counts()
            .per_connection
            .get(&connection)
            .copied()
            .unwrap_or(0)
    }

    /// The channels the user has open, on all its connections.
    pub fn channels_of(&self, user: &str) -> usize {
        self.counts().channels.get(user).copied().unwrap_or(0)
    }

    /// Uncounts `n` channels of the user on a connection.
    pub fn close_channels(&self, user: &str, connection: ConnectionId, n: usize) {
        if n > 0 {
            self.churn.add(stats::Stat::ChannelClosed, n as u64);
            let mut counts = self.counts();
            decrement(&mut counts.channels, user, n);
            if let Some(open) = counts.per_connection.get_mut(&connection) {
                *open = open.saturating_sub(n);
                if *open == 0 {
                    counts.per_connection.remove(&connection);
                }
            }
        }
    }

    pub fn register(&self, id: ConnectionId, info: ConnectionInfo) {
        self.churn.bump(stats::Stat::ConnectionCreated);
        self.open.insert(id, info);
    }

    /// A registered connection ends: it leaves the registry and its admission is released.
    pub fn unregister(&self, id: ConnectionId) {
        if let Some((_, info)) = self.open.remove(&id) {
            self.churn.bump(stats::Stat::ConnectionClosed);
            self.release(&info.user, &info.vhost);
        }
    }

    pub fn count(&self) -> usize {
        self.open.len()
    }

    /// The open connections.
    pub fn list(&self) -> Vec<(ConnectionId, ConnectionInfo)> {
        self.open
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }

    pub fn get(&self, id: ConnectionId) -> Option<ConnectionInfo> {
        self.open.get(&id).map(|e| e.value().clone())
    }

    /// Asks one connection to close with `error`; false if it is not open.
    pub fn close_where_id(&self, id: ConnectionId, error: impl Fn() -> AmqpError) -> bool {
        match self.open.get(&id) {
            Some(c) => c.mailbox.send(ConnectionEvent::Close(error())).is_ok(),
            None => false,
        }
    }

    /// Tells every connection that the resource alarms changed.
    pub fn alarms_changed(&self) {
        for entry in self.open.iter() {
            let _ = entry.mailbox.send(ConnectionEvent::AlarmsChanged);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_admitted_connections_and_open_channels() {
        let c = Connections::default();
        c.admit("u", "v", [None, Some(2), None]).unwrap();
        c.admit("u", "v", [None, Some(2), None]).unwrap();
        assert_eq!(
            c.admit("w", "v", [None, Some(2), None]),
            Err(Refusal::Vhost(2))
        );
        assert_eq!(
            c.admit("u", "x", [None, None, Some(2)]),
            Err(Refusal::User(2))
        );
        assert_eq!(
            c.admit("w", "x", [Some(2), None, None]),
            Err(Refusal::Node(2))
        );
        c.release("u", "v");
        c.admit("w", "v", [Some(2), Some(2), Some(1)]).unwrap();
        assert_eq!(c.open_channel("u", 1, Some(1)), Ok(()));
        assert_eq!(c.open_channel("u", 1, Some(1)), Err(1));
        assert_eq!(c.channels_on(1), 1);
        c.close_channels("u", 1, 1);
        assert_eq!(c.channels_on(1), 0);
        assert_eq!(c.open_channel("u", 1, Some(1)), Ok(()));
        assert_eq!(c.open_channel("other", 2, None), Ok(()));
    }
}
