//! The running configuration: one loop per account and region, the state-file writer, restore
//! at start and reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, AwsClock};
use crate::config::{self, Config, ConfigError, ScopeConfig};
use crate::discovery::Selection;
use crate::events::{Board, Events, Routes};
use crate::feed::Rules;
use crate::limit::Budget;
use crate::metrics::Metrics;
use crate::model::ScopeKey;
use crate::persist;
use crate::readiness::Readiness;
use crate::scheduler::{self, Report, Scope, Shared};
use crate::scope_health::ScopeHealth;
use crate::shard::Shard;
use crate::ssm::{self, ClientSettings, Ssm};
use crate::store::{Live, Store};
use crate::sync::lock;
use crate::tracker::{Resume, Tracker};

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

/// What a successful reload did.
#[derive(Clone, Debug)]
pub struct Reloaded {
    /// The summary answered to `POST /-/reload` and logged.
    pub message: String,
    /// Whether the scope loops were restarted (the configuration changed).
    pub restarted: bool,
}

fn restored_live(config: &Config, saved: persist::Restored) -> Live {
    Live {
        tracker: Tracker::restore(
            saved.tracker,
            config.initial_lookback.as_millis() as i64,
            config.late_visibility_window.as_millis() as i64,
        )
        .with_max_backfill(config.max_backfill().as_millis() as i64),
        exposed: saved.exposed,
    }
}

/// The account and region of a saved association, when its info says (not in 0.1's files).
fn saved_scope(live: &Live) -> Option<ScopeKey> {
    let info = live.exposed.info.as_ref()?;
    (!info.account_id.is_empty() && !info.region.is_empty()).then(|| ScopeKey {
        account_id: info.account_id.clone(),
        region: info.region.clone(),
    })
}

/// How a saved association resumes in `shard`, when the file was written by `layout` and was
/// current at `current_ms`: `Err` when `shard` does not own it (it is kept retired, as moved
/// away); a return when the writer did not own it (it moved here and back); else retained
/// state (bounded by `max_backfill`, a return if older with several shards).
fn resumption(
    id: &str,
    scope: Option<&ScopeKey>,
    shard: Shard,
    layout: Shard,
    current_ms: i64,
) -> Result<Resume, Resume> {
    let Some(scope) = scope else {
        // Ownership is decided when a listing says where it lives.
        return Ok(Resume::Retained {
            current_ms,
            sharded: shard.is_sharded(),
        });
    };
    if !shard.owns(scope, id) {
        Err(Resume::Return { at_ms: None })
    } else if !layout.owns(scope, id) {
        Ok(Resume::Return { at_ms: None })
    } else {
        Ok(Resume::Retained {
            current_ms,
            sharded: shard.is_sharded(),
        })
    }
}

/// Loads the state file, if one is configured, into the store. Saved associations that this
/// shard owns and whose account and region are known (from their info) are shown again at
/// once; the first listing of their scope retires those no longer selected. Those this shard
/// does not own under the current `--total-shards` are kept retired (never shown here), marked
/// as moved away: if they come back, they come back as returns. Those of older files without
/// an account and region are kept aside (retired, not shown) until a listing selects them,
/// which resumes them, with the full `removed_association_retention` from now. Every restored
/// state resumes within `max_backfill` ([`Resume`]). An unusable file is reported (log and
/// `ssm_association_exporter_state_load_errors_total`), set aside, and the exporter starts
/// fresh.
fn restore_state(
    config: &Config,
    shard: Shard,
    path: Option<&Path>,
    store: &Store,
    metrics: &Metrics,
) {
    let Some(path) = path else {
        return;
    };
    match persist::load(path) {
        Ok(None) => tracing::info!(path = %path.display(), "no state file yet; starting fresh"),
        Ok(Some(loaded)) => {
            let layout = loaded.layout.unwrap_or(shard);
            // Tags read within `discovery_interval` are used as read; older ones are read again.
            let fresh_after = now_ms() - config.discovery_interval.as_millis() as i64;
            for (id, (at_ms, tags)) in loaded.tags {
                if at_ms > fresh_after {
                    store.set_tags(&id, at_ms, tags);
                }
            }
            let (mut restored, mut retired, mut moved, mut returns) = (0, 0, 0, 0);
            for (id, (saved, removed_at)) in loaded.retired {
                let mut live = restored_live(config, saved);
                let scope = saved_scope(&live);
                let resume = resumption(&id, scope.as_ref(), shard, layout, removed_at)
                    .unwrap_or_else(|moved| moved);
                live.tracker.resume_as(resume);
                store.insert_retired(&id, live, removed_at);
                retired += 1;
            }
            let now = now_ms();
            for (id, saved) in loaded.associations {
                let mut live = restored_live(config, saved);
                let scope = saved_scope(&live);
                let resume = resumption(&id, scope.as_ref(), shard, layout, loaded.saved_at_ms);
                match (scope, resume) {
                    (Some(scope), Ok(resume)) => {
                        returns += usize::from(matches!(resume, Resume::Return { .. }));
                        live.tracker.resume_as(resume);
                        store.insert(&id, &scope, live);
                        restored += 1;
                    }
                    (None, resume) | (Some(_), resume @ Err(_)) => {
                        moved += usize::from(resume.is_err());
                        live.tracker.resume_as(resume.unwrap_or_else(|moved| moved));
                        store.insert_retired(&id, live, now);
                        retired += 1;
                    }
                }
            }
            store.publish_all();
            tracing::info!(
                path = %path.display(),
                restored,
                retired,
                moved_to_other_shards = moved,
                returned_from_other_shards = returns,
                written_with_total_shards = layout.total,
                "resumed from the state file"
            );
        }
        Err(error) => {
            metrics.state_load_errors_total.inc();
            let aside = persist::set_aside(path);
            tracing::error!(%error, set_aside = ?aside, "state file unusable; starting fresh");
        }
    }
}

