//! ssm-association-exporter: a Prometheus exporter for AWS Systems Manager State Manager
//! association executions.
//!
//! [`run`] is the whole daemon: it takes a validated [`config::Config`], an already-bound
//! listener and a shutdown future, polls `DescribeAssociationExecutions` for every configured
//! association in the background and serves the results from memory on `/metrics`.
//!
//! # Layout
//! - `main.rs`: flags, logging, `--config.check`, `--demo`, `--healthcheck`, exit codes.
//! - [`config`]: YAML types, defaults and validation; errors name file, line, column and key.
//! - [`ssm`]: the only module that touches `aws_sdk_ssm`: client, paging, retries, mapping.
//! - [`tracker`]: per-association watermark, pending and counted executions; pure, no I/O.
//! - [`state`]: per-association numbers, publishing, the state file, rendering.
//! - [`poller`]: one poll of one association: pages, tracker, numbers.
//! - [`scheduler`]: when to poll what: rate limit, concurrency, spreading, backoff, readiness.
//! - [`metrics`]: the exporter's own metrics and the `/metrics` body.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, `/-/reload` and the landing page.
//! - [`web_config`]: `--web.config.file`: TLS and basic auth (exporter-toolkit format).
//! - [`logging`]: logfmt and JSON log output.
//! - [`simulator`]: a simulated SSM endpoint speaking the real wire protocol (demo, tests).

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod schedule;
pub mod scheduler;
pub mod simulator;
pub mod ssm;
pub mod state;
pub mod tracker;
pub mod web_config;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::scheduler::{Budget, Readiness, Shared};
use crate::ssm::{ClientSettings, Ssm};
use crate::state::{Exposed, Live, Store};
use crate::tracker::Tracker;

/// Default `--web.telemetry-path`.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// Where the configuration comes from, for reloads.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    /// A configuration compiled into the binary (`--demo`): reloading re-reads the same text.
    Builtin {
        name: &'static str,
        text: &'static str,
    },
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => config::load(path),
            ConfigSource::Builtin { name, text } => config::parse(text, name),
        }
    }
}

/// How the daemon is wired, beyond the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub telemetry_path: String,
    pub client: ClientSettings,
    /// Where `SIGHUP` and `POST /-/reload` re-read the configuration from; `None` disables
    /// reloading.
    pub config_source: Option<ConfigSource>,
    /// Most HTTP connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// TLS and basic auth (`--web.config.file`).
    pub web: Arc<web_config::WebConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            client: ClientSettings::default(),
            config_source: None,
            max_connections: http::DEFAULT_MAX_CONNECTIONS,
            web: Arc::new(web_config::WebConfig::plain()),
        }
    }
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A reload request from `POST /-/reload`: the reply is the new summary or the error.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// Runs the exporter until `shutdown` completes: polls in the background, serves HTTP on
/// `listener`, reloads on `SIGHUP` and `POST /-/reload`; then stops polling, saves the state,
/// lets in-flight responses finish and returns.
pub async fn run(
    config: Config,
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let registry = Registry::new();
    let metrics = Arc::new(Metrics::register(&registry)?);
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp_seconds
        .set(now_ms() as f64 / 1000.0);
    let store = Arc::new(Store::default());
    let readiness = Arc::new(Readiness::new(config.associations.len()));
    restore_state(&config, &store, &metrics);

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let stop = CancellationToken::new();
    let mut daemon = Daemon {
        config,
        client: options.client.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        shared: None,
        pollers: HashMap::new(),
        tasks: JoinSet::new(),
        stop: stop.child_token(),
        persister: None,
    };
    daemon.start_pollers().await;
    daemon.start_persister();
    let state = Arc::new(HttpState::new(
        registry,
        store.clone(),
        readiness.clone(),
        &options,
        &daemon.summary(),
        options.config_source.as_ref().map(|_| reload_tx),
    ));
    let server = tokio::spawn(http::serve(listener, state.clone(), stop.clone()));
    tracing::info!(
        associations = daemon.config.associations.len(),
        poll_interval = %config::format_duration(daemon.config.poll_interval),
        region = %daemon.region(),
        "exporter started"
    );

    let mut hangups = hangup_signals();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => {
                let result = daemon.reload(options.config_source.as_ref()).await;
                if result.is_ok() {
                    state.set_summary(&daemon.summary());
                }
                state.invalidate();
                let _ = reply.send(result);
            }
            Some(()) = hangups.recv() => {
                tracing::info!("received SIGHUP; reloading the configuration");
                if daemon.reload(options.config_source.as_ref()).await.is_ok() {
                    state.set_summary(&daemon.summary());
                }
                state.invalidate();
            }
        }
    }
    tracing::info!("shutting down");
    readiness.stop();
    daemon.stop().await;
    stop.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
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

