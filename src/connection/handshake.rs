//! The opening of a connection: protocol header, connection.start / start-ok (SASL PLAIN or
//! AMQPLAIN), tune / tune-ok, open / open-ok.

use super::events::Login;
use super::{ConnectionEnd, Io};
use crate::broker::connections::Refusal;
use crate::broker::metadata::limit;
use crate::broker::metadata::permissions::{Permission, TopicPermission};
use crate::broker::queue::ConnectionId;
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use crate::error::AmqpError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;
use warren_amqp::frame::FrameKind;
use warren_amqp::protocol::connection as conn;
use warren_amqp::{reply, AMQPClass, AMQPValue, FieldTable, LongString, PROTOCOL_HEADER};

/// What the handshake settled.
pub(crate) struct Negotiated {
    pub user: String,
    pub vhost: Arc<VHost>,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub cancel_notify: bool,
    /// The client understands connection.blocked / unblocked.
    pub blocked_notify: bool,
    pub client_properties: FieldTable,
    pub mechanism: String,
    /// The user's permissions in the vhost, and the metadata generation they were read at.
    pub permission: Arc<Permission>,
    pub topics: std::collections::HashMap<String, Arc<TopicPermission>>,
    pub generation: u64,
}

/// The socket a handshake runs on, and the id its connection will have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Socket<'a> {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The TLS session, on the AMQPS port.
    pub tls: Option<&'a crate::tls::Session>,
}

/// Runs the handshake within the configured timeout. `Ok(None)`: the client was refused and
/// has been told so.
pub(crate) async fn run(
    io: &mut Io,
    broker: &Broker,
    socket: Socket<'_>,
) -> Result<Option<Negotiated>, ConnectionEnd> {
    let peer = socket.peer;
    let limit = Duration::from_secs(broker.config.handshake_timeout);
    match tokio::time::timeout(limit, negotiate(io, broker, socket)).await {
        Ok(Ok(n)) => Ok(Some(n)),
        Ok(Err(ConnectionEnd::Protocol(error))) => {
            warn!(%peer, "refusing connection: {error}");
            let close = conn::Close {
                reply_code: error.code,
                reply_text: warren_amqp::short_string(&error.text),
                class_id: error.class_id,
                method_id: error.method_id,
            };
            io.send(0, &AMQPClass::Connection(conn::AMQPMethod::Close(close)));
            let _ = io.flush().await;
            // Give the client a moment to read the close before the socket goes.
            let read = io.read_frame(broker.config.frame_max);
            let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
            Ok(None)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConnectionEnd::HandshakeTimeout),
    }
}

async fn negotiate(
    io: &mut Io,
    broker: &Broker,
    socket: Socket<'_>,
) -> Result<Negotiated, ConnectionEnd> {
    let peer = socket.peer;
    let mut header = [0u8; 8];
    io.reader.read_exact(&mut header).await?;
    if &header != PROTOCOL_HEADER {
        // The spec's answer to a header we do not speak: ours, then close.
        io.writer.write_all(PROTOCOL_HEADER).await?;
        return Err(ConnectionEnd::BadHeader);
    }
    // SASL EXTERNAL is offered only to a TLS client that presented a (verified) certificate.
    let certificate = socket.tls.and_then(|t| t.peer.as_ref());
    let start = start(certificate.is_some());
    io.send(0, &AMQPClass::Connection(conn::AMQPMethod::Start(start)));
    io.flush().await?;
    let frame_max = broker.config.frame_max;

    let start_ok = match expect(io, frame_max).await? {
        AMQPClass::Connection(conn::AMQPMethod::StartOk(m)) => m,
        other => return Err(unexpected(&other, "connection.start-ok")),
    };
    let mechanism = start_ok.mechanism.as_str();
    let (user, accepted) = match (mechanism, certificate) {
        ("EXTERNAL", Some(cert)) => {
            // The certificate is the credential: its common name names the user, who must
            // exist (RabbitMQ's rabbitmq_auth_mechanism_ssl with ssl_cert_login_from
            // common_name).
            let user = cert.common_name.clone().unwrap_or_default();
            let known = broker.metadata.user(&user).is_some();
            (user, known)
        }
        _ => {
            let (user, password) = credentials(mechanism, start_ok.response.as_bytes())?;
            let accepted = broker.authenticate(&user, &password);
            (user, accepted)
        }
    };
    let loopback_only = broker.config.loopback_users.contains(&user);
    let login = Login {
        peer,
        local: socket.local,
        user: &user,
        mechanism: start_ok.mechanism.as_str(),
    };
    if !accepted || (loopback_only && !peer.ip().is_loopback()) {
        broker.login_failed();
        login.failed(broker, socket.id, &start_ok.client_properties);
        warn!(%peer, %user, "authentication failed (loopback-only user from a remote address, or wrong credentials)");
        return Err(refused(start_ok.mechanism.as_str()));
    }
    login.succeeded(broker);

    let tune = conn::Tune {
        channel_max: broker.config.channel_max,
        frame_max,
        heartbeat: broker.config.heartbeat,
    };
    io.send(0, &AMQPClass::Connection(conn::AMQPMethod::Tune(tune)));
    io.flush().await?;
    let tune_ok = match expect(io, frame_max).await? {
        AMQPClass::Connection(conn::AMQPMethod::TuneOk(m)) => m,
        other => return Err(unexpected(&other, "connection.tune-ok")),
    };
    let (frame_max, channel_max) =
        negotiate_limits(&tune_ok, frame_max, broker.config.channel_max)?;

    let open = match expect(io, frame_max).await? {
        AMQPClass::Connection(conn::AMQPMethod::Open(m)) => m,
        other => return Err(unexpected(&other, "connection.open")),
    };
    let vhost = broker.vhost(open.virtual_host.as_str()).ok_or_else(|| {
        ConnectionEnd::Protocol(
            AmqpError::not_allowed(format!("vhost {} not found", open.virtual_host)).during(10, 40),
        )
    })?;
    let generation = broker.metadata.generation();
    let Some(permission) = broker.metadata.permissions(&user, &vhost.name) else {
        warn!(%peer, %user, vhost = %vhost.name, "connection refused: no permissions on the vhost");
        return Err(ConnectionEnd::Protocol(
            AmqpError::not_allowed(format!(
                "access to vhost '{}' refused for user '{user}'",
                vhost.name
            ))
            .during(10, 40),
        ));
    };
    admit(broker, &user, &vhost.name)?;
    io.send(
        0,
        &AMQPClass::Connection(conn::AMQPMethod::OpenOk(conn::OpenOk {})),
    );
    if let Err(e) = io.flush().await {
        broker.connections.release(&user, &vhost.name);
        return Err(e.into());
    }
    let cancel_notify = capability(&start_ok.client_properties, "consumer_cancel_notify");
    let blocked_notify = capability(&start_ok.client_properties, "connection.blocked");
    let topics = broker.metadata.topic_permissions(&user, &vhost.name);
    Ok(Negotiated {
        user,
        vhost,
        frame_max,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        cancel_notify,
        blocked_notify,
        client_properties: start_ok.client_properties,
        mechanism: start_ok.mechanism.to_string(),
        permission,
        topics,
        generation,
    })
}

