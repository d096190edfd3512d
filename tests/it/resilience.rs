//! Nothing lost, nothing double-counted: restarts (graceful and SIGKILL) with a state file,
//! unusable state files, API faults (resets, hangs, throttling storms, deleted associations,
//! rejected credentials), configuration reloads, and HTTP hardening. Every count is compared
//! with the simulated SSM endpoint's ground truth.

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use ssm_association_exporter::{ConfigSource, Options};
use ssm_simulator::{Fault, FaultRule, SimExecution, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn minutes_ago(m: i64) -> i64 {
    now_ms() - m * 60_000
}

fn add_history(sim: &Simulator, id: &str, n: usize) {
    let statuses = [
        "Success",
        "Failed",
        "Success",
        "TimedOut",
        "Success",
        "Cancelled",
    ];
    for i in 0..n {
        let created = minutes_ago(50) + i as i64 * 7_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("h-{i}"), statuses[i % statuses.len()], created)
                .with_last_execution_ms(created + 3_000),
        );
    }
}

/// Total of `ssm_association_executions_total` for `id`.
fn total(m: &Metrics, id: &str) -> f64 {
    m.series(names::EXECUTIONS_TOTAL, &[("association_id", id)])
        .iter()
        .map(|(_, v)| v)
        .sum()
}

// --- state file ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_continue_across_a_restart_and_executions_finished_meanwhile_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, ids) = simulator_with(2).await;
    add_history(&sim, &ids[0], 20);
    // The listing shows ids[1] ran within the look-back (a run it cannot see in progress
    // otherwise: LastExecutionDate moves when a run ends), so its first poll finds the
    // running one.
    sim.add_execution(
        &ids[1],
        SimExecution::new("done", "Success", minutes_ago(5)).with_last_execution_ms(minutes_ago(4)),
    );
    sim.add_execution(
        &ids[1],
        SimExecution::new("running", "InProgress", minutes_ago(3)),
    );
    let mut config = test_config(&ids);
    config.state_file = Some(dir.path().join("state.json"));

    let exporter = Exporter::start(config.clone(), &sim).await;
    exporter.wait_ready().await;
    let truth = sim.ground_truth();
    let before = exporter
        .wait_for("the first counts", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    exporter.stop().await;
    assert!(dir.path().join("state.json").exists(), "saved on shutdown");

    // While the exporter is down: the running execution finishes, new ones happen.
    sim.update_execution(&ids[1], "running", |e| {
        e.status = "Failed".into();
        e.last_execution_ms = Some(now_ms());
    });
    sim.add_execution(
        &ids[0],
        SimExecution::new("while-down", "Success", minutes_ago(1)).with_last_execution_ms(now_ms()),
    );

    let exporter = Exporter::start(config, &sim).await;
    // Right after the restart, before any poll: the saved counters, not zero.
    let first = exporter.metrics().await;
    for id in &ids {
        assert_eq!(
            total(&first, id),
            total(&before, id),
            "{id}: counters resumed, no reset"
        );
    }
    assert_eq!(first.value(names::STATE_LOAD_ERRORS_TOTAL, &[]), 0.0);
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the executions finished while down", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &ids[1]), ("status", "Failed")]
        ),
        1.0
    );
    assert!(m.value(names::LAST_STATE_SAVE_TIMESTAMP_SECONDS, &[]) > 0.0);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_state_file_is_reported_set_aside_and_the_exporter_starts_fresh() {
    let future = r#"{"version": 99, "saved_at_ms": 0, "associations": {}}"#.to_string();
    let valid_but_cut = r#"{"version": 1, "saved_at_ms": 0, "associations": {"#.to_string();
    for (case, contents) in [
        ("corrupt", b"\x00\x01not json at all".to_vec()),
        ("truncated", valid_but_cut.into_bytes()),
        ("future version", future.into_bytes()),
        ("empty", Vec::new()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, &contents).unwrap();
        let (sim, ids) = simulator_with(1).await;
        add_history(&sim, &ids[0], 6);
        let mut config = test_config(&ids);
        config.state_file = Some(path.clone());
        let exporter = Exporter::start(config, &sim).await;
        exporter.wait_ready().await;
        let truth = sim.ground_truth();
        let m = exporter
            .wait_for(case, |m| matches_ground_truth(m, &truth, &ids))
            .await;
        assert_eq!(m.value(names::STATE_LOAD_ERRORS_TOTAL, &[]), 1.0, "{case}");
        assert_eq!(
            std::fs::read(dir.path().join("state.json.bad")).unwrap(),
            contents,
            "{case}: kept aside"
        );
        exporter.stop().await;
        // And the next save is a good file again.
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["version"], 2, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associations_removed_from_the_config_are_dropped_from_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, ids) = simulator_with(2).await;
    add_history(&sim, &ids[0], 3);
    add_history(&sim, &ids[1], 3);
    let mut config = test_config(&ids);
    config.state_file = Some(dir.path().join("state.json"));
    let exporter = Exporter::start(config.clone(), &sim).await;
    exporter.wait_ready().await;
    exporter.stop().await;
    let saved = |path: &Path| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v["associations"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(saved(&dir.path().join("state.json")), ids);

    config.associations.retain(|a| a.id == ids[1]);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    assert!(m
        .series(names::EXECUTIONS_TOTAL, &[("association_id", &ids[0])])
        .is_empty());
    exporter.stop().await;
    assert_eq!(saved(&dir.path().join("state.json")), [ids[1].clone()]);
}

/// The binary with fake credentials, pointed at the simulator, with its logs captured.
fn spawn_exporter(sim: &Simulator, config: &Path, port: u16, extra: &[&str]) -> Child {
    exporter_command()
        .env("AWS_SESSION_TOKEN", "fake-session-token-for-tests")
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the exporter starts")
}

async fn scrape(address: &str) -> Option<Metrics> {
    tokio::net::TcpStream::connect(address).await.ok()?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        http_request(address, "GET", "/metrics"),
    )
    .await
    .ok()?;
    (response.status == 200).then(|| Metrics::parse(&response.body))
}

