//! A simulated AWS Systems Manager endpoint speaking the real AWS JSON 1.1 wire protocol.
//!
//! [`Simulator`] is a real HTTP/1.1 server (hyper, bound to `127.0.0.1`) that answers
//! `DescribeAssociationExecutions` and `DescribeAssociation` the way SSM does, so the real
//! `aws-sdk-ssm` client works against it unchanged when pointed at [`Simulator::endpoint_url`].
//! It is used by integration tests, benchmarks and the `--demo` mode.
//!
//! What it models:
//! - the wire protocol: `POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, a SigV4
//!   `Authorization` header (its presence is checked, the signature is not), JSON bodies,
//!   `x-amzn-RequestId`, error bodies `{"__type": "<Code>", "message": "..."}`;
//! - request validation following the official service model (association id pattern,
//!   `MaxResults` 1-50, filter keys and operators, ISO-8601 filter values);
//! - paging with opaque `NextToken`s that encode the sort key of the last item returned, so a
//!   paging sequence stays stable while new executions are inserted; optional short pages
//!   ([`Simulator::set_page_size`]) and empty pages that still carry a token
//!   ([`Simulator::set_empty_pages`]);
//! - late visibility: executions with `visible == false` exist but are not returned yet;
//! - faults ([`FaultRule`]): throttling, server errors, bad tokens, auth errors, delays, hung
//!   requests and connections closed without a response; a token-bucket rate limit;
//! - a record of every request ([`Simulator::requests`]) and the ground truth an exporter
//!   should converge to ([`Simulator::ground_truth`]).
//!
//! Shapes follow the service model: `AlarmConfiguration.Alarms` and `TriggeredAlarms` hold at
//! most one entry and alarm states are `ALARM` or `UNKNOWN`, so the test helpers that add data
//! panic on anything else.

#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `X-Amz-Target` prefix of every SSM operation.
const TARGET_PREFIX: &str = "AmazonSSM.";
/// Content type of AWS JSON 1.1 requests and responses.
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// Largest request body accepted (SSM requests are tiny).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Default and maximum `MaxResults` of `DescribeAssociationExecutions`.
const MAX_RESULTS: i64 = 50;
/// Statuses after which an execution no longer changes.
const FINAL_STATUSES: &[&str] = &["Success", "Failed", "TimedOut", "Cancelled", "Skipped"];
/// Version prefix of the simulator's page tokens.
const TOKEN_VERSION: &str = "sim1";

const OP_DESCRIBE_EXECUTIONS: &str = "DescribeAssociationExecutions";
const OP_DESCRIBE_ASSOCIATION: &str = "DescribeAssociation";

/// Whether `status` is one an execution never leaves.
pub fn is_final_status(status: &str) -> bool {
    FINAL_STATUSES.contains(&status)
}

