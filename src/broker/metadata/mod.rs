//! The tenancy model: virtual hosts (as records: what they are, not what they hold), users and
//! their permissions. The one module that owns it; the AMQP side checks against it and the
//! management API changes it through it.
//!
//! Every change is written to the store as a metadata record (RabbitMQ's definitions format,
//! as JSON, under a kind and a key), so a replicated store can later order the same records
//! across nodes. Reads take a read lock on a small map and clone what they return (an `Arc`
//! for permissions, which connections keep); `generation` tells caches that something changed.

mod events;
pub mod parameters;
pub mod password;
pub mod permissions;
pub mod policies;
pub mod users;

use crate::broker::events::{EventSink, INTERNAL_USER};
use crate::store::writer::Durable;
use crate::store::{MetaKind, MetaRecord, StoreHandle, StoreOp};
use permissions::{BadPattern, Permission, PermissionSpec, TopicPermission, TopicPermissionSpec};
use policies::{Policy, PolicyError, PolicySpec, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tracing::warn;
use users::User;

const VHOST: MetaKind = b'v';
const USER: MetaKind = b'u';
const PERMISSION: MetaKind = b'p';
const TOPIC_PERMISSION: MetaKind = b't';
const POLICY: MetaKind = b'P';
const OPERATOR_POLICY: MetaKind = b'O';

/// A virtual host's own metadata, as RabbitMQ shows and exports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The queue type a queue.declare without `x-queue-type` gets.
    #[serde(default)]
    pub default_queue_type: Option<String>,
    /// `max-connections`, `max-queues` (a negative value: no limit).
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// Firehose tracing is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tracing: bool,
}

/// Limits by RabbitMQ's names (`max-connections`...); a negative value means no limit.
pub type Limits = BTreeMap<String, i64>;

/// The limits a vhost and a user may have.
pub const VHOST_LIMITS: &[&str] = &["max-connections", "max-queues"];
pub const USER_LIMITS: &[&str] = &["max-connections", "max-channels"];

/// A limit's value, if it limits anything.
pub fn limit(limits: &Limits, name: &str) -> Option<usize> {
    limits.get(name).and_then(|v| usize::try_from(*v).ok())
}

fn check_limits(limits: &Limits, allowed: &[&str]) -> Result<(), MetaError> {
    match limits.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(MetaError::UnknownLimit(unknown.clone())),
        None => Ok(()),
    }
}

impl VhostRecord {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: String::new(),
            tags: Vec::new(),
            default_queue_type: None,
            limits: Limits::new(),
            tracing: false,
        }
    }
}

/// What the first start creates (`default_user`, `default_pass`, `default_vhost`).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub user: String,
    pub password: String,
    pub vhost: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("no_such_user: {0}")]
    NoSuchUser(String),
    #[error("no_such_vhost: {0}")]
    NoSuchVhost(String),
    #[error(transparent)]
    BadPattern(#[from] BadPattern),
    #[error("unknown limit '{0}'")]
    UnknownLimit(String),
}

#[derive(Debug, Default)]
struct State {
    vhosts: BTreeMap<String, VhostRecord>,
    users: BTreeMap<String, User>,
    /// (vhost, user) → permission.
    permissions: BTreeMap<(String, String), Arc<Permission>>,
    /// (vhost, user, exchange) → topic permission.
    topics: BTreeMap<(String, String, String), Arc<TopicPermission>>,
    /// (vhost, name) → policy, and operator policy.
    policies: BTreeMap<(String, String), Arc<Policy>>,
    operator_policies: BTreeMap<(String, String), Arc<Policy>>,
    /// Global parameters by name, and runtime parameters by (vhost, component, name).
    globals: BTreeMap<String, serde_json::Value>,
    parameters: BTreeMap<(String, String, String), parameters::Parameter>,
}

