//! Per-association numbers: the live state changed by pollers and the published copy scrapes see.
//!
//! Each association has a *live* state (its [`Tracker`] and the numbers it exposes), changed
//! by its poller, and a *published* copy of the numbers, which is what scrapes see. Without a
//! state file a poll publishes its numbers when it ends. With one, numbers are published only
//! after they have been written to disk (`persist`), so a crash can never make a counter go
//! backwards: the exporter resumes from the last saved state and re-reads whatever it had
//! counted after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::model::{AssociationInfo, Execution, FinalStatus, PerStatus, ScopeKey, TriggeredAlarm};
use crate::sync::lock;
use crate::tracker::{Resume, Tracker};

pub use crate::model::TargetDetail;

/// Upper bounds of the execution-duration histogram buckets, seconds. Association runs take
/// seconds to hours, and what anyone acts on is a run moving up a class: within a minute
/// (inventory, agent updates), five minutes (configuration, patch scans), an hour (installs; the
/// default execution timeout of AWS-RunShellScript and AWS-RunPatchBaseline), three hours
/// (rate-controlled rollouts across a fleet); beyond that only `+Inf`. A subset of 0.1's bounds
/// (10, 30, 60, 300, 900, 1800, 3600, 10800), so older state files re-bucket exactly.
pub const DURATION_BUCKETS: [f64; 4] = [60.0, 300.0, 3600.0, 10800.0];

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

    /// Adds `other`'s observations (the histogram of one association from those per status).
    pub fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Process-wide counters over every association, since the exporter started: what `/metrics`
/// shows of poll errors and abandoned executions when they are not exported per association
/// (`metrics.per_association_internals: false`). Kept apart from the per-association numbers
/// because a sum over those would go down when an association is removed, which Prometheus
/// would read as a counter reset.
#[derive(Debug, Default)]
pub struct Totals {
    poll_errors: Mutex<BTreeMap<String, u64>>,
    pending_abandoned: AtomicU64,
}

impl Totals {
    pub fn poll_failed(&self, code: &str) {
        *lock(&self.poll_errors).entry(code.to_string()).or_default() += 1;
    }

    pub fn abandoned(&self, n: u64) {
        self.pending_abandoned.fetch_add(n, Ordering::Relaxed);
    }

    /// Failed polls by error code.
    pub fn poll_errors(&self) -> Vec<(String, u64)> {
        lock(&self.poll_errors)
            .iter()
            .map(|(code, n)| (code.clone(), *n))
            .collect()
    }

    pub fn pending_abandoned(&self) -> u64 {
        self.pending_abandoned.load(Ordering::Relaxed)
    }
}

/// What polls have read of an association's newest executions: what tells the change feed
/// that a change of the listing is one a poll has already read ([`crate::feed`]). In memory
/// only: after a restart, a change of the listing is polled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollView {
    /// The newest `CreatedTime` read, and that execution's status as last read (`None`: not
    /// final).
    pub newest: Option<(i64, Option<FinalStatus>)>,
    /// The newest end (`LastExecutionDate`, else `CreatedTime`) of a final execution read.
    pub newest_end_ms: Option<i64>,
    /// The [`RECENT_ENDS`] newest distinct ends of final executions read, newest first (0:
    /// none): what State Manager end events are matched against (`crate::scheduler`'s events).
    pub recent_ends: [i64; RECENT_ENDS],
}

/// Ends of final executions [`PollView`] keeps per association.
pub const RECENT_ENDS: usize = 4;

