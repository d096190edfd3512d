//! The `/metrics` text: one table of per-association families (their names are in `names`).
//!
//! Per-association numbers are rendered straight from the store's published copies (no
//! `prometheus` vectors: they are saved and restored with the state file); the exporter's own
//! metrics (`metrics.rs`) come from the `prometheus` registry and are appended. The
//! configuration's `metrics:` section ([`MetricsConfig`]) chooses the shape of some families;
//! the numbers behind them are always kept per status, so any shape can be rendered from them.

use std::io::Write as _;

use prometheus::{Encoder, Registry, TextEncoder};

use crate::config::{DurationHistogram, LastExecutionStatus, MetricsConfig, TargetDetailConfig};
use crate::model::FinalStatus;
use crate::names;
use std::sync::Arc;

use crate::store::{Entry, Exposed, Histogram, Store, DURATION_BUCKETS};

/// Appended to the HELP text of families whose values come from the background poll.
const FROM_POLL: &str = " (from the background poll of DescribeAssociationExecutions)";

/// One per-association family: its name, type and help, and how to write one association's
/// samples of it.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Whether the HELP text says the values come from the background poll.
    from_poll: bool,
    /// From when an association has series of this family.
    shown: Shown,
    write: fn(&Family, &Sample<'_>, &mut Vec<u8>),
    /// For the exporter's per-association internals: the help text and writer of the family
    /// without `association_id`, aggregated over the associations, which replaces the
    /// per-association one unless `metrics.per_association_internals` is set.
    aggregate: Option<(&'static str, WriteAggregate)>,
}

/// Writes a family's series aggregated over the associations.
type WriteAggregate = fn(&Family, &Aggregates, &mut Vec<u8>);

/// What the aggregated internals are computed from: every association's published numbers and
/// the process-wide counters.
struct Aggregates<'a> {
    snapshot: &'a [(Arc<Entry>, Exposed)],
    poll_errors: Vec<(String, u64)>,
    pending_abandoned: u64,
}

impl Aggregates<'_> {
    /// The associations whose exporter series are shown (a poll has ended).
    fn polled(&self) -> impl Iterator<Item = &Exposed> {
        self.snapshot.iter().map(|(_, e)| e).filter(|e| e.polled)
    }
}

/// From when an association has series of a family.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// As soon as there is something to show (the info metric).
    Always,
    /// Once a poll has ended: the exporter's per-association health.
    Polled,
    /// Once a poll has paged to its end: the execution numbers, so that they appear at their
    /// full value and a backfill of the look-back never looks like an increase.
    Complete,
}

impl Shown {
    fn allows(self, e: &Exposed) -> bool {
        match self {
            Shown::Always => true,
            Shown::Polled => e.polled,
            Shown::Complete => e.complete,
        }
    }
}

/// One association's published numbers, with its identifying labels, and what to export of
/// them.
struct Sample<'a> {
    entry: &'a Entry,
    e: &'a Exposed,
    config: &'a MetricsConfig,
    detail: &'a TargetDetailConfig,
}

impl Sample<'_> {
    /// The labels every per-association series starts with.
    fn base(&self) -> [(&'static str, &str); 3] {
        [
            ("association_id", &self.entry.id),
            ("account_id", &self.entry.scope.account_id),
            ("region", &self.entry.scope.region),
        ]
    }
}

