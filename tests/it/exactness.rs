//! Exact counts in the wild (issue #9): every promise of the counting rules, through the real
//! `run()` (or the real binary) against the simulated SSM endpoint, checked against the
//! simulator's ground truth, with counters that must never go down on any scrape.
//!
//! Waits poll `/metrics` and the simulator's request log with a generous deadline; nothing
//! counts events in a wall-clock window. Polls are told apart in the request log: a poll's
//! first `DescribeAssociationExecutions` request carries no `NextToken`.

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use ssm_association_exporter::config::Config;
use ssm_association_exporter::ssm::format_filter_time;
use ssm_association_exporter::{ConfigSource, Options};
use ssm_simulator::{Fault, FaultRule, RecordedRequest, SimExecution, Simulator};

const EXECUTIONS: &str = "DescribeAssociationExecutions";
const MINUTE: i64 = 60_000;
/// How long any wait below may take before the test fails (far above what it needs).
const DEADLINE: Duration = Duration::from_secs(40);

// --- helpers -------------------------------------------------------------------------------

/// `n` final executions `prefix-0..n`, the first created at `from_ms`, then every `step_ms`,
/// with statuses in turn and an end time 3 s after the start.
fn add_history(sim: &Simulator, id: &str, prefix: &str, n: usize, from_ms: i64, step_ms: i64) {
    let statuses = ["Success", "Failed", "Success", "TimedOut", "Cancelled"];
    for i in 0..n {
        let created = from_ms + i as i64 * step_ms;
        sim.add_execution(
            id,
            SimExecution::new(
                format!("{prefix}-{i}"),
                statuses[i % statuses.len()],
                created,
            )
            .with_last_execution_ms(created + 3_000),
        );
    }
}

/// A final execution created `ago_ms` before the host's now.
fn finished(execution_id: &str, status: &str, ago_ms: i64) -> SimExecution {
    let created = now_ms() - ago_ms;
    SimExecution::new(execution_id, status, created).with_last_execution_ms(created + 1_000)
}

/// Every per-association counter series seen so far (these survive restarts through the state
/// file; the exporter's own process counters start again at 0, as Prometheus expects); a
/// scrape that shows one lower fails the test.
#[derive(Default)]
struct Seen(BTreeMap<String, f64>);

impl Seen {
    fn check(&mut self, m: &Metrics) {
        for (series, value) in &m.samples {
            let counter = [
                "ssm_association_executions_total{",
                "ssm_association_triggered_alarms_total{",
                "ssm_association_executions_without_end_time_total{",
                "ssm_association_execution_duration_seconds_count{",
            ]
            .iter()
            .any(|name| series.starts_with(name));
            if counter {
                if let Some(previous) = self.0.insert(series.clone(), *value) {
                    assert!(
                        *value >= previous,
                        "{series} went down from {previous} to {value}"
                    );
                }
            }
        }
    }
}

/// One scrape of `address` (`None` while nothing listens there), checked by `seen`.
async fn scrape(address: &str, seen: &mut Seen) -> Option<Metrics> {
    tokio::net::TcpStream::connect(address).await.ok()?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        http_request(address, "GET", "/metrics"),
    )
    .await
    .ok()?;
    if response.status != 200 {
        return None;
    }
    let m = Metrics::parse(&response.body);
    seen.check(&m);
    Some(m)
}

