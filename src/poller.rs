//! One poll of one association: page through its executions, feed the tracker, count.

use std::sync::Arc;

use tokio::time::Instant;

use crate::clock::now_ms;
use crate::config::TargetDetailConfig;
use crate::metrics::Metrics;
use crate::model::Execution;
use crate::ssm::{ApiError, ErrorKind, Ssm, MAX_RESULTS};
use crate::status::urls::execution_console_url;
use crate::store::{Entry, Live, RecentExecution, Store, TargetDetail};
use crate::sync::lock;
use crate::tracker::{Observation, Paging};

/// The polling side of one association; its state lives in the store's [`Entry`].
pub struct Poller {
    entry: Arc<Entry>,
    /// The running configuration's `target_detail:` section.
    detail: TargetDetailConfig,
    /// When this process started (epoch milliseconds): runs that ended before are history,
    /// whose targets are read for the newest one only.
    started_ms: i64,
    /// Final executions counted in this poll with non-successful targets.
    target_work: Vec<TargetWork>,
    /// What the last poll left to read of its failed runs' targets ([`Poller::target_reads`]).
    reads: Option<TargetReads>,
}

/// A final execution counted with non-successful targets (`ResourceCountByStatus`).
struct TargetWork {
    execution_id: String,
    created_ms: i64,
    /// Its end (`LastExecutionDate`), or its CreatedTime without one.
    ended_ms: i64,
    /// Non-successful target status -> targets in it.
    statuses: Vec<(String, u64)>,
}

impl TargetWork {
    fn total(&self) -> u64 {
        self.statuses.iter().map(|(_, n)| n).sum()
    }
}

/// Newest first.
fn newest_first(work: &mut [TargetWork]) {
    work.sort_by(|a, b| (b.created_ms, &b.execution_id).cmp(&(a.created_ms, &a.execution_id)));
}