/// Every counter series seen so far must never go down, across restarts too.
fn check_monotonic(seen: &mut std::collections::BTreeMap<String, f64>, m: &Metrics) {
    for (series, value) in &m.samples {
        if series.starts_with(names::EXECUTIONS_TOTAL)
            || series.starts_with(names::TRIGGERED_ALARMS_TOTAL)
        {
            if let Some(previous) = seen.insert(series.clone(), *value) {
                assert!(
                    *value >= previous,
                    "{series} went down from {previous} to {value}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_while_executions_run_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 10);
    }
    let config = dir.path().join("config.yaml");
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    std::fs::write(
        &config,
        format!("associations:\n{list}poll_interval: 1s\nstate_file: state.json\nstate_save_interval: 100ms\napi_requests_per_second: 200\n"),
    )
    .unwrap();

    // Executions start and finish throughout, with alarms now and then.
    let running = Arc::new(AtomicBool::new(true));
    let activity = {
        let (sim, ids, running) = (sim.clone(), ids.clone(), running.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while running.load(Ordering::SeqCst) {
                let id = &ids[(n % 3) as usize];
                sim.add_execution(
                    id,
                    SimExecution::new(format!("live-{n}"), "InProgress", now_ms()),
                );
                if n >= 3 {
                    let done = n - 3;
                    let status = ["Success", "Failed", "TimedOut", "Success"][(done % 4) as usize];
                    sim.update_execution(&ids[(done % 3) as usize], &format!("live-{done}"), |e| {
                        e.status = status.into();
                        e.last_execution_ms = Some(now_ms());
                        if done.is_multiple_of(5) {
                            e.triggered_alarms = vec![("errors".into(), "ALARM".into())];
                        }
                    });
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            n
        })
    };

    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut seen = std::collections::BTreeMap::new();
    for kill in 0..4u64 {
        let mut child = spawn_exporter(&sim, &config, port, &[]);
        let lifetime = Duration::from_millis(700 + kill * 400);
        let started = Instant::now();
        while started.elapsed() < lifetime {
            if let Some(m) = scrape(&address).await {
                check_monotonic(&mut seen, &m);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // Everything finishes; a last run catches up.
    running.store(false, Ordering::SeqCst);
    let started = activity.await.unwrap();
    for n in started.saturating_sub(3)..started {
        sim.update_execution(&ids[(n % 3) as usize], &format!("live-{n}"), |e| {
            e.status = "Success".into();
            e.last_execution_ms = Some(now_ms());
        });
    }
    let truth = sim.ground_truth();
    assert!(truth.in_progress.values().sum::<u64>() == 0);
    let mut child = spawn_exporter(&sim, &config, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = scrape(&address).await {
            check_monotonic(&mut seen, &m);
            match matches_ground_truth(&m, &truth, &ids) {
                Ok(()) => break,
                Err(reason) => assert!(Instant::now() < deadline, "after 4 SIGKILLs: {reason}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

// --- API faults ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_a_hanging_server_are_retried_next_cycle_without_loss() {
    let (sim, ids) = simulator_with(2).await;
    add_history(&sim, &ids[0], 12);
    add_history(&sim, &ids[1], 12);
    sim.set_page_size(Some(4));
    sim.push_fault(
        FaultRule::new(Fault::ResetConnection)
            .association(ids[0].clone())
            .operation("DescribeAssociationExecutions")
            .only_with_next_token(),
    );
    sim.push_fault(
        FaultRule::new(Fault::Hang)
            .association(ids[1].clone())
            .operation("DescribeAssociationExecutions")
            .only_with_next_token()
            .skip(1),
    );
    let mut config = test_config(&ids);
    config.request_timeout = Duration::from_millis(400);
    let exporter = Exporter::start(richest(config), &sim).await;
    exporter.wait_ready().await;
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("recovery from reset and hang", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("association_id", &ids[0]), ("code", "ConnectionError")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("association_id", &ids[1]), ("code", "Timeout")]
        ),
        1.0
    );
    exporter.stop().await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_is_counted_backed_off_and_loses_nothing() {
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 30);
    }
    sim.set_page_size(Some(10));
    // 7 throttles in a row: with 3 attempts per request, polls fail and retry later.
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("DescribeAssociationExecutions")
            .times(7),
    );
    let mut config = test_config(&ids);
    config.api_max_attempts = 3;
    let exporter = Exporter::start(richest(config), &sim).await;
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the storm to pass", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "DescribeAssociationExecutions"),
                ("code", "ThrottlingException")
            ]
        ),
        7.0
    );
    let failed: f64 = ids
        .iter()
        .map(|id| {
            m.value(
                names::POLL_ERRORS_TOTAL,
                &[("association_id", id), ("code", "ThrottlingException")],
            )
            // An association whose polls all succeeded has no such series.
            .or_zero()
        })
        .sum();
    assert!(failed >= 1.0, "some polls ran out of attempts");
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_association_backs_off_keeps_its_series_and_spares_the_others() {
    let (sim, ids) = simulator_with(2).await;
    let (failing, kept) = (&ids[0], &ids[1]);
    add_history(&sim, failing, 4);
    add_history(&sim, kept, 4);
    let exporter = Exporter::start(richest(test_config(&ids)), &sim).await;
    exporter.wait_ready().await;
    exporter
        .wait_for("both counted", |m| {
            let t = total(m, failing) + total(m, kept);
            (t == 8.0).then_some(()).ok_or(format!("{t}"))
        })
        .await;
    // A run of the failing one is listed, but its polls keep failing.
    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation("DescribeAssociationExecutions")
            .association(failing.as_str())
            .forever(),
    );
    sim.add_execution(
        failing,
        SimExecution::new("new", "Failed", now_ms() - 1_000).with_last_execution_ms(now_ms()),
    );
    let count = |id: &str| {
        sim.requests()
            .iter()
            .filter(|r| {
                r.operation == "DescribeAssociationExecutions"
                    && r.association_id.as_deref() == Some(id)
            })
            .count()
    };
    let before = count(failing);
    // Ten listings (300 ms each): without backoff ten failed polls; with it 1, +1, +3, +7
    // listings apart: four.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let failed_polls = count(failing) - before;
    assert!(
        (2..=5).contains(&failed_polls),
        "{failed_polls} polls in ten listings"
    );
    // The other one is spared: its run is counted.
    sim.add_execution(
        kept,
        SimExecution::new("k-new", "Success", now_ms() - 1_000).with_last_execution_ms(now_ms()),
    );
    let m = exporter
        .wait_for("the healthy one counted", |m| {
            let t = total(m, kept);
            (t == 5.0).then_some(()).ok_or(format!("{t}"))
        })
        .await;
    assert_eq!(
        m.value(names::POLL_SUCCESS, &[("association_id", failing)]),
        0.0
    );
    assert!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("association_id", failing), ("code", "InternalServerError")]
        ) >= 2.0
    );
    // Its series stay while it is listed.
    assert_eq!(total(&m, failing), 4.0);
    assert_eq!(exporter.get("/readyz").await.status, 200);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_logged_once_reported_unready_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 2);
    }
    sim.push_fault(FaultRule::new(Fault::ExpiredToken).forever());
    let config = dir.path().join("config.yaml");
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    std::fs::write(
        &config,
        format!("associations:\n{list}poll_interval: 1s\napi_max_attempts: 1\n"),
    )
    .unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = spawn_exporter(&sim, &config, port, &["--log.level=trace"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            let ready = http_request(&address, "GET", "/readyz").await;
            if ready.status == 503 && ready.body.contains("rejects the credentials") {
                break ready.body;
            }
        }
        assert!(Instant::now() < deadline, "never reported the credentials");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("ExpiredToken"), "{body}");
    let m = scrape(&address).await.unwrap();
    assert_eq!(m.value(names::CREDENTIALS_VALID, &[]), 0.0);
    // Several more failed polls of three associations...
    tokio::time::sleep(Duration::from_secs(2)).await;
    sim.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http_request(&address, "GET", "/readyz").await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let truth = sim.ground_truth();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(&address).await.unwrap();
        if m.value(names::CREDENTIALS_VALID, &[]) == 1.0
            && matches_ground_truth(&m, &truth, &ids).is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "counts after recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    // ...but one log line for the one distinct error.
    assert_eq!(
        logs.matches("rejects the credentials of this account")
            .count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("AWS credentials work again").count(),
        1,
        "{logs}"
    );
    for secret in ["fake-secret-for-tests", "fake-session-token-for-tests"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs at trace level"
        );
    }
}

