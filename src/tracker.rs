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
//! - State resumed from the state file or from retirement ([`Resume`]) never reads further
//!   back than `max_backfill`: when it was last current before `now - max_backfill`, the next
//!   run starts at that point (what was created before is skipped, and reported). Where other
//!   shards exist, such old state, or state from before the association moved to another shard
//!   and back, is a *return*: its first run marks every execution created before ownership
//!   was regained, and final by then, as seen without counting it (the previous owner did);
//!   those still running are counted when they end.

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
    /// A return's first run: final, created before ownership was regained, so counted by the
    /// previous owner: remembered, not counted. `newest` as for `Counted` (the `last_*`
    /// gauges describe it).
    Absorbed { status: FinalStatus, newest: bool },
    /// Already counted earlier.
    AlreadyCounted,
    /// Created at or before the run's `since` point: outside what was asked for. Ignored, as the
    /// window logic has already dealt with it (counted, or before the configured look-back).
    OutOfWindow,
}

/// How a tracker resumed from retained state (state file, retirement) starts its next run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Retained state last current (saved, or retired) at `current_ms`; `sharded`: other
    /// shards exist, which may have owned the association meanwhile. Settled by the first
    /// listing or poll ([`Tracker::settle`]).
    Retained { current_ms: i64, sharded: bool },
    /// Ownership came back (or the state is too old to know): executions created before
    /// `at_ms` (when it was regained; set when settled) and final by the first run are
    /// absorbed, not counted.
    Return { at_ms: Option<i64> },
    /// Old state, same owner: the next run starts no earlier than `from_ms`.
    Bounded { from_ms: i64 },
}

impl Resume {
    /// The resume of two facts about one state: a return stays a return, the oldest
    /// retained time wins.
    fn merge(old: Option<Resume>, new: Resume) -> Resume {
        use Resume::*;
        match (old, new) {
            (Some(Return { at_ms }), _) => Return { at_ms },
            (_, Return { at_ms }) => Return { at_ms },
            (Some(Bounded { from_ms }), _)
            | (None | Some(Retained { .. }), Bounded { from_ms }) => Bounded { from_ms },
            (
                Some(Retained {
                    current_ms: a,
                    sharded: x,
                }),
                Retained {
                    current_ms: b,
                    sharded: y,
                },
            ) => Retained {
                current_ms: a.min(b),
                sharded: x || y,
            },
            (None, new) => new,
        }
    }
}

/// A first run that started later than its retained state allows (`max_backfill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// The watermark of the retained state.
    pub watermark_ms: Option<i64>,
    /// Where the run would have started.
    pub would_start_ms: i64,
    /// Where it starts.
    pub start_ms: i64,
}

/// A return's first run has reached its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Returned {
    /// When ownership was regained: final executions created before were absorbed.
    pub at_ms: i64,
    /// Executions absorbed (seen final, not counted).
    pub absorbed: u64,
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
    /// Retained state older than `max_backfill`: the run starts later than it would have.
    pub truncated: Option<Truncated>,
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
    /// A return's first run: final executions created at or before this are absorbed.
    absorb_until_ms: Option<i64>,
    /// Executions absorbed so far in this run.
    absorbed: u64,
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
    /// How far back a run resuming retained state reads at most.
    max_backfill_ms: i64,
    /// How the next run resumes retained state, until it has started (a return: ended).
    resume: Option<Resume>,
    /// A return's first run ended, for the poller to report.
    returned: Option<Returned>,
}

