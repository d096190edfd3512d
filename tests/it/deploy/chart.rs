//! The Helm chart's guard rails, rendered by the real `helm`: `values.schema.json` (unknown keys
//! and bad values refused by `helm lint` and `helm template`, every key typed, the exporter's
//! config keys as the binary knows them), the config and NOTES.txt traps, HTTPS probes and
//! `helm test` under a TLS web config (run for real), anti-affinity of HA pairs, the generated
//! README and the icon of the packaged chart.

use std::collections::BTreeSet;

use super::kubernetes::{pod_container, CHART};
use super::*;

/// `helm template exporter CHART -n monitoring` with `args`; the output, or `None` when helm is
/// missing and not required.
fn render(args: &[&str]) -> Option<std::process::Output> {
    let mut helm = tool("helm")?;
    helm.args(["template", "exporter", CHART, "--namespace", "monitoring"])
        .args(args);
    Some(helm.output().unwrap())
}

fn render_ok(args: &[&str]) -> Option<Vec<Value>> {
    let out = render(args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helm template {args:?}:\n{text}");
    Some(yaml_documents(&String::from_utf8_lossy(&out.stdout)))
}

/// A values file in a temporary directory, for `-f`.
fn values_file(dir: &tempfile::TempDir, name: &str, values: &Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(values).unwrap()).unwrap();
    path.display().to_string()
}

/// The rendered exporter config (the ConfigMap's config.yaml).
fn rendered_config(docs: &[Value]) -> (String, Value) {
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["config.yaml"].is_string())
        .expect("the config ConfigMap");
    let text = map["data"]["config.yaml"].as_str().unwrap().to_string();
    let value = serde_saphyr::from_str(&text).unwrap();
    (text, value)
}

/// `--config.check` of the real binary on a config text; its exit status and output.
fn config_check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", path.display()))
        .arg("--config.check")
        .env_clear()
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_values_schema_refuses_unknown_keys_and_bad_values_in_lint_and_template() {
    for (set, key) in [
        ("serviceMonitr.enabled=true", "serviceMonitr"),
        ("logFormat=xml", "logFormat"),
        ("logLevel=verbose", "logLevel"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("service.type=ExternalName", "type"),
        ("serviceMonitor.scheme=ftp", "scheme"),
        ("webConfig.scheme=HTTPS", "scheme"),
        ("ha.podAntiAffinity=always", "podAntiAffinity"),
        (
            "persistence.accessModes={ReadWriteSometimes}",
            "accessModes",
        ),
        ("replicas=0", "replicas"),
        ("config.poll_intervall=1m", "poll_intervall"),
        (
            "config.metrics.duration_histogram=per_day",
            "duration_histogram",
        ),
        ("state.enabeld=false", "enabeld"),
        ("events.queues[0].url=http://sqs.example/q", "url"),
        (
            "events.queues[0].url=https://sqs.us-east-1.amazonaws.com/1/q",
            "url",
        ),
        ("events.queues[0].visibility=30", "visibility"),
    ] {
        let Some(out) = render(&["--set", set]) else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && text.contains(key),
            "helm template --set {set} must fail naming {key}: {text}"
        );
        let mut lint = tool("helm").unwrap();
        lint.args(["lint", "--strict", CHART, "--set", set]);
        let out = lint.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && text.contains(key),
            "helm lint --set {set} must fail naming {key}: {text}"
        );
    }
    // The alerting keys are typed too, down to the mixin's knobs.
    for set in [
        "prometheusRule.enabled=yes",
        "prometheusRule.someNewKnob=1",
        "prometheusRule.severities.ExporterDown=warning",
        "prometheusRule.disabledAlerts[0]=ExporterDown",
        "grafanaDashboard.someNewKnob=1",
    ] {
        assert!(
            render(&["--set", set]).is_some_and(|out| !out.status.success()),
            "--set {set} must fail"
        );
    }
    assert!(render_ok(&[
        "--set",
        "prometheusRule.severities.SSMAssociationExporterDown=page"
    ])
    .is_some());
}

/// The schema node of a values path, following `properties`.
fn schema_node<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = schema;
    for key in path {
        node = node.get("properties")?.get(*key)?;
    }
    Some(node)
}

