//! The bottom layer: the only module that touches `aws_sdk_ssm` or knows AWS error codes.
//!
//! It builds the client, reads one page of executions and one association description, retries,
//! and maps every SDK type to the project's own ([`crate::model`]) and every failure to an
//! [`ApiError`] with an [`ErrorKind`].
//!
//! The SDK's own retries are switched off (`max_attempts = 1`): every attempt goes through
//! the process-wide request budget ([`crate::limit::Budget`]) and is reported to a
//! [`CallObserver`] with its result code, so throttling is visible even when a retry succeeds.
//! Throttling, 5xx, timeouts and connection errors are retried here, up to `api_max_attempts`,
//! with exponential backoff and full jitter.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{
    AssociationExecutionFilter, AssociationExecutionFilterKey, AssociationFilterOperatorType,
};
use rand::Rng;

use crate::clock::{now_ms, AwsClock};
use crate::config::{Config, ScopeConfig};
use crate::limit::Budget;
use crate::model::{
    summarize_targets, Execution, ListedAssociation, Status, TargetDetail, TriggeredAlarm,
};

/// Every SSM operation the exporter calls, with the IAM action it needs: what the shipped
/// policies must allow (tests compare them). `ListTagsForResource` is called only for
/// `discovery:` selectors with `tags`. STS `GetCallerIdentity` (the own account's ID) needs no
/// permission; `sts:AssumeRole` is in the exporter's own policy when `accounts:` name roles.
pub const SSM_OPERATIONS: &[&str] = &[
    "ListAssociations",
    "DescribeAssociationExecutions",
    "ListTagsForResource",
    "DescribeAssociationExecutionTargets",
];

/// Page size asked for: the API's maximum.
pub const MAX_RESULTS: i32 = 50;

/// Where the client gets its endpoint and credentials from, beyond the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct ClientSettings {
    /// Endpoint override (as `AWS_ENDPOINT_URL_SSM` would give); `None` uses the standard chain.
    pub endpoint_url: Option<String>,
    /// Use fixed fake credentials (for the simulated endpoint) instead of the credential chain.
    pub fake_credentials: bool,
}

/// What kind of failure an SSM call ended with: what the exporter acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The API asked us to slow down (`ThrottlingException` and its relatives).
    Throttled,
    /// The credentials do not work (expired, invalid, signature rejected, access denied to the
    /// operation the exporter cannot do without).
    Credentials,
    /// The `NextToken` sent is no longer valid (`InvalidNextToken`).
    InvalidToken,
    /// The association does not exist (deleted, or in another account or region).
    NotFound,
    /// Trying again soon may help: 5xx, timeouts, connection errors, unreadable responses.
    Transient,
    /// The request's signature was out of AWS's time window (the host clock is off). The SDK
    /// learns the skew from the rejection's `Date` header, so the next attempt is signed right.
    ClockSkew,
    /// Trying again will not help (validation, access denied to an optional call, ...).
    Permanent,
}

/// A failed SSM call, reduced to what the exporter acts on.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// The AWS error code (`ThrottlingException`, `AssociationDoesNotExist`, ...) or one of our
    /// own stable codes (`Timeout`, `ConnectionError`, `CredentialsError`, `ResponseError`,
    /// `ConstructionFailure`, `InvalidResponse`). Used as a metric label.
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Whether trying again soon may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::ClockSkew
        )
    }
}

/// One request attempt, as reported to the [`CallObserver`].
pub struct Attempt<'a> {
    pub operation: &'static str,
    /// Time spent waiting for the request budget before sending.
    pub waited: Duration,
    /// Time from sending to the response (or error).
    pub elapsed: Duration,
    pub result: Result<(), &'a ApiError>,
}

