//! The management API, as warrenctl calls it: one blocking request at a time, Basic auth, JSON
//! in and out, and the API's errors turned into warrenctl's.

use crate::error::{CtlError, CtlResult};
use crate::settings::Settings;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use std::time::Duration;

pub struct Api {
    agent: ureq::Agent,
    base: String,
    authorization: String,
    /// `host:port`, for messages.
    pub target: String,
}

/// A path segment, percent-encoded (a vhost `/` is `%2F`).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The certificates of a PEM file, for --tls-ca.
fn authorities(path: &std::path::Path) -> CtlResult<Vec<ureq::tls::Certificate<'static>>> {
    let unreadable =
        |e: &dyn std::fmt::Display| CtlError::Usage(format!("--tls-ca {}: {e}", path.display()));
    let pem = std::fs::read(path).map_err(|e| unreadable(&e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| unreadable(&e))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(certs)
}

impl Api {
    pub fn new(settings: &Settings) -> CtlResult<Self> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &settings.tls_ca {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&authorities(path)?));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(settings.timeout)))
            .tls_config(tls.build())
            .build();
        let credentials = format!("{}:{}", settings.username, settings.password);
        let scheme = if settings.tls { "https" } else { "http" };
        Ok(Self {
            agent: config.into(),
            base: format!("{scheme}://{}:{}", settings.host, settings.port),
            authorization: format!("Basic {}", STANDARD.encode(credentials)),
            target: format!("{}:{}", settings.host, settings.port),
        })
    }

    /// The same broker with other credentials (authenticate_user).
    pub fn with_credentials(&self, user: &str, password: &str) -> Self {
        Self {
            agent: self.agent.clone(),
            base: self.base.clone(),
            authorization: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            target: self.target.clone(),
        }
    }

    pub fn get(&self, path: &str) -> CtlResult<Value> {
        self.call("GET", path, None).map(|(_, v)| v)
    }

    pub fn put(&self, path: &str, body: &Value) -> CtlResult<Value> {
        self.call("PUT", path, Some(body)).map(|(_, v)| v)
    }

    pub fn post(&self, path: &str, body: &Value) -> CtlResult<Value> {
        self.call("POST", path, Some(body)).map(|(_, v)| v)
    }

    pub fn delete(&self, path: &str) -> CtlResult<Value> {
        self.call("DELETE", path, None).map(|(_, v)| v)
    }

    /// DELETE with extra headers (a connection's close reason).
    pub fn delete_with(&self, path: &str, header: (&str, &str)) -> CtlResult<Value> {
        let request = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("authorization", &self.authorization)
            .header(header.0, header.1);
        answer(request.call(), &self.target)
    }

    /// A request; the answer's status and JSON body (`Null` when empty), or the error its
    /// status means.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> CtlResult<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = self.authorization.as_str();
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("authorization", auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("authorization", auth)
                .send_json(b),
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("authorization", auth)
                .send_json(b),
            (m, _) => return Err(CtlError::Internal(format!("unsupported method {m}"))),
        };
        let status = match &result {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        answer(result, &self.target).map(|v| (status, v))
    }
}

fn answer(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    target: &str,
) -> CtlResult<Value> {
    let mut response = result.map_err(|e| transport(e, target))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| transport(e, target))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(body),
        401 => Err(CtlError::Refused(format!(
            "Access refused: {} (check --username and --password)",
            reason(&body)
        ))),
        404 => Err(CtlError::Data(reason(&body))),
        400 | 405 | 406 => Err(CtlError::Data(reason(&body))),
        _ => Err(CtlError::Internal(format!(
            "the broker answered {status}: {}",
            reason(&body)
        ))),
    }
}

/// The reason of an API error body, as one line.
pub fn reason(body: &Value) -> String {
    match &body["reason"] {
        Value::String(s) => s.replace('\n', " ").trim().to_owned(),
        Value::Null => body["error"]
            .as_str()
            .unwrap_or("no reason given")
            .to_owned(),
        other => other.to_string(),
    }
}

fn transport(e: ureq::Error, target: &str) -> CtlError {
    match e {
        ureq::Error::Timeout(_) => {
            CtlError::Timeout(format!("the broker at {target} did not answer in time"))
        }
        other => CtlError::Unavailable(format!("unable to reach the broker at {target}: {other}")),
    }
}
