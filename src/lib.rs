//! ssm-association-exporter: a Prometheus exporter for AWS Systems Manager State Manager
//! association executions.
//!
//! [`run`] is the whole daemon: it takes a validated [`config::Config`], an already-bound
//! listener and a shutdown future, polls `DescribeAssociationExecutions` for every configured
//! association in the background and serves the results from memory on `/metrics`.
//!
//! # Layout
//! - `main.rs`: flags, logging, `--config.check`, `--demo`, wiring and exit codes.
//! - [`config`]: YAML types, defaults and validation; errors name file, line, column and key.
//! - [`ssm`]: the only module that touches `aws_sdk_ssm`: client, paging, retries, mapping.
//! - [`tracker`]: per-association watermark, pending and counted executions; pure, no I/O.
//! - [`poller`]: one poll of one association: pages, tracker, metrics.
//! - [`scheduler`]: when to poll what: rate limit, concurrency, spreading, readiness, shutdown.
//! - [`metrics`]: every metric, registered into an injected `prometheus::Registry`.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and the landing page.
//! - [`logging`]: logfmt and JSON log output.
//! - [`simulator`]: a simulated SSM endpoint speaking the real wire protocol (demo, tests).

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod scheduler;
pub mod simulator;
pub mod ssm;
pub mod tracker;

use std::future::Future;
use std::sync::Arc;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::scheduler::{Budget, Readiness, Shared};
use crate::ssm::{ClientSettings, Ssm};

/// Default `--web.telemetry-path`.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// How the daemon is wired, beyond the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub telemetry_path: String,
    pub client: ClientSettings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            client: ClientSettings::default(),
        }
    }
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Runs the exporter until `shutdown` completes: polls in the background, serves HTTP on
/// `listener`, then stops polling, lets in-flight responses finish and returns.
pub async fn run(
    config: Config,
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let registry = Registry::new();
    let metrics = Arc::new(Metrics::register(&registry)?);
    let budget = Arc::new(Budget::new(
        config.api_requests_per_second,
        config.max_concurrent_requests,
        metrics.clone(),
    ));
    let ssm = Ssm::new(&config, &options.client, budget, metrics.clone()).await;
    let readiness = Arc::new(Readiness::new(config.associations.len()));
    let region = ssm
        .region()
        .unwrap_or_else(|| "none (set region: or AWS_REGION)".to_string());
    if ssm.region().is_none() {
        tracing::warn!("no AWS region configured; SSM calls will fail until one is set");
    }
    let summary = format!("{}\neffective region: {region}", config.summary());
    let state = Arc::new(HttpState {
        registry,
        readiness: readiness.clone(),
        landing_page: http::landing_page(&options.telemetry_path, &summary),
        telemetry_path: options.telemetry_path.clone(),
    });

    let stop = CancellationToken::new();
    let mut pollers = JoinSet::new();
    let ids: Vec<String> = config.associations.iter().map(|a| a.id.clone()).collect();
    let shared = Arc::new(Shared {
        ssm,
        metrics,
        readiness: readiness.clone(),
        poll_interval: config.poll_interval,
        initial_lookback: config.initial_lookback,
        late_visibility_window: config.late_visibility_window,
    });
    scheduler::spawn_pollers(&ids, shared, &stop, &mut pollers);
    let server = tokio::spawn(http::serve(listener, state, stop.clone()));
    tracing::info!(
        associations = ids.len(),
        poll_interval = %config::format_duration(config.poll_interval),
        region = %region,
        "exporter started"
    );

    shutdown.await;
    tracing::info!("shutting down");
    readiness.stop();
    stop.cancel();
    while pollers.join_next().await.is_some() {}
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// Wall-clock time, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
