//! Per-association bookkeeping of executions: watermark, pending and counted IDs. Pure: no I/O, no clock.
//!
//! The rules that make the exported numbers true live here:
//!
//! - An execution is counted once, the first time it is seen in a final status
//!   ([`FinalStatus`]). Anything else (Pending, InProgress, Associated, unknown strings) is
//!   pending and keeps being asked for until it is final.
//! - Each poll asks for `CreatedTime GREATER_THAN since`, where `since` is the newest CreatedTime
//!   seen by a complete poll minus the late-visibility window, lowered further to cover the oldest
//!   pending execution, and never below the floor set by `initial_lookback` at start.
//! - The watermark only moves after a poll that paged to the end, so a poll that fails half-way
//!   re-reads everything next time; IDs already counted are skipped, so nothing is counted twice.
//! - Counted IDs are forgotten once `since` has moved past them: the API cannot return them again.

use std::collections::HashMap;

use crate::model::{Execution, FinalStatus};

/// How long an execution may stay pending before it is given up on (and counted in
/// `ssm_association_exporter_pending_abandoned_total`). SSM ends association runs long before
/// this (an association's `Duration` is at most 24 h; command timeouts at most 48 h); the bound
/// keeps memory and the query window finite if the API never reports a final status.
pub const PENDING_HORIZON_MS: i64 = 7 * 24 * 3600 * 1000;

/// What [`Tracker::observe`] made of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Seen final for the first time: count it in `status`. `newest` is true when it is now the
    /// newest final execution (by CreatedTime, then ID), i.e. the one the `last_*` gauges
    /// describe.
    Counted { status: FinalStatus, newest: bool },
    /// Not final yet; it is (still) pending.
    Pending,
    /// Already counted earlier.
    AlreadyCounted,
    /// Created at or before the poll's `since` point: outside what was asked for. Ignored, as the
    /// window logic has already dealt with it (counted, or before the configured look-back).
    OutOfWindow,
}

/// Per-association state. See the module docs for the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracker {
    /// Nothing created at or before this is ever counted (`start - initial_lookback`).
    floor_ms: i64,
    late_window_ms: i64,
    /// Newest CreatedTime seen by a poll that paged to the end.
    watermark_ms: Option<i64>,
    /// Pending executions: ID -> CreatedTime.
    pending: HashMap<String, i64>,
    /// Counted executions still inside the query window: ID -> CreatedTime.
    counted: HashMap<String, i64>,
    /// The current poll: its `since` and the newest CreatedTime it has seen so far.
    poll_since_ms: i64,
    poll_newest_ms: Option<i64>,
    newest_final: Option<(i64, String)>,
    last_success_ms: Option<i64>,
}

/// The durable part of a tracker, for the state file (`persist.rs` owns the on-disk format).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saved {
    pub floor_ms: i64,
    pub watermark_ms: Option<i64>,
    /// Pending executions: ID and CreatedTime.
    pub pending: Vec<(String, i64)>,
    /// Counted executions still remembered: ID and CreatedTime.
    pub counted: Vec<(String, i64)>,
    /// The newest final execution: CreatedTime and ID.
    pub newest_final: Option<(i64, String)>,
    pub last_success_ms: Option<i64>,
}

impl Tracker {
    /// The durable part of the tracker.
    pub fn save(&self) -> Saved {
        let mut pending: Vec<_> = self.pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut counted: Vec<_> = self.counted.iter().map(|(k, v)| (k.clone(), *v)).collect();
        pending.sort();
        counted.sort();
        Saved {
            floor_ms: self.floor_ms,
            watermark_ms: self.watermark_ms,
            pending,
            counted,
            newest_final: self.newest_final.clone(),
            last_success_ms: self.last_success_ms,
        }
    }

    /// A tracker resumed from its durable part, with the current late-visibility window.
    pub fn restore(saved: Saved, late_window_ms: i64) -> Tracker {
        let mut tracker = Tracker::new(saved.floor_ms, late_window_ms);
        tracker.watermark_ms = saved.watermark_ms;
        tracker.pending = saved.pending.into_iter().collect();
        tracker.counted = saved.counted.into_iter().collect();
        tracker.newest_final = saved.newest_final;
        tracker.last_success_ms = saved.last_success_ms;
        tracker.poll_since_ms = tracker.since_ms();
        tracker
    }

    /// A tracker that has seen nothing; the first poll reaches back to `floor_ms`.
    pub fn new(floor_ms: i64, late_window_ms: i64) -> Self {
        Tracker {
            floor_ms,
            late_window_ms: late_window_ms.max(0),
            watermark_ms: None,
            pending: HashMap::new(),
            counted: HashMap::new(),
            poll_since_ms: floor_ms,
            poll_newest_ms: None,
            newest_final: None,
            last_success_ms: None,
        }
    }

