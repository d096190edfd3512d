//! The golden `/metrics` files: the per-association families rendered from a fixed store (the
//! version 1 state file that 0.1 wrote during a `--demo` run). With the richest `metrics:`
//! setting they must equal, byte for byte, what 0.1 served for that state (but for the changes
//! listed in the test); with the default setting, `v1.default.metrics`, whose duration histogram
//! must be the sum of the per-status ones. Both pass `promtool check metrics`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use std::collections::BTreeMap;

use ssm_association_exporter::config::MetricsConfig;
use ssm_association_exporter::model::ScopeKey;
use ssm_association_exporter::store::{Live, Store};
use ssm_association_exporter::tracker::Tracker;
use ssm_association_exporter::{exposition, persist};

fn fixture(name: &str) -> std::path::PathBuf {
    crate::common::repo_path("tests/fixtures/state").join(name)
}

fn render_fixture(config: MetricsConfig) -> String {
    let saved = persist::load(&fixture("v1.json")).unwrap().unwrap();
    let store = Store::default();
    let scope = ScopeKey {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    };
    for (id, restored) in saved.associations {
        let live = Live {
            tracker: Tracker::restore(restored.tracker, 3_600_000, 60_000),
            exposed: restored.exposed,
        };
        store.insert(&id, &scope, live);
    }
    store.publish_all();
    let shape = exposition::Shape {
        metrics: config,
        ..exposition::Shape::default()
    };
    let mut body = Vec::new();
    exposition::render(&store, &shape, &mut body).unwrap();
    String::from_utf8(body).unwrap()
}

fn assert_same(rendered: &str, expected: &str) {
    if rendered != expected {
        for (i, (a, b)) in rendered.lines().zip(expected.lines()).enumerate() {
            assert_eq!(a, b, "first difference at line {}", i + 1);
        }
        assert_eq!(rendered.lines().count(), expected.lines().count());
    }
}

#[test]
fn metrics_of_a_restored_version_1_state_equal_what_0_1_served() {
    // Since 0.1: every per-association series has the labels account_id and region after
    // association_id; ssm_association_info has two more, document_version and targets (empty
    // until the association is listed again), and its HELP names the listing; the duration
    // histogram dropped the buckets 10, 30, 900 and 1800 (the others keep their cumulative
    // counts: re-bucketing is exact); the HELP of ssm_association_last_execution_status names
    // its setting. Everything else is byte for byte what 0.1 served.
    let dropped = ["10", "30", "900", "1800"].map(|le| format!(",le=\"{le}\"}}"));
    let expected = std::fs::read_to_string(fixture("v1.metrics"))
        .unwrap()
        .lines()
        .filter(|line| !dropped.iter().any(|le| line.contains(le.as_str())))
        .map(|line| {
            let line = match line.split_once("{association_id=\"") {
                Some((name, rest)) if name.starts_with("ssm_association") => {
                    let (id, rest) = rest.split_once('"').unwrap();
                    format!(
                        "{name}{{association_id=\"{id}\",account_id=\"123456789012\",region=\"us-east-1\"{rest}"
                    )
                }
                _ => line.to_string(),
            };
            match line.strip_suffix("\"} 1") {
                Some(head) if line.starts_with("ssm_association_info{") => format!(
                    "{}\",targets=\"\"}} 1\n",
                    head.replace(",schedule_expression=", ",document_version=\"\",schedule_expression=")
                ),
                _ if line.starts_with("# HELP ssm_association_info ") => {
                    "# HELP ssm_association_info Association metadata from ListAssociations (the \
                     background listing); always 1.\n"
                        .to_string()
                }
                _ if line.starts_with("# HELP ssm_association_last_execution_status ") => {
                    "# HELP ssm_association_last_execution_status 1 for the status of the newest final \
                     execution (with metrics.last_execution_status: per_status, also 0 for the other \
                     final statuses) (from the background poll of DescribeAssociationExecutions).\n"
                        .to_string()
                }
                _ => format!("{line}\n"),
            }
        })
        .collect::<String>();
    assert_same(&render_fixture(MetricsConfig::RICHEST), &expected);
}

#[test]
fn default_metrics_of_a_restored_version_1_state() {
    let rendered = render_fixture(MetricsConfig::default());
    // SSM_EXPORTER_BLESS=1 rewrites the file after a deliberate change; review its diff.
    if std::env::var_os("SSM_EXPORTER_BLESS").is_some() {
        std::fs::write(fixture("v1.default.metrics"), &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(fixture("v1.default.metrics")).unwrap();
    assert_same(&rendered, &expected);
}

/// `name{labels} value` lines of one metric, keyed by their labels without `drop`, summed.
fn summed(text: &str, name: &str, drop: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        let kept: Vec<&str> = labels
            .split(',')
            .filter(|l| !l.starts_with(&format!("{drop}=")))
            .collect();
        *out.entry(kept.join(",")).or_default() += value.parse::<f64>().unwrap();
    }
    out
}

#[test]
fn the_default_duration_histogram_is_the_sum_of_the_per_status_ones() {
    let richest = render_fixture(MetricsConfig::RICHEST);
    let default = render_fixture(MetricsConfig::default());
    for suffix in ["_bucket", "_sum", "_count"] {
        let name = format!("ssm_association_execution_duration_seconds{suffix}");
        let per_status = summed(&richest, &name, "status");
        let per_association = summed(&default, &name, "status");
        assert!(!per_association.is_empty(), "{name}");
        assert_eq!(per_status.len(), per_association.len(), "{name}");
        for (labels, value) in per_status {
            let got = per_association[&labels];
            assert!(
                (got - value).abs() < 1e-6,
                "{name}{{{labels}}}: {got} vs {value}"
            );
        }
    }
}

#[test]
fn golden_metrics_pass_promtool() {
    for config in [MetricsConfig::RICHEST, MetricsConfig::default()] {
        promtool_check(&render_fixture(config));
    }
}

fn promtool_check(body: &str) {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (apt-get install prometheus)"
        );
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
