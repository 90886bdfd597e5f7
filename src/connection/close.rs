//! Ending things: errors turned into channel.close or connection.close (the one place that
//! decides which), channel teardown that requeues unacked deliveries, and connection cleanup.

use super::channel::{self, requeue_all, ChannelState};
use super::{Connection, ConnectionEnd, CLOSE_TIMEOUT};
use crate::broker::events::INTERNAL_USER;
use crate::broker::queue::ConnectionEvent;
use crate::broker::queue::{ConsumerRemoval, Queue};
use crate::error::AmqpError;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use warren_amqp::frame::FrameKind;
use warren_amqp::protocol::{channel as ch, connection as conn};
use warren_amqp::{short_string, AMQPClass};

impl Connection {
    /// The single place errors become closes: soft errors close the channel, hard ones (and
    /// any error on channel 0) the connection.
    pub(super) fn fail(&mut self, channel_id: u16, error: AmqpError) {
        if channel_id == 0 || error.closes_connection() {
            warn!(peer = %self.peer, "closing connection: {error}");
            self.closing = Some(error);
            self.send_connection_close();
            return;
        }
        debug!(peer = %self.peer, channel = channel_id, "closing channel: {error}");
        self.flush_confirms();
        self.close_channel(channel_id);
        if let Some(channel) = self.channels.get_mut(&channel_id) {
            // The assembler keeps its state: a refused publish's body frames are still coming.
            channel.state = ChannelState::Closing;
        }
        let close = ch::Close {
            reply_code: error.code,
            reply_text: short_string(&error.text),
            class_id: error.class_id,
            method_id: error.method_id,
        };
        self.io.send(
            channel_id,
            &AMQPClass::Channel(ch::AMQPMethod::Close(close)),
        );
    }

    pub(super) fn send_connection_close(&mut self) {
        if let Some(error) = &self.closing {
            let close = conn::Close {
                reply_code: error.code,
                reply_text: short_string(&error.text),
                class_id: error.class_id,
                method_id: error.method_id,
            };
            self.io
                .send(0, &AMQPClass::Connection(conn::AMQPMethod::Close(close)));
        }
    }

    /// After connection.close: write it, then wait (bounded) for close-ok, ignoring the rest.
    pub(super) async fn finish_close(&mut self) -> Result<String, ConnectionEnd> {
        let reason = self
            .closing
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        self.io.flush().await?;
        let wait = async {
            loop {
                let frame = self.io.read_frame(self.frame_max).await?;
                if frame.channel == 0 && frame.kind == FrameKind::Method {
                    if let Ok(AMQPClass::Connection(
                        conn::AMQPMethod::CloseOk(_) | conn::AMQPMethod::Close(_),
                    )) = warren_amqp::assembler::parse_method(&frame.payload)
                    {
                        return Ok::<(), ConnectionEnd>(());
                    }
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
        Ok(reason)
    }

    /// A closed channel's id is free again, and the channel no longer counts for its user.
    pub(super) fn forget_channel(&mut self, channel_id: u16) {
        if self.channels.remove(&channel_id).is_some() {
            self.emit_channel_closed(channel_id);
            self.broker
                .connections
                .close_channels(&self.user, self.id, 1);
        }
    }

    /// Releases a channel's consumers and requeues its unacked deliveries.
    pub(super) fn close_channel(&mut self, channel_id: u16) {
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return;
        };
        if let Some(r) = channel.reply_consumer.take() {
            self.broker.reply_to.unregister(&r.token);
        }
        let consumers: Vec<_> = channel.consumers.drain().map(|(_, c)| c).collect();
        let mut unacked: Vec<_> = channel.unacked.drain(..).collect();
        // Acks of an uncommitted transaction never happened: those deliveries go back too.
        for op in channel.tx.take().unwrap_or_default() {
            if let channel::TxOp::Settle { deliveries, .. } = op {
                unacked.extend(deliveries);
            }
        }
        unacked.sort_by_key(|u| u.tag);
        // The unacked go back before the consumers go, so a successor (single active
        // consumer) gets them first; meanwhile the closing consumers take nothing.
        for c in &consumers {
            c.consumer
                .closing
                .store(true, std::sync::atomic::Ordering::Release);
        }
        requeue_all(unacked);
        for c in consumers {
            let tag = c.consumer.tag.as_str();
            self.release_consumer(channel_id, tag, &c.queue, INTERNAL_USER);
        }
    }

    /// Removes a consumer from its queue (`by`: who cancelled it, for the event), and the
    /// queue with it when it was an auto-delete queue's last.
    pub(super) fn release_consumer(
        &mut self,
        channel_id: u16,
        tag: &str,
        queue: &Arc<Queue>,
        by: &str,
    ) {
        let removal = queue.remove_consumer(self.id, channel_id, tag);
        self.emit_consumer_deleted(channel_id, tag, queue.name.as_str(), by);
        if removal == ConsumerRemoval::RemovedLastOfAutoDelete {
            self.delete_queue_now(queue, INTERNAL_USER);
        }
    }

    /// Deletes a queue and tells every consumer it had, on any connection, via basic.cancel.
    /// The cancels travel through mailboxes, so on this connection they follow the reply to
    /// the method that deleted the queue, as in RabbitMQ.
    /// `by` is who deleted it, for the event.
    pub(super) fn delete_queue_now(&self, queue: &Arc<Queue>, by: &str) -> u32 {
        self.vhost.delete_queue(queue, by)
    }

    /// Tells the client its consumer is gone, if it said it understands that
    /// (consumer_cancel_notify); otherwise the consumer silently stops, as in RabbitMQ.
    pub(super) fn send_consumer_cancel(&mut self, channel: u16, tag: &warren_amqp::ShortString) {
        use warren_amqp::protocol::basic as b;
        if self.cancel_notify {
            let cancel = b::Cancel {
                consumer_tag: tag.clone(),
                nowait: true,
            };
            self.io
                .send(channel, &AMQPClass::Basic(b::AMQPMethod::Cancel(cancel)));
        }
    }

    /// Closes every channel (requeueing unacked deliveries) and deletes the connection's
    /// exclusive queues.
    pub(super) fn release_all(&mut self) {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            self.close_channel(id);
        }
        let open = self.channels.len();
        for id in self.channels.keys() {
            self.details.close_channel(*id);
            self.emit_channel_closed(*id);
        }
        self.channels.clear();
        self.broker
            .connections
            .close_channels(&self.user, self.id, open);
        for q in std::mem::take(&mut self.exclusive_queues) {
            if !q.is_deleted() {
                self.delete_queue_now(&q, INTERNAL_USER);
            }
        }
    }

    /// Everything the connection held goes back: consumers removed, deliveries requeued
    /// (including those still in the mailbox), exclusive queues deleted.
    pub(super) fn cleanup(&mut self, events: &mut mpsc::UnboundedReceiver<ConnectionEvent>) {
        self.release_all();
        // No queue delivers to this connection any more; what it already sent goes back.
        events.close();
        while let Ok(event) = events.try_recv() {
            if let ConnectionEvent::Deliver {
                queue,
                consumer,
                entry,
            } = event
            {
                consumer.in_transit.give_back(1);
                consumer.settle(1);
                queue.restore(entry, !consumer.no_ack);
            }
        }
    }
}
