//! Whether the exporter is ready: every scope's first listing, the selected associations' first
//! polls, credentials, shutdown.
//!
//! Ready once every configured account and region (scope) has ended its first listing (or
//! failed it) and every association it selected has been polled once (successfully or not, or
//! found to need no poll), or once [`FIRST_ROUND_GRACE`] has passed since start, whichever
//! comes first, until shutdown begins. The set follows reloads. Throttling, server errors, a
//! failing account or region and deleted associations never make the exporter unready (they are
//! in its metrics, and an exporter that cannot reach one account must keep serving the others).
//! Rejected credentials in *every* scope do, while they last: that is a deployment fault (an
//! expired role, a missing IRSA annotation) that a rollout should stop on. Access denied to one
//! association's calls is not a rejection of the scope's credentials (the call observer,
//! [`crate::scope_health`], decides), so a role scoped to some associations never makes it flap.

use std::collections::{BTreeMap, HashSet};
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
    /// Scopes whose first listing has not ended.
    scopes: Mutex<HashSet<String>>,
    /// Every scope seen so far: a reload waits only for the first listing of new ones.
    known_scopes: Mutex<HashSet<String>>,
    /// Associations whose first poll has not ended.
    awaiting: Mutex<HashSet<String>>,
    first_round_logged: AtomicBool,
    stopping: AtomicBool,
    /// Per scope: the code its credentials were last rejected with (`None`: working), and
    /// which codes were logged.
    credentials: Mutex<BTreeMap<String, Credentials>>,
}

#[derive(Default)]
struct Credentials {
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
            scopes: Mutex::new(HashSet::new()),
            known_scopes: Mutex::new(HashSet::new()),
            awaiting: Mutex::new(HashSet::new()),
            first_round_logged: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            credentials: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts following a (new) configuration of `scopes`: each new one must end a first
    /// listing, and the associations `ids` (named by ID and never polled) their first poll;
    /// what the previous configuration waited for is no longer waited for.
    pub fn expect_scopes(&self, scopes: &[String], ids: impl IntoIterator<Item = String>) {
        let mut known = lock(&self.known_scopes);
        *lock(&self.scopes) = scopes
            .iter()
            .filter(|s| !known.contains(*s))
            .cloned()
            .collect();
        known.extend(scopes.iter().cloned());
        drop(known);
        *lock(&self.awaiting) = ids.into_iter().collect();
        let mut credentials = lock(&self.credentials);
        credentials.retain(|scope, _| scopes.contains(scope));
        for scope in scopes {
            credentials.entry(scope.clone()).or_default();
        }
    }

    /// `scope`'s first listing ended: wait for the first polls of `ids` (those that need one).
    pub fn scope_listed(&self, scope: &str, ids: impl IntoIterator<Item = String>) {
        if lock(&self.scopes).remove(scope) {
            lock(&self.awaiting).extend(ids);
            self.log_if_done();
        }
    }

    /// `scope`'s first listing failed: it is not waited for (its metrics tell).
    pub fn scope_failed(&self, scope: &str) {
        if lock(&self.scopes).remove(scope) {
            self.log_if_done();
        }
    }

    pub fn first_poll_done(&self, id: &str) {
        if lock(&self.awaiting).remove(id) {
            self.log_if_done();
        }
    }

    fn log_if_done(&self) {
        if lock(&self.scopes).is_empty()
            && lock(&self.awaiting).is_empty()
            && !self.first_round_logged.swap(true, Ordering::SeqCst)
        {
            tracing::info!("first round of listings and polls done; ready");
        }
    }

    /// Associations whose first poll has not ended.
    pub fn awaiting_first_poll(&self) -> usize {
        lock(&self.awaiting).len()
    }

    /// Shutdown has begun: not ready from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The credentials of `scope` were rejected with `code`. Logged once per scope and code
    /// while failing.
    pub fn credentials_rejected(&self, scope: &str, code: &str, message: &str) {
        let mut all = lock(&self.credentials);
        let credentials = all.entry(scope.to_string()).or_default();
        credentials.failing = Some(code.to_string());
        if !credentials.logged.iter().any(|c| c == code) {
            credentials.logged.push(code.to_string());
            tracing::error!(
                scope,
                code,
                error = message,
                "AWS rejects the credentials of this account and region; its associations are not polled until they work"
            );
        }
    }

