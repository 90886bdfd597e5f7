//! An RPC server: takes requests from the queue "rpc", each a number n, and replies with the
//! n-th Fibonacci number to the request's `reply_to` queue, echoing its `correlation_id`.
//! Runs until Ctrl-C. Try it with the `rpc_client` example.
//!
//! ```sh
//! cargo run --example rpc_server
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.saturating_add(b));
    }
    a
}

/// Computes the answer to one request and sends it where the request asked.
async fn answer(
    channel: &Channel,
    delivery: &lapin::message::Delivery,
) -> Result<(), lapin::Error> {
    let request = String::from_utf8_lossy(&delivery.data);
    let response = match request.trim().parse::<u32>() {
        Ok(n) if n <= 93 => {
            println!(" [.] fib({n})");
            fib(n).to_string()
        }
        _ => {
            println!(" [!] not a number from 0 to 93: {request:?}");
            format!("error: expected a number from 0 to 93, got {request:?}")
        }
    };
    let Some(reply_to) = delivery.properties.reply_to() else {
        println!(" [!] request without reply_to, dropped");
        return Ok(());
    };
    let mut properties = BasicProperties::default();
    if let Some(id) = delivery.properties.correlation_id() {
        properties = properties.with_correlation_id(id.clone());
    }
    channel
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            response.as_bytes(),
            properties,
        )
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lapin::Error> {
    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            "rpc".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // One request at a time, so several servers share the load evenly.
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    let mut requests = channel
        .basic_consume(
            "rpc".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!(" [x] Awaiting RPC requests on \"rpc\". To exit press Ctrl-C");

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = requests.next() => match next {
                Some(Ok(delivery)) => {
                    answer(&channel, &delivery).await?;
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Some(Err(e)) => return Err(e),
                None => break,
            },
        }
    }
    conn.close(200, "bye".into()).await
}
