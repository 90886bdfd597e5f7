//! Definitions: everything but messages, in RabbitMQ's JSON format, so a file exported from
//! RabbitMQ recreates its users (with their passwords), vhosts, permissions, parameters,
//! policies, queues, exchanges and bindings in Warren, and back. Importing is additive and
//! idempotent: what exists stays (a queue declared differently is left as it is, as RabbitMQ
//! leaves it), what is missing is created. A file may also hold one vhost's definitions,
//! without vhost fields (the management API's `/api/definitions/{vhost}`).

use super::field_json::{json_to_table, table_to_json};
use super::metadata::parameters::{GlobalParameter, Parameter};
use super::metadata::password::Hashing;
use super::metadata::permissions::{PermissionSpec, TopicPermissionSpec};
use super::metadata::policies::{ApplyTo, PolicySpec};
use super::metadata::users::{Tags, User};
use super::metadata::{Limits, VhostRecord};
use super::vhost::{ExchangeSpec, QueueSpec, VHost};
use super::Broker;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::warn;

/// The RabbitMQ version whose format the export follows.
const FORMAT_VERSION: &str = "3.10.8";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Definitions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vhosts: Option<Vec<VhostDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_permissions: Option<Vec<TopicPermissionSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_parameters: Option<Vec<GlobalParameter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<QueueDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchanges: Option<Vec<ExchangeDef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<BindingDef>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub hashing_algorithm: Hashing,
    #[serde(default, serialize_with = "tags_as_list")]
    pub tags: Tags,
    #[serde(default)]
    pub limits: Limits,
}

fn tags_as_list<S: serde::Serializer>(tags: &Tags, s: S) -> Result<S::Ok, S::Error> {
    tags.clone().into_vec().serialize(s)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, serialize_with = "tags_as_list")]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    /// Where RabbitMQ 3.11+ puts description, tags and default queue type.
    #[serde(default, skip_serializing)]
    pub metadata: Option<VhostMetadata>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VhostMetadata {
    pub description: Option<String>,
    pub tags: Option<Tags>,
    pub default_queue_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParameterDef {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub component: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default)]
    pub apply_to: ApplyTo,
    pub definition: Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("no_such_vhost: {0}")]
    NoSuchVhost(String),
    #[error("{0}")]
    Invalid(String),
}

impl Broker {
    /// Everything, or (`Some(vhost)`) one vhost's objects without their vhost fields.
    pub fn export_definitions(&self, only: Option<&str>) -> Definitions {
        let version = Some(FORMAT_VERSION.to_owned());
        let vhosts: Vec<String> = match only {
            Some(v) => vec![v.to_owned()],
            None => self.metadata.vhosts().into_iter().map(|v| v.name).collect(),
        };
        let tag = |v: &str| only.is_none().then(|| v.to_owned());
        let mut defs = Definitions {
            rabbit_version: version.clone(),
            parameters: Some(self.parameter_defs(&vhosts, only.is_none())),
            policies: Some(self.policy_defs(&vhosts)),
            queues: Some(Vec::new()),
            exchanges: Some(Vec::new()),
            bindings: Some(Vec::new()),
            ..Definitions::default()
        };
        if only.is_none() {
            defs.rabbitmq_version = version;
            defs.product_name = Some("Warren".into());
            defs.product_version = Some(env!("CARGO_PKG_VERSION").into());
            defs.users = Some(self.user_defs());
            defs.vhosts = Some(self.vhost_defs());
            defs.permissions = Some(self.metadata.all_permissions());
            defs.topic_permissions = Some(self.metadata.all_topic_permissions());
            defs.global_parameters = Some(self.metadata.global_parameters());
        }
        for name in &vhosts {
            if let Some(vhost) = self.vhost(name) {
                export_objects(&vhost, tag(name), &mut defs);
            }
        }
        defs
    }

    fn user_defs(&self) -> Vec<UserDef> {
        self.metadata
            .users()
            .into_iter()
            .map(|u| UserDef {
                name: u.name,
                password_hash: u.password_hash,
                hashing_algorithm: u.hashing_algorithm,
                tags: Tags::List(u.tags),
                limits: u.limits,
            })
            .collect()
    }

    fn vhost_defs(&self) -> Vec<VhostDef> {
        self.metadata
            .vhosts()
            .into_iter()
            .map(|v| VhostDef {
                name: v.name,
                description: v.description,
                tags: Tags::List(v.tags),
                default_queue_type: v.default_queue_type,
                metadata: None,
            })
            .collect()
    }