/// The state file of this shard: `state_file` itself without sharding, else
/// `<stem>.shard-<N><.ext>` beside it (each shard keeps only what it owns; the index, not the
/// count, names it, so a shard keeps its file when the count changes).
pub fn state_path(config: &Config, shard: Shard) -> Option<PathBuf> {
    let path = config.state_file.as_ref()?;
    if !shard.is_sharded() {
        return Some(path.clone());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.shard-{}.{}", shard.index, ext.to_string_lossy()),
        None => format!("{stem}.shard-{}", shard.index),
    };
    Some(path.with_file_name(name))
}

/// The state file to restore: this shard's own ([`state_path`]), except for ordinal 0, the one
/// a single shard also runs as: of `state_file` itself (written with one shard) and its
/// `.shard-0` file (written with several), the one saved last. So 1 → 2 → 1 shards keeps pod
/// 0's state both ways: its associations continue, those that moved away and back return.
fn restore_path(config: &Config, shard: Shard) -> Option<PathBuf> {
    let own = state_path(config, shard)?;
    if shard.index != 0 {
        return Some(own);
    }
    let other_layout = if shard.is_sharded() {
        Shard::default()
    } else {
        Shard { index: 0, total: 2 }
    };
    let other = state_path(config, other_layout)?;
    let saved_at = |path: &Path| match persist::load(path) {
        Ok(Some(loaded)) => Some(loaded.saved_at_ms),
        _ => None,
    };
    match (saved_at(&other), saved_at(&own)) {
        (Some(theirs), Some(ours)) if theirs > ours => Some(other),
        (Some(_), None) if !own.exists() => Some(other),
        _ => Some(own),
    }
}

/// One scope's loop and how to stop it.
struct ScopeTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A scope's name in logs and readiness.
fn scope_name(scope: &ScopeConfig, default_region: &str) -> String {
    let region = scope.region.as_deref().unwrap_or(default_region);
    match &scope.role_arn {
        Some(role) => format!("{}@{region}", role.arn),
        None => format!("own-credentials@{region}"),
    }
}

/// The running configuration: its scope loops and the state-file writer.
pub struct Daemon {
    config: Config,
    shard: Shard,
    client: ClientSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    scopes: Vec<ScopeTask>,
    /// The scopes' names, for the landing page.
    scope_names: Vec<String>,
    /// The region of the AWS chain, when the config names none.
    default_region: Option<String>,
    clock: Arc<AwsClock>,
    persister: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// When the daemon started (reloads keep it): runs that ended before are history.
    started_ms: i64,
    /// The `events:` queue readers, and where they find the scope loops (kept across reloads,
    /// so that a reload that leaves `events:` as it was does not stop them).
    events: Events,
    routes: Arc<Routes>,
    board: Arc<Board>,
}

