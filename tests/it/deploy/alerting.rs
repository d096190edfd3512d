//! Alerts, runbooks, Alertmanager and Grafana, all rendered from the monitoring mixin
//! (`deploy/mixin/`, `scripts/render-mixin`): the committed renders match a fresh one;
//! `promtool check rules` and `promtool test rules` (every alert firing and not firing, a
//! replaced pod not re-alerting, the regressions of issue 23); the Helm chart's rules as
//! `helm template` renders them with its knobs (job selector, runbook URL, disabled alerts,
//! severities, labels, high availability) through promtool; every PromQL expression of the
//! dashboard and the Grafana-managed rules through promtool, the dashboard's panels
//! deduplicated across the replicas of a shard, the Grafana-managed rules firing without
//! recording rules; every alert with summary, description, a runbook section and (per
//! association) the association's name, account, region and console link; `amtool
//! check-config` on the Alertmanager example with its inhibitions scoped to one account and
//! region; and the listing's `LastExecutionDate` gauge that `SSMAssociationOverdue` needs,
//! through `run()` and the simulator.

use super::*;
use crate::common::{simulator_with, test_config, Exporter, Reading};
use ssm_association_exporter::names;
use ssm_simulator::SimExecution;

fn alerts() -> Vec<Value> {
    yaml("deploy/prometheus/alerts.yml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn records() -> Vec<String> {
    yaml("deploy/prometheus/alerts.yml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect()
}

fn is_per_association(alert: &Value) -> bool {
    alert["expr"].as_str().unwrap().contains("association_id")
}

#[test]
fn promtool_check_rules_passes() {
    let Some(mut promtool) = tool("promtool") else {
        return;
    };
    promtool.args(["check", "rules", "deploy/prometheus/alerts.yml"]);
    run_ok(promtool);
}

#[test]
fn promtool_rule_unit_tests_pass_and_every_alert_is_tested_firing_and_quiet() {
    let Some(mut promtool) = tool("promtool") else {
        return;
    };
    promtool.args(["test", "rules", "deploy/prometheus/alerts_test.yml"]);
    let out = run_ok(promtool);
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = yaml("deploy/prometheus/alerts_test.yml");
    let checks: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let of = |firing: bool| {
            checks.iter().any(|c| {
                c["alertname"] == name && c["exp_alerts"].as_array().unwrap().is_empty() != firing
            })
        };
        assert!(of(true), "no unit test where {name} fires");
        assert!(of(false), "no unit test where {name} stays quiet");
    }
    let replaced = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().unwrap().contains("replaced pod"))
        .expect("a test where a new pod's series appear");
    assert!(replaced["alert_rule_test"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["exp_alerts"].as_array().unwrap().is_empty()));
}

#[test]
fn every_alert_says_what_and_links_its_runbook_and_the_association() {
    let runbooks = read("docs/runbooks.md");
    let anchors: Vec<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let annotations = &alert["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                annotations[key].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        let anchor = annotations["runbook_url"]
            .as_str()
            .unwrap()
            .rsplit_once("docs/runbooks.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url into docs/runbooks.md"))
            .1;
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{name}: no runbook section #{anchor}"
        );
        assert!(["critical", "warning", "info"]
            .contains(&alert["labels"]["severity"].as_str().unwrap()));
        if is_per_association(&alert) && !name.ends_with("Throttled") {
            let expr = alert["expr"].as_str().unwrap();
            assert!(
                expr.contains("group_left (association_name, account_id, region)")
                    && expr.contains("max by (cluster, namespace, association_id, association_name, account_id, region) (ssm_association_info")
                    && expr.contains("or on (cluster, namespace, association_id)"),
                "{name}: names the association and its account and region from ssm_association_info, and fires without it"
            );
            let console = annotations["console_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: console_url"));
            assert!(console.contains(
                "https://{{ . }}.console.aws.amazon.com/systems-manager/state-manager/{{ $labels.association_id }}/description?region={{ . }}"
            ));
            let text = format!("{}{}", annotations["summary"], annotations["description"]);
            assert!(
                text.contains("$labels.association_name"),
                "{name}: names the association"
            );
        }
    }
    // And no runbook section without an alert.
    let names: Vec<String> = alerts()
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_lowercase())
        .collect();
    for anchor in &anchors {
        assert!(
            names.contains(anchor),
            "runbook section {anchor} has no alert"
        );
    }
}

