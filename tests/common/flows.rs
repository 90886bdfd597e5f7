//! Helpers for the basic-class tests: consumers, gets, numbered publishes and prefetch.

use super::*;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

pub async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("basic.get")
}

pub async fn publish_numbered(ch: &Channel, queue: &str, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        publish(ch, "", queue, i.to_string().as_bytes()).await;
    }
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

pub async fn qos(ch: &Channel, prefetch: u16, global: bool) {
    ch.basic_qos(prefetch, BasicQosOptions { global })
        .await
        .expect("basic.qos");
}
