//! When a scope lists again and a failing association is tried again: every interval at a
//! random phase, the wait doubling after consecutive failures, up to 16 intervals.

use std::time::Duration;

use tokio::time::Instant;

/// After this many consecutive failures the wait stops growing: interval × 2^4.
const MAX_BACKOFF_EXPONENT: u32 = 4;

/// When one association's polls are due: once at start, then every interval at a random phase
/// so that associations are spread over the interval rather than fired at once. After failed
/// polls the wait doubles (up to 16 intervals), so a deleted association or a missing
/// permission does not spend the request budget of the others.
#[derive(Clone, Debug)]
pub struct Schedule {
    interval: Duration,
    phase: Duration,
    due: Instant,
    first: bool,
    failures: u32,
}

impl Schedule {
    /// The first poll is due now; `phase` (less than `interval`) places the later ones.
    pub fn new(interval: Duration, phase: Duration, now: Instant) -> Schedule {
        Schedule {
            interval,
            phase,
            due: now,
            first: true,
            failures: 0,
        }
    }

    /// When the current poll was due (for the delay metric).
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Records the end of the current poll at `now`; returns when the next one is due.
    pub fn after_poll(&mut self, success: bool, now: Instant) -> Instant {
        self.failures = if success {
            0
        } else {
            self.failures.saturating_add(1)
        };
        if std::mem::take(&mut self.first) {
            self.due = now + self.phase;
        } else {
            // A poll that ran past its next slot starts again at once (it is late, and the
            // delay is published); it never queues several polls.
            self.due = (self.due + self.interval).max(now);
        }
        if self.failures > 0 {
            let factor = 1u32 << (self.failures - 1).min(MAX_BACKOFF_EXPONENT);
            self.due += self.interval * (factor - 1);
        }
        self.due
    }
}

/// How long after its `failures`-th consecutive failed poll an association is polled again, in
/// listings after the next one: 0, 1, 3, 7, then 15 at most (a deleted association or a missing
/// permission does not spend the budget of the others).
pub(super) fn retry_wait(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(MAX_BACKOFF_EXPONENT);
    interval * (factor - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Runs a schedule on tokio's paused clock: each poll takes `took`, succeeds per `ok`;
    /// returns when each poll started, relative to the start.
    async fn starts(
        interval: Duration,
        phase: Duration,
        took: Duration,
        ok: &[bool],
    ) -> Vec<Duration> {
        let start = Instant::now();
        let mut schedule = Schedule::new(interval, phase, start);
        let mut starts = Vec::new();
        for success in ok {
            tokio::time::sleep_until(schedule.due()).await;
            starts.push(start.elapsed());
            tokio::time::sleep(took).await;
            schedule.after_poll(*success, Instant::now());
        }
        starts
    }

    #[tokio::test(start_paused = true)]
    async fn first_poll_at_once_then_at_the_phase_then_every_interval() {
        let s = starts(10 * SECOND, 3 * SECOND, Duration::ZERO, &[true; 4]).await;
        assert_eq!(s, [0, 3, 13, 23].map(|n| n * SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_longer_than_the_interval_is_followed_at_once_never_queued() {
        let s = starts(10 * SECOND, Duration::ZERO, 25 * SECOND, &[true; 4]).await;
        // Each starts when the previous one ends; none is skipped or doubled up.
        assert_eq!(s, [0, 25, 50, 75].map(|n| n * SECOND));
    }

    /// A deleted association (every poll fails) backs off 1, 2, 4, 8, then 16 intervals at
    /// most; one success brings it back to every interval.
    #[tokio::test(start_paused = true)]
    async fn failed_polls_back_off_up_to_sixteen_intervals_and_recover() {
        let mut ok = vec![false; 8];
        ok.extend([true, true, true]);
        let s = starts(SECOND, Duration::ZERO, Duration::ZERO, &ok).await;
        let gaps: Vec<u64> = s.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        // First poll fails: next is at the phase (0) plus nothing more for the first failure.
        assert_eq!(gaps, [0, 2, 4, 8, 16, 16, 16, 16, 1, 1]);
    }
}
