//! Start-up: reads the store back into virtual hosts, exchanges, queues and bindings, refills
//! each durable queue's in-memory window (the rest of a backlog stays on disk), removes what
//! no longer belongs (paged-out transient messages, entries of queues that are gone, messages
//! nothing holds), logs progress and what had to be dropped, and starts the store thread.

use super::delayed::{Held, HELD_STORE_ID, HELD_VHOST};
use super::message::QueueEntry;
use super::queue::QueueHooks;
use super::vhost::VHost;
use crate::store::refs::Refs;
use crate::store::{DedupRecord, MetaRecord, QueueRecord, Store, StoreError, StoreHandle, StoreOp};
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
/// Entries naming a message in `missing` (sorted) are removed too.
fn scan_entries(
    store: &dyn Store,
    live: &HashMap<u64, &QueueRecord>,
    missing: &[u64],
    dropped: &mut Vec<String>,
) -> Result<Scan, StoreError> {
    let mut scan = Scan::default();
    let mut cleanup = Vec::new();
    let unreadable = store.scan_entries(&mut |key, record| {
        let gone = !missing.is_empty() && missing.binary_search(&record.message).is_ok();
        let held = key.queue == HELD_STORE_ID;
        if held && !gone {
            scan.referenced.push(record.message);
            scan.held += 1;
            return Ok(());
        }
        if !held {
            scan.max_queue_id = scan.max_queue_id.max(key.queue);
        }
        if record.transient || gone || !live.contains_key(&key.queue) {
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

/// Message ids entries name (sorted, repeats allowed) whose message is not in the store.
///
/// Entries and message bodies live in two sled instances, each written to its file on its own
/// schedule, so a crash can leave an entry whose message never reached the disk (it was not
/// confirmed: a confirm waits for both) or whose message was already removed (its ack was
/// written, its entry's removal not yet). Such entries must go before queues are counted.
/// This reads every stored message id, so it runs only after a stop that was not clean.
fn missing_messages(store: &dyn Store, referenced: &[u64]) -> Result<Vec<u64>, StoreError> {
    const CHUNK: usize = 64 * 1024;
    let mut missing = Vec::new();
    let mut wanted = referenced.iter().copied().peekable();
    let mut from = 0;
    while wanted.peek().is_some() {
        let ids = store.message_ids(from, CHUNK)?;
        let done = ids.len() < CHUNK;
        let upto = if done { u64::MAX } else { ids[ids.len() - 1] };
        let mut stored = ids.iter().copied().peekable();
        while let Some(&id) = wanted.peek() {
            if id > upto {
                break;
            }
            wanted.next();
            while stored.next_if(|&s| s < id).is_some() {}
            if stored.peek() != Some(&id) && missing.last() != Some(&id) {
                missing.push(id);
            }
        }
        if done {
            break;
        }
        from = upto + 1;
    }
    Ok(missing)
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

/// What recovery hands the broker.
pub struct Recovery {
    /// The vhosts durable definitions name, holding what was recovered.
    pub vhosts: VHosts,
    /// The store, running.
    pub store: Arc<StoreHandle>,
    /// Delayed messages to hold again.
    pub held: Vec<Held>,
    /// The metadata records, for `metadata::Metadata` to read.
    pub meta: Vec<MetaRecord>,
}

/// Recovers everything in `store`: durable definitions into their vhosts, queues refilled.
/// `default_vhost` gets the event exchange before bindings are restored, so that durable
/// bindings from it come back.
pub fn recover(
    store: Arc<dyn Store>,
    queue_window: usize,
    hooks: QueueHooks,
    default_vhost: &str,
) -> Result<Recovery, StoreError> {
    let started = Instant::now();
    let mut recovered = store.load()?;
    // From here on the store changes: until the next clean stop, it is not known clean.
    store.apply(&[StoreOp::MarkClean(false)])?;
    let live: HashMap<u64, &QueueRecord> = recovered.queues.iter().map(|q| (q.id, q)).collect();
    let mut scan = scan_entries(store.as_ref(), &live, &[], &mut recovered.dropped)?;
    if !recovered.clean {
        let missing = missing_messages(store.as_ref(), &scan.referenced)?;
        if !missing.is_empty() {
            warn!(
                "after an unclean stop, {} stored messages named by queue entries were not on \
                 disk (written just before the stop and never confirmed, or already acked); \
                 their entries are removed",
                missing.len()
            );
            let removed = scan.removed;
            scan = scan_entries(store.as_ref(), &live, &missing, &mut recovered.dropped)?;
            scan.removed += removed;
        }
    }
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
                let v = VHost::new(name, handle.clone(), queue_window, hooks.clone());
                if name == default_vhost {
                    v.add_event_exchange();
                }
                Arc::new(v)
            })
            .clone()
    };
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
    let (held_vhosts, meta): (Vec<MetaRecord>, Vec<MetaRecord>) =
        std::mem::take(&mut recovered.meta)
            .into_iter()
            .partition(|r| r.kind == HELD_VHOST);
    let held = held_messages(store.as_ref(), &handle, held, held_vhosts)?;
    Ok(Recovery {
        vhosts,
        store: handle,
        held,
        meta,
    })
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
/// Each names its vhost in a `HELD_VHOST` record; one held before those existed is "/"'s.
fn held_messages(
    store: &dyn Store,
    handle: &StoreHandle,
    count: usize,
    vhost_records: Vec<MetaRecord>,
) -> Result<Vec<Held>, StoreError> {
    let mut vhosts: HashMap<String, String> = vhost_records
        .into_iter()
        .map(|r| (r.key, String::from_utf8_lossy(&r.value).into_owned()))
        .collect();
    let mut held = Vec::with_capacity(count);
    if count > 0 {
        for (key, record, message) in store.read_entries(HELD_STORE_ID, 0, 0, usize::MAX)? {
            let vhost = vhosts.remove(&record.message.to_string());
            match message {
                Some(m) => held.push(Held {
                    due_ms: record.expires,
                    vhost: vhost.unwrap_or_else(|| "/".into()),
                    stored: record.message,
                    message: Arc::new(m),
                }),
                None => handle.submit(StoreOp::RemoveEntry { key }),
            }
        }
    }
    // Records whose message is gone (a crash between two writes) go too.
    for key in vhosts.into_keys() {
        handle.submit(StoreOp::DeleteMeta {
            kind: HELD_VHOST,
            key,
        });
    }
    info!("recovered {} delayed messages", held.len());
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use crate::broker::Broker;
    use crate::config::Config;
    use crate::store::memory::MemoryStore;
    use crate::store::{EntryKey, EntryRecord};

    fn message() -> Arc<Message> {
        let props = warren_amqp::BasicProperties::default().with_delivery_mode(2);
        let mut raw = bytes::BytesMut::new();
        warren_amqp::encode::properties(&mut raw, &props);
        Message::new("".into(), "q".into(), &props, raw.freeze(), "m".into())
    }

    /// A queue whose entries name messages 1 to 5, of which `stored` are in the store.
    fn store_with_entries(stored: &[u64], clean: bool) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::default());
        let mut ops = vec![StoreOp::PutQueue(QueueRecord {
            vhost: "/".into(),
            name: "q".into(),
            id: 1,
            auto_delete: false,
            arguments: Default::default(),
        })];
        for &id in stored {
            ops.push(StoreOp::PutMessage {
                id,
                message: message(),
            });
        }
        for seq in 0..5 {
            ops.push(StoreOp::PutEntry {
                key: EntryKey {
                    queue: 1,
                    lane: 0,
                    seq,
                },
                record: EntryRecord {
                    message: seq + 1,
                    redelivered: false,
                    transient: false,
                    expires: 0,
                    delivery_count: 0,
                },
            });
        }
        ops.push(StoreOp::MarkClean(clean));
        store.apply(&ops).unwrap();
        store
    }

    fn recovered_count(store: Arc<MemoryStore>) -> u32 {
        // A window of 2: the entry of the missing message is beyond it, still on disk.
        let config = Config {
            queue_window: 2,
            ..Config::default()
        };
        let broker = Broker::with_store(config, store).unwrap();
        let queue = broker.vhost("/").unwrap().queue("q").unwrap();
        let count = queue.message_count();
        broker.store.close();
        count
    }

    #[test]
    fn after_an_unclean_stop_entries_whose_message_is_not_on_disk_are_not_counted() {
        assert_eq!(recovered_count(store_with_entries(&[1, 2, 4, 5], false)), 4);
        assert_eq!(
            recovered_count(store_with_entries(&[1, 2, 3, 4, 5], false)),
            5
        );
    }

    #[test]
    fn missing_messages_are_found_once_each() {
        let store = MemoryStore::default();
        let ops: Vec<StoreOp> = [1, 2, 5, 6]
            .into_iter()
            .map(|id| StoreOp::PutMessage {
                id,
                message: message(),
            })
            .collect();
        store.apply(&ops).unwrap();
        let missing = missing_messages(&store, &[1, 2, 2, 3, 3, 5, 7]).unwrap();
        assert_eq!(missing, [3, 7]);
        assert!(missing_messages(&store, &[]).unwrap().is_empty());
    }
}
