//! The basic class (publish, consume, get, acknowledgements, qos, recover), publisher
//! confirms and transactions, and deliveries arriving from queues.

use super::access::Resource;
use super::channel::{
    generated_consumer_tag, requeue_all, Channel, ChannelConsumer, ChannelState, Confirms,
    Deadline, Publication, TxOp, Unacked,
};
use super::Connection;
use crate::broker::delayed;
use crate::broker::delivery::{enqueue, Enqueued};
use crate::broker::exchange::RoutingInput;
use crate::broker::field_types;
use crate::broker::message::QueueEntry;
use crate::broker::message::{check_expiration, Message};
use crate::broker::metadata::permissions::Access;
use crate::broker::queue::{consumer_priority, consumer_timeout, with_delivery_count, Queue};
use crate::broker::queue::{ConnectionEvent, Consumer, Credit, TRANSIT_WINDOW};
use crate::broker::reply_to;
use crate::broker::stats::Stat;
use crate::broker::trace::Origin;
use crate::error::{AmqpError, AmqpResult};
use crate::store::writer::Durable;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use warren_amqp::protocol::basic as b;
use warren_amqp::{encode, reply, AMQPClass, AMQPValue, Content, FieldTable};

impl Connection {
    /// The broker's `consumer_timeout`, for consumers and gets whose queue sets none.
    fn global_consumer_timeout(&self) -> Option<Duration> {
        let ms = self.broker.config.consumer_timeout;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    pub(super) fn basic_publish(
        &mut self,
        channel_id: u16,
        m: b::Publish,
        content: Content,
    ) -> AmqpResult<()> {
        if m.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        // A publisher is blocked while a resource alarm is raised (see `blocking`).
        self.blocking.published = true;
        if let Some(user_id) = content.properties.user_id() {
            if user_id.as_str() != self.user {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    self.user
                )));
            }
        }
        if let Some(expiration) = content.properties.expiration() {
            check_expiration(expiration.as_str()).map_err(|detail| {
                AmqpError::precondition_failed(format!(
                    "invalid expiration '{expiration}': {detail}"
                ))
            })?;
        }
        // Permission before existence, as RabbitMQ checks them.
        let exchange = match self.vhost.exchange(m.exchange.as_str()) {
            Ok(exchange) => exchange,
            Err(missing) => {
                self.check(Access::Write, Resource::Exchange, m.exchange.as_str())?;
                return Err(missing);
            }
        };
        self.check_publish(&exchange, m.routing_key.as_str())?;
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, self.vhost.name
            )));
        }
        let held = exchange.is_delayed()
            && delayed::delay_of(content.properties.headers().as_ref()).is_some();
        let (content, extra_keys) = self.rewrite(channel_id, content, held)?;
        let publication = Publication {
            exchange,
            exchange_name: m.exchange,
            routing_key: m.routing_key,
            mandatory: m.mandatory,
            content,
            extra_keys,
        };
        let channel = self.channel(channel_id)?;
        channel.stats.counters.bump(Stat::Publish);
        if let Some(ops) = &mut channel.tx {
            ops.push(TxOp::Publish(Box::new(publication)));
            return Ok(());
        }
        let seq = channel.confirms.as_mut().map(Confirms::take_seq);
        let enqueued = self.route(channel_id, publication);
        let confirms = self
            .channels
            .get_mut(&channel_id)
            .and_then(|c| c.confirms.as_mut());
        if let (Some(seq), Some(confirms), true) = (seq, confirms, enqueued.rejected) {
            // A queue refused it (x-overflow reject-publish): the publisher gets a nack.
            confirms.failed.insert(seq);
        }
        if let (Some(seq), true) = (seq, enqueued.stored) {
            if let Some(confirms) = self
                .channels
                .get_mut(&channel_id)
                .and_then(|c| c.confirms.as_mut())
            {
                confirms.waiting.insert(seq);
            }
            let sink = self.confirm_sink.clone();
            let epoch = self
                .channels
                .get(&channel_id)
                .and_then(|c| c.confirms.as_ref())
                .map_or(0, |c| c.epoch);
            self.broker.store.barrier(Durable::Confirm {
                sink,
                channel: channel_id,
                epoch,
                seq,
            });
        }
        Ok(())
    }

    /// Routes a message to its queues, or returns it to a mandatory publisher. Says whether
    /// the message went to the store and whether a queue refused it.
    pub(super) fn route(&mut self, channel_id: u16, p: Publication) -> Enqueued {
        let Publication {
            exchange,
            exchange_name,
            routing_key,
            mandatory,
            content,
            extra_keys,
        } = p;
        if exchange.is_delayed() {
            if let Some(delay) = delayed::delay_of(content.properties.headers().as_ref()) {
                // Held by the exchange until due; routed (and returned to nobody) then. The
                // message still has its BCC header (see `rewrite`), so the CC and BCC keys are
                // worked out again at release and `extra_keys` is not needed here.
                let message = Message::from_parts(
                    exchange_name,
                    routing_key,
                    &content.properties,
                    content.raw_properties,
                    content.body,
                );
                let broker = &self.broker;
                let stored = delayed::hold(
                    &broker.store,
                    &broker.held,
                    &self.vhost.name,
                    message,
                    delay,
                );
                return Enqueued {
                    stored,
                    rejected: false,
                };
            }
        }
        let input = RoutingInput {
            routing_key: routing_key.as_str(),
            headers: content.properties.headers().as_ref(),
            properties: Some(&content.properties),
        };
        self.vhost.route_keys(
            &exchange,
            &input,
            &extra_keys,
            &mut self.routing_scratch,
            &mut self.routed,
        );
        exchange.count_publish(!self.routed.is_empty());
        if self.vhost.tracing() {
            let connection = self.name();
            let origin = Origin {
                user: &self.user,
                connection: &connection,
                channel: channel_id,
            };
            self.broker.trace_publish(
                &self.vhost,
                &origin,
                exchange_name.as_str(),
                routing_key.as_str(),
                &extra_keys,
                &content.properties,
                &content.body,
                &self.routed,
            );
        }
        // Direct reply-to names are no queues: replies go out beside routing, and count as
        // unrouted for mandatory, as in RabbitMQ.
        let replies = exchange.name.as_str().is_empty()
            && (reply_to::is_reply_name(routing_key.as_str())
                || extra_keys.iter().any(|k| reply_to::is_reply_name(k)));
        if self.routed.is_empty() {
            if replies {
                let message = Arc::new(Message::from_parts(
                    exchange_name.clone(),
                    routing_key.clone(),
                    &content.properties,
                    content.raw_properties.clone(),
                    content.body.clone(),
                ));
                self.send_replies(routing_key.as_str(), &extra_keys, &message);
            }
            let unroutable = match mandatory {
                true => Stat::ReturnUnroutable,
                false => Stat::DropUnroutable,
            };
            self.count(channel_id, unroutable, 1);
            if mandatory {
                let out = &mut self.io.output;
                encode::basic_return(
                    out,
                    channel_id,
                    reply::NO_ROUTE,
                    "NO_ROUTE",
                    exchange_name.as_str(),
                    routing_key.as_str(),
                );
                encode::content(
                    out,
                    channel_id,
                    &content.raw_properties,
                    &content.body,
                    self.frame_max,
                );
            }
            return Enqueued::default();
        }
        let message = Message::from_parts(
            exchange_name,
            routing_key,
            &content.properties,
            content.raw_properties,
            content.body,
        );
        if replies {
            let reply = Arc::new(message.clone());
            self.send_replies(reply.routing_key.as_str(), &extra_keys, &reply);
        }
        // The consumers of one of these queues are behind: stop reading for a moment. Not on a
        // connection that consumes too: its own acks come in on what would not be read.
        if self.flow.is_none() && self.channels.values().all(|c| c.consumers.is_empty()) {
            self.flow = self.routed.iter().find(|q| q.flow.backlogged()).cloned();
        }
        enqueue(&self.broker.store, message, &mut self.routed)
    }

    pub(super) fn basic_consume(&mut self, channel_id: u16, m: b::Consume) -> AmqpResult<()> {
        let max = self.broker.config.consumer_max_per_channel;

        let channel = self.channel(channel_id)?;
        // The limit and a reused tag are refused before the queue is looked at, as RabbitMQ
        // does.
        let reused = channel.consumers.contains_key(&m.consumer_tag);
        let count = channel.consumers.len() + usize::from(channel.reply_consumer.is_some());
        if let Some(max) = max.filter(|max| !reused && count >= *max) {
            return Err(AmqpError::not_allowed(format!(
                "reached maximum ({max}) of consumers per channel"
            )));
        }
        if reused {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            )));
        }
        let name = self.channel(channel_id)?.queue_name(&m.queue)?;
        if name.as_str() == reply_to::PSEUDO_QUEUE {
            return self.consume_replies(channel_id, m);
        }
        self.check(Access::Read, Resource::Queue, name.as_str())?;
        let queue = self.vhost.queue_for(name.as_str(), self.id)?;
        let what = format!("queue '{name}' in vhost '{}'", self.vhost.name);
        let channel = self.channel(channel_id)?;
        let global_only = channel.gate.prefetch.limit() > 0 && channel.consumer_prefetch == 0;
        if queue.is_quorum() && global_only {
            return Err(AmqpError::not_implemented(format!(
                "{what} does not support global qos"
            )));
        }
        let priority = consume_arguments(&m.arguments, &what)?;
        // The consumer's own timeout, else its queue's, else the broker's.
        let ack_timeout = consumer_timeout(&m.arguments, &what)?
            .or_else(|| queue.consumer_timeout())
            .map(Duration::from_millis)
            .or(self.global_consumer_timeout());
        let (id, mailbox) = (self.id, self.mailbox.clone());
        let channel = self.channel(channel_id)?;
        // A generated tag is unique, so only a client's tag could have been in use.
        let tag = if m.consumer_tag.as_str().is_empty() {
            generated_consumer_tag()
        } else {
            m.consumer_tag
        };
        let consumer = Arc::new(Consumer {
            tag: tag.clone(),
            channel: channel_id,
            connection: id,
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            mailbox,
            prefetch: Credit::new(channel.consumer_prefetch),
            gate: channel.gate.clone(),
            in_transit: Credit::new(TRANSIT_WINDOW),
            starved: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            ack_timeout,
        });
        // Deliveries reach the client through the mailbox, after this reply is written.
        queue.add_consumer(consumer.clone())?;
        channel.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                consumer: consumer.clone(),
                queue: queue.clone(),
            },
        );
        self.emit_consumer_created(&consumer, queue.name.as_str(), &m.arguments);
        self.reply(
            channel_id,
            m.nowait,
            AMQPClass::Basic(b::AMQPMethod::ConsumeOk(b::ConsumeOk { consumer_tag: tag })),
        );
        Ok(())
    }

    pub(super) fn basic_cancel(&mut self, channel_id: u16, m: b::Cancel) -> AmqpResult<()> {
        // The tag may be the channel's direct reply-to consumer's.
        if !self.cancel_replies(channel_id, &m.consumer_tag) {
            if let Some(c) = self.channel(channel_id)?.consumers.remove(&m.consumer_tag) {
                let by = self.user.clone();
                self.release_consumer(channel_id, m.consumer_tag.as_str(), &c.queue, &by);
            }
        }
        let ok = b::CancelOk {
            consumer_tag: m.consumer_tag,
        };
        self.reply(
            channel_id,
            m.nowait,
            AMQPClass::Basic(b::AMQPMethod::CancelOk(ok)),
        );
        Ok(())
    }

    pub(super) fn basic_get(&mut self, channel_id: u16, m: b::Get) -> AmqpResult<()> {
        let name = self.channel(channel_id)?.queue_name(&m.queue)?;
        self.check(Access::Read, Resource::Queue, name.as_str())?;
        let queue = self.vhost.queue_for(name.as_str(), self.id)?;
        let Some((entry, remaining)) = queue.get(!m.no_ack) else {
            self.count(channel_id, Stat::GetEmpty, 1);
            self.io.send(
                channel_id,
                &AMQPClass::Basic(b::AMQPMethod::GetEmpty(b::GetEmpty {})),
            );
            return Ok(());
        };
        let frame_max = self.frame_max;
        let traced = self.vhost.tracing().then(|| queue.clone());
        let (now, global_timeout) = (self.now, self.global_consumer_timeout());
        let quorum_get = queue.is_quorum();
        let channel = self.channel(channel_id)?;
        count_delivery(channel, &entry, Stat::Get, Stat::GetNoAck, m.no_ack);
        let tag = channel.next_tag();
        let msg = entry.message.clone();
        if !m.no_ack {
            let timeout = queue.consumer_timeout().map(Duration::from_millis);
            let deadline = Deadline::after(now, timeout.or(global_timeout));
            channel.unacked.push_back(Unacked {
                tag,
                queue,
                entry: entry.clone(),
                consumer: None,
                deadline,
            });
            self.track_deadline(deadline);
        }
        let out = &mut self.io.output;
        encode::get_ok(
            out,
            channel_id,
            tag,
            entry.redelivered,
            msg.exchange.as_str(),
            msg.routing_key.as_str(),
            remaining,
        );
        // A quorum queue tells basic.get how often the message was returned, 0 included.
        let properties = match quorum_get {
            true => with_delivery_count(&msg.raw_properties, entry.delivery_count),
            false => msg.raw_properties.clone(),
        };
        encode::content(out, channel_id, &properties, &msg.body, frame_max);
        if let Some(queue) = traced {
            self.trace_delivery(channel_id, &queue, &entry);
        }
        Ok(())
    }

    /// The connection's name, as the management API and trace copies give it.
    pub(super) fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.details.local)
    }

    /// Copies a delivery to the trace exchange.
    fn trace_delivery(
        &self,
        channel_id: u16,
        queue: &Queue,
        entry: &crate::broker::message::QueueEntry,
    ) {
        let connection = self.name();
        let origin = Origin {
            user: &self.user,
            connection: &connection,
            channel: channel_id,
        };
        self.broker.trace_deliver(
            &self.vhost,
            &origin,
            queue.name.as_str(),
            &entry.message,
            entry.redelivered,
        );
    }

    pub(super) fn basic_ack(
        &mut self,
        channel_id: u16,
        tag: u64,
        multiple: bool,
    ) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        let deliveries = channel.take_unacked(tag, multiple)?;
        if let Some(ops) = &mut channel.tx {
            ops.push(TxOp::Settle {
                deliveries,
                requeue: None,
            });
            return Ok(());
        }
        self.settle(channel_id, deliveries, None);
        Ok(())
    }

    pub(super) fn basic_reject(
        &mut self,
        channel_id: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        let deliveries = channel.take_unacked(tag, multiple)?;
        if let Some(ops) = &mut channel.tx {
            ops.push(TxOp::Settle {
                deliveries,
                requeue: Some(requeue),
            });
            return Ok(());
        }
        self.settle(channel_id, deliveries, Some(requeue));
        Ok(())
    }

    /// Finishes deliveries: acked (`requeue` None), rejected and dropped, or requeued.
    pub(super) fn settle(
        &mut self,
        channel_id: u16,
        deliveries: Vec<Unacked>,
        requeue: Option<bool>,
    ) {
        if requeue.is_none() {
            self.count(channel_id, Stat::Ack, deliveries.len() as u64);
        }
        if requeue == Some(true) {
            requeue_all(deliveries);
        } else {
            for run in deliveries.chunk_by(|a, b| Arc::ptr_eq(&a.queue, &b.queue)) {
                run[0]
                    .queue
                    .settle(run.iter().map(|d| &d.entry), requeue == Some(false));
            }
            for d in &deliveries {
                if let Some(c) = &d.consumer {
                    c.settle(1);
                }
            }
        }
        self.kick_starved(channel_id);
    }

    /// Asks queues to deliver again to this channel's consumers that ran out of credit.
    pub(super) fn kick_starved(&mut self, channel_id: u16) {
        let Some(channel) = self.channels.get(&channel_id) else {
            return;
        };
        let starved: Vec<Arc<Queue>> = channel
            .consumers
            .values()
            .filter(|c| c.consumer.take_starved())
            .map(|c| c.queue.clone())
            .collect();
        for q in starved {
            q.dispatch();
        }
    }

    pub(super) fn basic_qos(&mut self, channel_id: u16, m: b::Qos) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        if m.global {
            channel.gate.prefetch.set_limit(u32::from(m.prefetch_count));
        } else {
            channel.consumer_prefetch = u32::from(m.prefetch_count);
        }
        self.io.send(
            channel_id,
            &AMQPClass::Basic(b::AMQPMethod::QosOk(b::QosOk {})),
        );
        self.kick_starved(channel_id);
        Ok(())
    }

    pub(super) fn basic_recover(
        &mut self,
        channel_id: u16,
        requeue: bool,
        reply_ok: bool,
    ) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let channel = self.channel(channel_id)?;
        let deliveries: Vec<Unacked> = channel.unacked.drain(..).collect();
        requeue_all(deliveries);
        if reply_ok {
            self.io.send(
                channel_id,
                &AMQPClass::Basic(b::AMQPMethod::RecoverOk(b::RecoverOk {})),
            );
        }
        self.kick_starved(channel_id);
        Ok(())
    }

    /// Something a queue (or the broker) sent this connection.
    pub(super) fn on_event(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Persisted {
                channel,
                epoch,
                upto,
                ok,
            } => {
                let confirms = self
                    .channels
                    .get_mut(&channel)
                    .and_then(|c| c.confirms.as_mut());
                if let Some(confirms) = confirms {
                    confirms.persisted(epoch, upto, ok);
                }
            }
            ConnectionEvent::Close(error) => {
                if self.closing.is_none() {
                    self.fail(0, error);
                }
            }
            ConnectionEvent::AlarmsChanged => self.blocking.alarms_changed(),
            ConnectionEvent::Describe(answer) => {
                let _ = answer.send(self.describe());
            }
            ConnectionEvent::TxDurable { channel } => {
                if self.channels.contains_key(&channel) {
                    self.send_commit_ok(channel);
                }
            }
            ConnectionEvent::Deliver {
                queue,
                consumer,
                entry,
            } => self.deliver(queue, consumer, entry),
            ConnectionEvent::Reply {
                channel,
                token,
                message,
            } => self.deliver_reply(channel, &token, message),
            ConnectionEvent::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                let removed = self
                    .channels
                    .get_mut(&channel)
                    .and_then(|ch| ch.consumers.remove(&consumer_tag));
                if removed.is_some() {
                    self.send_consumer_cancel(channel, &consumer_tag);
                }
            }
        }
    }

    pub(super) fn deliver(
        &mut self,
        queue: Arc<Queue>,
        consumer: Arc<Consumer>,
        entry: crate::broker::message::QueueEntry,
    ) {
        consumer.in_transit.give_back(1);
        let channel_id = consumer.channel;
        let live = self.channels.get_mut(&channel_id).filter(|ch| {
            ch.state == ChannelState::Open
                && ch
                    .consumers
                    .get(&consumer.tag)
                    .is_some_and(|c| Arc::ptr_eq(&c.consumer, &consumer))
        });
        let Some(channel) = live else {
            // Cancelled or closed while this delivery waited in the mailbox: it never reached
            // the client, so it goes back as it was.
            consumer.settle(1);
            queue.restore(entry, !consumer.no_ack);
            return;
        };
        count_delivery(
            channel,
            &entry,
            Stat::Deliver,
            Stat::DeliverNoAck,
            consumer.no_ack,
        );
        let tag = channel.next_tag();
        let msg = entry.message.clone();
        let out = &mut self.io.output;
        encode::deliver(
            out,
            channel_id,
            consumer.tag.as_str(),
            tag,
            entry.redelivered,
            msg.exchange.as_str(),
            msg.routing_key.as_str(),
        );
        // A quorum queue's returned message says how often it came back.
        let returned = (entry.delivery_count > 0 && queue.is_quorum())
            .then(|| with_delivery_count(&msg.raw_properties, entry.delivery_count));
        encode::content(
            out,
            channel_id,
            returned.as_ref().unwrap_or(&msg.raw_properties),
            &msg.body,
            self.frame_max,
        );
        // Kept aside only while tracing: the entry itself goes to the unacked list.
        let traced = self.vhost.tracing().then(|| entry.clone());
        if !consumer.no_ack {
            let deadline = Deadline::after(self.now, consumer.ack_timeout);
            channel.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                entry,
                consumer: Some(consumer.clone()),
                deadline,
            });
            if let Some(d) = deadline {
                self.ack_timer.arm(d.at);
            }
        }
        if let Some(entry) = traced {
            self.trace_delivery(channel_id, &queue, &entry);
        }
        if consumer.take_starved() {
            queue.dispatch();
        }
    }
}