/// Scrapes until `check` holds, checking every scrape with `seen`.
async fn wait_until(
    address: &str,
    seen: &mut Seen,
    what: &str,
    mut check: impl FnMut(&Metrics) -> Result<(), String>,
) -> Metrics {
    let deadline = Instant::now() + DEADLINE;
    let mut reason = "no scrape yet".to_string();
    loop {
        if let Some(m) = scrape(address, seen).await {
            match check(&m) {
                Ok(()) => return m,
                Err(why) => reason = why,
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Waits until the exported counts equal the simulator's ground truth for `ids`.
async fn converge(address: &str, sim: &Simulator, ids: &[String], seen: &mut Seen) -> Metrics {
    let truth = sim.ground_truth();
    wait_until(address, seen, "the ground truth", |m| {
        matches_ground_truth(m, &truth, ids)
    })
    .await
}

/// After [`converge`]: `rounds` more listings (and the polls the change feed decides on them),
/// and every scrape meanwhile still equals the ground truth (nothing counted twice later).
async fn hold(address: &str, sim: &Simulator, ids: &[String], seen: &mut Seen, rounds: usize) {
    hold_at(address, &sim.ground_truth(), ids, seen, sim, rounds).await;
}

/// [`hold`] at `truth` (the ground truth minus what the rules skip).
async fn hold_at(
    address: &str,
    truth: &ssm_simulator::GroundTruth,
    ids: &[String],
    seen: &mut Seen,
    sim: &Simulator,
    rounds: usize,
) {
    let listings = sim.request_count("ListAssociations") as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(address, seen).await.expect("scrape");
        if let Err(reason) = matches_ground_truth(&m, truth, ids) {
            panic!("counts moved away from the ground truth: {reason}");
        }
        if sim.request_count("ListAssociations") as usize >= listings + rounds {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hold: no {rounds} listings within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// `DescribeAssociationExecutions` requests of one association, in order.
fn execution_requests(sim: &Simulator, id: &str) -> Vec<RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.operation == EXECUTIONS && r.association_id.as_deref() == Some(id))
        .collect()
}

/// The `CreatedTime GREATER_THAN` value of a paging request (`None` for a re-check by ID).
fn since_filter(r: &RecordedRequest) -> Option<&str> {
    r.filters
        .iter()
        .find(|(k, _, t)| k == "CreatedTime" && t == "GREATER_THAN")
        .map(|(_, v, _)| v.as_str())
}

/// The `ExecutionId EQUAL` value of a re-check request.
fn recheck_filter(r: &RecordedRequest) -> Option<&str> {
    r.filters
        .iter()
        .find(|(k, _, t)| k == "ExecutionId" && t == "EQUAL")
        .map(|(_, v, _)| v.as_str())
}

/// Paging requests grouped by run start: each group begins with a request without a token.
fn runs(requests: &[RecordedRequest]) -> Vec<Vec<RecordedRequest>> {
    let mut out: Vec<Vec<RecordedRequest>> = Vec::new();
    for r in requests.iter().filter(|r| since_filter(r).is_some()) {
        if r.next_token.is_none() || out.is_empty() {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(r.clone());
    }
    out
}

/// Polls of `id` that got their first page: token-less paging requests answered 200.
fn polls_of(sim: &Simulator, id: &str) -> usize {
    execution_requests(sim, id)
        .iter()
        .filter(|r| since_filter(r).is_some() && r.next_token.is_none() && r.status == 200)
        .count()
}

/// Waits until `id` has had `n` more polls than now.
async fn wait_polls(sim: &Simulator, id: &str, n: usize) {
    let target = polls_of(sim, id) + n;
    let deadline = Instant::now() + DEADLINE;
    while polls_of(sim, id) < target {
        assert!(Instant::now() < deadline, "{id}: fewer than {n} more polls");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Edits each of `ids` (a listing change, see `touch`) and waits until each has had one more
/// poll: polls that the change feed has a reason for, never the sweep's.
async fn touch_and_wait_polls(sim: &Simulator, ids: &[&String]) {
    let before: Vec<usize> = ids.iter().map(|id| polls_of(sim, id)).collect();
    for id in ids {
        touch(sim, id);
    }
    let deadline = Instant::now() + DEADLINE;
    for (id, before) in ids.iter().zip(before) {
        while polls_of(sim, id) <= before {
            assert!(Instant::now() < deadline, "{id}: no poll after the edit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until the simulator holds a `DescribeAssociationExecutions` request of `id` that is
/// not answered yet and matches `which`.
async fn wait_in_flight(sim: &Simulator, id: &str, which: impl Fn(&RecordedRequest) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !execution_requests(sim, id)
        .iter()
        .any(|r| r.status == 0 && r.error_code.is_none() && which(r))
    {
        assert!(Instant::now() < deadline, "{id}: no request in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn total(m: &Metrics, id: &str) -> f64 {
    m.series(names::EXECUTIONS_TOTAL, &[("association_id", id)])
        .iter()
        .map(|(_, v)| v)
        .sum()
}

/// A configuration file with `ids` and `settings` (YAML lines).
fn write_config(path: &Path, ids: &[&String], settings: &str) {
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    std::fs::write(
        path,
        format!(
            "associations:\n{list}region: us-east-1\napi_requests_per_second: 500\napi_max_attempts: 1\n{settings}"
        ),
    )
    .unwrap();
}

/// `run()` on the configuration file at `path`, reloadable with POST /-/reload.
async fn start_from_file(path: &Path, sim: &Simulator) -> Exporter {
    let config = ssm_association_exporter::config::load(path).unwrap();
    let options = Options {
        config_source: Some(ConfigSource::File(path.to_path_buf())),
        enable_lifecycle: true,
        ..Options::default()
    };
    Exporter::start_with(config, sim, options).await
}

/// Scrapes (checking monotonicity) until `done` holds, for 10 s at most.
async fn scrape_until(
    exporter: &Exporter,
    seen: &mut Seen,
    done: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = scrape(&exporter.address, seen).await {
            if done(&m) || tokio::time::Instant::now() > deadline {
                return m;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reload(exporter: &Exporter) -> String {
    let response = http_request(&exporter.address, "POST", "/-/reload").await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

fn with_state(ids: &[String], state: &Path) -> Config {
    let mut config = test_config(ids);
    config.state_file = Some(state.to_path_buf());
    config.state_save_interval = Duration::from_millis(100);
    config
}

// --- 1. widening the late-visibility window ------------------------------------------------

/// 2 minutes to an hour by POST /-/reload: `since` must not go back past counted IDs already
/// forgotten (those more than 2 minutes behind the watermark), or they would count twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_the_late_visibility_window_by_reload_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, "h", 60, now_ms() - 55 * MINUTE, 50_000);
    }
    let refs: Vec<&String> = ids.iter().collect();
    let narrow = "poll_interval: 1s\ninitial_lookback: 1h\nlate_visibility_window: 2m\n";
    write_config(&path, &refs, narrow);
    let exporter = start_from_file(&path, &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    // Two more polls: the second run's window (2 minutes) forgets the older IDs.
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    let narrow_since = since_filter(execution_requests(&sim, &ids[0]).last().unwrap())
        .unwrap()
        .to_string();

    write_config(
        &path,
        &refs,
        "poll_interval: 1s\ninitial_lookback: 1h\nlate_visibility_window: 1h\n",
    );
    reload(&exporter).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 3).await;
    // New executions after the reload are counted, once.
    for id in &ids {
        sim.add_execution(id, finished("after-reload", "Failed", 20_000));
    }
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    // The wider window never reached below the point already used.
    for r in execution_requests(&sim, &ids[0]).iter().rev().take(3) {
        assert!(since_filter(r).unwrap() >= narrow_since.as_str(), "{r:?}");
    }
    exporter.stop().await;
}

/// The same across a restart with a state file: the saved memory floor holds the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_the_late_visibility_window_across_a_restart_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, "h", 60, now_ms() - 55 * MINUTE, 50_000);
    }
    let mut config = with_state(&ids, &state);
    config.late_visibility_window = Duration::from_secs(120);
    let exporter = Exporter::start(config.clone(), &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;

    config.late_visibility_window = Duration::from_secs(3600);
    let exporter = Exporter::start(config, &sim).await;
    let first = scrape(&exporter.address, &mut seen).await.unwrap();
    for id in &ids {
        assert_eq!(total(&first, id), 60.0, "{id}: resumed from the state file");
    }
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 3).await;
    sim.add_execution(&ids[0], finished("after-restart", "Skipped", 10_000));
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;
}

// --- 2. repeated and cycling NextTokens ----------------------------------------------------

/// A NextToken that comes back (repeated, or cycling A -> B -> A) ends the poll with
/// `RepeatedNextToken`: no token is ever sent twice within one poll, the other association is
/// counted and the exporter is ready; once the API behaves, the rest is read exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_cycling_next_tokens_end_the_poll_bounded_and_the_rest_is_read_later() {
    // (fault, rule firings per faulty poll, requests per faulty poll)
    for (fault, fires, per_poll) in [
        (Fault::RepeatNextToken, 1, 2),
        (Fault::CycleNextTokens, 2, 3),
    ] {
        let (sim, ids) = simulator_with(2).await;
        let (bad, good) = (&ids[0], &ids[1]);
        add_history(&sim, bad, "h", 30, now_ms() - 40 * MINUTE, 20_000);
        add_history(&sim, good, "h", 12, now_ms() - 40 * MINUTE, 20_000);
        sim.set_page_size(Some(5));
        // Two faulty polls of `bad`, then the API behaves.
        sim.push_fault(
            FaultRule::new(fault.clone())
                .association(bad.clone())
                .times(2 * fires),
        );
        let exporter = Exporter::start(richest(test_config(&ids)), &sim).await;
        let mut seen = Seen::default();
        let truth = sim.ground_truth();
        wait_until(
            &exporter.address,
            &mut seen,
            "a RepeatedNextToken poll",
            |m| {
                let repeated = m.value(
                    names::POLL_ERRORS_TOTAL,
                    &[("association_id", bad), ("code", "RepeatedNextToken")],
                );
                if repeated < 1.0 {
                    return Err(format!("{fault:?}: no RepeatedNextToken poll error yet"));
                }
                matches_ground_truth(m, &truth, std::slice::from_ref(good))
            },
        )
        .await;
        assert_eq!(exporter.get("/readyz").await.status, 200, "{fault:?}");

        let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
        assert_eq!(
            m.value(
                names::POLL_ERRORS_TOTAL,
                &[("association_id", bad), ("code", "RepeatedNextToken")],
            ),
            2.0,
            "{fault:?}"
        );
        hold(&exporter.address, &sim, &ids, &mut seen, 1).await;
        let runs = runs(&execution_requests(&sim, bad));
        for (i, run) in runs.iter().enumerate() {
            let mut tokens: Vec<&String> =
                run.iter().filter_map(|r| r.next_token.as_ref()).collect();
            let n = tokens.len();
            tokens.sort();
            tokens.dedup();
            assert_eq!(
                tokens.len(),
                n,
                "{fault:?}: poll {i} sent a token twice: {run:?}"
            );
            // 30 executions in pages of 5: 6 pages at most, whatever the API does.
            assert!(
                run.len() <= 6,
                "{fault:?}: poll {i}: {} requests",
                run.len()
            );
        }
        let sizes: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(sizes[..3], [per_poll, per_poll, 6], "{fault:?}: {sizes:?}");
        exporter.stop().await;
    }
}

// --- 3. deep backlog under sustained throttling --------------------------------------------

/// 3 × 1,000 executions in pages of 50 while half of all requests are throttled and none is
/// retried: each poll reads on where the last one failed, so the backlog converges; the first
/// run reads every page exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_backlog_under_sustained_half_throttling_resumes_and_converges_exactly() {
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        // Over 50 minutes, so that later runs (10-minute window) start above the first one.
        add_history(&sim, id, "b", 1_000, now_ms() - 55 * MINUTE, 3_000);
    }
    sim.set_page_size(Some(50));
    sim.push_fault(FaultRule::new(Fault::Throttle).forever().fraction(0.5, 17));
    let mut config = test_config(&ids);
    // Failed polls back off up to 16 intervals: keep the interval short.
    config.poll_interval = Duration::from_millis(10);
    config.api_requests_per_second = 5_000.0;
    config.api_max_attempts = 1;
    let exporter = Exporter::start(config, &sim).await;
    let mut seen = Seen::default();
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    let throttled = m.value(
        names::API_REQUESTS_TOTAL,
        &[("operation", EXECUTIONS), ("code", "ThrottlingException")],
    );
    assert!(throttled >= 20.0, "{throttled} throttled requests");
    for id in &ids {
        let requests = execution_requests(&sim, id);
        let first_since = since_filter(&requests[0]).unwrap().to_string();
        let first_run: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| since_filter(r) == Some(first_since.as_str()) && r.status == 200)
            .collect();
        let mut tokens: Vec<&str> = first_run
            .iter()
            .filter_map(|r| r.next_token.as_deref())
            .collect();
        tokens.sort();
        let n = tokens.len();
        tokens.dedup();
        assert_eq!(
            tokens.len(),
            n,
            "{id}: a page of the first run was read twice"
        );
        assert_eq!(n, 19, "{id}: pages 2 to 20, each read once");
        assert_eq!(
            first_run.iter().filter(|r| r.next_token.is_none()).count(),
            1,
            "{id}: the first run was never restarted"
        );
    }
    exporter.stop().await;
}

// --- 4. stuck executions ---------------------------------------------------------------------

/// Executions stuck in InProgress, Associated and an unknown status: the window moves on past
/// them (the `CreatedTime` filter follows the newest execution), they are re-checked by
/// `ExecutionId`, not on every poll, and each is counted once when it finally ends; polls of
/// the association page no more than those of a healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_execution_does_not_pin_the_window_is_rechecked_by_id_and_counted_once() {
    let (sim, ids) = simulator_with(2).await;
    let (stuck, healthy) = (&ids[0], &ids[1]);
    sim.set_page_size(Some(5));
    let stuck_created = now_ms() - 8_000;
    for (n, status) in ["InProgress", "Associated", "SomethingNew"]
        .iter()
        .enumerate()
    {
        sim.add_execution(
            stuck,
            SimExecution::new(format!("stuck-{n}"), *status, stuck_created + n as i64),
        );
    }
    for id in &ids {
        sim.add_execution(id, finished("fresh-0", "Success", 4_000));
    }
    let mut config = test_config(&ids);
    config.late_visibility_window = Duration::ZERO;
    // The polls that re-check them are `pending` re-polls: at most 1 s apart here (named: at
    // the production 1 h, the test would wait an hour), at least a quarter of it.
    config.pending_recheck_max_interval = Duration::from_secs(1);
    let exporter = Exporter::start(config, &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    wait_polls(&sim, stuck, 2).await;
    // New executions keep coming: the window follows them.
    for i in 1..=12 {
        for id in &ids {
            sim.add_execution(id, finished(&format!("fresh-{i}"), "Success", 0));
        }
        converge(&exporter.address, &sim, &ids, &mut seen).await;
    }
    wait_polls(&sim, stuck, 2).await;
    let requests = execution_requests(&sim, stuck);
    let stuck_since = format_filter_time(stuck_created);
    let sinces: Vec<&str> = requests.iter().filter_map(since_filter).collect();
    assert!(sinces.windows(2).all(|w| w[0] <= w[1]), "{sinces:?}");
    // After the first poll, never pinned at (or below) the stuck executions.
    assert!(
        sinces[1..].iter().all(|s| *s > stuck_since.as_str()),
        "{sinces:?}"
    );
    let newest = format_filter_time(sim.executions(stuck)[0].created_ms - 1_000);
    assert!(*sinces.last().unwrap() > newest.as_str(), "{sinces:?}");
    let polls = runs(&requests).len();
    for n in 0..3 {
        let checks = requests
            .iter()
            .filter(|r| recheck_filter(r) == Some(format!("stuck-{n}").as_str()))
            .count();
        assert!(checks >= 1, "stuck-{n} never re-checked by ID");
        assert!(
            checks < polls / 2,
            "stuck-{n} re-checked {checks} times in {polls} polls"
        );
    }
    // Polls page like those of the healthy association (one page each here).
    let max_pages = |requests: &[RecordedRequest]| runs(requests).iter().map(Vec::len).max();
    assert_eq!(
        max_pages(&requests),
        max_pages(&execution_requests(&sim, healthy))
    );

    // They end: each counted once.
    for (n, status) in ["Failed", "Success", "TimedOut"].iter().enumerate() {
        sim.update_execution(stuck, &format!("stuck-{n}"), |e| {
            e.status = status.to_string();
            e.last_execution_ms = Some(now_ms());
        });
    }
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", stuck)]),
        0.0
    );
    hold(&exporter.address, &sim, &ids, &mut seen, 3).await;
    exporter.stop().await;
}

// --- 5. executions dated in the future -----------------------------------------------------

/// A final execution dated 2100 is counted once and reported, but neither the watermark nor
/// the `last_*` gauges move to 2100, later executions still count, and a restart with the
/// state file counts it no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_execution_dated_2100_is_counted_once_and_later_runs_come_through_the_sweep() {
    const Y2100_MS: i64 = 4_102_444_800_000;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    sim.add_execution(
        id,
        SimExecution::new("bogus", "Failed", Y2100_MS).with_last_execution_ms(Y2100_MS + 1_000),
    );
    sim.add_execution(id, finished("real", "Success", 5 * MINUTE));
    let mut config = richest(with_state(&ids, &state));
    // A LastExecutionDate in 2100 freezes the listing (it is the newest, and so is its
    // Overview): no later run changes it, so only the full sweep finds later runs.
    config.full_sweep_interval = Duration::from_secs(2);
    let near_now = |m: &Metrics| {
        let now = now_ms() as f64 / 1000.0;
        for name in [
            names::WATERMARK_TIMESTAMP_SECONDS,
            names::LAST_EXECUTION_TIMESTAMP_SECONDS,
        ] {
            let value = m.value(name, &[("association_id", id)]);
            assert!(value < now + 60.0, "{name} is {value}, after now ({now})");
        }
    };

    let exporter = Exporter::start(config.clone(), &sim).await;
    let mut seen = Seen::default();
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    assert_eq!(m.value(names::FUTURE_DATED_EXECUTIONS_TOTAL, &[]), 1.0);
    assert_eq!(total(&m, id), 2.0);
    near_now(&m);
    sim.add_execution(id, finished("later", "Success", 1_000));
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    near_now(&m);
    let later_s = sim.executions(id)[1].created_ms as f64 / 1000.0;
    assert_eq!(
        m.value(
            names::WATERMARK_TIMESTAMP_SECONDS,
            &[("association_id", id)]
        ),
        later_s,
        "the watermark follows real executions"
    );
    hold(&exporter.address, &sim, &ids, &mut seen, 3).await;
    let m = scrape(&exporter.address, &mut seen).await.unwrap();
    assert_eq!(
        m.value(names::FUTURE_DATED_EXECUTIONS_TOTAL, &[]),
        1.0,
        "returned by every poll, counted once"
    );
    exporter.stop().await;

    let exporter = Exporter::start(config, &sim).await;
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 3).await;
    let m = scrape(&exporter.address, &mut seen).await.unwrap();
    near_now(&m);
    assert_eq!(total(&m, id), 3.0);
    assert_eq!(
        m.value(names::FUTURE_DATED_EXECUTIONS_TOTAL, &[]),
        0.0,
        "remembered as counted: not seen as new after the restart"
    );
    exporter.stop().await;
}

// --- 6. clock skew ----------------------------------------------------------------------------

/// AWS's clock 10 minutes ahead of the host, then 10 minutes behind: requests get through
/// (the first ones are rejected as signed at the wrong time, then signed right), credentials
/// are never reported invalid, the offset is published, and the first poll's look-back is
/// measured on AWS's clock: 65 minutes before AWS's now is out, 55 minutes is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_minutes_of_clock_skew_either_way_keep_polls_exact_and_the_lookback_on_aws_time() {
    for offset_ms in [10 * MINUTE, -10 * MINUTE] {
        let (sim, ids) = simulator_with(2).await;
        sim.set_clock_offset_ms(offset_ms);
        let (edge, plain) = (&ids[0], &ids[1]);
        let aws_now = sim.now_ms();
        sim.add_execution(
            edge,
            SimExecution::new("inside", "Success", aws_now - 55 * MINUTE)
                .with_last_execution_ms(aws_now - 54 * MINUTE),
        );
        sim.add_execution(
            edge,
            SimExecution::new("outside", "Failed", aws_now - 65 * MINUTE)
                .with_last_execution_ms(aws_now - 64 * MINUTE),
        );
        add_history(&sim, plain, "h", 8, aws_now - 30 * MINUTE, 60_000);
        let mut config = test_config(&ids);
        config.initial_lookback = Duration::from_secs(3600);
        config.api_max_attempts = 2;
        // The edits below (`touch`) are seen by a full listing: every listing is one here.
        config.full_listing_interval = Duration::ZERO;
        let exporter = Exporter::start(config, &sim).await;
        exporter.wait_ready().await;
        let mut seen = Seen::default();
        let truth = sim.ground_truth();
        let m = wait_until(&exporter.address, &mut seen, "counts under skew", |m| {
            matches_ground_truth(m, &truth, std::slice::from_ref(plain))?;
            let counted: Vec<Reading> = ["Success", "Failed"]
                .iter()
                .map(|s| {
                    m.value(
                        names::EXECUTIONS_TOTAL,
                        &[("association_id", edge), ("status", s)],
                    )
                })
                .collect();
            if counted == [1.0, 0.0] {
                Ok(())
            } else {
                Err(format!("offset {offset_ms}: Success, Failed = {counted:?}"))
            }
        })
        .await;
        let offset = m.value(names::AWS_CLOCK_OFFSET_SECONDS, &[]).number();
        let want = offset_ms as f64 / 1000.0;
        assert!((offset - want).abs() <= 2.0, "offset {offset}, want {want}");
        // The first look-back start: an hour before AWS's now (not the host's).
        let first = execution_requests(&sim, edge)
            .into_iter()
            .find_map(|r| since_filter(&r).map(str::to_string))
            .unwrap();
        let (lo, hi) = (
            format_filter_time(aws_now - 60 * MINUTE - 5_000),
            format_filter_time(sim.now_ms() - 60 * MINUTE + 5_000),
        );
        assert!(lo <= first && first <= hi, "{lo} <= {first} <= {hi}");
        // Later polls (the associations edited) stay good: ready, credentials valid, nothing
        // more counted.
        for _ in 0..2 {
            touch_and_wait_polls(&sim, &[edge, plain]).await;
        }
        let m = scrape(&exporter.address, &mut seen).await.unwrap();
        assert_eq!(m.value(names::CREDENTIALS_VALID, &[]), 1.0);
        assert_eq!(exporter.get("/readyz").await.status, 200);
        assert_eq!(total(&m, edge), 1.0);
        matches_ground_truth(&m, &truth, std::slice::from_ref(plain)).unwrap();
        exporter.stop().await;
    }
}

// --- 7. a failed save, then a crash ----------------------------------------------------------

fn spawn_binary(sim: &Simulator, config: &Path, port: u16) -> Child {
    exporter_command()
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the exporter starts")
}

/// The real binary: counts are saved and published; then the state file's directory turns
/// into a plain file (writes fail even as root), new executions are polled but not published;
/// SIGKILL; the directory comes back and the binary restarts. No counter seen on /metrics ever
/// went down, and the end is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_state_save_then_sigkill_never_lowers_a_counter_and_ends_exact() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, "h", 10, now_ms() - 30 * MINUTE, 60_000);
    }
    let config = dir.path().join("config.yaml");
    let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
    std::fs::write(
        &config,
        format!(
            // The edits below (`touch`) are seen by a full listing: every listing is one.
            "associations:\n{list}poll_interval: 1s\nfull_listing_interval: 0s\nstate_file: {}\nstate_save_interval: 100ms\napi_requests_per_second: 200\n",
            state_dir.join("state.json").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut seen = Seen::default();

    let mut child = spawn_binary(&sim, &config, port);
    let before = converge(&address, &sim, &ids, &mut seen).await;
    assert!(state_dir.join("state.json").exists());

    // The disk goes bad: the state file's directory becomes a plain file.
    let aside: PathBuf = dir.path().join("state.aside");
    std::fs::rename(&state_dir, &aside).unwrap();
    std::fs::write(&state_dir, b"not a directory").unwrap();
    for id in &ids {
        sim.add_execution(id, finished("while-failing", "Failed", 5_000));
    }
    wait_until(&address, &mut seen, "failing saves", |m| {
        let errors = m.value(names::STATE_SAVE_ERRORS_TOTAL, &[]);
        if errors >= 2.0 {
            Ok(())
        } else {
            Err(format!("{errors} save errors"))
        }
    })
    .await;
    // Polls go on (the associations edited twice) while saves fail.
    let all: Vec<&String> = ids.iter().collect();
    for _ in 0..2 {
        touch_and_wait_polls(&sim, &all).await;
    }
    let held = scrape(&address, &mut seen).await.unwrap();
    assert_eq!(held.value(names::STATE_SAVE_FAILING, &[]), 1.0);
    for id in &ids {
        assert_eq!(
            total(&held, id),
            total(&before, id),
            "{id}: unsaved counts are not published"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The disk comes back with the last good file; the binary restarts.
    std::fs::remove_file(&state_dir).unwrap();
    std::fs::rename(&aside, &state_dir).unwrap();
    let mut child = spawn_binary(&sim, &config, port);
    let first = wait_until(&address, &mut seen, "the restarted binary", |_| Ok(())).await;
    for id in &ids {
        assert!(total(&first, id) >= total(&before, id), "{id}: resumed");
    }
    converge(&address, &sim, &ids, &mut seen).await;
    hold(&address, &sim, &ids, &mut seen, 1).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

// --- 8. removed, then added back -----------------------------------------------------------

/// An association removed by one reload and added back by another resumes its counters: its
/// look-back is not counted again, and what happened while it was out is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_removed_and_added_back_by_reloads_resumes_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    let (a, b) = (&ids[0], &ids[1]);
    for id in &ids {
        add_history(&sim, id, "h", 20, now_ms() - 45 * MINUTE, 60_000);
    }
    write_config(&path, &[a, b], "poll_interval: 1s\n");
    let exporter = start_from_file(&path, &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, &ids, &mut seen).await;

    write_config(&path, &[b], "poll_interval: 1s\n");
    assert!(reload(&exporter).await.contains("1 removed"));
    sim.add_execution(a, finished("while-out", "TimedOut", 10_000));
    let m = scrape_until(&exporter, &mut seen, |m| total(m, a) == 0.0).await;
    assert_eq!(
        total(&m, a),
        0.0,
        "its series went with it at the next listing"
    );

    write_config(&path, &[a, b], "poll_interval: 1s\n");
    assert!(reload(&exporter).await.contains("1 added"));
    let first_polls = |m: &Metrics| m.value(names::POLLS_TOTAL, &[("reason", "first")]);
    let before = first_polls(&scrape(&exporter.address, &mut seen).await.unwrap());
    let m = scrape_until(&exporter, &mut seen, |m| total(m, a) > 0.0).await;
    // Resumed, not started afresh: back with its old counters (and, if its poll for the run
    // while it was out already ended, that one), and no first poll again.
    assert!([20.0, 21.0].contains(&total(&m, a)), "{}", total(&m, a));
    assert_eq!(first_polls(&m), before, "resumed, not polled as new");
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;
}

/// The same with a restart between the removal and the return: the state file keeps the
/// removed association's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_removed_then_added_back_after_a_restart_resumes_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let state = format!(
        "state_file: {}\nstate_save_interval: 100ms\npoll_interval: 1s\n",
        dir.path().join("state.json").display()
    );
    let (sim, ids) = simulator_with(2).await;
    let (a, b) = (&ids[0], &ids[1]);
    for id in &ids {
        add_history(&sim, id, "h", 20, now_ms() - 45 * MINUTE, 60_000);
    }
    write_config(&path, &[a, b], &state);
    let exporter = start_from_file(&path, &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    write_config(&path, &[b], &state);
    reload(&exporter).await;
    exporter.stop().await;

    sim.add_execution(a, finished("while-out", "Cancelled", 10_000));
    let exporter = start_from_file(&path, &sim).await;
    converge(&exporter.address, &sim, std::slice::from_ref(b), &mut seen).await;
    write_config(&path, &[a, b], &state);
    assert!(reload(&exporter).await.contains("1 added"));
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;
}

// --- 9. no partial series from a new exporter ------------------------------------------------

/// Before an association's first run has paged to its end there is no execution series for it
/// (not while its first page is held back, nor after a poll that failed half-way with part of
/// the history read); then all five statuses appear at once with their full values. An
/// association with no history shows every status at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_exporter_shows_no_execution_series_before_the_first_complete_poll_then_all_five() {
    let (sim, ids) = simulator_with(2).await;
    let (busy, empty) = (&ids[0], &ids[1]);
    for (n, status) in ["Success", "Failed", "Success", "Failed", "Success"]
        .iter()
        .enumerate()
    {
        sim.add_execution(
            busy,
            finished(&format!("e{n}"), status, (n as i64 + 1) * MINUTE),
        );
    }
    sim.set_page_size(Some(2));
    let delay = Fault::Delay(Duration::from_millis(1500));
    let rule = |fault: Fault| {
        FaultRule::new(fault)
            .operation(EXECUTIONS)
            .association(busy.clone())
    };
    // Page 1 held back; page 2 throttled (the poll fails with 2 of 5 read); page 2 held back.
    sim.push_fault(rule(delay.clone()));
    sim.push_fault(rule(Fault::Throttle).only_with_next_token());
    sim.push_fault(rule(delay).only_with_next_token());
    let exporter = Exporter::start(richest(test_config(&ids)), &sim).await;
    let mut seen = Seen::default();
    let (mut held, mut after_partial) = (0, 0);
    let m = wait_until(
        &exporter.address,
        &mut seen,
        "busy's first complete run",
        |m| {
            // Sampled after the scrape: fewer than 3 pages answered now means that no run had
            // reached its end when the scrape was rendered.
            let answered = execution_requests(&sim, busy)
                .iter()
                .filter(|r| r.status == 200)
                .count();
            if answered < 3 {
                held += 1;
                let series = m.series(names::EXECUTIONS_TOTAL, &[("association_id", busy)]);
                assert!(series.is_empty(), "partial series: {series:?}");
                let failed = m.value(
                    names::POLL_ERRORS_TOTAL,
                    &[("association_id", busy), ("code", "ThrottlingException")],
                );
                if failed == 1.0 {
                    after_partial += 1;
                }
                return Err(format!("{answered} pages answered"));
            }
            if m.series(names::EXECUTIONS_TOTAL, &[("association_id", busy)])
                .is_empty()
            {
                return Err("no series yet".into());
            }
            Ok(())
        },
    )
    .await;
    assert!(held >= 2, "{held} scrapes while held back");
    assert!(after_partial >= 1, "no scrape after the partial poll");
    let want = [
        ("Success", 3.0),
        ("Failed", 2.0),
        ("TimedOut", 0.0),
        ("Cancelled", 0.0),
        ("Skipped", 0.0),
    ];
    for (id, values) in [(busy, want), (empty, want.map(|(s, _)| (s, 0.0)))] {
        let series = m.series(names::EXECUTIONS_TOTAL, &[("association_id", id)]);
        assert_eq!(series.len(), 5, "{id}: {series:?}");
        for (status, value) in values {
            assert_eq!(
                m.get(
                    names::EXECUTIONS_TOTAL,
                    &[("association_id", id), ("status", status)]
                ),
                Some(value),
                "{id} {status}"
            );
        }
    }
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    exporter.stop().await;
}

// --- 10. readiness follows reloads ------------------------------------------------------------

/// Not ready while an association's first poll hangs; a reload removing it makes the exporter
/// ready at once; a reload adding one makes it wait for that one's first poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_reloads_a_removed_unpolled_association_is_no_longer_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(3).await;
    let (slow, b, added) = (&ids[0], &ids[1], &ids[2]);
    for id in &ids {
        add_history(&sim, id, "h", 3, now_ms() - 20 * MINUTE, 60_000);
    }
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_secs(30)))
            .association(slow.clone())
            .forever(),
    );
    let settings = "poll_interval: 1s\nrequest_timeout: 1m\n";
    write_config(&path, &[slow, b], settings);
    let exporter = start_from_file(&path, &sim).await;
    let mut seen = Seen::default();
    converge(&exporter.address, &sim, std::slice::from_ref(b), &mut seen).await;
    let waiting = exporter.get("/readyz").await;
    assert_eq!(waiting.status, 503, "{}", waiting.body);
    assert!(
        waiting.body.contains("1 associations await"),
        "{}",
        waiting.body
    );

    write_config(&path, &[b], settings);
    reload(&exporter).await;
    assert_eq!(exporter.get("/readyz").await.status, 200);

    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_millis(1500))).association(added.clone()),
    );
    write_config(&path, &[b, added], settings);
    reload(&exporter).await;
    let waiting = exporter.get("/readyz").await;
    assert_eq!(waiting.status, 503, "{}", waiting.body);
    exporter.wait_ready().await;
    converge(
        &exporter.address,
        &sim,
        &[b.clone(), added.clone()],
        &mut seen,
    )
    .await;
    exporter.stop().await;
}