/// The per-association families, in output order.
const FAMILIES: &[Family] = &[
    Family {
        name: names::EXECUTIONS_TOTAL,
        kind: "counter",
        help: "Association executions counted once, when first seen in a final status",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for (status, n) in s.e.executions.iter() {
                series(out, f.name, &s.base(), &[("status", status.name())], n);
            }
        },
    },
    Family {
        name: names::EXECUTION_DURATION_SECONDS,
        kind: "histogram",
        help: "LastExecutionDate minus CreatedTime of final executions",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: write_durations,
    },
    Family {
        name: names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
        kind: "counter",
        help: "Final executions left out of the duration histogram because the API gave no LastExecutionDate",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for (status, n) in s.e.without_end_time.iter().filter(|(_, n)| **n > 0) {
                series(out, f.name, &s.base(), &[("status", status.name())], n);
            }
        },
    },
    Family {
        name: names::EXECUTIONS_IN_PROGRESS,
        kind: "gauge",
        help: "Executions seen but not yet in a final status",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| series(out, f.name, &s.base(), &[], s.e.in_progress),
    },
    Family {
        name: names::LAST_EXECUTION_STATUS,
        kind: "gauge",
        help: "1 for the status of the newest final execution (with metrics.last_execution_status: per_status, also 0 for the other final statuses)",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            let Some(newest) = &s.e.newest else { return };
            match s.config.last_execution_status {
                LastExecutionStatus::Current => {
                    series(out, f.name, &s.base(), &[("status", newest.status.name())], 1);
                }
                LastExecutionStatus::PerStatus => {
                    for status in FinalStatus::ALL {
                        let value = u8::from(newest.status == status);
                        series(out, f.name, &s.base(), &[("status", status.name())], value);
                    }
                }
            }
        },
    },
    Family {
        name: names::LAST_EXECUTION_TIMESTAMP_SECONDS,
        kind: "gauge",
        help: "CreatedTime of the newest final execution, Unix seconds",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            if let Some(newest) = &s.e.newest {
                series(out, f.name, &s.base(), &[], Seconds(newest.created_ms));
            }
        },
    },
    Family {
        name: names::LAST_SUCCESS_TIMESTAMP_SECONDS,
        kind: "gauge",
        help: "CreatedTime of the newest successful execution, Unix seconds",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            if let Some(ms) = s.e.last_success_ms {
                series(out, f.name, &s.base(), &[], Seconds(ms));
            }
        },
    },
    Family {
        name: names::LAST_EXECUTION_RESOURCES,
        kind: "gauge",
        help: "Targets of the newest final execution by status, from its ResourceCountByStatus",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for (status, count) in s.e.newest.iter().flat_map(|n| &n.resources) {
                series(out, f.name, &s.base(), &[("status", status)], count);
            }
        },
    },
    Family {
        name: names::TRIGGERED_ALARM,
        kind: "gauge",
        help: "1 for each CloudWatch alarm the newest final execution triggered",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for alarm in s.e.newest.iter().flat_map(|n| &n.alarms) {
                let labels = [("alarm_name", alarm.name.as_str()), ("state", &alarm.state)];
                series(out, f.name, &s.base(), &labels, 1);
            }
        },
    },
    Family {
        name: names::TRIGGERED_ALARMS_TOTAL,
        kind: "counter",
        help: "Final executions that triggered the CloudWatch alarm",
        from_poll: true,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for ((alarm, state), count) in &s.e.alarms_total {
                let labels = [("alarm_name", alarm.as_str()), ("state", state)];
                series(out, f.name, &s.base(), &labels, count);
            }
        },
    },
    Family {
        name: names::TARGET_RESULTS_TOTAL,
        kind: "counter",
        help: "Non-successful targets of final executions read with DescribeAssociationExecutionTargets, by target status and DetailedStatus (a closed set, else other)",
        from_poll: false,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            for ((status, detailed), count) in &s.e.target_results {
                let labels = [("status", status.as_str()), ("detailed_status", detailed)];
                series(out, f.name, &s.base(), &labels, count);
            }
        },
    },
    Family {
        name: names::FAILING_TARGET,
        kind: "gauge",
        help: "1 for each non-successful target of the newest final execution that did not succeed everywhere (target_detail.failing_targets_gauge), at most target_detail.max_failing_targets",
        from_poll: false,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            if !s.detail.failing_targets_gauge {
                return;
            }
            let Some(newest) = newest_failing(s.e) else { return };
            for t in newest.targets.iter().take(s.detail.max_failing_targets) {
                let labels = [
                    ("resource_id", t.resource_id.as_str()),
                    ("status", crate::model::target_status_label(&t.status)),
                    (
                        "detailed_status",
                        crate::model::target_status_label(&t.detailed_status),
                    ),
                ];
                series(out, f.name, &s.base(), &labels, 1);
            }
        },
    },
    Family {
        name: names::FAILING_TARGETS_LEFT_OUT,
        kind: "gauge",
        help: "Non-successful targets of that execution not shown by ssm_association_failing_target (caps, or targets not read)",
        from_poll: false,
        shown: Shown::Complete,
        aggregate: None,
        write: |f, s, out| {
            if !s.detail.failing_targets_gauge {
                return;
            }
            let Some(newest) = newest_failing(s.e) else {
                return;
            };
            let shown = newest.targets.len().min(s.detail.max_failing_targets);
            let left_out = (newest.targets.len() - shown) as u64 + newest.targets_left_out;
            series(out, f.name, &s.base(), &[], left_out);
        },
    },
    Family {
        name: names::INFO,
        kind: "gauge",
        help: "Association metadata from ListAssociations (the background listing); always 1",
        from_poll: false,
        shown: Shown::Always,
        aggregate: None,
        write: |f, s, out| {
            if let Some(info) = &s.e.info {
                let labels = [
                    ("association_name", info.name.as_str()),
                    ("document_name", &info.document_name),
                    ("document_version", &info.document_version),
                    ("schedule_expression", &info.schedule_expression),
                    ("targets", &info.targets),
                ];
                series(out, f.name, &s.base(), &labels, 1);
            }
        },
    },
    Family {
        name: names::SCHEDULE_INTERVAL_SECONDS,
        kind: "gauge",
        help: "The longest gap between two scheduled runs of the association, from its rate() or cron() ScheduleExpression, seconds; absent without a schedule",
        from_poll: false,
        shown: Shown::Always,
        aggregate: None,
        write: |f, s, out| {
            if let Some(seconds) = s.e.schedule_interval_seconds {
                series(out, f.name, &s.base(), &[], seconds);
            }
        },
    },
    Family {
        name: names::LISTED_LAST_EXECUTION_TIMESTAMP_SECONDS,
        kind: "gauge",
        help: "LastExecutionDate of the association in ListAssociations (the background listing), Unix seconds; absent before its first run",
        from_poll: false,
        shown: Shown::Always,
        aggregate: None,
        write: |f, s, out| {
            if let Some(ms) = s.e.listed_last_execution_ms {
                series(out, f.name, &s.base(), &[], Seconds(ms));
            }
        },
    },
    Family {
        name: names::POLL_SUCCESS,
        kind: "gauge",
        help: "1 if the last background poll of the association paged to the end without error, else 0",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: None,
        write: |f, s, out| series(out, f.name, &s.base(), &[], u8::from(s.e.poll_success)),
    },
    Family {
        name: names::LAST_POLL_SUCCESS_TIMESTAMP_SECONDS,
        kind: "gauge",
        help: "When the association was last polled successfully, Unix seconds",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: None,
        write: |f, s, out| {
            if let Some(ms) = s.e.last_poll_success_ms {
                series(out, f.name, &s.base(), &[], Seconds(ms));
            }
        },
    },
    Family {
        name: names::WATERMARK_TIMESTAMP_SECONDS,
        kind: "gauge",
        help: "Newest CreatedTime seen by a complete poll (the look-back start until one is seen), Unix seconds",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: Some((
            "The oldest of the associations' watermarks: the newest CreatedTime seen by a complete poll (the look-back start until one is seen), Unix seconds",
            |f, a, out| {
                if let Some(ms) = a.polled().map(|e| e.watermark_ms).min() {
                    sample(out, f.name, &[], Seconds(ms));
                }
            },
        )),
        write: |f, s, out| series(out, f.name, &s.base(), &[], Seconds(s.e.watermark_ms)),
    },
    Family {
        name: names::POLL_ERRORS_TOTAL,
        kind: "counter",
        help: "Background polls of the association that failed, by the error code that ended them",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: Some((
            "Background polls that failed since the exporter started, over every association, by the error code that ended them",
            |f, a, out| {
                for (code, count) in &a.poll_errors {
                    sample(out, f.name, &[("code", code)], count);
                }
            },
        )),
        write: |f, s, out| {
            for (code, count) in &s.e.poll_errors {
                series(out, f.name, &s.base(), &[("code", code)], count);
            }
        },
    },
    Family {
        name: names::POLL_DELAY_SECONDS,
        kind: "gauge",
        help: "How late the last poll's first request went out after the poll was due (rate limit or concurrency cap), seconds",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: Some((
            "The largest of the associations' poll delays: how late the last poll's first request went out after the poll was due (rate limit or concurrency cap), seconds",
            |f, a, out| {
                if let Some(max) = a.polled().map(|e| e.poll_delay_seconds).reduce(f64::max) {
                    sample(out, f.name, &[], max);
                }
            },
        )),
        write: |f, s, out| series(out, f.name, &s.base(), &[], s.e.poll_delay_seconds),
    },
    Family {
        name: names::PENDING_ABANDONED_TOTAL,
        kind: "counter",
        help: "Executions given up on after staying non-final for longer than 7 days",
        from_poll: false,
        shown: Shown::Polled,
        aggregate: Some((
            "Executions given up on after staying non-final for longer than 7 days, since the exporter started, over every association",
            |f, a, out| sample(out, f.name, &[], a.pending_abandoned),
        )),
        write: |f, s, out| series(out, f.name, &s.base(), &[], s.e.pending_abandoned),
    },
];