impl PollView {
    /// A poll read `execution` (not dated in the future).
    pub fn read(&mut self, execution: &Execution) {
        let status = execution.status.final_status();
        if self
            .newest
            .is_none_or(|(created, _)| execution.created_ms >= created)
        {
            self.newest = Some((execution.created_ms, status));
        }
        if status.is_some() {
            let end = execution.ended_ms.unwrap_or(execution.created_ms);
            self.newest_end_ms = self.newest_end_ms.max(Some(end));
            let ends = &mut self.recent_ends;
            if !ends.contains(&end) && end > ends[RECENT_ENDS - 1] {
                let at = ends
                    .iter()
                    .position(|&e| e < end)
                    .unwrap_or(RECENT_ENDS - 1);
                ends.copy_within(at..RECENT_ENDS - 1, at + 1);
                ends[at] = end;
            }
        }
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

/// How many recent non-successful final executions an association keeps (memory and state
/// file), for the status page and `/api/v1/associations/{id}`.
pub const RECENT_EXECUTIONS: usize = 10;

/// A recent final execution, for the status page and its JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentExecution {
    pub id: String,
    pub status: FinalStatus,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    /// `ResourceCountByStatus` parsed.
    pub resources: Vec<(String, u64)>,
    /// Its non-successful targets (`DescribeAssociationExecutionTargets`), at most
    /// `target_detail.max_targets_per_execution`; empty when none or not read.
    pub targets: Vec<TargetDetail>,
    /// Non-successful targets left out of `targets` by the cap.
    pub targets_left_out: u64,
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
    /// The longest expected gap between two runs of the association's schedule, seconds.
    pub schedule_interval_seconds: Option<f64>,
    /// The listing's `LastExecutionDate`, epoch milliseconds: known for every listed
    /// association that ever ran, whether or not a poll has seen the run.
    pub listed_last_execution_ms: Option<i64>,
    /// A poll has ended (the exporter's per-association series are shown from then on).
    pub polled: bool,
    /// A run has paged to its end (the execution series are shown from then on, at their full
    /// value: a new exporter or pod never shows 0 then N).
    pub complete: bool,
    /// The change feed: what the listing showed of the association (`LastExecutionDate`,
    /// `AssociationVersion`, `Overview`) when it was last polled successfully.
    pub signature: Option<String>,
    /// The newest CreatedTime or end time of an execution seen: a listing's
    /// `LastExecutionDate` after it is not explained yet by what the API has shown.
    pub seen_ms: Option<i64>,
    /// What polls have read of the newest executions.
    pub view: PollView,
    /// The newest final executions, newest first, at most [`RECENT_EXECUTIONS`]. Shared
    /// between the live and the published numbers (copied only when changed): at 10,000
    /// associations two copies of every association's runs would cost tens of MB.
    pub recent: Arc<Vec<RecentExecution>>,
    /// The code and message of the last failed poll, while polls fail.
    pub last_error: Option<(String, String)>,
    /// (target status, detailed status), both as label values -> non-successful targets of
    /// final executions read (`ssm_association_target_results_total`).
    pub target_results: Vec<((String, String), u64)>,
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
        // Each alarm is listed once per execution (`Execution::triggered_alarms`).
        for alarm in &execution.triggered_alarms {
            bump(
                &mut self.alarms_total,
                (alarm.name.clone(), alarm.state.clone()),
                1,
            );
        }
        self.note_newest(execution, status, newest, last_success_ms);
    }

    /// Keeps what the `last_*` gauges show of a final execution, counted or not.
    pub fn note_newest(
        &mut self,
        execution: &Execution,
        status: FinalStatus,
        newest: bool,
        last_success_ms: Option<i64>,
    ) {
        self.last_success_ms = last_success_ms;
        if newest {
            self.newest = Some(Newest {
                status,
                created_ms: execution.created_ms,
                resources: execution.resources.clone(),
                alarms: execution.triggered_alarms.clone(),
            });
        }
    }

