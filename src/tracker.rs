//! The counting rules of one association: watermark, paging run, pending and counted executions.
//!
//! Pure: no I/O and no clock of its own (callers pass "now", from AWS's clock). The rules that
//! make the exported numbers true live here:
//!
//! - An execution is counted once, the first time it is seen in a final status
//!   ([`FinalStatus`]). Anything else (Pending, InProgress, Associated, unknown strings) is
//!   pending until it is final.
//! - A *run* pages through `CreatedTime GREATER_THAN since`, where `since` is the newest
//!   CreatedTime seen by a complete run minus the late-visibility window, never below the floor
//!   (`initial_lookback` before the first poll) and never below any `since` used before: IDs
//!   counted above that point are all remembered, so no configuration change (a wider window, a
//!   longer look-back) can make the query return an execution whose ID was forgotten.
//! - Only a run that reached a real end (no `NextToken`) moves the watermark. A run interrupted
//!   by an error keeps its place (the token to send next) and the next poll resumes it, so a
//!   deep backlog converges under sustained partial failure. A repeated or cycling token ends
//!   the run without moving the watermark; the next poll starts a new one.
//! - Executions still pending when the window has moved past their CreatedTime are re-checked
//!   by `ExecutionId`, less often as they age, so one stuck execution neither pins the window
//!   back nor multiplies requests. Pending for longer than [`PENDING_HORIZON_MS`]: abandoned.
//! - An execution dated more than [`FUTURE_TOLERANCE_MS`] after now is counted once but never
//!   moves the watermark, nor the `last_*` gauges.
//! - Counted IDs are forgotten once `since` has moved past them: the API cannot return them.

use std::collections::{HashMap, HashSet};

use crate::model::{Execution, FinalStatus};

/// How long an execution may stay pending before it is given up on (and counted in
/// `ssm_association_exporter_pending_abandoned_total`). SSM ends association runs long before
/// this (an association's `Duration` is at most 24 h; command timeouts at most 48 h).
pub const PENDING_HORIZON_MS: i64 = 7 * 24 * 3600 * 1000;

/// CreatedTime this far after now is bogus: counted, logged, but it never moves the watermark.
pub const FUTURE_TOLERANCE_MS: i64 = 15 * 60 * 1000;

/// Re-checks of a stuck execution are spaced by a quarter of its age, at most this.
pub const MAX_RECHECK_SPACING_MS: i64 = 15 * 60 * 1000;

/// What [`Tracker::observe`] made of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Seen final for the first time: count it in `status`. `newest` is true when it is now the
    /// newest final execution (by CreatedTime, then ID), i.e. the one the `last_*` gauges
    /// describe. `late_ms`: first seen only after the watermark had passed it, by this much.
    /// `future`: dated beyond [`FUTURE_TOLERANCE_MS`] after now.
    Counted {
        status: FinalStatus,
        newest: bool,
        late_ms: Option<i64>,
        future: bool,
    },
    /// Not final yet; it is (still) pending. `late_ms` as above, on its first sighting.
    Pending { late_ms: Option<i64> },
    /// Already counted earlier.
    AlreadyCounted,
    /// Created at or before the run's `since` point: outside what was asked for. Ignored, as the
    /// window logic has already dealt with it (counted, or before the configured look-back).
    OutOfWindow,
}

/// What to do after a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Ask for the next page with this token.
    More(String),
    /// The run reached its end; the watermark moved.
    End,
    /// The API sent a token it had already sent in this run (repeated or cycling): the run is
    /// dropped without moving the watermark; the next poll starts a new one.
    Repeated,
}

/// Where a poll starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollStart {
    /// Pending executions given up on at this start.
    pub abandoned: usize,
    /// The run's `CreatedTime GREATER_THAN` point.
    pub since_ms: i64,
    /// The token to send first (`Some` when an interrupted run is resumed).
    pub token: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct Pending {
    created_ms: i64,
    /// When it may be re-checked by ID (once the window has passed it).
    next_check_ms: i64,
}

