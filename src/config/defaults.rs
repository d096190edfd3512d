//! Every default and limit of the config file, and the keys it accepts: the only place they
//! are defined.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{
    Config, DurationHistogram, LastExecutionStatus, MetricsConfig, TargetDetailConfig, Word,
};

/// Config file used when none is given on the command line.
pub const DEFAULT_CONFIG_FILE: &str = "ssm-association-exporter.yaml";

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration setting: default and inclusive bounds. The `*_text` fields are
/// the bounds as shown in error messages.
pub(super) struct DurationSetting {
    pub(super) default: Duration,
    pub(super) min: Duration,
    pub(super) min_text: &'static str,
    pub(super) max: Option<(Duration, &'static str)>,
}

/// An integer setting: default and accepted range.
pub(super) struct IntSetting {
    pub(super) default: u64,
    pub(super) range: RangeInclusive<u64>,
}

impl IntSetting {
    /// `default`, and the values accepted.
    const fn new(default: u64, range: RangeInclusive<u64>) -> IntSetting {
        IntSetting { default, range }
    }
}

/// A number setting: default, exclusive lower bound 0 and inclusive upper bound.
pub(super) struct RateSetting {
    pub(super) default: f64,
    pub(super) max: f64,
}

pub(super) const POLL_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: MINUTE,
    min: SECOND,
    min_text: "1s",
    max: None,
};
pub(super) const INITIAL_LOOKBACK_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((Duration::from_secs(90 * 24 * 60 * 60), "90d")),
};
/// `max_backfill`: its default is `initial_lookback`'s value (`Config::max_backfill`); this
/// `default` only names a value in messages.
pub(super) const MAX_BACKFILL_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((Duration::from_secs(90 * 24 * 60 * 60), "90d")),
};
pub(super) const LATE_VISIBILITY_WINDOW_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(10 * 60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((DAY, "24h")),
};
pub(super) const REQUEST_TIMEOUT_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(10),
    min: Duration::from_millis(100),
    min_text: "100ms",
    max: Some((Duration::from_secs(5 * 60), "5m")),
};
pub(super) const API_REQUESTS_PER_SECOND_SETTING: RateSetting = RateSetting {
    default: 5.0,
    max: 10_000.0,
};
pub(super) const MAX_CONCURRENT_REQUESTS_SETTING: IntSetting = IntSetting::new(4, 1..=256);
pub(super) const API_MAX_ATTEMPTS_SETTING: IntSetting = IntSetting::new(3, 1..=10);
pub(super) const STATE_SAVE_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(5),
    min: Duration::from_millis(100),
    min_text: "100ms",
    max: Some((HOUR, "1h")),
};

pub(super) const REMOVED_ASSOCIATION_RETENTION_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(7 * 24 * 60 * 60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((Duration::from_secs(90 * 24 * 60 * 60), "90d")),
};

pub(super) const DISCOVERY_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(5 * 60),
    min: SECOND,
    min_text: "1s",
    max: Some((DAY, "24h")),
};
pub(super) const FULL_SWEEP_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((Duration::from_secs(7 * 24 * 60 * 60), "7d")),
};
/// `full_sweep_max_polls_per_interval`: 5, so that a quiet account and region stays within
/// issue 21's 10 calls per interval whatever its size: 1 delta listing call (a few more when
/// runs moved dates) + at most 5 sweep polls, and even with the full listing's share (2.3 per
/// interval at 1,111 associations) under 10. Below 300 associations (at the default
/// intervals) it does not bind: the sweep stays at `full_sweep_interval`.
pub(super) const FULL_SWEEP_MAX_POLLS_PER_INTERVAL_SETTING: IntSetting =
    IntSetting::new(5, 1..=10_000);
/// `pending_recheck_max_interval`: 1 h, so that a run in progress for 2 hours costs 4 polls
/// (see `feed::PENDING_GROWTH`), and an end the listing does not show is counted within it.
pub(super) const PENDING_RECHECK_MAX_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((DAY, "24h")),
};

/// Every association is listed in full at least this often; between full listings a scope lists
/// only what ran (`LastExecutedAfter`). 10 minutes, as `late_visibility_window`: what only a
/// full listing shows (an association added or edited without running, one removed, a run
/// whose record the listing shows later than the delta's margin) is seen within the same bound
/// as a late execution, for ⌈N/50⌉ calls per 10 minutes (20 a minute at 10,000 associations in
/// one account and region, under 7 % of the default budget). `0s`: every listing is full.
pub(super) const FULL_LISTING_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(10 * 60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((DAY, "24h")),
};

