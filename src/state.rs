//! Per-association state shared by the pollers, the `/metrics` renderer and the state file.
//!
//! Each association has a *live* state (its [`Tracker`] and the numbers it exposes), changed
//! by its poller, and a *published* copy of the numbers, which is what scrapes see. Without a
//! state file a poll publishes its numbers when it ends. With one, numbers are published only
//! after they have been written to disk, so a crash can never make a counter go backwards
//! (Prometheus would read that as a reset): the exporter resumes from the last saved state and
//! re-reads whatever it had counted after it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::ssm::AssociationInfo;
use crate::tracker::{parse_resource_counts, Execution, Tracker, TriggeredAlarm, FINAL_STATUSES};

/// Upper bounds of the execution-duration histogram buckets, seconds: association runs take
/// seconds to hours. Eight buckets keep the series count down (the histogram is per status).
pub const DURATION_BUCKETS: [f64; 8] = [10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0];

/// The same bounds as `le` label values.
const DURATION_BUCKET_LABELS: [&str; 8] = ["10", "30", "60", "300", "900", "1800", "3600", "10800"];

/// Version of the state file format this build writes and reads.
pub const STATE_FILE_VERSION: u32 = 1;

/// A histogram of durations: per-bucket (not cumulative) counts, sum and count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: [u64; DURATION_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, value: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| value <= *bound) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// The newest final execution, as the `last_*` and `triggered_alarm` gauges show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Newest {
    pub status: String,
    pub created_ms: i64,
    pub resources: Vec<(String, u64)>,
    pub alarms: Vec<TriggeredAlarm>,
}

/// Everything an association exposes on `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposed {
    /// Executions counted, by index into [`FINAL_STATUSES`].
    pub executions: [u64; 5],
    pub durations: [Histogram; 5],
    pub without_end_time: [u64; 5],
    /// (alarm name, state) -> executions that triggered it.
    pub alarms_total: Vec<((String, String), u64)>,
    pub newest: Option<Newest>,
    pub last_success_ms: Option<i64>,
    pub in_progress: u64,
    pub watermark_ms: i64,
    pub poll_success: bool,
    pub last_poll_success_ms: Option<i64>,
    /// Error code -> failed polls.
    pub poll_errors: Vec<(String, u64)>,
    pub poll_delay_seconds: f64,
    pub pending_abandoned: u64,
    pub info: Option<AssociationInfo>,
}

fn bump<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, by: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += by,
        None => list.push((key, by)),
    }
}

impl Exposed {
    /// Counts an execution the tracker has just seen final for the first time.
    pub fn count(&mut self, execution: &Execution, newest: bool, last_success_ms: Option<i64>) {
        let Some(i) = FINAL_STATUSES.iter().position(|s| *s == execution.status) else {
            return;
        };
        self.executions[i] += 1;
        match execution.ended_ms {
            Some(ended) if ended >= execution.created_ms => {
                self.durations[i].observe((ended - execution.created_ms) as f64 / 1000.0)
            }
            _ => self.without_end_time[i] += 1,
        }
        for alarm in &execution.triggered_alarms {
            bump(
                &mut self.alarms_total,
                (alarm.name.clone(), alarm.state.clone()),
                1,
            );
        }
        self.last_success_ms = last_success_ms;
        if newest {
            let mut alarms = execution.triggered_alarms.clone();
            alarms.sort();
            alarms.dedup();
            self.newest = Some(Newest {
                status: execution.status.clone(),
                created_ms: execution.created_ms,
                resources: execution
                    .resource_counts
                    .as_deref()
                    .map(parse_resource_counts)
                    .unwrap_or_default(),
                alarms,
            });
        }
    }

    pub fn poll_failed(&mut self, code: &str) {
        self.poll_success = false;
        bump(&mut self.poll_errors, code.to_string(), 1);
    }
}

/// The live state of one association.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Live {
    pub tracker: Tracker,
    pub exposed: Exposed,
}

/// One association's entry in the store.
pub struct Entry {
    pub id: String,
    pub live: Mutex<Live>,
    published: Mutex<Exposed>,
}

