//! Per-target detail through `run()` against the simulator: exact per-target counts against
//! the simulator's target ground truth (failures, timeouts, undeliverable targets, pages),
//! the caps, `target_detail.enabled: false`, and failing target calls that never change the
//! execution counts.

use ssm_association_exporter::config::Config;
use ssm_association_exporter::names;
use ssm_simulator::{Fault, FaultRule, SimExecution, SimTarget, Simulator};

use crate::common::*;

const TARGETS_OP: &str = "DescribeAssociationExecutionTargets";
const RESULTS: &str = names::TARGET_RESULTS_TOTAL;

fn minutes_ago(m: i64) -> i64 {
    now_ms() - m * 60_000
}

fn instance(execution: usize, n: usize) -> String {
    format!("i-{execution:08x}{n:09x}")
}

/// A final execution `n` minutes ago with `targets` (its ResourceCountByStatus derived).
fn execution(id: &str, status: &str, minutes: i64, targets: Vec<SimTarget>) -> SimExecution {
    SimExecution::new(id, status, minutes_ago(minutes))
        .with_last_execution_ms(minutes_ago(minutes) + 30_000)
        .with_targets(targets)
}

/// Starts the exporter and waits for the first poll of each association (each gets a
/// successful run 55 minutes ago, older than any run the tests add): the failed runs a test
/// adds afterwards are new runs, whose targets are read as they come, not history (of which
/// only the newest failing run's targets are read: its own test).
async fn start_past_first_polls(sim: &Simulator, ids: &[String], mut config: Config) -> Exporter {
    // The runs these tests add afterwards are dated minutes back (before the last listing):
    // a delta listing, which asks for what ran since the last listing, does not return them;
    // a full listing at every interval does.
    config.full_listing_interval = std::time::Duration::ZERO;
    for id in ids {
        sim.add_execution(id, execution("first", "Success", 55, Vec::new()));
    }
    let exporter = Exporter::start(config, sim).await;
    exporter.wait_ready().await;
    exporter
}

fn target_requests(sim: &Simulator, association: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.operation == TARGETS_OP && r.association_id.as_deref() == Some(association))
        .count()
}

