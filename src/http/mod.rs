//! The management HTTP API: RabbitMQ's /api on axum, so that the tools operators already use
//! work against Warren. One module per resource; handlers are thin over the broker's
//! accessors and never touch the message path. Errors are RabbitMQ's JSON bodies
//! (`error.rs`); every request is authenticated (`auth.rs`).
//!
//! So far: whoami, overview, vhosts, users, permissions, policies and operator policies. The rest of RabbitMQ's API comes
//! in later steps.

mod auth;
mod bindings;
mod connections;
mod consumers;
mod definitions;
mod error;
mod exchanges;
mod health;
mod limits;
mod list;
mod messages;
mod nodes;
mod overview;
mod parameters;
mod permissions;
mod policies;
mod prometheus;
mod queues;
mod stats;
mod time;
mod tls;
mod topic_permissions;
mod ui;
mod users;
mod vhosts;

use crate::broker::Broker;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The RabbitMQ version whose API Warren follows: clients that gate features on it work.
pub const RABBITMQ_VERSION: &str = "3.10.8";

/// The API's routes, over a running broker.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/api/whoami", get(users::whoami))
        .route("/api/overview", get(overview::overview))
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show).put(vhosts::put).delete(vhosts::delete),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::of_vhost),
        )
        .route("/api/users", get(users::list))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::put).delete(users::delete),
        )
        .route("/api/users/{user}/permissions", get(permissions::of_user))
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::put)
                .delete(permissions::delete),
        )
        .route("/api/policies", get(policies::list::<false>))
        .route("/api/policies/{vhost}", get(policies::of_vhost::<false>))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::show::<false>)
                .put(policies::put::<false>)
                .delete(policies::delete::<false>),
        )
        .route("/api/operator-policies", get(policies::list::<true>))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::of_vhost::<true>),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::show::<true>)
                .put(policies::put::<true>)
                .delete(policies::delete::<true>),
        )
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::put)
                .delete(exchanges::delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/{side}",
            get(bindings::of_exchange_as),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(messages::publish),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show).put(queues::put).delete(queues::delete),
        )
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::of_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(queues::purge),
        )
        .route("/api/queues/{vhost}/{name}/get", post(messages::get))
        .route("/api/queues/{vhost}/{name}/actions", post(queues::actions))
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(bindings::list_between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(bindings::show).delete(bindings::delete),
        )
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::channels_of_connection),
        )
        .route(
            "/api/connections/username/{user}",
            get(connections::of_user),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/channels/{name}", get(connections::channel))
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::of_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/channels",
            get(connections::channels_of_vhost),
        )
        .route("/api/users/bulk-delete", post(users::bulk_delete))
        .route("/api/topic-permissions", get(topic_permissions::list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(topic_permissions::show)
                .put(topic_permissions::put)
                .delete(topic_permissions::delete),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(topic_permissions::of_user),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(topic_permissions::of_vhost),
        )
        .route("/api/vhost-limits", get(limits::vhosts))
        .route("/api/vhost-limits/{vhost}", get(limits::of_vhost))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(limits::put_vhost).delete(limits::delete_vhost),
        )
        .route("/api/user-limits", get(limits::users))
        .route("/api/user-limits/{user}", get(limits::of_user))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(limits::put_user).delete(limits::delete_user),
        )
        .route("/api/parameters", get(parameters::list))
        .route("/api/parameters/{component}", get(parameters::of_component))
        .route(
            "/api/parameters/{component}/{vhost}",
            get(parameters::of_component_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameters::show)
                .put(parameters::put)
                .delete(parameters::delete),
        )
        .route("/api/global-parameters", get(parameters::globals))
        .route(
            "/api/global-parameters/{name}",
            get(parameters::global)
                .put(parameters::put_global)
                .delete(parameters::delete_global),
        )
        .route(
            "/api/cluster-name",
            get(parameters::show_cluster_name).put(parameters::put_cluster_name),
        )
        .route("/api/nodes", get(nodes::list))
        .route("/api/nodes/{name}", get(nodes::show))
        .route("/api/nodes/{name}/memory", get(nodes::memory))
        .route("/api/deprecated-features", get(nodes::deprecated_features))
        .route(
            "/api/deprecated-features/used",
            get(nodes::deprecated_features),
        )
        .route("/api/extensions", get(nodes::extensions))
        .route("/api/feature-flags", get(nodes::feature_flags))
        .route("/api/health/checks/alarms", get(health::alarms))
        .route("/api/health/checks/local-alarms", get(health::local_alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(health::virtual_hosts),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(health::single_node),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(health::single_node),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(health::port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(health::protocol_listener),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(health::certificate_expiration),
        )
        .route(
            "/api/health/checks/ready-to-serve-clients",
            get(health::ready_to_serve_clients),
        )
        .route("/api/healthchecks/node", get(health::alarms))
        .route("/api/aliveness-test/{vhost}", get(health::aliveness))
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import_all),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .route("/api/consumers", get(consumers::list))
        .route("/api/consumers/{vhost}", get(consumers::list_vhost))
        .fallback(ui::serve)
        .with_state(broker)
}

/// Serves the Prometheus endpoint on `listener` until `shutdown` resolves.
pub async fn serve_prometheus(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, prometheus::router(broker))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the API over HTTPS on `listener` until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<crate::tls::Tls>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(broker).into_make_service_with_connect_info::<SocketAddr>();
    // tap_io: axum gives the peer address (ConnectInfo) to wrapped listeners.
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(broker).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
