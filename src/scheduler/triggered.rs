//! Polls asked for by State Manager events ([`crate::events`]): a watched association named by
//! an event that announces an end is polled now (reason `event`), once for every trigger that
//! came before the poll started, and each trigger is answered when that poll has ended. Events
//! only move a poll earlier: the poll counts what `DescribeAssociationExecutions` shows,
//! whatever the event said.
//!
//! A progress event (a run starting, one instance's change) asks for a poll within
//! `events.progress_poll_delay` (reason `event` as well): any poll of its association that
//! starts after it meanwhile (most often its run's end's) answers it, so a run that ends within
//! the delay costs one poll.
//!
//! A trigger a poll already answers makes none: one whose event is dated (to the second) no
//! later than the start of a poll of its association that ended well, or of the running one, is
//! answered by it; an end that comes during a poll, dated after its start, is answered by that
//! poll if it reads something new up to the event's second, else waits for a poll of its own.
//!
//! An event's poll that reads nothing new, the event being dated more than [`EVENT_SLACK_MS`]
//! after every execution time read (the run it announces is not visible yet), is followed up:
//! the association is polled again (reason `follow_up`, a count) 2, 4, 8 and 16 s after each
//! such poll ends, [`FOLLOW_UPS`] times at most and never later than `late_visibility_window`
//! after the event's poll started, until a poll of it (of any reason) reads something new.
//! A duplicate of an event whose run was read, or one sent a little after the end it
//! announces, is explained by what was read: no follow-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::slots::{poll_task, with_slot};
use super::{Scope, ScopeState, Shared};
use crate::clock::now_ms;
use crate::events::{Answer, Registration, Trigger};
use crate::feed::Reason;
use crate::model::PerStatus;
use crate::store::{Entry, PollView};
use crate::sync::lock;

/// Follow-ups of one event's poll at most.
pub const FOLLOW_UPS: u32 = 4;
/// The wait before the first follow-up; it doubles for each next one.
pub const FIRST_FOLLOW_UP: Duration = Duration::from_secs(2);
/// An event dated at most this long after the newest execution time read is explained by what
/// was read (a duplicate; an event sent a little after the end it announces).
pub const EVENT_SLACK_MS: i64 = 5_000;

/// What an association's polls have read: a poll that leaves it as it was read nothing new.
type Progress = (Option<i64>, PollView, PerStatus<u64>, usize);

fn progress(entry: &Entry) -> Progress {
    let live = lock(&entry.live);
    let exposed = &live.exposed;
    let in_progress = live.tracker.in_progress();
    (
        exposed.seen_ms,
        exposed.view,
        exposed.executions,
        in_progress,
    )
}

/// A poll asked for by events (or a follow-up of one), and what it follows.
#[derive(Clone)]
struct Asked {
    /// What had been read when it started.
    before: Progress,
    /// The newest time of the events it follows (AWS's clock).
    event_ms: i64,
    /// Follow-ups made before it.
    attempt: u32,
    /// No follow-up after this.
    until: Instant,
}

/// What woke the scope loop for events.
pub(super) enum Wake {
    Trigger(Trigger),
    /// A follow-up or a progress event's poll is due.
    Due,
}

/// Progress triggers of one association whose poll may wait.
struct Deferred {
    /// When their poll is due.
    due: Instant,
    /// The newest time of their events.
    newest_ms: i64,
    /// Each trigger: its event's time, and its reply.
    replies: Vec<(i64, oneshot::Sender<Answer>)>,
}

/// The triggers of one scope loop.
#[derive(Default)]
pub(super) struct EventPolls {
    /// This loop's place in the events' routes (`None` before its account is known).
    registration: Option<Registration>,
    /// Triggers waiting for a poll that starts after them, by association.
    waiting: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    /// The newest time of the events waiting, by association.
    waiting_ms: HashMap<String, i64>,
    /// Triggers answered when the running poll of their association ends.
    running: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    /// The running polls asked for by events or follow-ups, by association.
    asked: HashMap<String, Asked>,
    /// The follow-ups to start, by association: when, and what they follow.
    follow_ups: HashMap<String, (Instant, Asked)>,
    /// When the running poll started (epoch ms, this machine's clock), by association.
    started_ms: HashMap<String, i64>,
    /// When the last poll that ended well started and ended (epoch ms), by association.
    last_ok: HashMap<String, (i64, i64)>,
    /// End triggers that came during a poll, dated after its start: answered by it if it reads
    /// something new up to their second, else they wait for a poll of their own. What had been
    /// read when they came, and the newest event time, by association.
    late: HashMap<String, (Progress, i64, Vec<oneshot::Sender<Answer>>)>,
    /// Progress triggers whose poll may wait, by association.
    deferred: HashMap<String, Deferred>,
    /// What end events said of each association's runs, and what polls read of them.
    ends: HashMap<String, Ends>,
}

