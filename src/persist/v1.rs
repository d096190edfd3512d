//! Version 1 of the state file (written by 0.1): its frozen types, read only, and their
//! migration on load.
//!
//! The version 1 format exactly as 0.1 wrote it: arrays in the order below, the tracker's
//! fields as they were.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::format::{
    bucket_label, from_disk, AlarmCount, Association, ErrorCount, HistogramV2, NewestFinal,
    NewestV2, Numbers, TrackerV2,
};
use super::Restored;
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

/// A version 1 association in today's terms: arrays become by-name maps, then go through the
/// version 2 reader (so both versions meet the same rules for unknown names and buckets).
pub(super) fn migrate_v1(live: Live) -> Restored {
    let t = live.tracker;
    let e = live.exposed;
    let named = |values: [u64; 5]| -> BTreeMap<String, u64> {
        STATUS_ORDER
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
            resume: None,
        },
        numbers: Numbers {
            executions: named(e.executions),
            durations: STATUS_ORDER
                .iter()
                .zip(e.durations)
                .filter(|(_, h)| h.count > 0)
                .map(|(s, h)| {
                    let buckets = BUCKETS
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