    /// Applies a (possibly changed) late-visibility window, e.g. after a restart or reload.
    pub fn set_late_window(&mut self, late_window_ms: i64) {
        self.late_window_ms = late_window_ms.max(0);
    }

    /// The `CreatedTime GREATER_THAN` point the next poll must use.
    pub fn since_ms(&self) -> i64 {
        let from_watermark = self
            .watermark_ms
            .map_or(self.floor_ms, |w| w.saturating_sub(self.late_window_ms))
            .max(self.floor_ms);
        let from_pending = self.pending.values().min().map(|c| c - 1);
        from_pending.map_or(from_watermark, |p| p.min(from_watermark))
    }

    /// Starts a poll: gives up on executions pending for longer than [`PENDING_HORIZON_MS`]
    /// (returning how many), forgets counted IDs the query can no longer return, and fixes the
    /// poll's `since` point (read it with [`Tracker::poll_since_ms`]).
    pub fn begin_poll(&mut self) -> usize {
        let mut abandoned = 0;
        if let Some(watermark) = self.watermark_ms {
            let before = self.pending.len();
            self.pending
                .retain(|_, created| watermark - *created <= PENDING_HORIZON_MS);
            abandoned = before - self.pending.len();
        }
        let since = self.since_ms();
        self.counted.retain(|_, created| *created > since);
        self.poll_since_ms = since;
        self.poll_newest_ms = None;
        abandoned
    }

    /// The `since` point of the poll in progress (or of the last one).
    pub fn poll_since_ms(&self) -> i64 {
        self.poll_since_ms
    }

    /// Takes one execution from a page of the poll in progress.
    pub fn observe(&mut self, execution: &Execution) -> Observation {
        if execution.created_ms <= self.poll_since_ms {
            return Observation::OutOfWindow;
        }
        self.poll_newest_ms = Some(
            self.poll_newest_ms
                .map_or(execution.created_ms, |n| n.max(execution.created_ms)),
        );
        if self.counted.contains_key(&execution.id) {
            return Observation::AlreadyCounted;
        }
        let Some(status) = execution.status.final_status() else {
            self.pending
                .insert(execution.id.clone(), execution.created_ms);
            return Observation::Pending;
        };
        self.pending.remove(&execution.id);
        self.counted
            .insert(execution.id.clone(), execution.created_ms);
        if status == FinalStatus::Success {
            self.last_success_ms = Some(
                self.last_success_ms
                    .map_or(execution.created_ms, |s| s.max(execution.created_ms)),
            );
        }
        let key = (execution.created_ms, execution.id.as_str());
        let newest = match &self.newest_final {
            None => true,
            Some((created, id)) => key > (*created, id.as_str()),
        };
        if newest {
            self.newest_final = Some((execution.created_ms, execution.id.clone()));
        }
        Observation::Counted { status, newest }
    }

    /// Ends the poll in progress. Only a poll that paged to the end (`complete`) moves the
    /// watermark: an incomplete one may have missed older executions on later pages.
    pub fn finish_poll(&mut self, complete: bool) {
        if complete {
            if let Some(newest) = self.poll_newest_ms {
                self.watermark_ms = Some(self.watermark_ms.map_or(newest, |w| w.max(newest)));
            }
        }
        self.poll_newest_ms = None;
    }

