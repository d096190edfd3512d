//! The bottom layer: the only module that touches `aws_sdk_ssm` or knows AWS error codes
//! (`events::sqs` maps its SQS errors with [`map_error`] and reads with [`assume_role`]).
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

mod client;
mod error;
mod operations;

pub use client::{assume_role, load_base, Attempt, CallObserver, ClientSettings, Ssm};
pub use error::{map_error, ApiError, ErrorKind};
pub use operations::{
    format_filter_time, round_to_millis, AssociationPage, ExecutionPage, TargetPage, MAX_RESULTS,
    SSM_OPERATIONS,
};
