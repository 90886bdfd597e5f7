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
    /// Print the default configuration file and exit.
    #[arg(long)]
    print_default_config: bool,
}

impl Cli {
    fn config(&self) -> anyhow_free::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
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
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
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

async fn serve(config: Config) -> std::io::Result<()> {
    let amqp = bind(&config, config.amqp_port).await?;
    let http = bind(&config, config.http_port).await?;
    let prometheus = bind(&config, config.prometheus_port).await?;
    let listeners = Listeners {
        amqp,
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
