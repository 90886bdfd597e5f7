//! The exchange, queues and bindings a load run uses: declared (and emptied) before it, deleted
//! after it, and the address each producer publishes to.

use crate::args::ExchangeType;
use crate::connect::connect;
use crate::error::PerfError;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;

/// The header a headers exchange routes on: each queue binds to its own name.
const ROUTE_HEADER: &str = "warren-perf-queue";

#[derive(Debug, Clone)]
pub struct Topology {
    /// "" for the default exchange.
    pub exchange: String,
    pub exchange_type: ExchangeType,
    pub queues: Vec<String>,
    pub durable: bool,
    /// Quorum queues rather than classic ones.
    pub quorum: bool,
}

/// Where a producer sends: exchange, routing key, and the headers a headers exchange needs.
#[derive(Debug, Clone)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
    pub headers: Option<FieldTable>,
}

impl Topology {
    /// Queue names for a run: NAME alone, or NAME-1 ... NAME-N.
    pub fn queue_names(base: &str, count: usize) -> Vec<String> {
        match count {
            1 => vec![base.to_string()],
            n => (1..=n).map(|i| format!("{base}-{i}")).collect(),
        }
    }

    /// How many queues one publish reaches.
    pub fn deliveries_per_publish(&self) -> u64 {
        let reaches_all = matches!(self.exchange_type, ExchangeType::Fanout);
        if !self.exchange.is_empty() && reaches_all {
            self.queues.len() as u64
        } else {
            1
        }
    }

    /// Where producer `i` publishes: queue `i mod N`, through the exchange.
    pub fn route(&self, producer: usize) -> Route {
        let queue = &self.queues[producer % self.queues.len()];
        let headers = (self.exchange_type == ExchangeType::Headers && !self.exchange.is_empty())
            .then(|| route_header(queue));
        Route {
            exchange: self.exchange.clone(),
            routing_key: queue.clone(),
            headers,
        }
    }

    /// Declares everything and purges the queues, so leftovers of an earlier run do not count.
    pub async fn declare(&self, uri: &str) -> Result<(), PerfError> {
        let conn = connect(uri, "warren-perf setup").await?;
        let ch = conn.create_channel().await?;
        let declares_exchange = !self.exchange.is_empty() && !self.exchange.starts_with("amq.");
        if declares_exchange {
            let options = ExchangeDeclareOptions {
                durable: self.durable,
                ..Default::default()
            };
            let kind = exchange_kind(self.exchange_type);
            ch.exchange_declare(
                self.exchange.as_str().into(),
                kind,
                options,
                FieldTable::default(),
            )
            .await?;
        }
        for queue in &self.queues {
            let options = QueueDeclareOptions {
                durable: self.durable,
                ..Default::default()
            };
            let mut arguments = FieldTable::default();
            if self.quorum {
                arguments.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
            }
            ch.queue_declare(queue.as_str().into(), options, arguments)
                .await?;
            ch.queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await?;
            if !self.exchange.is_empty() {
                self.bind(&ch, queue).await?;
            }
        }
        conn.close(200, "setup done".into()).await?;
        Ok(())
    }

    async fn bind(&self, ch: &lapin::Channel, queue: &str) -> Result<(), PerfError> {
        let (key, arguments) = match self.exchange_type {
            ExchangeType::Fanout => ("", FieldTable::default()),
            ExchangeType::Headers => {
                let mut arguments = route_header(queue);
                arguments.insert("x-match".into(), AMQPValue::LongString("all".into()));
                ("", arguments)
            }
            ExchangeType::Direct | ExchangeType::Topic => (queue, FieldTable::default()),
        };
        ch.queue_bind(
            queue.into(),
            self.exchange.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            arguments,
        )
        .await?;
        Ok(())
    }

    /// Deletes the queues and the exchange the run declared.
    pub async fn delete(&self, uri: &str) -> Result<(), PerfError> {
        let conn = connect(uri, "warren-perf cleanup").await?;
        let ch = conn.create_channel().await?;
        for queue in &self.queues {
            ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        if !self.exchange.is_empty() && !self.exchange.starts_with("amq.") {
            ch.exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        }
        conn.close(200, "cleanup done".into()).await?;
        Ok(())
    }
}

fn route_header(queue: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(ROUTE_HEADER.into(), AMQPValue::LongString(queue.into()));
    headers
}

fn exchange_kind(kind: ExchangeType) -> ExchangeKind {
    match kind {
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Headers => ExchangeKind::Headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(exchange: &str, kind: ExchangeType, queues: usize) -> Topology {
        Topology {
            exchange: exchange.into(),
            exchange_type: kind,
            queues: Topology::queue_names("q", queues),
            durable: false,
            quorum: false,
        }
    }

    #[test]
    fn producers_spread_over_queues() {
        let t = topology("", ExchangeType::Direct, 3);
        assert_eq!(t.queues, ["q-1", "q-2", "q-3"]);
        assert_eq!(t.route(4).routing_key, "q-2");
        assert_eq!(t.deliveries_per_publish(), 1);
    }

    #[test]
    fn fanout_reaches_every_queue_and_headers_route_by_header() {
        assert_eq!(
            topology("x", ExchangeType::Fanout, 4).deliveries_per_publish(),
            4
        );
        let route = topology("x", ExchangeType::Headers, 2).route(1);
        assert!(route.headers.unwrap().inner().contains_key(ROUTE_HEADER));
    }
}