/// Formats epoch milliseconds as the ISO-8601 UTC filter value SSM accepts
/// (`2026-11-26T07:00:00.123Z`).
pub fn format_filter_time(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .expect("timestamp within the range of the time crate");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Current wall-clock time in epoch milliseconds.
fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Epoch milliseconds as an AWS JSON timestamp (epoch seconds with a millisecond fraction).
fn timestamp(ms: i64) -> Value {
    Value::from(ms as f64 / 1000.0)
}

/// A uuid-shaped string from 128 random bits (request ids, execution ids).
pub fn uuid_like(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
fn is_uuid_shaped(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One association execution as the simulator stores it.
#[derive(Clone, Debug)]
pub struct SimExecution {
    /// `ExecutionId` (SSM uses uuids; any string works here).
    pub execution_id: String,
    /// `Status`: a free string (Pending, InProgress, Success, Failed, TimedOut, ...).
    pub status: String,
    /// `DetailedStatus`, omitted when `None`.
    pub detailed_status: Option<String>,
    /// `CreatedTime` in epoch milliseconds.
    pub created_ms: i64,
    /// `LastExecutionDate` in epoch milliseconds, omitted when `None`.
    pub last_execution_ms: Option<i64>,
    /// `ResourceCountByStatus`, e.g. `{Failed=2,Success=3}`, omitted when `None`.
    pub resource_count_by_status: Option<String>,
    /// `TriggeredAlarms` as (alarm name, state `ALARM` | `UNKNOWN`); at most one (service model).
    pub triggered_alarms: Vec<(String, String)>,
    /// Whether the execution is returned yet (late visibility when `false`).
    pub visible: bool,
    /// Wire fields left out of the response (`ExecutionId`, `CreatedTime`, `Status`): a
    /// malformed answer. Executions without an ID or CreatedTime cannot be counted and are left
    /// out of the ground truth; one without a Status is, to a client, not final.
    pub omit: Vec<&'static str>,
}

impl SimExecution {
    /// A visible execution with no optional fields set.
    pub fn new(
        execution_id: impl Into<String>,
        status: impl Into<String>,
        created_ms: i64,
    ) -> Self {
        SimExecution {
            execution_id: execution_id.into(),
            status: status.into(),
            detailed_status: None,
            created_ms,
            last_execution_ms: None,
            resource_count_by_status: None,
            triggered_alarms: Vec::new(),
            visible: true,
            omit: Vec::new(),
        }
    }

    /// Leaves `field` out of the wire response (see [`SimExecution::omit`]).
    pub fn without_field(mut self, field: &'static str) -> Self {
        self.omit.push(field);
        self
    }

    /// Sets `DetailedStatus`.
    pub fn with_detailed_status(mut self, detailed_status: impl Into<String>) -> Self {
        self.detailed_status = Some(detailed_status.into());
        self
    }

    /// Sets `LastExecutionDate` (epoch milliseconds).
    pub fn with_last_execution_ms(mut self, last_execution_ms: i64) -> Self {
        self.last_execution_ms = Some(last_execution_ms);
        self
    }

    /// Sets `ResourceCountByStatus`, e.g. `{Success=3}`.
    pub fn with_resource_count_by_status(mut self, counts: impl Into<String>) -> Self {
        self.resource_count_by_status = Some(counts.into());
        self
    }

    /// Adds a triggered alarm (`state` is `ALARM` or `UNKNOWN`).
    pub fn with_triggered_alarm(
        mut self,
        name: impl Into<String>,
        state: impl Into<String>,
    ) -> Self {
        self.triggered_alarms.push((name.into(), state.into()));
        self
    }

    /// Makes the execution invisible until [`Simulator::update_execution`] sets `visible`.
    pub fn invisible(mut self) -> Self {
        self.visible = false;
        self
    }

    /// Why the execution breaks the service model's alarm limits, if it does.
    fn model_violation(&self) -> Option<String> {
        if self.triggered_alarms.len() > 1 {
            return Some(format!(
                "execution {}: the SSM model allows at most one TriggeredAlarms entry",
                self.execution_id
            ));
        }
        self.triggered_alarms
            .iter()
            .find(|(name, state)| name.trim().is_empty() || (state != "ALARM" && state != "UNKNOWN"))
            .map(|(name, state)| {
                format!(
                    "execution {}: triggered alarm ({name:?}, {state:?}) needs a name and state ALARM or UNKNOWN",
                    self.execution_id
                )
            })
    }
}

/// An association's metadata.
#[derive(Clone, Debug, Default)]
pub struct SimAssociation {
    /// `AssociationName`, omitted when `None`.
    pub name: Option<String>,
    /// The SSM document name (`Name`).
    pub document_name: String,
    /// `ScheduleExpression`, omitted when `None`.
    pub schedule_expression: Option<String>,
    /// Configured CloudWatch alarm names; at most one (service model).
    pub alarms: Vec<String>,
}

impl SimAssociation {
    /// An association running `document_name` with no name, schedule or alarms.
    pub fn new(document_name: impl Into<String>) -> Self {
        SimAssociation {
            document_name: document_name.into(),
            ..SimAssociation::default()
        }
    }

    /// Sets `AssociationName`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets `ScheduleExpression`.
    pub fn with_schedule(mut self, schedule_expression: impl Into<String>) -> Self {
        self.schedule_expression = Some(schedule_expression.into());
        self
    }

    /// Adds a configured alarm.
    pub fn with_alarm(mut self, alarm: impl Into<String>) -> Self {
        self.alarms.push(alarm.into());
        self
    }
}

/// What a matching [`FaultRule`] does to a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException`, "Rate exceeded".
    Throttle,
    /// HTTP 500 `InternalServerError`.
    InternalError,
    /// HTTP 400 `InvalidNextToken`.
    InvalidNextToken,
    /// HTTP 400 `AccessDeniedException`.
    AccessDenied,
    /// HTTP 400 `ExpiredTokenException`.
    ExpiredToken,
    /// Answer normally after this delay.
    Delay(Duration),
    /// Never answer; the connection stays open until [`Simulator::shutdown`].
    Hang,
    /// Close the TCP connection without any HTTP response.
    ResetConnection,
}

/// Injects a [`Fault`] into matching requests.
///
/// Rules are checked in the order they were pushed. Every rule that matches a request counts
/// it; the first rule whose window (`skip` matching requests let through, then `times` failed)
/// covers the request fires, and later rules do not see that request.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Operation name such as `DescribeAssociationExecutions`; `None` matches any.
    pub operation: Option<String>,
    /// Association id; `None` matches any.
    pub association_id: Option<String>,
    /// Match only requests that carry a `NextToken` (page 2 and later).
    pub only_with_next_token: bool,
    /// Let this many matching requests through first.
    pub skip: u32,
    /// Then fail this many matching requests (`u32::MAX`: forever).
    pub times: u32,
    /// What to do.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule failing the next request of any operation once.
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            operation: None,
            association_id: None,
            only_with_next_token: false,
            skip: 0,
            times: 1,
            fault,
        }
    }

    /// Restricts the rule to one operation.
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// Restricts the rule to one association.
    pub fn association(mut self, association_id: impl Into<String>) -> Self {
        self.association_id = Some(association_id.into());
        self
    }

    /// Restricts the rule to requests carrying a `NextToken`.
    pub fn only_with_next_token(mut self) -> Self {
        self.only_with_next_token = true;
        self
    }

    /// Lets `skip` matching requests through first.
    pub fn skip(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    /// Fails `times` matching requests (`u32::MAX`: forever).
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Fails every matching request from now on.
    pub fn forever(self) -> Self {
        self.times(u32::MAX)
    }

    fn matches(&self, operation: &str, association_id: Option<&str>, has_token: bool) -> bool {
        self.operation.as_deref().is_none_or(|op| op == operation)
            && self
                .association_id
                .as_deref()
                .is_none_or(|id| Some(id) == association_id)
            && (!self.only_with_next_token || has_token)
    }
}

/// One request as received, with the answer given.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Operation from `X-Amz-Target` without the `AmazonSSM.` prefix (empty if absent).
    pub operation: String,
    /// `AssociationId` from the body, if any.
    pub association_id: Option<String>,
    /// `Filters` as (key, value, type).
    pub filters: Vec<(String, String, String)>,
    /// `MaxResults`, if present.
    pub max_results: Option<i32>,
    /// `NextToken`, if present.
    pub next_token: Option<String>,
    /// HTTP status sent; 0 while unanswered or when no response was sent (hang, reset).
    pub status: u16,
    /// Error code sent (`__type`), or the fault name (`Hang`, `ResetConnection`) when no
    /// response was sent.
    pub error_code: Option<String>,
}