impl State {
    /// Removes every permission and topic permission `matches` picks, in the store too.
    fn drop_permissions(
        &mut self,
        store: &Metadata,
        matches: impl Fn(&str, &str) -> bool,
        by: &str,
    ) {
        let gone: Vec<_> = self
            .permissions
            .keys()
            .filter(|(v, u)| matches(v, u))
            .cloned()
            .collect();
        for key in gone {
            self.permissions.remove(&key);
            store.forget(PERMISSION, permission_key(&key.0, &key.1));
            store.permission_deleted(&key.1, &key.0, by);
        }
        let gone: Vec<_> = self
            .topics
            .keys()
            .filter(|(v, u, _)| matches(v, u))
            .cloned()
            .collect();
        for key in gone {
            self.topics.remove(&key);
            store.forget(TOPIC_PERMISSION, topic_key(&key.0, &key.1, &key.2));
        }
    }
}

#[derive(Debug)]
pub struct Metadata {
    store: Arc<StoreHandle>,
    state: RwLock<State>,
    /// Bumped by every change to users or permissions, for caches of checks.
    generation: AtomicU64,
    /// Where changes are reported (`metadata::events`).
    events: EventSink,
}

impl Metadata {
    /// Reads the records the store kept. A store without users or vhosts is new (or from
    /// before tenancy existed): it gets the default user, vhost and permissions.
    pub fn recover(
        store: Arc<StoreHandle>,
        records: Vec<MetaRecord>,
        defaults: &Defaults,
        events: EventSink,
    ) -> Self {
        let mut state = State::default();
        for r in records {
            if let Err(e) = state.load(&r) {
                warn!(
                    "metadata record {:?} '{}' cannot be read ({e}); ignored",
                    r.kind as char, r.key
                );
            }
        }
        let fresh = state.users.is_empty() && state.vhosts.is_empty();
        let metadata = Self {
            store,
            state: RwLock::new(state),
            generation: AtomicU64::new(0),
            events,
        };
        if fresh {
            metadata.create_defaults(defaults);
            // On disk before anyone can log in: a crash now must not bring other defaults.
            metadata.store.sync_blocking();
        }
        metadata
    }