/// `poll_interval` when `events:` is set and `poll_interval` is not: events say at once which
/// association changed, so the listing is only the safety net for the events that never come
/// (EventBridge delivery is best effort) and for the feed's rules of time; 5 minutes bounds
/// the delay a lost event adds and costs a fifth of the listings.
pub(super) const EVENTS_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// `full_sweep_interval` when `events:` is set and `full_sweep_interval` is not: the sweep is
/// the last safety net, behind the events and the listing; 6 hours costs a sixth of its polls.
pub(super) const EVENTS_FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(6 * 60 * 60);

/// `events.progress_poll_delay`: a run that ends within a minute of its start costs one poll
/// (its end's), and one that runs longer shows in progress within a minute, as with the
/// polling interval without events. `0s` polls at once for every event.
pub(super) const PROGRESS_POLL_DELAY_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((HOUR, "1h")),
};

/// The keys of the `events:` section, in documentation order.
pub(super) const EVENTS_KEYS: &[&str] = &["queues", "progress_poll_delay"];
/// The keys of an `events.queues` entry, in documentation order.
pub(super) const QUEUE_KEYS: &[&str] = &["url", "role_arn", "external_id"];

/// The keys of the `metrics:` section, in documentation order.
pub(super) const METRICS_KEYS: &[&str] = &[
    "duration_histogram",
    "last_execution_status",
    "per_association_internals",
];

/// `metrics.duration_histogram`: `per_association` by default.
impl Word for DurationHistogram {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("per_association", Self::PerAssociation),
        ("per_status", Self::PerStatus),
        ("off", Self::Off),
    ];
}

/// `metrics.last_execution_status`: `current` by default.
impl Word for LastExecutionStatus {
    const WORDS: &'static [(&'static str, Self)] =
        &[("current", Self::Current), ("per_status", Self::PerStatus)];
}

/// The keys of the `target_detail:` section, in documentation order.
pub(super) const TARGET_DETAIL_KEYS: &[&str] = &[
    "enabled",
    "max_targets_per_execution",
    "failing_targets_gauge",
    "max_failing_targets",
];
pub(super) const MAX_TARGETS_PER_EXECUTION_SETTING: IntSetting = IntSetting::new(50, 1..=1000);
pub(super) const MAX_FAILING_TARGETS_SETTING: IntSetting = IntSetting::new(20, 1..=1000);

/// The keys of a `discovery:` selector, in documentation order.
pub(super) const SELECTOR_KEYS: &[&str] = &["association_name", "document_name", "tags"];

/// The keys of an `accounts:` entry, in documentation order.
pub(super) const ACCOUNT_KEYS: &[&str] = &["role_arn", "external_id", "regions"];

/// Every accepted top-level key, in documentation order.
pub(super) const KEYS: &[&str] = &[
    "associations",
    "discovery",
    "discovery_interval",
    "poll_interval",
    "full_listing_interval",
    "full_sweep_interval",
    "full_sweep_max_polls_per_interval",
    "pending_recheck_max_interval",
    "initial_lookback",
    "max_backfill",
    "late_visibility_window",
    "api_requests_per_second",
    "max_concurrent_requests",
    "request_timeout",
    "api_max_attempts",
    "region",
    "regions",
    "accounts",
    "state_file",
    "state_save_interval",
    "removed_association_retention",
    "metrics",
    "target_detail",
    "events",
];

impl Config {
    /// Every setting at its default, nothing to watch: what the file's keys then change.
    /// `source` is the config file name as given.
    pub(super) fn defaults(source: &str) -> Config {
        Config {
            associations: Vec::new(),
            poll_interval: POLL_INTERVAL_SETTING.default,
            initial_lookback: INITIAL_LOOKBACK_SETTING.default,
            late_visibility_window: LATE_VISIBILITY_WINDOW_SETTING.default,
            max_backfill: None,
            api_requests_per_second: API_REQUESTS_PER_SECOND_SETTING.default,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS_SETTING.default as usize,
            request_timeout: REQUEST_TIMEOUT_SETTING.default,
            api_max_attempts: API_MAX_ATTEMPTS_SETTING.default as u32,
            region: None,
            state_file: None,
            state_save_interval: STATE_SAVE_INTERVAL_SETTING.default,
            removed_association_retention: REMOVED_ASSOCIATION_RETENTION_SETTING.default,
            metrics: MetricsConfig::default(),
            target_detail: TargetDetailConfig::default(),
            discovery: Vec::new(),
            discovery_interval: DISCOVERY_INTERVAL_SETTING.default,
            regions: Vec::new(),
            accounts: Vec::new(),
            full_sweep_interval: FULL_SWEEP_INTERVAL_SETTING.default,
            full_sweep_max_polls_per_interval: FULL_SWEEP_MAX_POLLS_PER_INTERVAL_SETTING.default
                as usize,
            pending_recheck_max_interval: PENDING_RECHECK_MAX_INTERVAL_SETTING.default,
            full_listing_interval: FULL_LISTING_INTERVAL_SETTING.default,
            events: None,
            source: source.to_owned(),
        }
    }
}

