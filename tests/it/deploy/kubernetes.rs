//! The kustomize base and the Helm chart, as `kubectl kustomize` and `helm template` render
//! them: `helm lint`, every object validated against the Kubernetes OpenAPI schemas
//! (`kubernetes-validate`, offline, strict, for the oldest and newest supported versions), the
//! prometheus-operator objects checked for what their consumers need, and the rendered pod
//! run for real (argv, files, probes) with [`run_container`].

use std::collections::BTreeMap;

use base64::Engine;

use super::image::{image_container, Dockerfile};
use super::*;

pub const CHART: &str = "deploy/helm/ssm-association-exporter";

/// The chart rendered with one of its `ci/*-values.yaml` files (release "exporter", namespace
/// "monitoring"), or `None` when helm is missing and not required.
pub fn helm_template(values: &str) -> Option<String> {
    let mut helm = tool("helm")?;
    helm.args([
        "template",
        "exporter",
        CHART,
        "--namespace",
        "monitoring",
        "-f",
    ])
    .arg(format!("{CHART}/ci/{values}"));
    Some(run_ok(helm))
}

fn kustomize() -> Option<String> {
    let mut kubectl = tool("kubectl")?;
    kubectl.args(["kustomize", "deploy/kubernetes"]);
    Some(run_ok(kubectl))
}

pub fn values_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo(CHART).join("ci"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-values.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "ci/*-values.yaml: {files:?}");
    files
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// A ConfigMap's or Secret's data as key -> bytes.
fn data_of(object: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(map) = object["data"].as_object() {
        for (k, v) in map {
            let v = v.as_str().unwrap();
            let bytes = if object["kind"] == "Secret" {
                base64::engine::general_purpose::STANDARD.decode(v).unwrap()
            } else {
                v.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(map) = object["stringData"].as_object() {
        for (k, v) in map {
            out.insert(k.clone(), v.as_str().unwrap().as_bytes().to_vec());
        }
    }
    out
}

/// The exporter's container of the rendered Deployment or StatefulSet, with the image's
/// ENTRYPOINT/CMD under `command`/`args`, its env resolved (Secrets too), its volumes mounted
/// and its probes.
pub fn pod_container(docs: &[Value], artefact: &str) -> (Container, Value) {
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .collect();
    assert_eq!(workloads.len(), 1, "{artefact}: one workload");
    let workload = workloads[0].clone();
    let pod = &workload["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let image = image_container();
    let dockerfile = Dockerfile::parse("Dockerfile");
    let argv = compose_argv(
        &dockerfile.exec_form("ENTRYPOINT"),
        &dockerfile.exec_form("CMD"),
        c.get("command").map(strings),
        c.get("args").map(strings),
    );
    let mut env = Vec::new();
    for e in c["env"].as_array().cloned().unwrap_or_default() {
        let name = e["name"].as_str().unwrap().to_string();
        if let Some(value) = e["value"].as_str() {
            env.push((name, value.to_string()));
        } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let secret = named(docs, "Secret", r["name"].as_str().unwrap());
            let value = data_of(secret)[r["key"].as_str().unwrap()].clone();
            env.push((name, String::from_utf8(value).unwrap()));
        } else {
            panic!("{artefact}: env {e}");
        }
    }
    let mut files = image.files.clone();
    let mut writable = Vec::new();
    let volumes: BTreeMap<String, Value> = pod["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v))
        .collect();
    let claims: Vec<String> = workload["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    for mount in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
        let name = mount["name"].as_str().unwrap();
        let path = mount["mountPath"].as_str().unwrap().to_string();
        // A mount hides what the image had there.
        files.retain(|p, _| !p.starts_with(&format!("{path}/")));
        if claims.iter().any(|c| c == name) {
            writable.push(path);
            continue;
        }
        let volume = volumes
            .get(name)
            .unwrap_or_else(|| panic!("{artefact}: volumeMount {name} has no volume"));
        let source = if let Some(cm) = volume.get("configMap") {
            Some(named(docs, "ConfigMap", cm["name"].as_str().unwrap()))
        } else if let Some(secret) = volume.get("secret") {
            Some(named(
                docs,
                "Secret",
                secret["secretName"].as_str().unwrap(),
            ))
        } else if volume.get("emptyDir").is_some() {
            writable.push(path.clone());
            None
        } else {
            panic!("{artefact}: volume {volume}")
        };
        if let Some(source) = source {
            for (key, content) in data_of(source) {
                files.insert(format!("{path}/{key}"), Some(content));
            }
        }
    }
    let ports: BTreeMap<String, u16> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    let mut probes = Vec::new();
    for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let probe = &c[kind];
        if let Some(get) = probe.get("httpGet") {
            let port = match &get["port"] {
                Value::String(name) => ports[name],
                other => other.as_u64().unwrap() as u16,
            };
            probes.push(Probe::Http {
                path: get["path"].as_str().unwrap().to_string(),
                port,
            });
        } else if let Some(exec) = probe.get("exec") {
            probes.push(Probe::Exec(strings(&exec["command"])));
        }
    }
    let container = Container {
        artefact: artefact.to_string(),
        argv,
        env,
        files,
        writable,
        probes,
        basic_auth: None,
    };
    (container, workload)
}

/// The hardening every rendered workload keeps.
fn assert_hardened(workload: &Value, artefact: &str) {
    let pod = &workload["spec"]["template"]["spec"];
    assert_eq!(
        workload["spec"]["replicas"], 1,
        "{artefact}: one replica polls"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{artefact}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{artefact}"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{artefact}"
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], false,
        "{artefact}"
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"][0], "ALL",
        "{artefact}"
    );
    assert!(
        c["resources"]["requests"]["memory"].is_string(),
        "{artefact}"
    );
    assert!(c["resources"]["limits"]["memory"].is_string(), "{artefact}");
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"], "/healthz",
        "{artefact}"
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"], "/readyz",
        "{artefact}"
    );
}

/// `kubernetes-validate --strict` on every object, for Kubernetes 1.25 (the chart's
/// kubeVersion floor) and 1.37; objects of CRDs (no schema) are checked by [`check_crds`].
fn validate_schemas(rendered: &str, artefact: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, rendered).unwrap();
    for version in ["1.25.0", "1.37.0"] {
        let Some(mut validate) = tool("kubernetes-validate") else {
            return;
        };
        validate.args(["--strict", "-k", version]).arg(&path);
        let out = validate.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{artefact} against Kubernetes {version}:\n{text}"
        );
        for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
            assert!(
                line.contains("monitoring.coreos.com/v1"),
                "{artefact}: an object without a schema: {line}"
            );
        }
    }
}

