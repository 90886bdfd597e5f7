//! Start-up: reads the store back into virtual hosts, exchanges, queues and bindings, refills
//! each durable queue's in-memory window (the rest of a backlog stays on disk), removes what
//! no longer belongs (paged-out transient messages, entries of queues that are gone, messages
//! nothing holds), logs progress and what had to be dropped, and starts the store thread.

use super::delayed::{Held, HELD_STORE_ID};
use super::message::QueueEntry;
use super::queue::QueueHooks;
use super::vhost::VHost;
use crate::store::refs::Refs;
use crate::store::{
    DedupRecord, EntryKey, EntryRecord, QueueRecord, Store, StoreError, StoreHandle, StoreOp,
};
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// The virtual hosts by name.
pub type VHosts = DashMap<String, Arc<VHost>>;

/// A durable queue's entries, per lane, in sequence order.
type Lanes = BTreeMap<u8, Vec<(EntryKey, EntryRecord)>>;

/// Recovers everything in `store`; returns the vhosts (at least "/") and the running store.
pub fn recover(
    store: Arc<dyn Store>,
    queue_window: usize,
    hooks: QueueHooks,
) -> Result<(VHosts, Arc<StoreHandle>, Vec<Held>), StoreError> {
    let started = Instant::now();
    let mut recovered = store.load()?;
    let live: HashMap<u64, &QueueRecord> = recovered.queues.iter().map(|q| (q.id, q)).collect();
    let mut cleanup = Vec::new();
    let mut lanes: HashMap<u64, Lanes> = HashMap::new();
    let mut holders: HashMap<u64, u32> = HashMap::new();
    let mut max_queue_id = recovered.queues.iter().map(|q| q.id).max().unwrap_or(0);
    let mut held_entries = Vec::new();
    for (key, record) in std::mem::take(&mut recovered.entries) {
        if key.queue == HELD_STORE_ID {
            *holders.entry(record.message).or_default() += 1;
            held_entries.push(record);
            continue;
        }
        max_queue_id = max_queue_id.max(key.queue);
        if record.transient || !live.contains_key(&key.queue) {
            cleanup.push(StoreOp::RemoveEntry { key });
            continue;
        }
        *holders.entry(record.message).or_default() += 1;
        lanes
            .entry(key.queue)
            .or_default()
            .entry(key.lane)
            .or_default()
            .push((key, record));
    }
    let mut dedup_keys: HashMap<u64, Vec<DedupRecord>> = HashMap::new();
    for r in std::mem::take(&mut recovered.dedup_keys) {
        match live.contains_key(&r.queue) {
            true => dedup_keys.entry(r.queue).or_default().push(r),
            false => cleanup.push(StoreOp::RemoveDedupKey {
                queue: r.queue,
                key: r.key,
            }),
        }
    }
    for id in store.message_ids()? {
        if !holders.contains_key(&id) {
            cleanup.push(StoreOp::RemoveMessage { id });
        }
    }
    if !cleanup.is_empty() {
        info!(
            "removing {} records left from before the restart",
            cleanup.len()
        );
        store.apply(&cleanup)?;
    }
    let refs = Refs::default();
    for (id, n) in &holders {
        refs.set(*id, *n);
    }
    let next_message = recovered.max_message_id + 1;
    let handle = Arc::new(StoreHandle::start(
        store.clone(),
        next_message,
        max_queue_id + 1,
        refs,
    ));
    let vhosts: VHosts = DashMap::new();
    let vhost = |name: &str| {
        vhosts
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(VHost::new(
                    name,
                    handle.clone(),
                    queue_window,
                    hooks.clone(),
                ))
            })
            .clone()
    };
    vhost("/");
    for r in &recovered.exchanges {
        if let Err(e) = vhost(&r.vhost).restore_exchange(r) {
            recovered.dropped.push(e);
        }
    }
    let mut total = 0u64;
    for r in &recovered.queues {
        let queue = vhost(&r.vhost).restore_queue(r);
        let queue_lanes = lanes.remove(&r.id).unwrap_or_default();
        let (refilled, next_seq, count) = refill(
            store.as_ref(),
            &handle,
            r,
            queue_lanes,
            queue_window,
            &mut recovered.dropped,
        )?;
        if count > 0 {
            info!(
                "recovering queue '{}' in vhost '{}': {count} messages",
                r.name, r.vhost
            );
        }
        total += count;
        queue.recover(refilled, next_seq);
        if let Some(mut keys) = dedup_keys.remove(&r.id) {
            keys.sort_by_key(|k| k.seen_at);
            queue.restore_dedup_keys(keys);
        }
        queue.arm_timers();
    }
    for r in &recovered.bindings {
        if let Err(e) = vhost(&r.vhost).restore_binding(r) {
            recovered.dropped.push(e);
            handle.submit(StoreOp::DeleteBinding(r.clone()));
        }
    }
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
    let held = held_messages(store.as_ref(), &handle, held_entries)?;
    Ok((vhosts, handle, held))
}

/// One lane refilled: the entries in memory, the first sequence left on disk, and how many.
type RefilledLane = (Vec<QueueEntry>, u64, u64);

/// Reads each lane's first window of messages into memory and leaves the rest on disk.
/// Returns the lanes, the queue's next sequence number and its message count.
fn refill(
    store: &dyn Store,
    handle: &StoreHandle,
    r: &QueueRecord,
    lanes: Lanes,
    window: usize,
    dropped: &mut Vec<String>,
) -> Result<(Vec<RefilledLane>, u64, u64), StoreError> {
    let mut out = Vec::new();
    let mut next_seq = 0;
    let mut count = 0;
    for (lane, entries) in lanes {
        let Some(first) = entries.first() else {
            continue;
        };
        next_seq = next_seq.max(entries.last().map_or(0, |(k, _)| k.seq + 1));
        let mut head = Vec::new();
        for (key, record, message) in store.read_entries(r.id, lane, first.0.seq, window)? {
            match message {
                Some(m) => head.push(QueueEntry {
                    seq: key.seq,
                    message: Arc::new(m.with_store_id(record.message)),
                    redelivered: record.redelivered,
                    lane,
                    disk: record.message,
                    expires: record.expires,
                }),
                None => {
                    dropped.push(format!(
                        "queue '{}': entry {} names missing message {}",
                        r.name, key.seq, record.message
                    ));
                    handle.submit(StoreOp::RemoveEntry { key });
                    handle.release_message(record.message);
                }
            }
        }
        let on_disk = entries.len().saturating_sub(window);
        let tail_start = entries.get(window).map_or(0, |(k, _)| k.seq);
        count += (head.len() + on_disk) as u64;
        while out.len() < usize::from(lane) {
            out.push((Vec::new(), 0, 0));
        }
        out.push((head, tail_start, on_disk as u64));
    }
    Ok((out, next_seq, count))
}

/// Messages a delayed exchange was holding, read back to be held again until they are due.
fn held_messages(
    store: &dyn Store,
    handle: &StoreHandle,
    entries: Vec<EntryRecord>,
) -> Result<Vec<Held>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut held = Vec::with_capacity(entries.len());
    for (key, record, message) in store.read_entries(HELD_STORE_ID, 0, 0, usize::MAX)? {
        match message {
            Some(m) => held.push(Held {
                due_ms: record.expires,
                vhost: "/".into(),
                stored: record.message,
                message: Arc::new(m),
            }),
            None => handle.submit(StoreOp::RemoveEntry { key }),
        }
    }
    info!("recovered {} delayed messages", held.len());
    Ok(held)
}
