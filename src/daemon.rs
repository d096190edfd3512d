//! The running configuration: its pollers, the state-file writer, restore at start and reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, AwsClock};
use crate::config::{self, Config, ConfigError};
use crate::limit::Budget;
use crate::metrics::Metrics;
use crate::persist;
use crate::readiness::Readiness;
use crate::scheduler::{self, ApiHealth, Shared};
use crate::ssm::{ClientSettings, Ssm};
use crate::store::{Exposed, Live, Store};
use crate::sync::lock;
use crate::tracker::Tracker;

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

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reloading is not enabled")]
    Disabled,
    #[error("{0}")]
    Invalid(#[from] ConfigError),
}

fn restored_live(config: &Config, saved: persist::Restored) -> Live {
    Live {
        tracker: Tracker::restore(
            saved.tracker,
            config.initial_lookback.as_millis() as i64,
            config.late_visibility_window.as_millis() as i64,
        ),
        exposed: saved.exposed,
    }
}

/// Loads the state file, if one is configured, into the store. An unusable file is reported
/// (log and `ssm_association_exporter_state_load_errors_total`), set aside, and the exporter
/// starts fresh; associations no longer configured are kept retired (not shown) for
/// `removed_association_retention`.
fn restore_state(config: &Config, store: &Store, metrics: &Metrics) {
    let Some(path) = &config.state_file else {
        return;
    };
    match persist::load(path) {
        Ok(None) => tracing::info!(path = %path.display(), "no state file yet; starting fresh"),
        Ok(Some(loaded)) => {
            let (mut restored, mut retired) = (0, 0);
            for (id, (saved, removed_at)) in loaded.retired {
                store.insert_retired(&id, restored_live(config, saved), removed_at);
            }
            let configured: std::collections::HashSet<&str> =
                config.associations.iter().map(|a| a.id.as_str()).collect();
            for (id, saved) in loaded.associations {
                let live = restored_live(config, saved);
                if configured.contains(id.as_str()) {
                    store.insert(&id, live);
                    restored += 1;
                } else {
                    store.insert_retired(&id, live, loaded.saved_at_ms);
                    retired += 1;
                }
            }
            store.publish_all();
            tracing::info!(path = %path.display(), restored, retired, "resumed from the state file");
        }
        Err(error) => {
            metrics.state_load_errors_total.inc();
            let aside = persist::set_aside(path);
            tracing::error!(%error, set_aside = ?aside, "state file unusable; starting fresh");
        }
    }
}

/// A fresh state: the first poll reaches back `initial_lookback` from AWS's "now" then.
fn fresh_state(config: &Config) -> Live {
    Live {
        tracker: Tracker::new(
            config.initial_lookback.as_millis() as i64,
            config.late_visibility_window.as_millis() as i64,
        ),
        exposed: Exposed::default(),
    }
}

