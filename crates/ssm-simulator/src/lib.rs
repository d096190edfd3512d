//! A simulated AWS Systems Manager endpoint speaking the real AWS JSON 1.1 wire protocol, with
//! STS `AssumeRole` and `GetCallerIdentity` beside it.
//!
//! [`Simulator`] is a real HTTP/1.1 server (hyper, bound to `127.0.0.1`) that answers
//! `DescribeAssociationExecutions`, `DescribeAssociationExecutionTargets`,
//! `DescribeAssociation`, `ListAssociations` and `ListTagsForResource` the way SSM does, and STS `AssumeRole` and `GetCallerIdentity` the way
//! STS does, so the real `aws-sdk-ssm` and `aws-sdk-sts` clients and aws-config's
//! `AssumeRoleProvider` work against it unchanged when pointed at [`Simulator::endpoint_url`].
//! It is used by integration tests, benchmarks (the `ssm-simulator` binary) and the exporter's
//! `--demo` mode.
//!
//! What it models:
//! - the wire protocol: `POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, a SigV4
//!   `Authorization` header (its presence is checked, the signature is not), JSON bodies,
//!   `x-amzn-RequestId` and `Date` headers, error bodies `{"__type": "<Code>", "message": "..."}`;
//! - request validation following the official service model (association id pattern,
//!   `MaxResults` 1-50, filter keys and operators, ISO-8601 filter values); several filters in
//!   one request must all hold (AND), including two `CreatedTime` filters (a time window);
//! - paging with opaque `NextToken`s that encode the sort key of the last item returned, so a
//!   paging sequence stays stable while new executions are inserted; optional short pages
//!   ([`Simulator::set_page_size`]) and empty pages that still carry a token
//!   ([`Simulator::set_empty_pages`]);
//! - late visibility: executions with `visible == false` exist but are not returned yet by
//!   `DescribeAssociationExecutions`, while the association's `LastExecutionDate`,
//!   `LastSuccessfulExecutionDate` and `Overview` (in `ListAssociations` and
//!   `DescribeAssociation`) already reflect them, as in AWS, where an association moves when it
//!   runs, not when the run becomes visible;
//!   executions whose status is not final (`Pending`, `InProgress`, `Associated`, any unknown
//!   string) stay so until changed; `CreatedTime` may be anything, e.g. far in the future;
//! - faults ([`FaultRule`]), each restricted to an operation, an association, requests with a
//!   `NextToken`, a window (`skip`, `times`) and optionally a seeded fraction of requests
//!   ([`FaultRule::fraction`], e.g. sustained 50 % throttling): throttling, server errors, bad
//!   tokens, auth errors, delays, hung requests, connections closed without a response, and
//!   page-token misbehaviour ([`Fault::RepeatNextToken`]: the token sent comes back;
//!   [`Fault::CycleNextTokens`]: tokens cycle A -> B -> A); a token-bucket rate limit;
//! - a clock: host time plus [`Simulator::set_clock_offset_ms`]. Every response carries an HTTP
//!   `Date` from it, and requests whose SigV4 `X-Amz-Date` is more than 5 minutes away from it
//!   are rejected as AWS does (HTTP 400 `InvalidSignatureException`, "Signature expired: ..." or
//!   "Signature not yet current: ..."). The demo scenario uses the same clock;
//! - a record of every request ([`Simulator::requests`]; counted by
//!   [`Simulator::request_count`] and [`Simulator::request_counts_by_scope`], emptied by
//!   [`Simulator::clear_requests`], both at once by
//!   [`Simulator::take_request_counts_by_scope`]) and the ground truth an exporter should
//!   converge to ([`Simulator::ground_truth`]).
//!
//! # The estate: accounts, regions, roles
//! - Associations live in a [`Scope`]: one account in one region. Every SSM operation answers
//!   from the caller's scope only. The region is the one in the SigV4 credential scope
//!   (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/ssm/aws4_request, ...`;
//!   [`DEFAULT_REGION`] when the header names none). The account is the access key's:
//!   [`Simulator::add_access_key`] maps static keys, keys issued by `AssumeRole` belong to the
//!   role's account, and any other key belongs to [`DEFAULT_ACCOUNT`]. The single-account API
//!   ([`Simulator::add_association`], [`Simulator::add_execution`], [`Simulator::ground_truth`],
//!   ...) is the default account in `us-east-1`; the `*_in(account, region, ...)` methods
//!   reach every other scope ([`Simulator::add_association_in`],
//!   [`Simulator::add_execution_in`], [`Simulator::update_execution_in`],
//!   [`Simulator::executions_in`], [`Simulator::ground_truth_in`],
//!   [`Simulator::estate_ground_truth`]).
//! - STS `AssumeRole` (query protocol: `POST /`, form-encoded
//!   `Action=AssumeRole&Version=2011-06-15&RoleArn=..&RoleSessionName=..[&ExternalId=..]
//!   [&DurationSeconds=..]`, recognised by the SigV4 service `sts` or the form content type)
//!   answers `text/xml`
//!   `AssumeRoleResponse/AssumeRoleResult/{AssumedRoleUser{Arn,AssumedRoleId},
//!   Credentials{AccessKeyId,SecretAccessKey,SessionToken,Expiration}}` with `Expiration` in
//!   whole seconds (`2026-11-27T10:15:00Z`). Roles come from [`Simulator::add_role`]; an unknown
//!   role, a caller account the role does not trust, or a missing or wrong `ExternalId` get
//!   HTTP 403 `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>...`;
//!   malformed input gets 400 `ValidationError`. Issued credentials need their session token
//!   (else 403 `UnrecognizedClientException`) and stop working at `Expiration` on the
//!   simulator's clock (HTTP 400 `ExpiredTokenException`); [`Simulator::set_assumed_role_lifetime`]
//!   shortens them for tests.
//! - STS `GetCallerIdentity` (`Action=GetCallerIdentity&Version=2011-06-15`, same protocol)
//!   answers `GetCallerIdentityResponse/GetCallerIdentityResult/{Arn,UserId,Account}` for the
//!   caller's account as SSM calls see it: an issued key gives its role session
//!   (`arn:aws:sts::<account>:assumed-role/<role>/<session>`, `UserId` `AROA...:<session>`,
//!   the role id stable per role), any other key the IAM user
//!   `arn:aws:iam::<account>:user/simulated` (`UserId` `AIDA...`, stable per access key).
//!   Refused credentials get the errors `AssumeRole` callers get; any other version or action
//!   gets 400 `InvalidAction`.
//! - `ListAssociations`: `AssociationFilterList` with lower-case `key`/`value` (`Name` is the
//!   document, `AssociationName`, `AssociationId`, `AssociationStatusName` (the overview
//!   status), `LastExecutedBefore`/`LastExecutedAfter` (ISO-8601 UTC, strict comparison with
//!   `LastExecutionDate`), `ResourceGroupName` (target `resource-groups:Name`), `InstanceId`,
//!   and `CloudConnectorId`, which matches nothing), all of which must hold; `MaxResults`
//!   1-50; associations in id order, paged by keyset tokens bound to the scope (stable while
//!   associations come and go). [`Simulator::set_page_size`] and
//!   [`Simulator::set_empty_pages`] apply as to executions.
//! - `ListTagsForResource` (`ResourceType` `Association`): [`Simulator::set_tags_in`].
//! - `DescribeAssociationExecutionTargets`: `AssociationId` and `ExecutionId` required (an
//!   unknown or not yet visible execution gets `AssociationExecutionDoesNotExist`); `Filters`
//!   `Key`/`Value` without operator (`Status`, `ResourceId`, `ResourceType`), all of which must
//!   hold; `MaxResults` 1-50; targets in `ResourceId` order, paged by keyset tokens bound to the
//!   execution. Targets come from [`SimExecution::targets`] ([`SimTarget`]); an execution with
//!   targets and no explicit `ResourceCountByStatus` reports one derived from them, and
//!   [`GroundTruth::targets`] counts the non-successful targets of final executions.
//! - Lifecycle at any time: [`Simulator::add_association_with_details_in`] (targets, document
//!   version, instance id: [`AssociationDetails`]), [`Simulator::update_association_in`]
//!   (`AssociationVersion` + 1; later executions carry the new version),
//!   [`Simulator::replace_association_in`] (new id, same name, old one deleted),
//!   [`Simulator::remove_association_in`]. For benchmarks, [`Simulator::add_associations_in`]
//!   adds many at once.
//! - [`Simulator::set_last_execution_date_mode`]: whether an association's
//!   `LastExecutionDate` moves when a run starts or when it ends (AWS does not say). Either
//!   way invisible executions count, and so does the `Overview`, which follows the newest
//!   execution by `CreatedTime`: an exporter that polls executions only when
//!   `LastExecutionDate` or the `Overview` change can see the change before the execution is
//!   visible, and must catch late-visible executions by other means.
//! - Fault rules match an account ([`FaultRule::account`]) or region ([`FaultRule::region`])
//!   as well as an operation, including `ListAssociations`, `ListTagsForResource` (its
//!   `ResourceId` is the association), `AssumeRole` and `GetCallerIdentity` (both answered in
//!   STS's codes: `Throttling`, `AccessDenied` 403, `ExpiredToken`, `InternalFailure` 500). A region's endpoint
//!   "unreachable": `FaultRule::new(Fault::ResetConnection).region("eu-west-1").forever()`.
//!
//! Shapes follow the service model: `AlarmConfiguration.Alarms` and `TriggeredAlarms` hold at
//! most one entry and alarm states are `ALARM` or `UNKNOWN`, so the test helpers that add data
//! panic on anything else.
//!
//! # Layout
//! - `lib.rs`: [`Simulator`], its shared state and setters.
//! - `wire.rs`: the HTTP server, both protocols' dispatch, the caller's scope, request
//!   records, error bodies.
//! - `identity.rs`: [`Scope`], SigV4 credential scopes, access keys, roles, issued credentials,
//!   callers' principals.
//! - `sts.rs`: STS `AssumeRole` and `GetCallerIdentity` (form parsing, XML answers and errors).
//! - `estate.rs`: the per-scope API: lifecycle, tags, roles, ground truth per scope.
//! - `listing.rs`: `ListAssociations` (filters, tokens, paging) and `ListTagsForResource`.
//! - `clock.rs`: the simulator's clock, `Date` headers, the SigV4 request-time check.
//! - `model.rs`: associations (versions, details, overview, `LastExecutionDate` modes),
//!   executions, ground truth.
//! - `paging.rs`: `DescribeAssociationExecutions`: filters, page tokens, paging.
//! - `targets.rs`: `DescribeAssociationExecutionTargets`: filters, page tokens, paging.
//! - `responses.rs`: execution items, `DescribeAssociation`'s description, overview and targets.
//! - `faults.rs`: [`Fault`], [`FaultRule`], the rate limit.
//! - `demo.rs`: the demo scenario.
//! - `exporter_config.rs`: [`ExporterConfig`], the exporter configurations the binary writes
//!   (a list of IDs, or an estate: [`EstateAccount`]).
//! - `main.rs`: the `ssm-simulator` binary.