/// Counts the connection against the broker's `max_connections` and the vhost's and the
/// user's `max-connections`, refused with RabbitMQ's 530s when one is reached.
fn admit(broker: &Broker, user: &str, vhost: &str) -> Result<(), ConnectionEnd> {
    let metadata = &broker.metadata;
    let vhost_max = metadata
        .vhost(vhost)
        .and_then(|v| limit(&v.limits, "max-connections"));
    let user_max = metadata
        .user(user)
        .and_then(|u| limit(&u.limits, "max-connections"));
    let node_max = broker.config.max_connections;
    let limits = [node_max, vhost_max, user_max];
    let text = match broker.connections.admit(user, vhost, limits) {
        Ok(()) => return Ok(()),
        Err(Refusal::Node(max)) => {
            format!("connection refused: node connection limit ({max}) is reached")
        }
        Err(Refusal::Vhost(max)) => format!(
            "access to vhost '{vhost}' refused for user '{user}': connection limit ({max}) is reached"
        ),
        Err(Refusal::User(max)) => format!(
            "connection refused for user '{user}': user connection limit ({max}) is reached"
        ),
    };
    Err(ConnectionEnd::Protocol(
        AmqpError::not_allowed(text).during(10, 40),
    ))
}

fn start(external: bool) -> conn::Start {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    props.insert("product".into(), text("Warren"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), text("Rust"));
    props.insert(
        "information".into(),
        text("An AMQP 0-9-1 broker for RabbitMQ clients"),
    );
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    conn::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: match external {
            true => "EXTERNAL PLAIN AMQPLAIN".into(),
            false => "PLAIN AMQPLAIN".into(),
        },
        locales: "en_US".into(),
    }
}