/// What an exporter watching the simulator should converge to.
///
/// Maps are sparse: only non-zero counts appear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroundTruth {
    /// Per association id: visible executions in a final status, counted by status.
    pub executions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per association id: visible executions not yet in a final status.
    pub in_progress: BTreeMap<String, u64>,
    /// Per association id: (alarm name, state) -> visible final executions that triggered it.
    pub triggered_alarms: BTreeMap<String, BTreeMap<(String, String), u64>>,
    /// Per association id: visible final executions without `LastExecutionDate`.
    pub without_end_time: BTreeMap<String, u64>,
}

/// One association of the demo scenario.
#[derive(Clone, Copy, Debug)]
pub struct DemoAssociation {
    /// Association id (uuid).
    pub id: &'static str,
    /// `AssociationName`.
    pub name: &'static str,
    /// SSM document.
    pub document: &'static str,
    /// `ScheduleExpression`.
    pub schedule: &'static str,
    /// Configured alarms (at most one, as in SSM).
    pub alarms: &'static [&'static str],
}

/// The associations of the demo scenario ([`Simulator::start_demo_activity`]).
pub const DEMO_ASSOCIATIONS: &[DemoAssociation] = &[
    DemoAssociation {
        id: "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f",
        name: "patch-linux-fleet",
        document: "AWS-RunPatchBaseline",
        schedule: "rate(30 minutes)",
        alarms: &["patch-linux-fleet-errors"],
    },
    DemoAssociation {
        id: "8b1e4f7a-2c3d-4a5b-8e9f-0a1b2c3d4e5f",
        name: "gather-software-inventory",
        document: "AWS-GatherSoftwareInventory",
        schedule: "rate(30 minutes)",
        alarms: &[],
    },
    DemoAssociation {
        id: "c7d8e9f0-1a2b-4c3d-9e4f-5a6b7c8d9e0f",
        name: "install-cloudwatch-agent",
        document: "AWS-ConfigureAWSPackage",
        schedule: "rate(1 hour)",
        alarms: &["cloudwatch-agent-install-failures"],
    },
    DemoAssociation {
        id: "e4f5a6b7-c8d9-4e0f-a1b2-c3d4e5f6a7b8",
        name: "update-ssm-agent",
        document: "AWS-UpdateSSMAgent",
        schedule: "cron(0 2 ? * SUN *)",
        alarms: &[],
    },
    DemoAssociation {
        id: "5a6b7c8d-9e0f-4a1b-b2c3-d4e5f6a7b8c9",
        name: "patch-windows-fleet",
        document: "AWS-RunPatchBaseline",
        schedule: "cron(0 3 ? * SAT *)",
        alarms: &["patch-windows-fleet-errors"],
    },
];

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
    associations: BTreeMap<String, AssociationState>,
    page_size: Option<usize>,
    empty_pages: usize,
    faults: Vec<ActiveRule>,
    rate_limit: Option<TokenBucket>,
    requests: Vec<RecordedRequest>,
    demo_started: bool,
}

type ExecutionKey = (Reverse<i64>, String);

struct AssociationState {
    meta: SimAssociation,
    added_ms: i64,
    /// Executions in response order: newest `CreatedTime` first, ties by `ExecutionId`.
    executions: BTreeMap<ExecutionKey, SimExecution>,
    /// `ExecutionId` -> `CreatedTime`, to find an execution's key.
    created_by_id: HashMap<String, i64>,
}

impl AssociationState {
    fn insert(&mut self, execution: SimExecution) {
        if let Some(old) = self
            .created_by_id
            .insert(execution.execution_id.clone(), execution.created_ms)
        {
            self.executions
                .remove(&(Reverse(old), execution.execution_id.clone()));
        }
        self.executions.insert(
            (
                Reverse(execution.created_ms),
                execution.execution_id.clone(),
            ),
            execution,
        );
    }

    fn take(&mut self, execution_id: &str) -> Option<SimExecution> {
        let created = self.created_by_id.remove(execution_id)?;
        self.executions
            .remove(&(Reverse(created), execution_id.to_owned()))
    }
}

struct ActiveRule {
    rule: FaultRule,
    matched: u64,
}

struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An AWS error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn validation(message: impl Into<String>) -> Self {
        ApiError::client("ValidationException", message)
    }

    fn no_association(id: &str) -> Self {
        ApiError::client(
            "AssociationDoesNotExist",
            format!("Association {id} does not exist"),
        )
    }

    fn throttled() -> Self {
        ApiError::client("ThrottlingException", "Rate exceeded")
    }
}

