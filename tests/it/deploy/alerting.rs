//! Alerts, runbooks, Alertmanager and Grafana: `promtool check rules` and `promtool test rules`
//! (every alert firing and not firing, a replaced pod not re-alerting), every PromQL expression
//! of the dashboard and the Grafana-managed rules through promtool, every alert with summary,
//! description, a runbook section and (per association) the association's name, account, region
//! and console link, every alert mirrored in Grafana, and `amtool check-config` on the
//! Alertmanager example with its inhibitions scoped to one account and region.

use super::*;

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
                    && expr.contains("max by (association_id, association_name, account_id, region) (ssm_association_info)")
                    && expr.contains("or on (association_id)"),
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
    expr.contains("by (job, account_id, region)")
        || (expr.contains("by (job, association_id)")
            && expr.contains("group_left (association_name, account_id, region)"))
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
            serde_json::json!(["job", "account_id", "region"]),
            "{source}: inhibits per job, account and region"
        );
        let source_alert = alerts().into_iter().find(|a| a["alert"] == source).unwrap();
        assert!(
            source_alert["expr"]
                .as_str()
                .unwrap()
                .contains("by (job, account_id, region)"),
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

#[test]
fn every_alert_is_mirrored_as_a_grafana_managed_rule() {
    let rules = grafana_rules();
    let mut uids: Vec<&str> = rules.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert!(
        uids.iter().all(|u| u.len() <= 40),
        "Grafana UIDs are at most 40 characters"
    );
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), rules.len(), "unique UIDs");
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let rule = rules
            .iter()
            .find(|r| r["title"] == name)
            .unwrap_or_else(|| panic!("{name} is not mirrored: run scripts/gen-grafana-alerts"));
        assert_eq!(
            rule["data"][0]["model"]["expr"].as_str().unwrap().trim(),
            alert["expr"].as_str().unwrap().trim(),
            "{name}: run scripts/gen-grafana-alerts"
        );
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

/// Every PromQL expression of the dashboard (variables given example values) and of the
/// Grafana rules, as recording rules through `promtool check rules`.
#[test]
fn every_dashboard_and_grafana_expression_passes_promtool() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let mut exprs: Vec<String> = Vec::new();
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
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .trim_start_matches("label_values(")
                .rsplit_once(',')
                .unwrap()
                .0;
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
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$__range", "6h")
                .replace("$job", "ssm-association-exporter")
                .replace("$instance", ".*")
                .replace("$association_id", ".*");
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

#[test]
fn the_dashboard_filters_by_job_and_instance_and_links_the_console() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    for name in ["job", "instance"] {
        let v = variables.iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(v["multi"], true, "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
    }
    let links = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["fieldConfig"]["defaults"]["links"][0]["url"].as_str())
        .filter(|u| u.contains(".console.aws.amazon.com/systems-manager/state-manager/"))
        .count();
    assert!(links >= 10, "{links} panels link to the console");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().unwrap();
            if expr.contains("job=~\"$job\"") {
                assert!(expr.contains("instance=~\"$instance\""), "{expr}");
            }
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