/// The durable part of a tracker, for the state file (`persist` owns the on-disk format).
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
    /// How the next run resumes (a return not yet done, old state not yet bounded).
    pub resume: Option<Resume>,
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
            max_backfill_ms: lookback_ms.max(0),
            resume: None,
            returned: None,
        }
    }

    /// Sets how far back a run resuming retained state reads at most (`max_backfill`;
    /// `initial_lookback` until set).
    pub fn with_max_backfill(mut self, max_backfill_ms: i64) -> Self {
        self.set_max_backfill(max_backfill_ms);
        self
    }

    pub fn set_max_backfill(&mut self, max_backfill_ms: i64) {
        self.max_backfill_ms = max_backfill_ms.max(0);
    }

    /// Marks the state as retained (restored, or retired): the next run resumes it as
    /// `resume` says, merged with what was already known (a return stays a return). An open
    /// run is dropped: its token would be stale by then.
    pub fn resume_as(&mut self, resume: Resume) {
        self.run = None;
        self.resume = Some(Resume::merge(self.resume, resume));
    }

    /// How the next run resumes retained state, if it does.
    pub fn resume(&self) -> Option<Resume> {
        self.resume
    }

    /// Decides, at `now_ms` (AWS's clock, the first listing that watches the association
    /// again, or its first poll), what retained state means: current enough, or old (bounded
    /// when this is the only shard, a return otherwise); a return's moment is now.
    pub fn settle(&mut self, now_ms: i64) {
        let bound = now_ms.saturating_sub(self.max_backfill_ms);
        let before = self.resume;
        self.resume = match self.resume {
            Some(Resume::Retained {
                current_ms,
                sharded,
            }) if current_ms < bound => Some(if sharded {
                Resume::Return {
                    at_ms: Some(now_ms),
                }
            } else {
                Resume::Bounded { from_ms: bound }
            }),
            Some(Resume::Retained { .. }) => None,
            Some(Resume::Return { at_ms: None }) => Some(Resume::Return {
                at_ms: Some(now_ms),
            }),
            other => other,
        };
        if let (Some(Resume::Return { at_ms: Some(at) }), false) = (
            self.resume,
            matches!(before, Some(Resume::Return { at_ms: Some(_) })),
        ) {
            debug_assert_eq!(at, now_ms);
            // Executions pending in the retained state are the other owner's time: the return's
            // run sees again those it can still see; those it finds running are its own.
            self.pending.clear();
        }
    }

    /// The end of a return's first run, once (for the poller to report).
    pub fn take_returned(&mut self) -> Option<Returned> {
        self.returned.take()
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
            resume: self.resume,
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
        tracker.resume = saved.resume;
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
        let started = self.floor_ms.is_some();
        let floor = *self
            .floor_ms
            .get_or_insert(now_ms.saturating_sub(self.lookback_ms));
        let before = self.pending.len();
        let horizon = now_ms.saturating_sub(PENDING_HORIZON_MS);
        self.pending.retain(|_, p| p.created_ms >= horizon);
        let abandoned = before - self.pending.len();
        let mut truncated = None;
        if self.run.is_none() {
            self.settle(now_ms);
            let mut since = self.next_since_ms(floor);
            let mut absorb_until_ms = None;
            let mut watermark_ms = self.watermark_ms;
            match self.resume {
                Some(Resume::Bounded { from_ms }) => {
                    if started && since < from_ms {
                        truncated = Some(Truncated {
                            watermark_ms: self.watermark_ms,
                            would_start_ms: since,
                            start_ms: from_ms,
                        });
                        since = from_ms;
                    }
                    self.resume = None;
                }
                Some(Resume::Return { at_ms }) => {
                    let at = at_ms.unwrap_or(now_ms);
                    // Read no further back than a bounded resume would.
                    since = since.max(at.saturating_sub(self.max_backfill_ms));
                    absorb_until_ms = Some(at);
                    // Nothing the run finds is late: it is all new to this owner.
                    watermark_ms = None;
                }
                Some(Resume::Retained { .. }) | None => {}
            }
            self.counted.retain(|_, created| *created > since);
            self.memory_floor_ms = since;
            self.run = Some(Run {
                since_ms: since,
                token: None,
                tokens: HashSet::new(),
                newest_ms: None,
                watermark_ms,
                absorb_until_ms,
                absorbed: 0,
            });
        }
        let run = self.run.as_ref().expect("a run was just ensured");
        PollStart {
            abandoned,
            since_ms: run.since_ms,
            token: run.token.clone(),
            truncated,
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
        if run
            .absorb_until_ms
            .is_some_and(|at| execution.created_ms <= at)
            && !self.pending.contains_key(&execution.id)
        {
            run.absorbed += 1;
            self.counted
                .insert(execution.id.clone(), execution.created_ms);
            let newest = self.note_final(execution, status);
            return Observation::Absorbed { status, newest };
        }
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
                if let Some(at_ms) = run.absorb_until_ms {
                    self.returned = Some(Returned {
                        at_ms,
                        absorbed: run.absorbed,
                    });
                    self.resume = None;
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

    /// CreatedTime of the newest execution seen but not final (the change feed spaces its
    /// `pending` re-polls by its age).
    pub fn newest_pending_created_ms(&self) -> Option<i64> {
        self.pending.values().map(|p| p.created_ms).max()
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
mod tests;