// --- reload --------------------------------------------------------------------------------

fn write_config(path: &Path, ids: &[&String], extra: &str) {
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    std::fs::write(
        path,
        format!("associations:\n{list}poll_interval: 1s\napi_requests_per_second: 200\n{extra}"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_adds_and_removes_associations_and_keeps_the_others_counting() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 5);
    }
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    write_config(&path, &[a, b], "");
    let config = ssm_association_exporter::config::load(&path).unwrap();
    let options = Options {
        config_source: Some(ConfigSource::File(path.clone())),
        enable_lifecycle: true,
        ..Options::default()
    };
    let exporter = Exporter::start_with(config, &sim, options).await;
    exporter.wait_ready().await;
    let before = exporter.metrics().await;
    assert_eq!(before.value(names::CONFIG_LAST_RELOAD_SUCCESSFUL, &[]), 1.0);
    let started_at = before
        .value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[])
        .number();

    // b goes, c comes, a stays.
    write_config(&path, &[a, c], "");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let reload = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert!(
        reload.body.contains("1 added, 1 removed"),
        "{}",
        reload.body
    );
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("c to be counted", |m| {
            matches_ground_truth(m, &truth, &[a.clone(), c.clone()])
        })
        .await;
    assert!(
        m.series(names::EXECUTIONS_TOTAL, &[("association_id", b)])
            .is_empty(),
        "b's series are gone"
    );
    assert!(m
        .series(names::POLL_SUCCESS, &[("association_id", b)])
        .is_empty());
    assert_eq!(total(&m, a), total(&before, a), "a kept its counters");
    assert!(m.value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[]) >= started_at);
    assert!(
        exporter.get("/").await.body.contains(c.as_str()),
        "landing page shows the new config"
    );

    // An invalid config is rejected and the running one goes on.
    std::fs::write(&path, "associations: []\n").unwrap();
    let reload = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(reload.status, 500);
    assert!(
        reload.body.contains("associations: the list is empty"),
        "{}",
        reload.body
    );
    let m = exporter.metrics().await;
    assert_eq!(m.value(names::CONFIG_LAST_RELOAD_SUCCESSFUL, &[]), 0.0);
    sim.add_execution(
        a,
        SimExecution::new("after-bad-reload", "Failed", minutes_ago(1))
            .with_last_execution_ms(now_ms()),
    );
    let truth = sim.ground_truth();
    exporter
        .wait_for("a to go on", |m| {
            matches_ground_truth(m, &truth, &[a.clone(), c.clone()])
        })
        .await;
    assert_eq!(
        http_request(&exporter.address, "GET", "/-/reload")
            .await
            .status,
        405
    );
    exporter.stop().await;
}