/// What Prometheus needs of the prometheus-operator objects (no offline schema exists for
/// them): the ServiceMonitor selects the Service and names one of its ports, and carries the
/// labels asked for; the PrometheusRule's groups pass `promtool check rules`.
fn check_crds(docs: &[Value], artefact: &str, monitor_labels: &[(&str, &str)]) {
    let services = find(docs, "Service");
    for monitor in find(docs, "ServiceMonitor") {
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let service = services
            .iter()
            .find(|s| {
                selector
                    .iter()
                    .all(|(k, v)| &s["metadata"]["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("{artefact}: the ServiceMonitor selects no Service"));
        let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
        assert!(
            service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == port),
            "{artefact}: ServiceMonitor port {port}"
        );
        assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
        assert_eq!(
            service["metadata"]["labels"]["app.kubernetes.io/name"], "ssm-association-exporter",
            "{artefact}: job=\"ssm-association-exporter\", as the alerts expect"
        );
        for (k, v) in monitor_labels {
            assert_eq!(
                monitor["metadata"]["labels"][k], *v,
                "{artefact}: ServiceMonitor label {k}"
            );
        }
    }
    for rule in find(docs, "PrometheusRule") {
        for (k, v) in monitor_labels {
            assert_eq!(
                rule["metadata"]["labels"][k], *v,
                "{artefact}: PrometheusRule label {k}"
            );
        }
        let Some(mut promtool) = tool("promtool") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yml");
        let groups = serde_json::json!({ "groups": rule["spec"]["groups"] });
        std::fs::write(&path, serde_json::to_string_pretty(&groups).unwrap()).unwrap();
        promtool.args(["check", "rules"]).arg(&path);
        run_ok(promtool);
    }
}

#[test]
fn helm_lint_passes_for_every_values_file() {
    for values in values_files() {
        let Some(mut helm) = tool("helm") else {
            return;
        };
        helm.args(["lint", "--strict", CHART, "-f"])
            .arg(format!("{CHART}/ci/{values}"));
        run_ok(helm);
    }
}

#[test]
fn every_rendered_object_passes_the_kubernetes_schemas() {
    for values in values_files() {
        let Some(rendered) = helm_template(&values) else {
            return;
        };
        validate_schemas(&rendered, &values);
    }
    if let Some(rendered) = kustomize() {
        validate_schemas(&rendered, "kustomize deploy/kubernetes");
    }
}

#[test]
fn the_rendered_workloads_are_hardened_and_the_crds_fit_prometheus_operator() {
    for values in values_files() {
        let Some(rendered) = helm_template(&values) else {
            return;
        };
        let docs = yaml_documents(&rendered);
        let (_, workload) = pod_container(&docs, &values);
        assert_hardened(&workload, &values);
        let labels: &[(&str, &str)] = if values.starts_with("kube-prometheus-stack") {
            &[("release", "monitoring")]
        } else {
            &[]
        };
        check_crds(&docs, &values, labels);
    }
    if let Some(rendered) = kustomize() {
        let docs = yaml_documents(&rendered);
        let (_, workload) = pod_container(&docs, "kustomize");
        assert_hardened(&workload, "kustomize");
        check_crds(&docs, "kustomize", &[("release", "kube-prometheus-stack")]);
    }
}

#[test]
fn persistence_makes_a_statefulset_with_a_claim_and_the_defaults_a_deployment() {
    let Some(default) = helm_template("default-values.yaml") else {
        return;
    };
    let docs = yaml_documents(&default);
    assert_eq!(find(&docs, "Deployment").len(), 1);
    assert_eq!(
        named(&docs, "Deployment", "exporter-ssm-association-exporter")["spec"]["strategy"]["type"],
        "Recreate"
    );
    let persistent = yaml_documents(&helm_template("persistence-values.yaml").unwrap());
    let set = &find(&persistent, "StatefulSet")[0];
    let claim = &set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["storageClassName"], "gp3");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "128Mi");
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(pod["affinity"]["nodeAffinity"].is_object());
}

#[test]
fn the_chart_ships_the_alerts_and_dashboard_of_deploy_unchanged() {
    // The chart can only read files inside itself; scripts/gen-prometheusrule copies them.
    for (shipped, copy) in [
        ("deploy/prometheus/alerts.yml", "files/alerts.yml"),
        ("deploy/grafana/dashboard.json", "files/dashboard.json"),
    ] {
        assert!(
            read(shipped) == read(&format!("{CHART}/{copy}")),
            "{CHART}/{copy} differs from {shipped}: run scripts/gen-prometheusrule"
        );
    }
    let Some(rendered) = helm_template("kube-prometheus-stack-values.yaml") else {
        return;
    };
    let docs = yaml_documents(&rendered);
    let rule = &find(&docs, "PrometheusRule")[0];
    let alerts = yaml("deploy/prometheus/alerts.yml");
    let groups = rule["spec"]["groups"].as_array().unwrap();
    assert_eq!(
        groups[..groups.len() - 1],
        alerts["groups"].as_array().unwrap()[..]
    );
    assert_eq!(
        groups.last().unwrap()["rules"][0]["alert"],
        "SSMPatchingFailedTooOften"
    );
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a dashboard ConfigMap for the Grafana sidecar");
    let json: Value = serde_json::from_str(
        dashboard["data"]["ssm-association-exporter.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["uid"], "ssm-association-exporter");
    let account = &find(&docs, "ServiceAccount")[0];
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::")
    );
    assert_eq!(find(&docs, "NetworkPolicy").len(), 1);
    assert_eq!(find(&docs, "PodDisruptionBudget").len(), 1);
}

/// Every values file's pod, started for real with its rendered argv, files and probes, and
/// the `helm test` pod's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_helm_pod_starts_and_passes_its_probes_and_helm_test() {
    for values in values_files() {
        let Some(rendered) = helm_template(&values) else {
            return;
        };
        let docs = yaml_documents(&rendered);
        let (mut container, _) = pod_container(&docs, &format!("helm template -f ci/{values}"));
        // The helm test hook: busybox wget against the Service's DNS name.
        let test = docs
            .iter()
            .find(|d| d["kind"] == "Pod" && d["metadata"]["annotations"]["helm.sh/hook"] == "test")
            .expect("a helm test pod");
        let argv: Vec<String> = strings(&test["spec"]["containers"][0]["command"])
            .into_iter()
            .map(|a| {
                a.replace(
                    "exporter-ssm-association-exporter.monitoring.svc:9832",
                    "{service}",
                )
            })
            .collect();
        assert!(
            argv.iter().any(|a| a == "http://{service}/readyz"),
            "{argv:?}"
        );
        container.probes.push(Probe::Foreign(argv));
        if values.starts_with("web-config") {
            container.basic_auth = Some(("alice".into(), "alice-password".into()));
            assert!(container
                .argv
                .iter()
                .any(|a| a.starts_with("--web.config.file=")));
            assert!(container
                .env
                .contains(&("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into())));
        }
        let run = run_container(&container).await;
        assert_eq!(run.metrics_status, 200, "{values}");
        let stateful = !values.starts_with("web-config");
        assert_eq!(
            run.state_files.iter().any(|f| f.ends_with("state.json")),
            stateful,
            "{values}: state file written to its volume: {:?}",
            run.state_files
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_pod_starts_and_passes_its_probes() {
    let Some(rendered) = kustomize() else {
        return;
    };
    let docs = yaml_documents(&rendered);
    let (container, _) = pod_container(&docs, "kubectl kustomize deploy/kubernetes");
    let run = run_container(&container).await;
    assert_eq!(run.metrics_status, 200);
    assert!(run.state_files.iter().any(|f| f.ends_with("state.json")));
}

#[test]
fn every_chart_value_is_documented_in_the_readme() {
    let values = yaml(&format!("{CHART}/values.yaml"));
    let readme = read("README.md");
    fn walk(prefix: &str, node: &Value, readme: &str, missing: &mut Vec<String>) {
        for (key, value) in node.as_object().unwrap() {
            let path = format!("{prefix}{key}");
            if readme.contains(&format!("| `{path}` |")) {
                continue;
            }
            match value.as_object() {
                Some(map) if !map.is_empty() => walk(&format!("{path}."), value, readme, missing),
                _ => missing.push(path),
            }
        }
    }
    let mut missing = Vec::new();
    walk("", &values, &readme, &mut missing);
    assert!(
        missing.is_empty(),
        "README \"Helm chart values\" lacks {missing:?}"
    );
}
