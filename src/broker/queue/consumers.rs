//! Consumers of a queue: who may join (exclusive consumers), leaving (auto-delete, the
//! single active consumer's successor), and who gets the next message (priorities,
//! round-robin).

use super::{ConnectionId, Consumer};
use super::{ConsumerRemoval, Queue, QueueState};
use crate::error::{AmqpError, AmqpResult};
use std::sync::Arc;
use tokio::time::Instant;

impl Queue {
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> AmqpResult<()> {
        let mut state = self.state();
        if state.deleted {
            return Err(AmqpError::not_found(format!(
                "no queue '{}' in vhost '{}'",
                self.name, self.vhost
            )));
        }
        let exclusive_taken = state.consumers.iter().any(|c| c.exclusive);
        if exclusive_taken || (consumer.exclusive && !state.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        // Highest priority first; registration order within a priority. A single active
        // consumer stays active whatever comes later (RabbitMQ 3.10), so there order is
        // registration only.
        let at = if self.args.single_active_consumer {
            state.consumers.len()
        } else {
            state
                .consumers
                .partition_point(|c| c.priority >= consumer.priority)
        };
        state.consumers.insert(at, consumer);
        state.last_used = Instant::now();
        if at < state.next_consumer {
            state.next_consumer += 1;
        }
        self.dispatch_locked(&mut state);
        Ok(())
    }

    pub fn remove_consumer(
        self: &Arc<Self>,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) -> ConsumerRemoval {
        let mut state = self.state();
        let before = state.consumers.len();
        state.consumers.retain(|c| {
            !(c.connection == connection && c.channel == channel && c.tag.as_str() == tag)
        });
        if state.consumers.len() == before {
            return ConsumerRemoval::NotFound;
        }
        if state.next_consumer >= state.consumers.len() {
            state.next_consumer = 0;
        }
        state.last_used = Instant::now();
        if state.consumers.is_empty() {
            self.flow.update(state.len(), false);
            self.schedule_unused(&mut state);
        } else {
            // A single active consumer's successor takes over here.
            self.dispatch_locked(&mut state);
        }
        if self.auto_delete && state.consumers.is_empty() && !state.deleted {
            ConsumerRemoval::RemovedLastOfAutoDelete
        } else {
            ConsumerRemoval::Removed
        }
    }
}

impl QueueState {
    /// The consumer that gets the next message: among the highest-priority consumers with
    /// credit, the next in round-robin order. With a single active consumer, only the first.
    pub(super) fn next_ready_consumer(&mut self, single_active: bool) -> Option<Arc<Consumer>> {
        if single_active {
            let first = self.consumers.first()?;
            return first.try_reserve().then(|| first.clone());
        }
        let n = self.consumers.len();
        let mut group_start = 0;
        while group_start < n {
            let priority = self.consumers[group_start].priority;
            let group_end = group_start
                + self.consumers[group_start..].partition_point(|c| c.priority == priority);
            let len = group_end - group_start;
            let offset = if (group_start..group_end).contains(&self.next_consumer) {
                self.next_consumer - group_start
            } else {
                0
            };
            for i in 0..len {
                let idx = group_start + (offset + i) % len;
                if self.consumers[idx].try_reserve() {
                    self.next_consumer = group_start + (idx - group_start + 1) % len;
                    return Some(self.consumers[idx].clone());
                }
            }
            group_start = group_end;
        }
        None
    }
}