// --- 11. reloads of polling settings mid-poll --------------------------------------------------

/// Changing `poll_interval` restarts every poller; doing it while polls are in flight (a page
/// held back) counts nothing twice and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_polling_settings_while_polls_are_in_flight_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        add_history(&sim, id, "h", 20, now_ms() - 40 * MINUTE, 60_000);
    }
    sim.set_page_size(Some(4));
    let refs: Vec<&String> = ids.iter().collect();
    write_config(&path, &refs, "poll_interval: 1s\n");
    let exporter = start_from_file(&path, &sim).await;
    let mut seen = Seen::default();
    for (round, interval) in ["2s", "1s", "3s"].iter().enumerate() {
        for id in &ids {
            sim.add_execution(id, finished(&format!("r{round}"), "Failed", 30_000));
            sim.push_fault(
                FaultRule::new(Fault::Delay(Duration::from_millis(800)))
                    .operation(EXECUTIONS)
                    .association(id.clone())
                    .only_with_next_token(),
            );
        }
        // A page of the first association held back: its poll is in flight.
        wait_in_flight(&sim, &ids[0], |r| r.next_token.is_some()).await;
        write_config(&path, &refs, &format!("poll_interval: {interval}\n"));
        let body = reload(&exporter).await;
        assert!(body.contains("pollers restarted"), "{body}");
        scrape(&exporter.address, &mut seen).await.unwrap();
    }
    converge(&exporter.address, &sim, &ids, &mut seen).await;
    hold(&exporter.address, &sim, &ids, &mut seen, 1).await;
    exporter.stop().await;
}

