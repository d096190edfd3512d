//! The state file: its own versioned on-disk format keyed by names, loading, saving, the save loop.
//!
//! The format is independent of the in-memory types: statuses, histogram buckets and error codes
//! are keyed by name (`"Failed"`, `"300"`), so reordering statuses or changing buckets can never
//! scramble restored counters, and every field has a default, so adding one does not need a new
//! version. Version 1 files (written by 0.1) are migrated on load, not reset.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, AwsClock};
use crate::metrics::Metrics;
use crate::shard::Shard;
use crate::store::{Entry, Exposed, Live, Store, TagsRead};
use crate::sync::lock;
use crate::tracker::Saved;

mod format;
mod v1;

pub use format::STATE_FILE_VERSION;
use format::{from_disk, to_disk, File, RetiredAssociation, TagsV2};

/// What the state file holds for one association.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    pub tracker: Saved,
    pub exposed: Exposed,
}

/// Everything a state file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// When it was written (AWS's clock if known then), epoch milliseconds.
    pub saved_at_ms: i64,
    pub associations: BTreeMap<String, Restored>,
    /// Associations removed from the configuration, kept for a while with when they were
    /// removed, so that adding one back resumes it instead of counting its look-back again.
    pub retired: BTreeMap<String, (Restored, i64)>,
    /// The shard layout it was written with (`None`: an older file, which does not say).
    pub layout: Option<Shard>,
    /// Tags read for tag selectors, with when ([`crate::store::TagsRead`]).
    pub tags: BTreeMap<String, TagsRead>,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: cannot read state file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: state file is corrupt or truncated: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "{path}: state file has version {found}, this build reads versions 1 to {STATE_FILE_VERSION}"
    )]
    Version { path: String, found: u32 },
    #[error("{path}: cannot write state file: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Loading and saving
// ---------------------------------------------------------------------------------------------

/// Reads the state file. `Ok(None)` when it does not exist (a fresh start). A temporary file
/// left by a crash during a save is removed.
pub fn load(path: &Path) -> Result<Option<Loaded>, StateError> {
    let _ = std::fs::remove_file(temp_path(path));
    let display = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: display,
                source,
            })
        }
    };
    parse(&bytes, &display).map(Some)
}

fn parse(bytes: &[u8], file_name: &str) -> Result<Loaded, StateError> {
    let corrupt = |source| StateError::Corrupt {
        path: file_name.to_string(),
        source,
    };
    // Read the version first, so a future format is reported as such, not as corrupt.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version: VersionOnly = serde_json::from_slice(bytes).map_err(corrupt)?;
    match version.version {
        1 => {
            let file: v1::File = serde_json::from_slice(bytes).map_err(corrupt)?;
            tracing::info!(path = %file_name, "state file version 1: migrated");
            Ok(Loaded {
                saved_at_ms: file.saved_at_ms,
                associations: file
                    .associations
                    .into_iter()
                    .map(|(id, live)| (id, v1::migrate_v1(live)))
                    .collect(),
                retired: BTreeMap::new(),
                layout: None,
                tags: BTreeMap::new(),
            })
        }
        STATE_FILE_VERSION => {
            let file: File = serde_json::from_slice(bytes).map_err(corrupt)?;
            Ok(Loaded {
                saved_at_ms: file.saved_at_ms,
                associations: file
                    .associations
                    .into_iter()
                    .map(|(id, a)| (id, from_disk(a)))
                    .collect(),
                retired: file
                    .retired
                    .into_iter()
                    .map(|(id, r)| (id, (from_disk(r.association), r.removed_at_ms)))
                    .collect(),
                layout: match (file.shard, file.total_shards) {
                    (Some(index), Some(total)) => Shard::new(index, total).ok(),
                    _ => None,
                },
                tags: file
                    .tags
                    .into_iter()
                    .map(|(id, t)| (id, (t.read_at_ms, t.tags.into_iter().collect())))
                    .collect(),
            })
        }
        found => Err(StateError::Version {
            path: file_name.to_string(),
            found,
        }),
    }
}