    /// Newest CreatedTime seen by a complete poll, or the floor when none has seen anything.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms.unwrap_or(self.floor_ms)
    }

    /// Executions seen but not final.
    pub fn in_progress(&self) -> usize {
        self.pending.len()
    }

    /// Counted IDs kept for de-duplication (bounded by the query window).
    pub fn remembered(&self) -> usize {
        self.counted.len()
    }

    /// CreatedTime of the newest Success counted.
    pub fn last_success_ms(&self) -> Option<i64> {
        self.last_success_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn exec(id: &str, status: &str, created_ms: i64) -> Execution {
        Execution {
            id: id.to_string(),
            status: Status::parse(status),
            created_ms,
            ended_ms: None,
            resource_counts: None,
            triggered_alarms: Vec::new(),
        }
    }

    fn poll(t: &mut Tracker, visible: &[Execution]) -> Vec<Observation> {
        t.begin_poll();
        let since = t.poll_since_ms();
        let out = visible
            .iter()
            .filter(|e| e.created_ms > since)
            .map(|e| t.observe(e))
            .collect();
        t.finish_poll(true);
        out
    }

    #[test]
    fn first_poll_reaches_back_to_the_floor() {
        let mut t = Tracker::new(1_000, 600);
        t.begin_poll();
        assert_eq!(t.poll_since_ms(), 1_000);
        assert_eq!(
            t.observe(&exec("old", "Success", 1_000)),
            Observation::OutOfWindow
        );
        assert_eq!(
            t.observe(&exec("a", "Success", 1_001)),
            Observation::Counted {
                status: FinalStatus::Success,
                newest: true
            }
        );
    }

    #[test]
    fn in_progress_then_final_is_counted_once_when_final() {
        let mut t = Tracker::new(0, 100);
        assert_eq!(
            poll(&mut t, &[exec("a", "InProgress", 50)]),
            [Observation::Pending]
        );
        assert_eq!(t.in_progress(), 1);
        // Much later, the watermark has moved far past it, but the pending execution keeps
        // the window open.
        let later: Vec<_> = (0..5)
            .map(|i| exec(&format!("n{i}"), "Success", 10_000 + i))
            .collect();
        poll(&mut t, &later);
        assert_eq!(
            t.poll_since_ms(),
            0,
            "first poll of the new ones still used the old window"
        );
        t.begin_poll();
        assert_eq!(
            t.poll_since_ms(),
            49,
            "pending execution keeps since below it"
        );
        t.finish_poll(true);
        let mut all = later.clone();
        all.push(exec("a", "Failed", 50));
        let obs = poll(&mut t, &all);
        assert_eq!(
            obs.iter()
                .filter(|o| matches!(o, Observation::Counted { .. }))
                .count(),
            1
        );
        assert_eq!(t.in_progress(), 0);
        // Once final, the window closes up to the watermark minus the late window.
        t.begin_poll();
        assert_eq!(t.poll_since_ms(), 10_004 - 100);
        t.finish_poll(true);
    }

    #[test]
    fn newest_final_is_by_created_time_not_by_arrival() {
        let mut t = Tracker::new(0, 1_000);
        t.begin_poll();
        assert_eq!(
            t.observe(&exec("b", "Success", 200)),
            Observation::Counted {
                status: FinalStatus::Success,
                newest: true
            }
        );
        assert_eq!(
            t.observe(&exec("a", "Failed", 100)),
            Observation::Counted {
                status: FinalStatus::Failed,
                newest: false
            }
        );
        assert_eq!(
            t.observe(&exec("c", "Failed", 200)),
            Observation::Counted {
                status: FinalStatus::Failed,
                newest: true
            }
        );
        assert_eq!(t.last_success_ms(), Some(200));
    }

    #[test]
    fn incomplete_poll_does_not_move_the_watermark_and_rereading_counts_nothing_twice() {
        let mut t = Tracker::new(0, 0);
        t.begin_poll();
        assert_eq!(
            t.observe(&exec("new", "Success", 500)),
            Observation::Counted {
                status: FinalStatus::Success,
                newest: true
            }
        );
        t.finish_poll(false); // failed before the page holding "old"
        assert_eq!(t.watermark_ms(), 0);
        t.begin_poll();
        assert_eq!(t.poll_since_ms(), 0);
        assert_eq!(
            t.observe(&exec("new", "Success", 500)),
            Observation::AlreadyCounted
        );
        assert_eq!(
            t.observe(&exec("old", "Failed", 100)),
            Observation::Counted {
                status: FinalStatus::Failed,
                newest: false
            }
        );
        t.finish_poll(true);
        assert_eq!(t.watermark_ms(), 500);
    }

    #[test]
    fn late_visible_execution_inside_the_window_is_counted() {
        let mut t = Tracker::new(0, 1_000);
        poll(&mut t, &[exec("b", "Success", 5_000)]);
        let obs = poll(
            &mut t,
            &[exec("b", "Success", 5_000), exec("late", "Failed", 4_200)],
        );
        assert_eq!(
            obs,
            [
                Observation::AlreadyCounted,
                Observation::Counted {
                    status: FinalStatus::Failed,
                    newest: false
                }
            ]
        );
    }

    #[test]
    fn window_never_reaches_below_the_floor() {
        // The newest execution is just after the floor; the late window must not pull in
        // history from before the configured look-back.
        let mut t = Tracker::new(10_000, 5_000);
        poll(&mut t, &[exec("a", "Success", 10_500)]);
        t.begin_poll();
        assert_eq!(t.poll_since_ms(), 10_000);
    }

    #[test]
    fn counted_ids_are_forgotten_once_the_window_has_passed_them() {
        let mut t = Tracker::new(0, 100);
        let execs: Vec<_> = (1..=1_000)
            .map(|i| exec(&format!("e{i}"), "Success", i * 10))
            .collect();
        poll(&mut t, &execs);
        assert_eq!(t.remembered(), 1_000);
        t.begin_poll();
        // Only the executions newer than watermark (10_000) minus the window (100) remain.
        assert_eq!(t.remembered(), 10);
    }

    #[test]
    fn executions_pending_beyond_the_horizon_are_abandoned() {
        let mut t = Tracker::new(0, 0);
        poll(&mut t, &[exec("stuck", "InProgress", 1)]);
        poll(
            &mut t,
            &[
                exec("stuck", "InProgress", 1),
                exec("n", "Success", PENDING_HORIZON_MS + 2),
            ],
        );
        assert_eq!(t.begin_poll(), 1);
        assert_eq!(t.in_progress(), 0);
        assert_eq!(t.poll_since_ms(), PENDING_HORIZON_MS + 2);
    }

    #[test]
    fn unknown_status_is_pending_not_an_error() {
        let mut t = Tracker::new(0, 0);
        assert_eq!(
            poll(&mut t, &[exec("a", "SomethingNew", 5)]),
            [Observation::Pending]
        );
        assert_eq!(t.in_progress(), 1);
    }

    /// Model check: a random history of executions that start pending, finish later, and may
    /// become visible late (within the window), polled at random times with polls that fail
    /// half-way and pages in random order, always ends with exactly the true counts.
    #[test]
    fn random_histories_are_counted_exactly_once() {
        for seed in 0..300u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let late_window = rng.random_range(0..2_000i64);
            let floor = 1_000i64;
            let mut t = Tracker::new(floor, late_window);
            // (execution, visible_from, final_from, final_status)
            let mut history: Vec<(Execution, i64, i64, &str)> = Vec::new();
            let mut counted: BTreeMap<String, u64> = BTreeMap::new();
            let mut now = floor - 500;
            let mut next_id = 0;
            for _round in 0..rng.random_range(5..40) {
                let step = rng.random_range(1..3_000);
                now += step;
                for _ in 0..rng.random_range(0..6) {
                    // Created since the last poll; visible within half the late window.
                    let created = now - rng.random_range(0..step);
                    let visible_from = created + rng.random_range(0..=late_window.max(1) / 2);
                    let final_from = created + rng.random_range(0..5_000);
                    let status = FinalStatus::ALL[rng.random_range(0..5)].name();
                    history.push((
                        exec(&format!("x{next_id}"), "InProgress", created),
                        visible_from,
                        final_from,
                        status,
                    ));
                    next_id += 1;
                }
                // A poll: the API view at `now`, in random order, maybe failing half-way.
                t.begin_poll();
                let since = t.poll_since_ms();
                let mut view: Vec<Execution> = history
                    .iter()
                    .filter(|(e, vis, _, _)| *vis <= now && e.created_ms > since)
                    .map(|(e, _, fin, status)| {
                        let mut e = e.clone();
                        if *fin <= now {
                            e.status = Status::parse(status);
                        }
                        e
                    })
                    .collect();
                for i in (1..view.len()).rev() {
                    view.swap(i, rng.random_range(0..=i));
                }
                let fail_at = if rng.random_bool(0.3) {
                    rng.random_range(0..=view.len())
                } else {
                    usize::MAX
                };
                for (i, e) in view.iter().enumerate() {
                    if i == fail_at {
                        break;
                    }
                    if let Observation::Counted { .. } = t.observe(e) {
                        *counted.entry(e.status.as_str().to_string()).or_default() += 1;
                    }
                }
                t.finish_poll(fail_at == usize::MAX);
            }
            // Let everything finish and become visible; one complete poll must catch up.
            let view: Vec<Execution> = history
                .iter()
                .map(|(e, _, _, status)| Execution {
                    status: Status::parse(status),
                    ..e.clone()
                })
                .collect();
            t.begin_poll();
            let since = t.poll_since_ms();
            for e in view.iter().filter(|e| e.created_ms > since) {
                if let Observation::Counted { .. } = t.observe(e) {
                    *counted.entry(e.status.as_str().to_string()).or_default() += 1;
                }
            }
            t.finish_poll(true);
            let mut truth: BTreeMap<String, u64> = BTreeMap::new();
            for e in view.iter().filter(|e| e.created_ms > floor) {
                *truth.entry(e.status.as_str().to_string()).or_default() += 1;
            }
            assert_eq!(counted, truth, "seed {seed}");
            assert_eq!(t.in_progress(), 0, "seed {seed}");
        }
    }
}
