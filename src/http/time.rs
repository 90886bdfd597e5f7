//! Timestamps as RabbitMQ's API writes them: `2026-12-06T21:15:48.098+00:00`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall-clock time an `Instant` of this process stands for.
pub fn instant_text(at: tokio::time::Instant) -> String {
    let at = at.into_std();
    let ago = Instant::now().saturating_duration_since(at);
    let when = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    text(when)
}

/// A time since the Unix epoch, in UTC.
pub fn text(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(
            text(Duration::from_millis(0)),
            "1970-01-01T00:00:00.000+00:00"
        );
        assert_eq!(
            text(Duration::from_millis(1_796_592_948_098)),
            "2026-12-06T21:35:48.098+00:00"
        );
        assert_eq!(
            text(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000+00:00"
        );
    }
}