/// Told about every request attempt (the exporter's request metrics and credential health).
pub trait CallObserver: Send + Sync {
    fn attempt(&self, attempt: &Attempt<'_>);
}

/// One page of `DescribeAssociationExecutions`.
#[derive(Debug, Default)]
pub struct ExecutionPage {
    pub executions: Vec<Execution>,
    pub next_token: Option<String>,
    /// Entries without an ExecutionId or CreatedTime (never seen in practice), skipped.
    pub malformed: usize,
}

/// One page of `DescribeAssociationExecutionTargets`.
#[derive(Debug, Default)]
pub struct TargetPage {
    pub targets: Vec<TargetDetail>,
    pub next_token: Option<String>,
}

/// One page of `ListAssociations`.
#[derive(Debug, Default)]
pub struct AssociationPage {
    pub associations: Vec<ListedAssociation>,
    pub next_token: Option<String>,
    /// Entries without an AssociationId or document name (never seen in practice), skipped.
    pub malformed: usize,
}

/// The SSM client with the exporter's rate limit, retries and request metrics.
#[derive(Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    budget: Arc<Budget>,
    observer: Arc<dyn CallObserver>,
    clock: Arc<AwsClock>,
    max_attempts: u32,
}

/// Reads the `Date` header of every response (errors included) into the [`AwsClock`].
#[derive(Debug)]
struct DateWatcher(Arc<AwsClock>);

impl aws_sdk_ssm::config::Intercept for DateWatcher {
    fn name(&self) -> &'static str {
        "DateWatcher"
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_ssm::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_ssm::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ssm::config::ConfigBag,
    ) -> Result<(), aws_sdk_ssm::error::BoxError> {
        let date = context.response().headers().get("date");
        if let Some(date) = date.and_then(|d| {
            aws_sdk_ssm::primitives::DateTime::from_str(
                d,
                aws_sdk_ssm::primitives::DateTimeFormat::HttpDate,
            )
            .ok()
        }) {
            if let Ok(ms) = date.to_millis() {
                self.0.observe(ms, now_ms());
            }
        }
        Ok(())
    }
}

/// Loads the AWS configuration every scope's client starts from (once per configuration): the
/// standard chain (environment, profile/SSO, web identity, ECS task role, instance metadata),
/// with the config's `region` if set, the exporter's timeouts and no SDK retries.
pub async fn load_base(config: &Config, settings: &ClientSettings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        // Responses are small JSON pages bounded by request_timeout; the stalled-stream
        // monitor would only add a timer and bookkeeping to every call.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(config.request_timeout)
                .build(),
        );
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if settings.fake_credentials {
        loader = loader.test_credentials();
        if config.region.is_none() {
            loader = loader.region(Region::from_static("us-east-1"));
        }
    }
    loader.load().await
}

