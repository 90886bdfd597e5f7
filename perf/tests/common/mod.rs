//! A Warren started in-process on 127.0.0.1:0 in a temp dir, and warren-perf run against it.
// Each test file uses its own part of the harness.
#![allow(dead_code)]

use clap::Parser;
use warren::{Config, Server};
use warren_perf::{Args, Report};

pub struct Broker {
    pub server: Server,
    _data: tempfile::TempDir,
}

pub async fn broker() -> Broker {
    broker_with(|_| {}).await
}

/// A broker with some of its defaults changed.
pub async fn broker_with(tweak: impl FnOnce(&mut Config)) -> Broker {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        bind: [127, 0, 0, 1].into(),
        amqp_port: 0,
        http_port: 0,
        prometheus_port: 0,
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    tweak(&mut config);
    let server = Server::start(config).await.expect("broker starts");
    Broker {
        server,
        _data: data,
    }
}

pub async fn perf(broker: &Broker, flags: &[&str]) -> Report {
    let report = perf_at(&broker.server.amqp_uri(), flags).await;
    assert_eq!(report.errors, 0, "errors: {:?}", report.error_samples);
    report
}

/// A run against `uri` that may end with errors.
pub async fn perf_at(uri: &str, flags: &[&str]) -> Report {
    let argv = ["warren-perf", "--uri", uri, "--drain-timeout", "5"];
    let args = Args::try_parse_from(argv.iter().chain(flags)).expect("flags parse");
    warren_perf::run(&args).await.expect("run completes")
}