/// The labels an alert carries that an inhibition can compare: `job`, and `account_id` and
/// `region` when the alert is per account and region (aggregated by them) or per association
/// (joined from `ssm_association_info`).
fn carries_account_and_region(alert: &Value) -> bool {
    let expr = alert["expr"].as_str().unwrap();
    expr.contains("by (cluster, namespace, job, account_id, region)")
        || expr.contains("by (cluster, namespace, job, association_id, account_id, region)")
}

#[test]
fn the_alertmanager_example_is_valid_and_inhibits_what_credentials_cause() {
    let config = yaml("deploy/alertmanager/alertmanager.yml");
    let names: Vec<String> = alerts()
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_string())
        .collect();
    let rule_of = |source: &str| {
        config["inhibit_rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source_matchers"][0].as_str().unwrap().contains(source))
            .unwrap_or_else(|| panic!("an inhibition by {source}"))
            .clone()
    };
    // Rejected credentials or a failing listing of one account and region silence only the
    // alerts of that account and region: the estate's other accounts are still polled.
    for (source, must_target) in [
        (
            "SSMAssociationExporterCredentialsRejected",
            &[
                "SSMAssociationExporterListingFailing",
                "SSMAssociationExporterPollFailing",
                "SSMAssociationExporterStale",
            ][..],
        ),
        (
            "SSMAssociationExporterListingFailing",
            &["SSMAssociationExporterStale"][..],
        ),
    ] {
        let rule = rule_of(source);
        assert_eq!(
            rule["equal"],
            serde_json::json!(["cluster", "namespace", "job", "account_id", "region"]),
            "{source}: inhibits per cluster, namespace, job, account and region"
        );
        let source_alert = alerts().into_iter().find(|a| a["alert"] == source).unwrap();
        assert!(
            carries_account_and_region(&source_alert),
            "{source} carries the labels its inhibition compares"
        );
        let targets = rule["target_matchers"][0].as_str().unwrap();
        let targets: Vec<&str> = targets.split('"').nth(1).unwrap().split('|').collect();
        for target in must_target {
            assert!(targets.contains(target), "{source} inhibits {target}");
        }
        for target in targets {
            assert!(
                names.contains(&target.to_string()),
                "inhibits unknown alert {target}"
            );
            let alert = alerts().into_iter().find(|a| a["alert"] == target).unwrap();
            assert!(
                carries_account_and_region(&alert),
                "{target} keeps the job, account_id and region labels the inhibition compares"
            );
        }
    }
    let Some(mut amtool) = tool("amtool") else {
        return;
    };
    amtool.args(["check-config", "deploy/alertmanager/alertmanager.yml"]);
    let out = run_ok(amtool);
    assert!(out.contains("SUCCESS"), "{out}");
}

fn grafana_rules() -> Vec<Value> {
    yaml("deploy/grafana/provisioning/alerting/ssm-association-alerts.yml")["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every recording rule of alerts.yml: name -> expression.
fn recording_rules() -> Vec<(String, String)> {
    yaml("deploy/prometheus/alerts.yml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter_map(|r| {
            let record = r["record"].as_str()?;
            Some((
                record.to_string(),
                r["expr"].as_str().unwrap().trim().to_string(),
            ))
        })
        .collect()
}

#[test]
fn every_alert_is_mirrored_as_a_grafana_managed_rule_with_recording_rules_inlined() {
    let rules = grafana_rules();
    let mut uids: Vec<&str> = rules.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert!(
        uids.iter().all(|u| u.len() <= 40),
        "Grafana UIDs are at most 40 characters"
    );
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), rules.len(), "unique UIDs");
    let records = recording_rules();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let rule = rules
            .iter()
            .find(|r| r["title"] == name)
            .unwrap_or_else(|| panic!("{name} is not mirrored: run scripts/render-mixin"));
        let expr = rule["data"][0]["model"]["expr"].as_str().unwrap();
        // Grafana evaluates no recording rule: the alert's query with each one inlined.
        let mut inlined = alert["expr"].as_str().unwrap().trim().to_string();
        for (record, record_expr) in &records {
            inlined = inlined.replace(record, &format!("({record_expr})"));
            assert!(!expr.contains(record.as_str()), "{name} queries {record}");
        }
        assert_eq!(expr.trim(), inlined, "{name}: run scripts/render-mixin");
        assert_eq!(rule["data"][0]["datasourceUid"], "prometheus");
        assert_eq!(
            rule["for"].as_str().unwrap(),
            alert["for"].as_str().unwrap_or("0s")
        );
        assert_eq!(rule["labels"], alert["labels"]);
        assert_eq!(rule["condition"], "C");
        assert!(rule["annotations"]["runbook_url"].is_string());
    }
    assert_eq!(rules.len(), alerts().len());
    let example = yaml("deploy/grafana/examples/notification-policies.yml");
    assert!(example["contactPoints"][0]["receivers"][0]["type"].is_string());
    assert!(example["policies"][0]["routes"].is_array());
}

