//! Shared test harness: the exporter's `run()` against the simulated SSM endpoint over
//! 127.0.0.1, plus a tiny HTTP client and a parser for the text exposition format.

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::time::Duration;

use ssm_association_exporter::config::{AssociationConfig, Config};
use ssm_association_exporter::ssm::ClientSettings;
use ssm_association_exporter::{run, Options};
use ssm_simulator::{SimAssociation, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Association IDs for tests (valid SSM format).
pub fn assoc_id(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-{n:012x}")
}

pub fn now_ms() -> i64 {
    ssm_association_exporter::now_ms()
}

/// A config for tests: fast polling, generous rate limit, no SDK-level waiting.
pub fn test_config(ids: &[String]) -> Config {
    Config {
        associations: ids
            .iter()
            .map(|id| AssociationConfig { id: id.clone() })
            .collect(),
        poll_interval: Duration::from_millis(300),
        initial_lookback: Duration::from_secs(3600),
        late_visibility_window: Duration::from_secs(600),
        max_backfill: None,
        api_requests_per_second: 500.0,
        max_concurrent_requests: 4,
        request_timeout: Duration::from_secs(5),
        api_max_attempts: 1,
        region: Some("us-east-1".to_string()),
        state_file: None,
        state_save_interval: Duration::from_millis(200),
        removed_association_retention: Duration::from_secs(7 * 24 * 3600),
        metrics: Default::default(),
        target_detail: Default::default(),
        discovery: Vec::new(),
        discovery_interval: Duration::from_secs(300),
        regions: Vec::new(),
        accounts: Vec::new(),
        // The production default: no test passes through the sweep unless it says so by
        // name (`..._through_the_sweep`) and sets it itself.
        full_sweep_interval: Duration::from_secs(3600),
        // The production default: the sweep's cap binds above 300 associations at the
        // production ratio of `poll_interval` to `full_sweep_interval` (1 : 60).
        full_sweep_max_polls_per_interval: 5,
        // The production default too: a test that needs `pending` re-polls sooner says so.
        pending_recheck_max_interval: Duration::from_secs(3600),
        // The production default too: between full listings only what ran is listed, so a
        // test that needs an edit, an addition or a removal without a run to be seen sets a
        // short one itself and says so.
        full_listing_interval: Duration::from_secs(600),
        events: None,
        source: "test".to_string(),
    }
}

/// `config` exporting every per-association family at its finest (`metrics:` as 0.1 exported
/// them), for tests that look at one association's internals or at histograms per status.
pub fn richest(mut config: Config) -> Config {
    config.metrics = ssm_association_exporter::config::MetricsConfig::RICHEST;
    config
}

/// An `UpdateAssociation` of `id` (in the default account and region) that changes nothing
/// but its `AssociationVersion`: a listing change without new executions, so the change feed
/// polls it at the next listing (tests that need another poll use this, never the sweep).
pub fn touch(sim: &Simulator, id: &str) {
    sim.update_association_in(
        ssm_simulator::DEFAULT_ACCOUNT,
        ssm_simulator::DEFAULT_REGION,
        id,
        |_, _| {},
    );
}

/// A simulator with `n` associations.
pub async fn simulator_with(n: u32) -> (Simulator, Vec<String>) {
    let sim = Simulator::start().await.expect("simulator starts");
    let ids: Vec<String> = (1..=n).map(assoc_id).collect();
    for (i, id) in ids.iter().enumerate() {
        sim.add_association(
            id,
            SimAssociation {
                name: Some(format!("assoc-{i}")),
                document_name: "AWS-RunPatchBaseline".to_string(),
                schedule_expression: Some("rate(30 minutes)".to_string()),
                alarms: Vec::new(),
            },
        );
    }
    (sim, ids)
}

/// A running exporter (`run()` in this process) and how to stop it.
pub struct Exporter {
    pub address: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Exporter {
    pub async fn start(config: Config, sim: &Simulator) -> Exporter {
        Exporter::start_with(config, sim, Options::default()).await
    }

    /// Starts `run()` with `options`, pointed at the simulator with fake credentials.
    pub async fn start_with(config: Config, sim: &Simulator, mut options: Options) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        options.client = ClientSettings {
            endpoint_url: Some(sim.endpoint_url()),
            fake_credentials: true,
        };
        let task = tokio::spawn(async move {
            run(config, options, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("exporter runs");
        });
        Exporter {
            address,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_request(&self.address, "GET", path).await
    }

    pub async fn metrics(&self) -> Metrics {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "{}", response.body);
        Metrics::parse(&response.body)
    }

    /// Waits until `/readyz` says 200.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.get("/readyz").await.status == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "exporter never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the scraped metrics satisfy `check` (returning `Err(reason)` while not).
    pub async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&Metrics) -> Result<(), String>,
    ) -> Metrics {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let metrics = self.metrics().await;
            match check(&metrics) {
                Ok(()) => return metrics,
                Err(reason) if tokio::time::Instant::now() > deadline => {
                    panic!("timed out waiting for {what}: {reason}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("run() returns promptly after shutdown")
                .expect("run() task did not panic");
        }
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads the whole response.
pub async fn http_request(address: &str, method: &str, path: &str) -> HttpResponse {
    http_request_with(address, method, path, &[]).await
}

/// [`http_request`] with extra request headers.
pub async fn http_request_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let raw = http_exchange(address, method, path, headers).await;
    let text = String::from_utf8(raw).expect("utf-8 response");
    parse_response(&text)
}

/// Sends one request and returns the raw response bytes.
pub async fn http_exchange(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10s")
        .unwrap();
    raw
}

/// Parses a whole HTTP/1.1 response (status, headers, de-chunked body).
pub fn parse_response(text: &str) -> HttpResponse {
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v): &(String, String)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (Prometheus' API uses it).
fn dechunk(mut raw: &str) -> String {
    let mut body = String::new();
    loop {
        let Some((size, rest)) = raw.split_once("\r\n") else {
            return body;
        };
        let size =
            usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).expect("chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&rest[..size]);
        raw = &rest[size + 2..];
    }
}

/// Samples of one scrape: `name{label="v",...}` (labels sorted) -> value.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
    /// The samples by metric name with their labels parsed, built on the first lookup: a
    /// check over hundreds of associations then costs a lookup per series, not a parse of
    /// every sample per series (on a current-thread test runtime that parse starved the
    /// exporter running beside it).
    by_name: std::sync::OnceLock<Labelled>,
}

type Labelled = std::collections::HashMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// One series' value as a scrape shows it: a number, or not exported at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    Value(f64),
    Missing,
}

impl Reading {
    /// The number; panics (naming the outcome) when the series is missing.
    #[track_caller]
    pub fn number(self) -> f64 {
        match self {
            Reading::Value(v) => v,
            Reading::Missing => panic!("the series is not exported"),
        }
    }

    /// The number, or 0 when the series is missing: only for sums over series that are
    /// allowed not to exist yet (say so where it is used).
    pub fn or_zero(self) -> f64 {
        match self {
            Reading::Value(v) => v,
            Reading::Missing => 0.0,
        }
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reading::Value(v) => write!(f, "{v}"),
            Reading::Missing => f.write_str("missing"),
        }
    }
}

impl PartialEq<f64> for Reading {
    fn eq(&self, other: &f64) -> bool {
        matches!(self, Reading::Value(v) if v == other)
    }
}

impl PartialOrd<f64> for Reading {
    fn partial_cmp(&self, other: &f64) -> Option<std::cmp::Ordering> {
        match self {
            Reading::Value(v) => v.partial_cmp(other),
            Reading::Missing => None,
        }
    }
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("numeric value"),
            };
            samples.insert(normalise(series), value);
        }
        Metrics::from_samples(samples, text.to_string())
    }

    /// Metrics from samples keyed as [`Metrics::parse`] keys them.
    pub fn from_samples(samples: BTreeMap<String, f64>, text: String) -> Metrics {
        Metrics {
            samples,
            text,
            by_name: std::sync::OnceLock::new(),
        }
    }

    fn by_name(&self) -> &Labelled {
        self.by_name.get_or_init(|| {
            let mut index = Labelled::new();
            for (key, value) in &self.samples {
                let (name, labels) = split_key(key);
                index.entry(name).or_default().push((labels, *value));
            }
            index
        })
    }

    /// The value of `name` with exactly these labels, if present; the scope labels
    /// (`account_id`, `region`) may be left out, and then the series of every account and
    /// region with these labels are added up.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        if let Some(v) = self.samples.get(&key(name, labels)) {
            return Some(*v);
        }
        let scoped: Vec<f64> = self
            .series(name, labels)
            .into_iter()
            .filter(|(found, _)| {
                found.len() > labels.len()
                    && found.keys().all(|k| {
                        labels.iter().any(|(l, _)| l == k) || k == "account_id" || k == "region"
                    })
            })
            .map(|(_, v)| v)
            .collect();
        (!scoped.is_empty()).then(|| scoped.iter().sum())
    }

    /// The value as a [`Reading`]: a series that is not exported is [`Reading::Missing`],
    /// which equals no number (not even 0), so "never exported" cannot pass as "zero".
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Reading {
        match self.get(name, labels) {
            Some(v) => Reading::Value(v),
            None => Reading::Missing,
        }
    }

    /// Every series of `name` whose labels include `filter`, as (labels, value).
    pub fn series(
        &self,
        name: &str,
        filter: &[(&str, &str)],
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some(all) = self.by_name().get(name) else {
            return Vec::new();
        };
        all.iter()
            .filter(|(labels, _)| {
                filter
                    .iter()
                    .all(|(fk, fv)| labels.get(*fk).map(String::as_str) == Some(*fv))
            })
            .map(|(labels, v)| (labels.clone(), *v))
            .collect()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<_> = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    if inner.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", inner.join(","))
    }
}

