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

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, AwsClock};
use crate::metrics::Metrics;
use crate::model::{target_status_label, AssociationInfo, FinalStatus, PerStatus, TriggeredAlarm};
use crate::store::{
    Entry, Exposed, Histogram, Live, Newest, RecentExecution, Store, TargetDetail,
    DURATION_BUCKETS, RECENT_EXECUTIONS,
};
use crate::sync::lock;
use crate::tracker::Saved;

/// Version of the state file format this build writes. It reads this one and version 1.
pub const STATE_FILE_VERSION: u32 = 2;

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
// Version 2: the current format
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    saved_at_ms: i64,
    #[serde(default)]
    associations: BTreeMap<String, Association>,
    #[serde(default)]
    retired: BTreeMap<String, RetiredAssociation>,
}

#[derive(Serialize, Deserialize)]
struct RetiredAssociation {
    removed_at_ms: i64,
    #[serde(flatten)]
    association: Association,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Association {
    tracker: TrackerV2,
    numbers: Numbers,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct TrackerV2 {
    floor_ms: Option<i64>,
    watermark_ms: Option<i64>,
    /// The highest `since` used so far (no query may reach below it).
    memory_floor_ms: Option<i64>,
    /// Execution ID -> CreatedTime.
    pending: BTreeMap<String, i64>,
    counted: BTreeMap<String, i64>,
    newest_final: Option<NewestFinal>,
    last_success_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct NewestFinal {
    created_ms: i64,
    id: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Numbers {
    /// Status name -> executions.
    executions: BTreeMap<String, u64>,
    /// Status name -> histogram.
    durations: BTreeMap<String, HistogramV2>,
    without_end_time: BTreeMap<String, u64>,
    /// In the order they are exposed.
    alarms_total: Vec<AlarmCount>,
    newest: Option<NewestV2>,
    last_success_ms: Option<i64>,
    in_progress: u64,
    watermark_ms: i64,
    poll_success: bool,
    last_poll_success_ms: Option<i64>,
    /// In the order they are exposed.
    poll_errors: Vec<ErrorCount>,
    poll_delay_seconds: f64,
    pending_abandoned: u64,
    info: Option<AssociationInfo>,
    #[serde(default = "yes")]
    polled: bool,
    #[serde(default = "yes")]
    complete: bool,
    /// The change feed's view of the association at its last successful poll.
    signature: Option<String>,
    seen_ms: Option<i64>,
    /// The newest final executions, newest first, with their non-successful targets.
    recent: Vec<RecentV2>,
    /// The last failed poll: error code and message.
    last_error: Option<LastError>,
    /// Non-successful targets read, by status and detailed status (label values).
    target_results: Vec<TargetCount>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct RecentV2 {
    id: String,
    status: String,
    created_ms: i64,
    ended_ms: Option<i64>,
    resources: Vec<(String, u64)>,
    targets: Vec<TargetV2>,
    targets_left_out: u64,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct TargetV2 {
    resource_id: String,
    resource_type: String,
    status: String,
    detailed_status: String,
    output_source_type: String,
    output_source_id: String,
}

#[derive(Serialize, Deserialize)]
struct LastError {
    code: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct TargetCount {
    status: String,
    detailed_status: String,
    count: u64,
}

fn yes() -> bool {
    true
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct HistogramV2 {
    /// Upper bound (`le`, as written on /metrics) -> observations in that bucket alone (not
    /// cumulative). Bounds this build does not have are moved to the next larger bucket.
    buckets: BTreeMap<String, u64>,
    sum: f64,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct AlarmCount {
    alarm_name: String,
    state: String,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct ErrorCount {
    code: String,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct NewestV2 {
    status: String,
    created_ms: i64,
    #[serde(default)]
    resources: Vec<(String, u64)>,
    #[serde(default)]
    alarms: Vec<TriggeredAlarm>,
}

fn by_name<T: Clone>(values: &PerStatus<T>, keep: impl Fn(&T) -> bool) -> BTreeMap<String, T> {
    values
        .iter()
        .filter(|(_, v)| keep(v))
        .map(|(s, v)| (s.name().to_string(), v.clone()))
        .collect()
}

/// Reads a by-name map back; names this build does not know are dropped with a warning.
fn from_names<T: Default>(map: BTreeMap<String, T>, what: &str) -> PerStatus<T> {
    let mut out = PerStatus::default();
    for (name, value) in map {
        match FinalStatus::from_name(&name) {
            Some(status) => out[status] = value,
            None => {
                tracing::warn!(status = %name, what, "unknown status in the state file; ignored")
            }
        }
    }
    out
}

fn bucket_label(bound: f64) -> String {
    format!("{bound}")
}

fn histogram_to_disk(h: &Histogram) -> HistogramV2 {
    HistogramV2 {
        buckets: DURATION_BUCKETS
            .iter()
            .zip(h.buckets)
            .map(|(bound, n)| (bucket_label(*bound), n))
            .collect(),
        sum: h.sum,
        count: h.count,
    }
}

fn histogram_from_disk(h: HistogramV2) -> Histogram {
    let mut out = Histogram {
        sum: h.sum,
        count: h.count,
        ..Histogram::default()
    };
    for (le, n) in h.buckets {
        let Ok(bound) = le.parse::<f64>() else {
            continue;
        };
        // Observations at or below `bound` belong to the first bucket that holds `bound`; past
        // the largest bucket they are only in +Inf (the count).
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| bound <= *b) {
            out.buckets[i] += n;
        }
    }
    out
}

fn to_disk(live: &Live) -> Association {
    let t = live.tracker.save();
    let e = &live.exposed;
    Association {
        tracker: TrackerV2 {
            floor_ms: t.floor_ms,
            watermark_ms: t.watermark_ms,
            memory_floor_ms: t.memory_floor_ms,
            pending: t.pending.into_iter().collect(),
            counted: t.counted.into_iter().collect(),
            newest_final: t
                .newest_final
                .map(|(created_ms, id)| NewestFinal { created_ms, id }),
            last_success_ms: t.last_success_ms,
        },
        numbers: Numbers {
            executions: by_name(&e.executions, |_| true),
            durations: e
                .durations
                .iter()
                .filter(|(_, h)| h.count > 0)
                .map(|(s, h)| (s.name().to_string(), histogram_to_disk(h)))
                .collect(),
            without_end_time: by_name(&e.without_end_time, |n| *n > 0),
            alarms_total: e
                .alarms_total
                .iter()
                .map(|((alarm_name, state), count)| AlarmCount {
                    alarm_name: alarm_name.clone(),
                    state: state.clone(),
                    count: *count,
                })
                .collect(),
            newest: e.newest.as_ref().map(|n| NewestV2 {
                status: n.status.name().to_string(),
                created_ms: n.created_ms,
                resources: n.resources.clone(),
                alarms: n.alarms.clone(),
            }),
            last_success_ms: e.last_success_ms,
            in_progress: e.in_progress,
            watermark_ms: e.watermark_ms,
            poll_success: e.poll_success,
            last_poll_success_ms: e.last_poll_success_ms,
            poll_errors: e
                .poll_errors
                .iter()
                .map(|(code, count)| ErrorCount {
                    code: code.clone(),
                    count: *count,
                })
                .collect(),
            poll_delay_seconds: e.poll_delay_seconds,
            pending_abandoned: e.pending_abandoned,
            info: e.info.clone(),
            polled: e.polled,
            complete: e.complete,
            signature: e.signature.clone(),
            seen_ms: e.seen_ms,
            recent: e
                .recent
                .iter()
                .map(|r| RecentV2 {
                    id: r.id.clone(),
                    status: r.status.clone(),
                    created_ms: r.created_ms,
                    ended_ms: r.ended_ms,
                    resources: r.resources.clone(),
                    targets: r
                        .targets
                        .iter()
                        .map(|t| TargetV2 {
                            resource_id: t.resource_id.clone(),
                            resource_type: t.resource_type.clone(),
                            status: t.status.clone(),
                            detailed_status: t.detailed_status.clone(),
                            output_source_type: t.output_source_type.clone(),
                            output_source_id: t.output_source_id.clone(),
                        })
                        .collect(),
                    targets_left_out: r.targets_left_out,
                })
                .collect(),
            last_error: e.last_error.as_ref().map(|(code, message)| LastError {
                code: code.clone(),
                message: message.clone(),
            }),
            target_results: e
                .target_results
                .iter()
                .map(|((status, detailed_status), count)| TargetCount {
                    status: status.clone(),
                    detailed_status: detailed_status.clone(),
                    count: *count,
                })
                .collect(),
        },
    }
}

fn from_disk(a: Association) -> Restored {
    let t = a.tracker;
    let n = a.numbers;
    let durations = from_names(n.durations, "durations");
    let mut restored_durations = PerStatus::<Histogram>::default();
    for (status, h) in durations.iter() {
        restored_durations[status] = histogram_from_disk(HistogramV2 {
            buckets: h.buckets.clone(),
            sum: h.sum,
            count: h.count,
        });
    }
    Restored {
        tracker: Saved {
            floor_ms: t.floor_ms,
            watermark_ms: t.watermark_ms,
            memory_floor_ms: t.memory_floor_ms,
            pending: t.pending.into_iter().collect(),
            counted: t.counted.into_iter().collect(),
            newest_final: t.newest_final.map(|n| (n.created_ms, n.id)),
            last_success_ms: t.last_success_ms,
        },
        exposed: Exposed {
            executions: from_names(n.executions, "executions"),
            durations: restored_durations,
            without_end_time: from_names(n.without_end_time, "without_end_time"),
            alarms_total: n
                .alarms_total
                .into_iter()
                .map(|a| ((a.alarm_name, a.state), a.count))
                .collect(),
            newest: n.newest.and_then(|n| {
                Some(Newest {
                    status: FinalStatus::from_name(&n.status)?,
                    created_ms: n.created_ms,
                    resources: n.resources,
                    alarms: n.alarms,
                })
            }),
            last_success_ms: n.last_success_ms,
            in_progress: n.in_progress,
            watermark_ms: n.watermark_ms,
            poll_success: n.poll_success,
            last_poll_success_ms: n.last_poll_success_ms,
            poll_errors: n
                .poll_errors
                .into_iter()
                .map(|e| (e.code, e.count))
                .collect(),
            poll_delay_seconds: n.poll_delay_seconds,
            pending_abandoned: n.pending_abandoned,
            info: n.info,
            // Computed again from the schedule at the next listing.
            schedule_interval_seconds: None,
            polled: n.polled,
            complete: n.complete,
            signature: n.signature,
            seen_ms: n.seen_ms,
            recent: std::sync::Arc::new(
                n.recent
                    .into_iter()
                    .take(RECENT_EXECUTIONS)
                    .map(|r| RecentExecution {
                        id: r.id,
                        status: r.status,
                        created_ms: r.created_ms,
                        ended_ms: r.ended_ms,
                        resources: r.resources,
                        targets: r
                            .targets
                            .into_iter()
                            .map(|t| TargetDetail {
                                resource_id: t.resource_id,
                                resource_type: t.resource_type,
                                status: t.status,
                                detailed_status: t.detailed_status,
                                output_source_type: t.output_source_type,
                                output_source_id: t.output_source_id,
                            })
                            .collect(),
                        targets_left_out: r.targets_left_out,
                    })
                    .collect(),
            ),
            last_error: n.last_error.map(|e| (e.code, e.message)),
            // Label values: a value this build does not keep becomes `other`.
            target_results: {
                let mut counts = Exposed::default();
                for t in n.target_results {
                    let key = (
                        target_status_label(&t.status).to_string(),
                        target_status_label(&t.detailed_status).to_string(),
                    );
                    match counts.target_results.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, c)) => *c += t.count,
                        None => counts.target_results.push((key, t.count)),
                    }
                }
                counts.target_results
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Version 1 (0.1): read only, migrated on load
// ---------------------------------------------------------------------------------------------

mod v1 {
    //! The version 1 format exactly as 0.1 wrote it: arrays in the order below, the tracker's
    //! fields as they were.

    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;

    use crate::model::{AssociationInfo, TriggeredAlarm};

    /// The order of version 1's per-status arrays.
    pub const STATUS_ORDER: [&str; 5] = ["Success", "Failed", "TimedOut", "Cancelled", "Skipped"];
    /// The bucket bounds of version 1's histograms.
    pub const BUCKETS: [f64; 8] = [10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0];

    #[derive(Deserialize)]
    pub struct File {
        pub saved_at_ms: i64,
        pub associations: BTreeMap<String, Live>,
    }

    #[derive(Deserialize)]
    pub struct Live {
        pub tracker: Tracker,
        pub exposed: Exposed,
    }

    #[derive(Deserialize)]
    pub struct Tracker {
        pub floor_ms: i64,
        pub watermark_ms: Option<i64>,
        /// The `since` of the last poll: counted IDs after it were all kept.
        pub poll_since_ms: i64,
        pub pending: HashMap<String, i64>,
        pub counted: HashMap<String, i64>,
        pub newest_final: Option<(i64, String)>,
        pub last_success_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    pub struct Histogram {
        pub buckets: [u64; 8],
        pub sum: f64,
        pub count: u64,
    }

    #[derive(Deserialize)]
    pub struct Newest {
        pub status: String,
        pub created_ms: i64,
        pub resources: Vec<(String, u64)>,
        pub alarms: Vec<TriggeredAlarm>,
    }

    #[derive(Deserialize)]
    pub struct Exposed {
        pub executions: [u64; 5],
        pub durations: [Histogram; 5],
        pub without_end_time: [u64; 5],
        pub alarms_total: Vec<((String, String), u64)>,
        pub newest: Option<Newest>,
        pub last_success_ms: Option<i64>,
        pub in_progress: u64,
        pub watermark_ms: i64,
        pub poll_success: bool,
        pub last_poll_success_ms: Option<i64>,
        pub poll_errors: Vec<(String, u64)>,
        pub poll_delay_seconds: f64,
        pub pending_abandoned: u64,
        pub info: Option<AssociationInfo>,
    }
}

/// A version 1 association in today's terms: arrays become by-name maps, then go through the
/// version 2 reader (so both versions meet the same rules for unknown names and buckets).
fn migrate_v1(live: v1::Live) -> Restored {
    let t = live.tracker;
    let e = live.exposed;
    let named = |values: [u64; 5]| -> BTreeMap<String, u64> {
        v1::STATUS_ORDER
            .iter()
            .zip(values)
            .map(|(s, n)| (s.to_string(), n))
            .collect()
    };
    from_disk(Association {
        tracker: TrackerV2 {
            floor_ms: Some(t.floor_ms),
            watermark_ms: t.watermark_ms,
            memory_floor_ms: Some(t.poll_since_ms.max(t.floor_ms)),
            pending: t.pending.into_iter().collect(),
            counted: t.counted.into_iter().collect(),
            newest_final: t
                .newest_final
                .map(|(created_ms, id)| NewestFinal { created_ms, id }),
            last_success_ms: t.last_success_ms,
        },
        numbers: Numbers {
            executions: named(e.executions),
            durations: v1::STATUS_ORDER
                .iter()
                .zip(e.durations)
                .filter(|(_, h)| h.count > 0)
                .map(|(s, h)| {
                    let buckets = v1::BUCKETS
                        .iter()
                        .zip(h.buckets)
                        .map(|(b, n)| (bucket_label(*b), n))
                        .collect();
                    let h = HistogramV2 {
                        buckets,
                        sum: h.sum,
                        count: h.count,
                    };
                    (s.to_string(), h)
                })
                .collect(),
            without_end_time: named(e.without_end_time)
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            alarms_total: e
                .alarms_total
                .into_iter()
                .map(|((alarm_name, state), count)| AlarmCount {
                    alarm_name,
                    state,
                    count,
                })
                .collect(),
            newest: e.newest.map(|n| NewestV2 {
                status: n.status,
                created_ms: n.created_ms,
                resources: n.resources,
                alarms: n.alarms,
            }),
            last_success_ms: e.last_success_ms,
            in_progress: e.in_progress,
            watermark_ms: e.watermark_ms,
            poll_success: e.poll_success,
            last_poll_success_ms: e.last_poll_success_ms,
            poll_errors: e
                .poll_errors
                .into_iter()
                .map(|(code, count)| ErrorCount { code, count })
                .collect(),
            poll_delay_seconds: e.poll_delay_seconds,
            pending_abandoned: e.pending_abandoned,
            info: e.info,
            // Version 1 showed every series from the start.
            polled: true,
            complete: true,
            signature: None,
            seen_ms: None,
            recent: Default::default(),
            last_error: None,
            target_results: Vec::new(),
        },
    })
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
                    .map(|(id, live)| (id, migrate_v1(live)))
                    .collect(),
                retired: BTreeMap::new(),
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
}

impl Snapshot {
    /// Copies the store's live and retired state; `now_ms` (AWS's clock) dates the file.
    pub fn of(store: &Store, now_ms: i64) -> Snapshot {
        Snapshot {
            retired: store.retired(),
            saved_at_ms: now_ms,
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
                    finish(done, &metrics);
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
            let snapshot = Snapshot::of(&store, clock.now_ms());
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
                Ok(done) => finish(done, &metrics),
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

/// Publishes a saved snapshot, or reports the failed save (and publishes nothing).
fn finish(
    done: Result<(Snapshot, Result<(), StateError>), tokio::task::JoinError>,
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
            metrics.state_save_errors_total.inc();
            metrics.state_save_failing.set(1);
            tracing::error!(%error, "saving the state file failed; counters stay at what was last saved");
        }
        Err(error) => {
            metrics.state_save_errors_total.inc();
            metrics.state_save_failing.set(1);
            tracing::error!(%error, "the state file writer panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = include_str!("../tests/fixtures/state/v1.json");

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
            })
            .unwrap();
            let again = parse(&bytes, "v2.json").unwrap();
            assert_eq!(&again.associations[id], r, "{id}");
            assert_eq!(again.retired["gone"], (r.clone(), 7), "{id}");
        }
    }

    /// The status page's recent executions (with their targets), the last error and the
    /// per-target counts survive a restart; a file without them (older v2) reads as empty.
    #[test]
    fn recent_executions_last_error_and_target_counts_round_trip() {
        let mut exposed = Exposed::default();
        exposed.remember(RecentExecution {
            id: "e1".into(),
            status: "Failed".into(),
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
