//! The simulator's clock: host time plus a settable offset, the HTTP `Date` it sends and the
//! SigV4 request-time check AWS applies (at most 5 minutes apart).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// How far a request's `X-Amz-Date` may be from the simulator's clock (as in AWS).
pub(crate) const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// Host time in epoch milliseconds.
fn host_now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Host time plus an offset.
#[derive(Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn now_ms(&self) -> i64 {
        host_now_ms().saturating_add(self.offset_ms())
    }

    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 7231 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(ms: i64) -> String {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    datetime(ms).format(format).unwrap_or_default()
}

/// SigV4's basic format: `20261127T100000Z`.
pub(crate) fn amz_date(ms: i64) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    datetime(ms).format(format).unwrap_or_default()
}

/// Parses an `X-Amz-Date` value into epoch milliseconds.
pub(crate) fn parse_amz_date(text: &str) -> Option<i64> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = PrimitiveDateTime::parse(text, format).ok()?.assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The message AWS gives when a request's signing time is more than 5 minutes from `now_ms`,
/// or `None` when it is close enough.
pub(crate) fn skew_error(request_ms: i64, now_ms: i64) -> Option<String> {
    let (request, now) = (amz_date(request_ms), amz_date(now_ms));
    if request_ms < now_ms - MAX_SKEW_MS {
        let limit = amz_date(now_ms - MAX_SKEW_MS);
        Some(format!(
            "Signature expired: {request} is now earlier than {limit} ({now} - 5 min.)"
        ))
    } else if request_ms > now_ms + MAX_SKEW_MS {
        let limit = amz_date(now_ms + MAX_SKEW_MS);
        Some(format!(
            "Signature not yet current: {request} is still later than {limit} ({now} + 5 min.)"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T10:10:00Z
    const NOW: i64 = 1_795_774_200_000;

    #[test]
    fn formats_dates() {
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(amz_date(NOW), "20261127T101000Z");
        assert_eq!(parse_amz_date("20261127T101000Z"), Some(NOW));
        assert_eq!(parse_amz_date("2026-11-27T10:10:00Z"), None);
    }

    #[test]
    fn skew_messages_match_aws() {
        assert_eq!(
            skew_error(NOW - 10 * 60_000, NOW).unwrap(),
            "Signature expired: 20261127T100000Z is now earlier than 20261127T100500Z \
             (20261127T101000Z - 5 min.)"
        );
        assert_eq!(
            skew_error(NOW + 10 * 60_000, NOW).unwrap(),
            "Signature not yet current: 20261127T102000Z is still later than \
             20261127T101500Z (20261127T101000Z + 5 min.)"
        );
        assert_eq!(skew_error(NOW - MAX_SKEW_MS, NOW), None);
        assert_eq!(skew_error(NOW + MAX_SKEW_MS, NOW), None);
    }

    #[test]
    fn the_clock_follows_its_offset() {
        let clock = Clock::default();
        clock.set_offset_ms(-3_600_000);
        let diff = host_now_ms() - clock.now_ms();
        assert!((3_599_000..=3_601_000).contains(&diff), "{diff}");
    }
}