    /// A call of `scope` succeeded: its credentials work.
    pub fn credentials_accepted(&self, scope: &str) {
        let mut all = lock(&self.credentials);
        let Some(credentials) = all.get_mut(scope) else {
            return;
        };
        if credentials.failing.take().is_some() {
            credentials.logged.clear();
            tracing::info!(scope, "AWS credentials work again");
        }
    }

    /// Whether `scope`'s credentials are currently rejected.
    pub fn credentials_failing(&self, scope: &str) -> bool {
        lock(&self.credentials)
            .get(scope)
            .is_some_and(|c| c.failing.is_some())
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err("shutting down".to_string());
        }
        {
            let credentials = lock(&self.credentials);
            if !credentials.is_empty() && credentials.values().all(|c| c.failing.is_some()) {
                let codes: Vec<String> = credentials
                    .iter()
                    .map(|(scope, c)| format!("{scope}: {}", c.failing.as_deref().unwrap_or("")))
                    .collect();
                return Err(format!(
                    "AWS rejects the credentials of every account and region ({})",
                    codes.join(", ")
                ));
            }
        }
        if self.started.elapsed() < FIRST_ROUND_GRACE {
            let scopes = lock(&self.scopes).len();
            if scopes > 0 {
                return Err(format!(
                    "starting: {scopes} accounts/regions await their first listing"
                ));
            }
            let awaiting = self.awaiting_first_poll();
            if awaiting > 0 {
                return Err(format!(
                    "starting: {awaiting} associations await their first poll"
                ));
            }
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
    async fn ready_after_every_listing_and_first_poll() {
        let r = Readiness::new();
        r.expect_scopes(&["s1".into(), "s2".into()], Vec::new());
        assert!(r.check().is_err());
        r.scope_listed("s1", ids(2));
        assert!(r.check().is_err());
        r.scope_failed("s2");
        assert!(r.check().is_err(), "a0 and a1 still await");
        r.first_poll_done("a0");
        r.first_poll_done("a1");
        assert_eq!(r.check(), Ok(()));
    }

    /// A reload does not keep waiting for what the old configuration selected, nor for the
    /// listing of a scope already listed; it waits for associations it adds and new scopes.
    #[tokio::test(start_paused = true)]
    async fn readiness_follows_the_current_configuration() {
        let r = Readiness::new();
        r.expect_scopes(&["s1".into()], Vec::new());
        r.scope_listed("s1", ids(3));
        r.expect_scopes(&["s1".into()], Vec::new());
        assert_eq!(r.check(), Ok(()), "the old set is not waited for");
        r.expect_scopes(&["s1".into(), "s2".into()], ["added".to_string()]);
        assert!(r.check().is_err());
        r.scope_listed("s2", Vec::new());
        assert!(r.check().is_err(), "the added association awaits its poll");
        r.first_poll_done("added");
        assert_eq!(r.check(), Ok(()));
    }

    /// A huge first round does not hold readiness past the grace period.
    #[tokio::test(start_paused = true)]
    async fn ready_after_the_grace_period_whatever_the_first_round() {
        let r = Readiness::new();
        r.expect_scopes(&["s1".into()], Vec::new());
        r.scope_listed("s1", ids(10_000));
        tokio::time::sleep(FIRST_ROUND_GRACE - Duration::from_millis(1)).await;
        assert!(r.check().is_err());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(r.check(), Ok(()));
        assert_eq!(r.awaiting_first_poll(), 10_000);
    }

    /// One account's rejected credentials leave the exporter ready for the others; every
    /// account's make it unready.
    #[tokio::test(start_paused = true)]
    async fn rejected_credentials_everywhere_and_shutdown_make_it_unready() {
        let r = Readiness::new();
        r.expect_scopes(&["s1".into(), "s2".into()], Vec::new());
        r.scope_listed("s1", Vec::new());
        r.scope_listed("s2", Vec::new());
        assert_eq!(r.check(), Ok(()));
        r.credentials_rejected("s1", "ExpiredToken", "expired");
        assert_eq!(r.check(), Ok(()), "s2 still works");
        r.credentials_rejected("s2", "AccessDenied", "denied");
        let error = r.check().unwrap_err();
        assert!(
            error.contains("ExpiredToken") && error.contains("AccessDenied"),
            "{error}"
        );
        r.credentials_accepted("s1");
        assert_eq!(r.check(), Ok(()));
        r.stop();
        assert_eq!(r.check(), Err("shutting down".to_string()));
    }
}
