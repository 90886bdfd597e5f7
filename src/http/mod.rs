//! The management HTTP API: RabbitMQ's /api on axum, so that the tools operators already use
//! work against Warren. One module per resource; handlers are thin over the broker's
//! accessors and never touch the message path. Errors are RabbitMQ's JSON bodies
//! (`error.rs`); every request is authenticated (`auth.rs`).
//!
//! So far: whoami, overview, vhosts, users, permissions, policies and operator policies. The rest of RabbitMQ's API comes
//! in later steps.

mod auth;
mod error;
mod overview;
mod permissions;
mod policies;
mod users;
mod vhosts;

use crate::broker::Broker;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

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
        .fallback(|| async { error::ApiError::not_found() })
        .with_state(broker)
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
