//! The list_* commands: which API list each reads, the info items rabbitmqctl accepts (and
//! where each is in the API's JSON), its default columns and banner.

use crate::client::{segment, Api};
use crate::error::{CtlError, CtlResult};
use crate::output::{Listing, Style};
use serde_json::Value;

/// One list command.
pub struct Spec {
    /// The banner, given the vhost.
    banner: fn(&str) -> String,
    /// The API path, given the vhost (already encoded).
    path: fn(&str) -> String,
    /// Info item → dotted path in the API's JSON (or a fixed value after `=`).
    items: &'static [(&'static str, &'static str)],
    defaults: &'static [&'static str],
}

const QUEUE_ITEMS: &[(&str, &str)] = &[
    ("name", "name"),
    ("vhost", "vhost"),
    ("durable", "durable"),
    ("auto_delete", "auto_delete"),
    ("exclusive", "exclusive"),
    ("arguments", "arguments"),
    ("policy", "policy"),
    ("operator_policy", "operator_policy"),
    ("effective_policy_definition", "effective_policy_definition"),
    ("messages", "messages"),
    ("messages_ready", "messages_ready"),
    ("messages_unacknowledged", "messages_unacknowledged"),
    ("messages_ram", "messages_ram"),
    ("messages_ready_ram", "messages_ready_ram"),
    ("messages_unacknowledged_ram", "messages_unacknowledged_ram"),
    ("messages_persistent", "messages_persistent"),
    ("message_bytes", "message_bytes"),
    ("message_bytes_ready", "message_bytes_ready"),
    (
        "message_bytes_unacknowledged",
        "message_bytes_unacknowledged",
    ),
    ("message_bytes_ram", "message_bytes_ram"),
    ("message_bytes_persistent", "message_bytes_persistent"),
    ("consumers", "consumers"),
    ("consumer_utilisation", "consumer_utilisation"),
    ("consumer_capacity", "consumer_capacity"),
    ("memory", "memory"),
    ("state", "state"),
    ("type", "type"),
    ("exclusive_consumer_tag", "exclusive_consumer_tag"),
    ("single_active_consumer_tag", "single_active_consumer_tag"),
    ("head_message_timestamp", "head_message_timestamp"),
    ("node", "node"),
];

const EXCHANGE_ITEMS: &[(&str, &str)] = &[
    ("name", "name"),
    ("vhost", "vhost"),
    ("type", "type"),
    ("durable", "durable"),
    ("auto_delete", "auto_delete"),
    ("internal", "internal"),
    ("arguments", "arguments"),
    ("policy", "policy"),
];

const BINDING_ITEMS: &[(&str, &str)] = &[
    ("source_name", "source"),
    ("source_kind", "=exchange"),
    ("destination_name", "destination"),
    ("destination_kind", "destination_type"),
    ("routing_key", "routing_key"),
    ("arguments", "arguments"),
    ("vhost", "vhost"),
];

const CONNECTION_ITEMS: &[(&str, &str)] = &[
    ("name", "name"),
    ("user", "user"),
    ("vhost", "vhost"),
    ("peer_host", "peer_host"),
    ("peer_port", "peer_port"),
    ("host", "host"),
    ("port", "port"),
    ("state", "state"),
    ("protocol", "protocol"),
    ("channels", "channels"),
    ("channel_max", "channel_max"),
    ("frame_max", "frame_max"),
    ("timeout", "timeout"),
    ("auth_mechanism", "auth_mechanism"),
    ("client_properties", "client_properties"),
    ("user_provided_name", "user_provided_name"),
    ("connected_at", "connected_at"),
    ("recv_oct", "recv_oct"),
    ("send_oct", "send_oct"),
    ("ssl", "ssl"),
    ("type", "type"),
    ("node", "node"),
];

const CHANNEL_ITEMS: &[(&str, &str)] = &[
    ("pid", "name"),
    ("name", "name"),
    ("connection", "connection_details.name"),
    ("number", "number"),
    ("user", "user"),
    ("vhost", "vhost"),
    ("transactional", "transactional"),
    ("confirm", "confirm"),
    ("consumer_count", "consumer_count"),
    ("messages_unacknowledged", "messages_unacknowledged"),
    ("messages_unconfirmed", "messages_unconfirmed"),
    ("messages_uncommitted", "messages_uncommitted"),
    ("acks_uncommitted", "acks_uncommitted"),
    ("prefetch_count", "prefetch_count"),
    ("global_prefetch_count", "global_prefetch_count"),
    ("state", "state"),
    ("node", "node"),
];

const CONSUMER_ITEMS: &[(&str, &str)] = &[
    ("queue_name", "queue.name"),
    ("channel_pid", "channel_details.name"),
    ("consumer_tag", "consumer_tag"),
    ("ack_required", "ack_required"),
    ("prefetch_count", "prefetch_count"),
    ("active", "active"),
    ("activity_status", "activity_status"),
    ("exclusive", "exclusive"),
    ("arguments", "arguments"),
];

const USER_ITEMS: &[(&str, &str)] = &[("user", "name"), ("tags", "tags")];

