//! The `warren` binary: command line → configuration → tracing → run.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use warren::config::{Config, DEFAULT_CONFIG};
use warren::server::{run, Listeners};

/// An AMQP 0-9-1 message broker for RabbitMQ's clients.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (the embedded defaults when omitted).
    #[arg(long, env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for durable state and persistent messages.
    #[arg(long, env = "WARREN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// AMQP port.
    #[arg(long, env = "WARREN_AMQP_PORT")]
    amqp_port: Option<u16>,
    /// Management HTTP port.
    #[arg(long, env = "WARREN_HTTP_PORT")]
    http_port: Option<u16>,
    /// Prometheus metrics port.
    #[arg(long, env = "WARREN_PROMETHEUS_PORT")]
    prometheus_port: Option<u16>,
    /// Address to listen on.
    #[arg(long, env = "WARREN_BIND")]
    bind: Option<IpAddr>,
    /// The user created on first start (an administrator on the default vhost).
    #[arg(long, env = "WARREN_DEFAULT_USER")]
    default_user: Option<String>,
    /// That user's password.
    #[arg(long, env = "WARREN_DEFAULT_PASS", hide_env_values = true)]
    default_pass: Option<String>,
    /// The vhost created on first start.
    #[arg(long, env = "WARREN_DEFAULT_VHOST")]
    default_vhost: Option<String>,
    /// A definitions file (RabbitMQ's format) to import at start.
    #[arg(long, env = "WARREN_LOAD_DEFINITIONS")]
    load_definitions: Option<PathBuf>,
    /// Users that may connect only from the loopback interface, comma-separated ("" for
    /// none; the container image allows its default guest from anywhere).
    #[arg(long, env = "WARREN_LOOPBACK_USERS")]
    loopback_users: Option<String>,
    /// Memory the broker may use before publishers are blocked: a fraction of the machine's
    /// memory (0.4) or an amount (2GB).
    #[arg(long, env = "WARREN_VM_MEMORY_HIGH_WATERMARK")]
    vm_memory_high_watermark: Option<warren::config::Limit>,
    /// Free disk space to keep on the data directory's file system before publishers are
    /// blocked: an amount (50MB) or a multiple of the memory (1.0).
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT")]
    disk_free_limit: Option<warren::config::Limit>,
    /// AMQPS port, served when a TLS certificate is configured.
    #[arg(long, env = "WARREN_AMQPS_PORT")]
    amqps_port: Option<u16>,
    /// Management HTTPS port, served when a TLS certificate is configured.
    #[arg(long, env = "WARREN_HTTPS_PORT")]
    https_port: Option<u16>,
    /// The server's TLS certificate chain (PEM); turns AMQPS and HTTPS on.
    #[arg(long, env = "WARREN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "WARREN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Authorities whose client certificates are accepted (PEM).
    #[arg(long, env = "WARREN_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate: none or peer.
    #[arg(long, env = "WARREN_TLS_VERIFY")]
    tls_verify: Option<warren::config::TlsVerify>,
    /// Print the default configuration file and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Check that the broker configured like this one answers on its AMQP port on this host
    /// (exit 0) or not (exit 1): what the container image's HEALTHCHECK runs. Needs no
    /// credentials.
    #[arg(long)]
    healthcheck: bool,
}

/// Where a configuration file is read from when none is named, if it exists (the container
/// image's mount point).
const SYSTEM_CONFIG: &str = "/etc/warren/warren.toml";

/// RabbitMQ's image reads these; compose files written for it work unchanged.
const RABBITMQ_ALIASES: [(&str, &str); 3] = [
    ("WARREN_DEFAULT_USER", "RABBITMQ_DEFAULT_USER"),
    ("WARREN_DEFAULT_PASS", "RABBITMQ_DEFAULT_PASS"),
    ("WARREN_DEFAULT_VHOST", "RABBITMQ_DEFAULT_VHOST"),
];