/// Loads the state file, if one is configured, into the store. An unusable file is reported
/// (log and `ssm_association_exporter_state_load_errors_total`), set aside, and the exporter
/// starts fresh; associations no longer configured are dropped.
fn restore_state(config: &Config, store: &Store, metrics: &Metrics) {
    let Some(path) = &config.state_file else {
        return;
    };
    match state::load(path) {
        Ok(None) => tracing::info!(path = %path.display(), "no state file yet; starting fresh"),
        Ok(Some(saved)) => {
            let (mut restored, mut dropped) = (0, 0);
            for (id, mut live) in saved {
                if config.associations.iter().any(|a| a.id == id) {
                    live.tracker
                        .set_late_window(config.late_visibility_window.as_millis() as i64);
                    store.insert(&id, live);
                    restored += 1;
                } else {
                    dropped += 1;
                }
            }
            store.publish_all();
            tracing::info!(path = %path.display(), restored, dropped, "resumed from the state file");
        }
        Err(error) => {
            metrics.state_load_errors_total.inc();
            let aside = state::set_aside(path);
            tracing::error!(%error, set_aside = ?aside, "state file unusable; starting fresh");
        }
    }
}

/// A fresh state: the first poll reaches back `initial_lookback`.
fn fresh_state(config: &Config) -> Live {
    let floor = now_ms() - config.initial_lookback.as_millis() as i64;
    Live {
        tracker: Tracker::new(floor, config.late_visibility_window.as_millis() as i64),
        exposed: Exposed {
            watermark_ms: floor,
            ..Exposed::default()
        },
    }
}

/// The running configuration: its pollers and the state-file writer.
struct Daemon {
    config: Config,
    client: ClientSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shared: Option<Arc<Shared>>,
    pollers: HashMap<String, CancellationToken>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
    persister: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Daemon {
    /// Builds the client and budget of the current config and starts every poller.
    async fn start_pollers(&mut self) {
        let budget = Arc::new(Budget::new(
            self.config.api_requests_per_second,
            self.config.max_concurrent_requests,
            self.metrics.clone(),
        ));
        let ssm = Ssm::new(
            &self.config,
            &self.client,
            budget,
            self.metrics.clone(),
            self.readiness.clone(),
        )
        .await;
        if ssm.region().is_none() {
            tracing::warn!("no AWS region configured; SSM calls will fail until one is set");
        }
        self.shared = Some(Arc::new(Shared {
            ssm,
            store: self.store.clone(),
            readiness: self.readiness.clone(),
            poll_interval: self.config.poll_interval,
            publish_each_poll: self.config.state_file.is_none(),
        }));
        let ids: Vec<String> = self
            .config
            .associations
            .iter()
            .map(|a| a.id.clone())
            .collect();
        for id in ids {
            self.spawn(&id);
        }
    }

    fn spawn(&mut self, id: &str) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let entry = self.store.insert(id, fresh_state(&self.config));
        let token = self.stop.child_token();
        scheduler::spawn_poller(entry, shared, token.clone(), &mut self.tasks);
        self.pollers.insert(id.to_string(), token);
    }

    fn start_persister(&mut self) {
        let Some(path) = self.config.state_file.clone() else {
            return;
        };
        let token = self.stop.child_token();
        let task = tokio::spawn(persist_loop(
            path,
            self.config.state_save_interval,
            self.store.clone(),
            self.metrics.clone(),
            token.clone(),
        ));
        self.persister = Some((token, task));
    }

    async fn stop_persister(&mut self) {
        if let Some((token, task)) = self.persister.take() {
            token.cancel();
            let _ = task.await;
        }
    }

    fn region(&self) -> String {
        self.shared
            .as_ref()
            .and_then(|s| s.ssm.region())
            .unwrap_or_else(|| "none (set region: or AWS_REGION)".to_string())
    }

