//! The simulator's integration tests, as one test binary: through the real `aws-sdk-ssm`
//! client (and raw HTTP for the wire details the SDK hides), the real `aws-sdk-sqs` client for
//! the queues, and the `ssm-simulator` binary.

mod api;
mod binary;
mod estate;
mod misbehaviour;
mod sqs;
mod sts;
mod targets;