/// How a request ends.
enum Outcome {
    Reply(Result<Value, ApiError>),
    /// Close the connection without a response; the string names the reason for the record.
    Drop(&'static str),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecutionsRequest {
    association_id: Option<String>,
    filters: Option<Vec<FilterInput>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterInput {
    key: Option<String>,
    value: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // accepted for wire compatibility, not used
struct AssociationRequest {
    association_id: Option<String>,
    name: Option<String>,
    instance_id: Option<String>,
    association_version: Option<String>,
}

enum Filter {
    ExecutionId(String),
    Status(String),
    CreatedEqual(i64),
    CreatedAfter(i64),
    CreatedBefore(i64),
}

impl Filter {
    fn accepts(&self, e: &SimExecution) -> bool {
        match self {
            Filter::ExecutionId(id) => e.execution_id == *id,
            Filter::Status(status) => e.status == *status,
            Filter::CreatedEqual(ms) => e.created_ms == *ms,
            Filter::CreatedAfter(ms) => e.created_ms > *ms,
            Filter::CreatedBefore(ms) => e.created_ms < *ms,
        }
    }
}

/// Decoded page token: where a paging sequence stands.
struct PageToken {
    association_id: String,
    /// Empty pages already served in this sequence.
    empty_pages: usize,
    /// Sort key of the last item returned, `None` before the first item.
    after: Option<(i64, String)>,
}

impl PageToken {
    fn encode(&self) -> String {
        let after = match &self.after {
            Some((ms, id)) => format!("{ms}:{id}"),
            None => "-".to_owned(),
        };
        let plain = format!(
            "{TOKEN_VERSION}|{}|{}|{after}",
            self.association_id, self.empty_pages
        );
        plain.bytes().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    fn decode(token: &str) -> Option<PageToken> {
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return None;
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let plain = String::from_utf8(bytes).ok()?;
        let mut parts = plain.splitn(4, '|');
        if parts.next()? != TOKEN_VERSION {
            return None;
        }
        let association_id = parts.next()?.to_owned();
        let empty_pages = parts.next()?.parse().ok()?;
        let after = match parts.next()? {
            "-" => None,
            key => {
                let (ms, id) = key.split_once(':')?;
                Some((ms.parse().ok()?, id.to_owned()))
            }
        };
        Some(PageToken {
            association_id,
            empty_pages,
            after,
        })
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
            state: Mutex::new(State::default()),
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
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

    /// Adds an association, or replaces the metadata of an existing one (keeping its
    /// executions). Panics if it has more than one alarm (the service model's limit).
    pub fn add_association(&self, id: &str, association: SimAssociation) {
        assert!(
            association.alarms.len() <= 1,
            "association {id}: the SSM model allows at most one configured alarm"
        );
        let mut state = self.shared().lock();
        match state.associations.get_mut(id) {
            Some(existing) => existing.meta = association,
            None => {
                state.associations.insert(
                    id.to_owned(),
                    AssociationState {
                        meta: association,
                        added_ms: now_ms(),
                        executions: BTreeMap::new(),
                        created_by_id: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Removes an association and its executions; later calls get `AssociationDoesNotExist`.
    pub fn remove_association(&self, id: &str) {
        self.shared().lock().associations.remove(id);
    }

    /// Adds an execution (replacing one with the same id). Panics if the association is
    /// unknown or the execution breaks the service model's alarm limits.
    pub fn add_execution(&self, association_id: &str, execution: SimExecution) {
        if let Some(violation) = execution.model_violation() {
            panic!("{violation}");
        }
        let mut state = self.shared().lock();
        let association = state
            .associations
            .get_mut(association_id)
            .unwrap_or_else(|| panic!("add_execution: unknown association {association_id}"));
        association.insert(execution);
    }

    /// Changes an execution in place (status, visibility, ...). Panics if the association or
    /// execution is unknown or the result breaks the service model's alarm limits.
    pub fn update_execution(
        &self,
        association_id: &str,
        execution_id: &str,
        f: impl FnOnce(&mut SimExecution),
    ) {
        let mut state = self.shared().lock();
        let association = state
            .associations
            .get_mut(association_id)
            .unwrap_or_else(|| panic!("update_execution: unknown association {association_id}"));
        let mut execution = association.take(execution_id).unwrap_or_else(|| {
            panic!("update_execution: unknown execution {execution_id} of {association_id}")
        });
        let original = execution.clone();
        f(&mut execution);
        match execution.model_violation() {
            None => association.insert(execution),
            Some(violation) => {
                association.insert(original);
                drop(state);
                panic!("{violation}");
            }
        }
    }

    /// All executions of an association (visible or not), newest `CreatedTime` first.
    pub fn executions(&self, association_id: &str) -> Vec<SimExecution> {
        self.shared()
            .lock()
            .associations
            .get(association_id)
            .map(|a| a.executions.values().cloned().collect())
            .unwrap_or_default()
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
        self.shared()
            .lock()
            .faults
            .push(ActiveRule { rule, matched: 0 });
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

    /// What an exporter should have counted from the visible executions.
    pub fn ground_truth(&self) -> GroundTruth {
        let state = self.shared().lock();
        let mut truth = GroundTruth::default();
        for (id, association) in &state.associations {
            for e in association.executions.values().filter(|e| e.visible) {
                if e.omit.contains(&"ExecutionId") || e.omit.contains(&"CreatedTime") {
                    continue;
                }
                if !is_final_status(&e.status) || e.omit.contains(&"Status") {
                    *truth.in_progress.entry(id.clone()).or_default() += 1;
                    continue;
                }
                *truth
                    .executions
                    .entry(id.clone())
                    .or_default()
                    .entry(e.status.clone())
                    .or_default() += 1;
                for alarm in &e.triggered_alarms {
                    *truth
                        .triggered_alarms
                        .entry(id.clone())
                        .or_default()
                        .entry(alarm.clone())
                        .or_default() += 1;
                }
                // No usable end time: none at all, or one before the start.
                if e.last_execution_ms.is_none_or(|end| end < e.created_ms) {
                    *truth.without_end_time.entry(id.clone()).or_default() += 1;
                }
            }
        }
        truth
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().lock().requests.clone()
    }

    /// Requests received for one operation (answered or not).
    pub fn request_count(&self, operation: &str) -> u64 {
        let state = self.shared().lock();
        state
            .requests
            .iter()
            .filter(|r| r.operation == operation)
            .count() as u64
    }

    /// Stops accepting, closes open connections and ends hung requests and demo tasks.
    pub fn shutdown(&self) {
        self.shared().shutdown.cancel();
    }

    /// Adds [`DEMO_ASSOCIATIONS`] with about 50 minutes of history and spawns a task (ended by
    /// [`Simulator::shutdown`]) that keeps creating and finishing executions: every 2-4 s a
    /// new `InProgress` execution finalised 3-10 s later, and one in eight instead a finished
    /// execution that only becomes visible a few seconds after it was created. Reproducible
    /// (seeded) apart from wall-clock timing. A second call does nothing.
    pub fn start_demo_activity(&self) {
        self.start_demo_activity_with_speedup(1);
    }

    /// [`Simulator::start_demo_activity`] with the live activity's pauses divided by
    /// `speedup` (at least 1), so tests can watch it without waiting seconds. The history and
    /// the wall-clock timestamps are unchanged.
    pub fn start_demo_activity_with_speedup(&self, speedup: u32) {
        {
            let mut state = self.shared().lock();
            if state.demo_started {
                return;
            }
            state.demo_started = true;
        }
        let mut rng = StdRng::seed_from_u64(0x55D_DE30);
        let now = now_ms();
        for (index, demo) in DEMO_ASSOCIATIONS.iter().enumerate() {
            let mut association = SimAssociation::new(demo.document)
                .with_name(demo.name)
                .with_schedule(demo.schedule);
            association.alarms = demo.alarms.iter().map(|a| (*a).to_owned()).collect();
            self.add_association(demo.id, association);
            let mut created = now - 50 * 60 * 1000 + rng.random_range(0..60_000);
            let mut run = 0;
            while created < now - 5 * 60 * 1000 {
                // Guarantee the rarer outcomes appear in the history at least once.
                let forced = match (index, run) {
                    (0, 2) => Some("Cancelled"),
                    (1, 3) => Some("Skipped"),
                    (2, 1) => Some("TimedOut"),
                    (4, 2) => Some("Failed"),
                    _ => None,
                };
                let execution = demo_finished(&mut rng, demo, created, forced);
                self.add_execution(demo.id, execution);
                created += rng.random_range(90_000..240_000);
                run += 1;
            }
        }
        tokio::spawn(demo_loop(self.shared().clone(), rng, speedup.max(1)));
    }
}

/// A demo execution in a final status, created at `created_ms`.
fn demo_finished(
    rng: &mut StdRng,
    demo: &DemoAssociation,
    created_ms: i64,
    forced: Option<&'static str>,
) -> SimExecution {
    let status = forced.unwrap_or_else(|| match rng.random_range(0..100) {
        0..75 => "Success",
        75..87 => "Failed",
        87..92 => "TimedOut",
        92..94 => "Cancelled",
        _ => "Skipped",
    });
    let targets: u32 = rng.random_range(3..16);
    let mut execution =
        SimExecution::new(uuid_like(rng.random()), status, created_ms).with_detailed_status(status);
    let counts = match status {
        "Success" => Some(format!("{{Success={targets}}}")),
        "Failed" => {
            let failed = rng.random_range(1..=targets.min(3));
            if failed == targets {
                Some(format!("{{Failed={failed}}}"))
            } else {
                Some(format!("{{Failed={failed},Success={}}}", targets - failed))
            }
        }
        "TimedOut" => Some(format!("{{Success={},TimedOut=1}}", targets - 1)),
        "Cancelled" => Some(format!("{{Cancelled={targets}}}")),
        _ => None,
    };
    execution.resource_count_by_status = counts;
    let has_end = match status {
        "Skipped" => false,
        "Cancelled" => rng.random_bool(0.5),
        _ => true,
    };
    if has_end {
        execution.last_execution_ms = Some(created_ms + rng.random_range(20_000..=300_000));
    }
    if let Some(alarm) = demo.alarms.first() {
        let triggered = match status {
            "Failed" | "TimedOut" => rng.random_bool(0.6).then_some("ALARM"),
            _ => rng.random_bool(0.03).then_some("UNKNOWN"),
        };
        if let Some(state) = triggered {
            execution.triggered_alarms = vec![((*alarm).to_owned(), state.to_owned())];
        }
    }
    execution
}

/// The demo's live activity; ends on shutdown.
async fn demo_loop(shared: Arc<Shared>, mut rng: StdRng, speedup: u32) {
    let scaled = |ms: u64| Duration::from_millis(ms) / speedup;
    loop {
        let pause = scaled(rng.random_range(2_000..=4_000));
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let demo = &DEMO_ASSOCIATIONS[rng.random_range(0..DEMO_ASSOCIATIONS.len())];
        let now = now_ms();
        if rng.random_range(0..8) == 0 {
            // Late visibility: finished a little while ago, visible only some seconds later.
            let created = now - rng.random_range(1_000..5_000);
            let mut execution = demo_finished(&mut rng, demo, created, None);
            if let Some(end) = execution.last_execution_ms.as_mut() {
                *end = (*end).min(now);
            }
            execution.visible = false;
            let id = execution.execution_id.clone();
            tracing::debug!(association_id = demo.id, execution_id = %id, "demo: late execution");
            insert_if_present(&shared, demo.id, execution);
            let delay = scaled(rng.random_range(3_000..=8_000));
            spawn_later(&shared, delay, demo.id, id, |e| e.visible = true);
        } else {
            let targets: u32 = rng.random_range(3..16);
            let execution = SimExecution::new(uuid_like(rng.random()), "InProgress", now)
                .with_detailed_status("InProgress")
                .with_resource_count_by_status(format!("{{InProgress={targets}}}"));
            let id = execution.execution_id.clone();
            tracing::debug!(association_id = demo.id, execution_id = %id, "demo: new execution");
            insert_if_present(&shared, demo.id, execution);
            let delay = scaled(rng.random_range(3_000..=10_000));
            let outcome = demo_finished(&mut rng, demo, now, None);
            spawn_later(&shared, delay, demo.id, id, move |e| {
                let end = now_ms();
                e.status = outcome.status;
                e.detailed_status = outcome.detailed_status;
                e.resource_count_by_status = outcome.resource_count_by_status;
                e.triggered_alarms = outcome.triggered_alarms;
                e.last_execution_ms = outcome.last_execution_ms.map(|_| end);
            });
        }
    }
}

/// Inserts an execution unless its association was removed meanwhile.
fn insert_if_present(shared: &Shared, association_id: &str, execution: SimExecution) {
    if let Some(association) = shared.lock().associations.get_mut(association_id) {
        association.insert(execution);
    }
}

/// After `delay` (unless shut down first) applies `f` to an execution, if it still exists.
fn spawn_later(
    shared: &Arc<Shared>,
    delay: Duration,
    association_id: &'static str,
    execution_id: String,
    f: impl FnOnce(&mut SimExecution) + Send + 'static,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let mut state = shared.lock();
        if let Some(association) = state.associations.get_mut(association_id) {
            if let Some(mut execution) = association.take(&execution_id) {
                f(&mut execution);
                association.insert(execution);
            }
        }
    });
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "ssm simulator accept failed");
                // Avoid spinning on persistent errors such as running out of descriptors.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(|req| handle(shared.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                result = conn => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "ssm simulator connection closed");
                    }
                }
            }
        });
    }
    tracing::debug!("ssm simulator stopped");
}

/// Serves one request. An `Err` makes hyper close the connection without a response.
async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let request_id = uuid_like(rand::random());
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.strip_prefix(TARGET_PREFIX).unwrap_or(t).to_owned())
        .unwrap_or_default();
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
    let method_ok = req.method() == Method::POST && req.uri().path() == "/";
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "ssm simulator could not read a request body");
            return Err(std::io::Error::other("unreadable request body"));
        }
    };
    let parsed: Result<Value, _> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Object(Map::new()))
    } else {
        serde_json::from_slice(&body)
    };
    let index = record(&shared, &operation, parsed.as_ref().ok());
    let association_id = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.get("AssociationId"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    let outcome = if !authorized {
        Outcome::Reply(Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )))
    } else if !method_ok
        || !matches!(
            operation.as_str(),
            OP_DESCRIBE_EXECUTIONS | OP_DESCRIBE_ASSOCIATION
        )
    {
        Outcome::Reply(Err(ApiError::client(
            "UnknownOperationException",
            format!("Unknown operation {operation:?}"),
        )))
    } else {
        match parsed {
            Err(error) => Outcome::Reply(Err(ApiError::client(
                "SerializationException",
                format!("Malformed request body: {error}"),
            ))),
            Ok(body) => serve(&shared, &operation, body).await,
        }
    };

    let (status, code, reply) = match outcome {
        Outcome::Drop(reason) => {
            finish(&shared, index, 0, Some(reason));
            tracing::debug!(
                operation,
                association_id,
                reason,
                "ssm simulator dropped the connection"
            );
            return Err(std::io::Error::other(reason));
        }
        Outcome::Reply(Ok(body)) => (StatusCode::OK, None, body),
        Outcome::Reply(Err(e)) => (
            e.status,
            Some(e.code),
            json!({"__type": e.code, "message": e.message}),
        ),
    };
    finish(&shared, index, status.as_u16(), code);
    tracing::debug!(
        operation,
        association_id,
        status = status.as_u16(),
        error_code = code,
        request_id,
        "ssm simulator request"
    );
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    Ok(response)
}