/// One paging run through `CreatedTime GREATER_THAN since_ms`, possibly over several polls.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    since_ms: i64,
    /// The token to send next; `None` for the first page.
    token: Option<String>,
    /// Every token received in this run.
    tokens: HashSet<String>,
    /// Newest CreatedTime seen in this run (future-dated ones excepted).
    newest_ms: Option<i64>,
    /// The watermark when the run started: what is first seen at or below it arrived late.
    watermark_ms: Option<i64>,
}

/// Per-association state. See the module docs for the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracker {
    lookback_ms: i64,
    late_window_ms: i64,
    /// Nothing created at or before this is ever counted; set by the first poll to
    /// `now - initial_lookback`.
    floor_ms: Option<i64>,
    /// Newest CreatedTime seen by a complete run.
    watermark_ms: Option<i64>,
    /// The highest `since` used so far: every counted ID created after it is remembered.
    memory_floor_ms: i64,
    pending: HashMap<String, Pending>,
    /// Counted executions still inside the query window: ID -> CreatedTime.
    counted: HashMap<String, i64>,
    run: Option<Run>,
    newest_final: Option<(i64, String)>,
    last_success_ms: Option<i64>,
}

/// The durable part of a tracker, for the state file (`persist.rs` owns the on-disk format).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saved {
    pub floor_ms: Option<i64>,
    pub watermark_ms: Option<i64>,
    /// The highest `since` used so far (`None`: the floor).
    pub memory_floor_ms: Option<i64>,
    /// Pending executions: ID and CreatedTime.
    pub pending: Vec<(String, i64)>,
    /// Counted executions still remembered: ID and CreatedTime.
    pub counted: Vec<(String, i64)>,
    /// The newest final execution: CreatedTime and ID.
    pub newest_final: Option<(i64, String)>,
    pub last_success_ms: Option<i64>,
}

impl Tracker {
    /// A tracker that has seen nothing; its first poll reaches back `lookback_ms`.
    pub fn new(lookback_ms: i64, late_window_ms: i64) -> Self {
        Tracker {
            lookback_ms: lookback_ms.max(0),
            late_window_ms: late_window_ms.max(0),
            floor_ms: None,
            watermark_ms: None,
            memory_floor_ms: i64::MIN,
            pending: HashMap::new(),
            counted: HashMap::new(),
            run: None,
            newest_final: None,
            last_success_ms: None,
        }
    }

    /// The durable part of the tracker. A run in progress is not saved: after a restart the
    /// next poll starts a new run (what was counted is remembered, so nothing counts twice).
    pub fn save(&self) -> Saved {
        let mut pending: Vec<_> = self
            .pending
            .iter()
            .map(|(k, p)| (k.clone(), p.created_ms))
            .collect();
        let mut counted: Vec<_> = self.counted.iter().map(|(k, v)| (k.clone(), *v)).collect();
        pending.sort();
        counted.sort();
        Saved {
            floor_ms: self.floor_ms,
            watermark_ms: self.watermark_ms,
            memory_floor_ms: (self.memory_floor_ms != i64::MIN).then_some(self.memory_floor_ms),
            pending,
            counted,
            newest_final: self.newest_final.clone(),
            last_success_ms: self.last_success_ms,
        }
    }

    /// A tracker resumed from its durable part, with the current settings.
    pub fn restore(saved: Saved, lookback_ms: i64, late_window_ms: i64) -> Tracker {
        let mut tracker = Tracker::new(lookback_ms, late_window_ms);
        tracker.floor_ms = saved.floor_ms;
        tracker.watermark_ms = saved.watermark_ms;
        tracker.memory_floor_ms = saved.memory_floor_ms.or(saved.floor_ms).unwrap_or(i64::MIN);
        tracker.pending = saved
            .pending
            .into_iter()
            .map(|(id, created_ms)| {
                let pending = Pending {
                    created_ms,
                    next_check_ms: i64::MIN,
                };
                (id, pending)
            })
            .collect();
        tracker.counted = saved.counted.into_iter().collect();
        tracker.newest_final = saved.newest_final;
        tracker.last_success_ms = saved.last_success_ms;
        tracker
    }