/// The end events of one association against what its polls read: the evidence that lets the
/// change feed skip its `late` poll ([`EventPolls::read_through`]).
#[derive(Default)]
struct Ends {
    /// Times of end events whose run no poll has read yet, oldest first, at most
    /// [`UNMATCHED_KEPT`] (more keep the oldest: any is enough to keep the `late` poll).
    unmatched: Vec<i64>,
    /// The newest end event whose run a poll read.
    matched_ms: Option<i64>,
}

/// Unmatched end events kept per association.
const UNMATCHED_KEPT: usize = 16;

/// Whether `entry`'s polls have read a final execution that ended (or, without an end time,
/// was created) when an end event dated `time_ms` says: from [`EVENT_SLACK_MS`] before its
/// second to the second's end. Among the [`crate::store::RECENT_ENDS`] newest ends read, and
/// the [`crate::store::RECENT_EXECUTIONS`] newest runs that did not succeed.
fn read_end(entry: &Entry, time_ms: i64) -> bool {
    let live = lock(&entry.live);
    let from = time_ms.saturating_sub(EVENT_SLACK_MS);
    let until = happened_by(time_ms);
    let ends = (live.exposed.view.recent_ends.iter().copied())
        .chain((live.exposed.recent.iter()).map(|r| r.ended_ms.unwrap_or(r.created_ms)));
    ends.into_iter().any(|end| from <= end && end < until)
}

/// An event's `time` has whole seconds: one dated `t` happened before `t` + this.
pub const EVENT_TIME_RESOLUTION_MS: i64 = 1_000;

/// The newest moment an event dated `time_ms` may stand for.
fn happened_by(time_ms: i64) -> i64 {
    time_ms.saturating_add(EVENT_TIME_RESOLUTION_MS)
}

impl EventPolls {
    pub(super) fn new(registration: Registration) -> EventPolls {
        EventPolls {
            registration: Some(registration),
            ..EventPolls::default()
        }
    }

