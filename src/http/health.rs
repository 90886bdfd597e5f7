//! /api/health/checks/* and /api/aliveness-test/{v}: what container health checks and load
//! balancers probe, with RabbitMQ's bodies (200 `{"status":"ok"}`, 503 with a reason).

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use crate::broker::Broker;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

type Health = (StatusCode, Json<Value>);

fn ok() -> Health {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

fn failed(body: Value) -> Health {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// 503 while a memory or disk alarm is raised, naming them, as RabbitMQ answers.
pub async fn alarms(State(broker): State<Arc<Broker>>, _user: Authed) -> Health {
    alarms_answer(&broker, "There are alarms in effect in the cluster")
}

/// The same for this node alone (RabbitMQ's local-alarms words it so).
pub async fn local_alarms(State(broker): State<Arc<Broker>>, _user: Authed) -> Health {
    alarms_answer(&broker, "There are alarms in effect on the node")
}

fn alarms_answer(broker: &Broker, reason: &str) -> Health {
    let raised = broker.alarms.state();
    if !raised.any() {
        return ok();
    }
    let node = broker.node_name();
    let alarms: Vec<Value> = [("memory", raised.memory), ("disk", raised.disk)]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(resource, _)| json!({"node": node, "resource": resource}))
        .collect();
    failed(json!({"status": "failed", "reason": reason, "alarms": alarms}))
}

/// Every vhost is running: Warren's vhosts cannot be stopped apart from the node.
pub async fn virtual_hosts(_user: Authed) -> Health {
    ok()
}

/// Newer RabbitMQ's readiness probe: the node serves clients once it answers at all.
pub async fn ready_to_serve_clients(_user: Authed) -> Health {
    ok()
}

pub async fn single_node(_user: Authed) -> Health {
    (
        StatusCode::OK,
        Json(json!({"status": "ok", "reason": "single node cluster"})),
    )
}

pub async fn port_listener(
    State(broker): State<Arc<Broker>>,
    _user: Authed,
    Path(port): Path<String>,
) -> ApiResult<Health> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = broker.listeners().iter().map(|l| l.addr.port()).collect();
    Ok(match ports.contains(&port) {
        true => (StatusCode::OK, Json(json!({"status": "ok", "port": port}))),
        false => failed(json!({"status": "failed", "reason": "No active listener",
                               "missing": port, "ports": ports})),
    })
}

pub async fn protocol_listener(
    State(broker): State<Arc<Broker>>,
    _user: Authed,
    Path(protocol): Path<String>,
) -> Health {
    // RabbitMQ's aliases for the protocol names it lists.
    let wanted = match protocol.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" => "amqp",
        "amqps" => "amqp/ssl",
        "https" => "https",
        "prometheus" => "http/prometheus",
        other => other,
    };
    let protocols: Vec<&str> = broker.listeners().iter().map(|l| l.protocol).collect();
    match protocols.contains(&wanted) {
        true => (
            StatusCode::OK,
            Json(json!({"status": "ok", "protocol": wanted})),
        ),
        false => failed(json!({"status": "failed", "reason": "No active listener",
                               "missing": wanted, "protocols": protocols})),
    }
}

/// Warren serves no TLS listener yet, so no certificate can expire.
pub async fn certificate_expiration(
    _user: Authed,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult<Health> {
    within
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request("Invalid expiration value."))?;
    if !["days", "weeks", "months", "years"].contains(&unit.as_str()) {
        return Err(ApiError::bad_request(
            "Time unit not recognised. Supported units: days, weeks, months, years.",
        ));
    }
    Ok(ok())
}

/// The deprecated aliveness test: declares `aliveness-test` in the vhost, publishes a message
/// to it and gets it back, as RabbitMQ does.
pub async fn aliveness(
    State(broker): State<Arc<Broker>>,
    user: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Health> {
    let vhost = user.vhost(&broker, &vhost)?;
    let queue = vhost.declare_queue(
        crate::broker::vhost::QueueSpec {
            name: "aliveness-test".into(),
            ..Default::default()
        },
        broker.next_connection_id(),
        user.name(),
    )?;
    let exchange = vhost.exchange("")?;
    broker.publish(
        &vhost,
        &exchange,
        "aliveness-test",
        Default::default(),
        bytes::Bytes::from_static(b"test_message"),
    )?;
    let got = tokio::task::spawn_blocking(move || queue.get(false))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(match got {
        Some((entry, _)) if &entry.message.body[..] == b"test_message" => ok(),
        _ => failed(json!({"status": "failed", "reason": "aliveness test message not received"})),
    })
}