/// The newest recent final execution with non-successful targets (read or left out).
fn newest_failing(e: &Exposed) -> Option<&crate::store::RecentExecution> {
    e.recent
        .iter()
        .find(|r| !r.targets.is_empty() || r.targets_left_out > 0)
}

/// The duration histogram of one association: a cumulative series per bucket, `+Inf`, sum and
/// count; per status (each status that has observations) or for every status together (once
/// there is an observation), or none, as `metrics.duration_histogram` says.
fn write_durations(f: &Family, s: &Sample<'_>, out: &mut Vec<u8>) {
    match s.config.duration_histogram {
        DurationHistogram::Off => {}
        DurationHistogram::PerStatus => {
            for (status, h) in s.e.durations.iter().filter(|(_, h)| h.count > 0) {
                write_histogram(f, &s.base(), Some(("status", status.name())), h, out);
            }
        }
        DurationHistogram::PerAssociation => {
            let mut all = Histogram::default();
            for (_, h) in s.e.durations.iter() {
                all.add(h);
            }
            // Every observation is whole milliseconds: round away the float noise of adding.
            all.sum = (all.sum * 1000.0).round() / 1000.0;
            if all.count > 0 {
                write_histogram(f, &s.base(), None, &all, out);
            }
        }
    }
}

/// Writes one histogram: cumulative buckets, `+Inf`, sum and count. Called for every
/// association on every rendering, so it allocates nothing.
fn write_histogram(
    f: &Family,
    base: &[(&str, &str); 3],
    status: Option<(&str, &str)>,
    h: &Histogram,
    out: &mut Vec<u8>,
) {
    let mut extra = [("", ""); 2];
    let n = usize::from(status.is_some());
    if let Some(status) = status {
        extra[0] = status;
    }
    let mut cumulative = 0;
    for (le, count) in DURATION_BUCKET_LABELS.iter().zip(h.buckets) {
        cumulative += count;
        extra[n] = ("le", le);
        series_suffixed(out, f.name, "_bucket", base, &extra[..=n], cumulative);
    }
    extra[n] = ("le", "+Inf");
    series_suffixed(out, f.name, "_bucket", base, &extra[..=n], h.count);
    series_suffixed(out, f.name, "_sum", base, &extra[..n], h.sum);
    series_suffixed(out, f.name, "_count", base, &extra[..n], h.count);
}

