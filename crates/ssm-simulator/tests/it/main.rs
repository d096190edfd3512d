//! The simulator's integration tests, as one test binary: through the real `aws-sdk-ssm`
//! client (and raw HTTP for the wire details the SDK hides), and the `ssm-simulator` binary.

mod api;
mod binary;
mod estate;
mod misbehaviour;
mod sts;
mod targets;
