//! The built `warrenctl` binary against an in-process Warren: each command's output and exit
//! code, the formatters, and the error paths. Expected texts follow what rabbitmqctl 3.10.8
//! printed on this machine for the same state (its banners, tab-separated rows, `[tag]` lists
//! and JSON layout).

use std::process::Command;
use warren::{Config, Server};

struct Broker {
    server: Server,
    _data: tempfile::TempDir,
}

async fn broker() -> Broker {
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        amqp_port: 0,
        http_port: 0,
        prometheus_port: 0,
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let server = Server::start(config).await.expect("broker starts");
    Broker {
        server,
        _data: data,
    }
}

/// What one warrenctl run printed, and its exit code.
struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Runs warrenctl against the broker's API (off the runtime's workers: it blocks).
async fn ctl(broker: &Broker, args: &[&str]) -> Run {
    let port = broker.server.http_addr.port().to_string();
    let mut all = vec!["--host", "127.0.0.1", "--port", &port];
    all.extend_from_slice(args);
    run(all.iter().map(|s| s.to_string()).collect()).await
}

async fn run(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_warrenctl"))
            .args(&args)
            .env_remove("WARRENCTL_HOST")
            .env_remove("WARRENCTL_PORT")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .output()
            .expect("warrenctl runs");
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    })
    .await
    .unwrap()
}