/// Series of one association on a scrape, by family (histogram samples under the family).
fn series_of(m: &Metrics, id: &str) -> BTreeMap<String, usize> {
    let label = format!("association_id=\"{id}\"");
    let mut out = BTreeMap::new();
    for key in m.samples.keys().filter(|k| k.contains(&label)) {
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| f.ends_with("_duration_seconds"))
            .unwrap_or(name);
        *out.entry(family.to_string()).or_default() += 1;
    }
    out
}

/// Families whose series per association depend on the data (README "Cardinality").
const DATA_DEPENDENT: &[&str] = &[
    names::LAST_EXECUTION_RESOURCES,
    names::TRIGGERED_ALARM,
    names::TRIGGERED_ALARMS_TOTAL,
    names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_setting_follows_reloads_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, 6);
    }
    let (a, b) = (&ids[0], &ids[1]);
    write_config(&path, &[a, b], "");
    let config = ssm_association_exporter::config::load(&path).unwrap();
    let options = Options {
        config_source: Some(ConfigSource::File(path.clone())),
        enable_lifecycle: true,
        ..Options::default()
    };
    let exporter = Exporter::start_with(config, &sim, options).await;
    let truth = sim.ground_truth();
    let ids2 = [a.clone(), b.clone()];
    let m = exporter
        .wait_for("the history to be counted", |m| {
            matches_ground_truth(m, &truth, &ids2)
        })
        .await;

    // The default: within the budget, one histogram per association, one status series, the
    // exporter's internals aggregated.
    let default = series_of(&m, a);
    let fixed: usize = default
        .iter()
        .filter(|(f, _)| !DATA_DEPENDENT.contains(&f.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(fixed, 21, "{default:#?}");
    assert_eq!(default[names::EXECUTION_DURATION_SECONDS], 7);
    assert_eq!(default[names::LAST_EXECUTION_STATUS], 1);
    for family in [
        names::WATERMARK_TIMESTAMP_SECONDS,
        names::POLL_DELAY_SECONDS,
        names::PENDING_ABANDONED_TOTAL,
    ] {
        assert!(!default.contains_key(family), "{family} per association");
        assert!(m.get(family, &[]).is_some(), "{family} aggregated");
    }
    let count = |m: &Metrics, labels: &[(&str, &str)]| {
        m.value(
            &format!("{}_count", names::EXECUTION_DURATION_SECONDS),
            labels,
        )
        .number()
    };
    let all = count(&m, &[("association_id", a)]);
    assert_eq!(all, 6.0, "every execution of the history has an end time");

    // The richest setting, on reload: the same numbers, per status.
    write_config(
        &path,
        &[a, b],
        "metrics:\n  duration_histogram: per_status\n  last_execution_status: per_status\n  per_association_internals: true\n",
    );
    let reload = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let m = exporter.metrics().await;
    let richest = series_of(&m, a);
    assert_eq!(richest[names::LAST_EXECUTION_STATUS], 5);
    assert_eq!(richest[names::WATERMARK_TIMESTAMP_SECONDS], 1);
    assert_eq!(richest[names::PENDING_ABANDONED_TOTAL], 1);
    let per_status: f64 = ["Success", "Failed", "TimedOut", "Cancelled"]
        .iter()
        .map(|s| count(&m, &[("association_id", a), ("status", s)]))
        .sum();
    assert_eq!(
        per_status, all,
        "the per-status histograms add up to the default one"
    );
    assert!(m.get(names::WATERMARK_TIMESTAMP_SECONDS, &[]).is_none());

    // And off.
    write_config(&path, &[a, b], "metrics:\n  duration_histogram: off\n");
    let reload = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let m = exporter.metrics().await;
    assert!(!m.text.contains(names::EXECUTION_DURATION_SECONDS));
    assert_eq!(
        series_of(&m, a).values().sum::<usize>() + 7,
        default.values().sum::<usize>()
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_of_the_binary_and_post_needs_web_enable_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, 3);
    }
    write_config(&path, &[&ids[0]], "");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = spawn_exporter(&sim, &path, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while scrape(&address)
        .await
        .is_none_or(|m| total(&m, &ids[0]) == 0.0)
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write_config(&path, &[&ids[0], &ids[1]], "");
    // Without --web.enable-lifecycle, POST /-/reload is refused and re-reads nothing...
    let refused = http_request(&address, "POST", "/-/reload").await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (403, "Lifecycle API is not enabled.\n")
    );
    assert!(
        !http_request(&address, "GET", "/")
            .await
            .body
            .contains(ids[1].as_str()),
        "the refused POST re-read the configuration"
    );
    // ...and SIGHUP still reloads.
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while scrape(&address)
        .await
        .is_none_or(|m| total(&m, &ids[1]) != 3.0)
    {
        assert!(
            Instant::now() < deadline,
            "the added association was never polled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `run()` on the config file at `path`, `POST /-/reload` enabled or not.
async fn start_reloadable(path: &Path, sim: &Simulator, enable_lifecycle: bool) -> Exporter {
    let config = ssm_association_exporter::config::load(path).unwrap();
    let options = Options {
        config_source: Some(ConfigSource::File(path.to_path_buf())),
        enable_lifecycle,
        ..Options::default()
    };
    Exporter::start_with(config, sim, options).await
}

/// Without `--web.enable-lifecycle` (the default), anyone who reaches the port gets 403 from
/// `/-/reload`, as from Prometheus, and the configuration is not re-read: neither an added
/// association nor an invalid file has any effect, the reload metrics stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_without_web_enable_lifecycle_is_forbidden_and_rereads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, 3);
    }
    let (a, b) = (&ids[0], &ids[1]);
    write_config(&path, &[a], "");
    let exporter = start_reloadable(&path, &sim, false).await;
    exporter.wait_ready().await;
    let loaded_at = exporter
        .metrics()
        .await
        .value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[])
        .number();
    tokio::time::sleep(Duration::from_millis(20)).await;

    write_config(&path, &[a, b], "");
    for method in ["POST", "PUT"] {
        let refused = http_request(&exporter.address, method, "/-/reload").await;
        assert_eq!(refused.status, 403, "{method}: {}", refused.body);
        assert_eq!(refused.body, "Lifecycle API is not enabled.\n");
    }
    std::fs::write(&path, "associations: []\n").unwrap();
    let refused = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // A reload answers only once it is done: had one run, these would show it.
    let m = exporter.metrics().await;
    assert_eq!(m.value(names::CONFIG_LAST_RELOAD_SUCCESSFUL, &[]), 1.0);
    assert_eq!(
        m.value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[]),
        loaded_at
    );
    assert!(
        !exporter.get("/").await.body.contains(b.as_str()),
        "the landing page shows b: the file was re-read"
    );
    let truth = sim.ground_truth();
    exporter
        .wait_for("a to be counted", |m| {
            matches_ground_truth(m, &truth, std::slice::from_ref(a))
        })
        .await;
    assert!(
        exporter
            .metrics()
            .await
            .series(names::EXECUTIONS_TOTAL, &[("association_id", b)])
            .is_empty(),
        "b is not watched"
    );
    // GET stays a wrong method, whatever the flag.
    assert_eq!(
        http_request(&exporter.address, "GET", "/-/reload")
            .await
            .status,
        405
    );
    exporter.stop().await;
}

