//! rabbitmq-diagnostics' checks over the API's health checks: ping (what container health
//! checks run), check_running, check_local_alarms, check_alarms, check_port_connectivity,
//! check_virtual_hosts, listeners.

use crate::cli::Diagnostic;
use crate::client::Api;
use crate::error::{CtlError, CtlResult};
use crate::output::{Listing, Style};
use serde_json::Value;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

fn node_name(api: &Api) -> CtlResult<String> {
    let nodes = api.get("/api/nodes")?;
    Ok(nodes[0]["name"].as_str().unwrap_or_default().to_owned())
}

/// A health check: 200 passes; 503 fails with the check's reason.
fn check(api: &Api, path: &str) -> CtlResult<Value> {
    match api.call("GET", path, None) {
        Ok((_, body)) => Ok(body),
        Err(CtlError::Internal(reason)) => Err(CtlError::Data(reason)),
        Err(other) => Err(other),
    }
}

pub fn run(api: &Api, style: &Style, diagnostic: &Diagnostic, timeout: u64) -> CtlResult<()> {
    match diagnostic {
        Diagnostic::Ping => {
            let node = node_name(api)?;
            style.banner(&format!(
                "Will ping {node}. This only checks if the node is running and answers. Timeout: {} ms.",
                timeout * 1000
            ));
            println!("Ping succeeded");
        }
        Diagnostic::CheckRunning => {
            let node = node_name(api)?;
            style.banner(&format!(
                "Checking if the broker is running on node {node} ..."
            ));
            println!("Broker is running on node {node}");
        }
        Diagnostic::CheckLocalAlarms => {
            let node = node_name(api)?;
            style.banner(&format!(
                "Asking {node} to report any local resource alarms ..."
            ));
            check(api, "/api/health/checks/local-alarms")?;
            println!("Node {node} reported no local alarms");
        }
        Diagnostic::CheckAlarms => {
            let node = node_name(api)?;
            style.banner(&format!(
                "Asking {node} to report any known resource alarms ..."
            ));
            check(api, "/api/health/checks/alarms")?;
            println!("Node {node} reported no alarms, local or clusterwide");
        }
        Diagnostic::CheckVirtualHosts => {
            let node = node_name(api)?;
            style.banner(&format!(
                "Checking if all vhosts are running on node {node} ..."
            ));
            check(api, "/api/health/checks/virtual-hosts")?;
            println!("Node {node} reported all vhosts as running");
        }
        Diagnostic::CheckPortConnectivity => port_connectivity(api, style, timeout)?,
        Diagnostic::Listeners => listeners(api, style)?,
    }
    Ok(())
}

fn listener_rows(api: &Api) -> CtlResult<Vec<Value>> {
    let overview = api.get("/api/overview")?;
    Ok(overview["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn listeners(api: &Api, style: &Style) -> CtlResult<()> {
    let node = node_name(api)?;
    style.banner(&format!(
        "Asking node {node} to report its protocol listeners ..."
    ));
    let rows = listener_rows(api)?
        .iter()
        .map(|l| {
            vec![
                l["ip_address"].clone(),
                l["port"].clone(),
                l["protocol"].clone(),
            ]
        })
        .collect();
    Listing {
        columns: vec!["interface".into(), "port".into(), "protocol".into()],
        rows,
    }
    .print(style);
    Ok(())
}

/// Opens a TCP connection to every listener, on the host warrenctl reaches the API on.
fn port_connectivity(api: &Api, style: &Style, timeout: u64) -> CtlResult<()> {
    let node = node_name(api)?;
    style.banner(&format!(
        "Testing TCP connections to all active listeners on node {node} ..."
    ));
    let host = api.target.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    for l in listener_rows(api)? {
        let port = l["port"].as_u64().unwrap_or(0);
        let reached = (host, port as u16)
            .to_socket_addrs()
            .ok()
            .into_iter()
            .flatten()
            .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(timeout)).is_ok());
        if !reached {
            return Err(CtlError::Data(format!(
                "Connection to port {port} on {host} failed"
            )));
        }
    }
    println!("Successfully connected to ports on node {node}");
    Ok(())
}