    /// The next trigger, or the time of the next follow-up or progress poll (never, without a
    /// registration).
    pub(super) async fn next(&mut self) -> Option<Wake> {
        let follow_ups = self.follow_ups.values().map(|(at, _)| *at);
        let due = (follow_ups.chain(self.deferred.values().map(|d| d.due))).min();
        let Some(registration) = &mut self.registration else {
            return std::future::pending().await;
        };
        let follow_up = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            trigger = registration.triggers.recv() => trigger.map(Wake::Trigger),
            () = follow_up => Some(Wake::Due),
        }
    }

    /// `first` and every trigger already queued behind it: those that came together.
    fn drain(&mut self, first: Trigger) -> Vec<Trigger> {
        let mut all = vec![first];
        if let Some(registration) = &mut self.registration {
            while let Ok(trigger) = registration.triggers.try_recv() {
                all.push(trigger);
            }
        }
        all
    }

    /// A poll of `id` starts now: the triggers waiting for one, and the progress triggers
    /// whose event it comes after, are answered when it ends.
    pub(super) fn poll_started(&mut self, id: &str) {
        let now = now_ms();
        self.started_ms.insert(id.to_string(), now);
        self.waiting_ms.remove(id);
        // Most polls have no trigger to answer: nothing is kept for them.
        if let Some(replies) = self.waiting.remove(id) {
            (self.running.entry(id.to_string()).or_default()).extend(replies);
        }
        if let Some(deferred) = self.deferred.get_mut(id) {
            let (before, after): (Vec<_>, Vec<_>) = std::mem::take(&mut deferred.replies)
                .into_iter()
                .partition(|(time_ms, _)| happened_by(*time_ms) <= now);
            if !before.is_empty() {
                (self.running.entry(id.to_string()).or_default())
                    .extend(before.into_iter().map(|(_, reply)| reply));
            }
            deferred.replies = after;
            if deferred.replies.is_empty() {
                self.deferred.remove(id);
            }
        }
    }

    /// The progress triggers whose poll is due wait for one now.
    fn release_deferred(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = (self.deferred.iter())
            .filter(|(_, d)| d.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(deferred) = self.deferred.remove(&id) else {
                continue;
            };
            let newest = self.waiting_ms.entry(id.clone()).or_insert(i64::MIN);
            *newest = (*newest).max(deferred.newest_ms);
            (self.waiting.entry(id).or_default())
                .extend(deferred.replies.into_iter().map(|(_, reply)| reply));
        }
    }

    /// `ids` are no longer watched: their triggers not answered yet are answered as such (a
    /// running poll's when it ends), and what was kept of them goes.
    pub(super) fn forget(&mut self, ids: &[String]) {
        for id in ids {
            let replies = (self.waiting.remove(id).into_iter().flatten())
                .chain(self.late.remove(id).into_iter().flat_map(|(_, _, r)| r))
                .chain(
                    (self.deferred.remove(id).into_iter())
                        .flat_map(|d| d.replies.into_iter().map(|(_, reply)| reply)),
                );
            for reply in replies {
                let _ = reply.send(Answer::Unwatched);
            }
            self.waiting_ms.remove(id);
            self.follow_ups.remove(id);
            self.last_ok.remove(id);
            self.ends.remove(id);
        }
    }

    /// How many triggers wait for an answer here (for tests).
    #[cfg(test)]
    fn progress_answer_count(&self) -> usize {
        self.waiting.values().map(Vec::len).sum::<usize>()
            + (self.deferred.values())
                .map(|d| d.replies.len())
                .sum::<usize>()
    }

    /// An end event of `id` dated `time_ms` came: matched now if a poll has read its run, else
    /// kept until one does.
    fn end_announced(&mut self, id: &str, time_ms: i64, entry: &Entry) {
        let ends = self.ends.entry(id.to_string()).or_default();
        if read_end(entry, time_ms) {
            ends.matched_ms = ends.matched_ms.max(Some(time_ms));
        } else if !ends.unmatched.contains(&time_ms) && ends.unmatched.len() < UNMATCHED_KEPT {
            ends.unmatched.push(time_ms);
        }
    }

    /// A poll of `entry` that started at `started_ms` (host clock) ended well: the end events
    /// whose run it read are matched; those a window (`late_window_ms`) older than its start
    /// go, that poll having read everything that became visible within their window (it was
    /// their `late` poll).
    fn match_ends(&mut self, entry: &Entry, started_ms: i64, late_window_ms: i64) {
        let Some(ends) = self.ends.get_mut(&entry.id) else {
            return;
        };
        let mut matched = ends.matched_ms;
        ends.unmatched.retain(|&time_ms| {
            if read_end(entry, time_ms) {
                matched = matched.max(Some(time_ms));
                return false;
            }
            time_ms.saturating_add(late_window_ms) > started_ms
        });
        ends.matched_ms = matched;
    }

    /// Whether every end event of `id` was matched by a poll's read and the newest matched
    /// reaches `last` (the listing's `LastExecutionDate`): then State Manager's events have
    /// announced the association's runs up to `last` and its polls have read them all, and the
    /// change feed's `late` poll, whose job is a run that became visible after the polls that
    /// followed it, has none to find that an event announced. `false` without events, or
    /// while the queue does not deliver (the run at `last` was never announced).
    pub(super) fn read_through(&self, id: &str, last: Option<i64>) -> bool {
        let (Some(ends), Some(last)) = (self.ends.get(id), last) else {
            return false;
        };
        ends.unmatched.is_empty() && ends.matched_ms.is_some_and(|m| happened_by(m) > last)
    }

    /// Associations with anything kept for them (for tests of [`EventPolls::forget`]).
    #[cfg(test)]
    fn kept(&self) -> std::collections::BTreeSet<&str> {
        (self.waiting.keys().chain(self.waiting_ms.keys()))
            .chain(self.late.keys())
            .chain(self.deferred.keys())
            .chain(self.follow_ups.keys())
            .chain(self.last_ok.keys())
            .chain(self.ends.keys())
            .map(String::as_str)
            .collect()
    }

    /// The poll of `id` ended: its triggers get their answer.
    pub(super) fn poll_ended(&mut self, id: &str, ok: bool) {
        let started = self.started_ms.remove(id);
        let now = now_ms();
        match started {
            Some(started) if ok => {
                self.last_ok.insert(id.to_string(), (started, now));
            }
            _ => {}
        }
        let answer = if ok {
            Answer::Polled { published_ms: now }
        } else {
            Answer::PollFailed
        };
        for reply in self.running.remove(id).unwrap_or_default() {
            let _ = reply.send(answer);
        }
    }
}