#[test]
fn the_schema_types_every_key_of_values_yaml_and_the_config_keys_the_exporter_knows() {
    let schema: Value = serde_json::from_str(&read(&format!("{CHART}/values.schema.json")))
        .expect("values.schema.json is JSON");
    let values = yaml(&format!("{CHART}/values.yaml"));
    // Every key of values.yaml has a schema with a type, down to where the schema takes a
    // Kubernetes object as a whole (resources, probes, affinity, ...).
    fn walk(schema: &Value, values: &Value, path: &mut Vec<String>, untyped: &mut Vec<String>) {
        for (key, value) in values.as_object().unwrap() {
            path.push(key.clone());
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            let parent = schema_node(schema, &keys[..keys.len() - 1]).unwrap();
            match schema_node(schema, &keys) {
                None if parent["additionalProperties"] == true => {}
                None => untyped.push(path.join(".")),
                Some(node) if node.get("type").is_none() && node.get("anyOf").is_none() => {
                    untyped.push(path.join("."))
                }
                Some(node) => {
                    if value.as_object().is_some_and(|m| !m.is_empty())
                        && node.get("properties").is_some()
                    {
                        walk(schema, value, path, untyped);
                    }
                }
            }
            path.pop();
        }
    }
    let mut untyped = Vec::new();
    walk(&schema, &values, &mut Vec::new(), &mut untyped);
    assert!(untyped.is_empty(), "untyped values: {untyped:?}");

    // Objects with properties are closed.
    fn closed(node: &Value, path: &str, open: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            if node["additionalProperties"] != false {
                open.push(path.to_string());
                return;
            }
            for (k, v) in props {
                closed(v, &format!("{path}.{k}"), open);
            }
        }
    }
    let mut open = Vec::new();
    closed(&schema, "", &mut open);
    assert!(open.is_empty(), "open objects in the schema: {open:?}");

    // config's keys are the exporter's: ask the binary which keys it knows.
    let known = |section: Option<&str>| -> BTreeSet<String> {
        let text = match section {
            Some("events.queues") => {
                "associations: [8dfe3659-4309-493a-8755-0123456789ab]\nevents: {queues: [{not_a_key: 1}]}\n"
                    .to_string()
            }
            None => {
                "associations: [8dfe3659-4309-493a-8755-0123456789ab]\nnot_a_key: 1\n".to_string()
            }
            Some(s) => {
                format!(
                    "associations: [8dfe3659-4309-493a-8755-0123456789ab]\n{s}: {{not_a_key: 1}}\n"
                )
            }
        };
        let (ok, out) = config_check(&text);
        assert!(!ok, "{out}");
        // "expected one of a, b, c", or "expected a" for a section of one key.
        let list = out
            .split("expected one of ")
            .nth(1)
            .or_else(|| out.split("; expected ").nth(1))
            .unwrap_or_else(|| panic!("no key list in {out}"));
        list.lines()
            .next()
            .unwrap()
            .split(" (")
            .next()
            .unwrap()
            .split(", ")
            .map(|k| k.trim().to_string())
            .collect()
    };
    let schema_keys = |path: &[&str]| -> BTreeSet<String> {
        schema_node(&schema, path).unwrap()["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(schema_keys(&["config"]), known(None), "config keys");
    for section in ["metrics", "target_detail", "events"] {
        assert_eq!(
            schema_keys(&["config", section]),
            known(Some(section)),
            "config.{section} keys"
        );
    }
    let queue_keys: BTreeSet<String> = schema_node(&schema, &["config", "events", "queues"])
        .unwrap()["items"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        queue_keys,
        known(Some("events.queues")),
        "events.queues keys"
    );
    // The chart's own events.queues takes the same items.
    assert_eq!(
        schema_node(&schema, &["events", "queues"]).unwrap()["items"],
        schema_node(&schema, &["config", "events", "queues"]).unwrap()["items"]
    );
}

/// `events.queues` (issue 22) lands in the config as the exporter's `events.queues`, which the
/// real binary accepts, with the longer polling defaults of events (the chart sets no
/// `poll_interval` of its own); `config.events` works the same, and both at once are refused.
#[test]
fn events_queues_render_into_the_config_the_exporter_checks() {
    let dir = tempfile::tempdir().unwrap();
    let queues = serde_json::json!([
        { "url": "https://sqs.us-east-1.amazonaws.com/123456789012/ssm-association-events" },
        { "url": "https://sqs.eu-west-1.amazonaws.com/111122223333/ssm-association-events",
          "role_arn": "arn:aws:iam::111122223333:role/ssm-association-exporter-events",
          "external_id": "an-external-id" },
    ]);
    let file = values_file(
        &dir,
        "events",
        &serde_json::json!({ "events": { "queues": queues } }),
    );
    let Some(docs) = render_ok(&["-f", &file]) else {
        return;
    };
    let (text, config) = rendered_config(&docs);
    assert_eq!(
        config["events"],
        serde_json::json!({ "queues": queues }),
        "{text}"
    );
    let (ok, out) = config_check(&text);
    assert!(ok, "--config.check: {out}");
    assert!(out.contains("\nevents: 2 SQS queues"), "{out}");
    assert!(
        out.contains("\npoll_interval: 5m\n"),
        "the events default: {out}"
    );

    // events.progress_poll_delay rides along with the queues, and the binary takes it.
    let file = values_file(
        &dir,
        "events-delay",
        &serde_json::json!({ "events": { "queues": queues, "progress_poll_delay": "30s" } }),
    );
    let (text, config) = rendered_config(&render_ok(&["-f", &file]).unwrap());
    assert_eq!(config["events"]["progress_poll_delay"], "30s", "{text}");
    let (ok, out) = config_check(&text);
    assert!(ok && out.contains("progress within 30s"), "{out}");

    // Without queues: no events key, the usual polling.
    let (text, config) = rendered_config(&render_ok(&[]).unwrap());
    assert!(config.get("events").is_none(), "{text}");
    let (ok, out) = config_check(&text);
    assert!(ok && out.contains("\nevents: off"), "{out}");
    assert!(out.contains("\npoll_interval: 1m\n"), "{out}");

    // config.events, the exporter's own key, is typed too.
    let file = values_file(
        &dir,
        "config-events",
        &serde_json::json!({ "config": { "events": { "queues": queues } } }),
    );
    let (text, config) = rendered_config(&render_ok(&["-f", &file]).unwrap());
    assert_eq!(config["events"]["queues"], queues);
    assert!(config_check(&text).0);
    let file = values_file(
        &dir,
        "both",
        &serde_json::json!({ "events": { "queues": queues },
                             "config": { "events": { "queues": queues } } }),
    );
    let out = render(&["-f", &file]).unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("set one of them"),
        "{text}"
    );
}

