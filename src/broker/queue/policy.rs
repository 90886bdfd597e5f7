//! A queue's policies over time and size: message TTL (per queue and per message, expiring
//! messages anywhere in memory, not only at the head), `x-expires`, length limits, and
//! handing dead letters to the broker's dead-letter task.

use super::hooks::{DeadLetter, Reason, Wake};
use super::lane::Dropped;
use super::{DeadLetterStrategy, Overflow, Queue, QueueState};
use crate::broker::message::{now_ms, Message, QueueEntry};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a timer wake-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOutcome {
    Idle,
    /// Unused for longer than `x-expires`: the caller deletes the queue.
    Expired,
}

impl Queue {
    /// When a message published now expires here (ms since the epoch, 0: never): the
    /// sooner of the queue's `x-message-ttl` and the message's `expiration`.
    pub(super) fn expiry_of(&self, state: &QueueState, message: &Message) -> u64 {
        let ttl = match (state.effective.message_ttl, message.expiration) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(ttl) => ttl,
                None => return 0,
            },
        };
        now_ms().saturating_add(ttl).max(1)
    }

    pub(super) fn would_overflow(&self, state: &QueueState, size: usize) -> bool {
        let limits = &state.effective;
        limits.max_length.is_some_and(|max| state.len() >= max)
            || limits
                .max_length_bytes
                .is_some_and(|max| state.ready_bytes + size as u64 > max)
    }

    pub(super) fn over_limit(&self, state: &QueueState) -> bool {
        let limits = &state.effective;
        limits.max_length.is_some_and(|max| state.len() > max)
            || limits
                .max_length_bytes
                .is_some_and(|max| state.ready_bytes > max)
    }

    /// drop-head: the oldest ready messages go (dead-lettered as `maxlen`) until the queue is
    /// within its limits.
    /// Past the in-memory window the head may be on disk: those entries stop counting at once
    /// and are dropped as they are read back (for x-max-length-bytes, whose sizes are not
    /// known until then, only what is in memory is dropped).
    pub(super) fn enforce_max_length(self: &Arc<Self>, state: &mut QueueState) {
        if state.effective.overflow != Overflow::DropHead {
            return;
        }
        let mut on_disk = false;
        while self.over_limit(state) {
            let over_count = state
                .effective
                .max_length
                .is_some_and(|max| state.len() > max);
            match state.drop_head(over_count) {
                Some(Dropped::Now(entry)) => self.drop_entry(state, &entry),
                Some(Dropped::WhenRead) => on_disk = true,
                None => break,
            }
        }
        if on_disk {
            self.request_loads(state);
        }
    }

    /// A ready entry x-max-length drops: its records go, and it is dead-lettered.
    pub(super) fn drop_entry(&self, state: &mut QueueState, entry: &QueueEntry) {
        state.ready_bytes = state
            .ready_bytes
            .saturating_sub(entry.message.size() as u64);
        self.forget(state, entry, false);
        self.dead_letter(state, &entry.message, Reason::MaxLen);
    }

    /// Sends a message to the dead-letter exchange, if the queue has one.
    pub(super) fn dead_letter(&self, state: &QueueState, message: &Arc<Message>, reason: Reason) {
        let limits = &state.effective;
        let (Some(exchange), Some(hooks)) = (&limits.dead_letter_exchange, &self.hooks) else {
            return;
        };
        let _ = hooks.dead_letters.send(DeadLetter {
            vhost: self.vhost.clone(),
            queue: self.name.to_string(),
            exchange: exchange.clone(),
            routing_key: limits.dead_letter_routing_key.clone(),
            reason,
            message: message.clone(),
            held: None,
        });
    }

    /// An entry leaves the queue dead-lettered: at most once (forgotten now), or at least
    /// once (a quorum queue with `x-dead-letter-strategy` at-least-once and reject-publish:
    /// kept, on disk, until the dead-letter target has it).
    pub(super) fn dead_letter_entry(
        &self,
        state: &mut QueueState,
        entry: QueueEntry,
        reason: Reason,
    ) {
        let limits = &state.effective;
        let at_least_once = self.is_quorum()
            && limits.dead_letter_strategy == DeadLetterStrategy::AtLeastOnce
            && limits.overflow == Overflow::RejectPublish;
        let (Some(exchange), Some(hooks), true) =
            (&limits.dead_letter_exchange, &self.hooks, at_least_once)
        else {
            self.forget(state, &entry, false);
            self.dead_letter(state, &entry.message, reason);
            return;
        };
        state.dead_letter_held += 1;
        let _ = hooks.dead_letters.send(DeadLetter {
            vhost: self.vhost.clone(),
            queue: self.name.to_string(),
            exchange: exchange.clone(),
            routing_key: limits.dead_letter_routing_key.clone(),
            reason,
            message: entry.message.clone(),
            held: Some(entry),
        });
    }

    /// The dead-letter target took a message this queue held for it (at-least-once): it
    /// leaves for good.
    pub fn dead_lettered(&self, entry: &QueueEntry) {
        let mut state = self.state();
        state.dead_letter_held = state.dead_letter_held.saturating_sub(1);
        let gone = state.deleted;
        self.forget(&mut state, entry, gone);
    }

    /// An expired entry leaves the queue.
    pub(super) fn expire(&self, state: &mut QueueState, entry: QueueEntry) {
        self.dead_letter_entry(state, entry, Reason::Expired);
    }

    /// The next ready entry that has not expired; expired ones met on the way are expired.
    pub(super) fn pop_live(&self, state: &mut QueueState) -> Option<QueueEntry> {
        let now = now_ms();
        loop {
            let entry = state.pop()?;
            state.ready_bytes = state
                .ready_bytes
                .saturating_sub(entry.message.size() as u64);
            if !entry.expired(now) {
                return Some(entry);
            }
            self.expire(state, entry);
        }
    }

    /// Expires every in-memory entry whose time has come, wherever it is in the queue.
    fn expire_due(&self, state: &mut QueueState, now: u64) {
        let expired: Vec<QueueEntry> = state
            .lanes
            .iter_mut()
            .flat_map(|l| l.take_expired(now))
            .collect();
        for entry in expired {
            state.ready_bytes = state
                .ready_bytes
                .saturating_sub(entry.message.size() as u64);
            self.expire(state, entry);
        }
    }

    /// Called by the timer task.
    pub fn on_timer(self: &Arc<Self>) -> TimerOutcome {
        let mut state = self.state();
        state.timer_at = None;
        if state.deleted {
            return TimerOutcome::Idle;
        }
        if let Some(expires) = state.effective.expires {
            if state.consumers.is_empty()
                && state.last_used.elapsed() >= Duration::from_millis(expires)
            {
                return TimerOutcome::Expired;
            }
        }
        self.expire_due(&mut state, now_ms());
        // Expired messages may have been what blocked consumers' credit; dispatching also
        // asks for the next batch from disk, whose expiries are armed when it arrives.
        self.dispatch_locked(&mut state);
        self.arm_locked(&mut state);
        TimerOutcome::Idle
    }

    /// Asks to be woken when `x-expires` would delete the queue, if it has no consumers.
    pub(super) fn schedule_unused(self: &Arc<Self>, state: &mut QueueState) {
        if let Some(expires) = state.effective.expires {
            if state.consumers.is_empty() {
                let at = state.last_used + Duration::from_millis(expires);
                self.schedule(state, at);
            }
        }
    }

    /// Asks to be woken at `at_ms` (ms since the epoch).
    pub(super) fn schedule_ms(self: &Arc<Self>, state: &mut QueueState, at_ms: u64) {
        let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.schedule(state, Instant::now() + delay);
    }

    fn schedule(self: &Arc<Self>, state: &mut QueueState, at: Instant) {
        let Some(hooks) = &self.hooks else { return };
        if state.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        state.timer_at = Some(at);
        let _ = hooks.timers.send(Wake {
            at,
            queue: Arc::downgrade(self),
        });
    }

    /// Asks for the wake-ups the queue's current state needs: its `x-expires` lease and the
    /// earliest expiry among its in-memory messages (after creation, recovery, reads from disk).
    pub fn arm_timers(self: &Arc<Self>) {
        let mut state = self.state();
        self.arm_locked(&mut state);
    }

    pub(super) fn arm_locked(self: &Arc<Self>, state: &mut QueueState) {
        self.schedule_unused(state);
        let next = state
            .lanes
            .iter()
            .flat_map(|l| l.head())
            .filter(|e| e.expires != 0)
            .map(|e| e.expires)
            .min();
        if let Some(at) = next {
            self.schedule_ms(state, at);
        }
    }

    /// A redeclaration (or passive declaration) counts as use for `x-expires`.
    pub fn touch(self: &Arc<Self>) {
        let mut state = self.state();
        state.last_used = Instant::now();
        state.timer_at = None;
        self.schedule_unused(&mut state);
    }
}