impl ScopeState {
    /// Events woke the loop: triggers came, or a follow-up is due.
    pub(super) fn woken(&mut self, wake: Wake, scope: &Scope, shared: &Arc<Shared>) {
        match wake {
            Wake::Trigger(first) => self.triggered(first, scope, shared),
            Wake::Due => {
                self.start_follow_ups(scope, shared);
                self.events.release_deferred();
                self.start_event_polls(scope, shared);
            }
        }
    }

    /// Triggers came: those of associations this scope watches are answered by a poll that
    /// started after their event (the last one that ended, or the running one); progress ones
    /// by the next poll that starts after them, due within the progress delay; ends by the
    /// running poll if it reads up to them, else they wait for a poll, which starts now unless
    /// one is running (then when it ends). Unwatched ones are answered at once.
    fn triggered(&mut self, first: Trigger, scope: &Scope, shared: &Arc<Shared>) {
        for trigger in self.events.drain(first) {
            let id = &trigger.association_id;
            let happened_by = happened_by(trigger.time_ms);
            let known = self.known.contains_key(id);
            if let Some(entry) = shared
                .store
                .get(id)
                .filter(|_| known && trigger.announces_end)
            {
                self.events.end_announced(id, trigger.time_ms, &entry);
            }
            if let Some(&(_, ended)) = (self.events.last_ok.get(id))
                .filter(|(started, _)| known && happened_by <= *started)
            {
                let _ = trigger.reply.send(Answer::Polled {
                    published_ms: ended,
                });
                continue;
            }
            if known && self.in_flight.contains(id) {
                let started = self.events.started_ms.get(id).copied();
                if started.is_some_and(|started| happened_by <= started) {
                    self.events
                        .running
                        .entry(trigger.association_id)
                        .or_default()
                        .push(trigger.reply);
                    continue;
                }
            }
            if known && !trigger.announces_end && !shared.progress_poll_delay.is_zero() {
                let deferred =
                    (self.events.deferred.entry(trigger.association_id)).or_insert_with(|| {
                        Deferred {
                            due: Instant::now() + shared.progress_poll_delay,
                            newest_ms: i64::MIN,
                            replies: Vec::new(),
                        }
                    });
                deferred.newest_ms = deferred.newest_ms.max(trigger.time_ms);
                deferred.replies.push((trigger.time_ms, trigger.reply));
                continue;
            }
            if known && self.in_flight.contains(id) {
                if let Some(entry) = shared.store.get(id) {
                    let (_, newest, replies) = (self.events.late)
                        .entry(trigger.association_id)
                        .or_insert_with(|| (progress(&entry), i64::MIN, Vec::new()));
                    *newest = (*newest).max(trigger.time_ms);
                    replies.push(trigger.reply);
                    continue;
                }
            }
            if known {
                let newest = self
                    .events
                    .waiting_ms
                    .entry(trigger.association_id.clone())
                    .or_insert(trigger.time_ms);
                *newest = (*newest).max(trigger.time_ms);
                self.events
                    .waiting
                    .entry(trigger.association_id)
                    .or_default()
                    .push(trigger.reply);
            } else {
                let _ = trigger.reply.send(Answer::Unwatched);
            }
        }
        self.start_event_polls(scope, shared);
    }

    /// Whether `id` can be polled now for events: its entry, if it is watched and its polls
    /// are not waiting for their retry (the change feed's `retry` rule polls it then).
    fn pollable(&self, id: &str, shared: &Shared) -> Result<Arc<Entry>, Answer> {
        let backing_off = self
            .watch
            .get(id)
            .and_then(|w| w.next_try)
            .is_some_and(|t| Instant::now() < t);
        match (shared.store.get(id), self.known.contains_key(id)) {
            _ if backing_off => Err(Answer::PollFailed),
            (Some(entry), true) => Ok(entry),
            _ => Err(Answer::Unwatched),
        }
    }

