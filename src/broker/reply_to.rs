//! Direct reply-to: the pseudo-queue `amq.rabbitmq.reply-to`. A channel that consumes from it
//! (without acks) is registered here under a random token; what that channel publishes with
//! reply_to `amq.rabbitmq.reply-to` carries `amq.rabbitmq.reply-to.<token>` instead, and a
//! reply published to the default exchange under that name goes straight into the requesting
//! connection's mailbox: no queue, nothing stored. Connections register and unregister their
//! channels' reply consumers; publishers look tokens up. The channel side lives in
//! `connection::reply_to`.

use super::message::Message;
use super::queue::{ConnectionEvent, Mailbox};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::Arc;

/// The name clients consume from and put in reply_to.
pub const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";
/// What every generated reply name starts with.
const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The broker-wide table of reply consumers, by token.
#[derive(Debug, Default)]
pub struct ReplyTo {
    requesters: DashMap<Arc<str>, Requester>,
}

/// Where replies for one token go.
#[derive(Debug)]
struct Requester {
    mailbox: Mailbox,
    channel: u16,
}

impl ReplyTo {
    /// Registers a channel's reply consumer and returns its new token.
    pub fn register(&self, mailbox: Mailbox, channel: u16) -> Arc<str> {
        loop {
            let token: Arc<str> = new_token().into();
            if let Entry::Vacant(v) = self.requesters.entry(token.clone()) {
                v.insert(Requester { mailbox, channel });
                return token;
            }
        }
    }

    pub fn unregister(&self, token: &str) {
        self.requesters.remove(token);
    }

    /// Whether queue.declare of `name` finds something: the pseudo-queue always, a reply name
    /// while its consumer lasts.
    pub fn exists(&self, name: &str) -> bool {
        name == PSEUDO_QUEUE
            || name
                .strip_prefix(PREFIX)
                .is_some_and(|token| self.requesters.contains_key(token))
    }

    /// Hands a reply to the consumer `name` leads to. Its connection delivers it if the
    /// consumer is still there when the reply arrives; otherwise the reply is dropped.
    pub fn deliver(&self, name: &str, message: &Arc<Message>) {
        let Some(token) = name.strip_prefix(PREFIX) else {
            return;
        };
        if let Some(r) = self.requesters.get(token) {
            let _ = r.mailbox.send(ConnectionEvent::Reply {
                channel: r.channel,
                token: r.key().clone(),
                message: message.clone(),
            });
        }
    }
}

/// Whether a routing key on the default exchange is a reply name rather than a queue's.
pub fn is_reply_name(routing_key: &str) -> bool {
    routing_key.starts_with(PREFIX)
}

/// The name a token stands for, as the requester's reply_to carries it.
pub fn reply_name(token: &str) -> String {
    format!("{PREFIX}{token}")
}

/// 32 url-safe random characters: unguessable, so only those who saw a request can reply.
fn new_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::sync::mpsc;
    use warren_amqp::BasicProperties;

    fn message() -> Arc<Message> {
        let props = BasicProperties::default();
        Message::new("".into(), "k".into(), &props, Bytes::new(), Bytes::new())
    }

    #[test]
    fn a_registered_name_exists_and_receives_replies_until_unregistered() {
        let registry = ReplyTo::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let token = registry.register(tx, 7);
        let name = reply_name(&token);
        assert!(is_reply_name(&name));
        assert!(registry.exists(&name) && registry.exists(PSEUDO_QUEUE));
        registry.deliver(&name, &message());
        match rx.try_recv() {
            Ok(ConnectionEvent::Reply {
                channel, token: t, ..
            }) => {
                assert_eq!((channel, &*t), (7, &*token))
            }
            other => panic!("expected a reply, got {other:?}"),
        }
        registry.unregister(&token);
        assert!(!registry.exists(&name));
        registry.deliver(&name, &message());
        assert!(
            rx.try_recv().is_err(),
            "a reply to a gone consumer is dropped"
        );
        assert!(!registry.exists("amq.rabbitmq.reply-to.nonsense"));
        assert!(!registry.exists("amq.rabbitmq.reply-tox"));
    }
}
