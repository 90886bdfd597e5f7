//! A user's permissions in one vhost: three regular expressions over resource names, for
//! configure (declare, delete), write (publish, bind a queue) and read (consume, get, purge,
//! bind from an exchange). As in RabbitMQ a pattern matches anywhere in the name unless it
//! anchors itself, the empty pattern matches nothing, and the default exchange is named
//! `amq.default` when it is checked.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What an operation needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// The patterns as they are set and exported (RabbitMQ's definitions format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionSpec {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// The patterns, compiled.
#[derive(Debug, Clone)]
pub struct Permission {
    pub spec: PermissionSpec,
    configure: Regex,
    write: Regex,
    read: Regex,
}

/// A pattern that does not compile, with the compiler's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression '{pattern}': {reason}")]
pub struct BadPattern {
    pub pattern: String,
    pub reason: String,
}

/// Compiles a pattern the way RabbitMQ reads it: "" matches nothing.
pub fn compile(pattern: &str) -> Result<Regex, BadPattern> {
    let effective = if pattern.is_empty() { "^$" } else { pattern };
    Regex::new(effective).map_err(|e| BadPattern {
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })
}

impl Permission {
    pub fn new(spec: PermissionSpec) -> Result<Self, BadPattern> {
        Ok(Self {
            configure: compile(&spec.configure)?,
            write: compile(&spec.write)?,
            read: compile(&spec.read)?,
            spec,
        })
    }

    /// Whether `access` to the resource `name` is allowed.
    pub fn allows(&self, access: Access, name: &str) -> bool {
        let name = if name.is_empty() { "amq.default" } else { name };
        let pattern = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        pattern.is_match(name)
    }
}

/// A user's topic permissions on one topic exchange of a vhost (RabbitMQ's definitions
/// format): patterns over routing keys, write for publishing, read for binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissionSpec {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// The patterns, with `{username}` and `{vhost}` replaced and compiled.
#[derive(Debug, Clone)]
pub struct TopicPermission {
    pub spec: TopicPermissionSpec,
    write: Regex,
    read: Regex,
}

impl TopicPermission {
    pub fn new(spec: TopicPermissionSpec) -> Result<Self, BadPattern> {
        let expand = |pattern: &str| {
            pattern
                .replace("{username}", &spec.user)
                .replace("{vhost}", &spec.vhost)
        };
        Ok(Self {
            write: compile(&expand(&spec.write))?,
            read: compile(&expand(&spec.read))?,
            spec,
        })
    }

    /// Whether a routing key may be published with (`Write`) or bound with (`Read`).
    pub fn allows(&self, access: Access, routing_key: &str) -> bool {
        match access {
            Access::Write => self.write.is_match(routing_key),
            Access::Read | Access::Configure => self.read.is_match(routing_key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(configure: &str, write: &str, read: &str) -> Permission {
        Permission::new(PermissionSpec {
            user: "u".into(),
            vhost: "/".into(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })
        .unwrap()
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored_and_empty_matches_nothing() {
        let p = permission("^app-", "orders", "");
        assert!(p.allows(Access::Configure, "app-queue"));
        assert!(!p.allows(Access::Configure, "my-app-queue"), "anchored");
        assert!(p.allows(Access::Write, "new-orders-in"), "unanchored");
        assert!(!p.allows(Access::Read, "anything"));
        assert!(!p.allows(Access::Read, ""), "not even the default exchange");
    }

    #[test]
    fn the_default_exchange_is_checked_as_amq_default() {
        let p = permission(".*", "^amq\\.default$", ".*");
        assert!(p.allows(Access::Write, ""));
        assert!(!p.allows(Access::Write, "amq.direct"));
    }

    #[test]
    fn a_bad_pattern_is_refused_with_the_reason() {
        let spec = PermissionSpec {
            user: "u".into(),
            vhost: "/".into(),
            configure: "(".into(),
            write: ".*".into(),
            read: ".*".into(),
        };
        let e = Permission::new(spec).unwrap_err();
        assert_eq!(e.pattern, "(");
    }

    #[test]
    fn topic_patterns_expand_the_user_and_vhost() {
        let p = TopicPermission::new(TopicPermissionSpec {
            user: "lim".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: "^{vhost}".into(),
        })
        .unwrap();
        assert!(p.allows(Access::Write, "lim.a"));
        assert!(!p.allows(Access::Write, "x.a"));
        assert!(p.allows(Access::Read, "/x"));
        assert!(!p.allows(Access::Read, "x"));
    }
}
