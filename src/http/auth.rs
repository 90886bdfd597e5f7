//! HTTP Basic authentication against Warren's users, and the tags that open the API: only
//! users tagged management, policymaker, monitoring or administrator may use it (401
//! otherwise, with RabbitMQ's bodies), and loopback-only users only from the loopback
//! interface, as over AMQP.

use super::error::{ApiError, ApiResult};
use crate::broker::metadata::permissions::Access;
use crate::broker::metadata::users::User;
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

/// Tags that let a user into the management API.
const MANAGEMENT_TAGS: &[&str] = &["management", "policymaker", "monitoring", "administrator"];

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Authed(pub User);

impl Authed {
    /// The user's name, as events name who performed an action.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn is_administrator(&self) -> bool {
        self.0.has_tag("administrator")
    }

    /// Administrators and monitoring users see every vhost; others those they have
    /// permissions on.
    pub fn sees_all_vhosts(&self) -> bool {
        self.0.has_tag("administrator") || self.0.has_tag("monitoring")
    }

    /// Refuses unless the user is an administrator.
    pub fn administrator(&self) -> ApiResult<()> {
        match self.is_administrator() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not administrator user")),
        }
    }

    /// Refuses unless the user may set policies and parameters (policymaker or administrator).
    pub fn policymaker(&self) -> ApiResult<()> {
        match self.0.has_tag("policymaker") || self.is_administrator() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not policymaker user")),
        }
    }

    /// Whether the user may see this vhost.
    pub fn sees_vhost(&self, broker: &Broker, vhost: &str) -> bool {
        self.sees_all_vhosts() || broker.metadata.permissions(&self.0.name, vhost).is_some()
    }

    /// The vhost a request reads from: 404 if it does not exist or the user may not see it.
    pub fn vhost(&self, broker: &Broker, name: &str) -> ApiResult<Arc<VHost>> {
        match broker.vhost(name) {
            Some(v) if self.sees_vhost(broker, name) => Ok(v),
            _ => Err(ApiError::not_found()),
        }
    }

    /// Every vhost the user may see, for lists across vhosts.
    pub fn visible_vhosts(&self, broker: &Broker) -> Vec<Arc<VHost>> {
        broker
            .metadata
            .vhosts()
            .iter()
            .filter_map(|record| self.vhost(broker, &record.name).ok())
            .collect()
    }

    /// The vhost a request changes something in: RabbitMQ's `vhost_not_found` if it is missing.
    pub fn vhost_to_change(&self, broker: &Broker, name: &str) -> ApiResult<Arc<VHost>> {
        broker.vhost(name).ok_or_else(ApiError::vhost_not_found)
    }

    /// Refuses, as RabbitMQ does (401 "Access refused."), an operation the user's permissions
    /// in the vhost do not allow: the API acts with the user's AMQP permissions.
    pub fn may(&self, broker: &Broker, vhost: &str, access: Access, name: &str) -> ApiResult<()> {
        let name = if name.is_empty() { "amq.default" } else { name };
        match broker.metadata.permissions(&self.0.name, vhost) {
            Some(p) if p.allows(access, name) => Ok(()),
            _ => Err(ApiError::not_authorised("Access refused.")),
        }
    }
}

/// An exchange name as a path carries it: the default exchange is `amq.default`.
pub fn exchange_name(path: &str) -> &str {
    if path == "amq.default" {
        ""
    } else {
        path
    }
}

/// The user and password of a Basic `Authorization` header.
fn credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl FromRequestParts<Arc<Broker>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, broker: &Arc<Broker>) -> ApiResult<Self> {
        let (name, password) = credentials(parts).ok_or_else(ApiError::login_failed)?;
        let Some(user) = broker.metadata.authenticate(&name, &password) else {
            broker.login_failed();
            return Err(ApiError::login_failed());
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let loopback_only = broker.config.loopback_users.contains(&name);
        if loopback_only && peer.is_some_and(|p| !p.ip().is_loopback()) {
            broker.login_failed();
            return Err(ApiError::login_failed());
        }
        if !MANAGEMENT_TAGS.iter().any(|t| user.has_tag(t)) {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(Self(user))
    }
}
