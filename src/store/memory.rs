//! A store in memory, for tests where disk is not the point. It keeps what a real store keeps,
//! so a broker reopened on the same `MemoryStore` recovers like one reopened on disk.

use super::{EntryRecord, Recovered, Store, StoreError, StoreOp};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    exchanges: BTreeMap<(String, String), super::ExchangeRecord>,
    queues: BTreeMap<(String, String), super::QueueRecord>,
    bindings: Vec<super::BindingRecord>,
    messages: BTreeMap<u64, Arc<crate::broker::message::Message>>,
    entries: BTreeMap<(u64, u64), (u64, bool)>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Recovered, StoreError> {
        let s = self.state.lock().map_err(|_| StoreError::Closed)?;
        let mut out = Recovered {
            exchanges: s.exchanges.values().cloned().collect(),
            queues: s.queues.values().cloned().collect(),
            bindings: s.bindings.clone(),
            messages: s.messages.clone(),
            ..Recovered::default()
        };
        for (&(queue, seq), &(message, redelivered)) in &s.entries {
            out.entries.entry(queue).or_default().push(EntryRecord {
                seq,
                message,
                redelivered,
            });
        }
        Ok(out)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut s = self.state.lock().map_err(|_| StoreError::Closed)?;
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
                StoreOp::DeleteQueue { vhost, name, id } => {
                    s.queues.remove(&(vhost, name));
                    s.entries.retain(|(q, _), _| *q != id);
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
                StoreOp::PutEntry {
                    queue,
                    seq,
                    message,
                    redelivered,
                } => {
                    s.entries.insert((queue, seq), (message, redelivered));
                }
                StoreOp::RemoveEntry { queue, seq } => {
                    s.entries.remove(&(queue, seq));
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