    /// Applies a (possibly changed) late-visibility window. A wider window takes effect as the
    /// watermark moves on: `since` never goes below a point already used.
    pub fn set_late_window(&mut self, late_window_ms: i64) {
        self.late_window_ms = late_window_ms.max(0);
    }

    /// The `since` point a new run would use (the look-back start before the first poll).
    fn next_since_ms(&self, floor_ms: i64) -> i64 {
        let from_watermark = self
            .watermark_ms
            .map_or(floor_ms, |w| w.saturating_sub(self.late_window_ms));
        from_watermark.max(floor_ms).max(self.memory_floor_ms)
    }

    /// Starts a poll at `now_ms`: sets the floor on the first one, gives up on executions
    /// pending for longer than [`PENDING_HORIZON_MS`], and resumes the interrupted run or
    /// starts a new one (forgetting counted IDs the new run's query cannot return).
    pub fn begin_poll(&mut self, now_ms: i64) -> PollStart {
        let floor = *self
            .floor_ms
            .get_or_insert(now_ms.saturating_sub(self.lookback_ms));
        let before = self.pending.len();
        let horizon = now_ms.saturating_sub(PENDING_HORIZON_MS);
        self.pending.retain(|_, p| p.created_ms >= horizon);
        let abandoned = before - self.pending.len();
        if self.run.is_none() {
            let since = self.next_since_ms(floor);
            self.counted.retain(|_, created| *created > since);
            self.memory_floor_ms = since;
            self.run = Some(Run {
                since_ms: since,
                token: None,
                tokens: HashSet::new(),
                newest_ms: None,
                watermark_ms: self.watermark_ms,
            });
        }
        let run = self.run.as_ref().expect("a run was just ensured");
        PollStart {
            abandoned,
            since_ms: run.since_ms,
            token: run.token.clone(),
        }
    }

    /// Whether a poll has started (the look-back start is fixed).
    pub fn started(&self) -> bool {
        self.floor_ms.is_some()
    }

    /// The `since` point of the current run (or of the next one).
    pub fn since_ms(&self) -> i64 {
        match &self.run {
            Some(run) => run.since_ms,
            None => self.next_since_ms(self.floor_ms.unwrap_or(i64::MIN)),
        }
    }