impl Ssm {
    /// The client of one scope: `base` in `scope`'s region, with the credentials of the role
    /// it names (aws-config's STS provider, refreshed before they expire) or the base ones.
    pub async fn for_scope(
        base: &aws_config::SdkConfig,
        scope: &ScopeConfig,
        max_attempts: u32,
        budget: Arc<Budget>,
        observer: Arc<dyn CallObserver>,
        clock: Arc<AwsClock>,
    ) -> Ssm {
        let region = scope
            .region
            .clone()
            .map(Region::new)
            .or_else(|| base.region().cloned());
        let mut ssm_config =
            aws_sdk_ssm::config::Builder::from(base).interceptor(DateWatcher(clock.clone()));
        ssm_config.set_region(region.clone());
        // Only scopes on the base credentials ask STS who they are (a role's account is in its
        // ARN), so the STS client keeps the base credentials.
        let mut sts_config = aws_sdk_sts::config::Builder::from(base);
        sts_config.set_region(region.clone());
        if let Some(role) = &scope.role_arn {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
                .session_name("ssm-association-exporter")
                .configure(base);
            if let Some(region) = region.clone() {
                provider = provider.region(region);
            }
            if let Some(external_id) = &scope.external_id {
                provider = provider.external_id(external_id.clone());
            }
            ssm_config = ssm_config.credentials_provider(provider.build().await);
        }
        Ssm {
            client: aws_sdk_ssm::Client::from_conf(ssm_config.build()),
            sts: aws_sdk_sts::Client::from_conf(sts_config.build()),
            clock,
            budget,
            observer,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The region the client ended up with, for the landing page and logs.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    /// AWS's clock, as the responses' `Date` headers show it.
    pub fn clock(&self) -> &AwsClock {
        &self.clock
    }

    /// Reads one page of executions created after `since_ms`. `first_sent` is set to the time
    /// the first attempt went out, if it is still `None`.
    pub async fn execution_page(
        &self,
        association_id: &str,
        since_ms: i64,
        next_token: Option<String>,
        first_sent: &mut Option<Instant>,
    ) -> Result<ExecutionPage, ApiError> {
        let filter = build_filter(
            AssociationExecutionFilterKey::CreatedTime,
            format_filter_time(since_ms),
            AssociationFilterOperatorType::GreaterThan,
        )?;
        self.executions(association_id, filter, next_token, first_sent)
            .await
    }

    /// Reads one execution by its ID (an `ExecutionId EQUAL` filter): the re-check of an
    /// execution that stayed pending after the query window moved past it.
    pub async fn execution_by_id(
        &self,
        association_id: &str,
        execution_id: &str,
        first_sent: &mut Option<Instant>,
    ) -> Result<Option<Execution>, ApiError> {
        let filter = build_filter(
            AssociationExecutionFilterKey::ExecutionId,
            execution_id.to_string(),
            AssociationFilterOperatorType::Equal,
        )?;
        let page = self
            .executions(association_id, filter, None, first_sent)
            .await?;
        Ok(page.executions.into_iter().find(|e| e.id == execution_id))
    }

    async fn executions(
        &self,
        association_id: &str,
        filter: AssociationExecutionFilter,
        next_token: Option<String>,
        first_sent: &mut Option<Instant>,
    ) -> Result<ExecutionPage, ApiError> {
        let output = self
            .call("DescribeAssociationExecutions", first_sent, || {
                self.client
                    .describe_association_executions()
                    .association_id(association_id)
                    .filters(filter.clone())
                    .max_results(MAX_RESULTS)
                    .set_next_token(next_token.clone())
                    .send()
            })
            .await?;
        let mut page = ExecutionPage {
            next_token: output.next_token().map(str::to_string),
            ..ExecutionPage::default()
        };
        for e in output.association_executions() {
            let (Some(id), Some(created)) = (e.execution_id(), e.created_time()) else {
                page.malformed += 1;
                continue;
            };
            page.executions.push(Execution {
                id: id.to_string(),
                status: Status::parse(e.status().unwrap_or_default()),
                created_ms: round_to_millis(created),
                ended_ms: e.last_execution_date().map(round_to_millis),
                resource_counts: e.resource_count_by_status().map(str::to_string),
                triggered_alarms: e
                    .triggered_alarms()
                    .iter()
                    .map(|a| TriggeredAlarm {
                        name: a.name().to_string(),
                        state: a.state().as_str().to_string(),
                    })
                    .collect(),
            });
        }
        Ok(page)
    }

    /// Reads one page (50) of `ListAssociations`: every association of the scope.
    pub async fn association_page(
        &self,
        next_token: Option<String>,
    ) -> Result<AssociationPage, ApiError> {
        let output = self
            .call("ListAssociations", &mut None, || {
                self.client
                    .list_associations()
                    .max_results(MAX_RESULTS)
                    .set_next_token(next_token.clone())
                    .send()
            })
            .await?;
        let mut page = AssociationPage {
            next_token: output.next_token().map(str::to_string),
            ..AssociationPage::default()
        };
        for a in output.associations() {
            let (Some(id), Some(document)) = (a.association_id(), a.name()) else {
                page.malformed += 1;
                continue;
            };
            let overview = a.overview().map_or(String::new(), |o| {
                let mut counts: Vec<String> = o
                    .association_status_aggregated_count()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                counts.sort();
                format!(
                    "{}/{}/{}",
                    o.status().unwrap_or_default(),
                    o.detailed_status().unwrap_or_default(),
                    counts.join(",")
                )
            });
            page.associations.push(ListedAssociation {
                id: id.to_ascii_lowercase(),
                name: a.association_name().map(str::to_string),
                document_name: document.to_string(),
                document_version: a.document_version().map(str::to_string),
                association_version: a.association_version().map(str::to_string),
                schedule_expression: a.schedule_expression().map(str::to_string),
                targets: summarize_targets(a.targets().iter().map(|t| {
                    (
                        t.key().unwrap_or_default(),
                        t.values().iter().map(String::as_str).collect(),
                    )
                })),
                last_execution_ms: a.last_execution_date().map(round_to_millis),
                overview,
            });
        }
        Ok(page)
    }

    /// One page of the targets of an execution in target status `status` (a `Status` filter;
    /// `DescribeAssociationExecutionTargets`), `max_results` (1-50) at most.
    pub async fn execution_targets(
        &self,
        association_id: &str,
        execution_id: &str,
        status: &str,
        max_results: i32,
        next_token: Option<String>,
    ) -> Result<TargetPage, ApiError> {
        let filter = aws_sdk_ssm::types::AssociationExecutionTargetsFilter::builder()
            .key(aws_sdk_ssm::types::AssociationExecutionTargetsFilterKey::Status)
            .value(status)
            .build()
            .map_err(|e| ApiError {
                kind: ErrorKind::Permanent,
                code: "ConstructionFailure".into(),
                message: e.to_string(),
            })?;
        let output = self
            .call("DescribeAssociationExecutionTargets", &mut None, || {
                self.client
                    .describe_association_execution_targets()
                    .association_id(association_id)
                    .execution_id(execution_id)
                    .filters(filter.clone())
                    .max_results(max_results.clamp(1, MAX_RESULTS))
                    .set_next_token(next_token.clone())
                    .send()
            })
            .await?;
        Ok(TargetPage {
            next_token: output.next_token().map(str::to_string),
            targets: output
                .association_execution_targets()
                .iter()
                .map(|t| {
                    let source = t.output_source();
                    TargetDetail {
                        resource_id: t.resource_id().unwrap_or_default().to_string(),
                        resource_type: t.resource_type().unwrap_or_default().to_string(),
                        status: t.status().unwrap_or_default().to_string(),
                        detailed_status: t.detailed_status().unwrap_or_default().to_string(),
                        output_source_type: source
                            .and_then(|s| s.output_source_type())
                            .unwrap_or_default()
                            .to_string(),
                        output_source_id: source
                            .and_then(|s| s.output_source_id())
                            .unwrap_or_default()
                            .to_string(),
                    }
                })
                .collect(),
        })
    }

    /// The tags of an association (`ListTagsForResource`).
    pub async fn association_tags(
        &self,
        association_id: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let output = self
            .call("ListTagsForResource", &mut None, || {
                self.client
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Association)
                    .resource_id(association_id)
                    .send()
            })
            .await?;
        Ok(output
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// The account ID of the scope's credentials (STS `GetCallerIdentity`, which needs no
    /// permission). Not on the SSM request budget.
    pub async fn caller_account(&self) -> Result<String, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = self.sts.get_caller_identity().send().await;
            let elapsed = started.elapsed();
            let error = match result {
                Ok(output) => {
                    self.observer.attempt(&Attempt {
                        operation: "GetCallerIdentity",
                        waited: Duration::ZERO,
                        elapsed,
                        result: Ok(()),
                    });
                    return output
                        .account()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError {
                            kind: ErrorKind::Transient,
                            code: "InvalidResponse".into(),
                            message: "GetCallerIdentity returned no Account".into(),
                        });
                }
                Err(e) => map_error("GetCallerIdentity", &e),
            };
            self.observer.attempt(&Attempt {
                operation: "GetCallerIdentity",
                waited: Duration::ZERO,
                elapsed,
                result: Err(&error),
            });
            if !error.retryable() || attempt >= self.max_attempts {
                return Err(error);
            }
            tokio::time::sleep(backoff(attempt, error.kind == ErrorKind::Throttled)).await;
        }
    }