    fn create_defaults(&self, d: &Defaults) {
        let mut vhost = VhostRecord::named(&d.vhost);
        vhost.description = "Default virtual host".to_owned();
        self.put_vhost(vhost, INTERNAL_USER);
        let admin = vec!["administrator".to_owned()];
        self.put_user(User::new(&d.user, Some(&d.password), admin), INTERNAL_USER);
        let all = ".*".to_owned();
        let spec = PermissionSpec {
            user: d.user.clone(),
            vhost: d.vhost.clone(),
            configure: all.clone(),
            write: all.clone(),
            read: all,
        };
        if let Err(e) = self.set_permissions(spec, INTERNAL_USER) {
            warn!("default permissions not set: {e}");
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.generation.fetch_add(1, Ordering::Release);
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes with every change to users or permissions.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn persist<T: Serialize>(&self, kind: MetaKind, key: String, value: &T) {
        match serde_json::to_vec(value) {
            Ok(value) => self
                .store
                .submit(StoreOp::PutMeta(MetaRecord { kind, key, value })),
            Err(e) => warn!("metadata record '{key}' not written: {e}"),
        }
    }

    fn forget(&self, kind: MetaKind, key: String) {
        self.store.submit(StoreOp::DeleteMeta { kind, key });
    }

    /// Waits until every change made before is on disk; false if the store failed. The
    /// management API answers a change only after this, as RabbitMQ answers once its
    /// metadata store has it.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store.barrier(Durable::Then(Box::new(move |ok| {
            let _ = tx.send(ok);
        })));
        rx.await.unwrap_or(false)
    }

    // ----- virtual hosts

    pub fn vhosts(&self) -> Vec<VhostRecord> {
        self.read().vhosts.values().cloned().collect()
    }

    pub fn vhost(&self, name: &str) -> Option<VhostRecord> {
        self.read().vhosts.get(name).cloned()
    }

    /// Creates or updates a vhost's record; `by` is who asked, for the event a creation
    /// emits.
    pub fn put_vhost(&self, record: VhostRecord, by: &str) {
        self.persist(VHOST, record.name.clone(), &record);
        let created = record.clone();
        if self
            .write()
            .vhosts
            .insert(record.name.clone(), record)
            .is_none()
        {
            self.vhost_created(&created, by);
        }
    }

    /// Removes a vhost's record and every permission in it; false if there was none.
    pub fn remove_vhost(&self, name: &str, by: &str) -> bool {
        let mut state = self.write();
        if state.vhosts.remove(name).is_none() {
            return false;
        }
        self.forget(VHOST, name.to_owned());
        state.drop_permissions(self, |vhost, _| vhost == name, by);
        self.drop_parameters(&mut state, name);
        let state = &mut *state;
        for (kind, map) in [
            (POLICY, &mut state.policies),
            (OPERATOR_POLICY, &mut state.operator_policies),
        ] {
            let gone: Vec<_> = map.keys().filter(|(v, _)| v == name).cloned().collect();
            for key in gone {
                map.remove(&key);
                self.forget(kind, permission_key(&key.0, &key.1));
            }
        }
        true
    }

    /// Replaces a vhost's limits.
    pub fn set_vhost_limits(&self, name: &str, limits: Limits) -> Result<(), MetaError> {
        check_limits(&limits, VHOST_LIMITS)?;
        let mut record = self
            .vhost(name)
            .ok_or_else(|| MetaError::NoSuchVhost(name.to_owned()))?;
        record.limits = limits;
        self.put_vhost(record, INTERNAL_USER);
        Ok(())
    }

    // ----- users

    /// Replaces a user's limits.
    pub fn set_user_limits(&self, name: &str, limits: Limits) -> Result<(), MetaError> {
        check_limits(&limits, USER_LIMITS)?;
        let mut user = self
            .user(name)
            .ok_or_else(|| MetaError::NoSuchUser(name.to_owned()))?;
        user.limits = limits;
        self.persist(USER, user.name.clone(), &user);
        self.write().users.insert(user.name.clone(), user);
        Ok(())
    }

    pub fn users(&self) -> Vec<User> {
        self.read().users.values().cloned().collect()
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.read().users.get(name).cloned()
    }

    /// Creates or replaces a user; `by` is who asked, for the events.
    pub fn put_user(&self, user: User, by: &str) {
        self.persist(USER, user.name.clone(), &user);
        let old = self.write().users.insert(user.name.clone(), user.clone());
        self.user_put(old.as_ref(), &user, by);
    }

    /// Removes a user and its permissions; false if there was none.
    pub fn remove_user(&self, name: &str, by: &str) -> bool {
        let mut state = self.write();
        if state.users.remove(name).is_none() {
            return false;
        }
        self.forget(USER, name.to_owned());
        state.drop_permissions(self, |_, user| user == name, by);
        self.user_deleted(name, by);
        true
    }

    /// The user, if `password` is theirs.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<User> {
        self.read()
            .users
            .get(name)
            .filter(|u| u.password_matches(password))
            .cloned()
    }

    // ----- permissions

    pub fn set_permissions(&self, spec: PermissionSpec, by: &str) -> Result<(), MetaError> {
        let permission = Permission::new(spec.clone())?;
        let mut state = self.write();
        if !state.users.contains_key(&spec.user) {
            return Err(MetaError::NoSuchUser(spec.user));
        }
        if !state.vhosts.contains_key(&spec.vhost) {
            return Err(MetaError::NoSuchVhost(spec.vhost));
        }
        self.persist(PERMISSION, permission_key(&spec.vhost, &spec.user), &spec);
        self.permission_created(&spec, by);
        state
            .permissions
            .insert((spec.vhost, spec.user), Arc::new(permission));
        Ok(())
    }

    /// Removes a user's permissions in a vhost; false if there were none.
    pub fn clear_permissions(&self, user: &str, vhost: &str, by: &str) -> bool {
        let key = (vhost.to_owned(), user.to_owned());
        let removed = self.write().permissions.remove(&key).is_some();
        if removed {
            self.forget(PERMISSION, permission_key(vhost, user));
            self.permission_deleted(user, vhost, by);
        }
        removed
    }

    /// A user's permissions in a vhost; `None`: the user may not use it at all.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<Arc<Permission>> {
        let key = (vhost.to_owned(), user.to_owned());
        self.read().permissions.get(&key).cloned()
    }

    /// Sets a user's topic permissions on one exchange of a vhost.
    pub fn set_topic_permissions(&self, spec: TopicPermissionSpec) -> Result<(), MetaError> {
        let permission = TopicPermission::new(spec.clone())?;
        let mut state = self.write();
        if !state.users.contains_key(&spec.user) {
            return Err(MetaError::NoSuchUser(spec.user));
        }
        if !state.vhosts.contains_key(&spec.vhost) {
            return Err(MetaError::NoSuchVhost(spec.vhost));
        }
        let key = topic_key(&spec.vhost, &spec.user, &spec.exchange);
        self.persist(TOPIC_PERMISSION, key, &spec);
        state
            .topics
            .insert((spec.vhost, spec.user, spec.exchange), Arc::new(permission));
        Ok(())
    }

    /// Removes a user's topic permissions in a vhost, on one exchange or (`None`) on all;
    /// false if there were none.
    pub fn clear_topic_permissions(&self, user: &str, vhost: &str, exchange: Option<&str>) -> bool {
        let mut state = self.write();
        let gone: Vec<_> = state
            .topics
            .keys()
            .filter(|(v, u, x)| v == vhost && u == user && exchange.is_none_or(|e| e == x))
            .cloned()
            .collect();
        for key in &gone {
            state.topics.remove(key);
            self.forget(TOPIC_PERMISSION, topic_key(&key.0, &key.1, &key.2));
        }
        !gone.is_empty()
    }

    /// A user's topic permissions in a vhost, by exchange.
    pub fn topic_permissions(
        &self,
        user: &str,
        vhost: &str,
    ) -> std::collections::HashMap<String, Arc<TopicPermission>> {
        self.read()
            .topics
            .iter()
            .filter(|((v, u, _), _)| v == vhost && u == user)
            .map(|((_, _, x), p)| (x.clone(), p.clone()))
            .collect()
    }

    pub fn all_topic_permissions(&self) -> Vec<TopicPermissionSpec> {
        let state = self.read();
        state.topics.values().map(|p| p.spec.clone()).collect()
    }

    // ----- policies

    /// Sets a policy (`operator`: an operator policy), replacing one of the same name.
    pub fn set_policy(
        &self,
        spec: PolicySpec,
        operator: bool,
        by: &str,
    ) -> Result<(), PolicyError> {
        let policy = Arc::new(Policy::new(spec.clone(), operator)?);
        let mut state = self.write();
        if !state.vhosts.contains_key(&spec.vhost) {
            return Err(PolicyError::Invalid(format!(
                "no_such_vhost: {}",
                spec.vhost
            )));
        }
        let kind = if operator { OPERATOR_POLICY } else { POLICY };
        self.persist(kind, permission_key(&spec.vhost, &spec.name), &spec);
        self.policy_set(&spec, by);
        let map = match operator {
            true => &mut state.operator_policies,
            false => &mut state.policies,
        };
        map.insert((spec.vhost, spec.name), policy);
        Ok(())
    }

    /// Removes a policy; false if there was none.
    pub fn clear_policy(&self, vhost: &str, name: &str, operator: bool, by: &str) -> bool {
        let mut state = self.write();
        let map = match operator {
            true => &mut state.operator_policies,
            false => &mut state.policies,
        };
        let removed = map.remove(&(vhost.to_owned(), name.to_owned())).is_some();
        if removed {
            let kind = if operator { OPERATOR_POLICY } else { POLICY };
            self.forget(kind, permission_key(vhost, name));
            self.policy_cleared(vhost, name, by);
        }
        removed
    }

    /// The policies (or operator policies) of a vhost.
    pub fn policies(&self, vhost: &str, operator: bool) -> Vec<PolicySpec> {
        let state = self.read();
        let map = match operator {
            true => &state.operator_policies,
            false => &state.policies,
        };
        map.iter()
            .filter(|((v, _), _)| v == vhost)
            .map(|(_, p)| p.spec.clone())
            .collect()
    }

    /// The policy and the operator policy that apply to an object of a vhost.
    fn applying(
        &self,
        vhost: &str,
        target: Target,
        name: &str,
    ) -> (Option<Arc<Policy>>, Option<Arc<Policy>>) {
        let state = self.read();
        let of_vhost = |map: &BTreeMap<(String, String), Arc<Policy>>| {
            policies::pick(
                map.iter().filter(|((v, _), _)| v == vhost).map(|(_, p)| p),
                target,
                name,
            )
        };
        (
            of_vhost(&state.policies),
            of_vhost(&state.operator_policies),
        )
    }

    /// What the policies that apply to a queue set for it.
    pub fn queue_overrides(
        &self,
        vhost: &str,
        queue: &str,
    ) -> crate::broker::queue::PolicyOverrides {
        let (policy, operator) = self.applying(vhost, Target::Queue, queue);
        policies::queue_overrides(policy.as_deref(), operator.as_deref())
    }

    /// The definition the policies that apply to a queue make together (management API).
    pub fn queue_policy_definition(
        &self,
        vhost: &str,
        queue: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let (policy, operator) = self.applying(vhost, Target::Queue, queue);
        policies::effective_definition(policy.as_deref(), operator.as_deref())
    }

    /// The name of the policy that applies to an exchange, if any.
    pub fn exchange_policy(&self, vhost: &str, exchange: &str) -> Option<String> {
        let (policy, _) = self.applying(vhost, Target::Exchange, exchange);
        Some(policy?.spec.name.clone())
    }

    /// The alternate exchange the policy that applies to an exchange sets, if any.
    pub fn policy_alternate_exchange(&self, vhost: &str, exchange: &str) -> Option<String> {
        let (policy, _) = self.applying(vhost, Target::Exchange, exchange);
        policy?.alternate_exchange()
    }

    pub fn all_permissions(&self) -> Vec<PermissionSpec> {
        let state = self.read();
        state.permissions.values().map(|p| p.spec.clone()).collect()
    }
}

