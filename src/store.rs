//! Per-association numbers: the live state changed by pollers and the published copy scrapes see.
//!
//! Each association has a *live* state (its [`Tracker`] and the numbers it exposes), changed
//! by its poller, and a *published* copy of the numbers, which is what scrapes see. Without a
//! state file a poll publishes its numbers when it ends. With one, numbers are published only
//! after they have been written to disk (`persist.rs`), so a crash can never make a counter go
//! backwards: the exporter resumes from the last saved state and re-reads whatever it had
//! counted after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::model::{
    parse_resource_counts, AssociationInfo, Execution, FinalStatus, PerStatus, TriggeredAlarm,
};
use crate::sync::lock;
use crate::tracker::Tracker;

/// Upper bounds of the execution-duration histogram buckets, seconds: association runs take
/// seconds to hours. Eight buckets keep the series count down (the histogram is per status).
pub const DURATION_BUCKETS: [f64; 8] = [10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0];

/// A histogram of durations: per-bucket (not cumulative) counts, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct Newest {
    pub status: FinalStatus,
    pub created_ms: i64,
    pub resources: Vec<(String, u64)>,
    pub alarms: Vec<TriggeredAlarm>,
}

/// Everything an association exposes on `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposed {
    /// Executions counted, by final status.
    pub executions: PerStatus<u64>,
    pub durations: PerStatus<Histogram>,
    pub without_end_time: PerStatus<u64>,
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
    /// Counts an execution the tracker has just seen final (in `status`) for the first time.
    pub fn count(
        &mut self,
        execution: &Execution,
        status: FinalStatus,
        newest: bool,
        last_success_ms: Option<i64>,
    ) {
        self.executions[status] += 1;
        match execution.ended_ms {
            Some(ended) if ended >= execution.created_ms => {
                self.durations[status].observe((ended - execution.created_ms) as f64 / 1000.0)
            }
            _ => self.without_end_time[status] += 1,
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
                status,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub tracker: Tracker,
    pub exposed: Exposed,
}

/// One association's entry in the store.
pub struct Entry {
    pub id: String,
    pub live: Mutex<Live>,
    published: Mutex<Exposed>,
    /// Whether a poll of this association has ended in this process (successfully or not).
    polled: AtomicBool,
}

impl Entry {
    pub fn mark_polled(&self) {
        self.polled.store(true, Ordering::SeqCst);
    }

    pub fn polled(&self) -> bool {
        self.polled.load(Ordering::SeqCst)
    }

    /// Makes the live numbers visible to scrapes.
    pub fn publish(&self) {
        let exposed = lock(&self.live).exposed.clone();
        *lock(&self.published) = exposed;
    }

    /// Makes `exposed` (numbers taken from the live state earlier, e.g. those just saved)
    /// visible to scrapes.
    pub fn publish_saved(&self, exposed: Exposed) {
        *lock(&self.published) = exposed;
    }

    pub fn published(&self) -> Exposed {
        lock(&self.published).clone()
    }
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
                    polled: AtomicBool::new(false),
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

#[cfg(test)]
mod tests {
    use super::*;

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