#[test]
fn a_discovery_only_config_drops_the_placeholder_ids_and_null_associations_render() {
    let dir = tempfile::tempdir().unwrap();
    let discovery = serde_json::json!([{ "tags": { "team": "platform" } }]);
    for (name, config) in [
        (
            "discovery-only",
            serde_json::json!({ "discovery": discovery }),
        ),
        (
            "null-associations",
            serde_json::json!({ "associations": null, "discovery": discovery }),
        ),
    ] {
        let file = values_file(&dir, name, &serde_json::json!({ "config": config }));
        let Some(docs) = render_ok(&["-f", &file]) else {
            return;
        };
        let (text, config) = rendered_config(&docs);
        assert!(
            config.get("associations").is_none(),
            "{name}: the placeholder IDs of values.yaml leaked in:\n{text}"
        );
        assert_eq!(config["discovery"], discovery, "{name}");
        let (ok, out) = config_check(&text);
        assert!(ok, "{name}: --config.check: {out}");
        assert!(out.contains("\nassociations: 0\n"), "{name}: {out}");
    }
    // The user's own IDs next to discovery stay, and so do the placeholders without it.
    let file = values_file(
        &dir,
        "both",
        &serde_json::json!({ "config": {
            "associations": ["11111111-2222-4333-8444-555555555555"], "discovery": discovery } }),
    );
    let (_, both) = rendered_config(&render_ok(&["-f", &file]).unwrap());
    assert_eq!(
        both["associations"],
        serde_json::json!(["11111111-2222-4333-8444-555555555555"])
    );
    let (_, default) = rendered_config(&render_ok(&[]).unwrap());
    assert_eq!(default["associations"].as_array().unwrap().len(), 2);
    // Neither IDs nor selectors: refused with a message, not a nil pointer in NOTES.txt.
    let out = render(&["--set", "config.associations=null"]).unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "renders without associations");
    assert!(
        text.contains("config needs associations") && !text.contains("nil pointer"),
        "{text}"
    );
}

