//! The request budget's priorities (issue 21) through `run()` against the simulator: target
//! and tag reads, slow ones (500 ms each), go several at once on the rate slots the counts
//! leave, so N reads take about N × the budget's spacing, not N × their latency; and the
//! counts they wait for go first.

use std::time::Duration;

use ssm_association_exporter::config::{Config, Selector};
use ssm_association_exporter::names;
use ssm_simulator::{Fault, FaultRule, SimExecution, SimTarget, Simulator};
use tokio::time::Instant;

use crate::common::*;

const EXECUTIONS: &str = "DescribeAssociationExecutions";
const TARGETS: &str = "DescribeAssociationExecutionTargets";
const TAGS: &str = "ListTagsForResource";
/// How long the simulator takes to answer each target or tag read.
const READ_LATENCY: Duration = Duration::from_millis(500);
/// 50 ms apart.
const RATE: f64 = 20.0;
/// Detail requests in flight at most: the cap minus one (11), more than the 10 a 500 ms read
/// needs at 20 requests/s.
const MAX_CONCURRENT: usize = 12;

fn budget(mut config: Config) -> Config {
    config.api_requests_per_second = RATE;
    config.max_concurrent_requests = MAX_CONCURRENT;
    config
}

/// What the simulator saw of one operation's reads.
struct Reads {
    /// The most it had unanswered at once (sampled every 20 ms).
    most_at_once: usize,
    /// From the first read's arrival (as sampled) to the `n`-th read's answer.
    took: Duration,
}

