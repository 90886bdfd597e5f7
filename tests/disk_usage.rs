//! Under a steady persistent publish/consume load, the data directory stays bounded: acked
//! messages' records are removed and the store reclaims their space.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::path::Path;

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::test]
async fn the_data_directory_does_not_grow_with_messages_that_were_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_in(dir.path()).await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("steady".into(), durable, FieldTable::default())
        .await
        .unwrap();
    let body = vec![7u8; 1024];
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut sizes = Vec::new();
    for _round in 0..12 {
        let mut confirms = Vec::new();
        for _ in 0..2000 {
            let c = ch
                .basic_publish(
                    "".into(),
                    "steady".into(),
                    BasicPublishOptions::default(),
                    &body,
                    props.clone(),
                )
                .await
                .unwrap();
            confirms.push(c);
        }
        for c in confirms {
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
        for _ in 0..2000 {
            let m = ch
                .basic_get("steady".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            assert!(m.is_some());
        }
        // An empty confirmed publish flushes the removals before measuring.
        let c = ch
            .basic_publish(
                "".into(),
                "steady".into(),
                BasicPublishOptions::default(),
                b"",
                props.clone(),
            )
            .await
            .unwrap();
        within("confirm", c).await.unwrap();
        ch.basic_get("steady".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        sizes.push(dir_size(dir.path()));
    }
    eprintln!("data directory sizes per round: {sizes:?}");
    // 24,000 KiB of bodies went through; what stays must not grow with them.
    let early = sizes[3];
    let last = *sizes.last().unwrap();
    assert!(
        last <= early * 2 + 4 * 1024 * 1024,
        "data directory grew from {early} to {last} bytes over the rounds: {sizes:?}"
    );
}