fn split_key(series: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series.to_string(), BTreeMap::new());
    };
    let rest = rest.trim_end_matches('}');
    let mut labels = BTreeMap::new();
    // Label values in these tests never contain `",`.
    for part in rest.split("\",") {
        if let Some((k, v)) = part.split_once("=\"") {
            labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
    }
    (name.to_string(), labels)
}

fn normalise(series: &str) -> String {
    let (name, labels) = split_key(series);
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    key(&name, &pairs)
}

/// Checks that every `ssm_association_executions_total` series equals the simulator's ground
/// truth (missing series count as 0), along with in-progress, alarms and histogram counts.
pub fn matches_ground_truth(
    metrics: &Metrics,
    truth: &ssm_simulator::GroundTruth,
    ids: &[String],
) -> Result<(), String> {
    for id in ids {
        let statuses = ["Success", "Failed", "TimedOut", "Cancelled", "Skipped"];
        for status in statuses {
            let want = truth
                .executions
                .get(id)
                .and_then(|m| m.get(status))
                .copied()
                .unwrap_or(0) as f64;
            let got = metrics.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", id), ("status", status)],
            );
            if got != want {
                return Err(format!("{id} {status}: exported {got}, truth {want}"));
            }
        }
        let exported_sum: f64 = metrics
            .series(names::EXECUTIONS_TOTAL, &[("association_id", id)])
            .iter()
            .map(|(_, v)| v)
            .sum();
        let truth_sum: u64 = truth
            .executions
            .get(id)
            .map(|m| m.values().sum())
            .unwrap_or(0);
        if exported_sum != truth_sum as f64 {
            return Err(format!("{id}: total {exported_sum}, truth {truth_sum}"));
        }
        let want_in_progress = truth.in_progress.get(id).copied().unwrap_or(0) as f64;
        let got_in_progress =
            metrics.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", id)]);
        if got_in_progress != want_in_progress {
            return Err(format!(
                "{id}: in progress {got_in_progress}, truth {want_in_progress}"
            ));
        }
        let alarms = truth.triggered_alarms.get(id).cloned().unwrap_or_default();
        for ((name, state), count) in &alarms {
            let got = metrics.value(
                names::TRIGGERED_ALARMS_TOTAL,
                &[
                    ("association_id", id),
                    ("alarm_name", name),
                    ("state", state),
                ],
            );
            if got != *count as f64 {
                return Err(format!(
                    "{id} alarm {name}/{state}: exported {got}, truth {count}"
                ));
            }
        }
        let exported_alarm_series = metrics
            .series(names::TRIGGERED_ALARMS_TOTAL, &[("association_id", id)])
            .len();
        if exported_alarm_series != alarms.len() {
            return Err(format!(
                "{id}: {exported_alarm_series} alarm series, truth {}",
                alarms.len()
            ));
        }
        let without_end = truth.without_end_time.get(id).copied().unwrap_or(0);
        let exported_without_end: f64 = metrics
            .series(
                names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
                &[("association_id", id)],
            )
            .iter()
            .map(|(_, v)| v)
            .sum();
        if exported_without_end != without_end as f64 {
            return Err(format!(
                "{id}: without end time {exported_without_end}, truth {without_end}"
            ));
        }
        let durations: f64 = metrics
            .series(
                &format!("{}_count", names::EXECUTION_DURATION_SECONDS),
                &[("association_id", id)],
            )
            .iter()
            .map(|(_, v)| v)
            .sum();
        if durations != (truth_sum - without_end) as f64 {
            return Err(format!(
                "{id}: {durations} durations observed, truth {}",
                truth_sum - without_end
            ));
        }
    }
    Ok(())
}

