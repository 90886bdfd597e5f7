//! Permission checks on AMQP operations, where RabbitMQ makes them: configure to declare
//! (not passively) or delete a queue or exchange, write to publish to an exchange or bind a
//! queue, read to consume, get or purge from a queue or bind from an exchange. A refusal is
//! 403 on the channel, naming the resource (the default exchange as `amq.default`).
//!
//! Topic permissions add a check of the routing key on topic exchanges they are set for:
//! write when publishing, read when binding a queue (403 naming the topic).
//!
//! The connection keeps its user's permissions in the vhost and takes them again only when the
//! metadata changed, and it remembers the exchange its last publish was allowed to, so a
//! publisher pays for one pointer comparison per message, not a regular expression (unless a
//! topic permission makes each routing key count).

use super::Connection;
use crate::broker::exchange::{Exchange, ExchangeKind};
use crate::broker::metadata::permissions::{Access, Permission, TopicPermission};
use crate::error::{AmqpError, AmqpResult};
use std::collections::HashMap;
use std::sync::Arc;

/// What a permission is checked on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Resource {
    Queue,
    Exchange,
}

/// The permissions a connection works with.
#[derive(Debug)]
pub(super) struct Grants {
    /// `None`: the user lost every permission on the vhost since connecting.
    permission: Option<Arc<Permission>>,
    /// The metadata generation `permission` was read at.
    generation: u64,
    /// The exchange the last allowed publish went to, at `generation`.
    published_to: Option<Arc<Exchange>>,
    /// Topic permissions by exchange name (most users have none).
    topics: HashMap<String, Arc<TopicPermission>>,
}

impl Grants {
    pub(super) fn new(
        permission: Option<Arc<Permission>>,
        topics: HashMap<String, Arc<TopicPermission>>,
        generation: u64,
    ) -> Self {
        Self {
            permission,
            generation,
            published_to: None,
            topics,
        }
    }
}

impl Connection {
    /// Takes the user's permissions again if users or permissions changed since.
    fn refresh_grants(&mut self) {
        let now = self.broker.metadata.generation();
        if now != self.grants.generation {
            let metadata = &self.broker.metadata;
            let (user, vhost) = (&self.user, &self.vhost.name);
            self.grants = Grants::new(
                metadata.permissions(user, vhost),
                metadata.topic_permissions(user, vhost),
                now,
            );
        }
    }

    /// Refuses with RabbitMQ's 403 unless the user has `access` to the resource.
    pub(super) fn check(
        &mut self,
        access: Access,
        resource: Resource,
        name: &str,
    ) -> AmqpResult<()> {
        self.refresh_grants();
        let allowed = self
            .grants
            .permission
            .as_ref()
            .is_some_and(|p| p.allows(access, name));
        if allowed {
            return Ok(());
        }
        let (kind, name) = match resource {
            Resource::Queue => ("queue", name),
            Resource::Exchange if name.is_empty() => ("exchange", "amq.default"),
            Resource::Exchange => ("exchange", name),
        };
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost.name, self.user
        )))
    }

    /// Write access to the exchange a message is published to, remembered for the next one,
    /// and to its routing key where a topic permission applies.
    pub(super) fn check_publish(
        &mut self,
        exchange: &Arc<Exchange>,
        routing_key: &str,
    ) -> AmqpResult<()> {
        let generation = self.broker.metadata.generation();
        let remembered = generation == self.grants.generation
            && self
                .grants
                .published_to
                .as_ref()
                .is_some_and(|x| Arc::ptr_eq(x, exchange));
        if !remembered {
            self.check(Access::Write, Resource::Exchange, exchange.name.as_str())?;
            self.grants.published_to = Some(exchange.clone());
        }
        if self.grants.topics.is_empty() {
            return Ok(());
        }
        self.check_topic(Access::Write, exchange, routing_key)
    }

    /// A topic permission's check of a routing key on a topic exchange it is set for.
    pub(super) fn check_topic(
        &mut self,
        access: Access,
        exchange: &Exchange,
        routing_key: &str,
    ) -> AmqpResult<()> {
        self.refresh_grants();
        if exchange.kind != ExchangeKind::Topic {
            return Ok(());
        }
        let Some(topic) = self.grants.topics.get(exchange.name.as_str()) else {
            return Ok(());
        };
        if topic.allows(access, routing_key) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to topic '{routing_key}' in exchange '{}' in vhost '{}' refused for user '{}'",
            exchange.name, self.vhost.name, self.user
        )))
    }
}
