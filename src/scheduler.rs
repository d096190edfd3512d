//! When to poll what: one timer loop per association spread over the interval, backoff after
//! failures, first-poll readiness, and the SSM call observer (request metrics, credentials).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::AwsClock;
use crate::metrics::Metrics;
use crate::poller::Poller;
use crate::readiness::Readiness;
use crate::ssm::{Attempt, CallObserver, ErrorKind, Ssm};
use crate::store::{Entry, Store};

/// Turns every SSM request attempt into the exporter's request metrics, credential health and
/// the AWS clock offset.
pub struct ApiHealth {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub clock: Arc<AwsClock>,
}

impl CallObserver for ApiHealth {
    fn attempt(&self, attempt: &Attempt<'_>) {
        let m = &self.metrics;
        m.aws_clock_offset_seconds
            .set(self.clock.offset_ms() as f64 / 1000.0);
        m.rate_limit_wait_seconds_total
            .inc_by(attempt.waited.as_secs_f64());
        m.api_request_duration_seconds
            .with_label_values(&[attempt.operation])
            .observe(attempt.elapsed.as_secs_f64());
        match attempt.result {
            Ok(()) => {
                m.api_requests_total
                    .with_label_values(&[attempt.operation, "ok"])
                    .inc();
                if self.readiness.credentials_failing() {
                    self.readiness.credentials_accepted();
                    m.credentials_valid.set(1);
                }
            }
            Err(error) => {
                m.api_requests_total
                    .with_label_values(&[attempt.operation, &error.code])
                    .inc();
                if error.kind == ErrorKind::Credentials {
                    self.readiness
                        .credentials_rejected(&error.code, &error.message);
                    m.credentials_valid.set(0);
                }
            }
        }
    }
}

/// What every association loop of one configuration shares.
pub struct Shared {
    pub ssm: Ssm,
    pub store: Arc<Store>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
    /// Publish numbers at the end of each poll (no state file) rather than after each save.
    pub publish_each_poll: bool,
}

/// Starts the polling loop of one association; it ends when `stop` fires.
pub fn spawn_poller(
    entry: Arc<Entry>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(association_loop(Poller::new(entry), shared, stop))
}

/// After this many consecutive failed polls the wait stops growing: interval × 2^4.
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

/// Polls one association on its [`Schedule`] until `stop` fires.
async fn association_loop(mut poller: Poller, shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared.poll_interval;
    let phase = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut schedule = Schedule::new(interval, phase, Instant::now());
    let mut last_error: Option<String> = None;
    loop {
        // Boxed: the poll future (SDK calls included) is large, and a sleeping task should
        // not carry its space between polls (it matters at thousands of associations).
        let due = schedule.due();
        let poll = Box::pin(poller.poll(
            &shared.ssm,
            &shared.store,
            &shared.metrics,
            due,
            shared.publish_each_poll,
        ));
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = poll => result,
        };
        match &result {
            Ok(()) => {
                if last_error.take().is_some() {
                    tracing::info!(association_id = poller.id(), "poll recovered");
                }
            }
            Err(error) => {
                if last_error.as_deref() != Some(error.code.as_str()) {
                    tracing::warn!(association_id = poller.id(), code = %error.code, %error, "poll failed");
                } else {
                    tracing::debug!(association_id = poller.id(), code = %error.code, %error, "poll failed again");
                }
                last_error = Some(error.code.clone());
            }
        }
        if !poller.entry().polled() {
            poller.entry().mark_polled();
            shared.readiness.first_poll_done(poller.id());
            shared
                .metrics
                .associations_awaiting_first_poll
                .set(shared.readiness.awaiting_first_poll() as i64);
        }
        let next = schedule.after_poll(result.is_ok(), Instant::now());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
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