impl Entry {
    /// Makes the live numbers visible to scrapes.
    pub fn publish(&self) {
        let exposed = lock(&self.live).exposed.clone();
        *lock(&self.published) = exposed;
    }

    pub fn published(&self) -> Exposed {
        lock(&self.published).clone()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is still consistent enough to
    // serve (every update is a few plain assignments).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// All associations' state, keyed (and rendered) by association ID.
#[derive(Default)]
pub struct Store {
    entries: RwLock<BTreeMap<String, Arc<Entry>>>,
    dirty: AtomicBool,
}

impl Store {
    /// The entry of `id`, created from `initial` when absent.
    pub fn insert(&self, id: &str, initial: Live) -> Arc<Entry> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    id: id.to_string(),
                    published: Mutex::new(initial.exposed.clone()),
                    live: Mutex::new(initial),
                })
            })
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Drops every association not in `keep` (their series disappear from /metrics).
    pub fn retain(&self, keep: &[String]) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| keep.contains(id));
        self.mark_dirty();
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::SeqCst)
    }

    /// Publishes every association's live numbers.
    pub fn publish_all(&self) {
        for entry in self.entries() {
            entry.publish();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The state file
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    saved_at_ms: i64,
    associations: BTreeMap<String, Live>,
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
        "{path}: state file has version {found}, this build reads version {STATE_FILE_VERSION}"
    )]
    Version { path: String, found: u32 },
    #[error("{path}: cannot write state file: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads the state file. `Ok(None)` when it does not exist (a fresh start).
pub fn load(path: &Path) -> Result<Option<BTreeMap<String, Live>>, StateError> {
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
    // Read the version first, so a future format is reported as such, not as corrupt.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version: VersionOnly =
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: display.clone(),
            source,
        })?;
    if version.version != STATE_FILE_VERSION {
        return Err(StateError::Version {
            path: display,
            found: version.version,
        });
    }
    let file: StateFile = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        path: display,
        source,
    })?;
    Ok(Some(file.associations))
}

/// A consistent copy of every association's live state, taken for saving.
pub struct Snapshot {
    live: Vec<(Arc<Entry>, Live)>,
}

impl Store {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            live: self
                .entries()
                .into_iter()
                .map(|entry| {
                    let live = lock(&entry.live).clone();
                    (entry, live)
                })
                .collect(),
        }
    }
}