impl Daemon {
    /// Restores the state file, then starts every scope's loop and the state-file writer.
    pub async fn start(
        config: Config,
        shard: Shard,
        client: ClientSettings,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        board: Arc<Board>,
    ) -> Daemon {
        restore_state(
            &config,
            shard,
            restore_path(&config, shard).as_deref(),
            &store,
            &metrics,
        );
        let mut daemon = Daemon {
            config,
            shard,
            client,
            store,
            metrics,
            readiness,
            scopes: Vec::new(),
            scope_names: Vec::new(),
            default_region: None,
            clock: Arc::new(AwsClock::default()),
            persister: None,
            started_ms: now_ms(),
            events: Events::default(),
            routes: Arc::new(Routes::default()),
            board,
        };
        daemon.expire_retired();
        daemon.start_scopes().await;
        daemon.start_persister();
        daemon.start_events().await;
        daemon
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds each scope's client and budget and starts its loop.
    async fn start_scopes(&mut self) {
        let base = ssm::load_base(&self.config, &self.client).await;
        self.default_region = base.region().map(|r| r.to_string());
        let default_region = self.default_region.clone().unwrap_or_default();
        let scopes = self.config.scopes();
        if scopes.iter().any(|s| s.region.is_none()) && self.default_region.is_none() {
            tracing::warn!("no AWS region configured; SSM calls will fail until one is set (region:, regions: or AWS_REGION)");
        }
        self.scope_names = scopes
            .iter()
            .map(|s| scope_name(s, &default_region))
            .collect();
        let awaited: Vec<String> = self
            .config
            .associations
            .iter()
            .filter(|a| self.store.get(&a.id).is_none_or(|e| !e.polled()))
            .map(|a| a.id.clone())
            .collect();
        self.readiness.expect_scopes(&self.scope_names, awaited);
        self.metrics
            .associations_awaiting_first_poll
            .set(self.readiness.awaiting_first_poll() as i64);
        let shared = Arc::new(Shared {
            store: self.store.clone(),
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
            poll_interval: self.config.poll_interval,
            full_listing_interval: self.config.full_listing_interval,
            delta_margin: scheduler::delta_margin(self.config.late_visibility_window),
            publish_each_poll: self.config.state_file.is_none(),
            selection: Selection::new(&self.config),
            rules: Rules {
                initial_lookback_ms: self.config.initial_lookback.as_millis() as i64,
                late_window_ms: self.config.late_visibility_window.as_millis() as i64,
                full_sweep_ms: self.config.full_sweep_interval.as_millis() as i64,
                pending_recheck_max_ms: self.config.pending_recheck_max_interval.as_millis() as i64,
            },
            sweep_cap: self.config.full_sweep_max_polls_per_interval,
            discovery_interval: self.config.discovery_interval,
            initial_lookback_ms: self.config.initial_lookback.as_millis() as i64,
            late_window_ms: self.config.late_visibility_window.as_millis() as i64,
            max_backfill_ms: self.config.max_backfill().as_millis() as i64,
            claims: Mutex::new(HashMap::new()),
            report: Mutex::new(Report::default()),
            scope_count: scopes.len(),
            shard: self.shard,
            polls_per_scope: scheduler::polls_per_scope(self.config.max_concurrent_requests),
            target_detail: self.config.target_detail,
            started_ms: self.started_ms,
            routes: self.routes.clone(),
            progress_poll_delay: (self.config.events.as_ref())
                .map_or(std::time::Duration::ZERO, |e| e.progress_poll_delay),
        });
        for (scope, name) in scopes.into_iter().zip(self.scope_names.clone()) {
            let region = scope.region.clone().unwrap_or(default_region.clone());
            let health = Arc::new(ScopeHealth {
                metrics: self.metrics.clone(),
                readiness: self.readiness.clone(),
                clock: self.clock.clone(),
                name,
                key: OnceLock::new(),
                region,
            });
            let budget = Arc::new(Budget::new(
                self.config.api_requests_per_second,
                self.config.max_concurrent_requests,
            ));
            let ssm = Ssm::for_scope(
                &base,
                &scope,
                self.config.api_max_attempts,
                budget,
                health.clone(),
                self.clock.clone(),
            )
            .await;
            let stop = CancellationToken::new();
            let task = scheduler::spawn_scope(
                Scope {
                    config: scope,
                    ssm,
                    health,
                },
                shared.clone(),
                stop.clone(),
            );
            self.scopes.push(ScopeTask { stop, task });
        }
    }

    /// Starts the `events:` queue readers (none without the section).
    async fn start_events(&mut self) {
        self.events = Events::start(
            &self.config,
            &self.client,
            self.routes.clone(),
            self.metrics.clone(),
            self.board.clone(),
        )
        .await;
    }

    fn start_persister(&mut self) {
        let Some(path) = state_path(&self.config, self.shard) else {
            return;
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(persist::save_loop(
            path,
            self.shard,
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

    /// The accounts and regions watched, for logs.
    pub fn scopes(&self) -> &[String] {
        &self.scope_names
    }

    /// The effective configuration, for the landing page.
    pub fn summary(&self) -> String {
        format!(
            "{}\nwatched accounts and regions:\n{}",
            self.config.summary(),
            self.scope_names
                .iter()
                .map(|s| format!("  - {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Re-reads the configuration and restarts the scope loops with it; the associations'
    /// state is kept, so nothing is counted again: the new loops' first listings select what
    /// to watch, resume associations added back, and retire those no longer selected.
    /// Associations of accounts or regions no longer configured are retired at once. An
    /// invalid config changes nothing, and neither does one equal to the running one (no loop
    /// is stopped, no poll cancelled; only the reload metrics and the expiry of long-retired
    /// state move, as on any successful reload).
    pub async fn reload(&mut self, source: Option<&ConfigSource>) -> Result<Reloaded, ReloadError> {
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
        if new == self.config {
            self.expire_retired();
            let message = "configuration unchanged; pollers left running".to_string();
            tracing::info!("{message}");
            return Ok(Reloaded {
                message,
                restarted: false,
            });
        }
        let old = std::mem::replace(&mut self.config, new);
        let (added, removed) = {
            let before: std::collections::HashSet<&str> =
                old.associations.iter().map(|a| a.id.as_str()).collect();
            let after: std::collections::HashSet<&str> = self
                .config
                .associations
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            (
                after.difference(&before).count(),
                before.difference(&after).count(),
            )
        };
        // Every old loop (and its polls) has ended before a new one starts: two pollers of one
        // association would race on its watermark.
        self.stop_scopes().await;
        if old.late_visibility_window != self.config.late_visibility_window {
            let window = self.config.late_visibility_window.as_millis() as i64;
            for entry in self.store.entries() {
                lock(&entry.live).tracker.set_late_window(window);
            }
        }
        if old.max_backfill() != self.config.max_backfill() {
            let bound = self.config.max_backfill().as_millis() as i64;
            for entry in self.store.entries() {
                lock(&entry.live).tracker.set_max_backfill(bound);
            }
            self.store
                .update_retired(|live| live.tracker.set_max_backfill(bound));
        }
        self.retire_unconfigured_scopes();
        self.expire_retired();
        if old.state_file != self.config.state_file
            || old.state_save_interval != self.config.state_save_interval
        {
            self.stop_persister().await;
            self.start_persister();
        }
        // Triggers the old loops did not answer leave their messages in the queue; the
        // readers go on, restarted only when their section changed.
        if self.events.config() != self.config.events.as_ref() {
            self.events.stop().await;
            self.start_events().await;
        }
        self.start_scopes().await;
        let message = format!(
            "configuration reloaded: {} associations by ID ({added} added, {removed} removed), {} discovery selectors, {} accounts/regions; pollers restarted, the next listings apply it",
            self.config.associations.len(),
            self.config.discovery.len(),
            self.scope_names.len()
        );
        tracing::info!("{message}");
        Ok(Reloaded {
            message,
            restarted: true,
        })
    }

    /// Retires the associations of accounts and regions the configuration no longer names
    /// (no loop would list them again). The exporter's own account is any account not named by
    /// a role.
    fn retire_unconfigured_scopes(&self) {
        let default_region = self.default_region.clone().unwrap_or_default();
        let scopes = self.config.scopes();
        let role_accounts: std::collections::HashSet<&str> = scopes
            .iter()
            .filter_map(|s| s.role_arn.as_ref().map(|r| r.account_id.as_str()))
            .collect();
        let configured = |account_id: &str, entry_region: &str| {
            scopes.iter().any(|s| {
                let region = s.region.as_deref().unwrap_or(&default_region);
                region == entry_region
                    && match &s.role_arn {
                        Some(role) => role.account_id == account_id,
                        None => !role_accounts.contains(account_id),
                    }
            })
        };
        let retired = self.store.retire_where(self.clock.now_ms(), |entry| {
            !configured(&entry.scope.account_id, &entry.scope.region)
        });
        // No loop lists them again, so nothing else would clear their access denials.
        self.metrics
            .forget_access_denied(|[_, account, region, _]| !configured(account, region));
        if !retired.is_empty() {
            tracing::info!(
                retired = retired.len(),
                "associations of accounts or regions no longer configured: their series go"
            );
        }
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

    /// Stops every scope loop and waits until each (and its polls) has ended.
    async fn stop_scopes(&mut self) {
        let scopes: Vec<ScopeTask> = std::mem::take(&mut self.scopes);
        for scope in &scopes {
            scope.stop.cancel();
        }
        for scope in scopes {
            let _ = scope.task.await;
        }
    }

    /// Stops every scope loop and writes the state file one last time.
    pub async fn stop(&mut self) {
        self.events.stop().await;
        self.stop_scopes().await;
        self.stop_persister().await;
    }
}