    /// Runs one SSM operation with the rate limit, concurrency cap, metrics and retries.
    async fn call<T, E, F, Fut>(
        &self,
        operation: &'static str,
        first_sent: &mut Option<Instant>,
        mut send: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
            Output = Result<T, SdkError<E, aws_sdk_ssm::config::http::HttpResponse>>,
        >,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slot = self.budget.acquire().await;
            first_sent.get_or_insert_with(Instant::now);
            let started = Instant::now();
            let result = send().await;
            let waited = slot.waited;
            drop(slot);
            let elapsed = started.elapsed();
            let error = match result {
                Ok(output) => {
                    self.observer.attempt(&Attempt {
                        operation,
                        waited,
                        elapsed,
                        result: Ok(()),
                    });
                    return Ok(output);
                }
                Err(e) => map_error(operation, &e),
            };
            self.observer.attempt(&Attempt {
                operation,
                waited,
                elapsed,
                result: Err(&error),
            });
            if !error.retryable() || attempt >= self.max_attempts {
                return Err(error);
            }
            tracing::debug!(operation, code = %error.code, attempt, "retrying SSM request");
            tokio::time::sleep(backoff(attempt, error.kind == ErrorKind::Throttled)).await;
        }
    }
}

/// Exponential backoff with full jitter: throttling starts at 1 s, other errors at 100 ms; the
/// ceiling is 20 s, as in the SDK's standard retry mode.
fn backoff(attempt: u32, throttled: bool) -> Duration {
    let base_ms: u64 = if throttled { 1_000 } else { 100 };
    let ceiling = base_ms.saturating_mul(1 << attempt.min(10)).min(20_000);
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
}

