//! The SSM and STS clients of one scope: AWS configuration, endpoint, credentials (AssumeRole),
//! the `Date` header watcher, and the one path every request attempt takes (request budget,
//! observer, retries with backoff).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use rand::Rng;

use super::error::{map_error, ApiError, ErrorKind};
use crate::clock::{now_ms, AwsClock};
use crate::config::{Config, RoleArn, ScopeConfig};
use crate::limit::{Budget, Priority};

/// Where the client gets its endpoint and credentials from, beyond the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct ClientSettings {
    /// Endpoint override (as `AWS_ENDPOINT_URL_SSM` would give); `None` uses the standard chain.
    pub endpoint_url: Option<String>,
    /// Use fixed fake credentials (for the simulated endpoint) instead of the credential chain.
    pub fake_credentials: bool,
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

/// The SSM client with the exporter's rate limit, retries and request metrics.
#[derive(Clone)]
pub struct Ssm {
    pub(super) client: aws_sdk_ssm::Client,
    pub(super) sts: aws_sdk_sts::Client,
    pub(super) budget: Arc<Budget>,
    /// The priority of this client's requests on the budget ([`Ssm::detail`]).
    priority: Priority,
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

/// The credentials of `role`, assumed with `base`'s (aws-config's STS provider, refreshed before
/// they expire), with `external_id` if set: what every client reading on behalf of a role uses
/// (a scope's SSM client, an `events:` queue's SQS client).
pub async fn assume_role(
    base: &aws_config::SdkConfig,
    role: &RoleArn,
    external_id: Option<&str>,
    region: Option<Region>,
) -> aws_config::sts::AssumeRoleProvider {
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
        .session_name("ssm-association-exporter")
        .configure(base);
    if let Some(region) = region {
        provider = provider.region(region);
    }
    if let Some(external_id) = external_id {
        provider = provider.external_id(external_id.to_owned());
    }
    provider.build().await
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
            let provider =
                assume_role(base, role, scope.external_id.as_deref(), region.clone()).await;
            ssm_config = ssm_config.credentials_provider(provider);
        }
        Ssm {
            client: aws_sdk_ssm::Client::from_conf(ssm_config.build()),
            sts: aws_sdk_sts::Client::from_conf(sts_config.build()),
            clock,
            budget,
            priority: Priority::Count,
            observer,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The region the client ended up with, for the landing page and logs.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    /// The same client for optional work (per-target detail): its requests take only the
    /// budget that count requests leave over ([`Priority::Detail`]).
    pub fn detail(&self) -> Ssm {
        Ssm {
            priority: Priority::Detail,
            ..self.clone()
        }
    }

    /// AWS's clock, as the responses' `Date` headers show it.
    pub fn clock(&self) -> &AwsClock {
        &self.clock
    }

    /// Runs one operation with the rate limit and concurrency cap of `budget` (SSM calls;
    /// `None` for STS, which is not on the SSM request budget), metrics and retries: the one
    /// path of every request. Each attempt is reported to the observer; a retryable failure
    /// is tried again, up to `max_attempts`, after [`backoff`]. `first_sent` is set when the
    /// first attempt goes out, if it is still `None`.
    pub(super) async fn call<T, E, F, Fut>(
        &self,
        operation: &'static str,
        budget: Option<&Budget>,
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
            let slot = match budget {
                Some(budget) => Some(budget.acquire(self.priority).await),
                None => None,
            };
            first_sent.get_or_insert_with(Instant::now);
            let started = Instant::now();
            let result = send().await;
            let waited = slot.map_or(Duration::ZERO, |slot| slot.waited);
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
                Err(e) => map_error(&e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt, true);
            assert!(d <= Duration::from_secs(20));
            assert!(d >= Duration::from_millis(1_000));
        }
        assert!(backoff(1, false) <= Duration::from_millis(200));
    }
}
