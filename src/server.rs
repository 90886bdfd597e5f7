//! The accept loop and graceful shutdown. `run` takes bound listeners, a configuration and a
//! shutdown future, so the binary, tests and embedders all start Warren the same way.

use crate::broker::{Broker, Listener};
use crate::config::Config;
use crate::tls::Tls;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

/// How long connections get to close after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The sockets Warren serves, bound by the caller (port 0 works for tests).
pub struct Listeners {
    pub amqp: TcpListener,
    /// The AMQPS one, if TLS is configured (`tls_cert`).
    pub amqps: Option<TcpListener>,
    /// The management API's HTTPS one, if TLS is configured.
    pub https: Option<TcpListener>,
    /// The management API's, if it is served.
    pub http: Option<TcpListener>,
    /// The Prometheus endpoint's, if it is served.
    pub prometheus: Option<TcpListener>,
}

/// Opens the broker on the configured data directory and serves until `shutdown` resolves,
/// then closes every connection with 320 CONNECTION_FORCED.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let broker = open(config).await?;
    serve(listeners, broker, shutdown).await
}

/// Opens the store and recovers what it holds (on a blocking thread: recovery reads disk).
pub async fn open(config: Config) -> std::io::Result<Arc<Broker>> {
    let data_dir = config.data_dir.clone();
    let opened = tokio::task::spawn_blocking(move || Broker::open(config))
        .await
        .map_err(std::io::Error::other)?;
    let broker = opened.map_err(|e| {
        std::io::Error::other(format!(
            "cannot open the store in {}: {e}",
            data_dir.display()
        ))
    })?;
    if let Some(path) = broker.config.load_definitions.clone() {
        load_definitions(&broker, &path).await?;
    }
    Ok(Arc::new(broker))
}

/// Imports a definitions file before clients are served; a file that cannot be read or
/// imported stops the start, as in RabbitMQ.
async fn load_definitions(broker: &Broker, path: &std::path::Path) -> std::io::Result<()> {
    let failed = |e: String| {
        std::io::Error::other(format!(
            "cannot load definitions from {}: {e}",
            path.display()
        ))
    };
    let text = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let defs = serde_json::from_slice(&text).map_err(|e| failed(e.to_string()))?;
    broker
        .import_definitions(defs, None, crate::broker::events::INTERNAL_USER)
        .map_err(|e| failed(e.to_string()))?;
    if !broker.metadata.flush().await {
        return Err(failed("the store failed to keep them".into()));
    }
    info!("definitions loaded from {}", path.display());
    Ok(())
}