/// A signature outside AWS's time window ("Signature expired: ... is now earlier than ...",
/// "Signature not yet current: ...") or the codes some services use for it.
fn is_clock_skew(code: &str, message: &str) -> bool {
    code == "RequestTimeTooSkewed"
        || (matches!(code, "InvalidSignatureException" | "SignatureDoesNotMatch")
            && (message.contains("Signature expired") || message.contains("not yet current")))
}

fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
    )
}

fn build_filter(
    key: AssociationExecutionFilterKey,
    value: String,
    operator: AssociationFilterOperatorType,
) -> Result<AssociationExecutionFilter, ApiError> {
    AssociationExecutionFilter::builder()
        .key(key)
        .value(value)
        .r#type(operator)
        .build()
        .map_err(|e| ApiError {
            kind: ErrorKind::Permanent,
            code: "ConstructionFailure".into(),
            message: e.to_string(),
        })
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

/// The kind of an AWS error `code` (HTTP `status`) from `operation`. Access denied counts as a
/// credentials failure for the operations the exporter cannot do without; for
/// ListTagsForResource it only loses tag selection.
fn kind_of(operation: &str, code: &str, message: &str, status: u16) -> ErrorKind {
    if is_clock_skew(code, message) {
        ErrorKind::ClockSkew
    } else if is_throttle(code) {
        ErrorKind::Throttled
    } else if CREDENTIAL_CODES.contains(&code)
        || (matches!(
            operation,
            "DescribeAssociationExecutions" | "ListAssociations" | "GetCallerIdentity"
        ) && matches!(code, "AccessDeniedException" | "AccessDenied"))
    {
        ErrorKind::Credentials
    } else if code == "InvalidNextToken" {
        ErrorKind::InvalidToken
    } else if code == "AssociationDoesNotExist" {
        ErrorKind::NotFound
    } else if status >= 500
        || matches!(
            code,
            "InternalServerError" | "ServiceUnavailable" | "InternalFailure"
        )
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    }
}

/// Reduces an SDK error to a stable code (a metric label) and a kind.
fn map_error<E>(
    operation: &str,
    error: &SdkError<E, aws_sdk_ssm::config::http::HttpResponse>,
) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = error_chain(error);
    let (code, kind) = match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let kind = kind_of(operation, &code, &message, status);
            (code, kind)
        }
        SdkError::TimeoutError(_) => ("Timeout".to_string(), ErrorKind::Transient),
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                ("Timeout".to_string(), ErrorKind::Transient)
            } else if message.to_ascii_lowercase().contains("credential") {
                // The credential provider failed (expired SSO session, no role, ...).
                ("CredentialsError".to_string(), ErrorKind::Credentials)
            } else if failure.is_user() {
                ("DispatchFailure".to_string(), ErrorKind::Permanent)
            } else {
                // I/O errors and connections closed before a response (resets).
                ("ConnectionError".to_string(), ErrorKind::Transient)
            }
        }
        SdkError::ResponseError(_) => ("ResponseError".to_string(), ErrorKind::Transient),
        SdkError::ConstructionFailure(_) => {
            ("ConstructionFailure".to_string(), ErrorKind::Permanent)
        }
        _ => ("Unknown".to_string(), ErrorKind::Transient),
    };
    ApiError {
        kind,
        code,
        message,
    }
}