/// Records a request as received and returns its index.
fn record(shared: &Shared, operation: &str, body: Option<&Value>) -> usize {
    let field = |name: &str| body.and_then(|b| b.get(name));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let filters = field("Filters")
        .and_then(Value::as_array)
        .map(|filters| {
            filters
                .iter()
                .map(|f| {
                    let part = |k: &str| text(f.get(k)).unwrap_or_default();
                    (part("Key"), part("Value"), part("Type"))
                })
                .collect()
        })
        .unwrap_or_default();
    let request = RecordedRequest {
        operation: operation.to_owned(),
        association_id: text(field("AssociationId")),
        filters,
        max_results: field("MaxResults")
            .and_then(Value::as_i64)
            .map(|n| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })),
        next_token: text(field("NextToken")),
        status: 0,
        error_code: None,
    };
    let mut state = shared.lock();
    state.requests.push(request);
    state.requests.len() - 1
}

fn finish(shared: &Shared, index: usize, status: u16, error_code: Option<&str>) {
    if let Some(request) = shared.lock().requests.get_mut(index) {
        request.status = status;
        request.error_code = error_code.map(str::to_owned);
    }
}

/// Rate limit, faults, then the operation itself.
async fn serve(shared: &Shared, operation: &str, body: Value) -> Outcome {
    let association_id = body.get("AssociationId").and_then(Value::as_str);
    let has_token = body
        .get("NextToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let fault = {
        let mut state = shared.lock();
        if let Some(bucket) = state.rate_limit.as_mut() {
            if !bucket.try_take() {
                return Outcome::Reply(Err(ApiError::throttled()));
            }
        }
        pick_fault(&mut state.faults, operation, association_id, has_token)
    };
    match fault {
        None => {}
        Some(Fault::Throttle) => return Outcome::Reply(Err(ApiError::throttled())),
        Some(Fault::InternalError) => {
            return Outcome::Reply(Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal error has occurred (simulated).",
            )))
        }
        Some(Fault::InvalidNextToken) => {
            return Outcome::Reply(Err(ApiError::client(
                "InvalidNextToken",
                "The specified token isn't valid.",
            )))
        }
        Some(Fault::AccessDenied) => {
            return Outcome::Reply(Err(ApiError::client(
                "AccessDeniedException",
                format!("User is not authorized to perform: ssm:{operation} (simulated)"),
            )))
        }
        Some(Fault::ExpiredToken) => {
            return Outcome::Reply(Err(ApiError::client(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )))
        }
        Some(Fault::Delay(delay)) => {
            tokio::select! {
                () = shared.shutdown.cancelled() => return Outcome::Drop("Shutdown"),
                () = tokio::time::sleep(delay) => {}
            }
        }
        Some(Fault::Hang) => {
            shared.shutdown.cancelled().await;
            return Outcome::Drop("Hang");
        }
        Some(Fault::ResetConnection) => return Outcome::Drop("ResetConnection"),
    }
    let result = match operation {
        OP_DESCRIBE_EXECUTIONS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_executions(shared, request)),
        _ => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_association(shared, request)),
    };
    Outcome::Reply(result)
}

