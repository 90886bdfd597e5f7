//! Consumes the queue "hello", printing and acknowledging each message, until Ctrl-C.
//!
//! ```sh
//! cargo run --example consumer
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

#[tokio::main]
async fn main() -> Result<(), lapin::Error> {
    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            "hello".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // At most 10 unacknowledged messages in flight to this consumer.
    channel.basic_qos(10, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            "hello".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!(" [*] Waiting for messages on \"hello\". To exit press Ctrl-C");

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    println!(" [x] Received {:?}", String::from_utf8_lossy(&delivery.data));
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    println!(" [!] The broker cancelled the consumer");
                    break;
                }
            },
        }
    }
    println!(" [*] Closing");
    conn.close(200, "bye".into()).await
}
