//! Polls asked for by State Manager events ([`crate::events`]): a watched association named by
//! an event is polled now (reason `event`), once for every trigger that came before the poll
//! started, and each trigger is answered when that poll has ended. Events only move a poll
//! earlier: the poll counts what `DescribeAssociationExecutions` shows, whatever the event said.
//!
//! A trigger a poll already answers makes none: one whose event is dated (to the second) no
//! later than the start of a poll of its association that ended well, or of the running one, is
//! answered by it; one that comes during a poll, dated after its start, is answered by that
//! poll if it reads something new, else waits for a poll of its own.
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
    /// A follow-up is due.
    FollowUp,
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
    /// Triggers that came during a poll, dated after its start: answered by it if it reads
    /// something new, else they wait for a poll of their own. What had been read when they
    /// came, and the newest event time, by association.
    late: HashMap<String, (Progress, i64, Vec<oneshot::Sender<Answer>>)>,
}

/// An event's `time` has whole seconds: one dated `t` happened before `t` + this.
pub const EVENT_TIME_RESOLUTION_MS: i64 = 1_000;

impl EventPolls {
    pub(super) fn new(registration: Registration) -> EventPolls {
        EventPolls {
            registration: Some(registration),
            ..EventPolls::default()
        }
    }

    /// The next trigger, or the time of the next follow-up (never, without a registration).
    pub(super) async fn next(&mut self) -> Option<Wake> {
        let due = self.follow_ups.values().map(|(at, _)| *at).min();
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
            () = follow_up => Some(Wake::FollowUp),
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

    /// A poll of `id` starts now: the triggers waiting for one are answered when it ends.
    pub(super) fn poll_started(&mut self, id: &str) {
        self.started_ms.insert(id.to_string(), now_ms());
        self.waiting_ms.remove(id);
        if let Some(replies) = self.waiting.remove(id) {
            self.running
                .entry(id.to_string())
                .or_default()
                .extend(replies);
        }
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
            Wake::FollowUp => self.start_follow_ups(scope, shared),
        }
    }

    /// Triggers came: those of associations this scope watches are answered by a poll that
    /// started after their event (the last one that ended, or the running one), or by the
    /// running poll if it reads something new; the others wait for a poll, which starts now
    /// unless one is running (then when it ends). Unwatched ones are answered at once.
    fn triggered(&mut self, first: Trigger, scope: &Scope, shared: &Arc<Shared>) {
        for trigger in self.events.drain(first) {
            let id = &trigger.association_id;
            // The newest moment the event may stand for.
            let happened_by = trigger.time_ms.saturating_add(EVENT_TIME_RESOLUTION_MS);
            let known = self.known.contains_key(id);
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
        let asked = self.events.asked.remove(id);
        let Some(entry) = shared.store.get(id) else {
            self.events.follow_ups.remove(id);
            return;
        };
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
    /// The poll of `id` ended (`ok`): the triggers that came during it, dated after its start,
    /// are answered by it if it read something new since they came; else they wait for a poll
    /// of their own (started by `start_event_polls`).
    fn answer_late(&mut self, id: &str, ok: bool, shared: &Shared) {
        let Some((before, newest, replies)) = self.events.late.remove(id) else {
            return;
        };
        let read = shared.store.get(id).map(|entry| progress(&entry));
        let answer = match read {
            _ if !ok => Answer::PollFailed,
            Some(read) if read != before => Answer::Polled {
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

/// How long after a poll that followed `attempt` follow-ups the next one is due: 2, 4, 8, 16 s;
/// `None` after [`FOLLOW_UPS`].
fn follow_up_wait(attempt: u32) -> Option<Duration> {
    (attempt < FOLLOW_UPS).then(|| FIRST_FOLLOW_UP * 2u32.saturating_pow(attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

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