    fn parameter_defs(&self, vhosts: &[String], with_vhost: bool) -> Vec<ParameterDef> {
        let limits = self
            .metadata
            .vhosts()
            .into_iter()
            .filter(|v| !v.limits.is_empty())
            .map(|v| Parameter {
                value: serde_json::json!(v.limits),
                vhost: v.name,
                component: "vhost-limits".into(),
                name: "limits".into(),
            });
        limits
            .chain(self.metadata.parameters())
            .filter(|p| vhosts.contains(&p.vhost))
            .map(|p| ParameterDef {
                value: p.value,
                vhost: with_vhost.then_some(p.vhost),
                component: p.component,
                name: p.name,
            })
            .collect()
    }

    fn policy_defs(&self, vhosts: &[String]) -> Vec<PolicyDef> {
        vhosts
            .iter()
            .flat_map(|v| self.metadata.policies(v, false))
            .map(|p| PolicyDef {
                vhost: Some(p.vhost),
                name: p.name,
                pattern: p.pattern,
                apply_to: p.apply_to,
                definition: p.definition,
                priority: p.priority,
            })
            .collect()
    }

    /// Imports definitions, into `into` when they are one vhost's. Stops at the first item
    /// that cannot be imported (what came before it stays, as in RabbitMQ). `by` is the user
    /// importing them, for events.
    pub fn import_definitions(
        &self,
        defs: Definitions,
        into: Option<&str>,
        by: &str,
    ) -> Result<(), ImportError> {
        let vhost_of = |v: Option<String>| -> Result<String, ImportError> {
            match (into, v) {
                (Some(into), _) => Ok(into.to_owned()),
                (None, Some(v)) => Ok(v),
                (None, None) => Err(ImportError::Invalid("an item has no vhost".into())),
            }
        };
        if into.is_none() {
            self.import_tenancy(&defs, by)?;
        }
        for p in defs.parameters.unwrap_or_default() {
            let vhost = vhost_of(p.vhost)?;
            self.import_parameter(Parameter {
                value: p.value,
                vhost,
                component: p.component,
                name: p.name,
            })?;
        }
        for p in defs.policies.unwrap_or_default() {
            let spec = PolicySpec {
                vhost: vhost_of(p.vhost)?,
                name: p.name,
                pattern: p.pattern,
                apply_to: p.apply_to,
                priority: p.priority,
                definition: p.definition,
            };
            self.existing(&spec.vhost)?;
            self.set_policy(spec, false, by)
                .map_err(|e| ImportError::Invalid(e.to_string()))?;
        }
        for q in defs.queues.unwrap_or_default() {
            let vhost = self.existing(&vhost_of(q.vhost.clone())?)?;
            import_queue(self, &vhost, q, by);
        }
        for x in defs.exchanges.unwrap_or_default() {
            let vhost = self.existing(&vhost_of(x.vhost.clone())?)?;
            import_exchange(&vhost, x, by);
        }
        for b in defs.bindings.unwrap_or_default() {
            let vhost = self.existing(&vhost_of(b.vhost.clone())?)?;
            import_binding(self, &vhost, b, by);
        }
        Ok(())
    }

    fn existing(&self, name: &str) -> Result<std::sync::Arc<VHost>, ImportError> {
        self.vhost(name)
            .filter(|_| self.metadata.vhost(name).is_some())
            .ok_or_else(|| ImportError::NoSuchVhost(name.to_owned()))
    }

    /// Users, vhosts, permissions, topic permissions and global parameters.
    fn import_tenancy(&self, defs: &Definitions, by: &str) -> Result<(), ImportError> {
        for u in defs.users.iter().flatten() {
            let user = User {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                hashing_algorithm: u.hashing_algorithm,
                tags: u.tags.clone().into_vec(),
                limits: u.limits.clone(),
            };
            self.metadata.put_user(user, by);
        }
        for v in defs.vhosts.iter().flatten() {
            self.add_vhost(vhost_record(self.metadata.vhost(&v.name), v), by);
        }
        let invalid = |e: super::metadata::MetaError| ImportError::Invalid(e.to_string());
        for p in defs.permissions.iter().flatten() {
            self.metadata
                .set_permissions(p.clone(), by)
                .map_err(invalid)?;
        }
        for p in defs.topic_permissions.iter().flatten() {
            self.metadata
                .set_topic_permissions(p.clone())
                .map_err(invalid)?;
        }
        for p in defs.global_parameters.iter().flatten() {
            // Set by RabbitMQ itself, meaningless elsewhere.
            if p.name != "internal_cluster_id" {
                self.metadata.set_global_parameter(p.clone());
            }
        }
        Ok(())
    }