/// A consistent copy of every association's live state, taken for saving.
pub struct Snapshot {
    live: Vec<(Arc<Entry>, Live)>,
    retired: Vec<(String, Live, i64)>,
    saved_at_ms: i64,
    shard: Shard,
    tags: BTreeMap<String, TagsRead>,
}

impl Snapshot {
    /// Copies the store's live and retired state; `now_ms` (AWS's clock) dates the file,
    /// `shard` is the layout it is written with.
    pub fn of(store: &Store, now_ms: i64, shard: Shard) -> Snapshot {
        Snapshot {
            retired: store.retired(),
            saved_at_ms: now_ms,
            shard,
            tags: store.all_tags(),
            live: store
                .entries()
                .into_iter()
                .map(|entry| {
                    let live = lock(&entry.live).clone();
                    (entry, live)
                })
                .collect(),
        }
    }

    fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&File {
            version: STATE_FILE_VERSION,
            saved_at_ms: self.saved_at_ms,
            associations: self
                .live
                .iter()
                .map(|(entry, live)| (entry.id.clone(), to_disk(live)))
                .collect(),
            retired: self
                .retired
                .iter()
                .map(|(id, live, removed_at_ms)| {
                    let retired = RetiredAssociation {
                        removed_at_ms: *removed_at_ms,
                        association: to_disk(live),
                    };
                    (id.clone(), retired)
                })
                .collect(),
            total_shards: Some(self.shard.total),
            shard: Some(self.shard.index),
            tags: self
                .tags
                .iter()
                .map(|(id, (read_at_ms, tags))| {
                    let tags = tags.iter().cloned().collect();
                    let read_at_ms = *read_at_ms;
                    (id.clone(), TagsV2 { read_at_ms, tags })
                })
                .collect(),
        })
    }

    /// Writes the snapshot atomically: a temporary file beside `path`, fsync, rename, fsync of
    /// the directory. A crash at any point leaves either the old or the new file.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let error = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let bytes = self
            .to_bytes()
            .map_err(|e| error(std::io::Error::other(e)))?;
        let tmp = temp_path(path);
        let written = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(source) = written {
            // No partial temporary file is left behind.
            let _ = std::fs::remove_file(&tmp);
            return Err(error(source));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    /// Publishes exactly the numbers that were saved.
    pub fn publish(self) {
        for (entry, live) in self.live {
            entry.publish_saved(live.exposed);
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Moves an unusable state file aside (`<name>.bad`) so that it is kept for inspection and
/// not overwritten by the next save.
pub fn set_aside(path: &Path) -> Option<PathBuf> {
    let mut name = path.file_name()?.to_os_string();
    name.push(".bad");
    let aside = path.with_file_name(name);
    std::fs::rename(path, &aside).ok().map(|_| aside)
}

/// How long shutdown waits for the last save (a hung disk must not hold the process).
pub const SHUTDOWN_SAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the state file whenever something changed, at most every `interval`, and once more
/// when stopped; publishes exactly what was written. When a save fails, nothing is published:
/// the counters on `/metrics` stay at what the file holds (so a crash can never make them go
/// down), `ssm_association_exporter_state_save_failing` is 1, and the next save retries. A
/// save that hangs (a stuck disk) blocks neither scrapes nor shutdown: the next one waits for
/// it, shutdown waits [`SHUTDOWN_SAVE_TIMEOUT`] at most.
pub async fn save_loop(
    path: PathBuf,
    shard: Shard,
    interval: Duration,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    clock: Arc<AwsClock>,
    stop: CancellationToken,
) {
    let mut writing: Option<tokio::task::JoinHandle<(Snapshot, Result<(), StateError>)>> = None;
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(interval) => false,
        };
        if let Some(task) = writing.as_mut() {
            // The previous save is still running (a hung disk): wait for it, briefly at shutdown.
            let wait = if stopping {
                SHUTDOWN_SAVE_TIMEOUT
            } else {
                interval
            };
            match tokio::time::timeout(wait, task).await {
                Ok(done) => {
                    writing = None;
                    finish(done, &store, &metrics);
                }
                Err(_) => {
                    metrics.state_save_failing.set(1);
                    tracing::error!(path = %path.display(), "writing the state file hangs; counters stay at what was last saved");
                    if stopping {
                        return;
                    }
                    continue;
                }
            }
        }
        if store.take_dirty() || stopping {
            let snapshot = Snapshot::of(&store, clock.now_ms(), shard);
            let target = path.clone();
            let mut task = tokio::task::spawn_blocking(move || {
                let result = snapshot.save(&target);
                (snapshot, result)
            });
            let wait = if stopping {
                SHUTDOWN_SAVE_TIMEOUT
            } else {
                interval
            };
            match tokio::time::timeout(wait, &mut task).await {
                Ok(done) => finish(done, &store, &metrics),
                Err(_) => {
                    metrics.state_save_failing.set(1);
                    tracing::error!(path = %path.display(), "writing the state file hangs; counters stay at what was last saved");
                    writing = Some(task);
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// Publishes a saved snapshot, or reports the failed save, publishes nothing and marks the
/// store dirty again, so that the next interval retries even when nothing else changes.
fn finish(
    done: Result<(Snapshot, Result<(), StateError>), tokio::task::JoinError>,
    store: &Store,
    metrics: &Metrics,
) {
    match done {
        Ok((snapshot, Ok(()))) => {
            metrics
                .last_state_save_timestamp_seconds
                .set(now_ms() as f64 / 1000.0);
            metrics.state_save_failing.set(0);
            snapshot.publish();
        }
        Ok((_, Err(error))) => {
            store.mark_dirty();
            metrics.state_save_errors_total.inc();
            metrics.state_save_failing.set(1);
            tracing::error!(%error, "saving the state file failed; counters stay at what was last saved");
        }
        Err(error) => {
            store.mark_dirty();
            metrics.state_save_errors_total.inc();
            metrics.state_save_failing.set(1);
            tracing::error!(%error, "the state file writer panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FinalStatus;
    use crate::store::{RecentExecution, TargetDetail};

    const V1: &str = include_str!("../../tests/fixtures/state/v1.json");

    #[test]
    fn version_1_is_migrated_by_status_name() {
        let restored = parse(V1.as_bytes(), "v1.json").unwrap().associations;
        assert_eq!(restored.len(), 5);
        let a = &restored["3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f"];
        // v1 stored [9, 1, 1, 2, 4] in the order Success, Failed, TimedOut, Cancelled, Skipped.
        let counts: Vec<_> = a
            .exposed
            .executions
            .iter()
            .map(|(s, n)| (s.name(), *n))
            .collect();
        assert_eq!(
            counts,
            [
                ("Success", 9),
                ("Failed", 1),
                ("TimedOut", 1),
                ("Cancelled", 2),
                ("Skipped", 4)
            ]
        );
        assert_eq!(a.exposed.without_end_time[FinalStatus::Skipped], 4);
        assert_eq!(a.exposed.durations[FinalStatus::Success].count, 9);
        assert_eq!(a.tracker.watermark_ms, Some(1_795_772_620_383));
    }

    #[test]
    fn version_2_round_trips_everything() {
        let restored = parse(V1.as_bytes(), "v1.json").unwrap().associations;
        for (id, r) in &restored {
            let live = Live {
                tracker: crate::tracker::Tracker::restore(r.tracker.clone(), 3_600_000, 60_000),
                exposed: r.exposed.clone(),
            };
            let bytes = serde_json::to_vec(&File {
                version: STATE_FILE_VERSION,
                saved_at_ms: 0,
                associations: [(id.clone(), to_disk(&live))].into(),
                retired: [(
                    "gone".to_string(),
                    RetiredAssociation {
                        removed_at_ms: 7,
                        association: to_disk(&live),
                    },
                )]
                .into(),
                total_shards: None,
                shard: None,
                tags: [(
                    id.clone(),
                    TagsV2 {
                        read_at_ms: 5,
                        tags: [("team".to_string(), "a".to_string())].into(),
                    },
                )]
                .into(),
            })
            .unwrap();
            let again = parse(&bytes, "v2.json").unwrap();
            assert_eq!(&again.associations[id], r, "{id}");
            assert_eq!(again.retired["gone"], (r.clone(), 7), "{id}");
            let tags = vec![("team".to_string(), "a".to_string())];
            assert_eq!(again.tags[id], (5, tags), "{id}");
        }
    }

    /// The status page's recent executions (with their targets), the last error and the
    /// per-target counts survive a restart; a file without them (older v2) reads as empty.
    #[test]
    fn recent_executions_last_error_and_target_counts_round_trip() {
        let mut exposed = Exposed::default();
        exposed.remember(RecentExecution {
            id: "e1".into(),
            status: FinalStatus::Failed,
            created_ms: 5,
            ended_ms: Some(9),
            resources: vec![("Failed".into(), 2), ("Success".into(), 1)],
            targets: vec![TargetDetail {
                resource_id: "i-0123".into(),
                resource_type: "ManagedInstance".into(),
                status: "Failed".into(),
                detailed_status: "Undeliverable".into(),
                output_source_type: "RunCommand".into(),
                output_source_id: "c0ffee00-0000-4000-8000-000000000000".into(),
            }],
            targets_left_out: 1,
        });
        exposed.last_error = Some(("ThrottlingException".into(), "Rate exceeded".into()));
        exposed.count_target("Failed", "Undeliverable");
        exposed.count_target("TimedOut", "DeliveryTimedOut");
        let live = Live {
            tracker: crate::tracker::Tracker::new(3_600_000, 60_000),
            exposed,
        };
        let bytes = serde_json::to_vec(&File {
            version: STATE_FILE_VERSION,
            saved_at_ms: 0,
            associations: [("a".to_string(), to_disk(&live))].into(),
            retired: BTreeMap::new(),
            total_shards: None,
            shard: None,
            tags: BTreeMap::new(),
        })
        .unwrap();
        let again = parse(&bytes, "v2.json").unwrap();
        let e = &again.associations["a"].exposed;
        assert_eq!(e.recent, live.exposed.recent);
        assert_eq!(e.last_error, live.exposed.last_error);
        assert_eq!(e.target_results, live.exposed.target_results);

        let older = r#"{"version":2,"associations":{"a":{"numbers":{"executions":{"Failed":1}}}}}"#;
        let e = &parse(older.as_bytes(), "x").unwrap().associations["a"].exposed;
        assert!(e.recent.is_empty() && e.last_error.is_none() && e.target_results.is_empty());
    }

    #[test]
    fn statuses_are_read_by_name_whatever_their_order_in_the_file() {
        let text = r#"{"version":2,"associations":{"a":{"numbers":{
            "executions":{"Skipped":7,"Failed":2,"Bogus":5},
            "durations":{"Failed":{"buckets":{"300":1,"45":1,"99999":1},"sum":1.5,"count":3}}}}}}"#;
        let restored = parse(text.as_bytes(), "x").unwrap().associations;
        let e = &restored["a"].exposed;
        assert_eq!(e.executions[FinalStatus::Skipped], 7);
        assert_eq!(e.executions[FinalStatus::Failed], 2);
        assert_eq!(e.executions[FinalStatus::Success], 0);
        // 45 s goes to the 60 s bucket, 99999 s only to +Inf (the count).
        let h = &e.durations[FinalStatus::Failed];
        assert_eq!(h.buckets, [1, 1, 0, 0]);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert!(matches!(
            parse(br#"{"version":99}"#, "x"),
            Err(StateError::Version { found: 99, .. })
        ));
        assert!(matches!(
            parse(b"{\"vers", "x"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
