//! One `events:` queue's task: long-poll, read each message, ask the scope loops for polls,
//! delete each end's message once its own poll has ended and a progress event's at once
//! (receiving goes on meanwhile); a failing queue is retried with backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::parse::{self, DetailType, Event, Message};
use super::routes::{combine, Answer, Routes};
use super::sqs::{Queue, Received, BATCH};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::model::ScopeKey;
use crate::ssm::ApiError;
use crate::sync::lock;

/// The outcomes of a message, the `outcome` label.
pub const OUTCOMES: [&str; 5] = ["polled", "poll_failed", "unwatched", "malformed", "foreign"];

/// What one queue's task works with.
pub struct Reader {
    pub url: String,
    pub queue: Queue,
    pub routes: Arc<Routes>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<Board>,
    /// The code of the last failure logged (each code is logged once in a row).
    pub last_error: Mutex<Option<String>>,
}

/// How long a failing queue waits before its `failures`-th retry: 1 s doubling to 1 min, with
/// full jitter over its upper half (many exporters on one queue do not retry in step).
pub fn retry_wait(failures: u32) -> Duration {
    let ceiling_ms = 1_000u64
        .saturating_mul(1 << failures.clamp(1, 7).saturating_sub(1))
        .min(60_000);
    Duration::from_millis(rand::rng().random_range(ceiling_ms / 2..=ceiling_ms))
}

/// A message to delete, what became of an event, or both.
struct Handled {
    receipt_handle: Option<String>,
    /// `detail_type` and `outcome` labels.
    outcome: Option<(&'static str, &'static str)>,
}

/// A message read: handled at once, or an event whose polls' answers are to come.
enum Read {
    Handled(Handled),
    Asked(Received, Event, Vec<oneshot::Receiver<Answer>>),
}

/// End messages whose polls may run at once, per queue: four receives' worth. A receive waits
/// while this many wait for their polls, so a slow poll holds up no other event until then.
/// Progress events do not count: their messages are deleted at once.
pub const IN_FLIGHT: usize = 4 * BATCH as usize;

impl Reader {
    /// Reads the queue until `stop`: receives go on while earlier end messages wait for their
    /// polls (at most [`IN_FLIGHT`]), and every end's message is deleted once handled (its own
    /// poll ended, or it is unwatched), a progress event's, a malformed or a foreign one at
    /// once; a stop while polls run leaves the ends' messages in the queue, to come back after
    /// their visibility timeout.
    pub async fn run(self, stop: CancellationToken) {
        let reader = Arc::new(self);
        let (done, handled) = mpsc::unbounded_channel();
        tokio::select! {
            _ = stop.cancelled() => {}
            () = reader.clone().receive(done) => {}
            () = reader.delete(handled) => {}
        }
    }

    /// The receiving half: long polls, each message's poll asked for at once, its answer
    /// awaited in a task of its own that passes it to `done`.
    async fn receive(self: Arc<Self>, done: mpsc::UnboundedSender<Handled>) {
        let mut failures = 0u32;
        let mut waiting = JoinSet::new();
        // The outcomes of progress events still to come (their messages are deleted).
        let mut progress = JoinSet::new();
        loop {
            while waiting.try_join_next().is_some() {}
            while progress.try_join_next().is_some() {}
            while waiting.len() + BATCH as usize > IN_FLIGHT {
                waiting.join_next().await;
            }
            let messages = match self.queue.receive().await {
                Ok(messages) => {
                    if failures > 0 {
                        tracing::info!(queue = %self.url, "the events queue works again");
                    }
                    failures = 0;
                    *lock(&self.last_error) = None;
                    self.received_ok();
                    messages
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.failed(&error, "ReceiveMessage");
                    tokio::time::sleep(retry_wait(failures)).await;
                    continue;
                }
            };
            for message in messages {
                match self.read(message) {
                    Read::Handled(handled) => {
                        let _ = done.send(handled);
                    }
                    Read::Asked(message, event, answers) if event.announces_end => {
                        let (reader, done) = (self.clone(), done.clone());
                        waiting.spawn(async move {
                            let answer = combine(answers).await;
                            if let Some(outcome) = reader.answered(&event, answer) {
                                let _ = done.send(Handled {
                                    receipt_handle: Some(message.receipt_handle),
                                    outcome: Some(outcome),
                                });
                            }
                        });
                    }
                    Read::Asked(message, event, answers) => {
                        // Progress: its poll may wait, the message does not (the first
                        // listing after a restart polls what a lost one would have asked for).
                        let _ = done.send(Handled {
                            receipt_handle: Some(message.receipt_handle),
                            outcome: None,
                        });
                        let (reader, done) = (self.clone(), done.clone());
                        progress.spawn(async move {
                            let answer = combine(answers).await;
                            if let Some(outcome) = reader.answered(&event, answer) {
                                let _ = done.send(Handled {
                                    receipt_handle: None,
                                    outcome: Some(outcome),
                                });
                            }
                        });
                    }
                }
            }
        }
    }

