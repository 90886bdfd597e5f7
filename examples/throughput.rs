//! Publish→consume throughput on one queue: one publisher connection, one consumer connection,
//! N messages (default 1,000,000) of 16 bytes. The consumer uses prefetch 1000 and acknowledges
//! every 100th message with `multiple`, or runs with automatic acks given `--no-ack`.
//!
//! ```sh
//! cargo run --release --example throughput -- 1000000 [--no-ack]
//! ```
//! Reads `AMQP_ADDR` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

const QUEUE: &str = "throughput";
const PREFETCH: u16 = 1000;
const ACK_EVERY: u64 = 100;
/// Publishes in flight at once.
const PUBLISH_BATCH: u64 = 1000;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let no_ack = std::env::args().skip(1).any(|a| a == "--no-ack");
    let n: u64 = match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(arg) => arg.replace(['_', ','], "").parse()?,
        None => 1_000_000,
    };

    let publisher = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let pub_channel = publisher.create_channel().await?;
    pub_channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    pub_channel
        .queue_purge(QUEUE.into(), QueuePurgeOptions::default())
        .await?;

    let consumer_conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let sub_channel = consumer_conn.create_channel().await?;
    if !no_ack {
        sub_channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
    }
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let mut consumer = sub_channel
        .basic_consume(QUEUE.into(), "".into(), options, FieldTable::default())
        .await?;
    let mode = if no_ack {
        "no-ack".to_string()
    } else {
        format!("prefetch {PREFETCH}, multi-ack every {ACK_EVERY}")
    };
    println!("{n} messages of 16 bytes through queue {QUEUE:?} ({mode})");

    let start = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut received = 0u64;
        while received < n {
            // A stall this long means messages were lost, not that the broker is slow.
            let next = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await;
            let delivery = match next {
                Ok(Some(delivery)) => delivery?,
                Ok(None) => return Err(Error::from("consumer cancelled")),
                Err(_) => {
                    return Err(format!("no delivery for 30 s after {received} messages").into())
                }
            };
            // One publisher, one consumer, one queue: messages arrive in publishing order.
            let index = u64::from_be_bytes(delivery.data[..8].try_into()?);
            if index != received {
                return Err(format!("expected message {received}, got {index}").into());
            }
            received += 1;
            if !no_ack && (received.is_multiple_of(ACK_EVERY) || received == n) {
                let multiple = BasicAckOptions { multiple: true };
                sub_channel
                    .basic_ack(delivery.delivery_tag, multiple)
                    .await?;
            }
        }
        Ok::<_, Error>((start.elapsed(), consumer_conn, sub_channel))
    });

    // Awaiting each publish alone would measure the client's write round trip, not the broker:
    // publish in batches whose frames are queued in order, then wait for the batch.
    let mut next = 0u64;
    while next < n {
        let batch = (next..n.min(next + PUBLISH_BATCH)).map(|i| {
            let body = message(i);
            let channel = &pub_channel;
            async move {
                let options = BasicPublishOptions::default();
                let properties = BasicProperties::default();
                channel
                    .basic_publish("".into(), QUEUE.into(), options, &body, properties)
                    .await
            }
        });
        join_in_order(batch.collect()).await?;
        next = n.min(next + PUBLISH_BATCH);
    }
    let published_in = start.elapsed();
    println!(
        "published {n} msgs in {:.2} s: {:.0} msgs/s",
        published_in.as_secs_f64(),
        rate(n, published_in)
    );

    let (consumed_in, consumer_conn, _sub_channel) = consuming.await??;
    println!(
        "consumed  {n} msgs in {:.2} s: {:.0} msgs/s",
        consumed_in.as_secs_f64(),
        rate(n, consumed_in)
    );

    pub_channel
        .queue_delete(QUEUE.into(), QueueDeleteOptions::default())
        .await?;
    consumer_conn.close(200, "done".into()).await?;
    publisher.close(200, "done".into()).await?;
    Ok(())
}

/// Message `i`: its index, so the consumer can check the order, padded to 16 bytes.
fn message(i: u64) -> [u8; 16] {
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&i.to_be_bytes());
    body[8..].copy_from_slice(b"warren!!");
    body
}

/// Runs futures to completion together, polling them in order: lapin queues a publish's
/// frames when it is first polled, so the messages go out in this order.
async fn join_in_order<T, E>(futures: Vec<impl Future<Output = Result<T, E>>>) -> Result<(), E> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in pending.iter_mut() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(Ok(_)) => *slot = None,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}