const VHOST_ITEMS: &[(&str, &str)] = &[
    ("name", "name"),
    ("description", "description"),
    ("tags", "tags"),
    ("default_queue_type", "default_queue_type"),
    ("tracing", "tracing"),
    ("messages", "messages"),
    ("messages_ready", "messages_ready"),
    ("messages_unacknowledged", "messages_unacknowledged"),
];

const FEATURE_FLAG_ITEMS: &[(&str, &str)] = &[
    ("name", "name"),
    ("state", "state"),
    ("stability", "stability"),
    ("provided_by", "provided_by"),
    ("desc", "desc"),
    ("doc_url", "doc_url"),
];

fn vhost_path(kind: &str, vhost: &str) -> String {
    format!("/api/{kind}/{vhost}")
}

pub const QUEUES: Spec = Spec {
    banner: |v| format!("Listing queues for vhost {v} ..."),
    path: |v| vhost_path("queues", v),
    items: QUEUE_ITEMS,
    defaults: &["name", "messages"],
};

pub const EXCHANGES: Spec = Spec {
    banner: |v| format!("Listing exchanges for vhost {v} ..."),
    path: |v| vhost_path("exchanges", v),
    items: EXCHANGE_ITEMS,
    defaults: &["name", "type"],
};

pub const BINDINGS: Spec = Spec {
    banner: |v| format!("Listing bindings for vhost {v}..."),
    path: |v| vhost_path("bindings", v),
    items: BINDING_ITEMS,
    defaults: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
};

pub const CONNECTIONS: Spec = Spec {
    banner: |_| "Listing connections ...".into(),
    path: |_| "/api/connections".into(),
    items: CONNECTION_ITEMS,
    defaults: &["user", "peer_host", "peer_port", "state"],
};

pub const CHANNELS: Spec = Spec {
    banner: |_| "Listing channels ...".into(),
    path: |_| "/api/channels".into(),
    items: CHANNEL_ITEMS,
    defaults: &["pid", "user", "consumer_count", "messages_unacknowledged"],
};

pub const CONSUMERS: Spec = Spec {
    banner: |v| format!("Listing consumers in vhost {v} ..."),
    path: |v| vhost_path("consumers", v),
    items: CONSUMER_ITEMS,
    defaults: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
};

pub const USERS: Spec = Spec {
    banner: |_| "Listing users ...".into(),
    path: |_| "/api/users".into(),
    items: USER_ITEMS,
    defaults: &["user", "tags"],
};

pub const VHOSTS: Spec = Spec {
    banner: |_| "Listing vhosts ...".into(),
    path: |_| "/api/vhosts".into(),
    items: VHOST_ITEMS,
    defaults: &["name"],
};

pub const FEATURE_FLAGS: Spec = Spec {
    banner: |_| "Listing feature flags ...".into(),
    path: |_| "/api/feature-flags".into(),
    items: FEATURE_FLAG_ITEMS,
    defaults: &["name", "state"],
};

/// A dotted path into a JSON value; `=text` is the text itself.
fn pick(item: &Value, path: &str) -> Value {
    if let Some(fixed) = path.strip_prefix('=') {
        return Value::from(fixed);
    }
    path.split('.')
        .try_fold(item, |v, key| v.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Runs a list command: checks the info items, reads the list, prints it.
pub fn run(api: &Api, style: &Style, spec: &Spec, vhost: &str, items: &[String]) -> CtlResult<()> {
    let columns: Vec<String> = match items.is_empty() {
        true => spec.defaults.iter().map(|c| c.to_string()).collect(),
        false => items.to_vec(),
    };
    let unknown: Vec<&str> = columns
        .iter()
        .filter(|c| !spec.items.iter().any(|(name, _)| name == c))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(CtlError::Usage(format!(
            "Info key(s) {} are not supported. Supported: {}",
            unknown.join(","),
            spec.items
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    style.banner(&(spec.banner)(vhost));
    let list = api.get(&(spec.path)(&segment(vhost)))?;
    let rows = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| {
                    let path = spec
                        .items
                        .iter()
                        .find(|(n, _)| n == c)
                        .map_or("", |(_, p)| *p);
                    pick(item, path)
                })
                .collect()
        })
        .collect();
    Listing { columns, rows }.print(style);
    Ok(())
}

/// Lists that are rows of fixed columns read straight from the API.
pub fn fixed(
    api: &Api,
    style: &Style,
    banner: &str,
    path: &str,
    columns: &[&str],
    keep: impl Fn(&Value) -> bool,
) -> CtlResult<()> {
    style.banner(banner);
    let list = api.get(path)?;
    let rows = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|item| keep(item))
        .map(|item| columns.iter().map(|c| pick(item, c)).collect())
        .collect();
    Listing {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
    .print(style);
    Ok(())
}

/// One object's limits, printed as rabbitmqctl prints them: the JSON object alone.
pub fn limits(api: &Api, style: &Style, banner: &str, path: &str) -> CtlResult<()> {
    style.banner(banner);
    let list = api.get(path)?;
    let limits = list
        .get(0)
        .map(|entry| entry["value"].clone())
        .unwrap_or_else(|| Value::Object(Default::default()));
    match style.formatter {
        crate::cli::Formatter::Json => println!("[\n{limits}\n]"),
        _ => println!("{limits}"),
    }
    Ok(())
}