// --- 12. lateness -------------------------------------------------------------------------------

/// An execution that becomes visible 3 minutes behind the watermark is counted and observed in
/// the lateness histogram at 180 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_visible_late_are_observed_in_the_lateness_histogram() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    let base = now_ms();
    sim.add_execution(
        id,
        SimExecution::new("new", "Success", base - MINUTE).with_last_execution_ms(base),
    );
    sim.add_execution(
        id,
        SimExecution::new("late", "Failed", base - 4 * MINUTE)
            .with_last_execution_ms(base - 3 * MINUTE)
            .invisible(),
    );
    // The edit below (`touch`) is seen by a full listing: every listing is one here.
    let mut config = test_config(&ids);
    config.full_listing_interval = Duration::ZERO;
    let exporter = Exporter::start(config, &sim).await;
    let mut seen = Seen::default();
    let lateness = names::EXECUTION_LATENESS_SECONDS;
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    assert_eq!(m.value(&format!("{lateness}_count"), &[]), 0.0);
    sim.update_execution(id, "late", |e| e.visible = true);
    // A listing change (the association edited) polls it now, rather than at the window's end
    // 10 minutes on (that rule has its own test); the poll reads the window behind the newest.
    touch(&sim, id);
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    assert_eq!(m.value(&format!("{lateness}_count"), &[]), 1.0);
    assert_eq!(m.value(&format!("{lateness}_sum"), &[]), 180.0);
    let bucket = |le: &str| m.value(&format!("{lateness}_bucket"), &[("le", le)]);
    assert_eq!(bucket("120"), 0.0);
    assert_eq!(bucket("300"), 1.0);
    assert_eq!(bucket("+Inf"), 1.0);
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    let m = scrape(&exporter.address, &mut seen).await.unwrap();
    assert_eq!(
        m.value(&format!("{lateness}_count"), &[]),
        1.0,
        "observed once"
    );
    exporter.stop().await;
}

