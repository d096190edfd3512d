//! One poll of one association: page through its executions, feed the tracker, publish metrics.

use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::ssm::{ApiError, AssociationInfo, Ssm};
use crate::tracker::{parse_resource_counts, Execution, Observation, Tracker, TriggeredAlarm};

/// `DescribeAssociation` is asked again at most this often.
pub const INFO_REFRESH: Duration = Duration::from_secs(3600);

/// The polling state of one association.
pub struct Poller {
    id: String,
    tracker: Tracker,
    info: Option<AssociationInfo>,
    info_due: Option<Instant>,
    /// Label values currently published for the newest final execution, to remove them when
    /// it changes.
    resource_statuses: Vec<String>,
    alarms: Vec<TriggeredAlarm>,
}

impl Poller {
    pub fn new(id: String, floor_ms: i64, late_window_ms: i64) -> Poller {
        Poller {
            id,
            tracker: Tracker::new(floor_ms, late_window_ms),
            info: None,
            info_due: None,
            resource_statuses: Vec::new(),
            alarms: Vec::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Refreshes the info metric when due, then pages through every execution created after the
    /// tracker's `since` point. `due` is when the poll should have started, for the delay metric.
    pub async fn poll(
        &mut self,
        ssm: &Ssm,
        metrics: &Metrics,
        due: Instant,
    ) -> Result<(), ApiError> {
        let mut first_sent = None;
        if self.info_due.is_none_or(|d| Instant::now() >= d) {
            self.info_due = Some(Instant::now() + INFO_REFRESH);
            match ssm.describe_association(&self.id, &mut first_sent).await {
                Ok(info) => self.set_info(metrics, info),
                Err(error) => tracing::warn!(
                    association_id = %self.id, code = %error.code, %error,
                    "DescribeAssociation failed; execution polling goes on without the info metric"
                ),
            }
        }

        let abandoned = self.tracker.begin_poll();
        if abandoned > 0 {
            metrics
                .pending_abandoned_total
                .with_label_values(&[&self.id])
                .inc_by(abandoned as u64);
            tracing::warn!(association_id = %self.id, abandoned, "gave up on executions pending for over 7 days");
        }
        let since = self.tracker.poll_since_ms();
        let mut token: Option<String> = None;
        let mut restarted = false;
        let mut delay_published = false;
        let outcome = loop {
            let page = ssm
                .execution_page(&self.id, since, token.take(), &mut first_sent)
                .await;
            if let (false, Some(sent)) = (delay_published, first_sent) {
                delay_published = true;
                metrics
                    .poll_delay_seconds
                    .with_label_values(&[&self.id])
                    .set(sent.saturating_duration_since(due).as_secs_f64());
            }
            match page {
                Ok(page) => {
                    if page.malformed > 0 {
                        tracing::warn!(association_id = %self.id, skipped = page.malformed, "executions without ExecutionId or CreatedTime skipped");
                    }
                    for execution in &page.executions {
                        self.observe(metrics, execution);
                    }
                    metrics
                        .executions_in_progress
                        .with_label_values(&[&self.id])
                        .set(self.tracker.in_progress() as i64);
                    match page.next_token {
                        Some(next) if !next.is_empty() => token = Some(next),
                        _ => break Ok(()),
                    }
                }
                // The token went stale half-way: page again from the same `since` point once;
                // what was already counted is skipped, so nothing is counted twice.
                Err(error) if error.code == "InvalidNextToken" && !restarted => {
                    restarted = true;
                    tracing::info!(association_id = %self.id, "NextToken rejected; paging again from the watermark");
                }
                Err(error) => break Err(error),
            }
        };
        self.tracker.finish_poll(outcome.is_ok());
        let id = [self.id.as_str()];
        match &outcome {
            Ok(()) => {
                metrics.poll_success.with_label_values(&id).set(1);
                metrics
                    .last_poll_success_timestamp_seconds
                    .with_label_values(&id)
                    .set(crate::now_ms() as f64 / 1000.0);
            }
            Err(error) => {
                metrics.poll_success.with_label_values(&id).set(0);
                metrics
                    .poll_errors_total
                    .with_label_values(&[&self.id, &error.code])
                    .inc();
            }
        }
        metrics
            .watermark_timestamp_seconds
            .with_label_values(&id)
            .set(self.tracker.watermark_ms() as f64 / 1000.0);
        outcome
    }

    fn observe(&mut self, metrics: &Metrics, execution: &Execution) {
        let Observation::Counted { newest } = self.tracker.observe(execution) else {
            return;
        };
        let labels = [self.id.as_str(), execution.status.as_str()];
        metrics.executions_total.with_label_values(&labels).inc();
        match execution.ended_ms {
            Some(ended) if ended >= execution.created_ms => metrics
                .execution_duration_seconds
                .with_label_values(&labels)
                .observe((ended - execution.created_ms) as f64 / 1000.0),
            _ => metrics
                .executions_without_end_time_total
                .with_label_values(&labels)
                .inc(),
        }
        for alarm in &execution.triggered_alarms {
            metrics
                .triggered_alarms_total
                .with_label_values(&[&self.id, &alarm.name, &alarm.state])
                .inc();
        }
        if let Some(success) = self.tracker.last_success_ms() {
            metrics
                .last_success_timestamp_seconds
                .with_label_values(&[&self.id])
                .set(success as f64 / 1000.0);
        }
        if newest {
            self.publish_newest(metrics, execution);
        }
    }

    /// Points the `last_*` and `triggered_alarm` gauges at the newest final execution.
    fn publish_newest(&mut self, metrics: &Metrics, execution: &Execution) {
        let id = self.id.as_str();
        metrics.set_last_status(id, &execution.status);
        metrics
            .last_execution_timestamp_seconds
            .with_label_values(&[id])
            .set(execution.created_ms as f64 / 1000.0);

        let counts = execution
            .resource_counts
            .as_deref()
            .map(parse_resource_counts)
            .unwrap_or_default();
        for old in &self.resource_statuses {
            if !counts.iter().any(|(s, _)| s == old) {
                let _ = metrics
                    .last_execution_resources
                    .remove_label_values(&[id, old]);
            }
        }
        for (status, count) in &counts {
            metrics
                .last_execution_resources
                .with_label_values(&[id, status])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.resource_statuses = counts.into_iter().map(|(s, _)| s).collect();

        let mut alarms = execution.triggered_alarms.clone();
        alarms.sort();
        alarms.dedup();
        for old in &self.alarms {
            if !alarms.contains(old) {
                let _ = metrics
                    .triggered_alarm
                    .remove_label_values(&[id, &old.name, &old.state]);
            }
        }
        for alarm in &alarms {
            metrics
                .triggered_alarm
                .with_label_values(&[id, &alarm.name, &alarm.state])
                .set(1);
        }
        self.alarms = alarms;
    }

    fn set_info(&mut self, metrics: &Metrics, info: AssociationInfo) {
        if self.info.as_ref() == Some(&info) {
            return;
        }
        if let Some(old) = self.info.take() {
            let _ = metrics.info.remove_label_values(&[
                &self.id,
                &old.name,
                &old.document_name,
                &old.schedule_expression,
            ]);
        }
        metrics
            .info
            .with_label_values(&[
                &self.id,
                &info.name,
                &info.document_name,
                &info.schedule_expression,
            ])
            .set(1);
        self.info = Some(info);
    }
}
