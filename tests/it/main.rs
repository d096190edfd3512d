//! The integration tests, as one test binary (one link of `aws-sdk-ssm` instead of one per
//! file). Each module is one area; `common` holds the shared harness.

#[allow(dead_code)]
mod common;

mod bad_input;
mod cli;
mod config;
mod deploy;
mod docs;
mod e2e_prometheus;
mod estate;
mod events;
mod exactness;
mod exporter;
mod golden;
mod listing;
mod long_runs;
mod priorities;
mod resilience;
mod security;
mod shards;
mod status_page;
mod sweep;
mod tags;
mod targets;
mod web_config;
