//! Every metric the exporter publishes, registered into an injected `prometheus::Registry`.
//!
//! Values are set by the background pollers; a scrape only encodes what is in memory.

use prometheus::core::Collector;
use prometheus::{
    Counter, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::tracker::FINAL_STATUSES;

/// Buckets for execution durations: association runs take seconds to hours.
const EXECUTION_DURATION_BUCKETS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];
/// Buckets for SSM API request latency.
const API_DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const FROM_POLL: &str = "(from the background poll of DescribeAssociationExecutions)";

/// All metrics of one exporter instance.
pub struct Metrics {
    pub executions_total: IntCounterVec,
    pub execution_duration_seconds: HistogramVec,
    pub executions_without_end_time_total: IntCounterVec,
    pub executions_in_progress: IntGaugeVec,
    pub last_execution_status: IntGaugeVec,
    pub last_execution_timestamp_seconds: GaugeVec,
    pub last_success_timestamp_seconds: GaugeVec,
    pub last_execution_resources: IntGaugeVec,
    pub triggered_alarm: IntGaugeVec,
    pub triggered_alarms_total: IntCounterVec,
    pub info: IntGaugeVec,
    pub poll_success: IntGaugeVec,
    pub last_poll_success_timestamp_seconds: GaugeVec,
    pub watermark_timestamp_seconds: GaugeVec,
    pub poll_errors_total: IntCounterVec,
    pub poll_delay_seconds: GaugeVec,
    pub pending_abandoned_total: IntCounterVec,
    pub api_requests_total: IntCounterVec,
    pub api_request_duration_seconds: HistogramVec,
    pub rate_limit_wait_seconds_total: Counter,
    pub build_info: IntGaugeVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Creates every metric and registers it into `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Metrics> {
        let a = &["association_id"];
        let a_status = &["association_id", "status"];
        let metrics = Metrics {
            executions_total: IntCounterVec::new(
                opts(
                    "ssm_association_executions_total",
                    &format!("Association executions counted once, when first seen in a final status {FROM_POLL}."),
                ),
                a_status,
            )?,
            execution_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "ssm_association_execution_duration_seconds",
                    format!("LastExecutionDate minus CreatedTime of final executions {FROM_POLL}."),
                )
                .buckets(EXECUTION_DURATION_BUCKETS.to_vec()),
                a_status,
            )?,
            executions_without_end_time_total: IntCounterVec::new(
                opts(
                    "ssm_association_executions_without_end_time_total",
                    &format!("Final executions left out of the duration histogram because the API gave no LastExecutionDate {FROM_POLL}."),
                ),
                a_status,
            )?,
            executions_in_progress: IntGaugeVec::new(
                opts(
                    "ssm_association_executions_in_progress",
                    &format!("Executions seen but not yet in a final status {FROM_POLL}."),
                ),
                a,
            )?,
            last_execution_status: IntGaugeVec::new(
                opts(
                    "ssm_association_last_execution_status",
                    &format!("1 for the status of the newest final execution, 0 for the other final statuses {FROM_POLL}."),
                ),
                a_status,
            )?,
            last_execution_timestamp_seconds: GaugeVec::new(
                opts(
                    "ssm_association_last_execution_timestamp_seconds",
                    &format!("CreatedTime of the newest final execution, Unix seconds {FROM_POLL}."),
                ),
                a,
            )?,
            last_success_timestamp_seconds: GaugeVec::new(
                opts(
                    "ssm_association_last_success_timestamp_seconds",
                    &format!("CreatedTime of the newest successful execution, Unix seconds {FROM_POLL}."),
                ),
                a,
            )?,
            last_execution_resources: IntGaugeVec::new(
                opts(
                    "ssm_association_last_execution_resources",
                    &format!("Targets of the newest final execution by status, from its ResourceCountByStatus {FROM_POLL}."),
                ),
                a_status,
            )?,
            triggered_alarm: IntGaugeVec::new(
                opts(
                    "ssm_association_triggered_alarm",
                    &format!("1 for each CloudWatch alarm the newest final execution triggered {FROM_POLL}."),
                ),
                &["association_id", "alarm_name", "state"],
            )?,
            triggered_alarms_total: IntCounterVec::new(
                opts(
                    "ssm_association_triggered_alarms_total",
                    &format!("Final executions that triggered the CloudWatch alarm {FROM_POLL}."),
                ),
                &["association_id", "alarm_name", "state"],
            )?,
            info: IntGaugeVec::new(
                opts(
                    "ssm_association_info",
                    "Association metadata from DescribeAssociation (refreshed at most hourly by the background poll); always 1.",
                ),
                &["association_id", "association_name", "document_name", "schedule_expression"],
            )?,
            poll_success: IntGaugeVec::new(
                opts(
                    "ssm_association_exporter_poll_success",
                    "1 if the last background poll of the association paged to the end without error, else 0.",
                ),
                a,
            )?,
            last_poll_success_timestamp_seconds: GaugeVec::new(
                opts(
                    "ssm_association_exporter_last_poll_success_timestamp_seconds",
                    "When the association was last polled successfully, Unix seconds.",
                ),
                a,
            )?,
            watermark_timestamp_seconds: GaugeVec::new(
                opts(
                    "ssm_association_exporter_watermark_timestamp_seconds",
                    "Newest CreatedTime seen by a complete poll (the look-back start until one is seen), Unix seconds.",
                ),
                a,
            )?,
            poll_errors_total: IntCounterVec::new(
                opts(
                    "ssm_association_exporter_poll_errors_total",
                    "Background polls of the association that failed, by the AWS error code that ended them.",
                ),
                &["association_id", "code"],
            )?,
            poll_delay_seconds: GaugeVec::new(
                opts(
                    "ssm_association_exporter_poll_delay_seconds",
                    "How late the last poll's first request went out after the poll was due (rate limit or concurrency cap), seconds.",
                ),
                a,
            )?,
            pending_abandoned_total: IntCounterVec::new(
                opts(
                    "ssm_association_exporter_pending_abandoned_total",
                    "Executions given up on after staying non-final for longer than 7 days.",
                ),
                a,
            )?,
            api_requests_total: IntCounterVec::new(
                opts(
                    "ssm_association_exporter_api_requests_total",
                    "SSM API request attempts, by operation and result code (ok, or the AWS error code).",
                ),
                &["operation", "code"],
            )?,
            api_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "ssm_association_exporter_api_request_duration_seconds",
                    "Duration of SSM API request attempts, seconds.",
                )
                .buckets(API_DURATION_BUCKETS.to_vec()),
                &["operation"],
            )?,
            rate_limit_wait_seconds_total: Counter::with_opts(opts(
                "ssm_association_exporter_rate_limit_wait_seconds_total",
                "Time SSM requests spent waiting for the process-wide rate limit, seconds.",
            ))?,
            build_info: IntGaugeVec::new(
                opts(
                    "ssm_association_exporter_build_info",
                    "Version and git revision the exporter was built from; always 1.",
                ),
                &["version", "revision"],
            )?,
        };
        let collectors: [Box<dyn Collector>; 21] = [
            Box::new(metrics.executions_total.clone()),
            Box::new(metrics.execution_duration_seconds.clone()),
            Box::new(metrics.executions_without_end_time_total.clone()),
            Box::new(metrics.executions_in_progress.clone()),
            Box::new(metrics.last_execution_status.clone()),
            Box::new(metrics.last_execution_timestamp_seconds.clone()),
            Box::new(metrics.last_success_timestamp_seconds.clone()),
            Box::new(metrics.last_execution_resources.clone()),
            Box::new(metrics.triggered_alarm.clone()),
            Box::new(metrics.triggered_alarms_total.clone()),
            Box::new(metrics.info.clone()),
            Box::new(metrics.poll_success.clone()),
            Box::new(metrics.last_poll_success_timestamp_seconds.clone()),
            Box::new(metrics.watermark_timestamp_seconds.clone()),
            Box::new(metrics.poll_errors_total.clone()),
            Box::new(metrics.poll_delay_seconds.clone()),
            Box::new(metrics.pending_abandoned_total.clone()),
            Box::new(metrics.api_requests_total.clone()),
            Box::new(metrics.api_request_duration_seconds.clone()),
            Box::new(metrics.rate_limit_wait_seconds_total.clone()),
            Box::new(metrics.build_info.clone()),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("SSM_EXPORTER_REVISION")])
            .set(1);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Creates the series every association has from its start, so that the first failure is
    /// an increase from 0 (a counter series that appears at 1 is invisible to `increase()`).
    pub fn init_association(&self, id: &str) {
        for status in FINAL_STATUSES {
            self.executions_total.with_label_values(&[id, status]);
        }
        self.executions_in_progress.with_label_values(&[id]).set(0);
        self.poll_success.with_label_values(&[id]).set(0);
        self.poll_delay_seconds.with_label_values(&[id]).set(0.0);
        self.pending_abandoned_total.with_label_values(&[id]);
    }

    /// Publishes the newest final execution's status as a 1 among 0s.
    pub fn set_last_status(&self, id: &str, status: &str) {
        for s in FINAL_STATUSES {
            self.last_execution_status
                .with_label_values(&[id, s])
                .set(i64::from(s == status));
        }
    }
}