// --- 13. old state: a bounded backfill (issue 20) ----------------------------------------------

const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A state file written six days ago (its watermark six days old) restored against six days of
/// history, one run every 2 hours: the first poll reads back `max_backfill` (1 day) only. The
/// counters resume and rise by exactly the runs of the last day; the older ones are skipped,
/// which `..._backfill_truncated_total` says (once), never counted as new failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_six_days_old_backfills_only_max_backfill() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&ids);
    config.full_sweep_interval = Duration::from_secs(3600);
    config.initial_lookback = Duration::from_secs(7 * 24 * 3600);
    config.max_backfill = Some(Duration::from_secs(24 * 3600));
    config.state_file = Some(dir.path().join("state.json"));
    config.state_save_interval = Duration::from_millis(100);

    // Six days ago: two runs, counted, saved.
    let then = sim.now_ms() - 6 * DAY;
    add_history(&sim, id, "then", 2, then - 2 * HOUR, HOUR);
    let mut seen = Seen::default();
    let exporter = Exporter::start(config.clone(), &sim).await;
    let before = converge(&exporter.address, &sim, &ids, &mut seen).await;
    let total = |m: &Metrics| -> f64 {
        m.series(names::EXECUTIONS_TOTAL, &[("association_id", id)])
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(total(&before), 2.0);
    exporter.stop().await;
    age_state_file(&dir.path().join("state.json"), 6 * DAY);

    // Since then: a run every 2 hours, the newest 30 minutes ago; none within 30 minutes of
    // the bound (now - 1 day), whatever the few seconds of the test.
    let now = sim.now_ms();
    add_history(
        &sim,
        id,
        "since",
        72,
        then + 2 * HOUR - 30 * MINUTE,
        2 * HOUR,
    );
    let in_bound = sim
        .executions(id)
        .iter()
        .filter(|e| e.created_ms > now - DAY)
        .count() as f64;
    assert_eq!(in_bound, 12.0);
    let all = sim.executions(id).len() as f64;
    assert_eq!(all, 74.0);

    let exporter = Exporter::start(config, &sim).await;
    let first = scrape(&exporter.address, &mut seen).await.unwrap();
    assert_eq!(total(&first), 2.0, "resumed at once, never lower");
    let m = wait_until(&exporter.address, &mut seen, "the bounded backfill", |m| {
        let got = total(m);
        let truncated = m.value(names::BACKFILL_TRUNCATED_TOTAL, &[]);
        (got == 2.0 + in_bound && truncated == 1.0)
            .then_some(())
            .ok_or(format!(
                "{got} counted, truncated {truncated}; want {} and 1 (all: {all})",
                2.0 + in_bound
            ))
    })
    .await;
    assert_eq!(m.value(names::HANDOFF_ABSORBED_EXECUTIONS_TOTAL, &[]), 0.0);
    // Polls go on: the skipped runs stay skipped, and the next run counts.
    let listings = sim.request_count("ListAssociations");
    wait_until(&exporter.address, &mut seen, "three more listings", |_| {
        (sim.request_count("ListAssociations") >= listings + 3)
            .then_some(())
            .ok_or("waiting".into())
    })
    .await;
    sim.add_execution(id, finished("next", "Failed", 0));
    let m = wait_until(&exporter.address, &mut seen, "the next run", |m| {
        (total(m) == 3.0 + in_bound)
            .then_some(())
            .ok_or(format!("{} counted", total(m)))
    })
    .await;
    assert_eq!(m.value(names::BACKFILL_TRUNCATED_TOTAL, &[]), 1.0, "once");
    exporter.stop().await;
}