/// NOTES.txt as `helm install` prints it: a copy of the chart where a template includes it
/// (`helm template` renders NOTES.txt, failing on its errors, but does not print it).
fn notes(args: &[&str]) -> Option<String> {
    let mut helm = tool("helm")?;
    let copy = tempfile::tempdir().unwrap();
    let chart = copy.path().join("chart");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo(CHART))
        .arg(&chart)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        chart.join("templates/zz-notes-for-tests.yaml"),
        "kind: Notes\ntext: {{ include \"ssm-association-exporter/templates/NOTES.txt\" . | toJson }}\n",
    )
    .unwrap();
    helm.args(["template", "exporter"])
        .arg(&chart)
        .args(["--namespace", "monitoring"])
        .args(args);
    let docs = yaml_documents(&run_ok(helm));
    let notes = docs.iter().find(|d| d["kind"] == "Notes").unwrap();
    Some(notes["text"].as_str().unwrap().to_string())
}

#[test]
fn notes_name_the_workload_the_chart_made_and_count_what_the_config_polls() {
    for (values, says) in [
        (
            "default-values.yaml",
            "polling 2 association(s) as a Deployment.",
        ),
        (
            "persistence-values.yaml",
            "as a StatefulSet (state on a PersistentVolumeClaim).",
        ),
        ("sharding-values.yaml", "as a StatefulSet of 3 shard(s)."),
        (
            "sharding-ha-values.yaml",
            "as two StatefulSets (-a, -b) of 2 shard(s) each",
        ),
    ] {
        let file = format!("{CHART}/ci/{values}");
        let Some(text) = notes(&["-f", &repo(&file).display().to_string()]) else {
            return;
        };
        let first = text.lines().next().unwrap();
        assert!(first.contains(says), "{values}: {first}");
        assert!(!first.contains("Deployment") || values == "default-values.yaml");
    }
    let text = notes(&[
        "--set",
        "config.associations=null",
        "--set",
        "config.discovery[0].document_name=AWS-RunPatchBaseline",
    ])
    .unwrap();
    assert!(
        text.starts_with(
            "ssm-association-exporter 0.1.0 is polling 0 association(s) and those 1 discovery selector(s) match"
        ),
        "{text}"
    );
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// Whether a `labelSelector` with `matchLabels` selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| &labels[k] == v)
}

#[test]
fn ha_pairs_keep_apart_soft_by_default_hard_or_none_on_request_and_an_own_affinity_wins() {
    let ha = ["-f", &format!("{CHART}/ci/sharding-ha-values.yaml")];
    let Some(docs) = render_ok(&ha) else { return };
    let sets: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "StatefulSet").collect();
    assert_eq!(sets.len(), 2);
    for (i, set) in sets.iter().enumerate() {
        let twin = sets[1 - i];
        let anti = &pod_spec(set)["affinity"]["podAntiAffinity"];
        let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .unwrap_or_else(|| panic!("soft anti-affinity by default: {anti}"));
        assert!(anti
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none());
        let term = &preferred[0]["podAffinityTerm"];
        assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
        let own = &set["spec"]["template"]["metadata"]["labels"];
        let twins = &twin["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&term["labelSelector"], twins),
            "selects the twin's pods"
        );
        assert!(!selects(&term["labelSelector"], own), "not its own set's");
    }
    let mut hard = ha.to_vec();
    hard.extend([
        "--set",
        "ha.podAntiAffinity=hard",
        "--set",
        "ha.podAntiAffinityTopologyKey=topology.kubernetes.io/zone",
    ]);
    let docs = render_ok(&hard).unwrap();
    for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
        let required = &pod_spec(set)["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(required[0]["topologyKey"], "topology.kubernetes.io/zone");
    }
    let mut none = ha.to_vec();
    none.extend(["--set", "ha.podAntiAffinity=none"]);
    let docs = render_ok(&none).unwrap();
    for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
        assert!(pod_spec(set).get("affinity").is_none(), "{set}");
    }
    let mut own = ha.to_vec();
    own.extend([
        "--set",
        "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=7",
        "--set",
        "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey=rack",
    ]);
    let docs = render_ok(&own).unwrap();
    for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
        let preferred = &pod_spec(set)["affinity"]["podAntiAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(preferred.as_array().unwrap().len(), 1);
        assert_eq!(preferred[0]["weight"], 7);
    }
    // Without HA there is no twin to keep away from.
    let docs = render_ok(&["-f", &format!("{CHART}/ci/sharding-values.yaml")]).unwrap();
    let set = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert!(pod_spec(set).get("affinity").is_none());
}

/// A CA and a server certificate for `localhost`, PEM.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "chart test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert_pem = leaf.signed_by(&key, &issuer).unwrap().pem();
    (ca_pem, cert_pem, key.serialize_pem())
}