/// Every `ssm_association_target_results_total` series of `id` equals the ground truth.
fn targets_match(
    metrics: &Metrics,
    truth: &ssm_simulator::GroundTruth,
    id: &str,
) -> Result<(), String> {
    let want = truth.targets.get(id).cloned().unwrap_or_default();
    let got = metrics.series(RESULTS, &[("association_id", id)]);
    let got_total: f64 = got.iter().map(|(_, v)| v).sum();
    let want_total: u64 = want.values().sum();
    if got_total != want_total as f64 {
        return Err(format!(
            "{id}: {got_total} targets counted, want {want_total}"
        ));
    }
    for ((status, detailed), n) in &want {
        let value = metrics.value(
            RESULTS,
            &[
                ("association_id", id),
                ("status", status),
                ("detailed_status", detailed),
            ],
        );
        if value != *n as f64 {
            return Err(format!("{id} {status}/{detailed}: {value}, want {n}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_results_match_the_ground_truth_exactly() {
    let (sim, ids) = simulator_with(2).await;
    let mut config = test_config(&ids);
    config.target_detail.max_targets_per_execution = 100;
    let exporter = start_past_first_polls(&sim, &ids, config).await;
    let a = &ids[0];
    // Failures, timeouts (two detailed statuses), an undeliverable instance, successes that
    // are never read, and a successful execution that needs no call.
    sim.add_execution(
        a,
        execution(
            "a1",
            "Failed",
            50,
            vec![
                SimTarget::new(instance(1, 1), "Success"),
                SimTarget::new(instance(1, 2), "Failed"),
                SimTarget::new(instance(1, 3), "Failed").with_detailed_status("Undeliverable"),
                SimTarget::new(instance(1, 4), "TimedOut").with_detailed_status("DeliveryTimedOut"),
            ],
        ),
    );
    sim.add_execution(
        a,
        execution(
            "a2",
            "TimedOut",
            40,
            vec![
                SimTarget::new(instance(2, 1), "TimedOut")
                    .with_detailed_status("ExecutionTimedOut"),
                SimTarget::new(instance(2, 2), "Success"),
                SimTarget::new(instance(2, 3), "Failed").with_detailed_status("SomethingNew"),
            ],
        ),
    );
    sim.add_execution(
        a,
        execution(
            "a3",
            "Success",
            30,
            (0..5)
                .map(|i| SimTarget::new(instance(3, i), "Success"))
                .collect(),
        ),
    );
    // Paging: 75 failing targets over two statuses (60 Failed: pages of 50 and 10), under a
    // cap of 100.
    let b = &ids[1];
    sim.add_execution(
        b,
        execution(
            "b1",
            "Failed",
            20,
            (0..80)
                .map(|i| match i % 16 {
                    0..=11 => SimTarget::new(instance(4, i), "Failed"),
                    12..=14 => SimTarget::new(instance(4, i), "TimedOut"),
                    _ => SimTarget::new(instance(4, i), "Success"),
                })
                .collect(),
        ),
    );
    let truth = sim.ground_truth();
    assert_eq!(
        truth.targets[a.as_str()].get(&("Failed".to_string(), "SomethingNew".to_string())),
        Some(&1)
    );
    let metrics = exporter
        .wait_for("target counts", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            targets_match(m, &mapped(&truth), a)?;
            targets_match(m, &truth, b)
        })
        .await;
    assert_eq!(
        metrics.value(
            RESULTS,
            &[
                ("association_id", a),
                ("status", "Failed"),
                ("detailed_status", "other")
            ]
        ),
        1.0,
        "an unknown DetailedStatus is `other`"
    );
    // a1: Failed and TimedOut (2 calls); a2: TimedOut and Failed (2); a3: none.
    assert_eq!(target_requests(&sim, a), 4);
    // b1: Failed in pages of 50 and 10, TimedOut in one.
    let b_calls = target_requests(&sim, b);
    assert_eq!(b_calls, 3);
    // Nothing more is read at later polls: each execution once.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(target_requests(&sim, a), 4);
    assert_eq!(target_requests(&sim, b), b_calls);
    exporter.stop().await;
}

/// The ground truth with detailed statuses outside the closed label set as `other`.
fn mapped(truth: &ssm_simulator::GroundTruth) -> ssm_simulator::GroundTruth {
    let mut t = truth.clone();
    for counts in t.targets.values_mut() {
        let mut out = std::collections::BTreeMap::new();
        for ((status, detailed), n) in std::mem::take(counts) {
            let detailed = if detailed == "SomethingNew" {
                "other".to_string()
            } else {
                detailed
            };
            *out.entry((status, detailed)).or_insert(0) += n;
        }
        *counts = out;
    }
    t
}

/// #21: a first start reads the targets of history once per association, the newest failing
/// run's (for the status page), not those of every failed run of the look-back; runs that
/// fail from then on are read as they come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_reads_the_targets_of_the_newest_failed_run_of_history_only() {
    let (sim, ids) = simulator_with(2).await;
    for (i, id) in ids.iter().enumerate() {
        for n in 0..3 {
            sim.add_execution(
                id,
                execution(
                    &format!("h{n}"),
                    "Failed",
                    40 - 10 * n,
                    vec![SimTarget::new(instance(i * 10 + n as usize, 1), "Failed")],
                ),
            );
        }
    }
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("counts and one target read set each", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            let read: Vec<f64> = ids
                .iter()
                .map(|id| {
                    m.series(RESULTS, &[("association_id", id)])
                        .iter()
                        .map(|(_, v)| v)
                        .sum::<f64>()
                })
                .collect();
            (read == [1.0, 1.0])
                .then_some(())
                .ok_or(format!("{read:?}"))
        })
        .await;
    for id in &ids {
        assert_eq!(
            target_requests(&sim, id),
            1,
            "{id}: the newest failed run only"
        );
    }
    assert_eq!(
        m.value(names::TARGET_DETAIL_EXECUTIONS_SKIPPED_TOTAL, &[]),
        4.0,
        "two runs of history per association not read"
    );
    // The status page shows the newest failed run's targets, the older ones as left out.
    let detail = exporter
        .get(&format!("/api/v1/associations/{}", ids[0]))
        .await;
    let json: serde_json::Value = serde_json::from_str(&detail.body).unwrap();
    let recent = json["recent_executions"].as_array().unwrap();
    assert_eq!(recent[0]["id"], "h2");
    assert_eq!(recent[0]["targets"].as_array().unwrap().len(), 1);
    assert_eq!(recent[1]["targets_left_out"], 1);
    // A run failing now: read as it comes.
    sim.add_execution(
        &ids[0],
        execution(
            "new",
            "Failed",
            0,
            vec![SimTarget::new(instance(99, 1), "Failed")],
        ),
    );
    let truth = sim.ground_truth();
    exporter
        .wait_for("the new run's targets", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            let read: f64 = m
                .series(RESULTS, &[("association_id", &ids[0])])
                .iter()
                .map(|(_, v)| v)
                .sum();
            (read == 2.0).then_some(()).ok_or(format!("{read}"))
        })
        .await;
    assert_eq!(target_requests(&sim, &ids[0]), 2);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_are_respected_and_what_is_left_out_is_counted() {
    let (sim, ids) = simulator_with(2).await;
    let mut config = test_config(&ids);
    config.target_detail.max_targets_per_execution = 60;
    config.target_detail.failing_targets_gauge = true;
    config.target_detail.max_failing_targets = 7;
    let exporter = start_past_first_polls(&sim, &ids, config).await;
    let a = &ids[0];
    // 120 targets: 100 Failed, 20 TimedOut. A cap of 60 reads 50 + 10 Failed and no TimedOut.
    sim.add_execution(
        a,
        execution(
            "big",
            "Failed",
            30,
            (0..120)
                .map(|i| {
                    if i < 100 {
                        SimTarget::new(instance(1, i), "Failed")
                    } else {
                        SimTarget::new(instance(1, i), "TimedOut")
                    }
                })
                .collect(),
        ),
    );
    // Seven failed executions counted in one poll: the targets of the newest five are read.
    let b = &ids[1];
    for n in 0..7 {
        sim.add_execution(
            b,
            execution(
                &format!("b{n}"),
                "Failed",
                40 - n,
                vec![SimTarget::new(instance(2, n as usize), "Failed")],
            ),
        );
    }
    let truth = sim.ground_truth();
    let metrics = exporter
        .wait_for("capped target counts", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            let got = m.value(
                RESULTS,
                &[
                    ("association_id", a),
                    ("status", "Failed"),
                    ("detailed_status", "Failed"),
                ],
            );
            let got_b = m.value(
                RESULTS,
                &[
                    ("association_id", b),
                    ("status", "Failed"),
                    ("detailed_status", "Failed"),
                ],
            );
            (got == 60.0 && got_b == 5.0)
                .then_some(())
                .ok_or(format!("a {got}, b {got_b}"))
        })
        .await;
    assert_eq!(
        metrics.value(
            RESULTS,
            &[
                ("association_id", a),
                ("status", "TimedOut"),
                ("detailed_status", "TimedOut"),
            ],
        ),
        Reading::Missing,
        "no TimedOut target was read"
    );
    // Failed: pages of 50 and 10; TimedOut: nothing left under the cap.
    assert_eq!(target_requests(&sim, a), 2);
    assert_eq!(target_requests(&sim, b), 5);
    assert_eq!(
        metrics.value(names::TARGET_DETAIL_EXECUTIONS_SKIPPED_TOTAL, &[]),
        2.0,
        "b0 and b1, the oldest, were not read"
    );
    // The gauge: 7 of the 60 read, 53 + 60 left out.
    assert_eq!(
        metrics
            .series(names::FAILING_TARGET, &[("association_id", a)])
            .len(),
        7
    );
    assert_eq!(
        metrics.value(names::FAILING_TARGETS_LEFT_OUT, &[("association_id", a)]),
        113.0
    );
    // b's newest failed execution (b6) had its one target read.
    assert_eq!(
        metrics
            .series(names::FAILING_TARGET, &[("association_id", b)])
            .len(),
        1
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_target_detail_makes_no_call() {
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        execution(
            "e1",
            "Failed",
            10,
            vec![SimTarget::new(instance(1, 1), "Failed")],
        ),
    );
    let mut config = test_config(&ids);
    config.target_detail.enabled = false;
    config.target_detail.failing_targets_gauge = true;
    let exporter = Exporter::start(config, &sim).await;
    let truth = sim.ground_truth();
    let metrics = exporter
        .wait_for("execution counts", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(target_requests(&sim, &ids[0]), 0);
    assert!(metrics.series(RESULTS, &[]).is_empty());
    // Not read: the one failing target is left out.
    assert_eq!(
        metrics.value(
            names::FAILING_TARGETS_LEFT_OUT,
            &[("association_id", &ids[0])]
        ),
        1.0
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_target_calls_never_change_execution_counts() {
    let (sim, ids) = simulator_with(1).await;
    let exporter = start_past_first_polls(&sim, &ids, test_config(&ids)).await;
    let id = &ids[0];
    for n in 0..3 {
        sim.add_execution(
            id,
            execution(
                &format!("e{n}"),
                if n == 1 { "Success" } else { "Failed" },
                20 - n,
                vec![
                    SimTarget::new(instance(n as usize, 1), "Success"),
                    SimTarget::new(instance(n as usize, 2), "Failed"),
                ],
            ),
        );
    }
    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation(TARGETS_OP)
            .forever(),
    );
    let truth = sim.ground_truth();
    let metrics = exporter
        .wait_for("execution counts", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    exporter.wait_ready().await;
    // The targets are read after the counts are published: wait for the calls.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while target_requests(&sim, id) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls were never made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics2 = exporter.metrics().await;
    assert_eq!(
        metrics2.value(names::POLL_SUCCESS, &[("association_id", id)]),
        1.0,
        "a failed target call never fails the poll"
    );
    assert!(metrics.series(RESULTS, &[]).is_empty());
    assert!(
        metrics2.value(
            names::API_REQUESTS_TOTAL,
            &[("operation", TARGETS_OP), ("code", "InternalServerError")]
        ) > 0.0,
        "counted by the request metrics"
    );
    // Later polls change nothing either.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    matches_ground_truth(&exporter.metrics().await, &truth, &ids).unwrap();
    exporter.stop().await;
}

/// The real binary logs one structured line per failed target, with what the on-call needs:
/// association, execution, resource, type, detailed status, output source and console URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_target_is_one_structured_log_line() {
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        execution(
            "run-1",
            "Failed",
            5,
            vec![
                SimTarget::new("i-0aaa0000000000001", "Failed")
                    .with_detailed_status("Failed")
                    .with_output_source("cmd-1", "RunCommand"),
                SimTarget::new("i-0aaa0000000000002", "TimedOut")
                    .with_detailed_status("DeliveryTimedOut")
                    .with_output_source("cmd-1", "RunCommand"),
                SimTarget::new("i-0aaa0000000000003", "Success"),
            ],
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("associations:\n  - {}\npoll_interval: 1s\n", ids[0]),
    )
    .unwrap();
    let port = free_port();
    let mut child = exporter_command()
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .args([
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.format=json".to_string(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = drain_stderr(&mut child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while target_requests(&sim, &ids[0]) < 2 {
        assert!(std::time::Instant::now() < deadline, "targets never read");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.join().unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "association target did not succeed")
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    let timed_out = lines
        .iter()
        .find(|v| v["resource_id"] == "i-0aaa0000000000002")
        .expect("the timed-out target");
    let f = timed_out;
    assert_eq!(f["association_id"], ids[0].as_str());
    assert_eq!(f["execution_id"], "run-1");
    assert_eq!(f["resource_type"], "ManagedInstance");
    assert_eq!(f["status"], "TimedOut");
    assert_eq!(f["detailed_status"], "DeliveryTimedOut");
    assert_eq!(f["output_source_type"], "RunCommand");
    assert_eq!(f["output_source_id"], "cmd-1");
    let url = f["console_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://us-east-1.console.aws.amazon.com/") && url.contains(&ids[0]),
        "{url}"
    );
}

/// Targets of a failed run in three non-successful statuses (one `DescribeAssociationExecutionTargets`
/// call each), with one success.
fn failed_targets(execution: usize) -> Vec<SimTarget> {
    vec![
        SimTarget::new(instance(execution, 1), "Failed"),
        SimTarget::new(instance(execution, 2), "TimedOut").with_detailed_status("DeliveryTimedOut"),
        SimTarget::new(instance(execution, 3), "Cancelled"),
        SimTarget::new(instance(execution, 4), "Success"),
    ]
}

/// Every association has a run going (the exporter shows it in progress); then the runs end,
/// a fifth of them (`failing`) failed with targets in three non-successful statuses and four
/// more failed runs each. Returns when the exporter showed the runs in progress.
async fn runs_going_then_ending(
    sim: &Simulator,
    exporter: &Exporter,
    ids: &[String],
    failing: &[String],
) {
    for id in ids {
        // An earlier run, so that the first poll reads (and sees the run going).
        sim.add_execution(id, execution("earlier", "Success", 30, Vec::new()));
        sim.add_execution(
            id,
            SimExecution::new("running", "InProgress", minutes_ago(2))
                .with_last_execution_ms(minutes_ago(2)),
        );
    }
    let truth = sim.ground_truth();
    exporter
        .wait_for("the runs in progress", |m| {
            matches_ground_truth(m, &truth, ids)
        })
        .await;
    for (i, id) in ids.iter().enumerate() {
        let failed = failing.contains(id);
        if failed {
            for n in 0..4 {
                sim.add_execution(
                    id,
                    SimExecution::new(format!("failed-{n}"), "Failed", minutes_ago(1) + n * 1000)
                        .with_last_execution_ms(minutes_ago(1) + n * 1000 + 500)
                        .with_targets(failed_targets(i * 10 + n as usize)),
                );
            }
        }
        sim.update_execution(id, "running", |e| {
            e.status = if failed { "Failed" } else { "Success" }.to_string();
            e.last_execution_ms = Some(now_ms());
            e.targets = if failed {
                failed_targets(i * 10 + 9)
            } else {
                vec![SimTarget::new(instance(i * 10 + 9, 1), "Success")]
            };
        });
    }
}

/// Issue 20, case 1, at small scale: the default budget (5 requests/s), ten associations whose
/// runs end at once, two of them with five failed runs of three non-successful statuses each
/// (30 target reads: six seconds of the whole budget). Every count is exact, nothing left in
/// progress, while target reads are still outstanding: the counts never wait for them. Then
/// the targets are all read, exactly as before (spare budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_before_the_targets_are_read_at_the_default_budget() {
    let (sim, ids) = simulator_with(10).await;
    let failing = vec![ids[3].clone(), ids[7].clone()];
    let mut config = test_config(&ids);
    config.api_requests_per_second = 5.0;
    config.poll_interval = std::time::Duration::from_secs(1);
    config.full_sweep_interval = std::time::Duration::from_secs(3600);
    config.target_detail.failing_targets_gauge = true;
    let exporter = Exporter::start(config, &sim).await;
    runs_going_then_ending(&sim, &exporter, &ids, &failing).await;
    let ended = std::time::Instant::now();
    let truth = sim.ground_truth();
    let want: u64 = failing
        .iter()
        .map(|id| truth.targets[id.as_str()].values().sum::<u64>())
        .sum();
    assert_eq!(want, 30);
    exporter
        .wait_for("exact counts while target reads are outstanding", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            let read: f64 = m.series(RESULTS, &[]).iter().map(|(_, v)| v).sum();
            (read < want as f64).then_some(()).ok_or(format!(
                "every target read ({read}) before the counts were exact"
            ))
        })
        .await;
    let counts_after = ended.elapsed();
    let metrics = exporter
        .wait_for("every target read", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            failing
                .iter()
                .try_for_each(|id| targets_match(m, &truth, id))
        })
        .await;
    let targets_after = ended.elapsed();
    eprintln!(
        "counts exact {counts_after:?} after the runs ended, targets read {targets_after:?} after"
    );
    assert_eq!(
        metrics.value(names::TARGET_DETAIL_EXECUTIONS_SKIPPED_TOTAL, &[]),
        0.0,
        "five failed runs a poll: every one read"
    );
    for id in &failing {
        // The newest failed run's three failing targets; nothing left out.
        assert_eq!(
            metrics
                .series(names::FAILING_TARGET, &[("association_id", id)])
                .len(),
            3
        );
        assert_eq!(
            metrics.value(names::FAILING_TARGETS_LEFT_OUT, &[("association_id", id)]),
            0.0
        );
        let one = exporter.get(&format!("/api/v1/associations/{id}")).await;
        let json: serde_json::Value = serde_json::from_str(&one.body).unwrap();
        let recent = json["recent_executions"].as_array().unwrap();
        assert_eq!(recent.len(), 5, "{json}");
        for r in recent {
            assert_eq!(r["targets"].as_array().unwrap().len(), 3, "{r}");
            assert_eq!(r["targets_left_out"], 0, "{r}");
        }
        // One call per non-successful status of each failed run.
        assert_eq!(target_requests(&sim, id), 15);
    }
    exporter.stop().await;
}

