//! The health of one scope (an account in a region), as its SSM and STS calls show it: every
//! request attempt becomes the exporter's request metrics, the scope's credential health and
//! the AWS clock offset.
//!
//! A failure concerns the scope's credentials when AWS rejects the credentials themselves
//! (expired, invalid, unknown, bad signature: [`ErrorKind::Credentials`], whatever the call),
//! or denies a call the scope cannot work without (its listing, STS). Access denied to a call
//! that names one association ([`PER_ASSOCIATION_OPERATIONS`]) concerns that association only:
//! a role or SCP scoped to some associations leaves the others, the credentials and readiness
//! alone (the poll fails, and the association's `access_denied` gauge says why).

use std::sync::{Arc, OnceLock};

use crate::clock::AwsClock;
use crate::metrics::Metrics;
use crate::model::ScopeKey;
use crate::readiness::Readiness;
use crate::ssm::{Attempt, CallObserver, ErrorKind};

/// The calls that name one association: access denied to them is that association's failure
/// (a policy on some association ARNs, an SCP), not the scope's.
pub const PER_ASSOCIATION_OPERATIONS: &[&str] = &[
    "DescribeAssociationExecutions",
    "DescribeAssociationExecutionTargets",
    "ListTagsForResource",
];

/// Whether a failure of `kind` from `operation` says that the scope's credentials do not work:
/// rejected credentials on any call, access denied on any call but a per-association one
/// (`ListAssociations`, STS).
pub fn rejects_credentials(operation: &str, kind: ErrorKind) -> bool {
    match kind {
        ErrorKind::Credentials => true,
        ErrorKind::AccessDenied => !PER_ASSOCIATION_OPERATIONS.contains(&operation),
        _ => false,
    }
}

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
                if rejects_credentials(attempt.operation, error.kind) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Access denied darkens the scope only for the calls it cannot work without; rejected
    /// credentials do whatever the call.
    #[test]
    fn access_denied_concerns_what_the_call_names() {
        for op in PER_ASSOCIATION_OPERATIONS {
            assert!(!rejects_credentials(op, ErrorKind::AccessDenied), "{op}");
            assert!(rejects_credentials(op, ErrorKind::Credentials), "{op}");
        }
        for op in ["ListAssociations", "GetCallerIdentity"] {
            assert!(rejects_credentials(op, ErrorKind::AccessDenied), "{op}");
            assert!(rejects_credentials(op, ErrorKind::Credentials), "{op}");
        }
        for kind in [
            ErrorKind::Throttled,
            ErrorKind::Transient,
            ErrorKind::NotFound,
            ErrorKind::Permanent,
            ErrorKind::ClockSkew,
            ErrorKind::InvalidToken,
        ] {
            assert!(!rejects_credentials("ListAssociations", kind), "{kind:?}");
        }
    }
}