    /// Starts one poll for each association with waiting triggers and no poll running. One
    /// whose polls are failing waits for its retry (the change feed's `retry` rule), not for
    /// an event: its triggers are answered as failed.
    pub(super) fn start_event_polls(&mut self, scope: &Scope, shared: &Arc<Shared>) {
        let ids: Vec<String> = self.events.waiting.keys().cloned().collect();
        for id in ids {
            if self.in_flight.contains(&id) {
                continue;
            }
            let entry = match self.pollable(&id, shared) {
                Ok(entry) => entry,
                Err(answer) => {
                    self.events.waiting_ms.remove(&id);
                    for reply in self.events.waiting.remove(&id).unwrap_or_default() {
                        let _ = reply.send(answer);
                    }
                    continue;
                }
            };
            let late_window = Duration::from_millis(shared.late_window_ms.max(0) as u64);
            let asked = Asked {
                before: progress(&entry),
                event_ms: self.events.waiting_ms.get(&id).copied().unwrap_or(i64::MIN),
                attempt: 0,
                until: Instant::now() + late_window,
            };
            // This poll reads at least what a follow-up waiting would.
            self.events.follow_ups.remove(&id);
            self.start_asked_poll(entry, Reason::Event, asked, scope, shared);
        }
    }

    /// Starts the follow-ups that are due; one whose association is being polled waits a
    /// second more (that poll ends it if it reads something new).
    fn start_follow_ups(&mut self, scope: &Scope, shared: &Arc<Shared>) {
        let now = Instant::now();
        let due: Vec<String> = (self.events.follow_ups.iter())
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if self.in_flight.contains(&id) {
                if let Some((at, _)) = self.events.follow_ups.get_mut(&id) {
                    *at = now + Duration::from_secs(1);
                }
                continue;
            }
            let Some((_, asked)) = self.events.follow_ups.remove(&id) else {
                continue;
            };
            if let Ok(entry) = self.pollable(&id, shared) {
                let asked = Asked {
                    before: progress(&entry),
                    ..asked
                };
                self.start_asked_poll(entry, Reason::FollowUp, asked, scope, shared);
            }
        }
    }

    /// Starts the poll of `entry` for `reason`, `event` or `follow_up`; it answers the
    /// triggers waiting for one.
    fn start_asked_poll(
        &mut self,
        entry: Arc<Entry>,
        reason: Reason,
        asked: Asked,
        scope: &Scope,
        shared: &Arc<Shared>,
    ) {
        let id = entry.id.clone();
        // What the last listing showed: the poll reads at least that much.
        let signature = self
            .known
            .get(&id)
            .map(|l| l.signature())
            .unwrap_or_default();
        shared
            .metrics
            .polls_total
            .with_label_values(&[reason.name()])
            .inc();
        self.in_flight.insert(id.clone());
        self.events.poll_started(&id);
        self.events.asked.insert(id, asked);
        let priority = super::slots::priority(reason);
        let (ssm, shared, details) = (scope.ssm.at(priority), shared.clone(), self.details.clone());
        let due = Instant::now();
        self.polls
            .spawn(with_slot(self.poll_slots.clone(), priority, move || {
                poll_task(entry, ssm, shared, due, signature, details)
            }));
    }

    /// The poll of `id` ended (`ok`): a follow-up waiting goes once a poll has read something
    /// new; a poll asked for by events that read nothing new, the events being dated after
    /// everything read, is followed up, within the bounds of [`FOLLOW_UPS`] and the window.
    pub(super) fn follow_up(&mut self, id: &str, ok: bool, shared: &Shared) {
        self.answer_late(id, ok, shared);
        self.answer_deferred(id, ok, shared);
        let asked = self.events.asked.remove(id);
        let Some(entry) = shared.store.get(id) else {
            self.events.follow_ups.remove(id);
            return;
        };
        if let Some(&(started, _)) = self.events.last_ok.get(id).filter(|_| ok) {
            self.events
                .match_ends(&entry, started, shared.late_window_ms);
        }
        let read = progress(&entry);
        if let Some((_, waiting)) = self.events.follow_ups.get(id) {
            if waiting.before != read {
                self.events.follow_ups.remove(id);
            }
        }
        let Some(asked) = asked else {
            return;
        };
        let explained = read.0.map(|seen| seen.saturating_add(EVENT_SLACK_MS));
        if !ok || asked.before != read || explained.is_some_and(|e| asked.event_ms <= e) {
            return;
        }
        let at = follow_up_wait(asked.attempt).map(|wait| Instant::now() + wait);
        if let Some(at) = at.filter(|at| *at <= asked.until) {
            let next = Asked {
                attempt: asked.attempt + 1,
                ..asked
            };
            self.events.follow_ups.insert(id.to_string(), (at, next));
        }
    }
}