/// Adds one finished run to each association, shown by the listing at once.
fn add_new_runs(sim: &Simulator, ids: &[String], tag: &str) {
    for (i, id) in ids.iter().enumerate() {
        let status = ["Failed", "Success", "TimedOut"][i % 3];
        sim.add_execution(
            id,
            SimExecution::new(format!("{tag}-{i}"), status, minutes_ago(1))
                .with_last_execution_ms(now_ms()),
        );
    }
}

/// A reload of an unchanged file changes nothing: 50 of them while runs come and go restart
/// no scope loop (each start asks STS who it is, so the simulator's count of
/// `GetCallerIdentity` is the count of restarts) and cancel no poll; the counts follow, and the
/// reload metrics say each reload succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_an_unchanged_file_restarts_no_poller_and_the_counts_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 4);
    }
    let refs: Vec<&String> = ids.iter().collect();
    write_config(&path, &refs, "");
    let exporter = start_reloadable(&path, &sim, true).await;
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the history", |m| matches_ground_truth(m, &truth, &ids))
        .await;
    let loaded_at = m
        .value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[])
        .number();
    let starts = sim.request_count("GetCallerIdentity");
    assert_eq!(starts, 1, "one scope, started once");
    tokio::time::sleep(Duration::from_millis(20)).await;

    for round in 0..50 {
        if round % 10 == 0 {
            add_new_runs(&sim, &ids, &format!("r{round}"));
        }
        let reload = http_request(&exporter.address, "POST", "/-/reload").await;
        assert_eq!(reload.status, 200, "{}", reload.body);
        assert!(reload.body.contains("unchanged"), "{}", reload.body);
    }
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the new runs", |m| matches_ground_truth(m, &truth, &ids))
        .await;
    assert_eq!(
        sim.request_count("GetCallerIdentity"),
        starts,
        "a reload of an unchanged file restarted the scope loop"
    );
    assert_eq!(m.value(names::CONFIG_LAST_RELOAD_SUCCESSFUL, &[]), 1.0);
    assert!(
        m.value(names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, &[]) > loaded_at,
        "an unchanged reload is still a successful reload"
    );
    exporter.stop().await;
}

