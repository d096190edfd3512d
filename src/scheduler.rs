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
use crate::state::{Entry, Store};

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
/// begins. Throttling, server errors and deleted associations never make the exporter unready:
/// they are reported in its metrics, and an exporter that cannot reach AWS must stay scrapable.
/// Rejected credentials do, while they last: that is a deployment fault (an expired role, a
/// missing IRSA annotation) that a rollout should stop on.
pub struct Readiness {
    total: usize,
    remaining: AtomicUsize,
    stopping: AtomicBool,
    credentials: Mutex<Credentials>,
    credentials_failing: AtomicBool,
}

#[derive(Default)]
struct Credentials {
    /// The current rejection, and the distinct error codes already logged since the last
    /// success (each is logged once).
    failing: Option<String>,
    logged: Vec<String>,
}

/// Error codes that mean SSM rejected the credentials themselves, whatever the operation.
const CREDENTIAL_CODES: &[&str] = &[
    "CredentialsError",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "IncompleteSignature",
];

/// Whether `code` from `operation` means the credentials do not work. Access denied counts for
/// the operation the exporter cannot do without; for DescribeAssociation it only loses the info
/// metric.
pub fn is_credentials_error(operation: &str, code: &str) -> bool {
    CREDENTIAL_CODES.contains(&code)
        || (operation == "DescribeAssociationExecutions" && code == "AccessDeniedException")
}

impl Readiness {
    pub fn new(total: usize) -> Readiness {
        Readiness {
            total,
            remaining: AtomicUsize::new(total),
            stopping: AtomicBool::new(false),
            credentials: Mutex::new(Credentials::default()),
            credentials_failing: AtomicBool::new(false),
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

    /// Records that SSM rejected the credentials; logs each distinct error once.
    pub fn credentials_rejected(&self, code: &str, message: &str) {
        self.credentials_failing.store(true, Ordering::SeqCst);
        let mut credentials = crate::state::lock(&self.credentials);
        credentials.failing = Some(code.to_string());
        if !credentials.logged.iter().any(|c| c == code) {
            credentials.logged.push(code.to_string());
            tracing::error!(
                code,
                error = message,
                "SSM rejects the AWS credentials; not ready until they work"
            );
        }
    }

    /// Records a successful SSM call: credentials work (again).
    pub fn credentials_accepted(&self) {
        if !self.credentials_failing.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut credentials = crate::state::lock(&self.credentials);
        credentials.failing = None;
        credentials.logged.clear();
        tracing::info!("AWS credentials work again");
    }

    pub fn credentials_failing(&self) -> bool {
        self.credentials_failing.load(Ordering::SeqCst)
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
        if self.credentials_failing() {
            let code = crate::state::lock(&self.credentials).failing.clone();
            return Err(format!(
                "SSM rejects the AWS credentials ({})",
                code.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// What every association loop of one configuration shares.
pub struct Shared {
    pub ssm: Ssm,
    pub store: Arc<Store>,
    pub readiness: Arc<Readiness>,
    pub poll_interval: Duration,
    /// Publish numbers at the end of each poll (no state file) rather than after each save.
    pub publish_each_poll: bool,
}

/// Starts the polling loop of one association into `tasks`; it ends when `stop` fires.
pub fn spawn_poller(
    entry: Arc<Entry>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    tasks.spawn(association_loop(Poller::new(entry), shared, stop));
}

/// After this many consecutive failed polls the wait stops growing: interval × 2^4.
const MAX_BACKOFF_EXPONENT: u32 = 4;

/// Polls one association: once at start, then every interval at a random phase so that
/// associations are spread over the interval rather than fired at once. After failed polls the
/// wait doubles (up to 16 intervals), so a deleted association or a missing permission does not
/// spend the request budget of the others.
async fn association_loop(mut poller: Poller, shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared.poll_interval;
    let phase = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut due = Instant::now();
    let mut first = true;
    let mut failures: u32 = 0;
    let mut last_error: Option<String> = None;
    loop {
        // Boxed: the poll future (SDK calls included) is large, and a sleeping task should
        // not carry its space between polls (it matters at thousands of associations).
        let poll = Box::pin(poller.poll(&shared.ssm, &shared.store, due, shared.publish_each_poll));
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = poll => result,
        };
        match result {
            Ok(()) => {
                failures = 0;
                if last_error.take().is_some() {
                    tracing::info!(association_id = poller.id(), "poll recovered");
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
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
        if failures > 0 {
            let factor = 1u32 << (failures - 1).min(MAX_BACKOFF_EXPONENT);
            due += interval * (factor - 1);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
    }
}
