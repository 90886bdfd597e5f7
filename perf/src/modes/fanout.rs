//! Fanout mode: producers (one by default) publish to a fanout exchange bound to K queues, each
//! with its own consumer; the broker's cost is reported per million deliveries too.

use super::throughput::run_over;
use crate::args::{Args, ExchangeType};
use crate::error::PerfError;
use crate::report::Report;
use crate::topology::Topology;

/// The exchange fanout mode declares unless --exchange names another.
const FANOUT_EXCHANGE: &str = "warren-perf-fanout";

pub async fn run(args: &Args) -> Result<Report, PerfError> {
    let exchange = match args.exchange.as_str() {
        "" => FANOUT_EXCHANGE.to_string(),
        name => name.to_string(),
    };
    let topology = Topology {
        exchange,
        exchange_type: ExchangeType::Fanout,
        queues: Topology::queue_names(&args.queue, args.fanout),
        durable: args.durable_queues(),
        quorum: args.quorum,
    };
    run_over(args, "fanout", &topology, args.producers, args.fanout).await
}
