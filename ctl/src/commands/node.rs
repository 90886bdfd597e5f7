//! The node, queues, connections and definitions: status, cluster_status, version,
//! environment, await_startup, set_cluster_name, purge_queue, delete_queue,
//! close_connection, close_all_connections, export_definitions, import_definitions.

use crate::client::{segment, Api};
use crate::error::{CtlError, CtlResult};
use crate::output::Style;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn node(api: &Api) -> CtlResult<Value> {
    let nodes = api.get("/api/nodes")?;
    Ok(nodes.get(0).cloned().unwrap_or(Value::Null))
}

pub fn status(api: &Api, style: &Style) -> CtlResult<()> {
    let overview = api.get("/api/overview")?;
    let node = node(api)?;
    let name = node["name"].as_str().unwrap_or_default();
    if style.formatter == crate::cli::Formatter::Json {
        println!(
            "{}",
            json!({"node": name, "overview": overview, "status": node})
        );
        return Ok(());
    }
    style.banner(&format!("Status of node {name} ..."));
    let mb = |v: &Value| v.as_u64().unwrap_or(0) as f64 / 1_000_000.0;
    println!("Runtime\n");
    println!("OS PID: {}", node["os_pid"].as_str().unwrap_or_default());
    println!("OS: {}", std::env::consts::OS);
    println!(
        "Uptime (seconds): {}",
        node["uptime"].as_u64().unwrap_or(0) / 1000
    );
    println!("Is under maintenance?: {}", node["being_drained"]);
    println!(
        "Product: {} {}",
        overview["product_name"].as_str().unwrap_or("Warren"),
        overview["product_version"].as_str().unwrap_or_default()
    );
    println!(
        "RabbitMQ version (API compatibility): {}",
        overview["rabbitmq_version"].as_str().unwrap_or_default()
    );
    println!("Node name: {name}");
    println!("\nData directory\n");
    println!(
        "Node data directory: {}",
        node["db_dir"].as_str().unwrap_or_default()
    );
    println!("\nListeners\n");
    for l in overview["listeners"].as_array().into_iter().flatten() {
        println!(
            "Interface: {}, port: {}, protocol: {}",
            l["ip_address"].as_str().unwrap_or_default(),
            l["port"],
            l["protocol"].as_str().unwrap_or_default()
        );
    }
    println!("\nMemory\n");
    println!("Total memory used: {:.4} mb", mb(&node["mem_used"]));
    println!("Memory high watermark: {:.4} mb", mb(&node["mem_limit"]));
    println!("\nFile Descriptors\n");
    println!("Total: {}, limit: {}", node["fd_used"], node["fd_total"]);
    println!("\nTotals\n");
    let totals = &overview["object_totals"];
    println!("Connection count: {}", totals["connections"]);
    println!("Queue count: {}", totals["queues"]);
    println!(
        "Virtual host count: {}",
        api.get("/api/vhosts")?.as_array().map_or(0, Vec::len)
    );
    Ok(())
}

pub fn cluster_status(api: &Api, style: &Style) -> CtlResult<()> {
    let node = node(api)?;
    let name = node["name"].as_str().unwrap_or_default().to_owned();
    let cluster = api.get("/api/cluster-name")?;
    style.banner(&format!("Cluster status of node {name} ..."));
    println!("Basics\n");
    println!(
        "Cluster name: {}",
        cluster["name"].as_str().unwrap_or_default()
    );
    println!("\nDisk Nodes\n\n{name}\n");
    println!("Running Nodes\n\n{name}\n");
    println!("Warren runs as a single node; clustering is not available yet.");
    Ok(())
}

pub fn version(api: &Api) -> CtlResult<()> {
    let overview = api.get("/api/overview")?;
    println!(
        "{}",
        overview["product_version"].as_str().unwrap_or_default()
    );
    Ok(())
}

pub fn environment(api: &Api, style: &Style) -> CtlResult<()> {
    let overview = api.get("/api/overview")?;
    let node = node(api)?;
    style.banner(&format!(
        "Application environment of node {} ...",
        node["name"].as_str().unwrap_or_default()
    ));
    let settings = json!({
        "cluster_name": overview["cluster_name"],
        "listeners": overview["listeners"],
        "rates_mode": overview["rates_mode"],
        "data_dir": node["db_dir"],
        "memory_high_watermark": node["mem_limit"],
        "disk_free_limit": node["disk_free_limit"],
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&settings).unwrap_or_default()
    );
    Ok(())
}