fn serialization_error(error: serde_json::Error) -> ApiError {
    ApiError::client("SerializationException", error.to_string())
}

fn pick_fault(
    rules: &mut [ActiveRule],
    operation: &str,
    association_id: Option<&str>,
    has_token: bool,
) -> Option<Fault> {
    for active in rules.iter_mut() {
        if !active.rule.matches(operation, association_id, has_token) {
            continue;
        }
        active.matched += 1;
        let skip = u64::from(active.rule.skip);
        if active.matched > skip && active.matched - skip <= u64::from(active.rule.times) {
            return Some(active.rule.fault.clone());
        }
    }
    None
}

fn validate_association_id(id: Option<&str>) -> Result<&str, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'associationId' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    if is_uuid_shaped(id) {
        Ok(id)
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at 'associationId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}"
        )))
    }
}

fn parse_filter(f: &FilterInput) -> Result<Filter, ApiError> {
    let (Some(key), Some(value), Some(kind)) = (&f.key, &f.value, &f.kind) else {
        return Err(ApiError::validation(
            "Each filter needs Key, Value and Type",
        ));
    };
    if value.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '' at 'filters.member.value' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        ));
    }
    let time = || {
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .map(|t| {
                let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
                i64::try_from(ms).unwrap_or(i64::MAX)
            })
            .map_err(|_| {
                ApiError::validation(format!(
                    "Invalid CreatedTime filter value '{value}': expected an ISO-8601 UTC \
                     timestamp such as 2018-04-10T19:15:38.372Z"
                ))
            })
    };
    match (key.as_str(), kind.as_str()) {
        ("ExecutionId", "EQUAL") => Ok(Filter::ExecutionId(value.clone())),
        ("Status", "EQUAL") => Ok(Filter::Status(value.clone())),
        ("CreatedTime", "EQUAL") => time().map(Filter::CreatedEqual),
        ("CreatedTime", "GREATER_THAN") => time().map(Filter::CreatedAfter),
        ("CreatedTime", "LESS_THAN") => time().map(Filter::CreatedBefore),
        _ => Err(ApiError::validation(format!(
            "Filter key {key} does not support operator {kind}"
        ))),
    }
}