    fn import_parameter(&self, p: Parameter) -> Result<(), ImportError> {
        self.existing(&p.vhost)?;
        if p.component != "vhost-limits" {
            self.metadata.set_parameter(p);
            return Ok(());
        }
        let limits: Limits = serde_json::from_value(p.value)
            .map_err(|e| ImportError::Invalid(format!("vhost limits: {e}")))?;
        self.set_vhost_limits(&p.vhost, limits)
            .map_err(|e| ImportError::Invalid(e.to_string()))
    }
}

/// A vhost's record from its definition, keeping the limits an existing one has.
fn vhost_record(existing: Option<VhostRecord>, v: &VhostDef) -> VhostRecord {
    let mut record = existing.unwrap_or_else(|| VhostRecord::named(&v.name));
    let meta = v.metadata.clone().unwrap_or_default();
    let description = meta.description.unwrap_or_else(|| v.description.clone());
    if !description.is_empty() {
        record.description = description;
    }
    let tags = meta.tags.unwrap_or_else(|| v.tags.clone()).into_vec();
    if !tags.is_empty() {
        record.tags = tags;
    }
    if let Some(q) = meta
        .default_queue_type
        .or_else(|| v.default_queue_type.clone())
    {
        record.default_queue_type = Some(q);
    }
    record
}

fn export_objects(vhost: &VHost, tag: Option<String>, defs: &mut Definitions) {
    let (queues, exchanges, bindings) = (
        defs.queues.get_or_insert_with(Vec::new),
        defs.exchanges.get_or_insert_with(Vec::new),
        defs.bindings.get_or_insert_with(Vec::new),
    );
    for q in vhost.queues() {
        if q.exclusive_owner.is_none() {
            queues.push(QueueDef {
                name: q.name.to_string(),
                vhost: tag.clone(),
                durable: q.durable,
                auto_delete: q.auto_delete,
                arguments: object(table_to_json(&q.arguments)),
            });
        }
    }
    for x in vhost.exchanges() {
        let name = x.name.as_str();
        if !name.is_empty() && !name.starts_with("amq.") {
            exchanges.push(ExchangeDef {
                name: name.to_owned(),
                vhost: tag.clone(),
                kind: x.type_name().to_owned(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: object(table_to_json(&x.arguments)),
            });
        }
        for b in x.bindings() {
            let (destination, kind) = match &b.destination {
                super::exchange::Destination::Queue(q) => (q.name.to_string(), "queue"),
                super::exchange::Destination::Exchange(d) => (d.name.to_string(), "exchange"),
            };
            bindings.push(BindingDef {
                source: name.to_owned(),
                vhost: tag.clone(),
                destination,
                destination_type: kind.to_owned(),
                routing_key: b.routing_key.to_string(),
                arguments: object(table_to_json(&b.arguments)),
            });
        }
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// Declares a queue unless it exists; a declaration that fails is logged and skipped, as
/// RabbitMQ skips it.
fn import_queue(broker: &Broker, vhost: &VHost, q: QueueDef, by: &str) {
    let spec = QueueSpec {
        name: q.name.clone(),
        durable: q.durable,
        auto_delete: q.auto_delete,
        arguments: json_to_table(&q.arguments),
        ..QueueSpec::default()
    };
    if vhost.queue(&q.name).is_err() {
        if let Err(e) = vhost.declare_queue(spec, broker.next_connection_id(), by) {
            warn!(
                "definitions: queue '{}' in vhost '{}' skipped: {e}",
                q.name, vhost.name
            );
        }
    }
}

fn import_exchange(vhost: &VHost, x: ExchangeDef, by: &str) {
    if x.name.is_empty() || x.name.starts_with("amq.") || vhost.exchange(&x.name).is_ok() {
        return;
    }
    let spec = ExchangeSpec {
        name: x.name.clone(),
        kind: x.kind,
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: json_to_table(&x.arguments),
        passive: false,
    };
    if let Err(e) = vhost.declare_exchange(spec, by) {
        warn!(
            "definitions: exchange '{}' in vhost '{}' skipped: {e}",
            x.name, vhost.name
        );
    }
}

fn import_binding(broker: &Broker, vhost: &VHost, b: BindingDef, by: &str) {
    let arguments = json_to_table(&b.arguments);
    let bound = match b.destination_type.as_str() {
        "queue" => vhost.bind_queue(
            &b.destination,
            &b.source,
            &b.routing_key,
            arguments,
            broker.next_connection_id(),
            by,
        ),
        _ => vhost.bind_exchange(&b.destination, &b.source, &b.routing_key, arguments, by),
    };
    if let Err(e) = bound {
        warn!(
            "definitions: binding of '{}' to '{}' in vhost '{}' skipped: {e}",
            b.source, b.destination, vhost.name
        );
    }
}
