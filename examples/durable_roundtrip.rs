//! Publishes persistent messages to a durable queue with confirms, or gets them back: a check
//! that a broker keeps what it confirmed across a restart (docker/test.sh uses it).
//!
//! ```sh
//! cargo run --example durable_roundtrip -- publish 10   # declares "durable-check", sends 10
//! # restart the broker
//! cargo run --example durable_roundtrip -- get 10       # fails unless all 10 come back
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const QUEUE: &str = "durable-check";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(QUEUE.into(), durable, FieldTable::default())
        .await?;
    match mode.as_str() {
        "publish" => {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            for i in 0..count {
                let body = format!("message {i}");
                channel
                    .basic_publish(
                        "".into(),
                        QUEUE.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?
                    .await?;
            }
            println!("published and confirmed {count} persistent messages");
        }
        "get" => {
            for i in 0..count {
                let Some(message) = channel
                    .basic_get(QUEUE.into(), BasicGetOptions { no_ack: true })
                    .await?
                else {
                    return Err(format!("only {i} of {count} messages came back").into());
                };
                let expected = format!("message {i}");
                if message.delivery.data != expected.as_bytes() {
                    return Err(format!("message {i} came back changed").into());
                }
            }
            println!("got all {count} messages back");
        }
        other => {
            return Err(format!("usage: durable_roundtrip publish|get N (got {other:?})").into())
        }
    }
    conn.close(200, "bye".into()).await?;
    Ok(())
}