/// Serves an opened broker until `shutdown` resolves.
pub async fn serve(
    listeners: Listeners,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = Tls::from_config(&broker.config).map_err(std::io::Error::other)?;
    if tls.is_none() && (listeners.amqps.is_some() || listeners.https.is_some()) {
        return Err(std::io::Error::other(
            "TLS listeners need a certificate: set tls_cert and tls_key",
        ));
    }
    broker.start();
    let amqp_addr = listeners.amqp.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let Listeners {
        amqp,
        amqps,
        https,
        http,
        prometheus,
    } = listeners;
    let mut bound = vec![Listener {
        protocol: "amqp",
        addr: amqp_addr,
    }];
    if let Some(l) = &amqps {
        bound.push(Listener {
            protocol: "amqp/ssl",
            addr: l.local_addr()?,
        });
    }
    if let Some(l) = &https {
        bound.push(Listener {
            protocol: "https",
            addr: l.local_addr()?,
        });
    }
    if let Some(h) = &http {
        bound.push(Listener {
            protocol: "http",
            addr: h.local_addr()?,
        });
    }
    if let Some(p) = &prometheus {
        bound.push(Listener {
            protocol: "http/prometheus",
            addr: p.local_addr()?,
        });
    }
    broker.set_listeners(bound);
    let api = match http {
        Some(listener) => {
            info!("management API on http://{}", listener.local_addr()?);
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            Some(tokio::spawn(crate::http::serve(
                listener,
                broker.clone(),
                stopped,
            )))
        }
        None => None,
    };
    let metrics = match prometheus {
        Some(listener) => {
            info!(
                "Prometheus metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            Some(tokio::spawn(crate::http::serve_prometheus(
                listener,
                broker.clone(),
                stopped,
            )))
        }
        None => None,
    };
    let api_tls = match (https, &tls) {
        (Some(listener), Some(tls)) => {
            info!("management API on https://{}", listener.local_addr()?);
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            Some(tokio::spawn(crate::http::serve_tls(
                listener,
                tls.clone(),
                broker.clone(),
                stopped,
            )))
        }
        _ => None,
    };
    if let Some(tls) = &tls {
        tokio::spawn(reload_on_hangup(tls.clone()));
    }
    if let Some(l) = &amqps {
        info!("AMQPS on {}", l.local_addr()?);
    }
    info!(
        "Warren {} ready to accept AMQP connections on {amqp_addr}",
        env!("CARGO_PKG_VERSION")
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept_tls(amqps.as_ref()), if amqps.is_some() => match (accepted, &tls) {
                (Ok((stream, peer)), Some(tls)) => {
                    let acceptor = tls.amqp_acceptor();
                    connections.spawn(crate::connection::serve_tls(stream, peer, acceptor, broker.clone(), stop_rx.clone()));
                }
                (Ok(_), None) => {}
                (Err(e), _) => {
                    error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            accepted = amqp.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(crate::connection::serve(stream, peer, broker.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        error!("a connection task panicked: {e}");
                    }
                }
            }
        }
    }
    info!("shutting down: closing {} connections", connections.len());
    drop(amqp);
    drop(amqps);
    let _ = stop_tx.send(true);
    for server in [api, api_tls, metrics].into_iter().flatten() {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
    let store = broker.store.clone();
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    info!("Warren stopped");
    Ok(())
}

/// Accepts on the AMQPS listener (only polled when there is one).
async fn accept_tls(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Rereads the certificate and key files on SIGHUP, as RabbitMQ's operators expect of a
/// server: connections accepted afterwards use the new ones, open ones keep theirs.
async fn reload_on_hangup(tls: Arc<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            error!("cannot listen for SIGHUP: TLS certificates will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => info!("SIGHUP: TLS certificates reloaded"),
                Err(e) => error!("SIGHUP: TLS certificates not reloaded, the old ones stay: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

/// A broker running on its own task: what tests and embedders use.
pub struct Server {
    pub amqp_addr: SocketAddr,
    /// The management API's address.
    pub http_addr: SocketAddr,
    /// The Prometheus endpoint's address.
    pub prometheus_addr: SocketAddr,
    /// The AMQPS and HTTPS addresses, when TLS is configured.
    pub amqps_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// The running broker, for embedders and tests to manage (users, vhosts...).
    pub broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds the configured address and ports (0 picks free ones) and starts serving.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        let amqp = TcpListener::bind((config.bind, config.amqp_port)).await?;
        let amqp_addr = amqp.local_addr()?;
        let http = TcpListener::bind((config.bind, config.http_port)).await?;
        let http_addr = http.local_addr()?;
        let prometheus = TcpListener::bind((config.bind, config.prometheus_port)).await?;
        let prometheus_addr = prometheus.local_addr()?;
        let (amqps, https) = match config.tls_cert {
            Some(_) => (
                Some(TcpListener::bind((config.bind, config.amqps_port)).await?),
                Some(TcpListener::bind((config.bind, config.https_port)).await?),
            ),
            None => (None, None),
        };
        let amqps_addr = amqps.as_ref().map(TcpListener::local_addr).transpose()?;
        let https_addr = https.as_ref().map(TcpListener::local_addr).transpose()?;
        let broker = open(config).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            amqp,
            amqps,
            https,
            http: Some(http),
            prometheus: Some(prometheus),
        };
        let task = tokio::spawn(serve(listeners, broker.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Self {
            amqp_addr,
            http_addr,
            prometheus_addr,
            amqps_addr,
            https_addr,
            broker,
            stop: Some(stop),
            task,
        })
    }

    /// An amqp:// URI for this server with the default guest account.
    pub fn amqp_uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.amqp_addr)
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}