/// Runs and insists on success.
async fn ok(broker: &Broker, args: &[&str]) -> String {
    let r = ctl(broker, args).await;
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

async fn amqp(
    broker: &Broker,
    user: &str,
    pass: &str,
    vhost: &str,
) -> lapin::Result<lapin::Connection> {
    let vhost = vhost.replace('/', "%2F");
    let uri = format!("amqp://{user}:{pass}@{}/{vhost}", broker.server.amqp_addr);
    lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_print_as_rabbitmqctl_prints_them() {
    let b = broker().await;
    let conn = amqp(&b, "guest", "guest", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-max-length".into(),
        lapin::types::AMQPValue::LongLongInt(5),
    );
    ch.queue_declare(
        "q1".into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    for _ in 0..2 {
        ch.basic_publish(
            "".into(),
            "q1".into(),
            Default::default(),
            b"x",
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }

    assert_eq!(
        ok(&b, &["list_queues"]).await,
        "Listing queues for vhost / ...\nname\tmessages\nq1\t2\n"
    );
    assert_eq!(
        ok(&b, &["-q", "list_queues"]).await,
        "name\tmessages\nq1\t2\n"
    );
    assert_eq!(ok(&b, &["-s", "list_queues"]).await, "q1\t2\n");
    assert_eq!(
        ok(&b, &["list_queues", "name", "messages", "durable", "arguments", "--formatter", "json"]).await,
        "[\n{\"name\":\"q1\",\"messages\":2,\"durable\":true,\"arguments\":[[\"x-max-length\",\"long\",5]]}\n]\n"
    );
    assert_eq!(
        ok(&b, &["-q", "list_queues", "name", "arguments"]).await,
        "name\targuments\nq1\t[{\"x-max-length\",5}]\n"
    );
    assert_eq!(
        ok(&b, &["list_users"]).await,
        "Listing users ...\nuser\ttags\nguest\t[administrator]\n"
    );
    assert_eq!(
        ok(&b, &["list_permissions", "-p", "/"]).await,
        "Listing permissions for vhost \"/\" ...\nuser\tconfigure\twrite\tread\nguest\t.*\t.*\t.*\n"
    );
    assert_eq!(
        ok(&b, &["--formatter", "csv", "list_queues"]).await,
        "name,messages\nq1,2\n"
    );
    assert!(ok(&b, &["--formatter", "pretty_table", "list_queues"])
        .await
        .contains("│ q1   │ 2        │"));
    let bindings = ok(&b, &["-q", "list_bindings"]).await;
    assert_eq!(
        bindings,
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n\texchange\tq1\tqueue\tq1\t[]\n"
    );
    let connections = ok(&b, &["-q", "list_connections"]).await;
    assert!(
        connections.starts_with("user\tpeer_host\tpeer_port\tstate\nguest\t127.0.0.1\t"),
        "{connections}"
    );
    let exchanges = ok(&b, &["-q", "list_exchanges"]).await;
    assert!(
        exchanges.contains("amq.topic\ttopic\n") && exchanges.contains("\n\tdirect\n"),
        "{exchanges}"
    );

    let bad = ctl(&b, &["list_queues", "bogus"]).await;
    assert_eq!(bad.code, 64);
    assert!(
        bad.stderr
            .starts_with("Error: Info key(s) bogus are not supported"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_vhosts_permissions_and_policies_are_managed() {
    let b = broker().await;
    assert_eq!(
        ok(&b, &["add_vhost", "orders"]).await,
        "Adding vhost \"orders\" ...\n"
    );
    ok(&b, &["add_user", "app", "s3cret"]).await;
    assert_eq!(ctl(&b, &["add_user", "app", "s3cret"]).await.code, 65);
    ok(
        &b,
        &[
            "set_permissions",
            "-p",
            "orders",
            "app",
            "^orders\\.",
            ".*",
            ".*",
        ],
    )
    .await;
    assert_eq!(
        ok(&b, &["-q", "list_user_permissions", "app"]).await,
        "vhost\tconfigure\twrite\tread\norders\t^orders\\.\t.*\t.*\n"
    );
    let conn = amqp(&b, "app", "s3cret", "orders")
        .await
        .expect("app logs in to orders");
    assert!(ok(&b, &["authenticate_user", "app", "s3cret"])
        .await
        .ends_with("Success\n"));
    let wrong = ctl(&b, &["authenticate_user", "app", "wrong"]).await;
    assert_eq!(wrong.code, 65);
    assert_eq!(
        wrong.stderr,
        "Error: failed to authenticate user \"app\": user 'app' - invalid credentials\n"
    );
    ok(&b, &["change_password", "app", "n3w"]).await;
    assert!(amqp(&b, "app", "s3cret", "orders").await.is_err());
    ok(&b, &["set_user_tags", "app", "monitoring", "policymaker"]).await;
    assert!(ok(&b, &["-q", "list_users"])
        .await
        .contains("app\t[monitoring, policymaker]\n"));
    // Tags did not change the password.
    amqp(&b, "app", "n3w", "orders")
        .await
        .expect("the new password works");

    ok(
        &b,
        &[
            "set_policy",
            "-p",
            "orders",
            "ttl",
            "^ttl\\.",
            "{\"message-ttl\":60000}",
            "--apply-to",
            "queues",
            "--priority",
            "1",
        ],
    )
    .await;
    assert_eq!(
        ok(&b, &["-q", "list_policies", "-p", "orders"]).await,
        "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\norders\tttl\t^ttl\\.\tqueues\t{\"message-ttl\":60000}\t1\n"
    );
    ok(&b, &["clear_policy", "-p", "orders", "ttl"]).await;
    assert_eq!(
        ctl(&b, &["clear_policy", "-p", "orders", "ttl"]).await.code,
        65
    );
    ok(
        &b,
        &["set_vhost_limits", "-p", "orders", "{\"max-queues\": 10}"],
    )
    .await;
    // As rabbitmqctl: one vhost's limits as a JSON object, every vhost's as rows.
    assert_eq!(
        ok(&b, &["list_vhost_limits", "-p", "orders"]).await,
        "Listing limits for vhost \"orders\" ...\n{\"max-queues\":10}\n"
    );
    assert_eq!(
        ok(&b, &["-q", "list_vhost_limits", "--global"]).await,
        "vhost\tvalue\norders\t{\"max-queues\":10}\n"
    );
    ok(&b, &["set_user_limits", "app", "{\"max-connections\": 3}"]).await;
    assert_eq!(
        ok(&b, &["-q", "list_user_limits", "--user", "app"]).await,
        "{\"max-connections\":3}\n"
    );
    ok(
        &b,
        &[
            "set_topic_permissions",
            "-p",
            "orders",
            "app",
            "amq.topic",
            "^orders",
            ".*",
        ],
    )
    .await;
    assert_eq!(
        ok(&b, &["-q", "list_topic_permissions", "-p", "orders"]).await,
        "user\texchange\twrite\tread\napp\tamq.topic\t^orders\t.*\n"
    );

    // Deleting the user closes its connection.
    ok(&b, &["delete_user", "app"]).await;
    assert_eq!(ctl(&b, &["delete_user", "app"]).await.code, 65);
    drop(conn);
    ok(&b, &["delete_vhost", "orders"]).await;
    assert_eq!(ok(&b, &["-s", "list_vhosts"]).await, "/\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_connections_definitions_and_the_node() {
    let b = broker().await;
    let conn = amqp(&b, "guest", "guest", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("work".into(), Default::default(), Default::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "work".into(),
        Default::default(),
        b"x",
        Default::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(
        ok(&b, &["purge_queue", "work"]).await,
        "Purging queue 'work' in vhost '/' ...\n"
    );
    assert_eq!(ctl(&b, &["purge_queue", "nope"]).await.code, 65);
    assert_eq!(
        ok(&b, &["delete_queue", "work"]).await,
        "Deleting queue 'work' on vhost '/' ...\nQueue was successfully deleted with 0 messages\n"
    );

    let name = ok(&b, &["-s", "list_connections", "name"])
        .await
        .trim()
        .to_owned();
    let closed = ok(&b, &["close_connection", &name, "maintenance"]).await;
    assert_eq!(
        closed,
        format!("Closing connection {name}, reason: maintenance...\n")
    );
    let status = conn.status();
    let gone = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while status.connected() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the connection was closed");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    let file = file.to_str().unwrap();
    ok(&b, &["add_vhost", "exported"]).await;
    ok(&b, &["export_definitions", file]).await;
    ok(&b, &["delete_vhost", "exported"]).await;
    ok(&b, &["import_definitions", file]).await;
    assert!(ok(&b, &["-s", "list_vhosts"]).await.contains("exported\n"));
    let to_stdout = ok(&b, &["export_definitions", "-"]).await;
    assert!(to_stdout.contains("\"rabbitmq_version\""));

    let node = b.server.broker.node_name().to_owned();
    assert_eq!(
        ok(&b, &["diagnostics", "ping"]).await,
        format!("Will ping {node}. This only checks if the node is running and answers. Timeout: 60000 ms.\nPing succeeded\n")
    );
    assert_eq!(ok(&b, &["-q", "ping"]).await, "Ping succeeded\n");
    assert!(ok(&b, &["status"])
        .await
        .starts_with(&format!("Status of node {node} ...")));
    assert!(ok(&b, &["cluster_status"])
        .await
        .contains("Warren runs as a single node"));
    assert_eq!(
        ok(&b, &["version"]).await,
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(ok(&b, &["check_port_connectivity"])
        .await
        .contains("Successfully connected"));
    assert!(ok(&b, &["-q", "listeners"]).await.contains("\tamqp\n"));
    assert!(ok(&b, &["check_local_alarms"])
        .await
        .contains("reported no local alarms"));
    ok(&b, &["set_cluster_name", "blue"]).await;
    let globals = ok(&b, &["-q", "list_global_parameters"]).await;
    assert!(globals.contains("cluster_name\t\"blue\"\n"), "{globals}");
    ok(&b, &["await_startup", "-t", "5"]).await;
    assert_eq!(
        ok(&b, &["trace_on", "-p", "/"]).await,
        "Starting tracing for vhost \"/\" ...\n"
    );
    assert_eq!(
        ok(&b, &["-s", "list_vhosts", "name", "tracing"]).await,
        "/\ttrue\nexported\tfalse\n"
    );
    ok(&b, &["trace_off"]).await;
    assert_eq!(ctl(&b, &["trace_on", "-p", "nope"]).await.code, 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_with_rabbitmqctls_codes() {
    let b = broker().await;
    let unknown = ctl(&b, &["no_such_command"]).await;
    assert_eq!(unknown.code, 64);
    let usage = ctl(&b, &["add_user", "only-a-name"]).await;
    assert_eq!(usage.code, 64);
    let refused = ctl(&b, &["--password", "wrong", "list_queues"]).await;
    assert_eq!(refused.code, 77);
    assert!(
        refused.stderr.starts_with("Error: Access refused"),
        "{}",
        refused.stderr
    );
    let missing_vhost = ctl(&b, &["list_queues", "-p", "nope"]).await;
    assert_eq!(missing_vhost.code, 65);

    // Nothing listens on this port: the broker is unavailable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let unreachable = run(vec![
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.clone(),
        "list_queues".into(),
    ])
    .await;
    assert_eq!(unreachable.code, 69);
    assert!(
        unreachable.stderr.contains("unable to reach the broker"),
        "{}",
        unreachable.stderr
    );
    let waited = run(vec![
        "--port".into(),
        port,
        "-t".into(),
        "1".into(),
        "await_startup".into(),
    ])
    .await;
    assert_eq!(waited.code, 75);

    let help = ctl(&b, &["set_permissions", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Example: set_permissions"),
        "{}",
        help.stdout
    );
    let completion = ctl(&b, &["completion", "bash"]).await;
    assert!(completion.stdout.contains("warrenctl"));
}

#[tokio::test]
async fn tls_reaches_the_https_api_trusting_the_given_authority() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let files = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "warrenctl test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (cert, key_file, ca_file) = (
        files.path().join("cert.pem"),
        files.path().join("key.pem"),
        files.path().join("ca.pem"),
    );
    std::fs::write(&cert, server.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        amqp_port: 0,
        http_port: 0,
        prometheus_port: 0,
        amqps_port: 0,
        https_port: 0,
        tls_cert: Some(cert),
        tls_key: Some(key_file),
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let server = Server::start(config).await.expect("broker starts");
    let https = server.https_addr.expect("HTTPS").port().to_string();
    let ca = ca_file.display().to_string();
    let args = |extra: &[&str]| {
        let mut all = vec!["--host", "127.0.0.1", "--port", &https, "--tls"];
        all.extend_from_slice(extra);
        all.push("list_vhosts");
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let trusted = run(args(&["--tls-ca", &ca])).await;
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert!(
        trusted.stdout.contains("\n/\n") || trusted.stdout.ends_with("/\n"),
        "{}",
        trusted.stdout
    );
    // Without the authority the certificate is not trusted.
    let untrusted = run(args(&[])).await;
    assert_ne!(untrusted.code, 0, "{}", untrusted.stdout);
}
