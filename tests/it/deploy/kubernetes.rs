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
    // One workload, or with ha.enabled two StatefulSets that differ only in name and the
    // replica-set label: the same pod, the same shard layout.
    assert!(!workloads.is_empty(), "{artefact}: a workload");
    for other in &workloads[1..] {
        assert_eq!(other["kind"], "StatefulSet", "{artefact}: HA workloads");
        assert_eq!(
            without_replica_set(other),
            without_replica_set(workloads[0]),
            "{artefact}: the HA StatefulSets differ only in name and replica-set label"
        );
    }
    assert!(workloads.len() <= 2, "{artefact}: at most two workloads");
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
                https: get["scheme"] == "HTTPS",
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
        tls_ca_pem: None,
    };
    (container, workload)
}

/// A workload without its name and the `ssm-association-exporter/replica-set` label (in its
/// selector, its pods' labels and the anti-affinity term that keeps them from their twins'), to
/// compare the two StatefulSets of ha.enabled.
fn without_replica_set(workload: &Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("ssm-association-exporter/replica-set");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut w = workload.clone();
    w["metadata"]["name"] = Value::Null;
    strip(&mut w);
    w
}

/// `--total-shards=M` of a container's argv, if sharded.
fn total_shards(argv: &[String]) -> Option<u64> {
    argv.iter()
        .find_map(|a| a.strip_prefix("--total-shards="))
        .map(|m| m.parse().unwrap())
}

/// The hardening every rendered workload keeps.
fn assert_hardened(workload: &Value, artefact: &str) {
    let pod = &workload["spec"]["template"]["spec"];
    let args = strings(&pod["containers"][0]["args"]);
    // The first release crash-looped on a repeated --config.file: every flag at most once.
    let mut flags: Vec<&str> = args
        .iter()
        .map(|a| a.split_once('=').map_or(a.as_str(), |(f, _)| f))
        .collect();
    flags.sort();
    let before = flags.len();
    flags.dedup();
    assert_eq!(
        flags.len(),
        before,
        "{artefact}: a repeated flag in {args:?}"
    );
    // One replica polls every association; with sharding, one per shard.
    assert_eq!(
        workload["spec"]["replicas"],
        total_shards(&args).unwrap_or(1),
        "{artefact}: replicas"
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
fn sharding_makes_a_statefulset_of_shards_and_ha_two_with_the_same_layout() {
    let Some(sharded) = helm_template("sharding-values.yaml") else {
        return;
    };
    let docs = yaml_documents(&sharded);
    let sets = find(&docs, "StatefulSet");
    assert_eq!(sets.len(), 1);
    let set = sets[0];
    assert_eq!(set["spec"]["replicas"], 3);
    let args = strings(&set["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(
        args.iter().any(|a| a == "--shard.from-hostname"),
        "{args:?}"
    );
    assert!(args.iter().any(|a| a == "--total-shards=3"), "{args:?}");
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let headless = named(
        &docs,
        "Service",
        set["spec"]["serviceName"].as_str().unwrap(),
    );
    assert_eq!(headless["spec"]["clusterIP"], "None");
    // Only the ClusterIP Service matches the ServiceMonitor's selector: no double scrape.
    assert!(headless["metadata"]["labels"]["app.kubernetes.io/name"].is_null());

    let ha = yaml_documents(&helm_template("sharding-ha-values.yaml").unwrap());
    let sets = find(&ha, "StatefulSet");
    let names: Vec<&str> = sets
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exporter-ssm-association-exporter-a",
            "exporter-ssm-association-exporter-b"
        ]
    );
    for set in &sets {
        assert_eq!(set["spec"]["replicas"], 2);
        let args = strings(&set["spec"]["template"]["spec"]["containers"][0]["args"]);
        assert!(args.iter().any(|a| a == "--total-shards=2"), "{args:?}");
        // Each StatefulSet selects only its own pods; the Service selects both.
        let selector = &set["spec"]["selector"]["matchLabels"];
        assert_eq!(
            &set["spec"]["template"]["metadata"]["labels"]["ssm-association-exporter/replica-set"],
            &selector["ssm-association-exporter/replica-set"]
        );
    }
    assert_ne!(sets[0]["spec"]["selector"], sets[1]["spec"]["selector"]);
}

#[test]
fn the_chart_refuses_replicas_without_sharding_and_repeated_shard_flags() {
    for set in [
        &["--set", "replicas=2"][..],
        &["--set", "ha.enabled=true"],
        &[
            "--set",
            "sharding.enabled=true",
            "--set",
            "extraArgs={--total-shards=4}",
        ],
    ] {
        let Some(mut helm) = tool("helm") else {
            return;
        };
        helm.args(["template", "exporter", CHART]).args(set);
        let out = helm.output().unwrap();
        assert!(!out.status.success(), "{set:?} renders");
    }
}

#[test]
fn the_chart_ships_the_alerts_and_dashboard_of_deploy() {
    // The chart can only read files inside itself: scripts/render-mixin renders its copies
    // (alerting::the_committed_rules_and_dashboards_are_a_fresh_render_of_the_mixin).
    let Some(rendered) = helm_template("kube-prometheus-stack-values.yaml") else {
        return;
    };
    let docs = yaml_documents(&rendered);
    let rule = &find(&docs, "PrometheusRule")[0];
    // The chart selects its own job and namespace (prometheusRule.jobSelector).
    let alerts: Value = serde_saphyr::from_str(&read("deploy/prometheus/alerts.yml").replace(
        "job=\"ssm-association-exporter\"",
        "job=\"ssm-association-exporter\", namespace=\"monitoring\"",
    ))
    .unwrap();
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
        let (mut container, workload) =
            pod_container(&docs, &format!("helm template -f ci/{values}"));
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
        // A shard takes its ordinal from HOSTNAME, the pod name: run the pod of ordinal 1.
        let shards = total_shards(&container.argv);
        let state_file = if shards.is_some() {
            container.env.push((
                "HOSTNAME".into(),
                format!("{}-1", workload["metadata"]["name"].as_str().unwrap()),
            ));
            "state.shard-1.json"
        } else {
            "state.json"
        };
        let run = run_container(&container).await;
        assert_eq!(run.metrics_status, 200, "{values}");
        if let Some(m) = shards {
            for line in [
                "ssm_association_exporter_shard_ordinal 1".to_string(),
                format!("ssm_association_exporter_total_shards {m}"),
            ] {
                assert!(
                    run.metrics.lines().any(|l| l == line),
                    "{values}: /metrics lacks {line}:\n{}",
                    run.metrics
                );
            }
        }
        let stateful = !values.starts_with("web-config");
        assert_eq!(
            run.state_files.iter().any(|f| f.ends_with(state_file)),
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
    let readme = read("docs/deploying.md");
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
