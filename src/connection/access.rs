//! Permission checks on AMQP operations, where RabbitMQ makes them: configure to declare
//! (not passively) or delete a queue or exchange, write to publish to an exchange or bind a
//! queue, read to consume, get or purge from a queue or bind from an exchange. A refusal is
//! 403 on the channel, naming the resource (the default exchange as `amq.default`).
//!
//! The connection keeps its user's permissions in the vhost and takes them again only when the
//! metadata changed, and it remembers the exchange its last publish was allowed to, so a
//! publisher pays for one pointer comparison per message, not a regular expression.

use super::Connection;
use crate::broker::exchange::Exchange;
use crate::broker::metadata::permissions::{Access, Permission};
use crate::error::{AmqpError, AmqpResult};
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
}

impl Grants {
    pub(super) fn new(permission: Option<Arc<Permission>>, generation: u64) -> Self {
        Self {
            permission,
            generation,
            published_to: None,
        }
    }
}

impl Connection {
    /// Takes the user's permissions again if users or permissions changed since.
    fn refresh_grants(&mut self) {
        let now = self.broker.metadata.generation();
        if now != self.grants.generation {
            let metadata = &self.broker.metadata;
            self.grants = Grants::new(metadata.permissions(&self.user, &self.vhost.name), now);
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

    /// Write access to the exchange a message is published to, remembered for the next one.
    pub(super) fn check_publish(&mut self, exchange: &Arc<Exchange>) -> AmqpResult<()> {
        let generation = self.broker.metadata.generation();
        if generation == self.grants.generation
            && self
                .grants
                .published_to
                .as_ref()
                .is_some_and(|x| Arc::ptr_eq(x, exchange))
        {
            return Ok(());
        }
        self.check(Access::Write, Resource::Exchange, exchange.name.as_str())?;
        self.grants.published_to = Some(exchange.clone());
        Ok(())
    }
}
