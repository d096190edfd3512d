//! Version 2 of the state file, the one this build writes: its on-disk types, keyed by names,
//! and the conversions between them and the in-memory state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Restored;
use crate::model::{target_status_label, AssociationInfo, FinalStatus, PerStatus, TriggeredAlarm};
use crate::store::{
    Exposed, Histogram, Live, Newest, RecentExecution, TargetDetail, DURATION_BUCKETS,
    RECENT_EXECUTIONS,
};
use crate::tracker::{Resume, Saved};

/// Version of the state file format this build writes. It reads this one and version 1.
pub const STATE_FILE_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
pub(super) struct File {
    pub version: u32,
    #[serde(default)]
    pub saved_at_ms: i64,
    #[serde(default)]
    pub associations: BTreeMap<String, Association>,
    #[serde(default)]
    pub retired: BTreeMap<String, RetiredAssociation>,
    /// `--total-shards` and `--shard` of the writer; a file without them (older builds) is
    /// read as written with the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_shards: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Association ID -> its tags as last read (tag selectors), so that a restart within
    /// `discovery_interval` does not read them again. Absent in older files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, TagsV2>,
}

/// The tags of one association and when they were read.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct TagsV2 {
    pub read_at_ms: i64,
    /// Key -> value.
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct RetiredAssociation {
    pub removed_at_ms: i64,
    #[serde(flatten)]
    pub association: Association,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Association {
    pub tracker: TrackerV2,
    pub numbers: Numbers,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct TrackerV2 {
    pub floor_ms: Option<i64>,
    pub watermark_ms: Option<i64>,
    /// The highest `since` used so far (no query may reach below it).
    pub memory_floor_ms: Option<i64>,
    /// Execution ID -> CreatedTime.
    pub pending: BTreeMap<String, i64>,
    pub counted: BTreeMap<String, i64>,
    pub newest_final: Option<NewestFinal>,
    pub last_success_ms: Option<i64>,
    /// How the next run resumes retained state (absent: as usual).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeV2>,
}

/// [`Resume`] on disk.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct ResumeV2 {
    /// `retained`, `return` or `bounded`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_ms: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sharded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<i64>,
}

fn resume_to_disk(resume: Resume) -> ResumeV2 {
    match resume {
        Resume::Retained {
            current_ms,
            sharded,
        } => ResumeV2 {
            kind: "retained".into(),
            current_ms: Some(current_ms),
            sharded,
            ..ResumeV2::default()
        },
        Resume::Return { at_ms } => ResumeV2 {
            kind: "return".into(),
            at_ms,
            ..ResumeV2::default()
        },
        Resume::Bounded { from_ms } => ResumeV2 {
            kind: "bounded".into(),
            from_ms: Some(from_ms),
            ..ResumeV2::default()
        },
    }
}

/// A kind this build does not know (or a field missing) reads as a return: the safe side,
/// where nothing is counted twice.
fn resume_from_disk(r: ResumeV2) -> Resume {
    match (r.kind.as_str(), r.current_ms, r.from_ms) {
        ("retained", Some(current_ms), _) => Resume::Retained {
            current_ms,
            sharded: r.sharded,
        },
        ("bounded", _, Some(from_ms)) => Resume::Bounded { from_ms },
        _ => Resume::Return { at_ms: r.at_ms },
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct NewestFinal {
    pub created_ms: i64,
    pub id: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Numbers {
    /// Status name -> executions.
    pub executions: BTreeMap<String, u64>,
    /// Status name -> histogram.
    pub durations: BTreeMap<String, HistogramV2>,
    pub without_end_time: BTreeMap<String, u64>,
    /// In the order they are exposed.
    pub alarms_total: Vec<AlarmCount>,
    pub newest: Option<NewestV2>,
    pub last_success_ms: Option<i64>,
    pub in_progress: u64,
    pub watermark_ms: i64,
    pub poll_success: bool,
    pub last_poll_success_ms: Option<i64>,
    /// In the order they are exposed.
    pub poll_errors: Vec<ErrorCount>,
    pub poll_delay_seconds: f64,
    pub pending_abandoned: u64,
    pub info: Option<AssociationInfo>,
    #[serde(default = "yes")]
    pub polled: bool,
    #[serde(default = "yes")]
    pub complete: bool,
    /// The change feed's view of the association at its last successful poll.
    pub signature: Option<String>,
    pub seen_ms: Option<i64>,
    /// The newest final executions, newest first, with their non-successful targets.
    pub recent: Vec<RecentV2>,
    /// The last failed poll: error code and message.
    pub last_error: Option<LastError>,
    /// Non-successful targets read, by status and detailed status (label values).
    pub target_results: Vec<TargetCount>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct RecentV2 {
    pub id: String,
    pub status: String,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    pub resources: Vec<(String, u64)>,
    pub targets: Vec<TargetV2>,
    pub targets_left_out: u64,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct TargetV2 {
    pub resource_id: String,
    pub resource_type: String,
    pub status: String,
    pub detailed_status: String,
    pub output_source_type: String,
    pub output_source_id: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LastError {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TargetCount {
    pub status: String,
    pub detailed_status: String,
    pub count: u64,
}

fn yes() -> bool {
    true
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct HistogramV2 {
    /// Upper bound (`le`, as written on /metrics) -> observations in that bucket alone (not
    /// cumulative). Bounds this build does not have are moved to the next larger bucket.
    pub buckets: BTreeMap<String, u64>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct AlarmCount {
    pub alarm_name: String,
    pub state: String,
    pub count: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ErrorCount {
    pub code: String,
    pub count: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct NewestV2 {
    pub status: String,
    pub created_ms: i64,
    #[serde(default)]
    pub resources: Vec<(String, u64)>,
    #[serde(default)]
    pub alarms: Vec<TriggeredAlarm>,
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

pub(super) fn bucket_label(bound: f64) -> String {
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

pub(super) fn to_disk(live: &Live) -> Association {
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
            resume: t.resume.map(resume_to_disk),
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
                    status: r.status.name().to_string(),
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

pub(super) fn from_disk(a: Association) -> Restored {
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
            resume: t.resume.map(resume_from_disk),
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
            listed_last_execution_ms: None,
            polled: n.polled,
            complete: n.complete,
            signature: n.signature,
            seen_ms: n.seen_ms,
            // Not kept: until a poll reads the newest runs again, a listing change is polled.
            view: Default::default(),
            recent: std::sync::Arc::new(
                n.recent
                    .into_iter()
                    // A status name this build does not know (a hand-edited file) drops
                    // that run from the list; the counters keep it.
                    .filter_map(|r| {
                        let status = FinalStatus::from_name(&r.status)?;
                        Some((r, status))
                    })
                    .take(RECENT_EXECUTIONS)
                    .map(|(r, status)| RecentExecution {
                        id: r.id,
                        status,
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