impl State {
    fn load(&mut self, r: &MetaRecord) -> Result<(), String> {
        let text = |e: serde_json::Error| e.to_string();
        match r.kind {
            VHOST => {
                let v: VhostRecord = serde_json::from_slice(&r.value).map_err(text)?;
                self.vhosts.insert(v.name.clone(), v);
            }
            USER => {
                let u: User = serde_json::from_slice(&r.value).map_err(text)?;
                self.users.insert(u.name.clone(), u);
            }
            PERMISSION => {
                let spec: PermissionSpec = serde_json::from_slice(&r.value).map_err(text)?;
                let key = (spec.vhost.clone(), spec.user.clone());
                let p = Permission::new(spec).map_err(|e| e.to_string())?;
                self.permissions.insert(key, Arc::new(p));
            }
            POLICY | OPERATOR_POLICY => {
                let spec: PolicySpec = serde_json::from_slice(&r.value).map_err(text)?;
                let key = (spec.vhost.clone(), spec.name.clone());
                let operator = r.kind == OPERATOR_POLICY;
                let p = Policy::new(spec, operator).map_err(|e| e.to_string())?;
                let map = match operator {
                    true => &mut self.operator_policies,
                    false => &mut self.policies,
                };
                map.insert(key, Arc::new(p));
            }
            TOPIC_PERMISSION => {
                let spec: TopicPermissionSpec = serde_json::from_slice(&r.value).map_err(text)?;
                let key = (spec.vhost.clone(), spec.user.clone(), spec.exchange.clone());
                let p = TopicPermission::new(spec).map_err(|e| e.to_string())?;
                self.topics.insert(key, Arc::new(p));
            }
            parameters::GLOBAL_PARAMETER | parameters::PARAMETER => self.load_parameter(r)?,
            other => return Err(format!("unknown kind {:?}", other as char)),
        }
        Ok(())
    }
}