/// Runs `promtool test rules` on `tests` (YAML, without `rule_files`) over the rule files
/// `rules` (YAML texts), written to a temporary directory.
fn promtool_test(rules: &[String], tests: &str) -> Option<String> {
    let mut promtool = tool("promtool")?;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, text) in rules.iter().enumerate() {
        let name = format!("rules-{i}.yml");
        std::fs::write(dir.path().join(&name), text).unwrap();
        files.push(name);
    }
    let test = format!(
        "rule_files: {}\nevaluation_interval: 1m\n{tests}",
        serde_json::to_string(&files).unwrap()
    );
    std::fs::write(dir.path().join("test.yml"), test).unwrap();
    promtool
        .current_dir(dir.path())
        .args(["test", "rules", "test.yml"]);
    Some(run_ok(promtool))
}

/// Regression (issue 23): the Grafana-managed Throttled rule queried a recording rule that
/// Grafana never creates, so it could not fire. Every Grafana rule's query, as an alert in a
/// Prometheus without the recording rules, fires on the raw series.
#[test]
fn the_grafana_managed_rules_fire_without_recording_rules() {
    let rules: Vec<Value> = grafana_rules()
        .iter()
        .map(|r| {
            serde_json::json!({
                "alert": r["title"],
                "expr": r["data"][0]["model"]["expr"],
                "for": r["for"],
            })
        })
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "grafana", "rules": rules }] });
    let tests = r#"
tests:
  - interval: 1m
    input_series:
      - series: 'ssm_association_exporter_api_requests_total{job="ssm-association-exporter",instance="e:9832",operation="ListAssociations",code="ok"}'
        values: '0+60x40'
      - series: 'ssm_association_exporter_api_requests_total{job="ssm-association-exporter",instance="e:9832",operation="ListAssociations",code="ThrottlingException"}'
        values: '0+6x40'
    alert_rule_test:
      - eval_time: 25m
        alertname: SSMAssociationExporterThrottled
        exp_alerts:
          - exp_labels: {job: "ssm-association-exporter"}
"#;
    let Some(out) = promtool_test(&[file.to_string()], tests) else {
        return;
    };
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The dashboard's PromQL expressions (variables set to "every value", or `cluster` to
/// `cluster`), as recording rules.
fn dashboard_exprs() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "panel {} has no description",
            panel["title"]
        );
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

fn with_variables(expr: &str, cluster: &str, job: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$cluster", cluster)
        .replace("$job", job)
        .replace("$instance", ".*")
        .replace("$account_id", ".*")
        .replace("$region", ".*")
        .replace("$association_id", ".*")
}