    fn summary(&self) -> String {
        format!(
            "{}\neffective region: {}",
            self.config.summary(),
            self.region()
        )
    }

    /// Re-reads the configuration. Added associations start polling, removed ones stop and
    /// their series go, kept ones keep their state. When polling settings change, every poller
    /// restarts with them (state kept). An invalid config changes nothing.
    async fn reload(&mut self, source: Option<&ConfigSource>) -> Result<String, String> {
        let Some(source) = source else {
            return Err("reloading is not enabled".to_string());
        };
        let new = match source.load() {
            Ok(config) => config,
            Err(error) => {
                self.metrics.config_last_reload_successful.set(0);
                tracing::error!(%error, "configuration reload failed; keeping the running configuration");
                return Err(error.to_string());
            }
        };
        self.metrics.config_last_reload_successful.set(1);
        self.metrics
            .config_last_reload_success_timestamp_seconds
            .set(now_ms() as f64 / 1000.0);
        let old = std::mem::replace(&mut self.config, new);
        let new_ids: Vec<String> = self
            .config
            .associations
            .iter()
            .map(|a| a.id.clone())
            .collect();
        let removed: Vec<String> = old
            .associations
            .iter()
            .map(|a| a.id.clone())
            .filter(|id| !new_ids.contains(id))
            .collect();
        for id in &removed {
            if let Some(token) = self.pollers.remove(id) {
                token.cancel();
            }
        }
        self.store.retain(&new_ids);
        let polling_changed = old.poll_interval != self.config.poll_interval
            || old.api_requests_per_second != self.config.api_requests_per_second
            || old.max_concurrent_requests != self.config.max_concurrent_requests
            || old.request_timeout != self.config.request_timeout
            || old.api_max_attempts != self.config.api_max_attempts
            || old.region != self.config.region
            || old.state_file.is_some() != self.config.state_file.is_some();
        if old.late_visibility_window != self.config.late_visibility_window {
            let window = self.config.late_visibility_window.as_millis() as i64;
            for entry in self.store.entries() {
                state::lock(&entry.live).tracker.set_late_window(window);
            }
        }
        if old.state_file != self.config.state_file
            || old.state_save_interval != self.config.state_save_interval
        {
            self.stop_persister().await;
            self.start_persister();
        }
        let added: Vec<String> = new_ids
            .iter()
            .filter(|id| !self.pollers.contains_key(*id))
            .cloned()
            .collect();
        if polling_changed {
            for token in self.pollers.values() {
                token.cancel();
            }
            self.pollers.clear();
            self.start_pollers().await;
        } else {
            for id in &added {
                self.spawn(id);
            }
        }
        // Finished (cancelled) poller tasks are reaped here.
        while self.tasks.try_join_next().is_some() {}
        let message = format!(
            "configuration reloaded: {} associations ({} added, {} removed){}",
            new_ids.len(),
            added.len(),
            removed.len(),
            if polling_changed {
                "; polling settings changed, pollers restarted"
            } else {
                ""
            }
        );
        tracing::info!("{message}");
        Ok(message)
    }

    /// Stops every poller and writes the state file one last time.
    async fn stop(&mut self) {
        for token in self.pollers.values() {
            token.cancel();
        }
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.stop_persister().await;
    }
}

/// Writes the state file whenever something changed, at most every `interval`, and once more
/// when stopped; publishes exactly what was written.
async fn persist_loop(
    path: PathBuf,
    interval: Duration,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(interval) => false,
        };
        if store.take_dirty() || stopping {
            let snapshot = store.snapshot();
            let target = path.clone();
            let saved = tokio::task::spawn_blocking(move || {
                let result = snapshot.save(&target);
                (snapshot, result)
            })
            .await;
            match saved {
                Ok((snapshot, Ok(()))) => {
                    metrics
                        .last_state_save_timestamp_seconds
                        .set(now_ms() as f64 / 1000.0);
                    snapshot.publish();
                }
                Ok((snapshot, Err(error))) => {
                    metrics.state_save_errors_total.inc();
                    tracing::error!(%error, "saving the state file failed; publishing unsaved numbers");
                    snapshot.publish();
                }
                Err(error) => tracing::error!(%error, "the state file writer panicked"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Wall-clock time, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
