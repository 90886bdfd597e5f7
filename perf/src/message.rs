//! Message bodies: the publish time first, so any consumer (even in another process on the same
//! host) can compute the end-to-end latency, then the producer's sequence number, then padding.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes the timestamp takes at the start of every body.
pub const TIMESTAMP_LEN: usize = 8;

/// Nanoseconds since the Unix epoch: wall-clock time, so producer and consumer need not share a
/// process.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes message `seq`'s header into a body of the run's size (at least `TIMESTAMP_LEN`).
pub fn stamp(body: &mut [u8], seq: u64) {
    body[..TIMESTAMP_LEN].copy_from_slice(&now_nanos().to_be_bytes());
    if body.len() >= 2 * TIMESTAMP_LEN {
        body[TIMESTAMP_LEN..2 * TIMESTAMP_LEN].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Microseconds between the body's publish time and now, if the body carries one.
pub fn latency_micros(body: &[u8]) -> Option<u64> {
    let sent = u64::from_be_bytes(body.get(..TIMESTAMP_LEN)?.try_into().ok()?);
    Some(now_nanos().saturating_sub(sent) / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_body_reports_a_small_latency() {
        let mut body = vec![0u8; 16];
        stamp(&mut body, 7);
        assert_eq!(u64::from_be_bytes(body[8..16].try_into().unwrap()), 7);
        assert!(latency_micros(&body).unwrap() < 1_000_000);
        assert_eq!(latency_micros(&body[..4]), None);
    }
}