impl Poller {
    pub fn new(entry: Arc<Entry>, detail: TargetDetailConfig, started_ms: i64) -> Poller {
        Poller {
            entry,
            detail,
            started_ms,
            target_work: Vec::new(),
            reads: None,
        }
    }

    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Pages through the executions of the tracker's run and re-checks stuck ones. `due` is
    /// when the poll should have started (for the delay metric); `signature` is what the
    /// listing showed of the association when the poll was decided, kept once the poll has
    /// succeeded. Without a state file (`publish`), the numbers are published at the end.
    ///
    /// The numbers are complete when it returns: the targets of the failed runs it counted
    /// are not read here but left in [`Poller::target_reads`] (newest first, at most
    /// [`MAX_TARGET_EXECUTIONS_PER_POLL`]; the others' are skipped), to be read off the poll's
    /// path on what the request budget leaves over. Until they are read, their targets count
    /// as left out.
    pub async fn poll(
        &mut self,
        ssm: &Ssm,
        store: &Store,
        metrics: &Metrics,
        due: Instant,
        signature: Option<String>,
        publish: bool,
    ) -> Result<(), ApiError> {
        let result = self.poll_inner(ssm, metrics, due).await;
        // A poll that ended in throttling, rejected credentials or a denial reads no targets.
        let skip_targets = matches!(&result, Err(e) if matches!(e.kind, ErrorKind::Throttled | ErrorKind::Credentials | ErrorKind::AccessDenied));
        let mut work = std::mem::take(&mut self.target_work);
        newest_first(&mut work);
        // What the association's first poll in this process counts of runs that ended before
        // the process started is history (a first start's look-back, or what ran while it was
        // down): of those, the targets of the newest only, once per association (the status
        // page's failing run), not hours of reads. Runs counted later are read as they come.
        // What is not read is skipped.
        let first_poll = !self.entry.polled();
        let (mut work, history): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|w| !first_poll || w.ended_ms >= self.started_ms);
        let mut history = history.into_iter();
        let newest_history = history.next();
        let claimed = newest_history.is_some() && self.entry.claim_history_targets();
        let readable = work.len() + usize::from(claimed);
        if let Some(newest) = newest_history {
            work.push(newest);
            if claimed {
                newest_first(&mut work);
            }
        }
        work.extend(history);
        let detail = self.detail;
        let to_read = if detail.enabled && !skip_targets {
            MAX_TARGET_EXECUTIONS_PER_POLL.min(readable)
        } else {
            0
        };
        {
            let mut live = lock(&self.entry.live);
            for (n, w) in work.iter().enumerate() {
                if let Some(r) = live
                    .exposed
                    .recent_mut()
                    .iter_mut()
                    .find(|r| r.id == w.execution_id)
                {
                    r.targets_left_out = w.total();
                }
                if n >= to_read && detail.enabled {
                    metrics.target_detail_executions_skipped_total.inc();
                    tracing::debug!(association_id = %self.entry.id, execution_id = %w.execution_id, "targets not read: too many failed executions in one poll, a run from before the exporter started, or the poll was throttled or denied");
                }
            }
            match &result {
                Ok(()) => {
                    live.exposed.signature = signature;
                    live.exposed.last_error = None;
                }
                Err(e) => live.exposed.last_error = Some((e.code.clone(), e.message.clone())),
            }
        }
        work.truncate(to_read);
        self.reads = (!work.is_empty()).then(|| TargetReads {
            entry: self.entry.clone(),
            max_targets: detail.max_targets_per_execution,
            work,
        });
        store.mark_dirty();
        if publish {
            self.entry.publish();
        }
        result
    }

    /// The targets the last poll left to read, if any.
    pub fn target_reads(&mut self) -> Option<TargetReads> {
        self.reads.take()
    }

    /// Records a first poll that needs no call: the listing shows that the association has
    /// not run since the look-back start (`LastExecutionDate` before it, or none), so no final
    /// execution can be in the window. The look-back start is fixed now, so an execution that
    /// was already running is counted when it ends, as any later one.
    pub fn empty_first_poll(
        &mut self,
        now_ms: i64,
        signature: String,
        last_execution_ms: Option<i64>,
        store: &Store,
        publish: bool,
    ) {
        {
            let mut live = lock(&self.entry.live);
            let start = live.tracker.begin_poll(now_ms);
            debug_assert!(start.token.is_none());
            let _ = live.tracker.next_page(None);
            // A return that never ran since: nothing was absorbed.
            let _ = live.tracker.take_returned();
            live.exposed.watermark_ms = live.tracker.watermark_ms().unwrap_or_default();
            live.exposed.polled = true;
            live.exposed.complete = true;
            live.exposed.poll_success = true;
            live.exposed.last_poll_success_ms = Some(crate::clock::now_ms());
            live.exposed.signature = Some(signature);
            // That run is explained: it is before the look-back.
            live.exposed.seen_ms = live.exposed.seen_ms.max(last_execution_ms);
        }
        store.mark_dirty();
        if publish {
            self.entry.publish();
        }
    }

    async fn poll_inner(
        &mut self,
        ssm: &Ssm,
        metrics: &Metrics,
        due: Instant,
    ) -> Result<(), ApiError> {
        let id = self.entry.id.clone();
        let mut first_sent = None;
        // "Now" by AWS's clock (the listing, or an earlier poll, told it).
        let now = ssm.clock().now_ms();
        let start = {
            let mut live = lock(&self.entry.live);
            let start = live.tracker.begin_poll(now);
            if start.abandoned > 0 {
                live.exposed.pending_abandoned += start.abandoned as u64;
                self.entry.totals.abandoned(start.abandoned as u64);
                live.exposed.in_progress = live.tracker.in_progress() as u64;
                tracing::warn!(association_id = %id, abandoned = start.abandoned, "gave up on executions pending for over 7 days");
            }
            if let Some(t) = start.truncated {
                metrics.backfill_truncated_total.inc();
                tracing::warn!(
                    association_id = %id,
                    old_watermark_ms = ?t.watermark_ms,
                    would_start_ms = t.would_start_ms,
                    new_start_ms = t.start_ms,
                    "saved state older than max_backfill: executions created before the new start are not counted"
                );
            }
            start
        };
        let since = start.since_ms;
        let mut token = start.token;
        let mut restarted = false;
        let mut delay_published = false;
        let mut pages = 0;
        let outcome = loop {
            if pages == MAX_PAGES_PER_POLL {
                // A deep backlog: the run stays open and the next poll goes on from here.
                break Err(ApiError {
                    kind: ErrorKind::Transient,
                    code: PAGE_LIMIT.to_string(),
                    message: format!(
                        "read {MAX_PAGES_PER_POLL} pages; the next poll goes on from there"
                    ),
                });
            }
            pages += 1;
            let page = ssm
                .execution_page(&id, since, token.clone(), &mut first_sent)
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
                        let observation = live.tracker.observe(execution, now);
                        if let Some(work) = record(&mut live, &id, execution, observation, metrics)
                        {
                            self.target_work.push(work);
                        }
                    }
                    match live.tracker.next_page(page.next_token) {
                        Paging::More(next) => token = Some(next),
                        Paging::End => break Ok(()),
                        Paging::Repeated => {
                            break Err(ApiError {
                                kind: ErrorKind::Transient,
                                code: REPEATED_TOKEN.to_string(),
                                message: "the API sent a NextToken it had already sent in this run; paging stopped, the next poll starts again".to_string(),
                            })
                        }
                    }
                }
                // The token went stale: page again from the same `since` point once; what was
                // already counted is remembered, so nothing is counted twice.
                Err(error) if error.kind == ErrorKind::InvalidToken && !restarted => {
                    restarted = true;
                    lock(&self.entry.live).tracker.restart_run();
                    token = None;
                    tracing::info!(association_id = %id, "NextToken rejected; paging again from the watermark");
                }
                Err(error) => break Err(error),
            }
        };
        let paged_to_end = outcome.is_ok();
        if let Some(r) = lock(&self.entry.live).tracker.take_returned() {
            metrics.handoff_absorbed_executions_total.inc_by(r.absorbed);
            tracing::info!(
                association_id = %id,
                regained_ms = r.at_ms,
                absorbed = r.absorbed,
                "association owned again after another shard (or state older than max_backfill): executions created before are not counted here"
            );
        }
        let outcome = match outcome {
            Ok(()) => self.recheck(ssm, metrics, now, &mut first_sent).await,
            Err(error) => Err(error),
        };
        let mut live = lock(&self.entry.live);
        live.exposed.in_progress = live.tracker.in_progress() as u64;
        live.exposed.watermark_ms = live.tracker.watermark_ms().unwrap_or_default();
        live.exposed.polled = true;
        // From the first run that reached its end on, the execution series are exported: a
        // backfill of the look-back never looks like an increase.
        live.exposed.complete |= paged_to_end;
        let scope = &self.entry.scope;
        let (account, region) = (scope.account_id.as_str(), scope.region.as_str());
        match &outcome {
            Ok(()) => {
                live.exposed.poll_success = true;
                live.exposed.last_poll_success_ms = Some(now_ms());
                metrics.access_allowed(&id, account, region, EXECUTIONS_OPERATION);
            }
            Err(error) => {
                live.exposed.poll_failed(&error.code);
                self.entry.totals.poll_failed(&error.code);
                // Denied on this association only (a policy or SCP that leaves it out): its
                // own failure, shown until a poll of it succeeds; other failures leave the
                // gauge as it was (a throttled poll does not say the denial ended).
                if error.kind == ErrorKind::AccessDenied {
                    metrics.access_denied(&id, account, region, EXECUTIONS_OPERATION);
                }
            }
        }
        outcome
    }

    /// Re-checks, by ID, executions still pending after the window has moved past them.
    async fn recheck(
        &mut self,
        ssm: &Ssm,
        metrics: &Metrics,
        now: i64,
        first_sent: &mut Option<Instant>,
    ) -> Result<(), ApiError> {
        let id = self.entry.id.clone();
        let due = lock(&self.entry.live)
            .tracker
            .due_rechecks(now, MAX_RECHECKS_PER_POLL);
        for execution_id in due {
            let found = ssm.execution_by_id(&id, &execution_id, first_sent).await?;
            let mut live = lock(&self.entry.live);
            let observation = live
                .tracker
                .observe_recheck(&execution_id, found.as_ref(), now);
            if let Some(execution) = &found {
                if let Some(work) = record(&mut live, &id, execution, observation, metrics) {
                    self.target_work.push(work);
                }
            }
        }
        Ok(())
    }
}