/// One association's polling task and how to stop it.
struct PollerTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl PollerTask {
    /// Cancels the task and waits until it has ended, so that no late response of an old
    /// poller can touch the state after this returns.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The running configuration: its pollers and the state-file writer.
pub struct Daemon {
    config: Config,
    client: ClientSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shared: Option<Arc<Shared>>,
    pollers: HashMap<String, PollerTask>,
    clock: Arc<AwsClock>,
    persister: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Daemon {
    /// Restores the state file, then starts polling every association and the state-file
    /// writer.
    pub async fn start(
        config: Config,
        client: ClientSettings,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Daemon {
        restore_state(&config, &store, &metrics);
        store.set_metrics_config(config.metrics);
        let mut daemon = Daemon {
            config,
            client,
            store,
            metrics,
            readiness,
            shared: None,
            pollers: HashMap::new(),
            clock: Arc::new(AwsClock::default()),
            persister: None,
        };
        daemon.follow_readiness();
        daemon.expire_retired();
        daemon.start_pollers().await;
        daemon.start_persister();
        daemon
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn ids(&self) -> Vec<String> {
        self.config
            .associations
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    /// Points readiness at the current set of associations.
    fn follow_readiness(&self) {
        let store = &self.store;
        self.readiness.follow(&self.ids(), |id| {
            store.get(id).is_some_and(|entry| entry.polled())
        });
        self.metrics
            .associations_awaiting_first_poll
            .set(self.readiness.awaiting_first_poll() as i64);
    }

    /// Builds the client and budget of the current config and starts every poller.
    async fn start_pollers(&mut self) {
        let budget = Arc::new(Budget::new(
            self.config.api_requests_per_second,
            self.config.max_concurrent_requests,
        ));
        let health = Arc::new(ApiHealth {
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            clock: self.clock.clone(),
        });
        let ssm = Ssm::new(
            &self.config,
            &self.client,
            budget,
            health,
            self.clock.clone(),
        )
        .await;
        if ssm.region().is_none() {
            tracing::warn!("no AWS region configured; SSM calls will fail until one is set");
        }
        self.shared = Some(Arc::new(Shared {
            ssm,
            store: self.store.clone(),
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
            poll_interval: self.config.poll_interval,
            publish_each_poll: self.config.state_file.is_none(),
        }));
        for id in self.ids() {
            self.spawn(&id);
        }
    }

    fn spawn(&mut self, id: &str) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let entry = self.store.insert(id, fresh_state(&self.config));
        let stop = CancellationToken::new();
        let task = scheduler::spawn_poller(entry, shared, stop.clone());
        self.pollers
            .insert(id.to_string(), PollerTask { stop, task });
    }

    fn start_persister(&mut self) {
        let Some(path) = self.config.state_file.clone() else {
            return;
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(persist::save_loop(
            path,
            self.config.state_save_interval,
            self.store.clone(),
            self.metrics.clone(),
            self.clock.clone(),
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

    pub fn region(&self) -> String {
        self.shared
            .as_ref()
            .and_then(|s| s.ssm.region())
            .unwrap_or_else(|| "none (set region: or AWS_REGION)".to_string())
    }

    /// The effective configuration, for the landing page.
    pub fn summary(&self) -> String {
        format!(
            "{}\neffective region: {}",
            self.config.summary(),
            self.region()
        )
    }

    /// Re-reads the configuration. Added associations start polling, removed ones stop and
    /// their series go, kept ones keep their state. When polling settings change, every poller
    /// restarts with them (state kept). An invalid config changes nothing.
    pub async fn reload(&mut self, source: Option<&ConfigSource>) -> Result<String, ReloadError> {
        let Some(source) = source else {
            return Err(ReloadError::Disabled);
        };
        let new = match source.load() {
            Ok(config) => config,
            Err(error) => {
                self.metrics.config_last_reload_successful.set(0);
                tracing::error!(%error, "configuration reload failed; keeping the running configuration");
                return Err(error.into());
            }
        };
        self.metrics.config_last_reload_successful.set(1);
        self.metrics
            .config_last_reload_success_timestamp_seconds
            .set(now_ms() as f64 / 1000.0);
        // Only the rendering depends on it: the next scrape shows the new shape.
        self.store.set_metrics_config(new.metrics);
        let old = std::mem::replace(&mut self.config, new);
        let new_ids = self.ids();
        let removed: Vec<String> = old
            .associations
            .iter()
            .map(|a| a.id.clone())
            .filter(|id| !new_ids.contains(id))
            .collect();
        for id in &removed {
            if let Some(poller) = self.pollers.remove(id) {
                poller.stop().await;
            }
        }
        let now = self.clock.now_ms();
        self.store.retain(&new_ids, now);
        self.expire_retired();
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
                lock(&entry.live).tracker.set_late_window(window);
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
        self.follow_readiness();
        if polling_changed {
            // Every old poller has ended before a new one starts: two pollers of one
            // association would race on its watermark.
            self.stop_pollers().await;
            self.start_pollers().await;
        } else {
            for id in &added {
                self.spawn(id);
            }
        }
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

    /// Forgets removed associations kept for longer than `removed_association_retention`.
    fn expire_retired(&self) {
        let retention = self.config.removed_association_retention.as_millis() as i64;
        let expired = self
            .store
            .expire_retired(self.clock.now_ms().saturating_sub(retention));
        if expired > 0 {
            tracing::info!(expired, "forgot the state of associations removed long ago");
        }
    }

    /// Stops every poller and waits until each has ended.
    async fn stop_pollers(&mut self) {
        let pollers: Vec<PollerTask> = self.pollers.drain().map(|(_, p)| p).collect();
        for poller in &pollers {
            poller.stop.cancel();
        }
        for poller in pollers {
            poller.stop().await;
        }
    }

    /// Stops every poller and writes the state file one last time.
    pub async fn stop(&mut self) {
        self.stop_pollers().await;
        self.stop_persister().await;
    }
}
