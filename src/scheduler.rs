//! When to poll what: the process-wide rate limit and concurrency cap, one timer loop per
//! association spread over the interval, readiness after the first round, and shutdown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::poller::Poller;
use crate::ssm::Ssm;

/// One budget for every SSM call of the process: at most `max_concurrent` in flight and at
/// most `requests_per_second` started per second (spaced evenly, no bursts). Callers queue in
/// order; when the budget cannot cover every association in one interval, polls start late
/// (see `ssm_association_exporter_poll_delay_seconds`) instead of being throttled by AWS.
pub struct Budget {
    spacing: Duration,
    next_slot: Mutex<Instant>,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
}

impl Budget {
    pub fn new(requests_per_second: f64, max_concurrent: usize, metrics: Arc<Metrics>) -> Budget {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        Budget {
            spacing: Duration::from_secs_f64(1.0 / rate),
            next_slot: Mutex::new(Instant::now()),
            in_flight: Semaphore::new(max_concurrent.max(1)),
            metrics,
        }
    }

    /// Waits for a concurrency slot, then for the next rate slot. Hold the permit for the
    /// duration of the request.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        let started = Instant::now();
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the budget's semaphore is never closed");
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
        self.metrics
            .rate_limit_wait_seconds_total
            .inc_by(started.elapsed().as_secs_f64());
        permit
    }
}

/// Ready once every association has been polled once (successfully or not), until shutdown
/// begins. AWS errors never make the exporter unready: they are reported in its metrics.
pub struct Readiness {
    total: usize,
    remaining: AtomicUsize,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn new(total: usize) -> Readiness {
        Readiness {
            total,
            remaining: AtomicUsize::new(total),
            stopping: AtomicBool::new(false),
        }
    }

    fn first_poll_done(&self) {
        let before = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            tracing::info!(
                associations = self.total,
                "first round of polls done; ready"
            );
        }
    }

    /// Marks the start of shutdown.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err("shutting down".to_string());
        }
        let remaining = self.remaining.load(Ordering::SeqCst);
        if remaining > 0 {
            return Err(format!(
                "starting: first poll done for {} of {} associations",
                self.total - remaining,
                self.total
            ));
        }
        Ok(())
    }
}

/// What every association loop shares.
pub struct Shared {
    pub ssm: Ssm,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub poll_interval: Duration,
    pub initial_lookback: Duration,
    pub late_visibility_window: Duration,
}

/// Starts one polling loop per association into `tasks`; each ends when `shutdown` fires.
pub fn spawn_pollers(
    ids: &[String],
    shared: Arc<Shared>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let floor_ms = crate::now_ms() - shared.initial_lookback.as_millis() as i64;
    for id in ids {
        shared.metrics.init_association(id);
        let poller = Poller::new(
            id.clone(),
            floor_ms,
            shared.late_visibility_window.as_millis() as i64,
        );
        tasks.spawn(association_loop(poller, shared.clone(), shutdown.clone()));
    }
}

/// Polls one association: once at start, then every interval at a random phase so that
/// associations are spread over the interval rather than fired at once.
async fn association_loop(mut poller: Poller, shared: Arc<Shared>, shutdown: CancellationToken) {
    let interval = shared.poll_interval;
    let phase = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut due = Instant::now();
    let mut first = true;
    let mut last_error: Option<String> = None;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = poller.poll(&shared.ssm, &shared.metrics, due) => result,
        };
        match result {
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
                last_error = Some(error.code);
            }
        }
        if first {
            first = false;
            shared.readiness.first_poll_done();
            due = Instant::now() + phase;
        } else {
            // A poll that ran past its next slot starts again at once (it is late, and the
            // delay is published); it never queues several polls.
            due = (due + interval).max(Instant::now());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
    }
}
