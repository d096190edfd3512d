//! The human-readable summary of a configuration (`--config.check`, the startup log).

use std::time::Duration;

use super::{format_duration, Config, Word};

impl Config {
    /// Human-readable multi-line summary for `--config.check` and logs: the
    /// config file, the associations, and every setting with its effective value.
    pub fn summary(&self) -> String {
        let duration = |name: &str, value: Duration| format!("{name}: {}", format_duration(value));
        let mut lines = vec![
            format!("config file: {}", self.source),
            format!("associations: {}", self.associations.len()),
        ];
        lines.extend(self.associations.iter().map(|a| format!("  - {}", a.id)));
        lines.push(format!("discovery: {}", self.discovery.len()));
        lines.extend(
            self.discovery
                .iter()
                .map(|s| format!("  - {}", s.describe())),
        );
        lines.push(duration("discovery_interval", self.discovery_interval));
        lines.push(duration("poll_interval", self.poll_interval));
        lines.push(duration(
            "full_listing_interval",
            self.full_listing_interval,
        ));
        lines.push(duration("full_sweep_interval", self.full_sweep_interval));
        lines.push(format!(
            "full_sweep_max_polls_per_interval: {}",
            self.full_sweep_max_polls_per_interval
        ));
        lines.push(duration(
            "pending_recheck_max_interval",
            self.pending_recheck_max_interval,
        ));
        lines.push(duration("initial_lookback", self.initial_lookback));
        lines.push(match self.max_backfill {
            Some(d) => duration("max_backfill", d),
            None => format!(
                "max_backfill: {} (initial_lookback)",
                format_duration(self.initial_lookback)
            ),
        });
        lines.push(duration(
            "late_visibility_window",
            self.late_visibility_window,
        ));
        lines.push(format!(
            "api_requests_per_second: {}",
            self.api_requests_per_second
        ));
        lines.push(format!(
            "max_concurrent_requests: {}",
            self.max_concurrent_requests
        ));
        lines.push(duration("request_timeout", self.request_timeout));
        lines.push(format!("api_max_attempts: {}", self.api_max_attempts));
        let region = self.region.as_deref();
        lines.push(format!(
            "region: {}",
            region.unwrap_or("from the AWS config chain")
        ));
        lines.push(if self.regions.is_empty() {
            "regions: none (the region above)".to_owned()
        } else {
            format!("regions: {}", self.regions.join(", "))
        });
        lines.push(if self.accounts.is_empty() {
            "accounts: none (the exporter's own credentials)".to_owned()
        } else {
            format!("accounts: {}", self.accounts.len())
        });
        for account in &self.accounts {
            let who = account
                .role_arn
                .as_ref()
                .map_or("own credentials", |role| role.arn.as_str());
            let external_id = if account.external_id.is_some() {
                " with an external ID"
            } else {
                ""
            };
            let regions = if !account.regions.is_empty() {
                account.regions.join(", ")
            } else if !self.regions.is_empty() {
                self.regions.join(", ")
            } else {
                region
                    .unwrap_or("the region of the AWS config chain")
                    .to_owned()
            };
            lines.push(format!("  - {who}{external_id} in {regions}"));
        }
        lines.push(format!(
            "state_file: {}",
            self.state_file
                .as_ref()
                .map_or("none (state is kept in memory only)".to_string(), |p| p
                    .display()
                    .to_string())
        ));
        lines.push(duration("state_save_interval", self.state_save_interval));
        lines.push(duration(
            "removed_association_retention",
            self.removed_association_retention,
        ));
        let metrics = &self.metrics;
        lines.push(format!(
            "metrics: duration_histogram {}, last_execution_status {}, per_association_internals {}",
            metrics.duration_histogram.name(),
            metrics.last_execution_status.name(),
            metrics.per_association_internals
        ));
        let detail = &self.target_detail;
        lines.push(format!(
            "target_detail: enabled {}, max_targets_per_execution {}, failing_targets_gauge {}, max_failing_targets {}",
            detail.enabled,
            detail.max_targets_per_execution,
            detail.failing_targets_gauge,
            detail.max_failing_targets
        ));
        lines.push(match &self.events {
            None => "events: off (polling only)".to_owned(),
            Some(events) => format!(
                "events: {} SQS queue{} (polls on State Manager events: an end's at once, progress within {}; listing and sweep as above)",
                events.queues.len(),
                if events.queues.len() == 1 { "" } else { "s" },
                format_duration(events.progress_poll_delay)
            ),
        });
        for queue in self.events.iter().flat_map(|e| &e.queues) {
            let who = queue
                .role_arn
                .as_ref()
                .map_or("own credentials", |role| role.arn.as_str());
            lines.push(format!(
                "  - {} (account {}, {}) read with {who}",
                queue.url, queue.account_id, queue.region
            ));
        }
        lines.join("\n")
    }
}
