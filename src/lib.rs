//! ssm-association-exporter: a Prometheus exporter for AWS Systems Manager State Manager
//! association executions.
//!
//! [`run`] is the whole daemon: it takes a validated [`config::Config`], an already-bound
//! listener and a shutdown future; in the background it lists the associations of every
//! configured account and region (`ListAssociations`), selects those to watch, polls
//! `DescribeAssociationExecutions` for those whose listing changed, and serves the results
//! from memory on `/metrics`.
//!
//! # Layout
//! Each module uses only modules listed below it (checked by `scripts/check-module-cycles`).
//! - `main.rs`: flags, logging, `--config.check`, `--demo`, `--healthcheck`, exit codes.
//! - [`healthcheck`]: the `--healthcheck` client (the image has no shell or curl).
//! - `lib.rs`: these docs and [`run`].
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, `/-/reload`, the status page and its JSON.
//! - [`daemon`]: the running configuration: one loop per account and region, state-file writer,
//!   restore, reload.
//! - [`scheduler`]: one account and region: its listing every interval, selection, polls,
//!   backoff.
//! - [`scope_health`]: one account and region's SSM call observer: request metrics,
//!   credentials, the AWS clock offset.
//! - [`discovery`]: what to watch: static IDs and `discovery:` selectors against a listing.
//! - [`feed`]: the change feed: whether a listed association needs a poll now, and why.
//! - [`events`]: SQS intake of State Manager events: each schedules a poll, never a count.
//! - [`poller`]: one poll of one association: pages, tracker, numbers.
//! - [`status`]: the status page (`/`) and `/api/v1/associations[/{id}]`, rendered from a
//!   snapshot of the published numbers; `status::urls`: every AWS console link (the poller's too).
//! - [`persist`]: the state file: its versioned on-disk format keyed by names, the save loop.
//! - [`exposition`]: the `/metrics` text: the per-association families.
//! - [`metrics`]: the exporter's own metrics, registered into an injected registry.
//! - [`readiness`]: ready or not: the current associations' first polls, credentials.
//! - [`store`]: per-association numbers, live and published.
//! - [`tracker`]: the counting rules: watermark, pending and counted executions; pure.
//! - [`ssm`]: the bottom layer: the only module that touches the AWS SDK or AWS error codes.
//! - [`limit`]: the rate limit and concurrency cap of one account and region.
//! - [`schedule`]: SSM schedule expressions (`rate(...)`, `cron(...)`) to the expected gap between runs.
//! - [`shard`]: which associations this shard owns (jump consistent hash).
//! - [`names`]: every metric name, used by `exposition`, `metrics`, `status` and the tests.
//! - [`model`]: the project's own types: statuses, executions, alarms, association info.
//! - [`config`], [`web_config`]: the two configuration files, strict, defaults in one place.
//! - [`yaml`]: strict YAML parsing with one located-error format (`file:line:column: key: ...`).
//! - [`logging`]: logfmt and JSON log output.
//! - [`clock`], [`sync`]: time and poison-tolerant locking.
//!
//! The simulated SSM endpoint (`--demo`, tests) is its own crate, `crates/ssm-simulator`.

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod events;
pub mod exposition;
pub mod feed;
pub mod healthcheck;
pub mod http;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod names;
pub mod persist;
pub mod poller;
pub mod readiness;
pub mod schedule;
pub mod scheduler;
pub mod scope_health;
pub mod shard;
pub mod ssm;
pub mod status;
pub mod store;
pub mod sync;
pub mod tracker;
pub mod web_config;
pub mod yaml;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::clock::now_ms;
use crate::config::Config;
pub use crate::daemon::ConfigSource;
use crate::daemon::Daemon;
use crate::exposition::Shape;
use crate::http::{HttpSettings, HttpState, ReloadRequest};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::ssm::ClientSettings;
use crate::store::Store;