    /// Takes one execution from a page of the current run.
    pub fn observe(&mut self, execution: &Execution, now_ms: i64) -> Observation {
        let Some(run) = self.run.as_mut() else {
            return Observation::OutOfWindow;
        };
        if execution.created_ms <= run.since_ms {
            return Observation::OutOfWindow;
        }
        let future = execution.created_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS);
        if !future {
            run.newest_ms = Some(
                run.newest_ms
                    .map_or(execution.created_ms, |n| n.max(execution.created_ms)),
            );
        }
        if self.counted.contains_key(&execution.id) {
            return Observation::AlreadyCounted;
        }
        let first_sighting = !self.pending.contains_key(&execution.id);
        let late_ms = run
            .watermark_ms
            .filter(|w| first_sighting && execution.created_ms <= *w)
            .map(|w| w - execution.created_ms);
        let Some(status) = execution.status.final_status() else {
            self.pending.entry(execution.id.clone()).or_insert(Pending {
                created_ms: execution.created_ms,
                next_check_ms: i64::MIN,
            });
            return Observation::Pending { late_ms };
        };
        self.pending.remove(&execution.id);
        self.counted
            .insert(execution.id.clone(), execution.created_ms);
        let newest = !future && self.note_final(execution, status);
        Observation::Counted {
            status,
            newest,
            late_ms,
            future,
        }
    }

    /// Records a final execution for the `last_*` gauges; true when it is now the newest.
    fn note_final(&mut self, execution: &Execution, status: FinalStatus) -> bool {
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
        newest
    }

    /// Takes the `NextToken` of the page just read.
    pub fn next_page(&mut self, token: Option<String>) -> Paging {
        let Some(run) = self.run.as_mut() else {
            return Paging::End;
        };
        match token.filter(|t| !t.is_empty()) {
            None => {
                if let Some(newest) = run.newest_ms {
                    self.watermark_ms = Some(self.watermark_ms.map_or(newest, |w| w.max(newest)));
                }
                self.run = None;
                Paging::End
            }
            Some(token) if run.tokens.contains(&token) => {
                self.run = None;
                Paging::Repeated
            }
            Some(token) => {
                run.tokens.insert(token.clone());
                run.token = Some(token.clone());
                Paging::More(token)
            }
        }
    }

    /// The token of the current run went stale: page again from its `since` point (what was
    /// counted is remembered, so nothing counts twice).
    pub fn restart_run(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.token = None;
            run.tokens.clear();
        }
    }

    /// Pending executions the current run's window has passed, due for a re-check by ID at
    /// `now_ms`, oldest first, at most `max`.
    pub fn due_rechecks(&self, now_ms: i64, max: usize) -> Vec<String> {
        // The highest `since` a query has actually used (a wider window may lower the next).
        let since = self
            .run
            .as_ref()
            .map_or(self.memory_floor_ms, |r| r.since_ms);
        let mut due: Vec<(i64, &String)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.created_ms <= since && p.next_check_ms <= now_ms)
            .map(|(id, p)| (p.created_ms, id))
            .collect();
        due.sort();
        due.into_iter()
            .take(max)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Takes the answer of a re-check of pending execution `id` by ID (`None`: not returned).
    pub fn observe_recheck(
        &mut self,
        id: &str,
        found: Option<&Execution>,
        now_ms: i64,
    ) -> Observation {
        let Some(pending) = self.pending.get_mut(id) else {
            return Observation::AlreadyCounted;
        };
        let status = found
            .filter(|e| e.id == id)
            .and_then(|e| e.status.final_status().map(|s| (e, s)));
        let Some((execution, status)) = status else {
            let age = now_ms.saturating_sub(pending.created_ms).max(0);
            pending.next_check_ms = now_ms + (age / 4).min(MAX_RECHECK_SPACING_MS);
            return Observation::Pending { late_ms: None };
        };
        self.pending.remove(id);
        // Remembered like any counted execution, in case a later query reaches back to it.
        self.counted
            .insert(execution.id.clone(), execution.created_ms);
        let future = execution.created_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS);
        let newest = !future && self.note_final(execution, status);
        Observation::Counted {
            status,
            newest,
            late_ms: None,
            future,
        }
    }

    /// Newest CreatedTime seen by a complete run, or the floor when none has seen anything.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms.or(self.floor_ms)
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

    /// Whether a run is open (an interrupted one will be resumed).
    pub fn run_open(&self) -> bool {
        self.run.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    const NOW: i64 = 1_800_000_000_000;

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

    fn counted(o: &Observation) -> bool {
        matches!(o, Observation::Counted { .. })
    }

    /// One complete run over `visible` (as the API would filter it) at `now`.
    fn poll(t: &mut Tracker, visible: &[Execution], now: i64) -> Vec<Observation> {
        let start = t.begin_poll(now);
        let out = visible
            .iter()
            .filter(|e| e.created_ms > start.since_ms)
            .map(|e| t.observe(e, now))
            .collect();
        assert_eq!(t.next_page(None), Paging::End);
        out
    }

    #[test]
    fn first_poll_reaches_back_the_lookback_from_now() {
        let mut t = Tracker::new(1_000, 600);
        let start = t.begin_poll(NOW);
        assert_eq!(start.since_ms, NOW - 1_000);
        assert_eq!(
            t.observe(&exec("old", "Success", NOW - 1_000), NOW),
            Observation::OutOfWindow
        );
        assert!(counted(&t.observe(&exec("a", "Success", NOW - 999), NOW)));
    }

    #[test]
    fn newest_final_is_by_created_time_not_by_arrival() {
        let mut t = Tracker::new(10_000, 1_000);
        t.begin_poll(NOW);
        let newest = |o| match o {
            Observation::Counted { newest, .. } => newest,
            other => panic!("{other:?}"),
        };
        assert!(newest(t.observe(&exec("b", "Success", NOW - 200), NOW)));
        assert!(!newest(t.observe(&exec("a", "Failed", NOW - 300), NOW)));
        assert!(newest(t.observe(&exec("c", "Failed", NOW - 200), NOW)));
        assert_eq!(t.last_success_ms(), Some(NOW - 200));
    }

    /// A run interrupted half-way keeps its place: the next poll resumes with the token, and
    /// only the run that reaches the end moves the watermark.
    #[test]
    fn an_interrupted_run_is_resumed_not_restarted() {
        let mut t = Tracker::new(10_000, 0);
        let start = t.begin_poll(NOW);
        assert_eq!(start.token, None);
        assert!(counted(&t.observe(&exec("p1", "Success", NOW - 10), NOW)));
        assert_eq!(t.next_page(Some("B".into())), Paging::More("B".into()));
        // The request with token B fails: the poll ends; the next resumes at B.
        let again = t.begin_poll(NOW + 60_000);
        assert_eq!(again.token.as_deref(), Some("B"));
        assert_eq!(again.since_ms, start.since_ms);
        assert_eq!(t.watermark_ms(), Some(NOW - 10_000), "not moved yet");
        assert!(counted(&t.observe(&exec("p2", "Failed", NOW - 20), NOW)));
        assert_eq!(t.next_page(None), Paging::End);
        assert_eq!(t.watermark_ms(), Some(NOW - 10));
    }

    #[test]
    fn repeated_or_cycling_tokens_end_the_run_without_moving_the_watermark() {
        for cycle in [vec!["A", "A"], vec!["A", "B", "A"]] {
            let mut t = Tracker::new(10_000, 0);
            t.begin_poll(NOW);
            t.observe(&exec("x", "Success", NOW - 5), NOW);
            let mut last = Paging::End;
            for token in &cycle {
                last = t.next_page(Some(token.to_string()));
            }
            assert_eq!(last, Paging::Repeated, "{cycle:?}");
            assert_eq!(t.watermark_ms(), Some(NOW - 10_000));
            assert!(!t.run_open());
            // The next poll starts a new run from the same point; what was counted stays so.
            let start = t.begin_poll(NOW + 1);
            assert_eq!((start.since_ms, start.token), (NOW - 10_000, None));
            assert_eq!(
                t.observe(&exec("x", "Success", NOW - 5), NOW),
                Observation::AlreadyCounted
            );
        }
    }

    /// Widening the window (reload or restart, 2 minutes to an hour) must not move `since`
    /// back past IDs already forgotten.
    #[test]
    fn a_wider_window_never_reaches_below_what_is_remembered() {
        let mut t = Tracker::new(3_600_000, 120_000);
        let history: Vec<_> = (0..60)
            .map(|i| exec(&format!("e{i}"), "Success", NOW - 3_000_000 + i * 50_000))
            .collect();
        let obs = poll(&mut t, &history, NOW);
        assert_eq!(obs.iter().filter(|o| counted(o)).count(), 60);
        poll(&mut t, &history, NOW + 1); // forgets all but the last 2 minutes
        let remembered = t.remembered();
        t.set_late_window(3_600_000);
        let saved = t.save();
        for mut t in [t.clone(), Tracker::restore(saved, 3_600_000, 3_600_000)] {
            let obs = poll(&mut t, &history, NOW + 2);
            assert_eq!(
                obs.iter().filter(|o| counted(o)).count(),
                0,
                "counted twice"
            );
            assert_eq!(t.remembered(), remembered);
        }
    }

    /// A stuck execution does not pin the window: once the window has passed it, it is
    /// re-checked by ID, less often as it ages, and counted when it finally ends.
    #[test]
    fn a_stuck_execution_is_rechecked_by_id_and_the_window_moves_on() {
        let mut t = Tracker::new(3_600_000, 60_000);
        poll(&mut t, &[exec("stuck", "InProgress", NOW - 1_000)], NOW);
        let mut now = NOW;
        let mut checks = Vec::new();
        let mut done = Vec::new();
        for minute in 1..=600 {
            now = NOW + minute * 60_000;
            let fresh = exec(&format!("n{minute}"), "Success", now - 1_000);
            poll(&mut t, &[fresh], now);
            if minute >= 2 {
                assert!(t.since_ms() > NOW, "since moved past the stuck execution");
            }
            for id in t.due_rechecks(now, 5) {
                checks.push(minute);
                let answer = exec(
                    &id,
                    if minute < 590 { "InProgress" } else { "Failed" },
                    NOW - 1_000,
                );
                done.push(t.observe_recheck(&id, Some(&answer), now));
            }
        }
        // Every minute at first, then spaced by a quarter of its age, 15 minutes at most:
        // about 50 checks over 10 hours instead of 600.
        assert!(checks.len() < 60, "{} re-checks", checks.len());
        assert_eq!(done.iter().filter(|o| counted(o)).count(), 1);
        assert_eq!(t.in_progress(), 0);
        assert!(t.remembered() < 5, "{} IDs remembered", t.remembered());
        let _ = now;
    }

    #[test]
    fn executions_pending_beyond_the_horizon_are_abandoned() {
        let mut t = Tracker::new(3_600_000, 0);
        poll(&mut t, &[exec("stuck", "InProgress", NOW - 1)], NOW);
        assert_eq!(t.begin_poll(NOW + PENDING_HORIZON_MS - 2).abandoned, 0);
        t.next_page(None);
        assert_eq!(t.begin_poll(NOW + PENDING_HORIZON_MS + 1).abandoned, 1);
        assert_eq!(t.in_progress(), 0);
    }

    /// A final execution dated 2100 is counted once, and the watermark stays where it was.
    #[test]
    fn a_future_date_is_counted_once_and_never_moves_the_watermark() {
        let mut t = Tracker::new(3_600_000, 60_000);
        let bogus = exec("bogus", "Failed", 4_102_444_800_000);
        let real = exec("real", "Success", NOW - 5_000);
        let obs = poll(&mut t, &[bogus.clone(), real.clone()], NOW);
        assert_eq!(
            obs[0],
            Observation::Counted {
                status: FinalStatus::Failed,
                newest: false,
                late_ms: None,
                future: true
            }
        );
        assert_eq!(t.watermark_ms(), Some(NOW - 5_000));
        for i in 1..5 {
            let later = exec(&format!("l{i}"), "Success", NOW + i * 60_000 - 1);
            let obs = poll(&mut t, &[bogus.clone(), later], NOW + i * 60_000);
            assert_eq!(obs[0], Observation::AlreadyCounted);
            assert!(counted(&obs[1]));
            assert_eq!(t.watermark_ms(), Some(NOW + i * 60_000 - 1));
        }
    }

    #[test]
    fn executions_first_seen_behind_the_watermark_are_reported_late() {
        let mut t = Tracker::new(3_600_000, 600_000);
        poll(&mut t, &[exec("b", "Success", NOW - 1_000)], NOW);
        let obs = poll(
            &mut t,
            &[
                exec("b", "Success", NOW - 1_000),
                exec("late", "Failed", NOW - 91_000),
            ],
            NOW + 1,
        );
        assert_eq!(obs[0], Observation::AlreadyCounted);
        assert_eq!(
            obs[1],
            Observation::Counted {
                status: FinalStatus::Failed,
                newest: false,
                late_ms: Some(90_000),
                future: false
            }
        );
    }

    #[test]
    fn counted_ids_are_forgotten_once_the_window_has_passed_them() {
        let mut t = Tracker::new(100_000, 100);
        let execs: Vec<_> = (1..=1_000)
            .map(|i| exec(&format!("e{i}"), "Success", NOW - 100_000 + i * 10))
            .collect();
        poll(&mut t, &execs, NOW);
        assert_eq!(t.remembered(), 1_000);
        t.begin_poll(NOW + 1);
        // Only those newer than the watermark minus the window (100 ms) remain.
        assert_eq!(t.remembered(), 10);
    }

    #[test]
    fn unknown_status_is_pending_not_an_error() {
        let mut t = Tracker::new(1_000, 0);
        assert_eq!(
            poll(&mut t, &[exec("a", "SomethingNew", NOW - 5)], NOW),
            [Observation::Pending { late_ms: None }]
        );
        assert_eq!(t.in_progress(), 1);
    }

    #[test]
    fn saved_and_restored_trackers_behave_the_same() {
        let mut t = Tracker::new(3_600_000, 60_000);
        poll(
            &mut t,
            &[
                exec("a", "Success", NOW - 10),
                exec("p", "Pending", NOW - 20),
            ],
            NOW,
        );
        let mut restored = Tracker::restore(t.save(), 3_600_000, 60_000);
        let next = [
            exec("a", "Success", NOW - 10),
            exec("p", "Failed", NOW - 20),
        ];
        assert_eq!(
            poll(&mut restored, &next, NOW + 1),
            poll(&mut t, &next, NOW + 1)
        );
        assert_eq!(restored.save(), t.save());
    }

    /// Model check: random histories (executions that start pending, finish later, become
    /// visible late within the window, get stuck for a while, or are dated far in the future)
    /// polled with random page sizes, polls that fail half-way (the run resumes), stale and
    /// repeated tokens, random changes of the late window (reloads) and of the look-back,
    /// and crashes that restore the last save. Published numbers are those of the last save;
    /// they must never go down, and must end equal to the truth.
    #[test]
    fn random_histories_configs_faults_and_crashes_are_counted_exactly_once() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeMap;

        struct World {
            /// execution, visible from, final from, final status
            history: Vec<(Execution, i64, i64, FinalStatus)>,
        }
        impl World {
            fn status_at(&self, i: usize, now: i64) -> Execution {
                let (e, _, fin, status) = &self.history[i];
                let mut e = e.clone();
                if *fin <= now {
                    e.status = Status::Final(*status);
                }
                e
            }
            /// What DescribeAssociationExecutions returns at `now`, newest first.
            fn view(&self, since: i64, now: i64) -> Vec<Execution> {
                let mut v: Vec<Execution> = (0..self.history.len())
                    .filter(|i| self.history[*i].1 <= now && self.history[*i].0.created_ms > since)
                    .map(|i| self.status_at(i, now))
                    .collect();
                v.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
                v
            }
            fn by_id(&self, id: &str, now: i64) -> Option<Execution> {
                let i = self.history.iter().position(|h| h.0.id == id)?;
                (self.history[i].1 <= now).then(|| self.status_at(i, now))
            }
        }
        type Counts = BTreeMap<FinalStatus, u64>;

        for seed in 0..400u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            // Executions become visible at most 500 ms late; every window used is larger (a
            // window shrunk below the real lateness loses executions, as documented).
            let mut window = rng.random_range(1_000..3_000i64);
            let mut lookback = rng.random_range(1_000..20_000i64);
            let start_now = 1_000_000i64;
            let mut t = Tracker::new(lookback, window);
            let mut world = World {
                history: Vec::new(),
            };
            // The last save: the tracker's durable part and the numbers published with it.
            let mut saved: Option<(Saved, Counts)> = None;
            let mut live_counts: Counts = BTreeMap::new();
            let mut published: Counts = BTreeMap::new();
            let mut now = start_now;
            let mut next_id = 0;
            let mut floor = None;

            let observe = |t: &mut Tracker, e: &Execution, now: i64, counts: &mut Counts| {
                if let Observation::Counted { status, .. } = t.observe(e, now) {
                    *counts.entry(status).or_default() += 1;
                }
            };
            for _round in 0..rng.random_range(10..60) {
                let step = rng.random_range(1..2_500);
                now += step;
                for _ in 0..rng.random_range(0..8) {
                    let future = rng.random_bool(0.03);
                    let created = if future {
                        now + 1_000_000_000 + rng.random_range(0..1_000)
                    } else {
                        now - rng.random_range(0..step)
                    };
                    let visible = created.min(now) + rng.random_range(0..=500);
                    let stuck = rng.random_bool(0.1);
                    let fin = created.min(now)
                        + if stuck {
                            rng.random_range(20_000..60_000)
                        } else {
                            rng.random_range(0..5_000)
                        };
                    let status = FinalStatus::ALL[rng.random_range(0..5)];
                    let e = exec(&format!("x{next_id}"), "InProgress", created);
                    world.history.push((e, visible, fin, status));
                    next_id += 1;
                }
                // Operator actions: a reload with another window, a restart with another
                // look-back (the floor stays), or a crash back to the last save.
                match rng.random_range(0..20) {
                    0 => {
                        window = rng.random_range(1_000..3_000);
                        t.set_late_window(window);
                    }
                    1 => {
                        lookback = rng.random_range(1_000..20_000);
                        window = rng.random_range(1_000..3_000);
                        let (s, counts) = (t.save(), live_counts.clone());
                        t = Tracker::restore(s.clone(), lookback, window);
                        saved = Some((s, counts));
                    }
                    2 => {
                        // Crash: back to the last save (or to nothing).
                        match &saved {
                            Some((s, counts)) => {
                                t = Tracker::restore(s.clone(), lookback, window);
                                live_counts = counts.clone();
                            }
                            None => {
                                t = Tracker::new(lookback, window);
                                live_counts.clear();
                                floor = None;
                            }
                        }
                    }
                    _ => {}
                }
                // A poll: pages of random size, maybe failing, maybe a stale or repeated token.
                let start = t.begin_poll(now);
                floor.get_or_insert(start.since_ms);
                let view = world.view(start.since_ms, now);
                let page_size = rng.random_range(1..6);
                let mut offset: usize = start.token.as_deref().map_or(0, |t| t.parse().unwrap());
                loop {
                    if rng.random_bool(0.15) {
                        break; // the request fails: the run stays open
                    }
                    if rng.random_bool(0.03) {
                        t.restart_run(); // InvalidNextToken: page again from the start
                        offset = 0;
                        continue;
                    }
                    let end = (offset + page_size).min(view.len());
                    for e in &view[offset.min(end)..end] {
                        observe(&mut t, e, now, &mut live_counts);
                    }
                    let token = if rng.random_bool(0.02) {
                        Some(offset.to_string()) // the API repeats a token
                    } else {
                        (end < view.len()).then(|| end.to_string())
                    };
                    match t.next_page(token) {
                        Paging::More(next) => offset = next.parse().unwrap(),
                        Paging::End | Paging::Repeated => break,
                    }
                }
                for id in t.due_rechecks(now, 5) {
                    let found = world.by_id(&id, now);
                    if let Observation::Counted { status, .. } =
                        t.observe_recheck(&id, found.as_ref(), now)
                    {
                        *live_counts.entry(status).or_default() += 1;
                    }
                }
                // A save now and then: published numbers are exactly the saved ones.
                if rng.random_bool(0.4) {
                    saved = Some((t.save(), live_counts.clone()));
                    let counts = live_counts.clone();
                    for (status, n) in &counts {
                        assert!(
                            *n >= published.get(status).copied().unwrap_or(0),
                            "seed {seed}: {status} went down"
                        );
                    }
                    published = counts;
                }
            }
            // Everything finishes and is visible; polls catch up (stuck ones via re-checks).
            now += 100_000;
            for _ in 0..200 {
                let start = t.begin_poll(now);
                let view = world.view(start.since_ms, now);
                for e in &view {
                    observe(&mut t, e, now, &mut live_counts);
                }
                assert_eq!(t.next_page(None), Paging::End);
                for id in t.due_rechecks(now, 5) {
                    let found = world.by_id(&id, now);
                    if let Observation::Counted { status, .. } =
                        t.observe_recheck(&id, found.as_ref(), now)
                    {
                        *live_counts.entry(status).or_default() += 1;
                    }
                }
                if t.in_progress() == 0 {
                    break;
                }
                now += 60_000;
            }
            assert_eq!(t.in_progress(), 0, "seed {seed}");
            let floor = t.floor_ms.unwrap();
            let mut truth: Counts = BTreeMap::new();
            for (e, _, _, status) in &world.history {
                if e.created_ms > floor {
                    *truth.entry(*status).or_default() += 1;
                }
            }
            assert_eq!(live_counts, truth, "seed {seed}");
            for (status, n) in &published {
                assert!(
                    live_counts[status] >= *n,
                    "seed {seed}: {status} went down at the end"
                );
            }
        }
    }
}
