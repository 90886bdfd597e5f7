//! Users: a name, a password hash (or none), and tags that say what the management API lets
//! them do. Stored and exported in RabbitMQ's definitions format.

use super::password::{self, Hashing};
use serde::{Deserialize, Serialize};

/// The tags RabbitMQ gives meaning to; others are kept and shown but grant nothing.
pub const KNOWN_TAGS: &[&str] = &[
    "administrator",
    "monitoring",
    "policymaker",
    "management",
    "impersonator",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// Base64 of salt ‖ digest; empty for a user without a password, who cannot log in with
    /// PLAIN or AMQPLAIN.
    pub password_hash: String,
    pub hashing_algorithm: Hashing,
    pub tags: Vec<String>,
    /// `max-connections`, `max-channels` (a negative value: no limit).
    #[serde(default, skip_serializing_if = "super::Limits::is_empty")]
    pub limits: super::Limits,
}

impl User {
    /// A user with `password` hashed as RabbitMQ hashes it (`None`: no password).
    pub fn new(name: &str, password: Option<&str>, tags: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            password_hash: password.map(password::hash).unwrap_or_default(),
            hashing_algorithm: Hashing::Sha256,
            tags,
            limits: super::Limits::new(),
        }
    }

    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }

    pub fn password_matches(&self, password: &str) -> bool {
        self.has_password()
            && password::verify(self.hashing_algorithm, &self.password_hash, password)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Tags as `rabbitmqctl set_user_tags` and the API take them: a comma-separated list.
/// Tags as RabbitMQ accepts them: a comma-separated string (older definitions files, the API)
/// or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    Text(String),
    List(Vec<String>),
}

impl Default for Tags {
    fn default() -> Self {
        Tags::List(Vec::new())
    }
}

impl Tags {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Tags::Text(t) => parse_tags(&t),
            Tags::List(l) => l,
        }
    }
}

pub fn parse_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_without_a_password_never_matches() {
        let u = User::new("svc", None, Vec::new());
        assert!(!u.has_password());
        assert!(!u.password_matches(""));
        let v = User::new("bob", Some("pw"), parse_tags("administrator, monitoring"));
        assert!(v.password_matches("pw"));
        assert!(v.has_tag("monitoring"));
        assert_eq!(parse_tags(""), Vec::<String>::new());
    }

    #[test]
    fn users_serialise_as_rabbitmq_exports_them() {
        let exported = r#"{"name":"alice","password_hash":"UclMGAgN/EqdnV+52Wf4tgHfIMT13OQBfesk052nENbC4D8r","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"]}"#;
        let u: User = serde_json::from_str(exported).unwrap();
        assert!(u.password_matches("s3cret"));
        assert_eq!(serde_json::to_string(&u).unwrap(), exported);
    }
}
