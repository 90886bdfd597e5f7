//! AMQPS and HTTPS with certificates made in the test: lapin and amqprs over TLS, SASL EXTERNAL
//! with a client certificate (the user is its common name), a certificate from another
//! authority refused, a plaintext client on the TLS port refused without harm, the management
//! API over HTTPS, and certificates reloaded on SIGHUP without dropping open connections.

mod common;

use common::certs::{self, Authority, Issued, ServerFiles};
use common::process::BrokerProcess;
use common::*;
use lapin::options::*;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::broker::metadata::permissions::PermissionSpec;
use warren::broker::metadata::users::User;
use warren::config::TlsVerify;

/// A broker serving AMQPS and HTTPS with a certificate from `ca`, asking clients for theirs.
async fn tls_broker(dir: &Path, ca: &Authority) -> TestBroker {
    let files = ServerFiles::write(dir, &ca.server("Warren"), ca);
    TestBroker::start_with(|c| {
        c.amqps_port = 0;
        c.https_port = 0;
        c.tls_cert = Some(files.cert.clone());
        c.tls_key = Some(files.key.clone());
        c.tls_ca = Some(files.ca.clone());
        c.tls_verify = TlsVerify::Peer;
    })
    .await
}

fn amqps_addr(broker: &TestBroker) -> SocketAddr {
    broker.server.amqps_addr.expect("the AMQPS listener")
}

fn lapin_tls(ca: &Authority, identity: Option<&Issued>) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: identity.map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert_pem.clone().into_bytes(),
            key: id.key_pem.clone().into_bytes(),
        }),
        cert_chain: Some(ca.pem()),
    }
}

async fn lapin_connect(uri: &str, tls: OwnedTLSConfig) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime().expect("runtime");
    within(
        "an AMQPS connection",
        Connection::connect_with_config(uri, ConnectionProperties::default(), tls, runtime),
    )
    .await
}

/// A message goes through a fresh queue and comes back: the connection works.
async fn round_trip(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.expect("channel.open");
    declare_queue(&ch, queue).await;
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        b"over tls",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    let got = within("basic.get", async {
        loop {
            let got = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            if let Some(got) = got {
                return got;
            }
        }
    })
    .await;
    assert_eq!(got.delivery.data, b"over tls");
}

/// The management API's connection entries.
async fn api_connections(broker: &TestBroker) -> Vec<serde_json::Value> {
    let (_, body) = api::get(broker, "/api/connections").await;
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn lapin_connects_over_tls_with_a_password_and_the_api_shows_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let uri = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        amqps_addr(&broker).port()
    );
    let conn = lapin_connect(&uri, lapin_tls(&ca, None))
        .await
        .expect("AMQPS connection");
    round_trip(&conn, "tls-q").await;

    let listed = api_connections(&broker).await;
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!(c["ssl"], true);
    assert_eq!(c["ssl_protocol"], "tlsv1.3");
    assert_eq!(c["auth_mechanism"], "PLAIN");
    assert!(
        c["ssl_cipher"].as_str().is_some_and(|s| !s.is_empty()),
        "{c}"
    );
    assert_eq!(c["peer_cert_subject"], serde_json::Value::Null);

    // The plain port still works beside it, and says it is not TLS.
    let plain = broker.connect().await;
    round_trip(&plain, "plain-q").await;
    let listed = api_connections(&broker).await;
    assert_eq!(listed.iter().filter(|c| c["ssl"] == false).count(), 1);
}

#[tokio::test]
async fn amqprs_connects_over_tls() {
    use amqprs::callbacks::{DefaultChannelCallback, DefaultConnectionCallback};
    use amqprs::channel::{BasicGetArguments, BasicPublishArguments, QueueDeclareArguments};
    use amqprs::connection::{Connection as AmqprsConnection, OpenConnectionArguments};
    use amqprs::tls::TlsAdaptor;

    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let config = certs::client_config(&ca, None);
    let adaptor = TlsAdaptor::new(
        tokio_rustls::TlsConnector::from(config),
        "localhost".to_owned(),
    );
    let mut args =
        OpenConnectionArguments::new("localhost", amqps_addr(&broker).port(), "guest", "guest");
    args.tls_adaptor(adaptor);
    let conn = within("amqprs over TLS", AmqprsConnection::open(&args))
        .await
        .expect("amqprs connects over TLS");
    conn.register_callback(DefaultConnectionCallback)
        .await
        .unwrap();
    let ch = conn.open_channel(None).await.unwrap();
    ch.register_callback(DefaultChannelCallback).await.unwrap();
    ch.queue_declare(QueueDeclareArguments::new("amqprs-tls"))
        .await
        .unwrap();
    ch.basic_publish(
        amqprs::BasicProperties::default(),
        b"hello".to_vec(),
        BasicPublishArguments::new("", "amqprs-tls"),
    )
    .await
    .unwrap();
    let got = within("basic.get", async {
        loop {
            let got = ch
                .basic_get(BasicGetArguments::new("amqprs-tls").no_ack(true).finish())
                .await
                .unwrap();
            if let Some((_, _, body)) = got {
                return body;
            }
        }
    })
    .await;
    assert_eq!(got, b"hello");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_logs_in_with_external_as_its_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let b = &broker.server.broker;
    b.metadata
        .put_user(User::new("cert-user", None, Vec::new()), "guest");
    let all = ".*".to_owned();
    b.metadata
        .set_permissions(
            PermissionSpec {
                user: "cert-user".into(),
                vhost: "/".into(),
                configure: all.clone(),
                write: all.clone(),
                read: all,
            },
            "guest",
        )
        .unwrap();
    let uri = format!(
        "amqps://localhost:{}/%2f?auth_mechanism=external",
        amqps_addr(&broker).port()
    );
    let identity = ca.client("cert-user");
    let conn = lapin_connect(&uri, lapin_tls(&ca, Some(&identity)))
        .await
        .expect("EXTERNAL login with a client certificate");
    round_trip(&conn, "external-q").await;
    let listed = api_connections(&broker).await;
    let c = &listed[0];
    assert_eq!(c["user"], "cert-user");
    assert_eq!(c["auth_mechanism"], "EXTERNAL");
    assert_eq!(c["peer_cert_subject"], "CN=cert-user");
    assert_eq!(c["peer_cert_issuer"], "CN=Test CA");

    // A certificate naming a user that does not exist is refused like a wrong password.
    let stranger = ca.client("nobody");
    let err = lapin_connect(&uri, lapin_tls(&ca, Some(&stranger)))
        .await
        .expect_err("an unknown user is refused");
    assert_eq!(reply_code(&err), Some(403), "{err}");
}