/// Appends `name` + `suffix` `{base,extra} value\n` (a histogram's `_bucket`, `_sum`, `_count`).
fn series_suffixed(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    base: &[(&str, &str)],
    extra: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.extend_from_slice(name.as_bytes());
    series(out, suffix, base, extra, value);
}

/// The duration bucket bounds as `le` label values.
const DURATION_BUCKET_LABELS: [&str; DURATION_BUCKETS.len()] = ["60", "300", "3600", "10800"];

/// The configuration that shapes `/metrics`: its `metrics:` section, and the `target_detail:`
/// keys that choose the failing-target families. Handed to each rendering by whoever holds the
/// running configuration (the HTTP state, updated on reload); the store keeps only numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shape {
    pub metrics: MetricsConfig,
    pub target_detail: TargetDetailConfig,
}

impl Shape {
    pub fn of(config: &crate::config::Config) -> Shape {
        Shape {
            metrics: config.metrics,
            target_detail: config.target_detail,
        }
    }
}

/// Writes the whole `/metrics` body into `out`: the per-association families from the
/// published numbers, then the exporter's own metrics and the process metrics.
pub fn render_body<W: std::io::Write>(
    registry: &Registry,
    store: &Store,
    shape: &Shape,
    out: &mut W,
) -> Result<(), prometheus::Error> {
    render(store, shape, out)?;
    TextEncoder::new().encode(&registry.gather(), out)
}

