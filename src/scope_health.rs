//! The health of one scope (an account in a region), as its SSM and STS calls show it: every
//! request attempt becomes the exporter's request metrics, the scope's credential health and
//! the AWS clock offset.

use std::sync::{Arc, OnceLock};

use crate::clock::AwsClock;
use crate::metrics::Metrics;
use crate::model::ScopeKey;
use crate::readiness::Readiness;
use crate::ssm::{Attempt, CallObserver, ErrorKind};

/// Turns every request attempt of one scope into the exporter's request metrics, the scope's
/// credential health and the AWS clock offset.
pub struct ScopeHealth {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub clock: Arc<AwsClock>,
    /// The scope's name in logs and readiness (`own credentials/us-east-1`, a role ARN/region).
    pub name: String,
    /// The account and region labels, once the account is known.
    pub key: OnceLock<ScopeKey>,
    /// The region label (known from the start).
    pub region: String,
}

impl ScopeHealth {
    /// The `account_id` and `region` label values (`unknown` until the account is known).
    fn labels(&self) -> [&str; 2] {
        match self.key.get() {
            Some(key) => [key.account_id.as_str(), key.region.as_str()],
            None => ["unknown", self.region.as_str()],
        }
    }
}

impl CallObserver for ScopeHealth {
    fn attempt(&self, attempt: &Attempt<'_>) {
        let m = &self.metrics;
        let [account, region] = self.labels();
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
                    .with_label_values(&[account, region, attempt.operation, "ok"])
                    .inc();
                if self.readiness.credentials_failing(&self.name) {
                    self.readiness.credentials_accepted(&self.name);
                }
                m.credentials_valid
                    .with_label_values(&[account, region])
                    .set(1);
            }
            Err(error) => {
                m.api_requests_total
                    .with_label_values(&[account, region, attempt.operation, &error.code])
                    .inc();
                if error.kind == ErrorKind::Credentials {
                    self.readiness
                        .credentials_rejected(&self.name, &error.code, &error.message);
                    m.credentials_valid
                        .with_label_values(&[account, region])
                        .set(0);
                }
            }
        }
    }
}
