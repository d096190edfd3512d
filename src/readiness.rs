//! Whether the exporter is ready: the current associations' first polls, credentials, shutdown.
//!
//! Ready once every association of the current configuration has been polled once
//! (successfully or not), or once [`FIRST_ROUND_GRACE`] has passed since start, whichever comes
//! first, until shutdown begins. The set follows reloads: an association removed before its
//! first poll is no longer waited for, one added is. Throttling, server errors and deleted
//! associations never make the exporter unready (they are in its metrics, and an exporter that
//! cannot reach AWS must stay scrapable). Rejected credentials do, while they last: that is a
//! deployment fault (an expired role, a missing IRSA annotation) that a rollout should stop on.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;

/// A healthy exporter of any size is ready this long after start at the latest: at 10,000
/// associations and a low request rate the first round takes far longer than any rollout
/// deadline. First-round progress is published as a metric instead.
pub const FIRST_ROUND_GRACE: Duration = Duration::from_secs(60);

pub struct Readiness {
    started: Instant,
    awaiting: Mutex<HashSet<String>>,
    first_round_logged: AtomicBool,
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

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness {
            started: Instant::now(),
            awaiting: Mutex::new(HashSet::new()),
            first_round_logged: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            credentials: Mutex::new(Credentials::default()),
            credentials_failing: AtomicBool::new(false),
        }
    }

    /// Makes `ids` the current set: those not polled yet are waited for, others not.
    /// `polled` says whether an association has had its first poll.
    pub fn follow(&self, ids: &[String], polled: impl Fn(&str) -> bool) {
        let mut awaiting = lock(&self.awaiting);
        awaiting.clear();
        awaiting.extend(ids.iter().filter(|id| !polled(id)).cloned());
    }

    /// Records the end of an association's first poll (successful or not).
    pub fn first_poll_done(&self, id: &str) {
        let mut awaiting = lock(&self.awaiting);
        if awaiting.remove(id)
            && awaiting.is_empty()
            && !self.first_round_logged.swap(true, Ordering::SeqCst)
        {
            tracing::info!("first round of polls done; ready");
        }
    }

    /// Associations of the current set whose first poll has not ended yet.
    pub fn awaiting_first_poll(&self) -> usize {
        lock(&self.awaiting).len()
    }

    /// Marks the start of shutdown.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Records that SSM rejected the credentials; logs each distinct error once.
    pub fn credentials_rejected(&self, code: &str, message: &str) {
        self.credentials_failing.store(true, Ordering::SeqCst);
        let mut credentials = lock(&self.credentials);
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
        let mut credentials = lock(&self.credentials);
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
        if self.credentials_failing() {
            let code = lock(&self.credentials).failing.clone();
            return Err(format!(
                "SSM rejects the AWS credentials ({})",
                code.unwrap_or_default()
            ));
        }
        let awaiting = self.awaiting_first_poll();
        if awaiting > 0 && self.started.elapsed() < FIRST_ROUND_GRACE {
            return Err(format!(
                "starting: {awaiting} associations await their first poll"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("a{i}")).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ready_after_every_first_poll() {
        let r = Readiness::new();
        r.follow(&ids(2), |_| false);
        assert!(r.check().is_err());
        r.first_poll_done("a0");
        assert!(r.check().is_err());
        r.first_poll_done("a1");
        assert_eq!(r.check(), Ok(()));
    }

    /// A reload that removes an association before its first poll must not leave the
    /// exporter waiting for it forever; one that adds associations waits for them.
    #[tokio::test(start_paused = true)]
    async fn readiness_follows_the_current_set() {
        let r = Readiness::new();
        r.follow(&ids(3), |_| false);
        r.first_poll_done("a0");
        r.follow(&["a0".to_string(), "a1".to_string()], |id| id == "a0");
        r.first_poll_done("a1");
        assert_eq!(r.check(), Ok(()), "a2 was removed: not waited for");
        r.follow(&["a0".into(), "a1".into(), "new".into()], |id| id != "new");
        assert!(r.check().is_err());
        r.first_poll_done("new");
        assert_eq!(r.check(), Ok(()));
    }

    /// A huge first round does not hold readiness past the grace period.
    #[tokio::test(start_paused = true)]
    async fn ready_after_the_grace_period_whatever_the_first_round() {
        let r = Readiness::new();
        r.follow(&ids(10_000), |_| false);
        tokio::time::sleep(FIRST_ROUND_GRACE - Duration::from_millis(1)).await;
        assert!(r.check().is_err());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(r.check(), Ok(()));
        assert_eq!(r.awaiting_first_poll(), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_credentials_and_shutdown_make_it_unready() {
        let r = Readiness::new();
        r.follow(&[], |_| false);
        assert_eq!(r.check(), Ok(()));
        r.credentials_rejected("ExpiredToken", "expired");
        assert!(r.check().unwrap_err().contains("ExpiredToken"));
        r.credentials_accepted();
        assert_eq!(r.check(), Ok(()));
        r.stop();
        assert_eq!(r.check(), Err("shutting down".to_string()));
    }
}
