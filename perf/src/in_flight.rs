//! A window of lapin operations in flight: each is polled once when it joins, which is when lapin
//! queues its frames, so frames leave in the order operations were started, and none is awaited
//! alone. Producers keep publishes and confirms here, consumers their acks.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

type Op<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub struct InFlight<T> {
    /// Started and not finished, oldest first: lapin completes them in about this order.
    pending: VecDeque<Op<T>>,
    /// Finished on their first poll, waiting to be collected.
    done: VecDeque<T>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        Self {
            pending: VecDeque::new(),
            done: VecDeque::new(),
        }
    }
}

impl<T> InFlight<T> {
    /// Operations started and not yet collected.
    pub fn len(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts an operation: polls it once with the caller's task, so it wakes the caller when it
    /// makes progress.
    pub async fn start(&mut self, op: impl Future<Output = T> + Send + 'static) {
        let mut op: Op<T> = Box::pin(op);
        let first = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(output) => self.done.push_back(output),
            Poll::Pending => self.pending.push_back(op),
        }
    }

    /// The next finished operation, if one is finished now.
    pub async fn try_next(&mut self) -> Option<T> {
        if let Some(output) = self.done.pop_front() {
            return Some(output);
        }
        let front = self.pending.front_mut()?;
        let polled = poll_fn(|cx| Poll::Ready(front.as_mut().poll(cx))).await;
        match polled {
            Poll::Ready(output) => {
                self.pending.pop_front();
                Some(output)
            }
            Poll::Pending => None,
        }
    }

    /// Waits for the oldest operation to finish; never resolves when nothing is in flight, so it
    /// can sit in a `select!` beside other events.
    pub async fn next(&mut self) -> T {
        if let Some(output) = self.done.pop_front() {
            return output;
        }
        match self.pending.front_mut() {
            Some(front) => {
                let output = front.as_mut().await;
                self.pending.pop_front();
                output
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operations_finish_in_order_and_are_counted() {
        let mut ops = InFlight::default();
        ops.start(async { 1 }).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
        ops.start(async move { rx.await.unwrap() }).await;
        assert_eq!(ops.len(), 2);
        assert_eq!(ops.try_next().await, Some(1));
        assert_eq!(ops.try_next().await, None);
        tx.send(2).unwrap();
        assert_eq!(ops.next().await, 2);
        assert!(ops.is_empty());
    }
}