impl Snapshot {
    /// Writes the snapshot atomically: a temporary file beside `path`, fsync, rename, fsync of
    /// the directory. A crash at any point leaves either the old or the new file.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let error = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let file = StateFile {
            version: STATE_FILE_VERSION,
            saved_at_ms: crate::now_ms(),
            associations: self
                .live
                .iter()
                .map(|(entry, live)| (entry.id.clone(), live.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| error(std::io::Error::other(e)))?;
        let tmp = temp_path(path);
        {
            let mut out = std::fs::File::create(&tmp).map_err(error)?;
            out.write_all(&bytes).map_err(error)?;
            out.sync_all().map_err(error)?;
        }
        std::fs::rename(&tmp, path).map_err(error)?;
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
            *lock(&entry.published) = live.exposed;
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

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const FROM_POLL: &str = "(from the background poll of DescribeAssociationExecutions)";

/// The per-association metric families, in output order: (name, type, help).
const FAMILIES: [(&str, &str, &str); 17] = [
    ("ssm_association_executions_total", "counter", "Association executions counted once, when first seen in a final status"),
    ("ssm_association_execution_duration_seconds", "histogram", "LastExecutionDate minus CreatedTime of final executions"),
    ("ssm_association_executions_without_end_time_total", "counter", "Final executions left out of the duration histogram because the API gave no LastExecutionDate"),
    ("ssm_association_executions_in_progress", "gauge", "Executions seen but not yet in a final status"),
    ("ssm_association_last_execution_status", "gauge", "1 for the status of the newest final execution, 0 for the other final statuses"),
    ("ssm_association_last_execution_timestamp_seconds", "gauge", "CreatedTime of the newest final execution, Unix seconds"),
    ("ssm_association_last_success_timestamp_seconds", "gauge", "CreatedTime of the newest successful execution, Unix seconds"),
    ("ssm_association_last_execution_resources", "gauge", "Targets of the newest final execution by status, from its ResourceCountByStatus"),
    ("ssm_association_triggered_alarm", "gauge", "1 for each CloudWatch alarm the newest final execution triggered"),
    ("ssm_association_triggered_alarms_total", "counter", "Final executions that triggered the CloudWatch alarm"),
    ("ssm_association_info", "gauge", "Association metadata from DescribeAssociation (refreshed at most hourly by the background poll); always 1"),
    ("ssm_association_exporter_poll_success", "gauge", "1 if the last background poll of the association paged to the end without error, else 0"),
    ("ssm_association_exporter_last_poll_success_timestamp_seconds", "gauge", "When the association was last polled successfully, Unix seconds"),
    ("ssm_association_exporter_watermark_timestamp_seconds", "gauge", "Newest CreatedTime seen by a complete poll (the look-back start until one is seen), Unix seconds"),
    ("ssm_association_exporter_poll_errors_total", "counter", "Background polls of the association that failed, by the error code that ended them"),
    ("ssm_association_exporter_poll_delay_seconds", "gauge", "How late the last poll's first request went out after the poll was due (rate limit or concurrency cap), seconds"),
    ("ssm_association_exporter_pending_abandoned_total", "counter", "Executions given up on after staying non-final for longer than 7 days"),
];

/// Writes every per-association family from the published numbers, in the text exposition
/// format, into `out` (a plain buffer or a gzip encoder). The published numbers are copied
/// first (one short lock per association), then each family is written for every association
/// in turn through a small buffer, so memory stays near the size of that copy rather than of
/// the rendered body.
pub fn render<W: std::io::Write>(store: &Store, out: &mut W) -> std::io::Result<()> {
    let snapshot: Vec<(String, Exposed)> = store
        .entries()
        .iter()
        .map(|entry| (entry.id.clone(), entry.published()))
        .collect();
    let mut buf = Vec::with_capacity(128 * 1024);
    for (family, (name, kind, help)) in FAMILIES.iter().enumerate() {
        let mut header_written = false;
        for (id, exposed) in &snapshot {
            let start = buf.len();
            write_family(family, id, exposed, &mut buf);
            if !header_written && buf.len() > start {
                header_written = true;
                let samples = buf.split_off(start);
                let suffix = if name.starts_with("ssm_association_exporter")
                    || *name == "ssm_association_info"
                {
                    ""
                } else {
                    FROM_POLL
                };
                let space = if suffix.is_empty() { "" } else { " " };
                let _ = writeln!(buf, "# HELP {name} {help}{space}{suffix}.");
                let _ = writeln!(buf, "# TYPE {name} {kind}");
                buf.extend_from_slice(&samples);
            }
            if buf.len() >= 64 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)
}

/// Appends `name{labels} value\n`.
fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.extend_from_slice(name.as_bytes());
    if !labels.is_empty() {
        out.push(b'{');
        for (i, (key, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_label(out, val);
            out.push(b'"');
        }
        out.push(b'}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape_label(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
}

/// Seconds from milliseconds, printed without float noise (`1795678393.319`).
struct Seconds(i64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        if frac == 0 {
            write!(f, "{secs}")
        } else {
            let text = format!("{frac:03}");
            write!(f, "{secs}.{}", text.trim_end_matches('0'))
        }
    }
}

/// Writes the samples of family `family` (an index into [`FAMILIES`]) of one association.
fn write_family(family: usize, id: &str, e: &Exposed, out: &mut Vec<u8>) {
    let a = ("association_id", id);
    let name = FAMILIES[family].0;
    match family {
        0 => {
            for (i, status) in FINAL_STATUSES.iter().enumerate() {
                sample(out, name, &[a, ("status", status)], e.executions[i]);
            }
        }
        1 => {
            for (i, status) in FINAL_STATUSES.iter().enumerate() {
                let h = &e.durations[i];
                if h.count == 0 {
                    continue;
                }
                let mut cumulative = 0;
                for (le, n) in DURATION_BUCKET_LABELS.iter().zip(h.buckets) {
                    cumulative += n;
                    sample(
                        out,
                        "ssm_association_execution_duration_seconds_bucket",
                        &[a, ("status", status), ("le", le)],
                        cumulative,
                    );
                }
                sample(
                    out,
                    "ssm_association_execution_duration_seconds_bucket",
                    &[a, ("status", status), ("le", "+Inf")],
                    h.count,
                );
                let labels = [a, ("status", *status)];
                sample(
                    out,
                    "ssm_association_execution_duration_seconds_sum",
                    &labels,
                    h.sum,
                );
                sample(
                    out,
                    "ssm_association_execution_duration_seconds_count",
                    &labels,
                    h.count,
                );
            }
        }
        2 => {
            for (i, status) in FINAL_STATUSES.iter().enumerate() {
                if e.without_end_time[i] > 0 {
                    sample(out, name, &[a, ("status", status)], e.without_end_time[i]);
                }
            }
        }
        3 => sample(out, name, &[a], e.in_progress),
        4 => {
            if let Some(newest) = &e.newest {
                for status in FINAL_STATUSES {
                    sample(
                        out,
                        name,
                        &[a, ("status", status)],
                        u8::from(newest.status == status),
                    );
                }
            }
        }
        5 => {
            if let Some(newest) = &e.newest {
                sample(out, name, &[a], Seconds(newest.created_ms));
            }
        }
        6 => {
            if let Some(success) = e.last_success_ms {
                sample(out, name, &[a], Seconds(success));
            }
        }
        7 => {
            for (status, count) in e.newest.iter().flat_map(|n| &n.resources) {
                sample(out, name, &[a, ("status", status)], count);
            }
        }
        8 => {
            for alarm in e.newest.iter().flat_map(|n| &n.alarms) {
                sample(
                    out,
                    name,
                    &[a, ("alarm_name", &alarm.name), ("state", &alarm.state)],
                    1,
                );
            }
        }
        9 => {
            for ((alarm, state), count) in &e.alarms_total {
                sample(
                    out,
                    name,
                    &[a, ("alarm_name", alarm), ("state", state)],
                    count,
                );
            }
        }
        10 => {
            if let Some(info) = &e.info {
                sample(
                    out,
                    name,
                    &[
                        a,
                        ("association_name", &info.name),
                        ("document_name", &info.document_name),
                        ("schedule_expression", &info.schedule_expression),
                    ],
                    1,
                );
            }
        }
        11 => sample(out, name, &[a], u8::from(e.poll_success)),
        12 => {
            if let Some(ms) = e.last_poll_success_ms {
                sample(out, name, &[a], Seconds(ms));
            }
        }
        13 => sample(out, name, &[a], Seconds(e.watermark_ms)),
        14 => {
            for (code, count) in &e.poll_errors {
                sample(out, name, &[a, ("code", code)], count);
            }
        }
        15 => sample(out, name, &[a], e.poll_delay_seconds),
        16 => sample(out, name, &[a], e.pending_abandoned),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(Seconds(1_795_678_393_319).to_string(), "1795678393.319");
        assert_eq!(Seconds(1_795_678_393_000).to_string(), "1795678393");
        assert_eq!(Seconds(1_795_678_393_050).to_string(), "1795678393.05");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Vec::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw")], 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m{a=\"x\\\"y\\\\z\\nw\"} 1\n"
        );
    }

    #[test]
    fn bucket_labels_match_the_bounds() {
        for (label, bound) in DURATION_BUCKET_LABELS.iter().zip(DURATION_BUCKETS) {
            assert_eq!(label.parse::<f64>().unwrap(), bound);
        }
    }

    #[test]
    fn histogram_buckets_are_by_upper_bound() {
        let mut h = Histogram::default();
        for v in [0.0, 10.0, 10.001, 10800.0, 10800.5] {
            h.observe(v);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[7], 1);
        assert_eq!(h.count, 5);
        assert_eq!(
            h.buckets.iter().sum::<u64>(),
            4,
            "the last one is only in +Inf"
        );
    }
}