fn describe_executions(shared: &Shared, request: ExecutionsRequest) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let max_results = request.max_results.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max_results) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{max_results}' at 'maxResults' failed to \
             satisfy constraint: Member must have value between 1 and 50"
        )));
    }
    let filters = match &request.filters {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            return Err(ApiError::validation(
                "1 validation error detected: Value '[]' at 'filters' failed to satisfy \
                 constraint: Member must have length greater than or equal to 1",
            ))
        }
        Some(list) => list.iter().map(parse_filter).collect::<Result<_, _>>()?,
    };

    let state = shared.lock();
    let association = state
        .associations
        .get(association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let position = match request.next_token.as_deref().filter(|t| !t.is_empty()) {
        None => PageToken {
            association_id: association_id.to_owned(),
            empty_pages: 0,
            after: None,
        },
        Some(token) => PageToken::decode(token)
            .filter(|t| t.association_id == association_id)
            .ok_or_else(|| {
                ApiError::client("InvalidNextToken", "The specified token isn't valid.")
            })?,
    };

    if position.empty_pages < state.empty_pages {
        let next = PageToken {
            empty_pages: position.empty_pages + 1,
            ..position
        };
        return Ok(json!({"AssociationExecutions": [], "NextToken": next.encode()}));
    }

    let limit = state.page_size.map_or(max_results as usize, |cap| {
        cap.clamp(1, max_results as usize)
    });
    let start = match &position.after {
        Some((ms, id)) => Bound::Excluded((Reverse(*ms), id.clone())),
        None => Bound::Unbounded,
    };
    let mut matching = association
        .executions
        .range((start, Bound::Unbounded))
        .map(|(_, e)| e)
        .filter(|e| e.visible && filters.iter().all(|f| f.accepts(e)));
    let page: Vec<&SimExecution> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();

    let items: Vec<Value> = page
        .iter()
        .map(|e| execution_json(association_id, &association.meta, e))
        .collect();
    let mut body = json!({ "AssociationExecutions": items });
    if more {
        if let Some(last) = page.last() {
            let next = PageToken {
                association_id: association_id.to_owned(),
                empty_pages: position.empty_pages,
                after: Some((last.created_ms, last.execution_id.clone())),
            };
            body["NextToken"] = Value::from(next.encode());
        }
    }
    Ok(body)
}

fn alarm_configuration(association: &SimAssociation) -> Option<Value> {
    (!association.alarms.is_empty()).then(|| {
        let alarms: Vec<Value> = association
            .alarms
            .iter()
            .map(|name| json!({ "Name": name }))
            .collect();
        json!({ "IgnorePollAlarmFailure": false, "Alarms": alarms })
    })
}

