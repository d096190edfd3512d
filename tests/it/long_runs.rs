//! #21: a long run costs a few polls, not one per listing. An execution in progress is re-polled
//! on a schedule that grows with its age (`pending_recheck_max_interval` at most); its end is
//! counted at the next listing when the listing shows it (its `Overview` or `LastExecutionDate`
//! moves), and within `pending_recheck_max_interval` when it does not. Everything here runs
//! through the real client against the simulator, with the production sweep (1 h).
//!
//! Waits are counted in listings (`ListAssociations` requests), not in wall-clock time: a slow
//! machine lists less often, which only makes the upper bounds easier to meet.

use std::time::Duration;

use ssm_association_exporter::names;
use ssm_simulator::{LastExecutionDateMode, SimExecution, Simulator};

use crate::common::*;

const MINUTE: i64 = 60_000;

/// `DescribeAssociationExecutions` requests made for `id` so far.
fn polls_of(sim: &Simulator, id: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| {
            r.operation == "DescribeAssociationExecutions"
                && r.association_id.as_deref() == Some(id)
        })
        .count()
}

fn listings(sim: &Simulator) -> u64 {
    sim.request_count("ListAssociations")
}

/// Waits until `n` more listings have been made.
async fn wait_listings(sim: &Simulator, n: u64) {
    let target = listings(sim) + n;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while listings(sim) < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} listings did not come"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reason(m: &Metrics, reason: &str) -> f64 {
    m.value(names::POLLS_TOTAL, &[("reason", reason)]).number()
}

fn counted(m: &Metrics, id: &str, status: &str) -> Reading {
    m.value(
        names::EXECUTIONS_TOTAL,
        &[("association_id", id), ("status", status)],
    )
}

