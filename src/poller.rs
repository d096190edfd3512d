//! One poll of one association: page through its executions, feed the tracker, count.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::now_ms;
use crate::ssm::{ApiError, ErrorKind, Ssm};
use crate::store::{Entry, Store};
use crate::sync::lock;
use crate::tracker::Observation;

/// `DescribeAssociation` is asked again at most this often.
pub const INFO_REFRESH: Duration = Duration::from_secs(3600);

/// The polling side of one association; its state lives in the store's [`Entry`].
pub struct Poller {
    entry: Arc<Entry>,
    info_due: Option<Instant>,
}

impl Poller {
    pub fn new(entry: Arc<Entry>) -> Poller {
        Poller {
            entry,
            info_due: None,
        }
    }

    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Refreshes the association's info when due, then pages through every execution created
    /// after the tracker's `since` point. `due` is when the poll should have started (for the
    /// delay metric). Without a state file (`publish`), the numbers are published at the end.
    pub async fn poll(
        &mut self,
        ssm: &Ssm,
        store: &Store,
        due: Instant,
        publish: bool,
    ) -> Result<(), ApiError> {
        let result = self.poll_inner(ssm, due).await;
        store.mark_dirty();
        if publish {
            self.entry.publish();
        }
        result
    }

    async fn poll_inner(&mut self, ssm: &Ssm, due: Instant) -> Result<(), ApiError> {
        let id = self.entry.id.clone();
        let mut first_sent = None;
        if self.info_due.is_none_or(|d| Instant::now() >= d) {
            self.info_due = Some(Instant::now() + INFO_REFRESH);
            match ssm.describe_association(&id, &mut first_sent).await {
                Ok(info) => lock(&self.entry.live).exposed.info = Some(info),
                Err(error) => tracing::warn!(
                    association_id = %id, code = %error.code, %error,
                    "DescribeAssociation failed; execution polling goes on without the info metric"
                ),
            }
        }

        let since = {
            let mut live = lock(&self.entry.live);
            let abandoned = live.tracker.begin_poll();
            if abandoned > 0 {
                live.exposed.pending_abandoned += abandoned as u64;
                tracing::warn!(association_id = %id, abandoned, "gave up on executions pending for over 7 days");
            }
            live.tracker.poll_since_ms()
        };
        let mut token: Option<String> = None;
        let mut restarted = false;
        let mut delay_published = false;
        let outcome = loop {
            let sent_token = token.take();
            let page = ssm
                .execution_page(&id, since, sent_token.clone(), &mut first_sent)
                .await;
            if let (false, Some(sent)) = (delay_published, first_sent) {
                delay_published = true;
                lock(&self.entry.live).exposed.poll_delay_seconds =
                    sent.saturating_duration_since(due).as_secs_f64();
            }
            match page {
                Ok(page) => {
                    if page.malformed > 0 {
                        tracing::warn!(association_id = %id, skipped = page.malformed, "executions without ExecutionId or CreatedTime skipped");
                    }
                    let mut live = lock(&self.entry.live);
                    for execution in &page.executions {
                        if let Observation::Counted { status, newest } =
                            live.tracker.observe(execution)
                        {
                            let last_success = live.tracker.last_success_ms();
                            live.exposed.count(execution, status, newest, last_success);
                        }
                    }
                    live.exposed.in_progress = live.tracker.in_progress() as u64;
                    drop(live);
                    match page.next_token {
                        // A token equal to the one just sent would page forever: stop, as the
                        // SDK's own paginators do.
                        Some(next) if Some(&next) == sent_token.as_ref() => {
                            tracing::warn!(association_id = %id, "the API repeated its NextToken; paging stopped");
                            break Ok(());
                        }
                        Some(next) if !next.is_empty() => token = Some(next),
                        _ => break Ok(()),
                    }
                }
                // The token went stale half-way: page again from the same `since` point once;
                // what was already counted is skipped, so nothing is counted twice.
                Err(error) if error.kind == ErrorKind::InvalidToken && !restarted => {
                    restarted = true;
                    tracing::info!(association_id = %id, "NextToken rejected; paging again from the watermark");
                }
                Err(error) => break Err(error),
            }
        };
        let mut live = lock(&self.entry.live);
        live.tracker.finish_poll(outcome.is_ok());
        live.exposed.watermark_ms = live.tracker.watermark_ms();
        match &outcome {
            Ok(()) => {
                live.exposed.poll_success = true;
                live.exposed.last_poll_success_ms = Some(now_ms());
            }
            Err(error) => live.exposed.poll_failed(&error.code),
        }
        outcome
    }
}