    /// Keeps `execution` among the [`RECENT_EXECUTIONS`] newest final ones (by CreatedTime),
    /// replacing an entry with the same id.
    /// Successful runs are not kept: they have nothing to show beyond the counters, the newest
    /// run and the last success, and at 10,000 associations keeping them would cost tens of
    /// MB. What is kept is what the on-call looks for: runs that failed, timed out, were
    /// cancelled or skipped, with their failing targets.
    pub fn remember(&mut self, execution: RecentExecution) {
        if execution.status == FinalStatus::Success {
            return;
        }
        let recent = self.recent_mut();
        recent.retain(|r| r.id != execution.id);
        let at = recent
            .iter()
            .position(|r| (r.created_ms, &r.id) < (execution.created_ms, &execution.id))
            .unwrap_or(recent.len());
        recent.insert(at, execution);
        recent.truncate(RECENT_EXECUTIONS);
    }

    /// The recent executions to change (copied first if the published numbers share them).
    pub fn recent_mut(&mut self) -> &mut Vec<RecentExecution> {
        Arc::make_mut(&mut self.recent)
    }

    /// Counts a non-successful target read (its status and detailed status as label values).
    pub fn count_target(&mut self, status: &str, detailed_status: &str) {
        bump(
            &mut self.target_results,
            (
                crate::model::target_status_label(status).to_string(),
                crate::model::target_status_label(detailed_status).to_string(),
            ),
            1,
        );
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
    /// The account and region it lives in (its `account_id` and `region` labels).
    pub scope: ScopeKey,
    pub live: Mutex<Live>,
    published: Mutex<Exposed>,
    /// Whether a poll of this association has ended in this process (successfully or not).
    polled: AtomicBool,
    /// Whether the targets of a run that ended before this process started have been taken
    /// for reading (one such set per association and process).
    history_targets: AtomicBool,
    /// The process-wide counters, shared by every entry of the store.
    pub totals: Arc<Totals>,
}

impl Entry {
    pub fn mark_polled(&self) {
        self.polled.store(true, Ordering::SeqCst);
    }

    pub fn polled(&self) -> bool {
        self.polled.load(Ordering::SeqCst)
    }