/// Every PromQL expression of the dashboard (variables given example values, the variables'
/// own queries included) and of the Grafana rules, as recording rules through `promtool
/// check rules`.
#[test]
fn every_dashboard_and_grafana_expression_passes_promtool() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let mut exprs = dashboard_exprs();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = if let Some(inner) = query.strip_prefix("query_result(") {
                inner.strip_suffix(')').unwrap()
            } else {
                query
                    .strip_prefix("label_values(")
                    .unwrap()
                    .rsplit_once(',')
                    .unwrap()
                    .0
            };
            exprs.push(inner.to_string());
        }
    }
    for rule in grafana_rules() {
        exprs.push(
            rule["data"][0]["model"]["expr"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = with_variables(e, ".*", "ssm-association-exporter");
            serde_json::json!({ "record": format!("check:expression:{i}"), "expr": e })
        })
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "expressions", "rules": rules }] });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("expressions.yml");
    std::fs::write(&path, file.to_string()).unwrap();
    let Some(mut promtool) = tool("promtool") else {
        return;
    };
    promtool.args(["check", "rules"]).arg(&path);
    run_ok(promtool);
}

/// Regression (issue 23): panels summed `increase(...)` over both replicas of a shard, so
/// every count doubled under `ha.enabled`. Every panel on the associations' series shows the
/// same numbers for one exporter (cluster "single") as for two replicas exporting the same
/// series (cluster "double"); the exporter's own series (API calls, process) are per replica
/// and left out.
#[test]
fn every_association_panel_counts_once_across_the_replicas_of_a_shard() {
    let own = [
        "ssm_association_exporter_api_",
        "rate_limit_wait",
        "process_",
        "build_info",
        "up{",
    ];
    let exprs: Vec<String> = dashboard_exprs()
        .into_iter()
        .filter(|e| !own.iter().any(|o| e.contains(o)))
        .collect();
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut metrics: Vec<String> = exprs
        .iter()
        .flat_map(|e| referenced_names(e))
        .filter(|n| !n.contains(':'))
        .collect();
    metrics.sort();
    metrics.dedup();
    let mut series = String::new();
    for (cluster, replicas) in [
        ("single", &["s-0"][..]),
        ("double", &["d-a-0", "d-b-0"][..]),
    ] {
        for pod in replicas {
            for metric in &metrics {
                let counter = metric.ends_with("_total") || metric.ends_with("_bucket");
                let values = if counter { "0+1x60" } else { "1x60" };
                let buckets: &[&str] = if metric.ends_with("_bucket") {
                    &["10", "+Inf"]
                } else {
                    &[""]
                };
                for le in buckets {
                    let le = if le.is_empty() {
                        String::new()
                    } else {
                        format!(",le=\"{le}\"")
                    };
                    series.push_str(&format!(
                        "      - series: '{metric}{{job=\"{cluster}\",cluster=\"{cluster}\",instance=\"{pod}:9832\",pod=\"{pod}\",association_id=\"a\",account_id=\"111111111111\",region=\"eu-west-1\",association_name=\"patch\",status=\"Failed\",alarm_name=\"cpu\",state=\"ALARM\",code=\"ThrottlingException\"{le}}}'\n        values: '{values}'\n"
                    ));
                }
            }
        }
    }
    // The recording rules the panels read, for both jobs.
    let recording = read("deploy/prometheus/alerts.yml")
        .replace("job=\"ssm-association-exporter\"", "job=~\"single|double\"");
    let mut rules = Vec::new();
    let mut checks = String::new();
    for (i, expr) in exprs.iter().enumerate() {
        for (cluster, _) in [("single", ()), ("double", ())] {
            rules.push(serde_json::json!({
                "record": format!("check:{cluster}:{i}"),
                "expr": with_variables(expr, cluster, cluster),
            }));
        }
        let (a, b) = (format!("check:single:{i}"), format!("check:double:{i}"));
        rules.push(serde_json::json!({
            "alert": format!("Differs{i}"),
            "expr": format!("(sum({a}) != sum({b})) or (count({a}) != count({b})) or (count({a}) unless count({b})) or (count({b}) unless count({a})) or absent({a})"),
            "annotations": { "expr": expr },
        }));
        checks.push_str(&format!(
            "      - eval_time: 40m\n        alertname: Differs{i}\n        exp_alerts: []\n"
        ));
    }
    let file = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let tests = format!(
        "tests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n{checks}"
    );
    let Some(out) = promtool_test(&[recording, file.to_string()], &tests) else {
        return;
    };
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_dashboard_filters_by_cluster_job_instance_account_and_region_and_links_the_console() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    for name in [
        "cluster",
        "job",
        "instance",
        "account_id",
        "region",
        "association_id",
    ] {
        let v = variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"));
        assert_eq!(v["multi"], true, "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
    }
    // The association picker shows names: its values are IDs, its texts the names, from the
    // query_result lines of ssm_association_info.
    let picker = variables
        .iter()
        .find(|v| v["name"] == "association_id")
        .unwrap();
    let query = picker["query"]["query"].as_str().unwrap();
    assert!(
        query.starts_with("query_result(") && query.contains("ssm_association_info"),
        "{query}"
    );
    let regex = picker["regex"].as_str().unwrap();
    assert!(
        regex.contains("(?<value>") && regex.contains("association_name=\"(?<text>"),
        "{regex}"
    );
    let re = regex::Regex::new(regex.trim_matches('/')).unwrap();
    let line = "{association_id=\"0b1c\",association_name=\"patch-linux\"} 1 1700000000000";
    let captures = re.captures(line).unwrap();
    assert_eq!(&captures["value"], "0b1c");
    assert_eq!(&captures["text"], "patch-linux");
    let unnamed = re
        .captures("{association_id=\"0b1c\"} 1 1700000000000")
        .unwrap();
    assert_eq!(&unnamed["value"], "0b1c");

    let links = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["fieldConfig"]["defaults"]["links"][0]["url"].as_str())
        .filter(|u| u.contains(".console.aws.amazon.com/systems-manager/state-manager/"))
        .count();
    assert!(links >= 10, "{links} panels link to the console");
    for expr in dashboard_exprs() {
        assert!(expr.contains("cluster=~\"$cluster\""), "{expr}");
        assert!(expr.contains("job=~\"$job\""), "{expr}");
        if expr.contains("association_id=~\"$association_id\"") {
            assert!(
                expr.contains("account_id=~\"$account_id") && expr.contains("region=~\"$region"),
                "{expr}"
            );
        }
    }
}