/// Writes every per-association family from the published numbers, in the text exposition
/// format, into `out` (a plain buffer or a gzip encoder). The published numbers are copied
/// first (one short lock per association), then each family is written for every association
/// in turn through a small buffer, so memory stays near the size of that copy rather than of
/// the rendered body.
pub fn render<W: std::io::Write>(store: &Store, shape: &Shape, out: &mut W) -> std::io::Result<()> {
    let snapshot: Vec<(Arc<Entry>, Exposed)> = store
        .entries()
        .into_iter()
        .map(|entry| {
            let published = entry.published();
            (entry, published)
        })
        .collect();
    let config = &shape.metrics;
    let detail = &shape.target_detail;
    let aggregates = Aggregates {
        snapshot: &snapshot,
        poll_errors: store.totals().poll_errors(),
        pending_abandoned: store.totals().pending_abandoned(),
    };
    let mut buf = Vec::with_capacity(128 * 1024);
    for family in FAMILIES {
        if let (Some((help, write)), false) = (family.aggregate, config.per_association_internals) {
            let start = buf.len();
            write(family, &aggregates, &mut buf);
            if buf.len() > start {
                let samples = buf.split_off(start);
                let _ = writeln!(buf, "# HELP {} {help}.", family.name);
                let _ = writeln!(buf, "# TYPE {} {}", family.name, family.kind);
                buf.extend_from_slice(&samples);
            }
            continue;
        }
        let mut header_written = false;
        for (entry, e) in &snapshot {
            if !family.shown.allows(e) {
                continue;
            }
            let start = buf.len();
            let sample = Sample {
                entry,
                e,
                config,
                detail,
            };
            (family.write)(family, &sample, &mut buf);
            if !header_written && buf.len() > start {
                header_written = true;
                let samples = buf.split_off(start);
                let suffix = if family.from_poll { FROM_POLL } else { "" };
                let _ = writeln!(buf, "# HELP {} {}{suffix}.", family.name, family.help);
                let _ = writeln!(buf, "# TYPE {} {}", family.name, family.kind);
                buf.extend_from_slice(&samples);
            }
            if buf.len() >= 64 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)
}

/// Appends `name{labels} value\n`.
fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    series(out, name, &[], labels, value);
}

