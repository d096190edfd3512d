//! Time: the host's wall clock, and AWS's clock as the `Date` headers of SSM responses show it.
//!
//! Every "now" compared with AWS data (the first poll's look-back start, the future-date
//! tolerance, the pending horizon) comes from [`AwsClock`], so a host clock that is minutes off
//! neither moves the query window nor makes real executions look bogus.

use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock time of the host, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Offsets this small are the `Date` header's one-second resolution, not skew: ignored.
const NOISE_MS: i64 = 1_500;

/// AWS's clock: the host's, corrected by the offset the last response's `Date` header showed.
#[derive(Debug, Default)]
pub struct AwsClock {
    offset_ms: AtomicI64,
}

impl AwsClock {
    /// Takes a response's `Date` (whole seconds, so AWS's time was in `[date, date + 1 s)`),
    /// read when the host clock said `host_ms`.
    pub fn observe(&self, date_ms: i64, host_ms: i64) {
        let offset = date_ms + 500 - host_ms;
        let offset = if offset.abs() <= NOISE_MS { 0 } else { offset };
        self.offset_ms.store(offset, Ordering::Relaxed);
    }

    /// AWS's clock minus the host's, milliseconds (0 until a response says otherwise).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Now, by AWS's clock, epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_clock_follows_the_date_header_beyond_its_resolution() {
        let clock = AwsClock::default();
        assert_eq!(clock.offset_ms(), 0);
        // Host 10 minutes behind AWS.
        clock.observe(1_800_000_600_000, 1_800_000_000_200);
        assert_eq!(clock.offset_ms(), 600_300);
        let now = clock.now_ms();
        assert!((now - (now_ms() + 600_300)).abs() < 1_000);
        // Within the header's resolution: no skew.
        clock.observe(1_800_000_000_000, 1_800_000_000_900);
        assert_eq!(clock.offset_ms(), 0);
    }
}