/// The chart with a TLS web config (certificate and key in `webConfig.files`), rendered,
/// validated, and its pod run for real: the probes and the `helm test` pod's wget must get
/// through over HTTPS, as the kubelet and busybox would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_web_config_makes_the_probes_and_the_helm_test_speak_https() {
    let (ca, cert, key) = certificates();
    let dir = tempfile::tempdir().unwrap();
    let file = values_file(
        &dir,
        "tls.yaml",
        &serde_json::json!({
            "webConfig": {
                "content": { "tls_server_config": { "cert_file": "server.crt", "key_file": "server.key" } },
                "files": { "server.crt": cert, "server.key": key }
            },
            "serviceMonitor": { "enabled": true }
        }),
    );
    let Some(out) = render(&["-f", &file]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let docs = yaml_documents(&rendered);
    // The rendered objects are valid Kubernetes objects (scheme: HTTPS included).
    let validated = dir.path().join("rendered.yaml");
    std::fs::write(&validated, &rendered).unwrap();
    let mut validate = tool("kubernetes-validate").unwrap();
    validate.args(["--strict", "-k", "1.25.0"]).arg(&validated);
    run_ok(validate);

    let (mut container, _) = pod_container(&docs, "helm template with a TLS web config");
    assert_eq!(container.probes.len(), 3);
    for probe in &container.probes {
        assert!(
            matches!(probe, Probe::Http { https: true, .. }),
            "{probe:?}"
        );
    }
    let monitor = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
    assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
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
        argv.iter().any(|a| a == "https://{service}/readyz"),
        "{argv:?}"
    );
    container.probes.push(Probe::Foreign(argv));
    container.tls_ca_pem = Some(ca);
    let run = run_container(&container).await;
    assert_eq!(run.metrics_status, 200);

    // An explicit scheme wins: an existingSecret's TLS cannot be seen by the chart.
    let docs = render_ok(&[
        "--set",
        "webConfig.existingSecret=my-web-config",
        "--set",
        "webConfig.scheme=https",
    ])
    .unwrap();
    let workload = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let c = &pod_spec(workload)["containers"][0];
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
    }
}

#[test]
fn the_chart_readme_is_generated_from_values_yaml() {
    let Some(_) = tool("helm") else { return };
    let out = Command::new("bash")
        .arg(repo("scripts/gen-chart-readme"))
        .arg("--stdout")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8(out.stdout).unwrap();
    assert!(
        fresh == read(&format!("{CHART}/README.md")),
        "{CHART}/README.md differs from values.yaml: run scripts/gen-chart-readme"
    );
    // Every key of values.yaml has its row, and the ones with a comment its description.
    for line in [
        "| `ha.podAntiAffinity` | `\"soft\"` | Keeps the two pods of a pair apart",
        "| `logFormat` | `\"json\"` | --log.format: logfmt or json. |",
        "| `webConfig.scheme` | `\"\"` |",
    ] {
        assert!(fresh.contains(line), "README lacks {line}");
    }
}

#[test]
fn the_packaged_chart_has_its_readme_icon_and_schema_and_lint_has_nothing_to_add() {
    let Some(mut helm) = tool("helm") else { return };
    let dir = tempfile::tempdir().unwrap();
    helm.args(["package", CHART, "--destination"])
        .arg(dir.path());
    run_ok(helm);
    let package = dir.path().join("ssm-association-exporter-0.1.0.tgz");
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(&package)
        .output()
        .unwrap();
    let files: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for file in ["README.md", "icon.svg", "values.schema.json", "values.yaml"] {
        assert!(
            files.contains(&format!("ssm-association-exporter/{file}")),
            "the package lacks {file}: {files:?}"
        );
    }
    assert!(!files.iter().any(|f| f.contains("/ci/")), "{files:?}");
    // helm lint says nothing, not even "icon is recommended".
    let mut lint = tool("helm").unwrap();
    lint.args(["lint", "--strict"]).arg(&package);
    let text = run_ok(lint);
    assert!(
        !text.contains("[INFO]") && !text.contains("[WARNING]"),
        "{text}"
    );
    // Chart.yaml's icon URL names this icon.svg, at home's raw address.
    let chart = yaml(&format!("{CHART}/Chart.yaml"));
    let icon = chart["icon"].as_str().expect("an icon");
    let home = chart["home"].as_str().unwrap();
    let raw = home.replace("https://github.com/", "https://raw.githubusercontent.com/");
    assert_eq!(icon, format!("{raw}/main/{CHART}/icon.svg"));
    let svg = read(&format!("{CHART}/icon.svg"));
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
            && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
}