#[tokio::test]
async fn external_is_not_offered_without_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let uri = format!(
        "amqps://localhost:{}/%2f?auth_mechanism=external",
        amqps_addr(&broker).port()
    );
    let refused = lapin_connect(&uri, lapin_tls(&ca, None)).await;
    assert!(
        refused.is_err(),
        "EXTERNAL without a certificate is refused"
    );
    // And on the plain port.
    let uri = format!("amqp://{}/%2f?auth_mechanism=external", broker.addr());
    let refused = within(
        "a refused EXTERNAL login",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await;
    assert!(refused.is_err(), "EXTERNAL on the plain port is refused");
}

#[tokio::test]
async fn a_certificate_from_another_authority_is_refused_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let other = Authority::new("Someone else's CA");
    let foreign = other.client("guest");
    let config = certs::client_config(&ca, Some(&foreign));
    // TLS 1.3 reports a refused client certificate after the client's side of the
    // handshake: the first read sees the server's alert.
    let outcome = async {
        let mut tls = certs::connect(amqps_addr(&broker), config).await?;
        tls.write_all(b"AMQP\x00\x00\x09\x01").await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    };
    let outcome = within("the refusal", outcome).await;
    assert!(
        !matches!(outcome, Ok(n) if n > 0),
        "the server said nothing to a foreign certificate: {outcome:?}"
    );
    let uri = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        amqps_addr(&broker).port()
    );
    let conn = lapin_connect(&uri, lapin_tls(&ca, None))
        .await
        .expect("others connect");
    round_trip(&conn, "after-foreign").await;
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let uri = format!("amqp://guest:guest@{}/%2f", amqps_addr(&broker));
    let refused = within(
        "the plaintext client's failure",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await;
    assert!(refused.is_err(), "AMQP without TLS on the AMQPS port fails");
    let conn = broker.connect().await;
    round_trip(&conn, "after-plaintext").await;
}

/// GET over HTTPS with basic auth as guest: the status line and the body.
async fn https_get(addr: SocketAddr, ca: &Authority, path: &str) -> (String, String) {
    let mut tls = certs::connect(addr, certs::client_config(ca, None))
        .await
        .expect("HTTPS connection");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    within("the HTTPS answer", tls.read_to_string(&mut answer))
        .await
        .expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

#[tokio::test]
async fn the_management_api_answers_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let broker = tls_broker(dir.path(), &ca).await;
    let https = broker.server.https_addr.expect("the HTTPS listener");
    let (status, body) = https_get(https, &ca, "/api/overview").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    for protocol in ["\"amqp/ssl\"", "\"https\""] {
        assert!(body.contains(protocol), "listeners name {protocol}: {body}");
    }
}

/// The organisation in the certificate the server presents now.
async fn served_organisation(addr: SocketAddr, ca: &Authority) -> String {
    let tls = certs::connect(addr, certs::client_config(ca, None))
        .await
        .expect("TLS connection");
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate");
    let subject = warren::tls::PeerCertificate::parse(chain[0].as_ref())
        .expect("parses")
        .subject;
    subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("O="))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let files_dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Test CA");
    let files = ServerFiles::write(files_dir.path(), &ca.server("First"), &ca);
    let (cert, key) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    let broker = BrokerProcess::start_with(
        dir.path(),
        &[
            ("WARREN_TLS_CERT", &cert),
            ("WARREN_TLS_KEY", &key),
            ("WARREN_AMQPS_PORT", "0"),
            ("WARREN_HTTPS_PORT", "0"),
        ],
    )
    .await;
    let amqps = logged_addr(&broker.log(), "AMQPS on ").expect("the AMQPS address is logged");
    assert_eq!(served_organisation(amqps, &ca).await, "First");
    let uri = format!("amqps://guest:guest@localhost:{}/%2f", amqps.port());
    let open = lapin_connect(&uri, lapin_tls(&ca, None))
        .await
        .expect("connects");

    files.replace(&ca.server("Second"));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    within("the reload's log line", async {
        while !broker.log().contains("TLS certificates reloaded") {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(served_organisation(amqps, &ca).await, "Second");
    round_trip(&open, "still-open").await;
    let fresh = lapin_connect(&uri, lapin_tls(&ca, None))
        .await
        .expect("connects");
    round_trip(&fresh, "fresh").await;

    // A broken file is refused and the certificate in use stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .expect("kill -HUP");
    within("the failed reload's log line", async {
        while !broker.log().contains("TLS certificates not reloaded") {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(served_organisation(amqps, &ca).await, "Second");
}

/// The address after `prefix` in the broker's log.
fn logged_addr(log: &str, prefix: &str) -> Option<SocketAddr> {
    let (_, rest) = log.split_once(prefix)?;
    let addr = rest.split_whitespace().next()?;
    addr.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}
