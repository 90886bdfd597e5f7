//! A message's place in a queue (`QueueEntry`), and the clock and checks of message expiry.
//! The message itself, shared by every queue it was routed to, is the store's `Message`: it is
//! what the store keeps, so it lives at the store's layer and is re-exported here.

pub use crate::store::Message;
use crate::store::{EntryKey, EntryRecord};
use std::sync::Arc;

/// A message's place in one queue. `seq` orders the queue, so a requeued message goes back to
/// where it was.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// The priority lane the entry sits in (0 in queues without priorities).
    pub lane: u8,
    /// The id of the message record this entry points to on disk; 0 when it has none.
    pub disk: u64,
    /// When the entry expires, in ms since the Unix epoch (0: never).
    pub expires: u64,
    /// Returns so far (nack, reject or channel close with requeue), counted by quorum queues
    /// and shown to consumers as `x-delivery-count`.
    pub delivery_count: u32,
}

impl QueueEntry {
    pub fn new(seq: u64, message: Arc<Message>) -> Self {
        Self {
            seq,
            message,
            redelivered: false,
            lane: 0,
            disk: 0,
            expires: 0,
            delivery_count: 0,
        }
    }

    /// An entry read back from the store with its message (`record.message` is the stored
    /// copy's id, 0 for a message paged out without one).
    pub fn from_stored(key: EntryKey, record: EntryRecord, message: Message) -> Self {
        Self {
            seq: key.seq,
            message: Arc::new(message.with_store_id(record.message)),
            redelivered: record.redelivered,
            lane: key.lane,
            disk: record.message,
            expires: record.expires,
            delivery_count: record.delivery_count,
        }
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires != 0 && self.expires <= now_ms
    }
}

/// Milliseconds since the Unix epoch: the clock message expiry is kept in, so it survives a
/// restart.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks a message's `expiration` property as RabbitMQ does (a whole, non-negative number of
/// milliseconds); the error is RabbitMQ's description of what is wrong.
pub fn check_expiration(text: &str) -> Result<u64, String> {
    let digits_at = usize::from(text.starts_with(['-', '+']));
    let digits = text[digits_at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return Err("no_integer".into());
    }
    let end = digits_at + digits;
    if end < text.len() {
        return Err(format!("{{leftover_string,\"{}\"}}", &text[end..]));
    }
    let n: i128 = text[..end].parse().map_err(|_| "no_integer".to_string())?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    u64::try_from(n).map_err(|_| format!("{{value_too_big,{n}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expirations_are_checked_like_rabbitmq() {
        assert_eq!(check_expiration("1500"), Ok(1500));
        assert_eq!(check_expiration("0"), Ok(0));
        assert_eq!(check_expiration("abc").unwrap_err(), "no_integer");
        assert_eq!(check_expiration("").unwrap_err(), "no_integer");
        assert_eq!(check_expiration("-1").unwrap_err(), "{value_negative,-1}");
        assert_eq!(
            check_expiration("12abc").unwrap_err(),
            "{leftover_string,\"abc\"}"
        );
    }
}