/// Whether the client's properties announce a capability.
fn capability(client_properties: &FieldTable, name: &str) -> bool {
    match client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// Reads the next method frame on channel 0 (heartbeats are skipped).
async fn expect(io: &mut Io, frame_max: u32) -> Result<AMQPClass, ConnectionEnd> {
    loop {
        let frame = io.read_frame(frame_max).await?;
        match frame.kind {
            FrameKind::Heartbeat => continue,
            FrameKind::Method if frame.channel == 0 => {
                return warren_amqp::assembler::parse_method(&frame.payload)
                    .map_err(|e| ConnectionEnd::Protocol(e.into()));
            }
            _ => {
                return Err(ConnectionEnd::Protocol(AmqpError::new(
                    reply::UNEXPECTED_FRAME,
                    "expected a connection method on channel 0 during the handshake",
                )))
            }
        }
    }
}

fn unexpected(got: &AMQPClass, wanted: &str) -> ConnectionEnd {
    let (c, m) = (got.get_amqp_class_id(), got.get_amqp_method_id());
    ConnectionEnd::Protocol(
        AmqpError::command_invalid(format!("expected '{wanted}', got method {c}.{m}")).during(c, m),
    )
}

fn refused(mechanism: &str) -> ConnectionEnd {
    ConnectionEnd::Protocol(AmqpError::access_refused(format!(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    )))
}

/// Decodes a SASL response into user and password.
fn credentials(mechanism: &str, response: &[u8]) -> Result<(String, String), ConnectionEnd> {
    match mechanism {
        "PLAIN" => {
            // authzid \0 authcid \0 password
            let mut parts = response.split(|b| *b == 0);
            let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
            match (user, pass, parts.next()) {
                (Some(u), Some(p), None) => Ok((
                    String::from_utf8_lossy(u).into_owned(),
                    String::from_utf8_lossy(p).into_owned(),
                )),
                _ => Err(refused(mechanism)),
            }
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            // Through the nesting check: the parser recurses per nested level, and this table
            // comes before any login (a deep one overflowed the worker's stack).
            let table = warren_amqp::encode::decode_field_table(&framed)
                .ok_or_else(|| refused(mechanism))?;
            let field = |k: &str| match table.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
                _ => None,
            };
            match (field("LOGIN"), field("PASSWORD")) {
                (Some(u), Some(p)) => Ok((u, p)),
                _ => Err(refused(mechanism)),
            }
        }
        other => Err(ConnectionEnd::Protocol(
            AmqpError::command_invalid(format!("unknown authentication mechanism '{other}'"))
                .during(10, 11),
        )),
    }
}

/// Applies the client's tune-ok to the server's limits (0 from the client means "no limit").
fn negotiate_limits(
    tune_ok: &conn::TuneOk,
    frame_max: u32,
    channel_max: u16,
) -> Result<(u32, u16), ConnectionEnd> {
    let refuse = |text: String| {
        Err(ConnectionEnd::Protocol(
            AmqpError::not_allowed(text).during(10, 31),
        ))
    };
    let frame = if tune_ok.frame_max == 0 {
        frame_max
    } else {
        tune_ok.frame_max
    };
    if frame < 4096 {
        return refuse(format!("frame_max={} < 4096 min size", tune_ok.frame_max));
    }
    if frame > frame_max {
        return refuse(format!(
            "frame_max={} > {frame_max} max size",
            tune_ok.frame_max
        ));
    }
    let channels = if tune_ok.channel_max == 0 {
        channel_max
    } else {
        tune_ok.channel_max
    };
    if channels > channel_max {
        return refuse(format!(
            "channel_max={} > {channel_max} max size",
            tune_ok.channel_max
        ));
    }
    Ok((frame, channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deeply_nested_amqplain_response_is_refused_without_overflowing_the_stack() {
        // {"LOGIN": [[[...]]]} nested 30,000 arrays deep: 150 KB, before any login.
        let mut value = vec![b'V'];
        for _ in 0..30_000 {
            let mut outer = vec![b'A'];
            outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
            outer.extend_from_slice(&value);
            value = outer;
        }
        let mut response = vec![5];
        response.extend_from_slice(b"LOGIN");
        response.extend_from_slice(&value);
        assert!(credentials("AMQPLAIN", &response).is_err());
    }

    #[test]
    fn plain_and_amqplain_credentials() {
        assert_eq!(
            credentials("PLAIN", b"\0guest\0secret").ok(),
            Some(("guest".into(), "secret".into()))
        );
        assert!(credentials("PLAIN", b"guest").is_err());
        // LOGIN and PASSWORD as long strings, the table's entries without its length prefix
        let mut table = Vec::new();
        for (k, v) in [("LOGIN", "bob"), ("PASSWORD", "pw")] {
            table.push(k.len() as u8);
            table.extend_from_slice(k.as_bytes());
            table.push(b'S');
            table.extend_from_slice(&(v.len() as u32).to_be_bytes());
            table.extend_from_slice(v.as_bytes());
        }
        assert_eq!(
            credentials("AMQPLAIN", &table).ok(),
            Some(("bob".into(), "pw".into()))
        );
        assert!(
            matches!(credentials("EXTERNAL", b""), Err(ConnectionEnd::Protocol(e)) if e.code == reply::COMMAND_INVALID)
        );
    }

    #[test]
    fn tune_ok_limits() {
        let ok = |f, c| conn::TuneOk {
            frame_max: f,
            channel_max: c,
            heartbeat: 0,
        };
        assert_eq!(
            negotiate_limits(&ok(0, 0), 131072, 2047).ok(),
            Some((131072, 2047))
        );
        assert_eq!(
            negotiate_limits(&ok(8192, 10), 131072, 2047).ok(),
            Some((8192, 10))
        );
        assert!(negotiate_limits(&ok(100, 0), 131072, 2047).is_err());
        assert!(negotiate_limits(&ok(200000, 0), 131072, 2047).is_err());
        assert!(negotiate_limits(&ok(0, 3000), 131072, 2047).is_err());
    }
}
