//! From an event's account and region to the scope loops that watch them: each scope loop
//! registers its [`ScopeKey`] and takes the triggers sent to it; a trigger is answered when the
//! poll it asked for has ended, or at once when the scope does not watch the association.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::model::ScopeKey;
use crate::sync::lock;

/// A request for a poll of one association: now for an event that announces an end, within
/// `events.progress_poll_delay` for progress.
#[derive(Debug)]
pub struct Trigger {
    /// Lower case.
    pub association_id: String,
    /// The event's `time` (AWS's clock), epoch milliseconds.
    pub time_ms: i64,
    /// The event may announce a run's end ([`crate::events::parse::Event::announces_end`]).
    pub announces_end: bool,
    pub reply: oneshot::Sender<Answer>,
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A poll that started after the trigger came has ended successfully; its numbers were
    /// published at `published_ms` (epoch milliseconds), or are at the next state save.
    Polled { published_ms: i64 },
    /// That poll failed, or the association's polls are failing and wait for their retry: the
    /// change feed's `retry` rule polls it.
    PollFailed,
    /// The scope does not watch the association.
    Unwatched,
}

/// A registered scope loop: its registration number and where its triggers go.
type Loop = (u64, mpsc::UnboundedSender<Trigger>);

/// The scope loops of the running configuration, by account and region.
#[derive(Default)]
pub struct Routes {
    scopes: Mutex<HashMap<ScopeKey, Vec<Loop>>>,
    next: AtomicU64,
}

/// A scope loop's place in [`Routes`]: its triggers; dropping it leaves the routes (triggers not
/// answered yet are dropped, so the messages that sent them are not deleted).
pub struct Registration {
    routes: Arc<Routes>,
    key: ScopeKey,
    id: u64,
    pub triggers: mpsc::UnboundedReceiver<Trigger>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut scopes = lock(&self.routes.scopes);
        if let Some(senders) = scopes.get_mut(&self.key) {
            senders.retain(|(id, _)| *id != self.id);
            if senders.is_empty() {
                scopes.remove(&self.key);
            }
        }
    }
}

impl Routes {
    /// Registers a scope loop of `key` (several may share one: the same account configured
    /// twice; each answers for what it watches).
    pub fn register(self: &Arc<Self>, key: ScopeKey) -> Registration {
        let (tx, triggers) = mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.scopes)
            .entry(key.clone())
            .or_default()
            .push((id, tx));
        Registration {
            routes: self.clone(),
            key,
            id,
            triggers,
        }
    }

    /// Asks every scope loop of `key` for a poll of `association_id` (for an event dated
    /// `time_ms`, announcing an end or not); their answers to come. Empty when no loop watches
    /// that account and region.
    pub fn trigger(
        &self,
        key: &ScopeKey,
        association_id: &str,
        time_ms: i64,
        announces_end: bool,
    ) -> Vec<oneshot::Receiver<Answer>> {
        let scopes = lock(&self.scopes);
        let Some(senders) = scopes.get(key) else {
            return Vec::new();
        };
        senders
            .iter()
            .filter_map(|(_, tx)| {
                let (reply, answer) = oneshot::channel();
                let trigger = Trigger {
                    association_id: association_id.to_string(),
                    time_ms,
                    announces_end,
                    reply,
                };
                tx.send(trigger).ok().map(|()| answer)
            })
            .collect()
    }
}

/// One answer from the answers of every scope loop asked: a poll if any polled, else a failure
/// if any failed, else unwatched; `None` when a loop stopped before it answered (the message
/// stays in the queue and comes back).
pub async fn combine(answers: Vec<oneshot::Receiver<Answer>>) -> Option<Answer> {
    let mut best = Answer::Unwatched;
    for answer in answers {
        best = match (answer.await.ok()?, best) {
            (polled @ Answer::Polled { .. }, _) | (_, polled @ Answer::Polled { .. }) => polled,
            (Answer::PollFailed, _) | (_, Answer::PollFailed) => Answer::PollFailed,
            _ => Answer::Unwatched,
        };
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, region: &str) -> ScopeKey {
        ScopeKey {
            account_id: account.into(),
            region: region.into(),
        }
    }

    /// An event reaches the loops of its own account and region only; none registered: no
    /// answer to wait for; a loop that ends leaves the routes.
    #[tokio::test]
    async fn triggers_go_to_their_account_and_region() {
        let routes = Arc::new(Routes::default());
        let mut eu = routes.register(key("111111111111", "eu-west-1"));
        let mut us = routes.register(key("111111111111", "us-east-1"));
        assert!(routes
            .trigger(&key("222222222222", "eu-west-1"), "a", 0, true)
            .is_empty());
        let answers = routes.trigger(&key("111111111111", "eu-west-1"), "a", 0, true);
        assert_eq!(answers.len(), 1);
        let trigger = eu.triggers.try_recv().unwrap();
        assert_eq!(trigger.association_id, "a");
        assert!(us.triggers.try_recv().is_err());
        trigger
            .reply
            .send(Answer::Polled { published_ms: 5 })
            .unwrap();
        assert_eq!(
            combine(answers).await,
            Some(Answer::Polled { published_ms: 5 })
        );
        drop(eu);
        assert!(routes
            .trigger(&key("111111111111", "eu-west-1"), "a", 0, true)
            .is_empty());
    }

    /// Two loops of one account and region: a poll by either is a poll; a loop that stops
    /// without answering leaves the message undeleted.
    #[tokio::test]
    async fn answers_combine() {
        let routes = Arc::new(Routes::default());
        let k = key("111111111111", "eu-west-1");
        let mut a = routes.register(k.clone());
        let mut b = routes.register(k.clone());
        let answers = routes.trigger(&k, "x", 0, true);
        a.triggers
            .try_recv()
            .unwrap()
            .reply
            .send(Answer::Unwatched)
            .unwrap();
        b.triggers
            .try_recv()
            .unwrap()
            .reply
            .send(Answer::PollFailed)
            .unwrap();
        assert_eq!(combine(answers).await, Some(Answer::PollFailed));
        let answers = routes.trigger(&k, "x", 0, true);
        a.triggers
            .try_recv()
            .unwrap()
            .reply
            .send(Answer::Unwatched)
            .unwrap();
        drop(b);
        assert_eq!(combine(answers).await, None);
    }
}