impl ScopeState {
    /// The poll of `id` ended (`ok`): the end triggers that came during it, dated after its
    /// start, are answered by it if it read something new since they came, up to their
    /// second (an execution time read no earlier than the newest event's whole second: what
    /// was new may be an earlier change, such as the run's start, and not the end announced);
    /// else they wait for a poll of their own (started by `start_event_polls`).
    fn answer_late(&mut self, id: &str, ok: bool, shared: &Shared) {
        let Some((before, newest, replies)) = self.events.late.remove(id) else {
            return;
        };
        let read = shared.store.get(id).map(|entry| progress(&entry));
        let reached = |read: &Progress| read.0.is_some_and(|seen| seen >= newest);
        let answer = match read {
            _ if !ok => Answer::PollFailed,
            Some(read) if read != before && reached(&read) => Answer::Polled {
                published_ms: now_ms(),
            },
            _ => {
                let waiting_ms = self
                    .events
                    .waiting_ms
                    .entry(id.to_string())
                    .or_insert(newest);
                *waiting_ms = (*waiting_ms).max(newest);
                (self.events.waiting.entry(id.to_string()).or_default()).extend(replies);
                return;
            }
        };
        for reply in replies {
            let _ = reply.send(answer);
        }
    }
}

impl ScopeState {
    /// The poll of `id` ended (`ok`): the progress triggers that came during it are answered
    /// by it if it read an execution time no earlier than their event's whole second (an
    /// instance's end dated the second of the run's end that poll read); the others keep
    /// waiting for their poll.
    fn answer_deferred(&mut self, id: &str, ok: bool, shared: &Shared) {
        let seen = shared.store.get(id).and_then(|entry| progress(&entry).0);
        let (Some(seen), Some(deferred), true) = (seen, self.events.deferred.get_mut(id), ok)
        else {
            return;
        };
        let (read, not_yet): (Vec<_>, Vec<_>) = std::mem::take(&mut deferred.replies)
            .into_iter()
            .partition(|(time_ms, _)| *time_ms <= seen);
        deferred.replies = not_yet;
        if deferred.replies.is_empty() {
            self.events.deferred.remove(id);
        }
        let answer = Answer::Polled {
            published_ms: now_ms(),
        };
        for (_, reply) in read {
            let _ = reply.send(answer);
        }
    }
}

/// How long after a poll that followed `attempt` follow-ups the next one is due: 2, 4, 8, 16 s;
/// `None` after [`FOLLOW_UPS`].
fn follow_up_wait(attempt: u32) -> Option<Duration> {
    (attempt < FOLLOW_UPS).then(|| FIRST_FOLLOW_UP * 2u32.saturating_pow(attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retired association's triggers are answered as unwatched (none left hanging, so
    /// their messages are deleted), and nothing of it is kept.
    #[tokio::test]
    async fn forgetting_answers_and_drops_everything_kept() {
        let mut polls = EventPolls::default();
        let mut answers = Vec::new();
        let mut reply = || {
            let (tx, rx) = oneshot::channel();
            answers.push(rx);
            tx
        };
        for id in ["a", "b"] {
            polls.waiting.insert(id.to_string(), vec![reply(), reply()]);
            polls.waiting_ms.insert(id.to_string(), 1);
            polls.deferred.insert(
                id.to_string(),
                Deferred {
                    due: Instant::now(),
                    newest_ms: 1,
                    replies: vec![(1, reply())],
                },
            );
            polls.last_ok.insert(id.to_string(), (1, 2));
        }
        let before = polls.progress_answer_count();
        polls.forget(&["a".to_string()]);
        assert_eq!(polls.kept(), ["b"].into_iter().collect());
        assert_eq!(before, 6);
        let mut unwatched = 0;
        for mut answer in answers {
            match answer.try_recv() {
                Ok(Answer::Unwatched) => unwatched += 1,
                Ok(other) => panic!("{other:?}"),
                Err(_) => {}
            }
        }
        assert_eq!(unwatched, 3, "a's three triggers answered, b's kept");
    }

    /// Four follow-ups at most, 2 s then doubling: 30 s in all after the event's poll.
    #[test]
    fn follow_ups_double_and_stop() {
        let waits: Vec<Option<u64>> = (0..=FOLLOW_UPS)
            .map(|a| follow_up_wait(a).map(|w| w.as_secs()))
            .collect();
        assert_eq!(waits, vec![Some(2), Some(4), Some(8), Some(16), None]);
        assert_eq!(follow_up_wait(u32::MAX), None);
    }
}
