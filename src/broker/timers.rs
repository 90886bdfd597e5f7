//! One task for every queue's timed work: message TTL (expiring messages anywhere in the
//! in-memory part of a queue, not only at its head) and `x-expires` (deleting queues left
//! unused). A queue asks to be woken at a time; the task wakes it then, and the queue says
//! when it next needs waking.

use super::queue::{Queue, TimerOutcome, Wake};
use super::Broker;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

/// Runs until the broker is gone.
pub async fn run(mut requests: mpsc::UnboundedReceiver<Wake>, broker: Weak<Broker>) {
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut queues: std::collections::HashMap<u64, Weak<Queue>> = std::collections::HashMap::new();
    let mut next_id = 0u64;
    loop {
        let sleep_until = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            request = requests.recv() => {
                let Some(Wake { at, queue }) = request else { return };
                due.push(Reverse((at, next_id)));
                queues.insert(next_id, queue);
                next_id += 1;
            }
            _ = sleep_or_forever(sleep_until) => {
                let now = Instant::now();
                while let Some(Reverse((at, id))) = due.peek().copied() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    if let Some(queue) = queues.remove(&id).and_then(|q| q.upgrade()) {
                        wake(&queue, &broker);
                    }
                }
            }
        }
    }
}

async fn sleep_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn wake(queue: &Arc<Queue>, broker: &Weak<Broker>) {
    if queue.on_timer() == TimerOutcome::Expired {
        let Some(vhost) = broker.upgrade().and_then(|b| b.vhost(&queue.vhost)) else {
            return;
        };
        info!(
            "queue '{}' in vhost '{}' expired unused",
            queue.name, queue.vhost
        );
        vhost.remove_queue(queue, super::events::INTERNAL_USER);
    }
}