impl Cli {
    fn config(&self) -> anyhow_free::Result<Config> {
        let system = std::path::Path::new(SYSTEM_CONFIG);
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None if system.exists() => Config::from_file(system)?,
            None => Config::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = self.amqp_port {
            config.amqp_port = v;
        }
        if let Some(v) = self.http_port {
            config.http_port = v;
        }
        if let Some(v) = self.prometheus_port {
            config.prometheus_port = v;
        }
        if let Some(v) = self.bind {
            config.bind = v;
        }
        if let Some(v) = &self.load_definitions {
            config.load_definitions = Some(v.clone());
        }
        if let Some(v) = self.vm_memory_high_watermark {
            config.vm_memory_high_watermark = v;
        }
        if let Some(v) = self.disk_free_limit {
            config.disk_free_limit = v;
        }
        if let Some(v) = self.amqps_port {
            config.amqps_port = v;
        }
        if let Some(v) = self.https_port {
            config.https_port = v;
        }
        for (value, setting) in [
            (&self.tls_cert, &mut config.tls_cert),
            (&self.tls_key, &mut config.tls_key),
            (&self.tls_ca, &mut config.tls_ca),
        ] {
            if let Some(v) = value {
                *setting = Some(v.clone());
            }
        }
        if let Some(v) = self.tls_verify {
            config.tls_verify = v;
        }
        if let Some(v) = &self.loopback_users {
            config.loopback_users = v
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
        }
        for (value, setting) in [
            (&self.default_user, &mut config.default_user),
            (&self.default_pass, &mut config.default_pass),
            (&self.default_vhost, &mut config.default_vhost),
        ] {
            if let Some(v) = value {
                setting.clone_from(v);
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// Errors at the binary's edge are printed and end the process; nothing more is needed.
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
}

fn main() -> ExitCode {
    for (ours, theirs) in RABBITMQ_ALIASES {
        if std::env::var_os(ours).is_none() {
            if let Some(value) = std::env::var_os(theirs) {
                // Before any thread starts: setting the environment is sound here.
                unsafe { std::env::set_var(ours, value) };
            }
        }
    }
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return ExitCode::SUCCESS;
    }
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.healthcheck {
        return healthcheck(&config);
    }
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    if config.default_user == "guest"
        && config.default_pass == "guest"
        && !config.loopback_users.iter().any(|u| u == "guest")
    {
        tracing::warn!(
            "the default user guest (password guest) may connect from any host: set \
             WARREN_DEFAULT_USER and WARREN_DEFAULT_PASS, or keep guest in loopback_users"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects to the local AMQP port and expects connection.start in answer to the protocol
/// header: the broker accepts clients. No credentials are needed.
fn healthcheck(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let host: IpAddr = match config.bind.is_unspecified() {
        true => [127, 0, 0, 1].into(),
        false => config.bind,
    };
    let addr = SocketAddr::new(host, config.amqp_port);
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(warren_amqp::PROTOCOL_HEADER)?;
        let mut frame = [0u8; 11];
        stream.read_exact(&mut frame)?;
        // A method frame on channel 0 carrying connection.start (class 10, method 10).
        Ok(frame[0] == 1 && frame[1..3] == [0, 0] && frame[7..11] == [0, 10, 0, 10])
    };
    match probe() {
        Ok(true) => {
            println!("Warren answers on {addr}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("warren: {addr} did not answer as an AMQP 0-9-1 broker");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("warren: no broker on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> std::io::Result<()> {
    let amqp = bind(&config, config.amqp_port).await?;
    let http = bind(&config, config.http_port).await?;
    let prometheus = bind(&config, config.prometheus_port).await?;
    let (amqps, https) = match config.tls_cert {
        Some(_) => (
            Some(bind(&config, config.amqps_port).await?),
            Some(bind(&config, config.https_port).await?),
        ),
        None => (None, None),
    };
    let listeners = Listeners {
        amqp,
        amqps,
        https,
        http: Some(http),
        prometheus: Some(prometheus),
    };
    run(listeners, config, shutdown_signal()).await
}

async fn bind(config: &Config, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((config.bind, port))
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}:{port}: {e}", config.bind),
            )
        })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
