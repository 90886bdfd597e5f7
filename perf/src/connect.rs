//! Opening a named connection, so that the broker's management view shows what each one is;
//! over TLS for amqps:// URIs, trusting `--tls-ca` when given.

use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};
use std::sync::OnceLock;

/// The PEM of `--tls-ca`, read once at start.
static TLS_CA: OnceLock<String> = OnceLock::new();

/// Trusts this authority's certificates on every amqps:// connection of the run.
pub fn trust(ca_pem: String) {
    let _ = TLS_CA.set(ca_pem);
}

pub async fn connect(uri: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match TLS_CA.get() {
        Some(ca) => {
            let tls = OwnedTLSConfig {
                identity: None,
                cert_chain: Some(ca.clone()),
            };
            let runtime = lapin::runtime::default_runtime()?;
            Connection::connect_with_config(uri, properties, tls, runtime).await
        }
        None => Connection::connect(uri, properties).await,
    }
}