/// The error and its sources on one line (the SDK's top-level message alone is often just
/// "dispatch failure").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The SDK parses timestamps through an `f64`, so `1550505827.119` can arrive as
/// `...118999958` ns: round to the nearest millisecond.
pub fn round_to_millis(t: &aws_sdk_ssm::primitives::DateTime) -> i64 {
    let nanos = t.as_nanos();
    (nanos + 500_000).div_euclid(1_000_000) as i64
}

/// Formats epoch milliseconds as the filter value SSM documents: `2026-11-26T07:00:00.123Z`.
pub fn format_filter_time(ms: i64) -> String {
    // Clamped to years 1970-9999: never an error, never a fall-back to 1970 for a far date.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis
        ),
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::primitives::DateTime;

    #[test]
    fn filter_time_never_falls_back_to_1970_for_a_far_date() {
        assert_eq!(format_filter_time(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_filter_time(4_102_444_800_000),
            "2100-01-01T00:00:00.000Z"
        );
        assert_eq!(format_filter_time(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn filter_time_has_exactly_three_fraction_digits() {
        assert_eq!(format_filter_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_filter_time(1_550_505_827_119),
            "2019-02-18T16:03:47.119Z"
        );
        assert_eq!(
            format_filter_time(1_795_676_400_005),
            "2026-11-26T07:00:00.005Z"
        );
    }

    #[test]
    fn created_time_read_through_f64_rounds_to_the_right_millisecond() {
        // What the SDK's JSON parser does with 1550505827.119.
        let t = DateTime::from_secs_f64(1_550_505_827.119);
        assert_eq!(round_to_millis(&t), 1_550_505_827_119);
        for ms in [
            1_795_676_400_001i64,
            1_795_676_400_999,
            1_700_000_000_000,
            1_234_567_890_123,
        ] {
            let t = DateTime::from_secs_f64(ms as f64 / 1000.0);
            assert_eq!(round_to_millis(&t), ms);
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt, true);
            assert!(d <= Duration::from_secs(20));
            assert!(d >= Duration::from_millis(1_000));
        }
        assert!(backoff(1, false) <= Duration::from_millis(200));
    }

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            (
                "DescribeAssociationExecutions",
                "ThrottlingException",
                400,
                ErrorKind::Throttled,
            ),
            (
                "DescribeAssociationExecutions",
                "ExpiredToken",
                400,
                ErrorKind::Credentials,
            ),
            (
                "DescribeAssociationExecutions",
                "AccessDeniedException",
                400,
                ErrorKind::Credentials,
            ),
            (
                "ListTagsForResource",
                "AccessDeniedException",
                400,
                ErrorKind::Permanent,
            ),
            (
                "ListAssociations",
                "AccessDeniedException",
                400,
                ErrorKind::Credentials,
            ),
            (
                "DescribeAssociationExecutions",
                "InvalidNextToken",
                400,
                ErrorKind::InvalidToken,
            ),
            (
                "DescribeAssociationExecutions",
                "AssociationDoesNotExist",
                400,
                ErrorKind::NotFound,
            ),
            (
                "DescribeAssociationExecutions",
                "InternalServerError",
                500,
                ErrorKind::Transient,
            ),
            (
                "DescribeAssociationExecutions",
                "HTTP503",
                503,
                ErrorKind::Transient,
            ),
            (
                "DescribeAssociationExecutions",
                "ValidationException",
                400,
                ErrorKind::Permanent,
            ),
        ];
        let skew = "Signature expired: 20261127T100000Z is now earlier than 20261127T100500Z";
        assert_eq!(
            kind_of(
                "DescribeAssociationExecutions",
                "InvalidSignatureException",
                skew,
                400
            ),
            ErrorKind::ClockSkew
        );
        for (operation, code, status, kind) in cases {
            assert_eq!(
                kind_of(operation, code, "", status),
                kind,
                "{operation} {code}"
            );
        }
    }
}