#![forbid(unsafe_code)]

mod api;
mod clock;
mod demo;
mod estate;
mod exporter_config;
mod faults;
mod identity;
mod listing;
mod model;
mod paging;
mod responses;
mod sts;
mod targets;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use demo::{DemoAssociation, DEMO_ASSOCIATIONS};
pub use exporter_config::{EstateAccount, ExporterConfig};
pub use faults::{Fault, FaultRule};
pub use identity::{Scope, DEFAULT_ACCOUNT, DEFAULT_REGION};
pub use model::{
    format_filter_time, is_final_status, uuid_like, AssociationDetails, GroundTruth,
    LastExecutionDateMode, SimAssociation, SimExecution, SimTarget,
};
pub use wire::RecordedRequest;

use clock::Clock;
use faults::{ActiveRule, TokenBucket};
use identity::Identity;
use model::AssociationState;

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

struct Shared {
    addr: SocketAddr,
    shutdown: CancellationToken,
    clock: Clock,
    state: Mutex<State>,
}

impl Shared {
    /// Locks the state; a panic in a test helper must not wedge the server.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct State {
    /// Associations by account and region, then by id.
    scopes: BTreeMap<Scope, BTreeMap<String, AssociationState>>,
    /// Access keys, roles and issued credentials.
    identity: Identity,
    /// When `LastExecutionDate` moves ([`Simulator::set_last_execution_date_mode`]).
    last_execution_date_mode: LastExecutionDateMode,
    page_size: Option<usize>,
    empty_pages: usize,
    faults: Vec<ActiveRule>,
    rate_limit: Option<TokenBucket>,
    requests: Vec<RecordedRequest>,
    /// Requests dropped from the front of `requests` by [`Simulator::clear_requests`]; record
    /// indexes count from the first request ever, so answers to requests in flight during a
    /// clear find their record, or none.
    requests_cleared: usize,
    demo_started: bool,
    /// Every `NextToken` sent -> the request token it answered ([`Fault::CycleNextTokens`]).
    issued_tokens: HashMap<String, Option<String>>,
    /// Leave out the `Date` header ([`Simulator::set_date_header`]).
    no_date_header: bool,
}

impl State {
    fn association(&self, scope: &Scope, id: &str) -> Option<&AssociationState> {
        self.scopes.get(scope)?.get(id)
    }

    fn association_mut(&mut self, scope: &Scope, id: &str) -> Option<&mut AssociationState> {
        self.scopes.get_mut(scope)?.get_mut(id)
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

    fn shared(&self) -> &Arc<Shared> {
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