/// Dates a state file `by_ms` earlier, as if written (and its associations retired) that long
/// ago.
pub fn age_state_file(path: &std::path::Path, by_ms: i64) {
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let saved = file["saved_at_ms"].as_i64().unwrap();
    file["saved_at_ms"] = (saved - by_ms).into();
    if let Some(retired) = file["retired"].as_object_mut() {
        for entry in retired.values_mut() {
            let at = entry["removed_at_ms"].as_i64().unwrap();
            entry["removed_at_ms"] = (at - by_ms).into();
        }
    }
    std::fs::write(path, serde_json::to_vec(&file).unwrap()).unwrap();
}

/// A path in the repository. From the `CARGO_MANIFEST_DIR` cargo sets when it runs the tests,
/// not the one compiled in: a target directory reused by a clone at another path (as CI's is)
/// keeps test binaries whose compiled-in path is the old clone's.
pub fn repo_path(path: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
        .join(path)
}

/// Metric names documented in the metric table of docs/metrics.md.
pub fn documented_metrics() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_path("docs/metrics.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| name.starts_with("ssm_association"))
        .map(str::to_string)
        .collect()
}

/// A loopback port that was free a moment ago (for the real binary's --web.listen-address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary with an environment that can reach nothing real: fake credentials, no
/// profile files, no instance metadata, no endpoint override, no RUST_LOG.
pub fn exporter_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-association-exporter"));
    command
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SSM")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "fake-secret-for-tests")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials",
        );
    command
}

/// Reads a child's standard error to the end on a thread, so that a chatty child never
/// blocks on a full pipe; join the handle for the text.
pub fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    })
}
