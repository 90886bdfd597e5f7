//! Start-up: reads the store back into virtual hosts, exchanges, queues and bindings, refills
//! each durable queue's in-memory window (the rest of a backlog stays on disk), removes what
//! no longer belongs (paged-out transient messages, entries of queues that are gone, messages
//! nothing holds), logs progress and what had to be dropped, and starts the store thread.

use super::delayed::{Held, HELD_STORE_ID};
use super::message::QueueEntry;
use super::queue::QueueHooks;
use super::vhost::VHost;
use crate::store::refs::Refs;
use crate::store::{DedupRecord, QueueRecord, Store, StoreError, StoreHandle, StoreOp};
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// The virtual hosts by name.
pub type VHosts = DashMap<String, Arc<VHost>>;

/// What recovery needs of one lane of a durable queue: the rest stays on disk.
#[derive(Debug, Clone, Copy)]
struct LaneSummary {
    first: u64,
    last: u64,
    count: u64,
}

/// A durable queue's lanes by priority level.
type Lanes = BTreeMap<u8, LaneSummary>;

/// Entries that are removed while they are scanned, in batches of this many.
const CLEANUP_BATCH: usize = 4096;

/// What one pass over every stored entry finds.
#[derive(Default)]
struct Scan {
    lanes: HashMap<u64, Lanes>,
    /// The message id of every entry kept: sorted, it gives holder counts and orphans.
    referenced: Vec<u64>,
    max_queue_id: u64,
    held: usize,
    removed: usize,
}

/// Goes once over every entry: summarises the lanes of live queues, notes the messages
/// they hold, and removes entries of paged-out transient messages and of queues that are
/// gone. Memory stays proportional to the number of messages, 8 bytes each.
fn scan_entries(
    store: &dyn Store,
    live: &HashMap<u64, &QueueRecord>,
    dropped: &mut Vec<String>,
) -> Result<Scan, StoreError> {
    let mut scan = Scan::default();
    let mut cleanup = Vec::new();
    let unreadable = store.scan_entries(&mut |key, record| {
        if key.queue == HELD_STORE_ID {
            scan.referenced.push(record.message);
            scan.held += 1;
            return Ok(());
        }
        scan.max_queue_id = scan.max_queue_id.max(key.queue);
        if record.transient || !live.contains_key(&key.queue) {
            cleanup.push(StoreOp::RemoveEntry { key });
            if cleanup.len() >= CLEANUP_BATCH {
                scan.removed += cleanup.len();
                store.apply(&cleanup)?;
                cleanup.clear();
            }
            return Ok(());
        }
        scan.referenced.push(record.message);
        let lane = scan.lanes.entry(key.queue).or_default();
        lane.entry(key.lane)
            .and_modify(|l| {
                l.last = key.seq;
                l.count += 1;
            })
            .or_insert(LaneSummary {
                first: key.seq,
                last: key.seq,
                count: 1,
            });
        Ok(())
    })?;
    dropped.extend(unreadable);
    scan.removed += cleanup.len();
    store.apply(&cleanup)?;
    scan.referenced.sort_unstable();
    Ok(scan)
}

/// Holder counts above one (a message in several queues); one is what the store assumes.
fn shared_holders(referenced: &[u64]) -> Refs {
    let refs = Refs::default();
    for run in referenced.chunk_by(|a, b| a == b) {
        if run.len() > 1 {
            refs.set(run[0], run.len() as u32);
        }
    }
    refs
}

/// Recovers everything in `store`; returns the vhosts (at least "/") and the running store.
pub fn recover(
    store: Arc<dyn Store>,
    queue_window: usize,
    hooks: QueueHooks,
) -> Result<(VHosts, Arc<StoreHandle>, Vec<Held>), StoreError> {
    let started = Instant::now();
    let mut recovered = store.load()?;
    // From here on the store changes: until the next clean stop, it is not known clean.
    store.apply(&[StoreOp::MarkClean(false)])?;
    let live: HashMap<u64, &QueueRecord> = recovered.queues.iter().map(|q| (q.id, q)).collect();
    let scan = scan_entries(store.as_ref(), &live, &mut recovered.dropped)?;
    let Scan {
        mut lanes,
        referenced,
        held,
        ..
    } = scan;
    let max_queue_id = recovered
        .queues
        .iter()
        .map(|q| q.id)
        .chain([scan.max_queue_id])
        .max()
        .unwrap_or(0);
    let mut cleanup = Vec::new();
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
    if scan.removed + cleanup.len() > 0 {
        info!(
            "removed {} records left from before the restart",
            scan.removed + cleanup.len()
        );
    }
    store.apply(&cleanup)?;
    let refs = shared_holders(&referenced);
    let next_message = recovered.max_message_id + 1;
    let handle = Arc::new(StoreHandle::start(
        store.clone(),
        next_message,
        max_queue_id + 1,
        refs,
    ));
    // Messages nothing holds (left by a crash between writes) are found and removed on the
    // store thread after the broker is up: reading every message back would delay the start.
    // After a clean stop there are none, unless entries were just removed (those of paged-out
    // transient messages, which leave their messages behind).
    if !recovered.clean || scan.removed > 0 {
        handle.collect_orphans(referenced, recovered.max_message_id);
    }
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
    let held = held_messages(store.as_ref(), &handle, held)?;
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
    for (lane, summary) in lanes {
        next_seq = next_seq.max(summary.last + 1);
        let mut head = Vec::new();
        let (mut last_read, mut read) = (None, 0u64);
        for (key, record, message) in store.read_entries(r.id, lane, summary.first, window)? {
            last_read = Some(key.seq);
            read += 1;
            match message {
                Some(m) => head.push(QueueEntry::from_stored(key, record, m)),
                None => {
                    dropped.push(format!(
                        "queue '{}': entry {} names message {}, which is not on disk (a crash \
                         cut its write short before it was confirmed, or the store is damaged)",
                        r.name, key.seq, record.message
                    ));
                    handle.submit(StoreOp::RemoveEntry { key });
                    handle.release_message(record.message);
                }
            }
        }
        let on_disk = summary.count.saturating_sub(read);
        let tail_start = last_read.map_or(summary.first, |seq| seq + 1);
        count += head.len() as u64 + on_disk;
        while out.len() < usize::from(lane) {
            out.push((Vec::new(), 0, 0));
        }
        out.push((head, tail_start, on_disk));
    }
    Ok((out, next_seq, count))
}

/// Messages a delayed exchange was holding, read back to be held again until they are due.
fn held_messages(
    store: &dyn Store,
    handle: &StoreHandle,
    count: usize,
) -> Result<Vec<Held>, StoreError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut held = Vec::with_capacity(count);
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