// --- model: random reloads, restarts, faults, old restores and shard changes ---------------

/// Counts by association and status (the simulator's ground-truth shape).
type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// The ground truth minus what the rules say an exporter never counts (`uncounted`).
fn minus(mut truth: ssm_simulator::GroundTruth, uncounted: &Counts) -> ssm_simulator::GroundTruth {
    for (id, by_status) in uncounted {
        let counts = truth.executions.entry(id.clone()).or_default();
        for (status, n) in by_status {
            let count = counts.entry(status.clone()).or_default();
            *count = count.checked_sub(*n).expect("uncounted within the truth");
        }
        counts.retain(|_, n| *n > 0);
    }
    truth
}

fn total_of(counts: &Counts) -> u64 {
    counts.values().flat_map(|m| m.values()).sum()
}

/// One pod of the model (pod 0 runs as shard 0 of 1 or of 2; pod 1 as shard 1 of 2): its
/// exporter, its counters seen so far, and what its process counters must read.
struct Pod {
    exporter: Option<Exporter>,
    seen: Seen,
    /// `..._backfill_truncated_total` of this process once settled (0 unless an old restore).
    truncated: f64,
    /// `..._handoff_absorbed_executions_total` of this process once settled.
    absorbed: f64,
}

impl Pod {
    fn address(&self) -> String {
        self.exporter.as_ref().expect("pod running").address.clone()
    }

    async fn stop(&mut self) {
        if let Some(exporter) = self.exporter.take() {
            exporter.stop().await;
        }
    }
}

