//! Where warrenctl connects: flags (or `WARRENCTL_*` variables, which clap reads as flags),
//! then `~/.config/warrenctl.toml`, then the defaults: the local node at 127.0.0.1:15672, an
//! address rather than `localhost`, which a static binary in a bare container cannot resolve.

use crate::cli::Global;
use crate::error::{CtlError, CtlResult};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub vhost: String,
    pub tls: bool,
    /// Authorities to trust over TLS instead of the public roots (PEM).
    pub tls_ca: Option<PathBuf>,
    /// Seconds.
    pub timeout: u64,
}

/// The config file's keys, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    host: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    vhost: Option<String>,
    tls: Option<bool>,
    tls_ca: Option<PathBuf>,
    timeout: Option<u64>,
}

fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("warrenctl.toml"))
}

fn read_file(explicit: Option<&PathBuf>) -> CtlResult<File> {
    let Some(path) = explicit.cloned().or_else(config_path) else {
        return Ok(File::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) if explicit.is_none() => return Ok(File::default()),
        Err(e) => {
            return Err(CtlError::Usage(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    toml::from_str(&text).map_err(|e| CtlError::Usage(format!("invalid {}: {e}", path.display())))
}

impl Settings {
    pub fn resolve(g: &Global) -> CtlResult<Self> {
        let file = read_file(g.config.as_ref())?;
        Ok(Self {
            host: g
                .host
                .clone()
                .or(file.host)
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: g
                .port
                .or(file.port)
                .unwrap_or(match g.tls || file.tls == Some(true) {
                    true => 15671,
                    false => 15672,
                }),
            username: g
                .username
                .clone()
                .or(file.username)
                .unwrap_or_else(|| "guest".into()),
            password: g
                .password
                .clone()
                .or(file.password)
                .unwrap_or_else(|| "guest".into()),
            vhost: g.vhost.clone().or(file.vhost).unwrap_or_else(|| "/".into()),
            tls: g.tls || file.tls.unwrap_or(false),
            tls_ca: g.tls_ca.clone().or(file.tls_ca),
            timeout: g.timeout.or(file.timeout).unwrap_or(60),
        })
    }
}