/// Watches the simulator until `n` requests of `operation` have been answered.
async fn watch_reads(sim: &Simulator, operation: &str, n: usize) -> Reads {
    let start = Instant::now();
    let mut first = None;
    let mut most_at_once = 0;
    loop {
        let requests = sim.requests();
        let reads: Vec<_> = requests
            .iter()
            .filter(|r| r.operation == operation)
            .collect();
        if !reads.is_empty() {
            first.get_or_insert_with(Instant::now);
        }
        let unanswered = reads.iter().filter(|r| r.status == 0).count();
        most_at_once = most_at_once.max(unanswered);
        if reads.len() - unanswered >= n {
            return Reads {
                most_at_once,
                took: first.map_or(Duration::ZERO, |f| f.elapsed()),
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {n} {operation} answered",
            reads.len() - unanswered
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Several reads at once, never more than the budget lets detail requests be in flight, and
/// all of them in well under the sum of their latencies (about N × 50 ms + 500 ms here; one
/// at a time took the sum).
fn assert_parallel(reads: &Reads, n: usize) {
    let sum = READ_LATENCY * n as u32;
    println!(
        "{n} reads of {READ_LATENCY:?} at {RATE}/s: {:?} (their sum: {sum:?}), {} at once at most",
        reads.took, reads.most_at_once
    );
    assert!(
        reads.most_at_once >= 3,
        "{} read at once at most",
        reads.most_at_once
    );
    assert!(
        reads.most_at_once < MAX_CONCURRENT,
        "{} reads at once: the last concurrency slot is the counts'",
        reads.most_at_once
    );
    assert!(
        reads.took < sum / 2,
        "{n} reads took {:?}, their latencies' sum is {sum:?}",
        reads.took
    );
}

/// A first start over 30 associations, each with a failed run of history whose targets are
/// read once (one `DescribeAssociationExecutionTargets` each, 500 ms): the reads go several at
/// once, and every first poll (a count) was sent before any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_target_reads_go_several_at_once_after_the_counts() {
    let n = 30;
    let (sim, ids) = simulator_with(n).await;
    for (i, id) in ids.iter().enumerate() {
        let created = sim.now_ms() - 10 * 60_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("failed-{i}"), "Failed", created)
                .with_last_execution_ms(created + 30_000)
                .with_targets([
                    SimTarget::new(format!("i-{i:017x}"), "Failed"),
                    SimTarget::new(format!("i-{:017x}", i + 1_000), "Success"),
                ]),
        );
    }
    sim.push_fault(
        FaultRule::new(Fault::Delay(READ_LATENCY))
            .operation(TARGETS)
            .forever(),
    );
    let exporter = Exporter::start(budget(test_config(&ids)), &sim).await;
    let reads = watch_reads(&sim, TARGETS, n as usize).await;
    let requests = sim.requests();
    let last_count = requests
        .iter()
        .rposition(|r| r.operation == EXECUTIONS)
        .expect("polled");
    let reads_before = requests[..last_count]
        .iter()
        .filter(|r| r.operation == TARGETS)
        .count();
    assert_eq!(
        reads_before, 0,
        "target reads went while first polls were waiting"
    );
    assert_eq!(sim.request_count(EXECUTIONS), u64::from(n), "one page each");
    assert_parallel(&reads, n as usize);
    let truth = sim.ground_truth();
    exporter
        .wait_for("counts and targets", |m| {
            matches_ground_truth(m, &truth, &ids)?;
            let read: f64 = m
                .series(names::TARGET_RESULTS_TOTAL, &[])
                .iter()
                .map(|(_, v)| v)
                .sum();
            (read == f64::from(n))
                .then_some(())
                .ok_or(format!("{read} targets"))
        })
        .await;
    exporter.stop().await;
}

/// A tag selector over 40 associations, each tag read taking 500 ms: the reads go several at
/// once, and every tagged association is watched and exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tag_reads_go_several_at_once() {
    let n = 40;
    let (sim, ids) = simulator_with(n).await;
    for (i, id) in ids.iter().enumerate() {
        sim.set_tags_in(
            ssm_simulator::DEFAULT_ACCOUNT,
            ssm_simulator::DEFAULT_REGION,
            id,
            [("team", "platform")],
        );
        let created = sim.now_ms() - 120_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("run-{i}"), "Success", created)
                .with_last_execution_ms(created + 20_000),
        );
    }
    sim.push_fault(
        FaultRule::new(Fault::Delay(READ_LATENCY))
            .operation(TAGS)
            .forever(),
    );
    let mut config = budget(test_config(&[]));
    config.discovery = vec![Selector {
        tags: [("team".to_string(), "platform".to_string())].into(),
        ..Selector::default()
    }];
    let exporter = Exporter::start(config, &sim).await;
    let reads = watch_reads(&sim, TAGS, n as usize).await;
    assert_parallel(&reads, n as usize);
    let truth = sim.ground_truth();
    exporter
        .wait_for("every tagged association watched and exact", |m| {
            let watched = m.value(names::ASSOCIATIONS_WATCHED, &[]);
            (watched == f64::from(n))
                .then_some(())
                .ok_or(format!("{watched} watched"))?;
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(sim.request_count(TAGS), u64::from(n), "each read once");
    exporter.stop().await;
}

/// Re-polls of runs in progress (re-checks) keep the budget busy: 60 associations with a run
/// in progress each, re-polled every 2 s (`pending_recheck_max_interval: 2s`: it only makes
/// the load, 30 re-polls a second against a budget of 10), the sweep at its production
/// default. A run that ends on a 61st association moves the listing (a due poll): its poll
/// goes before the re-polls waiting then, not after them (there are dozens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_poll_goes_before_the_waiting_rechecks() {
    let n = 61;
    let (sim, ids) = simulator_with(n).await;
    let (busy, quiet) = ids.split_at(60);
    let quiet = &quiet[0];
    for (i, id) in busy.iter().enumerate() {
        // A run that ended (the listing shows it, so the first poll reads) and one going on.
        let created = sim.now_ms() - 120_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("done-{i}"), "Success", created)
                .with_last_execution_ms(created + 20_000),
        );
        sim.add_execution(
            id,
            SimExecution::new(format!("long-{i}"), "InProgress", created + 60_000),
        );
    }
    let created = sim.now_ms() - 30 * 60_000;
    sim.add_execution(
        quiet,
        SimExecution::new("old", "Success", created).with_last_execution_ms(created + 20_000),
    );
    let mut config = test_config(&ids);
    config.api_requests_per_second = 10.0;
    config.pending_recheck_max_interval = Duration::from_secs(2);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    exporter
        .wait_for("the re-polls to queue up", |m| {
            let pending = m
                .value(names::POLLS_TOTAL, &[("reason", "pending")])
                .number();
            (pending >= 60.0)
                .then_some(())
                .ok_or(format!("{pending} pending re-polls"))
        })
        .await;
    let polls_of_quiet = |sim: &Simulator| {
        sim.requests()
            .iter()
            .filter(|r| r.operation == EXECUTIONS && r.association_id.as_deref() == Some(quiet))
            .count()
    };
    let before = polls_of_quiet(&sim);
    let mark = sim.requests().len();
    let now = sim.now_ms();
    sim.add_execution(
        quiet,
        SimExecution::new("new", "Success", now - 5_000).with_last_execution_ms(now),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while polls_of_quiet(&sim) == before {
        assert!(Instant::now() < deadline, "the due poll never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = sim.requests();
    let due = mark
        + requests[mark..]
            .iter()
            .position(|r| r.operation == EXECUTIONS && r.association_id.as_deref() == Some(quiet))
            .unwrap();
    let rechecks_before = requests[mark..due]
        .iter()
        .filter(|r| r.operation == EXECUTIONS)
        .count();
    println!("the due poll went after {rechecks_before} re-poll requests");
    assert!(
        rechecks_before <= 8,
        "the due poll waited for {rechecks_before} re-poll requests"
    );
    exporter.stop().await;
}
