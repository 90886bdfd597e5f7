//! A store in memory, for tests where disk is not the point. It keeps what a real store keeps,
//! so a broker reopened on the same `MemoryStore` recovers like one reopened on disk.

use super::paged::merge_lane;
use super::Message;
use super::{
    BindingRecord, DedupRecord, EntryKey, EntryRecord, ExchangeRecord, LoadedEntry, MetaKind,
    MetaRecord, QueueRecord, Recovered, Store, StoreError, StoreOp,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    exchanges: BTreeMap<(String, String), ExchangeRecord>,
    queues: BTreeMap<(String, String), QueueRecord>,
    bindings: Vec<BindingRecord>,
    messages: BTreeMap<u64, Arc<Message>>,
    entries: BTreeMap<EntryKey, EntryRecord>,
    /// Messages paged out that are not kept across a restart.
    paged: BTreeMap<EntryKey, (EntryRecord, Message)>,
    dedup: BTreeMap<(u64, Box<[u8]>), DedupRecord>,
    meta: BTreeMap<(MetaKind, String), MetaRecord>,
    clean: bool,
}

impl MemoryStore {
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Closed)
    }
}

fn copy(m: &Message) -> Message {
    let props = warren_amqp::protocol::basic::parse_properties(&m.raw_properties[..])
        .map(|(_, p)| p)
        .unwrap_or_default();
    Message::from_parts(
        m.exchange.clone(),
        m.routing_key.clone(),
        &props,
        m.raw_properties.clone(),
        m.body.clone(),
    )
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Recovered, StoreError> {
        let mut s = self.state()?;
        // Paged messages do not outlive a run, as on disk.
        s.paged.clear();
        Ok(Recovered {
            exchanges: s.exchanges.values().cloned().collect(),
            queues: s.queues.values().cloned().collect(),
            bindings: s.bindings.clone(),
            max_message_id: s.messages.keys().next_back().copied().unwrap_or(0),
            dedup_keys: s.dedup.values().cloned().collect(),
            meta: s.meta.values().cloned().collect(),
            dropped: Vec::new(),
            clean: s.clean,
        })
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for op in ops {
            match op.clone() {
                StoreOp::PutExchange(r) => {
                    s.exchanges.insert((r.vhost.clone(), r.name.clone()), r);
                }
                StoreOp::DeleteExchange { vhost, name } => {
                    s.exchanges.remove(&(vhost, name));
                }
                StoreOp::PutQueue(r) => {
                    s.queues.insert((r.vhost.clone(), r.name.clone()), r);
                }
                StoreOp::DeleteQueue { vhost, name } => {
                    s.queues.remove(&(vhost, name));
                }
                StoreOp::PutBinding(r) => {
                    if !s.bindings.contains(&r) {
                        s.bindings.push(r);
                    }
                }
                StoreOp::DeleteBinding(r) => s.bindings.retain(|b| *b != r),
                StoreOp::PutMessage { id, message } => {
                    s.messages.insert(id, message);
                }
                StoreOp::RemoveMessage { id } => {
                    s.messages.remove(&id);
                }
                StoreOp::PutEntry { key, record } => {
                    s.entries.insert(key, record);
                }
                StoreOp::RemoveEntry { key } => {
                    s.entries.remove(&key);
                }
                StoreOp::PageOut {
                    key,
                    expires,
                    redelivered,
                    message,
                } => {
                    let record = EntryRecord::paged(expires, redelivered);
                    s.paged.insert(key, (record, copy(&message)));
                }
                StoreOp::MarkClean(clean) => s.clean = clean,
                StoreOp::PutMeta(r) => {
                    s.meta.insert((r.kind, r.key.clone()), r);
                }
                StoreOp::DeleteMeta { kind, key } => {
                    s.meta.remove(&(kind, key));
                }
                StoreOp::PutDedupKey(r) => {
                    s.dedup.insert((r.queue, r.key.clone()), r);
                }
                StoreOp::RemoveDedupKey { queue, key } => {
                    s.dedup.remove(&(queue, key));
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn read_entries(
        &self,
        queue: u64,
        lane: u8,
        from: u64,
        max: usize,
    ) -> Result<Vec<LoadedEntry>, StoreError> {
        let mut s = self.state()?;
        let range = EntryKey {
            queue,
            lane,
            seq: from,
        }..=EntryKey {
            queue,
            lane,
            seq: u64::MAX,
        };
        let stored = s
            .entries
            .range(range.clone())
            .take(max)
            .map(|(k, r)| (*k, *r, s.messages.get(&r.message).map(|m| copy(m))))
            .collect();
        merge_lane(stored, max, |below| {
            let next = s.paged.range(range.clone()).next().map(|(k, _)| *k);
            Ok(next
                .filter(|k| below.is_none_or(|b| k.seq < b))
                .and_then(|k| s.paged.remove(&k).map(|(r, m)| (k, r, Some(m)))))
        })
    }

    fn message_ids(&self, from: u64, max: usize) -> Result<Vec<u64>, StoreError> {
        let s = self.state()?;
        Ok(s.messages
            .range(from..)
            .take(max)
            .map(|(id, _)| *id)
            .collect())
    }

    fn scan_entries(
        &self,
        visit: &mut dyn FnMut(EntryKey, EntryRecord) -> Result<(), StoreError>,
    ) -> Result<Vec<String>, StoreError> {
        // Copied first: `visit` may apply changes, which takes the lock.
        let entries: Vec<(EntryKey, EntryRecord)> = self
            .state()?
            .entries
            .iter()
            .map(|(k, r)| (*k, *r))
            .collect();
        for (key, record) in entries {
            visit(key, record)?;
        }
        Ok(Vec::new())
    }

    fn take_entries(
        &self,
        first: EntryKey,
        last: EntryKey,
        max: usize,
    ) -> Result<Vec<(EntryKey, EntryRecord)>, StoreError> {
        let mut s = self.state()?;
        let paged: Vec<EntryKey> = s.paged.range(first..=last).map(|(k, _)| *k).collect();
        for key in paged {
            s.paged.remove(&key);
        }
        let keys: Vec<EntryKey> = s
            .entries
            .range(first..=last)
            .take(max)
            .map(|(k, _)| *k)
            .collect();
        Ok(keys
            .into_iter()
            .filter_map(|k| s.entries.remove(&k).map(|r| (k, r)))
            .collect())
    }
}