/// A seeded random sequence of reloads (random windows, look-backs, intervals, associations
/// removed and added back), graceful restarts with the state file, API faults (throttling
/// fractions, repeated and cycling tokens, short pages), new or finishing executions, old
/// restores and a shard change there and back. Every scrape of every pod: no counter went
/// down, no process counter above what the rules allow, and (with 2 shards) a pod exports only
/// the associations its shard owns. At every settled point and at the end: exactly the ground
/// truth minus what the rules skip, which the model tracks execution by execution:
///
/// - **Old restore** (one shard): the state file dated a day earlier, restored with
///   `max_backfill: 10s` after runs created 25 s before the stop (inside the late-visibility
///   window, so a plain restart would count them) and at the restart: the first are skipped
///   (never counted), the second counted, and `..._backfill_truncated_total` says so once per
///   association. Runs added later are created after the restart, inside the bound.
/// - **Shard change 1 → 2 → 1** (pod 0 keeping its volume): the associations moving to shard 1
///   leave pod 0 from its first scrape and start afresh on pod 1 (at their full value there);
///   the others continue on pod 0 as after a restart; back to one shard, the moved ones
///   return: pod 0 resumes their counters where they left and absorbs every run counted by
///   shard 1 meanwhile (`..._handoff_absorbed_executions_total`), so they rise only for runs
///   created after the return.
async fn random_operations_keep_counts_monotonic_and_exact(seed: u64) {
    use rand::{Rng, SeedableRng};
    use ssm_association_exporter::model::ScopeKey;
    use ssm_association_exporter::shard::{self, Shard};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let state = dir.path().join("state.json");
    let (sim, ids) = simulator_with(4).await;
    let scope = ScopeKey {
        account_id: ssm_simulator::DEFAULT_ACCOUNT.to_string(),
        region: ssm_simulator::DEFAULT_REGION.to_string(),
    };
    let owner = |id: &String| shard::owner(&scope, id, 2) as usize;
    let moving: Vec<String> = ids.iter().filter(|id| owner(id) == 1).cloned().collect();
    assert!(
        !moving.is_empty() && moving.len() < ids.len(),
        "two shards split the model's associations: {moving:?}"
    );
    for id in &ids {
        add_history(&sim, id, "h", 15, now_ms() - 50 * MINUTE, 3 * MINUTE);
    }
    sim.set_page_size(Some(3));
    let settings = |window: &str, lookback: &str, interval: &str, extra: &str| {
        format!(
            "poll_interval: {interval}\ninitial_lookback: {lookback}\nlate_visibility_window: {window}\nstate_file: {}\nstate_save_interval: 100ms\n{extra}",
            state.display()
        )
    };
    let write = |rng: &mut rand::rngs::StdRng, all: bool| {
        let kept: Vec<&String> = ids.iter().filter(|_| all || rng.random_bool(0.8)).collect();
        let kept = if kept.is_empty() { vec![&ids[0]] } else { kept };
        // At least the 15 s by which new executions below lag behind the newest: an execution
        // that turns up further behind than the window is, by contract, not counted. One that
        // turns up behind the newest changes nothing in the listing: the `late` poll at the
        // window's end finds it (the sweep is the production default, 1 h, and finds nothing
        // here), so windows are short enough for the test to wait for them.
        let window = ["20s", "25s", "30s"][rng.random_range(0..3)];
        let lookback = ["1h", "2h"][rng.random_range(0..2)];
        let interval = ["1s", "2s"][rng.random_range(0..2)];
        write_config(&path, &kept, &settings(window, lookback, interval, ""));
    };
    // Restarts poll every 200 ms until the next reload (the file's minimum is 1 s).
    let start = |sim: Simulator, shard: Shard| {
        let path = path.clone();
        async move {
            let mut config = ssm_association_exporter::config::load(&path).unwrap();
            config.poll_interval = Duration::from_millis(200);
            let options = Options {
                config_source: Some(ConfigSource::File(path)),
                enable_lifecycle: true,
                shard,
                ..Options::default()
            };
            Some(Exporter::start_with(config, &sim, options).await)
        }
    };
    let one = Shard::default();
    let of_two = |i: u32| Shard::new(i, 2).unwrap();
    let new_pod = || Pod {
        exporter: None,
        seen: Seen::default(),
        truncated: 0.0,
        absorbed: 0.0,
    };
    let mut pods = [new_pod(), new_pod()];
    // What pod 0 never counts: skipped by old restores, absorbed on returns.
    let mut uncounted: Counts = BTreeMap::new();
    // The moved associations' counts when they left pod 0.
    let mut left: Counts = BTreeMap::new();
    let mut sharded = false;
    // Runs created from now on are created no earlier than this (after an old restore: its
    // restart, so that none falls before the bound its first polls set).
    let mut created_floor = i64::MIN;
    let mut old_restores = 0;

    // Every scrape: counters never down, process counters within what the rules allow, and
    // with 2 shards each pod exports only what its shard owns.
    async fn scrape_pods(
        pods: &mut [Pod; 2],
        sharded: bool,
        ids: &[String],
        owner: impl Fn(&String) -> usize,
    ) {
        for (i, pod) in pods.iter_mut().enumerate() {
            let Some(exporter) = &pod.exporter else {
                continue;
            };
            let address = exporter.address.clone();
            let m = scrape(&address, &mut pod.seen).await.expect("scrape");
            check_pod(&m, i, pod, sharded, ids, &owner).unwrap();
        }
    }
    fn check_pod(
        m: &Metrics,
        i: usize,
        pod: &Pod,
        sharded: bool,
        ids: &[String],
        owner: &impl Fn(&String) -> usize,
    ) -> Result<(), String> {
        let truncated = m.value(names::BACKFILL_TRUNCATED_TOTAL, &[]).number();
        let absorbed = m
            .value(names::HANDOFF_ABSORBED_EXECUTIONS_TOTAL, &[])
            .number();
        if truncated > pod.truncated || absorbed > pod.absorbed {
            return Err(format!(
                "pod {i}: truncated {truncated} (at most {}), absorbed {absorbed} (at most {})",
                pod.truncated, pod.absorbed
            ));
        }
        if sharded {
            for id in ids {
                let shown = !m.series(names::INFO, &[("association_id", id)]).is_empty();
                if shown && owner(id) != i {
                    return Err(format!(
                        "pod {i} exports {id}, owned by shard {}",
                        owner(id)
                    ));
                }
            }
        }
        Ok(())
    }
    // Waits until pod `i` exports `truth` for the associations its shard owns, with its
    // process counters at what the rules say.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        sim: &Simulator,
        pods: &mut [Pod; 2],
        i: usize,
        truth: &ssm_simulator::GroundTruth,
        sharded: bool,
        ids: &[String],
        owner: impl Fn(&String) -> usize,
        what: &str,
    ) {
        let owned: Vec<String> = ids
            .iter()
            .filter(|id| !sharded || owner(id) == i)
            .cloned()
            .collect();
        // A listing change polls them now: runs that turned up behind their newest are found
        // without waiting for the window's end.
        for id in &owned {
            touch(sim, id);
        }
        let address = pods[i].address();
        let (want_truncated, want_absorbed) = (pods[i].truncated, pods[i].absorbed);
        let pod = &mut pods[i];
        let mut seen = std::mem::take(&mut pod.seen);
        wait_until(&address, &mut seen, what, |m| {
            if let Err(e) = check_pod(m, i, pod, sharded, ids, &owner) {
                panic!("{e}");
            }
            matches_ground_truth(m, truth, &owned)?;
            let truncated = m.value(names::BACKFILL_TRUNCATED_TOTAL, &[]).number();
            let absorbed = m.value(names::HANDOFF_ABSORBED_EXECUTIONS_TOTAL, &[]).number();
            if (truncated, absorbed) != (want_truncated, want_absorbed) {
                return Err(format!(
                    "truncated {truncated}, absorbed {absorbed}; want {want_truncated}, {want_absorbed}"
                ));
            }
            Ok(())
        })
        .await;
        pod.seen = seen;
    }

    write(&mut rng, true);
    pods[0].exporter = start(sim.clone(), one).await;
    let mut running: Vec<(String, String)> = Vec::new();
    let mut log = Vec::new();
    // Each seed restores old state once, and goes to 2 shards and back once, at its own steps.
    let old_at = rng.random_range(0..3);
    let split_at = rng.random_range(3..6);
    let join_at = rng.random_range(6..9);
    for step in 0..10 {
        let mut action = rng.random_range(0..7);
        if step == old_at {
            action = 6;
        }
        if step == split_at || step == join_at {
            action = 7;
        }
        log.push(action);
        match action {
            0 => {
                write(&mut rng, false);
                for pod in pods.iter().filter(|p| p.exporter.is_some()) {
                    reload(pod.exporter.as_ref().unwrap()).await;
                }
            }
            1 => {
                let layout = if sharded {
                    [of_two(0), of_two(1)]
                } else {
                    [one, one]
                };
                for (i, pod) in pods.iter_mut().enumerate() {
                    if pod.exporter.is_some() {
                        pod.stop().await;
                        (pod.truncated, pod.absorbed) = (0.0, 0.0);
                        pod.exporter = start(sim.clone(), layout[i]).await;
                    }
                }
            }
            2 => sim.push_fault(
                FaultRule::new(Fault::Throttle)
                    .times(rng.random_range(1..8))
                    .fraction(0.5, rng.random()),
            ),
            3 => {
                let fault = [Fault::RepeatNextToken, Fault::CycleNextTokens]
                    [rng.random_range(0..2)]
                .clone();
                let id = &ids[rng.random_range(0..ids.len())];
                sim.push_fault(FaultRule::new(fault).association(id.clone()).times(2));
            }
            6 if !sharded => {
                // Settle pod 0 on a fresh process (no poller backing off), all associations
                // configured, so that everything created so far is counted or pending.
                sim.clear_faults();
                write(&mut rng, true);
                pods[0].stop().await;
                (pods[0].truncated, pods[0].absorbed) = (0.0, 0.0);
                pods[0].exporter = start(sim.clone(), one).await;
                let truth = minus(sim.ground_truth(), &uncounted);
                settle(
                    &sim,
                    &mut pods,
                    0,
                    &truth,
                    false,
                    &ids,
                    owner,
                    "before an old restore",
                )
                .await;
                pods[0].stop().await;
                // A day later: runs created 25 s before the stop (inside the 30 s window behind
                // the watermark: a restart of state current when saved counts them) and at the
                // restart (inside the 10 s bound).
                let stopped = now_ms();
                for file in [state.clone(), dir.path().join("state.shard-0.json")] {
                    if file.exists() {
                        age_state_file(&file, DAY);
                    }
                }
                for id in &ids {
                    for n in 0..rng.random_range(1..3) {
                        let status = ["Success", "Failed", "TimedOut"][rng.random_range(0..3)];
                        let name = format!("old{old_restores}-{n}");
                        let created = stopped - 25_000;
                        sim.add_execution(
                            id,
                            SimExecution::new(&name, status, created)
                                .with_last_execution_ms(created + 1_000),
                        );
                        *uncounted
                            .entry(id.clone())
                            .or_default()
                            .entry(status.to_string())
                            .or_default() += 1;
                    }
                }
                created_floor = now_ms();
                for id in &ids {
                    sim.add_execution(id, finished(&format!("new{old_restores}"), "Failed", 0));
                }
                old_restores += 1;
                let all: Vec<&String> = ids.iter().collect();
                write_config(
                    &path,
                    &all,
                    &settings("30s", "1h", "1s", "max_backfill: 10s\n"),
                );
                pods[0].truncated = ids.len() as f64;
                pods[0].exporter = start(sim.clone(), one).await;
                let truth = minus(sim.ground_truth(), &uncounted);
                settle(
                    &sim,
                    &mut pods,
                    0,
                    &truth,
                    false,
                    &ids,
                    owner,
                    "an old restore",
                )
                .await;
                // Back to the model's settings (`max_backfill` of `initial_lookback`).
                write(&mut rng, true);
                reload(pods[0].exporter.as_ref().unwrap()).await;
            }
            6 => {}
            7 => {
                // Settle every pod on fresh processes, nothing running, every association
                // configured: the moved associations' counts are known when they leave (and
                // nothing is pending across the return).
                sim.clear_faults();
                for (id, execution) in running.drain(..) {
                    sim.update_execution(&id, &execution, |e| {
                        e.status = "Success".into();
                        e.last_execution_ms = Some(now_ms());
                    });
                }
                write(&mut rng, true);
                let layout = if sharded {
                    [of_two(0), of_two(1)]
                } else {
                    [one, one]
                };
                for (i, pod) in pods.iter_mut().enumerate() {
                    if pod.exporter.is_some() {
                        pod.stop().await;
                        (pod.truncated, pod.absorbed) = (0.0, 0.0);
                        pod.exporter = start(sim.clone(), layout[i]).await;
                    }
                }
                let truth = sim.ground_truth();
                let pod0 = minus(truth.clone(), &uncounted);
                settle(
                    &sim,
                    &mut pods,
                    0,
                    &pod0,
                    sharded,
                    &ids,
                    owner,
                    "before a shard change",
                )
                .await;
                if sharded {
                    settle(
                        &sim,
                        &mut pods,
                        1,
                        &truth,
                        true,
                        &ids,
                        owner,
                        "shard 1 before 2 → 1",
                    )
                    .await;
                }
                pods[0].stop().await;
                pods[1].stop().await;
                if !sharded {
                    // 1 → 2: the moving ones leave pod 0 at their current counts; pod 1 starts
                    // afresh.
                    for id in &moving {
                        left.insert(
                            id.clone(),
                            pod0.executions.get(id).cloned().unwrap_or_default(),
                        );
                    }
                    pods[0].exporter = start(sim.clone(), of_two(0)).await;
                    pods[1].exporter = start(sim.clone(), of_two(1)).await;
                    sharded = true;
                    // Runs the moved ones will have missed on pod 0.
                    for id in &ids {
                        sim.add_execution(id, finished(&format!("away{step}"), "Failed", 0));
                    }
                } else {
                    // 2 → 1: the moved ones return to pod 0, which never counts what shard 1
                    // counted meanwhile: it absorbs it.
                    let before = total_of(&uncounted);
                    for id in &moving {
                        let now = truth.executions.get(id).cloned().unwrap_or_default();
                        let mut missed = BTreeMap::new();
                        for (status, n) in now {
                            let was = left.get(id).and_then(|m| m.get(&status)).copied();
                            missed.insert(status, n - was.unwrap_or(0));
                        }
                        uncounted.insert(id.clone(), missed);
                    }
                    let absorbed = (total_of(&uncounted) - before) as f64;
                    assert!(absorbed > 0.0, "the moved associations missed runs");
                    sharded = false;
                    pods[0].absorbed = absorbed;
                    pods[0].exporter = start(sim.clone(), one).await;
                    let truth = minus(sim.ground_truth(), &uncounted);
                    settle(&sim, &mut pods, 0, &truth, false, &ids, owner, "the return").await;
                    pods[1] = new_pod();
                }
            }
            _ => {
                for (id, execution) in running.drain(..) {
                    sim.update_execution(&id, &execution, |e| {
                        e.status = "Success".into();
                        e.last_execution_ms = Some(now_ms());
                    });
                }
            }
        }
        // Executions keep happening; some are still running.
        for id in &ids {
            for n in 0..rng.random_range(0..3) {
                let name = format!("s{step}-{n}");
                if rng.random_bool(0.3) {
                    sim.add_execution(id, SimExecution::new(&name, "InProgress", now_ms()));
                    running.push((id.clone(), name));
                } else {
                    let status = ["Success", "Failed", "TimedOut"][rng.random_range(0..3)];
                    let ago = rng
                        .random_range(0..15_000)
                        .min(now_ms().saturating_sub(created_floor));
                    sim.add_execution(id, finished(&name, status, ago));
                }
            }
        }
        for _ in 0..rng.random_range(2..6) {
            scrape_pods(&mut pods, sharded, &ids, owner).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(!sharded && old_restores >= 1, "seed {seed}: {log:?}");
    sim.clear_faults();
    for (id, execution) in running.drain(..) {
        sim.update_execution(&id, &execution, |e| {
            e.status = "Failed".into();
            e.last_execution_ms = Some(now_ms());
        });
    }
    write(&mut rng, true);
    pods[0].stop().await;
    (pods[0].truncated, pods[0].absorbed) = (0.0, 0.0);
    pods[0].exporter = start(sim.clone(), one).await;
    let truth = minus(sim.ground_truth(), &uncounted);
    settle(
        &sim,
        &mut pods,
        0,
        &truth,
        false,
        &ids,
        owner,
        &format!("the expected counts (seed {seed}, actions {log:?})"),
    )
    .await;
    let address = pods[0].address();
    hold_at(&address, &truth, &ids, &mut pods[0].seen, &sim, 2).await;
    pods[0].stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_random_reloads_restarts_and_faults_seed_1() {
    random_operations_keep_counts_monotonic_and_exact(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_random_reloads_restarts_and_faults_seed_2() {
    random_operations_keep_counts_monotonic_and_exact(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_random_reloads_restarts_and_faults_seed_3() {
    random_operations_keep_counts_monotonic_and_exact(3).await;
}

/// Case 13: an execution whose `TriggeredAlarms` lists the same alarm twice (outside the
/// service model, as a misbehaving endpoint sends it) is one execution that triggered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_listed_twice_in_one_execution_counts_once() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    sim.add_execution(
        id,
        finished("twice", "Failed", 120_000)
            .with_triggered_alarm("cpu-high", "ALARM")
            .with_alarm_listed_twice(),
    );
    sim.add_execution(
        id,
        finished("once", "Failed", 60_000).with_triggered_alarm("cpu-high", "ALARM"),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    let mut seen = Seen::default();
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    let alarm = [
        ("association_id", id.as_str()),
        ("alarm_name", "cpu-high"),
        ("state", "ALARM"),
    ];
    assert_eq!(m.value(names::TRIGGERED_ALARMS_TOTAL, &alarm), 2.0);
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;
}

/// A run longer than one poll may read (100 pages): the poll stops with `PageLimit`, the next
/// one goes on from the token where it stopped (no page read twice, no restart), and the counts
/// end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_the_page_limit_goes_on_at_the_next_poll() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    add_history(&sim, id, "p", 250, now_ms() - 50 * MINUTE, 10_000);
    // 2 executions a page: 125 pages, more than the 100 one poll reads.
    sim.set_page_size(Some(2));
    let mut config = richest(test_config(&ids));
    config.api_requests_per_second = 5_000.0;
    let exporter = Exporter::start(config, &sim).await;
    let mut seen = Seen::default();
    let m = converge(&exporter.address, &sim, &ids, &mut seen).await;
    assert_eq!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("association_id", id), ("code", "PageLimit")]
        ),
        1.0
    );
    let requests = execution_requests(&sim, id);
    let first_run = &runs(&requests)[0];
    assert_eq!(first_run.len(), 125, "one run of 125 pages over two polls");
    let mut tokens: Vec<&str> = first_run
        .iter()
        .filter_map(|r| r.next_token.as_deref())
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 124, "no page read twice");
    hold(&exporter.address, &sim, &ids, &mut seen, 2).await;
    exporter.stop().await;
}
