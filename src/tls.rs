//! TLS for the AMQPS and HTTPS listeners: rustls server configurations built from the PEM
//! files the configuration names, rebuilt on reload (SIGHUP) for new connections while open
//! ones keep theirs, and what a handshake tells about the peer (protocol, cipher, client
//! certificate) for SASL EXTERNAL and the management API.

use crate::config::{Config, TlsVerify};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, ServerConnection};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("tls_key is needed with tls_cert")]
    NoKey,
    #[error("tls_verify = \"peer\" needs tls_ca, the authorities client certificates come from")]
    NoCa,
    #[error("invalid TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client certificate authorities: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The files and choices a TLS setup is built from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    verify: TlsVerify,
    fail_if_no_peer_cert: bool,
}

/// The server's TLS setups, one for AMQP and one for HTTP (which offers ALPN "http/1.1"),
/// replaced together on reload.
pub struct Tls {
    files: Files,
    current: RwLock<Setups>,
}

#[derive(Clone)]
struct Setups {
    amqp: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

impl Tls {
    /// The TLS setup the configuration asks for: None when it names no certificate.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Self>>, TlsError> {
        let Some(cert) = config.tls_cert.clone() else {
            return Ok(None);
        };
        let key = config.tls_key.clone().ok_or(TlsError::NoKey)?;
        let files = Files {
            cert,
            key,
            ca: config.tls_ca.clone(),
            verify: config.tls_verify,
            fail_if_no_peer_cert: config.tls_fail_if_no_peer_cert,
        };
        let current = RwLock::new(build(&files)?);
        Ok(Some(Arc::new(Self { files, current })))
    }

    /// Reads the files again; connections accepted from now on use what they hold. On an
    /// error the setup in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let setups = build(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = setups;
        Ok(())
    }

    pub fn amqp_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.setups().amqp)
    }

    pub fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.setups().http)
    }

    fn setups(&self) -> Setups {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn build(files: &Files) -> Result<Setups, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Read {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    // ring rather than aws-lc-rs: no C build of a crypto library, a lean dependency tree. Its
    // provider is marked deprecated for lacking post-quantum key exchange, which TLS 1.2/1.3
    // with RabbitMQ's clients does not need today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match files.verify {
        TlsVerify::None => builder.with_no_client_auth(),
        TlsVerify::Peer => {
            let ca = files.ca.as_ref().ok_or(TlsError::NoCa)?;
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match files.fail_if_no_peer_cert {
                true => verifier.build()?,
                false => verifier.allow_unauthenticated().build()?,
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let amqp = builder.with_single_cert(certs, key)?;
    let mut http = amqp.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Setups {
        amqp: Arc::new(amqp),
        http: Arc::new(http),
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |e: rustls::pki_types::pem::Error| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// What a TLS handshake settled, as the management API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// "tlsv1.3", "tlsv1.2"
    pub protocol: String,
    /// The cipher suite's parts, as RabbitMQ names them: "ecdhe_rsa" ("any" under TLS 1.3,
    /// where the suite does not fix it), "aes_256_gcm", "sha384".
    pub key_exchange: String,
    pub cipher: String,
    pub hash: String,
    /// The client's certificate, if it presented one (verified against `tls_ca`).
    pub peer: Option<PeerCertificate>,
}

/// A client certificate's names and validity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's distinguished name, RFC 4514 style ("CN=alice,O=Example").
    pub subject: String,
    pub issuer: String,
    /// The subject's common name: the user SASL EXTERNAL logs in as.
    pub common_name: Option<String>,
    /// "2026-01-01T00:00:00Z - 2027-01-01T00:00:00Z"
    pub validity: String,
}

impl Session {
    pub fn of(connection: &ServerConnection) -> Self {
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2",
            _ => "unknown",
        };
        let suite = connection
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let (key_exchange, cipher, hash) = suite_parts(suite);
        let peer = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| PeerCertificate::parse(cert.as_ref()));
        Self {
            protocol: protocol.into(),
            key_exchange,
            cipher,
            hash,
            peer,
        }
    }
}

/// Splits a suite's IANA name: TLS13_AES_256_GCM_SHA384 → (any, aes_256_gcm, sha384);
/// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 → (ecdhe_rsa, aes_128_gcm, sha256).
fn suite_parts(suite: &str) -> (String, String, String) {
    let lower = suite.to_ascii_lowercase();
    let (kx, rest) = match lower.strip_prefix("tls13_") {
        Some(rest) => ("any", rest),
        None => {
            let rest = lower.strip_prefix("tls_").unwrap_or(&lower);
            rest.split_once("_with_").unwrap_or(("unknown", rest))
        }
    };
    let (cipher, hash) = rest.rsplit_once('_').unwrap_or((rest, "unknown"));
    (kx.to_owned(), cipher.to_owned(), hash.to_owned())
}

impl PeerCertificate {
    /// Reads a DER certificate's names (None if it does not parse: the verifier accepted it,
    /// so that would be a certificate this parser does not know, not a hostile one).
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let validity = cert.validity();
        let time = |t: x509_parser::time::ASN1Time| {
            let t = t.to_datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            common_name,
            validity: format!(
                "{} - {}",
                time(validity.not_before),
                time(validity.not_after)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_split_as_rabbitmq_names_them() {
        let parts = suite_parts;
        assert_eq!(
            parts("TLS13_AES_256_GCM_SHA384"),
            ("any".into(), "aes_256_gcm".into(), "sha384".into())
        );
        assert_eq!(
            parts("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
            (
                "ecdhe_rsa".into(),
                "chacha20_poly1305".into(),
                "sha256".into()
            )
        );
    }
}