/// Every run of metric-name characters in `text` that names one of ours.
fn referenced_names(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|t| t.trim_matches(':'))
        .filter(|t| t.contains("ssm_association"))
        .map(str::to_string)
        .collect()
}

#[test]
fn dashboards_and_rules_only_use_documented_metrics_and_defined_recording_rules() {
    let documented = crate::common::documented_metrics();
    assert!(documented.len() >= 20, "README metric table not found");
    let mut known = records();
    for name in &documented {
        known.push(name.clone());
        for suffix in ["_bucket", "_sum", "_count"] {
            known.push(format!("{name}{suffix}"));
        }
    }
    for path in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboard.json",
        "deploy/grafana/provisioning/alerting/ssm-association-alerts.yml",
    ] {
        for name in referenced_names(&read(path)) {
            if name.starts_with("ssm_association") || name.contains(':') {
                assert!(
                    known.contains(&name),
                    "{path} uses {name}, which is neither documented nor recorded"
                );
            }
        }
    }
}

/// The committed alerts.yml, PrometheusRule, dashboard, Grafana rules and the chart's copies
/// are what `scripts/render-mixin` renders from `deploy/mixin/` now.
#[test]
fn the_committed_rules_and_dashboards_are_a_fresh_render_of_the_mixin() {
    if tool("python").is_none() {
        return;
    }
    let mut render = Command::new(repo("scripts/render-mixin"));
    render.arg("--check").current_dir(repo("."));
    let out = run_ok(render);
    assert!(out.contains("match deploy/mixin/"), "{out}");
}

/// The PrometheusRule's groups of the chart rendered with `set`, and the alerts among them.
fn chart_rules(set: &[&str]) -> Option<(Value, Vec<Value>)> {
    let mut helm = tool("helm")?;
    helm.args([
        "template",
        "exporter",
        "deploy/helm/ssm-association-exporter",
        "--namespace",
        "monitoring",
        "--set",
        "prometheusRule.enabled=true",
    ]);
    for value in set {
        helm.args(["--set", value]);
    }
    let docs = yaml_documents(&run_ok(helm));
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    let groups = serde_json::json!({ "groups": rule["spec"]["groups"] });
    let alerts = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r.get("alert").is_some())
        .collect();
    Some((groups, alerts))
}