/// Target reads that hang hold neither a count nor a poll slot: with every
/// `DescribeAssociationExecutionTargets` call hanging, the runs that ended are counted
/// exactly (none left in progress) while a target read is outstanding, and runs after them
/// are counted too. The failing runs' targets count as left out meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_target_reads_never_hold_the_counts() {
    let (sim, ids) = simulator_with(5).await;
    let failing = vec![ids[2].clone()];
    sim.push_fault(FaultRule::new(Fault::Hang).operation(TARGETS_OP).forever());
    let mut config = test_config(&ids);
    config.request_timeout = std::time::Duration::from_secs(60);
    config.max_concurrent_requests = 2;
    config.target_detail.failing_targets_gauge = true;
    let exporter = Exporter::start(config, &sim).await;
    runs_going_then_ending(&sim, &exporter, &ids, &failing).await;
    let truth = sim.ground_truth();
    let metrics = exporter
        .wait_for("exact counts while a target read hangs", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            (target_requests(&sim, &failing[0]) > 0)
                .then_some(())
                .ok_or("no target read yet".to_string())
        })
        .await;
    assert!(
        metrics.series(RESULTS, &[]).is_empty(),
        "no target was read"
    );
    // Until read, the newest failed run's three failing targets count as left out.
    assert_eq!(
        metrics.value(
            names::FAILING_TARGETS_LEFT_OUT,
            &[("association_id", &failing[0])]
        ),
        3.0
    );
    // Later runs, of the failing association too, are counted while the read still hangs.
    for (i, id) in ids.iter().enumerate() {
        sim.add_execution(id, execution("later", "Failed", 0, failed_targets(100 + i)));
    }
    let truth = sim.ground_truth();
    exporter
        .wait_for("the later runs counted", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        target_requests(&sim, &failing[0]),
        1,
        "the one read still hangs"
    );
    exporter.stop().await;
}