fn execution_json(association_id: &str, association: &SimAssociation, e: &SimExecution) -> Value {
    let mut item = Map::new();
    item.insert("AssociationId".into(), Value::from(association_id));
    item.insert("AssociationVersion".into(), Value::from("1"));
    item.insert("ExecutionId".into(), Value::from(e.execution_id.as_str()));
    item.insert("Status".into(), Value::from(e.status.as_str()));
    if let Some(detailed) = &e.detailed_status {
        item.insert("DetailedStatus".into(), Value::from(detailed.as_str()));
    }
    item.insert("CreatedTime".into(), timestamp(e.created_ms));
    if let Some(ms) = e.last_execution_ms {
        item.insert("LastExecutionDate".into(), timestamp(ms));
    }
    if let Some(counts) = &e.resource_count_by_status {
        item.insert("ResourceCountByStatus".into(), Value::from(counts.as_str()));
    }
    if let Some(alarms) = alarm_configuration(association) {
        item.insert("AlarmConfiguration".into(), alarms);
    }
    if !e.triggered_alarms.is_empty() {
        let alarms: Vec<Value> = e
            .triggered_alarms
            .iter()
            .map(|(name, state)| json!({ "Name": name, "State": state }))
            .collect();
        item.insert("TriggeredAlarms".into(), Value::from(alarms));
    }
    for field in &e.omit {
        item.remove(*field);
    }
    Value::Object(item)
}

/// Parses `{Failed=2,Success=3}` leniently into counts.
fn parse_resource_counts(text: &str) -> BTreeMap<String, i64> {
    text.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| {
            let (status, count) = pair.split_once('=')?;
            Some((status.trim().to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

fn describe_association(shared: &Shared, request: AssociationRequest) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let state = shared.lock();
    let association = state
        .associations
        .get(association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let meta = &association.meta;

    let first_created = association.executions.values().map(|e| e.created_ms).min();
    let created = first_created.map_or(association.added_ms, |first| {
        first.min(association.added_ms)
    });
    let mut description = Map::new();
    description.insert("AssociationId".into(), Value::from(association_id));
    if let Some(name) = &meta.name {
        description.insert("AssociationName".into(), Value::from(name.as_str()));
    }
    description.insert("Name".into(), Value::from(meta.document_name.as_str()));
    description.insert("DocumentVersion".into(), Value::from("$DEFAULT"));
    if let Some(schedule) = &meta.schedule_expression {
        description.insert("ScheduleExpression".into(), Value::from(schedule.as_str()));
    }
    description.insert("AssociationVersion".into(), Value::from("1"));
    description.insert("Date".into(), timestamp(created));
    if let Some(alarms) = alarm_configuration(meta) {
        description.insert("AlarmConfiguration".into(), alarms);
    }

    let visible = || association.executions.values().filter(|e| e.visible);
    let ran_at = |e: &SimExecution| e.last_execution_ms.unwrap_or(e.created_ms);
    if let Some(last) = visible().map(ran_at).max() {
        description.insert("LastExecutionDate".into(), timestamp(last));
    }
    if let Some(last) = visible()
        .filter(|e| e.status == "Success")
        .map(ran_at)
        .max()
    {
        description.insert("LastSuccessfulExecutionDate".into(), timestamp(last));
    }

    // Newest visible execution drives the overview (executions are stored newest first).
    let mut overview = Map::new();
    match visible().next() {
        None => {
            overview.insert("Status".into(), Value::from("Pending"));
        }
        Some(latest) => {
            let status = match latest.status.as_str() {
                "Success" | "Skipped" => "Success",
                "Failed" | "TimedOut" | "Cancelled" => "Failed",
                _ => "Pending",
            };
            overview.insert("Status".into(), Value::from(status));
            let detailed = latest.detailed_status.as_deref().unwrap_or(&latest.status);
            overview.insert("DetailedStatus".into(), Value::from(detailed));
            let mut counts = latest
                .resource_count_by_status
                .as_deref()
                .map(parse_resource_counts)
                .unwrap_or_default();
            if counts.is_empty() {
                counts.insert(latest.status.clone(), 1);
            }
            overview.insert("AssociationStatusAggregatedCount".into(), json!(counts));
        }
    }
    description.insert("Overview".into(), Value::Object(overview));
    Ok(json!({ "AssociationDescription": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = PageToken {
            association_id: "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f".into(),
            empty_pages: 2,
            after: Some((1_550_505_827_119, "id:with|odd chars".into())),
        };
        let decoded = PageToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded.association_id, token.association_id);
        assert_eq!(decoded.empty_pages, 2);
        assert_eq!(decoded.after, token.after);
        for bad in ["", "zz", "abc", "6869", "é1"] {
            assert!(PageToken::decode(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn formats_filter_times_with_millis() {
        assert_eq!(
            format_filter_time(1_550_505_827_119),
            "2019-02-18T16:03:47.119Z"
        );
        assert_eq!(format_filter_time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid_shaped(&uuid_like(u128::MAX)));
        assert!(is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2F-1a2b3c4d5e6f"));
        assert!(!is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6"));
        assert!(!is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2f1a2b-3c4d5e6f"));
        assert!(!is_uuid_shaped("g f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f"));
        for demo in DEMO_ASSOCIATIONS {
            assert!(is_uuid_shaped(demo.id), "{}", demo.id);
        }
    }

    #[test]
    fn resource_counts_parse_leniently() {
        let counts = parse_resource_counts("{Failed=2, Success=3,bogus,x=y}");
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["Failed"], 2);
        assert_eq!(counts["Success"], 3);
    }

    #[test]
    fn fault_windows() {
        let mut rules = vec![ActiveRule {
            rule: FaultRule::new(Fault::Throttle).skip(1).times(2),
            matched: 0,
        }];
        let fired: Vec<bool> = (0..5)
            .map(|_| pick_fault(&mut rules, "X", None, false).is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
    }
}
