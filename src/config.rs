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
    /// Memory the broker may use before publishers are blocked: a fraction of the machine's
    /// (or the cgroup's) memory, or bytes (RabbitMQ's `vm_memory_high_watermark`).
    pub vm_memory_high_watermark: Limit,
    /// Free space the data directory's file system must keep before publishers are blocked:
    /// bytes, or a multiple of the memory (RabbitMQ's `disk_free_limit`).
    pub disk_free_limit: Limit,
    /// Milliseconds between checks of memory and disk against their limits.
    pub memory_monitor_interval: u64,
    /// Milliseconds a consumer may hold a delivery unacknowledged before its channel is
    /// closed and the delivery requeued (RabbitMQ's `consumer_timeout`); 0: no limit.
    pub consumer_timeout: u64,
    /// Connections the broker admits at most, over every vhost and user (RabbitMQ's
    /// `connection_max`); none: no limit.
    #[serde(alias = "connection_max")]
    pub max_connections: Option<usize>,
    /// Consumers a channel may have at most (RabbitMQ's `consumer_max_per_channel`); none: no
    /// limit.
    pub consumer_max_per_channel: Option<usize>,
    /// The AMQPS port (RabbitMQ's 5671), served when `tls_cert` is set.
    pub amqps_port: u16,
    /// The management API's HTTPS port (RabbitMQ's 15671), served when `tls_cert` is set.
    pub https_port: u16,
    /// The server's certificate chain (PEM). Setting it turns TLS on.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// The authorities client certificates must come from (PEM), for `tls_verify = "peer"`.
    pub tls_ca: Option<PathBuf>,
    /// Whether clients are asked for a certificate (RabbitMQ's `ssl_options.verify`).
    pub tls_verify: TlsVerify,
    /// With `tls_verify = "peer"`, refuse clients without a certificate
    /// (RabbitMQ's `ssl_options.fail_if_no_peer_cert`).
    pub tls_fail_if_no_peer_cert: bool,
}

/// Whether TLS clients are asked for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsVerify {
    /// No client certificate is asked for (`verify_none`).
    #[default]
    #[serde(rename = "none", alias = "verify_none")]
    None,
    /// Clients are asked for one, verified against `tls_ca` (`verify_peer`); SASL EXTERNAL is
    /// offered to those that present one.
    #[serde(rename = "peer", alias = "verify_peer")]
    Peer,
}

impl std::str::FromStr for TlsVerify {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" | "verify_none" => Ok(Self::None),
            "peer" | "verify_peer" => Ok(Self::Peer),
            other => Err(format!("'{other}' is neither none nor peer")),
        }
    }
}

/// A resource limit: relative (a fraction or multiple of total memory) or absolute bytes.
/// Written as a number (`0.4` relative; a whole number of bytes absolute) or a string with a
/// unit (`"2GB"`, `"512MiB"`, `"50MB"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Relative(f64),
    Absolute(u64),
}

impl Limit {
    /// The limit in bytes, given the total memory relative limits are fractions of.
    pub fn bytes(self, total_memory: u64) -> u64 {
        match self {
            Limit::Absolute(b) => b,
            Limit::Relative(f) => (total_memory as f64 * f) as u64,
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let bad = || format!("'{text}' is neither a fraction (0.4) nor an amount (50MB)");
        if unit.is_empty() && number.contains('.') {
            let f: f64 = number.parse().map_err(|_| bad())?;
            return (f > 0.0).then_some(Limit::Relative(f)).ok_or_else(bad);
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" | "k" | "K" => 1024,
            "MiB" | "M" => 1024 * 1024,
            "GiB" | "G" => 1024 * 1024 * 1024,
            _ => return Err(bad()),
        };
        Ok(Limit::Absolute((n * scale as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Whole(u64),
            Fraction(f64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Whole(b) => Ok(Limit::Absolute(b)),
            Written::Fraction(f) if f > 0.0 => Ok(Limit::Relative(f)),
            Written::Fraction(f) => Err(D::Error::custom(format!("{f} is not above 0"))),
            Written::Text(t) => t.parse().map_err(D::Error::custom),
        }
    }
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
            vm_memory_high_watermark: Limit::Relative(0.4),
            disk_free_limit: Limit::Absolute(50_000_000),
            memory_monitor_interval: 2500,
            consumer_timeout: 1_800_000,
            max_connections: None,
            consumer_max_per_channel: None,
            amqps_port: 5671,
            https_port: 15671,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_verify: TlsVerify::None,
            tls_fail_if_no_peer_cert: false,
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
        if self.memory_monitor_interval < 10 {
            return Err(ConfigError::Invalid(
                "memory_monitor_interval must be at least 10 (milliseconds)".into(),
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
    #[test]
    fn limits_are_fractions_or_amounts() {
        assert_eq!("0.4".parse(), Ok(Limit::Relative(0.4)));
        assert_eq!("50MB".parse(), Ok(Limit::Absolute(50_000_000)));
        assert_eq!("2GiB".parse(), Ok(Limit::Absolute(2 << 30)));
        assert_eq!("1048576".parse(), Ok(Limit::Absolute(1 << 20)));
        assert!("lots".parse::<Limit>().is_err());
        assert!("0.0".parse::<Limit>().is_err());
        assert_eq!(Limit::Relative(0.5).bytes(1000), 500);
        let c: Config = toml::from_str("vm_memory_high_watermark = 0.6\ndisk_free_limit = \"1GB\"")
            .expect("parses");
        assert_eq!(c.vm_memory_high_watermark, Limit::Relative(0.6));
        assert_eq!(c.disk_free_limit, Limit::Absolute(1_000_000_000));
        let c: Config = toml::from_str("vm_memory_high_watermark = 4096").expect("parses");
        assert_eq!(c.vm_memory_high_watermark, Limit::Absolute(4096));
    }

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
