//! The delivery acknowledgement timeout (RabbitMQ's `consumer_timeout`): a channel that holds
//! a delivery unacknowledged for longer than its consumer's timeout is closed with 406
//! PRECONDITION_FAILED, which requeues what it held.
//!
//! Each unacked delivery carries its deadline. The connection keeps one timer, armed for the
//! earliest deadline it knows of; acks do not disarm it (that would cost every ack a search),
//! so when it fires it scans the channels, closes those with an expired delivery and rearms
//! for the earliest deadline left. Deadlines only grow as deliveries go out, so the timer is
//! rarely moved and fires about once per timeout period on a busy connection.

use super::channel::{ChannelState, Deadline};
use super::Connection;
use crate::error::AmqpError;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tracing::warn;

/// The connection's one timer for the earliest deadline.
pub(super) struct AckTimer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl AckTimer {
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }

    /// Makes sure the timer fires no later than `at`.
    pub fn arm(&mut self, at: Instant) {
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            self.sleep.as_mut().reset(at);
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Completes when the armed time comes (poll only while armed).
    pub async fn fired(&mut self) {
        (&mut self.sleep).await;
        self.armed = None;
    }
}

impl Connection {
    /// Records a new unacked delivery's deadline with the timer.
    pub(super) fn track_deadline(&mut self, deadline: Option<Deadline>) {
        if let Some(d) = deadline {
            self.ack_timer.arm(d.at);
        }
    }

    /// The timer fired: channels holding an expired delivery are closed; the timer is
    /// rearmed for the earliest deadline still pending.
    pub(super) fn on_ack_timer(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for (&id, channel) in &self.channels {
            if channel.state != ChannelState::Open {
                continue;
            }
            let deadlines = channel.unacked.iter().filter_map(|u| u.deadline);
            let mut earliest: Option<Deadline> = None;
            for d in deadlines {
                if earliest.is_none_or(|e| d.at < e.at) {
                    earliest = Some(d);
                }
            }
            match earliest {
                Some(d) if d.at <= now => expired.push((id, d.timeout)),
                Some(d) => next = Some(next.map_or(d.at, |n| n.min(d.at))),
                None => {}
            }
        }
        for (id, timeout) in expired {
            let ms = timeout.as_millis();
            warn!(
                peer = %self.peer,
                channel = id,
                "consumer on channel {id} timed out waiting for delivery acknowledgement \
                 (timeout {ms} ms): closing the channel, its deliveries are requeued"
            );
            self.fail(id, timed_out(id, ms));
        }
        if let Some(at) = next {
            self.ack_timer.arm(at);
        }
    }
}

/// RabbitMQ's error, word for word: clients and their users search for this text.
fn timed_out(channel: u16, ms: u128) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "delivery acknowledgement on channel {channel} timed out. Timeout value used: {ms} ms. \
         This timeout value can be configured, see consumers doc guide to learn more"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_rabbitmqs() {
        assert_eq!(
            timed_out(3, 5000).text,
            "PRECONDITION_FAILED - delivery acknowledgement on channel 3 timed out. Timeout \
             value used: 5000 ms. This timeout value can be configured, see consumers doc guide \
             to learn more"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_moves_only_earlier() {
        let mut timer = AckTimer::new();
        assert!(!timer.is_armed());
        let start = Instant::now();
        timer.arm(start + Duration::from_secs(10));
        timer.arm(start + Duration::from_secs(20));
        timer.fired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
        assert!(!timer.is_armed());
        timer.arm(start + Duration::from_secs(30));
        timer.arm(start + Duration::from_secs(15));
        timer.fired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(15));
    }
}
