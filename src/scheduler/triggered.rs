//! Polls asked for by State Manager events ([`crate::events`]): a watched association named by
//! an event is polled now (reason `event`), once for every trigger that came before the poll
//! started, and each trigger is answered when that poll has ended. Events only move a poll
//! earlier: the poll counts what `DescribeAssociationExecutions` shows, whatever the event said.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::slots::{poll_task, with_slot};
use super::{Scope, ScopeState, Shared};
use crate::clock::now_ms;
use crate::events::{Answer, Registration, Trigger};
use crate::feed::Reason;

/// The triggers of one scope loop.
#[derive(Default)]
pub(super) struct EventPolls {
    /// This loop's place in the events' routes (`None` before its account is known).
    registration: Option<Registration>,
    /// Triggers waiting for a poll that starts after them, by association.
    waiting: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    /// Triggers answered when the running poll of their association ends.
    running: HashMap<String, Vec<oneshot::Sender<Answer>>>,
}

impl EventPolls {
    pub(super) fn new(registration: Registration) -> EventPolls {
        EventPolls {
            registration: Some(registration),
            ..EventPolls::default()
        }
    }

    /// The next trigger (never, without a registration).
    pub(super) async fn next(&mut self) -> Option<Trigger> {
        match &mut self.registration {
            Some(registration) => registration.triggers.recv().await,
            None => std::future::pending().await,
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
        if let Some(replies) = self.waiting.remove(id) {
            self.running
                .entry(id.to_string())
                .or_default()
                .extend(replies);
        }
    }

    /// The poll of `id` ended: its triggers get their answer.
    pub(super) fn poll_ended(&mut self, id: &str, ok: bool) {
        let answer = if ok {
            Answer::Polled {
                published_ms: now_ms(),
            }
        } else {
            Answer::PollFailed
        };
        for reply in self.running.remove(id).unwrap_or_default() {
            let _ = reply.send(answer);
        }
    }
}

impl ScopeState {
    /// Triggers came: those of associations this scope watches wait for a poll, which starts
    /// now unless one is running (then when it ends); the others are answered at once.
    pub(super) fn triggered(&mut self, first: Trigger, scope: &Scope, shared: &Arc<Shared>) {
        for trigger in self.events.drain(first) {
            if self.known.contains_key(&trigger.association_id) {
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

    /// Starts one poll for each association with waiting triggers and no poll running. One
    /// whose polls are failing waits for its retry (the change feed's `retry` rule), not for
    /// an event: its triggers are answered as failed.
    pub(super) fn start_event_polls(&mut self, scope: &Scope, shared: &Arc<Shared>) {
        let ids: Vec<String> = self.events.waiting.keys().cloned().collect();
        for id in ids {
            if self.in_flight.contains(&id) {
                continue;
            }
            let backing_off = self
                .watch
                .get(&id)
                .and_then(|w| w.next_try)
                .is_some_and(|t| Instant::now() < t);
            let (entry, known) = (shared.store.get(&id), self.known.get(&id));
            let (Some(entry), Some(known), false) = (entry, known, backing_off) else {
                let answer = if backing_off {
                    Answer::PollFailed
                } else {
                    Answer::Unwatched
                };
                for reply in self.events.waiting.remove(&id).unwrap_or_default() {
                    let _ = reply.send(answer);
                }
                continue;
            };
            // What the last listing showed: the poll reads at least that much.
            let signature = known.signature();
            shared
                .metrics
                .polls_total
                .with_label_values(&[Reason::Event.name()])
                .inc();
            self.in_flight.insert(id.clone());
            self.events.poll_started(&id);
            let (ssm, shared, details) = (scope.ssm.clone(), shared.clone(), self.details.clone());
            let due = Instant::now();
            self.polls
                .spawn(with_slot(self.poll_slots.clone(), move || {
                    poll_task(entry, ssm, shared, due, signature, details)
                }));
        }
    }
}
