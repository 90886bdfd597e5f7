//! The accept loop and graceful shutdown. `run` takes bound listeners, a configuration and a
//! shutdown future, so the binary, tests and embedders all start Warren the same way.

use crate::broker::{Broker, Listener};
use crate::config::Config;
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
    broker.start();
    let amqp_addr = listeners.amqp.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let Listeners {
        amqp,
        http,
        prometheus,
    } = listeners;
    let mut bound = vec![Listener {
        protocol: "amqp",
        addr: amqp_addr,
    }];
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
    info!(
        "Warren {} ready to accept AMQP connections on {amqp_addr}",
        env!("CARGO_PKG_VERSION")
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
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
    let _ = stop_tx.send(true);
    for server in [api, metrics].into_iter().flatten() {
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

/// A broker running on its own task: what tests and embedders use.
pub struct Server {
    pub amqp_addr: SocketAddr,
    /// The management API's address.
    pub http_addr: SocketAddr,
    /// The Prometheus endpoint's address.
    pub prometheus_addr: SocketAddr,
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
        let broker = open(config).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            amqp,
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