    /// True the first time only: the one read of targets of a run from before this process.
    pub fn claim_history_targets(&self) -> bool {
        !self.history_targets.swap(true, Ordering::SeqCst)
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

/// All associations' state, keyed (and rendered) by association ID, and the state of
/// associations removed from the configuration (not rendered), kept for a while so that adding
/// one back resumes it instead of counting its whole look-back again.
#[derive(Default)]
pub struct Store {
    entries: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Removed associations: their state and when they were removed (epoch milliseconds).
    retired: Mutex<BTreeMap<String, (Live, i64)>>,
    dirty: AtomicBool,
    totals: Arc<Totals>,
    /// Association ID -> when its tags were read (epoch milliseconds) and the tags: the tag
    /// selectors' cache, kept in the state file so a restart does not read them all again.
    tags: Mutex<BTreeMap<String, TagsRead>>,
}

/// The tags of one association and when they were read (epoch milliseconds).
pub type TagsRead = (i64, Vec<(String, String)>);

impl Store {
    /// The entry of `id`: the existing one, or the retired state of `id` brought back, or a new
    /// one from `initial`, in `scope`.
    pub fn insert(&self, id: &str, scope: &ScopeKey, initial: Live) -> Arc<Entry> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries
            .entry(id.to_string())
            .or_insert_with(|| {
                let initial = match lock(&self.retired).remove(id) {
                    Some((live, _)) => {
                        tracing::info!(association_id = id, "added back: resuming its state");
                        live
                    }
                    None => initial,
                };
                Arc::new(Entry {
                    id: id.to_string(),
                    scope: scope.clone(),
                    published: Mutex::new(initial.exposed.clone()),
                    live: Mutex::new(initial),
                    polled: AtomicBool::new(false),
                    history_targets: AtomicBool::new(false),
                    totals: self.totals.clone(),
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

    /// Retires the associations `ids` at `now_ms` (their series disappear from /metrics; their
    /// state is kept until [`Store::expire_retired`]).
    pub fn retire(&self, ids: &[String], now_ms: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut retired = lock(&self.retired);
        for id in ids {
            if let Some(entry) = entries.remove(id) {
                let mut live = lock(&entry.live).clone();
                // Adding it back resumes it, within `max_backfill` of now then. In this
                // process the shards do not change, so no other shard owns it meanwhile.
                live.tracker.resume_as(Resume::Retained {
                    current_ms: now_ms,
                    sharded: false,
                });
                retired.insert(id.clone(), (live, now_ms));
            }
        }
        self.mark_dirty();
    }

    /// Retires every association for which `retire` says so; returns their IDs.
    pub fn retire_where(&self, now_ms: i64, retire: impl Fn(&Entry) -> bool) -> Vec<String> {
        let ids: Vec<String> = self
            .entries()
            .iter()
            .filter(|e| retire(e))
            .map(|e| e.id.clone())
            .collect();
        self.retire(&ids, now_ms);
        ids
    }

    /// Keeps the state of a removed association (from the state file).
    pub fn insert_retired(&self, id: &str, live: Live, removed_at_ms: i64) {
        lock(&self.retired).insert(id.to_string(), (live, removed_at_ms));
    }

    /// Changes every retired association's state (a reloaded setting).
    pub fn update_retired(&self, mut change: impl FnMut(&mut Live)) {
        for (live, _) in lock(&self.retired).values_mut() {
            change(live);
        }
    }

    /// Forgets retired associations removed before `before_ms`; returns how many.
    pub fn expire_retired(&self, before_ms: i64) -> usize {
        let mut retired = lock(&self.retired);
        let n = retired.len();
        retired.retain(|_, (_, removed_at)| *removed_at >= before_ms);
        let expired = n - retired.len();
        if expired > 0 {
            self.mark_dirty();
        }
        expired
    }

    /// A copy of the retired associations' state.
    pub fn retired(&self) -> Vec<(String, Live, i64)> {
        lock(&self.retired)
            .iter()
            .map(|(id, (live, at))| (id.clone(), live.clone(), *at))
            .collect()
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many associations are watched (not retired).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The cached tags of `id`, if read.
    pub fn tags(&self, id: &str) -> Option<TagsRead> {
        lock(&self.tags).get(id).cloned()
    }

    /// Caches the tags of `id` read at `at_ms`.
    pub fn set_tags(&self, id: &str, at_ms: i64, tags: Vec<(String, String)>) {
        lock(&self.tags).insert(id.to_string(), (at_ms, tags));
        self.mark_dirty();
    }

    /// Every cached tag read (for the state file).
    pub fn all_tags(&self) -> BTreeMap<String, TagsRead> {
        lock(&self.tags).clone()
    }

    /// Forgets the tags of associations `keep` says no to.
    pub fn retain_tags(&self, mut keep: impl FnMut(&str) -> bool) {
        lock(&self.tags).retain(|id, _| keep(id));
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
    use crate::model::Status;

    fn live(executions: u64) -> Live {
        let mut exposed = Exposed::default();
        exposed.executions[FinalStatus::Failed] = executions;
        Live {
            tracker: Tracker::new(3_600_000, 60_000),
            exposed,
        }
    }

    /// A removed association is retired, not dropped: adding it back resumes its numbers;
    /// after the retention it is forgotten and starts afresh.
    #[test]
    fn removed_associations_are_retired_resumed_and_expired() {
        let store = Store::default();
        let scope = ScopeKey::default();
        store.insert("a", &scope, live(7));
        store.insert("b", &scope, live(1));
        store.retire(&["a".to_string()], 1_000);
        assert!(store.get("a").is_none(), "its series go");
        assert_eq!(store.retired().len(), 1);
        let back = store.insert("a", &scope, live(0));
        assert_eq!(lock(&back.live).exposed.executions[FinalStatus::Failed], 7);
        assert!(store.retired().is_empty());

        store.retire(&["a".to_string()], 2_000);
        assert_eq!(store.expire_retired(2_000), 0, "removed at 2000: kept");
        assert_eq!(
            store.expire_retired(2_001),
            1,
            "removed before 2001: forgotten"
        );
        let fresh = store.insert("a", &scope, live(0));
        assert_eq!(lock(&fresh.live).exposed.executions[FinalStatus::Failed], 0);
    }

    #[test]
    fn an_alarm_listed_twice_in_one_execution_counts_once() {
        let alarm = TriggeredAlarm {
            name: "cpu".into(),
            state: "ALARM".into(),
        };
        let execution = Execution {
            id: "e".into(),
            status: Status::parse("Failed"),
            created_ms: 1,
            ended_ms: Some(2),
            resources: Vec::new(),
            // As the API's answer is read: each alarm once.
            triggered_alarms: crate::model::distinct_alarms([alarm.clone(), alarm.clone()]),
        };
        let mut e = Exposed::default();
        e.count(&execution, FinalStatus::Failed, true, None);
        assert_eq!(
            e.alarms_total,
            [(("cpu".to_string(), "ALARM".to_string()), 1)]
        );
        assert_eq!(e.newest.unwrap().alarms, [alarm]);
    }

    fn recent(id: &str, status: FinalStatus, created_ms: i64) -> RecentExecution {
        RecentExecution {
            id: id.into(),
            status,
            created_ms,
            ended_ms: None,
            resources: Vec::new(),
            targets: Vec::new(),
            targets_left_out: 0,
        }
    }

    /// The newest ends of final executions read, whatever their status, newest first, no
    /// repeats; runs in progress leave them alone.
    #[test]
    fn a_poll_view_keeps_the_newest_ends_read() {
        let mut view = PollView::default();
        for (created_ms, status, ended_ms) in [
            (10, "Success", Some(15)),
            (20, "Failed", None),
            (30, "InProgress", None),
            (5, "Success", Some(8)),
            (40, "Success", Some(45)),
            (40, "Success", Some(45)),
            (50, "Cancelled", Some(52)),
            (1, "Success", Some(2)),
        ] {
            view.read(&crate::model::Execution {
                id: format!("e-{created_ms}"),
                status: crate::model::Status::parse(status),
                created_ms,
                ended_ms,
                resources: Vec::new(),
                triggered_alarms: Vec::new(),
            });
        }
        assert_eq!(view.recent_ends, [52, 45, 20, 15]);
        assert_eq!(view.newest_end_ms, Some(52));
    }

    #[test]
    fn recent_executions_are_newest_first_and_bounded() {
        let mut e = Exposed::default();
        for (i, created) in [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 0, 11]
            .into_iter()
            .enumerate()
        {
            e.remember(recent(&format!("e{i}"), FinalStatus::Failed, created));
        }
        let created: Vec<i64> = e.recent.iter().map(|r| r.created_ms).collect();
        assert_eq!(created, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
        e.remember(recent("ok", FinalStatus::Success, 12));
        assert_eq!(e.recent[0].created_ms, 11, "successful runs are not kept");
        e.count_target("Failed", "Undeliverable");
        e.count_target("Failed", "SomethingNew");
        e.count_target("Failed", "Undeliverable");
        assert_eq!(
            e.target_results,
            [
                (("Failed".to_string(), "Undeliverable".to_string()), 2),
                (("Failed".to_string(), "other".to_string()), 1)
            ]
        );
    }

    #[test]
    fn histogram_buckets_are_by_upper_bound() {
        let mut h = Histogram::default();
        for v in [0.0, 60.0, 60.001, 10800.0, 10800.5] {
            h.observe(v);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[3], 1);
        assert_eq!(h.count, 5);
        assert_eq!(
            h.buckets.iter().sum::<u64>(),
            4,
            "the last one is only in +Inf"
        );
    }
}