/// Appends `name{base,extra} value\n`.
fn series(
    out: &mut Vec<u8>,
    name: &str,
    base: &[(&str, &str)],
    extra: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.extend_from_slice(name.as_bytes());
    if !base.is_empty() || !extra.is_empty() {
        out.push(b'{');
        for (i, (key, val)) in base.iter().chain(extra).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_label(out, val);
            out.push(b'"');
        }
        out.push(b'}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape_label(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
}

/// Seconds from milliseconds, printed without float noise (`1795678393.319`).
struct Seconds(i64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        if frac == 0 {
            write!(f, "{secs}")
        } else {
            let text = format!("{frac:03}");
            write!(f, "{secs}.{}", text.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(Seconds(1_795_678_393_319).to_string(), "1795678393.319");
        assert_eq!(Seconds(1_795_678_393_000).to_string(), "1795678393");
        assert_eq!(Seconds(1_795_678_393_050).to_string(), "1795678393.05");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Vec::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw")], 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m{a=\"x\\\"y\\\\z\\nw\"} 1\n"
        );
    }

    #[test]
    fn bucket_labels_match_the_bounds() {
        for (label, bound) in DURATION_BUCKET_LABELS.iter().zip(DURATION_BUCKETS) {
            assert_eq!(label.parse::<f64>().unwrap(), bound);
        }
    }

    /// The internals without `metrics.per_association_internals`: one series each, over the
    /// polled associations (the largest delay, the oldest watermark) and the process counters.
    #[test]
    fn internals_are_aggregated_by_default() {
        use crate::store::Live;
        use crate::tracker::Tracker;
        let store = Store::default();
        for (id, delay, watermark, polled) in [
            ("a", 1.5, 5_000, true),
            ("b", 0.25, 3_000, true),
            ("c", 9.0, 1_000, false),
        ] {
            let exposed = Exposed {
                poll_delay_seconds: delay,
                watermark_ms: watermark,
                polled,
                pending_abandoned: 4,
                poll_errors: vec![("ThrottlingException".into(), 7)],
                ..Exposed::default()
            };
            let tracker = Tracker::new(3_600_000, 600_000);
            let scope = crate::model::ScopeKey {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
            };
            store.insert(id, &scope, Live { tracker, exposed });
        }
        store.totals().poll_failed("ThrottlingException");
        store.totals().poll_failed("ThrottlingException");
        store.totals().abandoned(3);
        let render_text = |store: &Store, shape: &Shape| {
            let mut out = Vec::new();
            render(store, shape, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let text = render_text(&store, &Shape::default());
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ssm_association_exporter_"))
            .filter(|l| !l.contains("poll_success"))
            .collect();
        assert_eq!(
            samples,
            [
                "ssm_association_exporter_watermark_timestamp_seconds 3",
                "ssm_association_exporter_poll_errors_total{code=\"ThrottlingException\"} 2",
                "ssm_association_exporter_poll_delay_seconds 1.5",
                "ssm_association_exporter_pending_abandoned_total 3",
            ]
        );
        let richest = Shape {
            metrics: MetricsConfig::RICHEST,
            ..Shape::default()
        };
        let text = render_text(&store, &richest);
        assert!(text.contains(
            "ssm_association_exporter_poll_errors_total{association_id=\"a\",account_id=\"123456789012\",region=\"us-east-1\",code=\"ThrottlingException\"} 7\n"
        ));
        assert!(text.contains(
            "ssm_association_exporter_pending_abandoned_total{association_id=\"b\",account_id=\"123456789012\",region=\"us-east-1\"} 4\n"
        ));
        assert!(
            !text.contains("association_id=\"c\""),
            "c has not been polled"
        );
    }

    #[test]
    fn family_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} twice", f.name);
        }
    }
}