impl Default for TargetDetailConfig {
    fn default() -> Self {
        TargetDetailConfig {
            enabled: true,
            max_targets_per_execution: MAX_TARGETS_PER_EXECUTION_SETTING.default as usize,
            failing_targets_gauge: false,
            max_failing_targets: MAX_FAILING_TARGETS_SETTING.default as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{parse, parse_duration};
    use super::*;

    /// Every key the parser accepts has a row in docs/configuration.md's configuration table (the keys of
    /// selectors and accounts in their list's row), and each row's default is the one the
    /// parser applies.
    #[test]
    fn the_readme_documents_every_key_with_its_default() {
        let rows: HashMap<&str, &str> = include_str!("../../docs/configuration.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((key, *cells.get(2)?))
            })
            .collect();
        let row = |key: &str| -> &str {
            rows.get(key).copied().unwrap_or_else(|| {
                panic!("{key} has no row in docs/configuration.md's configuration table")
            })
        };
        for key in KEYS
            .iter()
            .filter(|k| !["metrics", "target_detail", "events"].contains(k))
        {
            row(key);
        }
        for key in METRICS_KEYS {
            row(&format!("metrics.{key}"));
        }
        for key in TARGET_DETAIL_KEYS {
            row(&format!("target_detail.{key}"));
        }
        let described = |list: &str, keys: &[&str]| {
            let text = include_str!("../../docs/configuration.md")
                .lines()
                .find(|l| l.starts_with(&format!("| `{list}` |")))
                .unwrap_or_else(|| panic!("{list} has no row in docs/configuration.md"));
            for key in keys {
                assert!(
                    text.contains(&format!("`{key}`")),
                    "README row {list} lacks `{key}`"
                );
            }
        };
        described("discovery", SELECTOR_KEYS);
        described("accounts", ACCOUNT_KEYS);
        for key in EVENTS_KEYS {
            row(&format!("events.{key}"));
        }
        described("events.queues", QUEUE_KEYS);
        // The defaults `events:` changes are in the rows of the keys they change.
        for (key, value) in [
            ("poll_interval", EVENTS_POLL_INTERVAL),
            ("full_sweep_interval", EVENTS_FULL_SWEEP_INTERVAL),
        ] {
            let text = super::super::format_duration(value);
            let line = include_str!("../../docs/configuration.md")
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_default();
            assert!(
                line.contains(&format!("`{text}` with `events:`")),
                "README row {key} lacks its default with events: `{text}` with `events:`"
            );
        }

        let c = parse("associations: []\ndiscovery: [{}]\n", "defaults.yaml").unwrap();
        let value = |key: &str| row(key).trim_matches('`').to_string();
        for (key, default) in [
            ("poll_interval", c.poll_interval),
            ("discovery_interval", c.discovery_interval),
            ("full_sweep_interval", c.full_sweep_interval),
            (
                "pending_recheck_max_interval",
                c.pending_recheck_max_interval,
            ),
            ("full_listing_interval", c.full_listing_interval),
            ("initial_lookback", c.initial_lookback),
            ("late_visibility_window", c.late_visibility_window),
            ("request_timeout", c.request_timeout),
            ("state_save_interval", c.state_save_interval),
            (
                "removed_association_retention",
                c.removed_association_retention,
            ),
        ] {
            assert_eq!(
                parse_duration(&value(key)),
                Ok(default),
                "README default of {key}"
            );
        }
        // `max_backfill` follows `initial_lookback` unless set.
        assert_eq!(c.max_backfill(), c.initial_lookback);
        assert!(
            row("max_backfill").contains("`initial_lookback`"),
            "README default of max_backfill: {}",
            row("max_backfill")
        );
        for (key, default) in [
            ("api_requests_per_second", c.api_requests_per_second),
            ("max_concurrent_requests", c.max_concurrent_requests as f64),
            (
                "full_sweep_max_polls_per_interval",
                c.full_sweep_max_polls_per_interval as f64,
            ),
            ("api_max_attempts", f64::from(c.api_max_attempts)),
            (
                "target_detail.max_targets_per_execution",
                c.target_detail.max_targets_per_execution as f64,
            ),
            (
                "target_detail.max_failing_targets",
                c.target_detail.max_failing_targets as f64,
            ),
        ] {
            assert_eq!(
                value(key).parse::<f64>(),
                Ok(default),
                "README default of {key}"
            );
        }
        for (key, default) in [
            ("target_detail.enabled", c.target_detail.enabled),
            (
                "target_detail.failing_targets_gauge",
                c.target_detail.failing_targets_gauge,
            ),
            (
                "metrics.per_association_internals",
                c.metrics.per_association_internals,
            ),
        ] {
            assert_eq!(
                value(key).parse::<bool>(),
                Ok(default),
                "README default of {key}"
            );
        }
    }
}