/// Counts a message handed to a channel's client: with or without acknowledgement, and
/// redelivered.
fn count_delivery(channel: &Channel, entry: &QueueEntry, acked: Stat, unacked: Stat, no_ack: bool) {
    let counters = &channel.stats.counters;
    counters.bump(if no_ack { unacked } else { acked });
    if entry.redelivered {
        counters.bump(Stat::Redeliver);
    }
}

/// Checks a basic.consume's arguments as RabbitMQ does for a classic queue, in its order, and
/// returns the consumer's priority. Arguments it does not know are ignored, as there.
fn consume_arguments(args: &FieldTable, what: &str) -> AmqpResult<i64> {
    let priority = consumer_priority(args, what)?;
    let arguments = args.inner();
    // No queue here is mirrored, so the argument has nothing to do; its type is still checked
    // so that a client passing a bad one is told so, as RabbitMQ tells it.
    if let Some(v) = arguments.get("x-cancel-on-ha-failover") {
        if !matches!(v, AMQPValue::Boolean(_)) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-cancel-on-ha-failover' for {what}: {{unacceptable_type,{}}}",
                field_types::name(v)
            )));
        }
    }
    // Only stream queues read from an offset; every queue here is a classic one.
    if arguments.contains_key("x-stream-offset") {
        return Err(AmqpError::precondition_failed(format!(
            "invalid arg 'x-stream-offset' for {what} of queue type rabbit_classic_queue"
        )));
    }
    Ok(priority)
}