/// Default `--web.telemetry-path`.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// How the daemon is wired, beyond the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub telemetry_path: String,
    pub client: ClientSettings,
    /// Where `SIGHUP` and `POST /-/reload` re-read the configuration from; `None` disables
    /// reloading.
    pub config_source: Option<ConfigSource>,
    /// `--web.enable-lifecycle`: `POST /-/reload` reloads; without it, it answers 403 (as
    /// Prometheus does) and only SIGHUP reloads.
    pub enable_lifecycle: bool,
    /// Most HTTP connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// TLS and basic auth (`--web.config.file`).
    pub web: Arc<web_config::WebConfig>,
    /// `--shard`, `--total-shards`: which associations this process owns.
    pub shard: shard::Shard,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            client: ClientSettings::default(),
            config_source: None,
            enable_lifecycle: false,
            max_connections: http::DEFAULT_MAX_CONNECTIONS,
            web: Arc::new(web_config::WebConfig::plain()),
            shard: shard::Shard::default(),
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
/// `listener`, reloads on `SIGHUP` and (with [`Options::enable_lifecycle`]) `POST /-/reload`,
/// one reload for every request waiting when it starts; then stops polling, saves the state,
/// lets in-flight responses finish and returns.
pub async fn run(
    config: Config,
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let registry = Registry::new();
    let metrics = Arc::new(Metrics::register(&registry)?);
    // Every poll reason from 0, so that `increase()` sees the first poll of each.
    for reason in feed::Reason::ALL {
        metrics.polls_total.with_label_values(&[reason.name()]);
    }
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp_seconds
        .set(now_ms() as f64 / 1000.0);
    let store = Arc::new(Store::default());
    let readiness = Arc::new(Readiness::new());
    let events_board = Arc::new(events::Board::default());

    // Roomy, so that a burst of requests waits in the queue (and shares one reload) rather
    // than in the HTTP handlers.
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(64);
    metrics.shard_ordinal.set(i64::from(options.shard.index));
    metrics.total_shards.set(i64::from(options.shard.total));
    let mut daemon = Daemon::start(
        config,
        options.shard,
        options.client.clone(),
        store.clone(),
        metrics.clone(),
        readiness.clone(),
        events_board.clone(),
    )
    .await;
    let state = Arc::new(
        HttpState::new(
            registry,
            store.clone(),
            readiness.clone(),
            HttpSettings {
                telemetry_path: options.telemetry_path.clone(),
                max_connections: options.max_connections,
                web: options.web.clone(),
                enable_lifecycle: options.enable_lifecycle,
            },
            Shape::of(daemon.config()),
            &daemon.summary(),
            options.config_source.as_ref().map(|_| reload_tx),
        )
        .with_events(events_board),
    );
    let stop_http = CancellationToken::new();
    let server = tokio::spawn(http::serve(listener, state.clone(), stop_http.clone()));
    tracing::info!(
        associations = daemon.config().associations.len(),
        selectors = daemon.config().discovery.len(),
        poll_interval = %config::format_duration(daemon.config().poll_interval),
        scopes = %daemon.scopes().join(","),
        "exporter started"
    );

    let mut reloads = ReloadQueue::new(reload_rx, hangup_signals());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            batch = reloads.next() => {
                if batch.hangups > 0 {
                    tracing::info!("received SIGHUP; reloading the configuration");
                }
                if batch.replies.len() > 1 {
                    tracing::debug!(requests = batch.replies.len(), "one reload answers every waiting POST /-/reload");
                }
                let result = daemon.reload(options.config_source.as_ref()).await;
                if let Ok(reloaded) = &result {
                    if reloaded.restarted {
                        state.reconfigure(Shape::of(daemon.config()), &daemon.summary());
                        reloads.hold_off();
                    }
                }
                // The reload metrics moved, whatever the outcome.
                state.invalidate();
                let answer = result.map(|r| r.message).map_err(|e| e.to_string());
                for reply in batch.replies {
                    let _ = reply.send(answer.clone());
                }
            }
        }
    }
    tracing::info!("shutting down");
    readiness.stop();
    daemon.stop().await;
    stop_http.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// After a reload that restarted the pollers, the next reload waits this long (its requests
/// queue and are then answered together): whatever the rate of reloads, and even when the file
/// changes between them, the pollers run at least this long between two restarts.
pub const RESTART_HOLD_OFF: Duration = Duration::from_secs(1);

/// What asks for a reload: `POST /-/reload` (answered) and SIGHUP.
struct ReloadQueue {
    requests: mpsc::Receiver<ReloadRequest>,
    hangups: mpsc::Receiver<()>,
    /// No reload starts before this ([`RESTART_HOLD_OFF`] after the last restart).
    not_before: Instant,
}

