//! [`Simulator`]: starting and stopping the server, and the settings and records of the
//! default account and region.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::faults::{ActiveRule, FaultRule, TokenBucket};
use crate::identity::{Scope, DEFAULT_ACCOUNT, DEFAULT_REGION};
use crate::model::{GroundTruth, SimAssociation, SimExecution};
use crate::state::{RecordedRequest, Shared, State};
use crate::wire;

/// A simulated SSM endpoint. Cheap to clone; all clones share one server.
///
/// The server stops on [`Simulator::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Simulator {
    handle: Arc<Handle>,
}

/// Owned by the `Simulator` clones only (server tasks hold `Shared`), so dropping the last
/// clone stops the server.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> std::io::Result<Simulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Simulator::start_on(listener).await
    }

    /// Serves on an already bound listener.
    pub async fn start_on(listener: TcpListener) -> std::io::Result<Simulator> {
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let shared = Arc::new(Shared {
            addr,
            shutdown: CancellationToken::new(),
            clock: Clock::default(),
            state: Mutex::new(State::default()),
        });
        tokio::spawn(wire::accept_loop(listener, shared.clone()));
        tracing::debug!(%addr, "ssm simulator listening");
        Ok(Simulator {
            handle: Arc::new(Handle { shared }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// `http://127.0.0.1:PORT`, for the SDK's `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.shared().addr)
    }

    /// Adds an association to [`DEFAULT_ACCOUNT`] in [`DEFAULT_REGION`], or replaces the
    /// metadata of an existing one (keeping its executions, version and details). Panics if it
    /// has more than one alarm (the service model's limit).
    pub fn add_association(&self, id: &str, association: SimAssociation) {
        self.add_association_in(DEFAULT_ACCOUNT, DEFAULT_REGION, id, association);
    }

    /// Removes an association of the default account and region and its executions; later
    /// calls get `AssociationDoesNotExist`.
    pub fn remove_association(&self, id: &str) {
        self.remove_association_in(DEFAULT_ACCOUNT, DEFAULT_REGION, id);
    }

    /// Adds an execution (replacing one with the same id) to an association of the default
    /// account and region. Panics if the association is unknown or the execution breaks the
    /// service model's alarm limits.
    pub fn add_execution(&self, association_id: &str, execution: SimExecution) {
        self.add_execution_in(DEFAULT_ACCOUNT, DEFAULT_REGION, association_id, execution);
    }

    /// Changes an execution of the default account and region in place (status, visibility,
    /// ...). Panics if the association or execution is unknown or the result breaks the
    /// service model's alarm limits.
    pub fn update_execution(
        &self,
        association_id: &str,
        execution_id: &str,
        f: impl FnOnce(&mut SimExecution),
    ) {
        self.update_execution_in(
            DEFAULT_ACCOUNT,
            DEFAULT_REGION,
            association_id,
            execution_id,
            f,
        );
    }

    /// All executions of an association of the default account and region (visible or not),
    /// newest `CreatedTime` first.
    pub fn executions(&self, association_id: &str) -> Vec<SimExecution> {
        self.executions_in(DEFAULT_ACCOUNT, DEFAULT_REGION, association_id)
    }

    /// Caps the items per page below `MaxResults` (short pages); `None` removes the cap. A
    /// cap of 0 is treated as 1.
    pub fn set_page_size(&self, cap: Option<usize>) {
        self.shared().lock().page_size = cap;
    }

    /// The first `n` responses of every paging sequence are empty but carry a `NextToken`.
    pub fn set_empty_pages(&self, n: usize) {
        self.shared().lock().empty_pages = n;
    }

    /// Adds a fault rule (checked after earlier rules).
    pub fn push_fault(&self, rule: FaultRule) {
        self.shared().lock().faults.push(ActiveRule::new(rule));
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared().lock().faults.clear();
    }

    /// Limits requests with a token bucket (burst `max(1, rps)`, starting full); requests over
    /// it get `ThrottlingException`. `None` removes the limit. Panics on a negative or
    /// non-finite rate.
    pub fn set_rate_limit(&self, requests_per_second: Option<f64>) {
        if let Some(rate) = requests_per_second {
            assert!(
                rate.is_finite() && rate >= 0.0,
                "rate limit must be finite and non-negative, got {rate}"
            );
        }
        self.shared().lock().rate_limit = requests_per_second.map(TokenBucket::new);
    }

    /// What an exporter should have counted from the visible executions of the default
    /// account and region ([`Simulator::estate_ground_truth`] covers every account and region).
    pub fn ground_truth(&self) -> GroundTruth {
        self.ground_truth_in(DEFAULT_ACCOUNT, DEFAULT_REGION)
    }

    /// The simulator's notion of now, in epoch milliseconds: host time plus the clock offset.
    /// Use it for `CreatedTime`s relative to the simulator (the demo scenario does).
    pub fn now_ms(&self) -> i64 {
        self.shared().clock.now_ms()
    }

    /// Sets the simulator's clock to host time plus `offset_ms` (negative: behind). Responses'
    /// `Date` headers follow it, and requests signed (`X-Amz-Date`) more than 5 minutes away
    /// from it get HTTP 400 `InvalidSignatureException`, as from AWS.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.shared().clock.set_offset_ms(offset_ms);
    }

    /// Whether responses carry a `Date` header (default `true`); `false` models a proxy that
    /// strips it, leaving a client no way to learn the clock skew.
    pub fn set_date_header(&self, enabled: bool) {
        self.shared().lock().no_date_header = !enabled;
    }

    /// The clock offset set by [`Simulator::set_clock_offset_ms`] (0 by default).
    pub fn clock_offset_ms(&self) -> i64 {
        self.shared().clock.offset_ms()
    }

    /// Every request received (since the last [`Simulator::clear_requests`]), in order of
    /// arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().lock().requests.clone()
    }

    /// Requests received for one operation (answered or not) since the start or the last
    /// [`Simulator::clear_requests`].
    pub fn request_count(&self, operation: &str) -> u64 {
        let state = self.shared().lock();
        state
            .requests
            .iter()
            .filter(|r| r.operation == operation)
            .count() as u64
    }

    /// Requests received (answered or not) since the start or the last
    /// [`Simulator::clear_requests`], counted by the caller's scope (account from the access
    /// key, region from the SigV4 scope: [`RecordedRequest::scope`]) and operation. STS
    /// requests count in the caller's scope too.
    pub fn request_counts_by_scope(&self) -> BTreeMap<(Scope, String), u64> {
        let state = self.shared().lock();
        let mut counts = BTreeMap::new();
        for r in &state.requests {
            *counts.entry((r.scope(), r.operation.clone())).or_default() += 1;
        }
        counts
    }

    /// [`Simulator::request_counts_by_scope`] and [`Simulator::clear_requests`] under one lock,
    /// so that no request is counted twice or lost between the two: for a long-running process
    /// (the `ssm-simulator` binary) that keeps running totals without keeping every record.
    pub fn take_request_counts_by_scope(&self) -> BTreeMap<(Scope, String), u64> {
        let mut state = self.shared().lock();
        let mut counts = BTreeMap::new();
        for r in &state.requests {
            *counts.entry((r.scope(), r.operation.clone())).or_default() += 1;
        }
        state.requests_cleared += state.requests.len();
        state.requests.clear();
        counts
    }

    /// Forgets the requests recorded so far ([`Simulator::requests`],
    /// [`Simulator::request_count`] start again from zero). Requests in flight when it is
    /// called are not recorded again when answered.
    pub fn clear_requests(&self) {
        let mut state = self.shared().lock();
        state.requests_cleared += state.requests.len();
        state.requests.clear();
    }

    /// Stops accepting, closes open connections and ends hung requests and demo tasks.
    pub fn shutdown(&self) {
        self.shared().shutdown.cancel();
    }
}