/// Writes `text` to `path` by renaming a complete file over it, so that a reload never reads
/// half a file.
fn replace_file(path: &Path, scratch: &str, text: &str) {
    let tmp = path.with_file_name(scratch);
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Four clients posting `/-/reload` in a loop (as fast as they are answered) while runs
/// come: the counts still reach the simulator's ground truth, three times over, while the
/// storm goes on. With `changing`, each client rewrites the file (alternating a setting)
/// before each post, so that reloads really restart the pollers; they restart at most once per
/// `RESTART_HOLD_OFF` whatever the rate. The rate limit (20 requests/s, as `--demo`'s) makes a
/// restarted loop take longer to reach its polls than a reload takes: before reloads
/// coalesced and an unchanged file was left alone, this froze the counts.
async fn a_storm_of_reloads_never_freezes_the_counts(changing: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        add_history(&sim, id, 4);
    }
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    let text = move |variant: usize| {
        format!(
            "associations:\n{list}poll_interval: 1s\napi_requests_per_second: 20\nremoved_association_retention: {}d\n",
            7 + variant
        )
    };
    std::fs::write(&path, text(0)).unwrap();
    let exporter = start_reloadable(&path, &sim, true).await;
    let truth = sim.ground_truth();
    let mut seen = BTreeMap::new();
    let m = exporter
        .wait_for("the history", |m| matches_ground_truth(m, &truth, &ids))
        .await;
    check_monotonic(&mut seen, &m);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (stop, answered) = (stop.clone(), answered.clone());
        let (address, path, text) = (exporter.address.clone(), path.clone(), text.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if changing {
                    replace_file(&path, &format!("client-{client}.tmp"), &text(n % 2));
                }
                let reload = http_request(&address, "POST", "/-/reload").await;
                assert_eq!(reload.status, 200, "{}", reload.body);
                answered.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    for round in 0..3 {
        add_new_runs(&sim, &ids, &format!("storm{round}"));
        let truth = sim.ground_truth();
        let m = exporter
            .wait_for("the counts to follow during the storm", |m| {
                matches_ground_truth(m, &truth, &ids)
            })
            .await;
        check_monotonic(&mut seen, &m);
        assert!(
            clients.iter().all(|c| !c.is_finished()),
            "a client stopped early"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) > 0);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_reloads_of_an_unchanged_file_never_freezes_the_counts() {
    a_storm_of_reloads_never_freezes_the_counts(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_reloads_of_a_changing_file_never_freezes_the_counts() {
    a_storm_of_reloads_never_freezes_the_counts(true).await;
}

// --- HTTP hardening ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_and_oversized_heads_are_refused_and_slow_clients_do_not_block_scrapes() {
    let (sim, ids) = simulator_with(1).await;
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let with_body = http_request_with(
        &exporter.address,
        "GET",
        "/metrics",
        &[("Content-Length", "5")],
    )
    .await;
    assert_eq!(with_body.status, 413);
    let huge = "x".repeat(20 * 1024);
    let raw = http_exchange(&exporter.address, "GET", "/metrics", &[("X-Big", &huge)]).await;
    let head = String::from_utf8_lossy(&raw);
    assert!(
        head.starts_with("HTTP/1.1 431"),
        "{}",
        &head[..head.len().min(80)]
    );

    // Twenty clients that send their request one byte at a time...
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&exporter.address)
            .await
            .unwrap();
        stream.write_all(b"GET /metr").await.unwrap();
        slow.push(stream);
    }
    // ...do not hold up a scrape.
    let started = Instant::now();
    let response = exporter.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "scrape took {:?}",
        started.elapsed()
    );
    // The header read timeout (10 s) eventually drops them.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), slow[0].read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "a slow client was cut off"
    );
    exporter.stop().await;
}