/// Regression (issue 23): the chart's rules hard-coded `up{job="ssm-association-exporter"}`, so
/// with `nameOverride` (another job name) SSMAssociationExporterAbsent fired forever; the
/// runbook URL could not be changed, nor an alert turned off, re-graded or labelled.
#[test]
fn the_chart_rules_follow_its_job_name_runbook_url_and_alert_values() {
    let Some((groups, alerts)) = chart_rules(&[
        "nameOverride=patching",
        "prometheusRule.runbookBaseUrl=https://runbooks.example.org/ssm",
        "prometheusRule.disabledAlerts={SSMAssociationExporterPollsLate}",
        "prometheusRule.severities.SSMAssociationExporterDown=warning",
        "prometheusRule.extraLabels.team=platform",
    ]) else {
        return;
    };
    assert_eq!(alerts.len(), self::alerts().len() - 1);
    for alert in &alerts {
        let name = alert["alert"].as_str().unwrap();
        assert_ne!(name, "SSMAssociationExporterPollsLate", "disabled");
        let expr = alert["expr"].as_str().unwrap();
        assert!(
            !expr.contains("ssm-association-exporter\"") && !expr.contains("__SELECTOR__"),
            "{name}: {expr}"
        );
        assert!(
            alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .starts_with("https://runbooks.example.org/ssm#ssmassociation"),
            "{name}"
        );
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
    }
    let tests = r#"
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="patching",namespace="monitoring",instance="10.0.0.1:9832",pod="exporter-patching-0"}'
        values: '1x30'
      - series: 'up{job="patching",namespace="monitoring",instance="10.0.0.2:9832",pod="exporter-patching-1"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: SSMAssociationExporterAbsent
        exp_alerts: []
      - eval_time: 20m
        alertname: SSMAssociationExporterDown
        exp_alerts:
          - exp_labels: {job: "patching", namespace: "monitoring", instance: "10.0.0.2:9832", pod: "exporter-patching-1", severity: "warning", team: "platform"}
            exp_annotations:
              summary: "ssm-association-exporter is down"
              description: "Prometheus cannot scrape 10.0.0.2:9832."
              runbook_url: "https://runbooks.example.org/ssm#ssmassociationexporterdown"
"#;
    let Some(out) = promtool_test(&[groups.to_string()], tests) else {
        return;
    };
    assert!(out.contains("SUCCESS"), "{out}");
    // An unknown alert name is a mistake, not a silent no-op.
    let mut helm = tool("helm").unwrap();
    helm.args([
        "template",
        "exporter",
        "deploy/helm/ssm-association-exporter",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.disabledAlerts={SSMAssociationExporterPolsLate}",
    ]);
    let out = helm.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no alert named SSMAssociationExporterPolsLate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression (issue 23): under `ha.enabled` SSMAssociationExporterDown paged for one replica
