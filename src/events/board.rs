//! What the status page shows of the `events:` input: each queue's state, and the last event
//! of each watched association.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::parse::Event;
use crate::ssm::ApiError;
use crate::status::{EventsView, LastEvent, QueueView};
use crate::sync::lock;

/// Most associations whose last event is kept (those of watched associations only).
const MAX_LAST_EVENTS: usize = 100_000;

/// Shared by the queue tasks (writers) and the status page (reader); kept across reloads.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The configured queues by URL; empty: events are off.
    queues: BTreeMap<String, QueueView>,
    last: HashMap<String, LastEvent>,
}

impl Board {
    /// The queues of the running configuration (a reload may change them); what is known of
    /// a queue that stays is kept.
    pub fn configure(&self, urls: &[String]) {
        let mut state = lock(&self.state);
        state.queues.retain(|url, _| urls.contains(url));
        for url in urls {
            state
                .queues
                .entry(url.clone())
                .or_insert_with(|| QueueView {
                    url: url.clone(),
                    state: "starting",
                    last_receive_ms: None,
                    last_error: None,
                });
        }
        if urls.is_empty() {
            state.last.clear();
        }
    }

    pub fn received(&self, url: &str, now_ms: i64) {
        if let Some(queue) = lock(&self.state).queues.get_mut(url) {
            queue.state = "receiving";
            queue.last_receive_ms = Some(now_ms);
            queue.last_error = None;
        }
    }

    pub fn failed(&self, url: &str, error: &ApiError) {
        if let Some(queue) = lock(&self.state).queues.get_mut(url) {
            queue.state = "failing";
            queue.last_error = Some(format!("{}: {}", error.code, error.message));
        }
    }

    /// An event of a watched association, handled with `outcome`.
    pub fn event(&self, url: &str, event: &Event, outcome: &'static str, now_ms: i64) {
        let mut state = lock(&self.state);
        if state.last.len() >= MAX_LAST_EVENTS && !state.last.contains_key(&event.association_id) {
            return;
        }
        state.last.insert(
            event.association_id.clone(),
            LastEvent {
                detail_type: event.detail_type.name(),
                time_ms: event.time_ms,
                received_ms: now_ms,
                outcome,
                queue: url.to_string(),
            },
        );
    }

    /// A copy for one page.
    pub fn view(&self) -> EventsView {
        let state = lock(&self.state);
        EventsView {
            enabled: !state.queues.is_empty(),
            queues: state.queues.values().cloned().collect(),
            last: state.last.clone(),
        }
    }
}