/// A permission's key in the store: vhost and user, which RabbitMQ names may hold anything
/// but NUL.
fn permission_key(vhost: &str, user: &str) -> String {
    format!("{vhost}\0{user}")
}

fn topic_key(vhost: &str, user: &str, exchange: &str) -> String {
    format!("{vhost}\0{user}\0{exchange}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Store;
    use permissions::Access;

    fn defaults() -> Defaults {
        Defaults {
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
        }
    }

    fn open(store: &Arc<MemoryStore>) -> Metadata {
        let records = store.load().unwrap().meta;
        let handle = Arc::new(StoreHandle::start(store.clone(), 1, 1, Default::default()));
        Metadata::recover(
            handle,
            records,
            &defaults(),
            crate::broker::events::channel().0,
        )
    }

    fn close(m: Metadata) {
        m.store.close();
    }

    #[test]
    fn a_new_store_gets_the_default_user_vhost_and_permissions() {
        let store = Arc::new(MemoryStore::default());
        let m = open(&store);
        let guest = m.authenticate("guest", "guest").expect("guest logs in");
        assert!(guest.has_tag("administrator"));
        assert!(m.authenticate("guest", "nope").is_none());
        let p = m.permissions("guest", "/").expect("guest may use /");
        assert!(p.allows(Access::Configure, "anything"));
        assert_eq!(m.vhost("/").unwrap().description, "Default virtual host");
        close(m);
    }

    #[test]
    fn changes_survive_a_reopen_and_removals_take_permissions_with_them() {
        let store = Arc::new(MemoryStore::default());
        let m = open(&store);
        m.put_vhost(VhostRecord::named("shop"), "guest");
        m.put_user(User::new("alice", Some("pw"), Vec::new()), "guest");
        let spec = |user: &str, vhost: &str| PermissionSpec {
            user: user.into(),
            vhost: vhost.into(),
            configure: "^orders".into(),
            write: ".*".into(),
            read: "".into(),
        };
        m.set_permissions(spec("alice", "shop"), "guest").unwrap();
        m.set_permissions(spec("guest", "shop"), "guest").unwrap();
        assert_eq!(
            m.set_permissions(spec("nobody", "shop"), "guest"),
            Err(MetaError::NoSuchUser("nobody".into()))
        );
        assert_eq!(
            m.set_permissions(spec("alice", "nowhere"), "guest"),
            Err(MetaError::NoSuchVhost("nowhere".into()))
        );
        assert!(m.remove_user("guest", "guest"));
        close(m);

        let m = open(&store);
        assert!(m.authenticate("alice", "pw").is_some());
        assert!(m.user("guest").is_none(), "removed users stay removed");
        assert!(m.permissions("guest", "shop").is_none());
        let p = m.permissions("alice", "shop").unwrap();
        assert!(p.allows(Access::Configure, "orders-eu"));
        assert!(!p.allows(Access::Read, "orders-eu"));
        assert!(m.remove_vhost("shop", "guest"));
        assert!(m.permissions("alice", "shop").is_none());
        close(m);

        let m = open(&store);
        assert!(m.vhost("shop").is_none());
        assert!(m.permissions("alice", "shop").is_none());
        assert!(m.vhost("/").is_some(), "not a new store: no defaults again");
        close(m);
    }

    #[tokio::test]
    async fn flush_waits_for_the_store_to_have_the_changes() {
        let store = Arc::new(MemoryStore::default());
        let m = open(&store);
        m.put_user(User::new("erin", Some("pw"), Vec::new()), "guest");
        assert!(m.flush().await);
        let kept = store.load().unwrap().meta;
        assert!(kept.iter().any(|r| r.kind == USER && r.key == "erin"));
        close(m);
    }
}
