//! An RPC client: asks the `rpc_server` example for the n-th Fibonacci number (n is the first
//! argument, default 30) and prints the answer. Replies come back on an exclusive, server-named
//! queue that disappears with the connection; the correlation id pairs the reply with the request.
//!
//! ```sh
//! cargo run --example rpc_client -- 30
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30);
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let reply_queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut replies = channel
        .basic_consume(
            reply_queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let correlation_id = format!("{}-{nanos:x}", std::process::id());
    let properties = BasicProperties::default()
        .with_reply_to(reply_queue.name().clone())
        .with_correlation_id(correlation_id.as_str().into());
    println!(" [x] Requesting fib({n})");
    channel
        .basic_publish(
            "".into(),
            "rpc".into(),
            BasicPublishOptions::default(),
            n.to_string().as_bytes(),
            properties,
        )
        .await?;

    // Replies to earlier, abandoned requests could share the queue in general; skip those.
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(delivery) = replies.next().await {
            let delivery = delivery?;
            if delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|id| id.as_str())
                == Some(correlation_id.as_str())
            {
                return Ok(Some(String::from_utf8_lossy(&delivery.data).into_owned()));
            }
        }
        Ok::<_, lapin::Error>(None)
    })
    .await;
    match answer {
        Ok(Ok(Some(answer))) => println!(" [.] Got {answer}"),
        Ok(Ok(None)) => return Err("the reply consumer was cancelled".into()),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err("no reply within 10 s: is the rpc_server example running?".into()),
    }
    conn.close(200, "bye".into()).await?;
    Ok(())
}