/// Polls the broker until it answers, or the timeout passes (75).
pub fn await_startup(api: &Api, style: &Style, timeout: u64) -> CtlResult<()> {
    style.banner("Will wait for the broker to start ...");
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        match api.get("/api/overview") {
            Ok(_) => return Ok(()),
            Err(CtlError::Unavailable(e)) | Err(CtlError::Timeout(e)) => {
                if Instant::now() >= deadline {
                    return Err(CtlError::Timeout(format!(
                        "the broker did not start within {timeout} seconds: {e}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(other) => return Err(other),
        }
    }
}

pub fn set_cluster_name(api: &Api, style: &Style, name: &str) -> CtlResult<()> {
    style.banner(&format!("Setting cluster name to {name} ..."));
    api.put("/api/cluster-name", &json!({"name": name}))?;
    Ok(())
}

/// trace_on and trace_off.
pub fn trace(api: &Api, style: &Style, vhost: &str, on: bool) -> CtlResult<()> {
    let verb = if on { "Starting" } else { "Stopping" };
    style.banner(&format!("{verb} tracing for vhost \"{vhost}\" ..."));
    let path = format!("/api/vhosts/{}", segment(vhost));
    // A PUT would create a missing vhost: it must exist first.
    api.get(&path).map_err(|e| match e {
        CtlError::Data(_) => CtlError::Data(format!("Virtual host '{vhost}' does not exist")),
        other => other,
    })?;
    api.put(&path, &json!({"tracing": on}))?;
    Ok(())
}

fn missing_queue(vhost: &str, queue: &str) -> CtlError {
    CtlError::Data(format!("queue '{queue}' in vhost '{vhost}' does not exist"))
}

pub fn purge_queue(api: &Api, style: &Style, vhost: &str, queue: &str) -> CtlResult<()> {
    style.banner(&format!("Purging queue '{queue}' in vhost '{vhost}' ..."));
    let path = format!("/api/queues/{}/{}/contents", segment(vhost), segment(queue));
    api.delete(&path).map_err(|e| match e {
        CtlError::Data(_) => missing_queue(vhost, queue),
        other => other,
    })?;
    Ok(())
}

pub fn delete_queue(
    api: &Api,
    style: &Style,
    vhost: &str,
    queue: &str,
    if_empty: bool,
    if_unused: bool,
) -> CtlResult<()> {
    style.banner(&format!("Deleting queue '{queue}' on vhost '{vhost}' ..."));
    let base = format!("/api/queues/{}/{}", segment(vhost), segment(queue));
    let messages = api.get(&base).map_err(|_| missing_queue(vhost, queue))?["messages"]
        .as_u64()
        .unwrap_or(0);
    let mut query = Vec::new();
    if if_empty {
        query.push("if-empty=true");
    }
    if if_unused {
        query.push("if-unused=true");
    }
    let path = match query.is_empty() {
        true => base,
        false => format!("{base}?{}", query.join("&")),
    };
    api.delete(&path)?;
    println!("Queue was successfully deleted with {messages} messages");
    Ok(())
}

pub fn close_connection(api: &Api, style: &Style, name: &str, explanation: &str) -> CtlResult<()> {
    style.banner(&format!(
        "Closing connection {name}, reason: {explanation}..."
    ));
    let path = format!("/api/connections/{}", segment(name));
    api.delete_with(&path, ("x-reason", explanation))
        .map_err(|_| CtlError::Data(format!("connection {name} does not exist")))?;
    Ok(())
}

pub fn close_all_connections(
    api: &Api,
    style: &Style,
    vhost: &str,
    global: bool,
    explanation: &str,
) -> CtlResult<()> {
    let path = match global {
        true => "/api/connections".to_owned(),
        false => format!("/api/vhosts/{}/connections", segment(vhost)),
    };
    let connections = api.get(&path)?;
    let names: Vec<String> = connections
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    match global {
        true => style.banner(&format!("Closing all connections, reason: {explanation}")),
        false => style.banner(&format!(
            "Closing all connections in vhost {vhost}, reason: {explanation}"
        )),
    }
    for name in names {
        let path = format!("/api/connections/{}", segment(&name));
        // One that closed meanwhile is no error.
        let _ = api.delete_with(&path, ("x-reason", explanation));
        println!("Closing connection {name}");
    }
    Ok(())
}

pub fn export_definitions(api: &Api, style: &Style, path: &str) -> CtlResult<()> {
    let defs = api.get("/api/definitions")?;
    let text = serde_json::to_string_pretty(&defs).unwrap_or_default();
    if path == "-" {
        println!("{text}");
        return Ok(());
    }
    style.banner(&format!(
        "Exporting definitions in JSON to a file at \"{path}\" ..."
    ));
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CtlError::Data(format!("cannot write {path}: {e}")))
}

pub fn import_definitions(api: &Api, style: &Style, path: &str) -> CtlResult<()> {
    let mut text = String::new();
    let read = match path {
        "-" => std::io::stdin().read_to_string(&mut text).map(|_| ()),
        file => std::fs::read_to_string(file).map(|t| text = t),
    };
    read.map_err(|e| CtlError::Data(format!("cannot read {path}: {e}")))?;
    let defs: Value = serde_json::from_str(&text)
        .map_err(|e| CtlError::Data(format!("{path} is not JSON: {e}")))?;
    style.banner(&format!(
        "Importing definitions in JSON from a file at \"{path}\" ..."
    ));
    api.post("/api/definitions", &defs)?;
    style.banner("Successfully started definition import. This process is asynchronous and can take some time.");
    Ok(())
}