/// The non-successful targets of up to [`MAX_TARGET_EXECUTIONS_PER_POLL`] final executions of
/// one association, still to be read (newest first). Optional work: the counts of those
/// executions are already published.
pub struct TargetReads {
    entry: Arc<Entry>,
    /// `target_detail.max_targets_per_execution`.
    max_targets: usize,
    work: Vec<TargetWork>,
}

impl TargetReads {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    pub fn is_empty(&self) -> bool {
        self.work.is_empty()
    }

    /// Takes in the reads a later poll of the same association left: the newest
    /// [`MAX_TARGET_EXECUTIONS_PER_POLL`] of both are kept (their targets stay left out);
    /// returns how many were dropped.
    pub fn merge(&mut self, later: TargetReads) -> usize {
        self.max_targets = later.max_targets;
        self.work.extend(later.work);
        newest_first(&mut self.work);
        let dropped = self
            .work
            .len()
            .saturating_sub(MAX_TARGET_EXECUTIONS_PER_POLL);
        self.work.truncate(MAX_TARGET_EXECUTIONS_PER_POLL);
        dropped
    }

    /// Reads them, through `ssm` (a [`Ssm::detail`] client: on what the budget leaves over),
    /// one `Status` filter per non-successful status, `max_targets_per_execution` per
    /// execution at most; each execution's targets are published (`publish`, or by the next
    /// save) as soon as they are read. Failures are logged (and counted by the request
    /// metrics); they never fail a poll or change a count, and that execution's targets stay
    /// left out. An association no longer in the store (retired meanwhile) is not read; its
    /// executions count as skipped.
    pub async fn read(self, ssm: &Ssm, metrics: &Metrics, store: &Store, publish: bool) {
        let id = self.entry.id.clone();
        let max = self.max_targets;
        for w in &self.work {
            let total = w.total();
            if !store.get(&id).is_some_and(|e| Arc::ptr_eq(&e, &self.entry)) {
                metrics.target_detail_executions_skipped_total.inc();
                continue;
            }
            let mut targets: Vec<TargetDetail> = Vec::new();
            let mut pages = 0;
            'statuses: for (status, _) in &w.statuses {
                let mut token = None;
                loop {
                    let room = max.saturating_sub(targets.len());
                    if room == 0 || pages >= MAX_TARGET_PAGES_PER_EXECUTION {
                        break 'statuses;
                    }
                    pages += 1;
                    let page = ssm
                        .execution_targets(
                            &id,
                            &w.execution_id,
                            status,
                            room.min(MAX_RESULTS as usize) as i32,
                            token.take(),
                        )
                        .await;
                    let (account, region) =
                        (&self.entry.scope.account_id, &self.entry.scope.region);
                    match page {
                        Ok(page) => {
                            metrics.access_allowed(&id, account, region, TARGETS_OPERATION);
                            targets.extend(
                                page.targets
                                    .into_iter()
                                    .filter(|t| t.status != "Success")
                                    .take(room),
                            );
                            match page.next_token {
                                Some(next) => token = Some(next),
                                None => break,
                            }
                        }
                        Err(error) => {
                            if error.kind == ErrorKind::AccessDenied {
                                metrics.access_denied(&id, account, region, TARGETS_OPERATION);
                            }
                            tracing::warn!(association_id = %id, execution_id = %w.execution_id, code = %error.code, %error, "reading the targets of a failed execution failed; its targets are left out");
                            break 'statuses;
                        }
                    }
                }
            }
            let left_out = total.saturating_sub(targets.len() as u64);
            let mut live = lock(&self.entry.live);
            let info = live.exposed.info.clone().unwrap_or_default();
            let region = if info.region.is_empty() {
                self.entry.scope.region.clone()
            } else {
                info.region.clone()
            };
            let account_id = if info.account_id.is_empty() {
                self.entry.scope.account_id.clone()
            } else {
                info.account_id.clone()
            };
            for t in &targets {
                live.exposed.count_target(&t.status, &t.detailed_status);
                tracing::warn!(
                    association_id = %id,
                    association_name = %info.name,
                    account_id = %account_id,
                    region = %region,
                    execution_id = %w.execution_id,
                    resource_id = %t.resource_id,
                    resource_type = %t.resource_type,
                    status = %t.status,
                    detailed_status = %t.detailed_status,
                    output_source_type = %t.output_source_type,
                    output_source_id = %t.output_source_id,
                    console_url = %execution_console_url(&region, &id, &w.execution_id),
                    "association target did not succeed"
                );
            }
            if let Some(r) = live
                .exposed
                .recent_mut()
                .iter_mut()
                .find(|r| r.id == w.execution_id)
            {
                r.targets = targets;
                r.targets_left_out = left_out;
            }
            drop(live);
            store.mark_dirty();
            if publish {
                self.entry.publish();
            }
        }
    }
}

