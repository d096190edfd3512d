//! What can be checked of the deployment files without a Docker engine or a cluster: the
//! Dockerfile's runtime user, port, health check and config path; the Kubernetes and ECS
//! hardening; the PrometheusRule matching alerts.yml; `promtool check rules` and
//! `promtool test rules`. (`scripts/check-dockerfile` runs the Dockerfile's build natively.)

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The instructions of the Dockerfile's last stage, joined across line continuations.
fn final_stage() -> Vec<String> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[last_from..].to_vec()
}

fn instruction<'a>(stage: &'a [String], name: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{name} ")))
        .collect()
}

#[test]
fn the_runtime_image_runs_as_a_non_root_user() {
    let stage = final_stage();
    let users = instruction(&stage, "USER");
    let user = users.last().expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(!matches!(uid, "root" | "0"), "USER {user}");
    assert!(
        stage[0].contains(":nonroot"),
        "a distroless nonroot base: {}",
        stage[0]
    );
}

#[test]
fn the_entrypoint_config_path_is_filled_from_a_valid_file_in_config() {
    let stage = final_stage();
    let entrypoint = instruction(&stage, "ENTRYPOINT")[0];
    let path = entrypoint
        .split('"')
        .find_map(|part| part.strip_prefix("--config.file="))
        .expect("the entrypoint names --config.file");
    let copy = instruction(&stage, "COPY")
        .into_iter()
        .find(|c| c.ends_with(path))
        .unwrap_or_else(|| panic!("nothing is copied to {path}"));
    let source = copy.split_whitespace().next().unwrap();
    assert!(source.starts_with("config/"), "{copy}");
    ssm_association_exporter::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(source))
        .unwrap_or_else(|e| panic!("{source} is not a valid config: {e}"));
}

#[test]
fn the_image_exposes_9832_and_checks_health_with_the_binary() {
    let stage = final_stage();
    assert_eq!(instruction(&stage, "EXPOSE"), ["9832"]);
    let healthcheck = instruction(&stage, "HEALTHCHECK")[0];
    assert!(healthcheck.contains("\"--healthcheck\""), "{healthcheck}");
    assert!(healthcheck.contains("/usr/local/bin/ssm-association-exporter"));
}

#[test]
fn base_images_are_pinned_and_the_build_is_locked() {
    let text = read("Dockerfile");
    for line in text.lines().filter(|l| l.starts_with("FROM ")) {
        let image = line.split_whitespace().nth(1).unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "unpinned base image: {line}"
        );
    }
    assert!(
        text.contains("FROM docker.io/library/rust:1.95.0-"),
        "the builder pins the toolchain"
    );
    let builds = text.matches("cargo build --release --locked").count();
    assert_eq!(builds, 2, "the dependency layer and the real build");
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

#[test]
fn the_deployment_is_hardened_and_probes_health_and_readiness() {
    let d = yaml("deploy/kubernetes/deployment.yaml");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["ports"][0]["containerPort"], 9832);
    assert_eq!(
        c["volumeMounts"][0]["mountPath"],
        "/etc/ssm-association-exporter"
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--config.file=/etc/ssm-association-exporter/config.yaml"));
    let sa = yaml("deploy/kubernetes/serviceaccount.yaml");
    assert!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:iam::"));
}

#[test]
fn the_shipped_configs_are_valid() {
    for path in [
        "deploy/kubernetes/config.yaml",
        "deploy/ecs/config.yaml",
        "config/example.yaml",
        "config/minimal.yaml",
        "config/demo.yaml",
    ] {
        ssm_association_exporter::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_prometheus_rule_carries_exactly_the_groups_of_alerts_yml() {
    let rule = yaml("deploy/kubernetes/prometheusrule.yaml");
    let alerts = yaml("deploy/prometheus/alerts.yml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"], alerts["groups"],
        "run scripts/gen-prometheusrule"
    );
}

#[test]
fn the_ecs_sidecar_is_non_root_read_only_and_health_checked() {
    let task: Value = serde_json::from_str(&read("deploy/ecs/task-definition.json")).unwrap();
    assert!(task["taskRoleArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:iam::"));
    let exporter = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ssm-association-exporter")
        .expect("an exporter container");
    assert_eq!(exporter["portMappings"][0]["containerPort"], 9832);
    assert_eq!(exporter["readonlyRootFilesystem"], true);
    assert!(!exporter["user"].as_str().unwrap().starts_with("0"));
    assert_eq!(exporter["healthCheck"]["command"][1], "--healthcheck");
}

#[test]
fn the_iam_policy_grants_only_the_two_read_calls_on_associations() {
    let policy: Value = serde_json::from_str(&read("deploy/iam-policy.json")).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let mut actions: Vec<&str> = statements
        .iter()
        .flat_map(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "ssm:DescribeAssociation",
            "ssm:DescribeAssociationExecutions"
        ]
    );
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
        assert!(s["Resource"].as_str().unwrap().contains(":association/"));
    }
}

/// promtool, required where `SSM_EXPORTER_REQUIRE_PROMTOOL` is set (scripts/test sets it).
fn promtool() -> Option<Command> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut command = Command::new("promtool");
        command.current_dir(env!("CARGO_MANIFEST_DIR"));
        return Some(command);
    }
    assert!(
        std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
        "promtool is required (apt-get install prometheus)"
    );
    eprintln!("promtool not found: skipping (scripts/test installs it)");
    None
}

#[test]
fn promtool_check_rules_passes() {
    let Some(mut promtool) = promtool() else {
        return;
    };
    let out = promtool
        .args(["check", "rules", "deploy/prometheus/alerts.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let Some(mut promtool) = promtool() else {
        return;
    };
    let out = promtool
        .args(["test", "rules", "deploy/prometheus/alerts_test.yml"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
    // Every alert has a unit test.
    let tests = read("deploy/prometheus/alerts_test.yml");
    let alerts = yaml("deploy/prometheus/alerts.yml");
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(name) = rule["alert"].as_str() {
                assert!(
                    tests.contains(&format!("alertname: {name}\n")),
                    "no unit test for {name}"
                );
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
    let alerts = yaml("deploy/prometheus/alerts.yml");
    let mut known: Vec<String> = alerts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect();
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
            // Alert names and job names also contain the word; only metric-like tokens count.
            if name.starts_with("ssm_association") || name.contains(':') {
                assert!(
                    known.contains(&name),
                    "{path} uses {name}, which is neither documented nor recorded"
                );
            }
        }
    }
}