/// The triggers one reload answers.
#[derive(Default)]
struct ReloadBatch {
    replies: Vec<ReloadRequest>,
    hangups: usize,
}

impl ReloadQueue {
    fn new(requests: mpsc::Receiver<ReloadRequest>, hangups: mpsc::Receiver<()>) -> ReloadQueue {
        ReloadQueue {
            requests,
            hangups,
            not_before: Instant::now(),
        }
    }

    /// Waits for a trigger and for the end of any hold-off, then takes every trigger waiting:
    /// they all arrived before the reload starts reading the file, so its one result answers
    /// them all. A trigger that arrives once the reload has started waits for the next one.
    async fn next(&mut self) -> ReloadBatch {
        let mut batch = ReloadBatch::default();
        tokio::select! {
            Some(reply) = self.requests.recv() => batch.replies.push(reply),
            Some(()) = self.hangups.recv() => batch.hangups += 1,
            else => std::future::pending::<()>().await,
        }
        tokio::time::sleep_until(self.not_before).await;
        while let Ok(reply) = self.requests.try_recv() {
            batch.replies.push(reply);
        }
        while self.hangups.try_recv().is_ok() {
            batch.hangups += 1;
        }
        batch
    }

    /// The pollers were just restarted: the next reload waits for [`RESTART_HOLD_OFF`].
    fn hold_off(&mut self) {
        self.not_before = Instant::now() + RESTART_HOLD_OFF;
    }
}

/// SIGHUP as a channel (never fires where there is no SIGHUP).
fn hangup_signals() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    if tx.send(()).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn queue() -> (ReloadQueue, mpsc::Sender<ReloadRequest>, mpsc::Sender<()>) {
        let (requests, rx) = mpsc::channel(64);
        let (hangups, hangup_rx) = mpsc::channel(4);
        (ReloadQueue::new(rx, hangup_rx), requests, hangups)
    }

    async fn request(
        requests: &mpsc::Sender<ReloadRequest>,
    ) -> oneshot::Receiver<Result<String, String>> {
        let (reply, answer) = oneshot::channel();
        requests.send(reply).await.unwrap();
        answer
    }

    /// Requests and SIGHUPs waiting when a reload starts are all its own: ten POSTs and two
    /// signals make one batch, at once; then nothing is left.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_triggers_makes_one_reload() {
        let (mut queue, requests, hangups) = queue();
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(request(&requests).await);
        }
        hangups.send(()).await.unwrap();
        hangups.send(()).await.unwrap();
        let start = Instant::now();
        let batch = queue.next().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no hold-off before any restart"
        );
        assert_eq!((batch.replies.len(), batch.hangups), (10, 2));
        for reply in batch.replies {
            reply.send(Ok("one".into())).unwrap();
        }
        for answer in answers {
            assert_eq!(answer.await.unwrap(), Ok("one".to_string()));
        }
        let idle = tokio::time::timeout(Duration::from_secs(3600), queue.next()).await;
        assert!(idle.is_err(), "no trigger left");
    }

    /// After a restart the next reload starts RESTART_HOLD_OFF later, not sooner, and takes
    /// every request that came in the meantime: however fast the requests come, the pollers
    /// run that long between restarts.
    #[tokio::test(start_paused = true)]
    async fn after_a_restart_the_next_reload_waits_the_hold_off_and_takes_what_came_meanwhile() {
        let (mut queue, requests, _hangups) = queue();
        queue.hold_off();
        let start = Instant::now();
        let _first = request(&requests).await;
        let later = requests.clone();
        let sender = tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..5 {
                tokio::time::sleep(RESTART_HOLD_OFF / 10).await;
                answers.push(request(&later).await);
            }
            answers
        });
        let batch = queue.next().await;
        assert_eq!(start.elapsed(), RESTART_HOLD_OFF);
        let _answers = sender.await.unwrap();
        assert_eq!(
            batch.replies.len(),
            6,
            "the first and the five that came during the hold-off"
        );
        // Without a new restart, the one after goes at once.
        let _next = request(&requests).await;
        let start = Instant::now();
        assert_eq!(queue.next().await.replies.len(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
