//! One `events:` queue's task: long-poll, read each message, ask the scope loops for polls,
//! wait for them, then delete what was handled; a failing queue is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::parse::{self, DetailType, Message};
use super::routes::{combine, Answer, Routes};
use super::sqs::{Queue, Received};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::model::ScopeKey;
use crate::ssm::ApiError;

/// The outcomes of a message, the `outcome` label.
pub const OUTCOMES: [&str; 5] = ["polled", "poll_failed", "unwatched", "malformed", "foreign"];

/// What one queue's task works with.
pub struct Reader {
    pub url: String,
    pub queue: Queue,
    pub routes: Arc<Routes>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<Board>,
}

/// How long a failing queue waits before its `failures`-th retry: 1 s doubling to 1 min, with
/// full jitter over its upper half (many exporters on one queue do not retry in step).
pub fn retry_wait(failures: u32) -> Duration {
    let ceiling_ms = 1_000u64
        .saturating_mul(1 << failures.clamp(1, 7).saturating_sub(1))
        .min(60_000);
    Duration::from_millis(rand::rng().random_range(ceiling_ms / 2..=ceiling_ms))
}

/// A message and what became of it.
struct Handled {
    receipt_handle: String,
    detail_type: &'static str,
    outcome: &'static str,
}

impl Reader {
    /// Reads the queue until `stop`: every message is deleted once handled (its poll ended, or
    /// it is malformed, foreign or unwatched); a stop while polls run leaves their messages in
    /// the queue, to come back after its visibility timeout.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut last_error: Option<String> = None;
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                received = self.queue.receive() => received,
            };
            let messages = match received {
                Ok(messages) => {
                    if failures > 0 {
                        tracing::info!(queue = %self.url, "the events queue works again");
                    }
                    failures = 0;
                    last_error = None;
                    self.received_ok();
                    messages
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.failed(&error, &mut last_error, "ReceiveMessage");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        () = tokio::time::sleep(retry_wait(failures)) => {}
                    }
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let Some(handled) = self.handle(messages, &stop).await else {
                return;
            };
            for h in &handled {
                self.metrics
                    .events_received_total
                    .with_label_values(&[h.detail_type, h.outcome])
                    .inc();
            }
            let handles: Vec<String> = handled.into_iter().map(|h| h.receipt_handle).collect();
            match self.queue.delete(&handles).await {
                Ok(failed) => {
                    for error in failed {
                        self.failed(&error, &mut last_error, "DeleteMessageBatch");
                    }
                }
                Err(error) => self.failed(&error, &mut last_error, "DeleteMessageBatch"),
            }
        }
    }

    /// Reads a batch, triggers the polls its events ask for (all at once, so that the scope
    /// loops coalesce those of one association) and waits for them; `None` when `stop` fired
    /// first. Messages whose scope loop stopped before answering are not returned (not
    /// deleted).
    async fn handle(
        &self,
        messages: Vec<Received>,
        stop: &CancellationToken,
    ) -> Option<Vec<Handled>> {
        let mut handled = Vec::with_capacity(messages.len());
        let mut waiting = Vec::new();
        for message in messages {
            match parse::parse(&message.body) {
                Message::Malformed(detail_type, reason) => {
                    tracing::warn!(queue = %self.url, message_id = %message.message_id, %reason, "malformed message in the events queue; deleted");
                    handled.push(Handled {
                        receipt_handle: message.receipt_handle,
                        detail_type: detail_type.map_or(parse::OTHER, DetailType::name),
                        outcome: "malformed",
                    });
                }
                Message::Foreign(what) => {
                    tracing::info!(queue = %self.url, message_id = %message.message_id, event = %what, "not a State Manager event; deleted");
                    handled.push(Handled {
                        receipt_handle: message.receipt_handle,
                        detail_type: parse::OTHER,
                        outcome: "foreign",
                    });
                }
                Message::Event(event) => {
                    let key = ScopeKey {
                        account_id: event.account_id.clone(),
                        region: event.region.clone(),
                    };
                    let answers = self.routes.trigger(&key, &event.association_id);
                    waiting.push((message, event, answers));
                }
            }
        }
        let mut answered = Vec::with_capacity(waiting.len());
        let wait = async {
            for (message, event, answers) in waiting {
                answered.push((message, event, combine(answers).await));
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return None,
            () = wait => {}
        }
        for (message, event, answer) in answered {
            let Some(answer) = answer else {
                tracing::debug!(queue = %self.url, association_id = %event.association_id, "the scope loop stopped before the poll ended; the message stays in the queue");
                continue;
            };
            let outcome = match answer {
                Answer::Polled { published_ms } => {
                    let seconds = (published_ms - event.time_ms).max(0) as f64 / 1000.0;
                    self.metrics.event_to_count_seconds.observe(seconds);
                    "polled"
                }
                Answer::PollFailed => "poll_failed",
                Answer::Unwatched => "unwatched",
            };
            tracing::debug!(queue = %self.url, association_id = %event.association_id, detail_type = event.detail_type.name(), outcome, "State Manager event");
            if answer != Answer::Unwatched {
                // Only watched associations: forged IDs cannot grow the board.
                self.board.event(&self.url, &event, outcome, now_ms());
            }
            handled.push(Handled {
                receipt_handle: message.receipt_handle,
                detail_type: event.detail_type.name(),
                outcome,
            });
        }
        Some(handled)
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
    fn failed(&self, error: &ApiError, last: &mut Option<String>, operation: &str) {
        self.metrics
            .event_queue_errors_total
            .with_label_values(&[&self.url, &error.code])
            .inc();
        self.board.failed(&self.url, error);
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