/// down although its twin covers the shard. It fires when every replica of a shard is down.
#[test]
fn under_high_availability_the_chart_pages_only_when_every_replica_of_a_shard_is_down() {
    let Some((groups, _)) =
        chart_rules(&["sharding.enabled=true", "replicas=2", "ha.enabled=true"])
    else {
        return;
    };
    let pod = |set: &str, shard: u8, up: u8| {
        format!(
            "      - series: 'up{{job=\"ssm-association-exporter\",namespace=\"monitoring\",instance=\"{set}-{shard}:9832\",pod=\"exporter-ssm-association-exporter-{set}-{shard}\"}}'\n        values: '{up}x30'\n"
        )
    };
    let tests = format!(
        r#"
tests:
  - interval: 1m
    input_series:
{}{}{}{}    alert_rule_test:
      - eval_time: 20m
        alertname: SSMAssociationExporterDown
        exp_alerts:
          - exp_labels: {{job: "ssm-association-exporter", namespace: "monitoring", shard: "1", severity: "critical"}}
            exp_annotations:
              summary: "Every replica of shard 1 of ssm-association-exporter (ssm-association-exporter) is down"
              description: "Prometheus cannot scrape any replica of shard 1 of ssm-association-exporter: its associations are not watched."
              runbook_url: "https://github.com/example/ssm-association-exporter/blob/main/docs/runbooks.md#ssmassociationexporterdown"
"#,
        pod("a", 0, 1),
        pod("b", 0, 0),
        pod("a", 1, 0),
        pod("b", 1, 0),
    );
    let Some(out) = promtool_test(&[groups.to_string()], &tests) else {
        return;
    };
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The listing's `LastExecutionDate` is exported for every listed association that ran, with
/// or without a polled execution (a run older than the look-back, as after a restart without a
/// state file): `SSMAssociationOverdue` reads it (alerts_test.yml, "overdue without a state
/// file"). An association that never ran has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_last_execution_date_is_exported_without_a_polled_execution() {
    let (sim, ids) = simulator_with(2).await;
    let (old, never) = (&ids[0], &ids[1]);
    let nine_days_ago = crate::common::now_ms() - 9 * 24 * 3600 * 1000;
    let created = nine_days_ago / 1000 * 1000;
    sim.add_execution(
        old,
        SimExecution::new("e-old", "Success", created).with_last_execution_ms(created + 60_000),
    );
    // The default look-back (an hour here) does not reach the run.
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    assert_eq!(
        m.value(
            names::LISTED_LAST_EXECUTION_TIMESTAMP_SECONDS,
            &[("association_id", old)]
        ),
        (created + 60_000) as f64 / 1000.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_TIMESTAMP_SECONDS,
            &[("association_id", old)]
        ),
        Reading::Missing,
        "the run is older than the look-back: no polled execution"
    );
    assert_eq!(
        m.value(
            names::LISTED_LAST_EXECUTION_TIMESTAMP_SECONDS,
            &[("association_id", never)]
        ),
        Reading::Missing
    );
    exporter.stop().await;
    sim.shutdown();
}

/// The mixin's `_config` knobs, as a user vendoring it sets them: the selector, the kept labels,
/// the runbook base URL, every alert's extra labels, and per alert enable, severity and labels;
/// the result passes `promtool check rules`.
#[test]
fn the_mixin_config_sets_selector_labels_runbooks_and_per_alert_knobs() {
    let Some(mut python) = tool("python") else {
        return;
    };
    let program = r#"
import _jsonnet, json, sys
src = """local m = (import 'mixin.libsonnet') + { _config+:: {
  selector: 'job="ssm", env="prod"',
  groupLabels: ['cluster', 'tenant'],
  runbookBaseUrl: 'https://wiki.example.org/ssm',
  extraLabels: { team: 'platform' },
  alerts: { SSMAssociationExporterPollsLate: { enabled: false },
            SSMAssociationExporterDown: { severity: 'warning', labels: { page: 'no' } } },
} };
{ groups: m.prometheusRules.groups + m.prometheusAlerts.groups }"""
print(_jsonnet.evaluate_snippet("config", src, jpathdir=["deploy/mixin"]))
"#;
    python.args(["-c", program]);
    let rendered = run_ok(python);
    let groups: Value = serde_json::from_str(&rendered).unwrap();
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let alerts: Vec<&&Value> = rules.iter().filter(|r| r.get("alert").is_some()).collect();
    assert_eq!(alerts.len(), self::alerts().len() - 1);
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        assert!(!expr.contains("ssm-association-exporter"), "{expr}");
        assert!(!expr.contains("namespace"), "{expr}");
        // (A recording rule's series are selected where it is recorded.)
        if (expr.contains("ssm_association") || expr.contains("up{"))
            && !expr.contains(":ssm_association")
        {
            assert!(expr.contains("job=\"ssm\", env=\"prod\""), "{expr}");
        }
        if expr.contains(" by (") {
            assert!(expr.contains("by (cluster, tenant, "), "{expr}");
        }
    }
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert_ne!(name, "SSMAssociationExporterPollsLate");
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
        assert_eq!(
            alert["annotations"]["runbook_url"],
            format!("https://wiki.example.org/ssm#{}", name.to_lowercase())
        );
        if name == "SSMAssociationExporterDown" {
            assert_eq!(alert["labels"]["severity"], "warning");
            assert_eq!(alert["labels"]["page"], "no");
        }
    }
    let Some(mut promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rendered).unwrap();
    promtool.args(["check", "rules"]).arg(&path);
    run_ok(promtool);
}