/// An association whose run has been in progress for an hour, and its quiet twin: over 15
/// listings at a 300 ms interval, neither is polled (the old rule polled the first at every
/// listing). When the run ends, the listing shows it (`Overview` in both modes, the date too
/// when it moves at the end): counted by a `changed` poll within a listing or two, and the
/// in-progress gauge, right all along, drops to 0.
async fn a_long_run_costs_no_poll_per_listing_and_its_end_is_counted_at_once(
    mode: LastExecutionDateMode,
) {
    let (sim, ids) = simulator_with(2).await;
    sim.set_last_execution_date_mode(mode);
    let (long, quiet) = (&ids[0], &ids[1]);
    let now = sim.now_ms();
    for id in [long, quiet] {
        sim.add_execution(
            id,
            SimExecution::new("before", "Success", now - 120 * MINUTE)
                .with_last_execution_ms(now - 119 * MINUTE),
        );
    }
    sim.add_execution(
        long,
        SimExecution::new("run", "InProgress", now - 60 * MINUTE),
    );
    let mut config = test_config(&ids);
    config.initial_lookback = Duration::from_secs(3 * 3600);
    // The sweep at its longest: a sweep slot of the quiet twin (once a period, at a phase of
    // its own) cannot fall within the test, so every poll counted here is the change feed's.
    config.full_sweep_interval = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(
        config.pending_recheck_max_interval,
        Duration::from_secs(3600)
    );
    if mode == LastExecutionDateMode::Start {
        // Where AWS dates a run by its start, its end moves only the `Overview`, which a delta
        // listing does not return: a full listing shows it. Every listing is full here, so that
        // the `changed` poll at the next listing is what is measured.
        config.full_listing_interval = Duration::ZERO;
    }
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter
        .wait_for("the first polls", |m| {
            for id in [long, quiet] {
                if counted(m, id, "Success") != 1.0 {
                    return Err(format!("{id} not polled yet"));
                }
            }
            Ok(())
        })
        .await;
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", long)]),
        1.0
    );
    let (long_polls, quiet_polls) = (polls_of(&sim, long), polls_of(&sim, quiet));

    wait_listings(&sim, 15).await;
    let m = exporter.metrics().await;
    assert_eq!(
        polls_of(&sim, long),
        long_polls,
        "a run in progress for an hour is not re-polled at every listing"
    );
    assert_eq!(polls_of(&sim, quiet), quiet_polls);
    assert_eq!(reason(&m, "pending"), 0.0);
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", long)]),
        1.0
    );

    let changed = reason(&m, "changed");
    let at_end = listings(&sim);
    let end = sim.now_ms();
    sim.update_execution(long, "run", |e| {
        e.status = "Success".into();
        e.last_execution_ms = Some(end);
    });
    let m = exporter
        .wait_for("the end of the run", |m| {
            if counted(m, long, "Success") == 2.0 {
                Ok(())
            } else {
                Err("not counted yet".into())
            }
        })
        .await;
    assert!(
        listings(&sim) <= at_end + 3,
        "counted at the listing after its end: {} listings",
        listings(&sim) - at_end
    );
    assert_eq!(
        reason(&m, "changed"),
        changed + 1.0,
        "by the listing's change"
    );
    assert_eq!(reason(&m, "pending"), 0.0);
    assert_eq!(reason(&m, "sweep"), 0.0);
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", long)]),
        0.0
    );
    assert_eq!(polls_of(&sim, quiet), quiet_polls);
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    exporter.stop().await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_costs_no_poll_per_listing_and_its_end_is_counted_at_once_date_at_end() {
    a_long_run_costs_no_poll_per_listing_and_its_end_is_counted_at_once(LastExecutionDateMode::End)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_costs_no_poll_per_listing_and_its_end_is_counted_at_once_date_at_start() {
    a_long_run_costs_no_poll_per_listing_and_its_end_is_counted_at_once(
        LastExecutionDateMode::Start,
    )
    .await;
}

/// An older run that ends while a newer one is the listing's changes nothing there: the
/// `Overview` follows the newer run; the date is the newer run's start (date at start), or the
/// newer run's end when the older one has no end time (date at end). It is counted by a
/// `pending` re-poll, within `pending_recheck_max_interval` (2 s here, named: the production
/// 1 h would wait an hour) plus a listing, never by `changed` nor by the sweep.
async fn an_end_the_listing_does_not_show_is_counted_within_pending_recheck_max_interval(
    mode: LastExecutionDateMode,
) {
    let (sim, ids) = simulator_with(1).await;
    sim.set_last_execution_date_mode(mode);
    let id = &ids[0];
    let now = sim.now_ms();
    sim.add_execution(
        id,
        SimExecution::new("old", "InProgress", now - 60 * MINUTE),
    );
    sim.add_execution(
        id,
        SimExecution::new("new", "Success", now - 30 * MINUTE)
            .with_last_execution_ms(now - 29 * MINUTE),
    );
    let mut config = test_config(&ids);
    config.initial_lookback = Duration::from_secs(3 * 3600);
    // The older run stays within the window the polls page through (an execution older than
    // the window behind the newest run is re-checked by ID instead, at the tracker's own
    // spacing of up to 15 min, which a 2 s cap cannot show).
    config.late_visibility_window = Duration::from_secs(2 * 3600);
    config.pending_recheck_max_interval = Duration::from_secs(2);
    let cap_ms = config.pending_recheck_max_interval.as_millis() as u64;
    let interval_ms = config.poll_interval.as_millis() as u64;
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    exporter
        .wait_for("the first poll", |m| {
            if counted(m, id, "Success") == 1.0 {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    // Two polls apart, to start from the re-poll schedule rather than the first poll.
    let polls = polls_of(&sim, id);
    exporter
        .wait_for("a pending re-poll", |_| {
            if polls_of(&sim, id) > polls {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    let before = exporter.metrics().await;
    let at_end = listings(&sim);
    sim.update_execution(id, "old", |e| {
        e.status = "Failed".into();
        // Date at end: no end time, so the date stays the newer run's end.
        e.last_execution_ms = (mode == LastExecutionDateMode::Start).then(|| sim.now_ms());
    });
    let m = exporter
        .wait_for("the end of the older run", |m| {
            if counted(m, id, "Failed") == 1.0 {
                Ok(())
            } else {
                Err("not counted yet".into())
            }
        })
        .await;
    let waited = listings(&sim) - at_end;
    assert!(
        waited <= cap_ms.div_ceil(interval_ms) + 2,
        "counted within pending_recheck_max_interval and a listing: {waited} listings"
    );
    assert_eq!(
        reason(&m, "changed"),
        reason(&before, "changed"),
        "the listing did not show the end"
    );
    assert!(reason(&m, "pending") > reason(&before, "pending"));
    assert_eq!(reason(&m, "sweep"), 0.0);
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", id)]),
        0.0
    );
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    exporter.stop().await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_the_listing_does_not_show_is_counted_within_pending_recheck_max_interval_date_at_start(
) {
    an_end_the_listing_does_not_show_is_counted_within_pending_recheck_max_interval(
        LastExecutionDateMode::Start,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_the_listing_does_not_show_is_counted_within_pending_recheck_max_interval_date_at_end(
) {
    an_end_the_listing_does_not_show_is_counted_within_pending_recheck_max_interval(
        LastExecutionDateMode::End,
    )
    .await;
}