/// The operations whose denial on one association the `access_denied` gauge shows.
const EXECUTIONS_OPERATION: &str = "DescribeAssociationExecutions";
const TARGETS_OPERATION: &str = "DescribeAssociationExecutionTargets";

/// Final executions whose targets are read per poll at most; the others' targets are left out.
pub const MAX_TARGET_EXECUTIONS_PER_POLL: usize = 5;
/// `DescribeAssociationExecutionTargets` pages read per execution at most (a guard against
/// empty pages that keep a token).
pub const MAX_TARGET_PAGES_PER_EXECUTION: usize = 50;

/// Pages read per poll at most (5,000 executions); a longer run goes on at the next poll.
pub const MAX_PAGES_PER_POLL: usize = 100;
/// Stuck executions re-checked by ID per poll at most.
pub const MAX_RECHECKS_PER_POLL: usize = 5;
/// The poll error code when the API repeats (or cycles through) its `NextToken`s.
pub const REPEATED_TOKEN: &str = "RepeatedNextToken";
/// The poll error code when a poll stopped at [`MAX_PAGES_PER_POLL`].
pub const PAGE_LIMIT: &str = "PageLimit";

/// Applies what the tracker made of an execution to the numbers and the exporter's metrics;
/// an execution counted final with non-successful targets comes back, for its targets.
fn record(
    live: &mut Live,
    id: &str,
    execution: &Execution,
    observation: Observation,
    metrics: &Metrics,
) -> Option<TargetWork> {
    let mut work = None;
    let reached = execution
        .ended_ms
        .unwrap_or(execution.created_ms)
        .max(execution.created_ms);
    // What the listing's LastExecutionDate can be explained by (a bogus future date is not).
    if !matches!(observation, Observation::Counted { future: true, .. }) {
        live.exposed.seen_ms = live.exposed.seen_ms.max(Some(reached));
        live.exposed.view.read(execution);
    }
    let late_ms = match observation {
        Observation::Counted {
            status,
            newest,
            late_ms,
            future,
        } => {
            if future {
                metrics.future_dated_executions_total.inc();
                tracing::warn!(
                    association_id = %id, execution_id = %execution.id,
                    created_ms = execution.created_ms,
                    "execution dated in the future: counted once, the watermark ignores it"
                );
            }
            let last_success = live.tracker.last_success_ms();
            live.exposed.count(execution, status, newest, last_success);
            let statuses: Vec<(String, u64)> = execution
                .resources
                .iter()
                .filter(|(s, n)| s != "Success" && *n > 0)
                .cloned()
                .collect();
            live.exposed.remember(RecentExecution {
                id: execution.id.clone(),
                status,
                created_ms: execution.created_ms,
                ended_ms: execution.ended_ms,
                resources: execution.resources.clone(),
                targets: Vec::new(),
                targets_left_out: 0,
            });
            if !statuses.is_empty() {
                work = Some(TargetWork {
                    execution_id: execution.id.clone(),
                    created_ms: execution.created_ms,
                    ended_ms: execution.ended_ms.unwrap_or(execution.created_ms),
                    statuses,
                });
            }
            late_ms
        }
        Observation::Pending { late_ms } => late_ms,
        Observation::Absorbed { status, newest } => {
            let last_success = live.tracker.last_success_ms();
            live.exposed
                .note_newest(execution, status, newest, last_success);
            None
        }
        Observation::AlreadyCounted | Observation::OutOfWindow => None,
    };
    if let Some(late_ms) = late_ms {
        metrics
            .execution_lateness_seconds
            .observe(late_ms as f64 / 1000.0);
    }
    work
}
