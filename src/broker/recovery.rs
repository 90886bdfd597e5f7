//! Start-up: reads the store back into virtual hosts, exchanges, queues, bindings and
//! messages, logs what it recovers and what it had to drop, and starts the store writer.

use super::message::QueueEntry;
use super::vhost::VHost;
use crate::store::{Store, StoreError, StoreHandle, StoreOp};
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// The virtual hosts by name.
pub type VHosts = DashMap<String, Arc<VHost>>;

/// Recovers everything in `store`; returns the vhosts (at least "/") and the running writer.
pub fn recover(store: Arc<dyn Store>) -> Result<(VHosts, Arc<StoreHandle>), StoreError> {
    let started = Instant::now();
    let mut recovered = store.load()?;
    let next_message = recovered.messages.keys().next_back().map_or(1, |id| id + 1);
    let next_queue = recovered.queues.iter().map(|q| q.id + 1).max().unwrap_or(1);
    let handle = Arc::new(StoreHandle::start(store, next_message, next_queue));
    let vhosts: VHosts = DashMap::new();
    let vhost = |name: &str| {
        vhosts
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(VHost::new(name, handle.clone())))
            .clone()
    };
    vhost("/");
    for r in &recovered.exchanges {
        if let Err(e) = vhost(&r.vhost).restore_exchange(r) {
            recovered.dropped.push(e);
        }
    }
    let mut total = 0usize;
    let mut live_queues = HashSet::new();
    for r in &recovered.queues {
        let records = recovered.entries.remove(&r.id).unwrap_or_default();
        let mut entries = Vec::with_capacity(records.len());
        for e in records {
            match recovered.messages.get(&e.message) {
                Some(message) => {
                    message.retain_stored();
                    entries.push(QueueEntry {
                        seq: e.seq,
                        message: message.clone(),
                        redelivered: e.redelivered,
                    });
                }
                None => {
                    recovered.dropped.push(format!(
                        "queue '{}': entry {} names missing message {}",
                        r.name, e.seq, e.message
                    ));
                    handle.submit(StoreOp::RemoveEntry {
                        queue: r.id,
                        seq: e.seq,
                    });
                }
            }
        }
        if !entries.is_empty() {
            info!(
                "recovering queue '{}' in vhost '{}': {} messages",
                r.name,
                r.vhost,
                entries.len()
            );
        }
        total += entries.len();
        live_queues.insert(r.id);
        vhost(&r.vhost).restore_queue(r, entries);
    }
    for r in &recovered.bindings {
        if let Err(e) = vhost(&r.vhost).restore_binding(r) {
            recovered.dropped.push(e);
            handle.submit(StoreOp::DeleteBinding(r.clone()));
        }
    }
    collect_garbage(&recovered, &handle, &live_queues);
    for reason in &recovered.dropped {
        warn!("recovery dropped {reason}");
    }
    info!(
        "recovered {} exchanges, {} queues, {} bindings, {total} messages in {:.2?}",
        recovered.exchanges.len(),
        recovered.queues.len(),
        recovered.bindings.len(),
        started.elapsed()
    );
    Ok((vhosts, handle))
}

/// Removes stored messages no queue holds and entries of queues that no longer exist.
fn collect_garbage(
    recovered: &crate::store::Recovered,
    handle: &StoreHandle,
    live_queues: &HashSet<u64>,
) {
    for (queue, entries) in &recovered.entries {
        if !live_queues.contains(queue) {
            for e in entries {
                handle.submit(StoreOp::RemoveEntry {
                    queue: *queue,
                    seq: e.seq,
                });
            }
        }
    }
    for (id, message) in &recovered.messages {
        if message.stored_refs() == 0 {
            handle.submit(StoreOp::RemoveMessage { id: *id });
        }
    }
}
