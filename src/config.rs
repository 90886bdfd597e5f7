//! Warren's settings: serde data with the commented default file embedded in the binary.
//! Passed by value to `server::run`; never a global.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default configuration file, every key commented.
pub const DEFAULT_CONFIG: &str = include_str!("../config/warren.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bind: IpAddr,
    pub amqp_port: u16,
    pub http_port: u16,
    pub prometheus_port: u16,
    pub data_dir: PathBuf,
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    pub loopback_users: Vec<String>,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub max_message_size: u64,
    pub handshake_timeout: u64,
    pub close_linger: u64,
    pub queue_window: usize,
    pub paging_watermark: u64,
    /// Milliseconds between statistics samples (RabbitMQ's `collect_statistics_interval`).
    pub collect_statistics_interval: u64,
    /// A definitions file (RabbitMQ's format) imported at every start, as RabbitMQ's
    /// `load_definitions`.
    pub load_definitions: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            amqp_port: 5672,
            http_port: 15672,
            prometheus_port: 15692,
            data_dir: PathBuf::from("./warren-data"),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            loopback_users: vec!["guest".into()],
            frame_max: 131072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout: 10,
            close_linger: 30,
            queue_window: 2048,
            paging_watermark: 512 * 1024 * 1024,
            collect_statistics_interval: 5000,
            load_definitions: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a configuration file; keys it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a broker cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // 4096 is the spec's minimum frame size (FRAME_MIN_SIZE in 0-9-1 is 4096).
        if self.frame_max < 4096 {
            return Err(ConfigError::Invalid(format!(
                "frame_max {} is below 4096",
                self.frame_max
            )));
        }
        if self.channel_max == 0 {
            return Err(ConfigError::Invalid(
                "channel_max must be at least 1".into(),
            ));
        }
        if self.max_message_size == 0 || self.max_message_size > 512 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "max_message_size must be between 1 and 536870912".into(),
            ));
        }
        if self.collect_statistics_interval < 10 {
            return Err(ConfigError::Invalid(
                "collect_statistics_interval must be at least 10 (milliseconds)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_states_the_defaults() {
        let parsed: Config = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Config::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<Config>("no_such_key = 1").is_err());
        let small = Config {
            frame_max: 100,
            ..Config::default()
        };
        assert!(small.validate().is_err());
    }
}