    /// The deleting half: what is handled goes in `DeleteMessageBatch`es of what has come.
    async fn delete(&self, mut handled: mpsc::UnboundedReceiver<Handled>) {
        let mut batch = Vec::with_capacity(BATCH as usize);
        while handled.recv_many(&mut batch, BATCH as usize).await > 0 {
            for (detail_type, outcome) in batch.iter().filter_map(|h| h.outcome) {
                self.metrics
                    .events_received_total
                    .with_label_values(&[detail_type, outcome])
                    .inc();
            }
            let handles: Vec<String> = batch.drain(..).filter_map(|h| h.receipt_handle).collect();
            match self.queue.delete(&handles).await {
                Ok(failed) => {
                    for error in failed {
                        self.failed(&error, "DeleteMessageBatch");
                    }
                }
                Err(error) => self.failed(&error, "DeleteMessageBatch"),
            }
        }
    }

    /// Reads one message: handled at once (malformed, foreign), or an event whose polls were
    /// asked for, with their answers to come.
    fn read(&self, message: Received) -> Read {
        match parse::parse(&message.body) {
            Message::Malformed(detail_type, reason) => {
                tracing::warn!(queue = %self.url, message_id = %message.message_id, %reason, "malformed message in the events queue; deleted");
                Read::Handled(Handled {
                    receipt_handle: Some(message.receipt_handle),
                    outcome: Some((
                        detail_type.map_or(parse::OTHER, DetailType::name),
                        "malformed",
                    )),
                })
            }
            Message::Foreign(what) => {
                tracing::info!(queue = %self.url, message_id = %message.message_id, event = %what, "not a State Manager event; deleted");
                Read::Handled(Handled {
                    receipt_handle: Some(message.receipt_handle),
                    outcome: Some((parse::OTHER, "foreign")),
                })
            }
            Message::Event(event) => {
                let key = ScopeKey {
                    account_id: event.account_id.clone(),
                    region: event.region.clone(),
                };
                let answers = self.routes.trigger(
                    &key,
                    &event.association_id,
                    event.time_ms,
                    event.announces_end,
                );
                Read::Asked(message, event, answers)
            }
        }
    }

    /// What became of an event (its `detail_type` and `outcome` labels), from its answer;
    /// `None` when its scope loop stopped before the poll ended (an end's message stays in the
    /// queue).
    fn answered(
        &self,
        event: &Event,
        answer: Option<Answer>,
    ) -> Option<(&'static str, &'static str)> {
        let Some(answer) = answer else {
            tracing::debug!(queue = %self.url, association_id = %event.association_id, "the scope loop stopped before the poll ended; the message stays in the queue");
            return None;
        };
        let outcome = match answer {
            Answer::Polled { published_ms } => {
                // Ends only: a progress event's poll waits on purpose.
                if event.announces_end {
                    let seconds = (published_ms - event.time_ms).max(0) as f64 / 1000.0;
                    self.metrics.event_to_count_seconds.observe(seconds);
                }
                "polled"
            }
            Answer::PollFailed => "poll_failed",
            Answer::Unwatched => "unwatched",
        };
        tracing::debug!(queue = %self.url, association_id = %event.association_id, detail_type = event.detail_type.name(), outcome, "State Manager event");
        if answer != Answer::Unwatched {
            // Only watched associations: forged IDs cannot grow the board.
            self.board.event(&self.url, event, outcome, now_ms());
        }
        Some((event.detail_type.name(), outcome))
    }

    fn received_ok(&self) {
        let now = now_ms();
        self.metrics
            .event_queue_last_receive_timestamp_seconds
            .with_label_values(&[&self.url])
            .set(now as f64 / 1000.0);
        self.board.received(&self.url, now);
    }

    /// A failed call (or an undeleted message): counted, shown, logged once per error code.
    fn failed(&self, error: &ApiError, operation: &str) {
        self.metrics
            .event_queue_errors_total
            .with_label_values(&[&self.url, &error.code])
            .inc();
        self.board.failed(&self.url, error);
        let mut last = lock(&self.last_error);
        if last.as_deref() != Some(error.code.as_str()) {
            tracing::warn!(queue = %self.url, operation, code = %error.code, %error, "events queue failing; retrying with backoff, polling goes on");
        }
        *last = Some(error.code.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        for failures in 1..40 {
            let wait = retry_wait(failures);
            let ceiling = Duration::from_millis((1_000u64 << (failures.min(7) - 1)).min(60_000));
            assert!(
                wait <= ceiling && wait >= ceiling / 2,
                "{failures}: {wait:?}"
            );
        }
        assert!(retry_wait(1) <= Duration::from_secs(1));
        assert!(retry_wait(30) >= Duration::from_secs(30));
    }
}
