//! Sends ten messages to the queue "hello" and waits until the broker has confirmed them all.
//!
//! ```sh
//! cargo run --example publisher
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

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
    // With confirms on, the broker acknowledges every message it has taken responsibility for.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    for i in 1..=10 {
        let body = format!("Hello World #{i}");
        let properties = BasicProperties::default().with_content_type("text/plain".into());
        channel
            .basic_publish(
                "".into(),
                "hello".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await?;
        println!(" [x] Sent {body:?}");
    }
    channel.wait_for_confirms().await?;
    println!(" [x] All 10 messages confirmed by the broker");
    conn.close(200, "bye".into()).await
}
