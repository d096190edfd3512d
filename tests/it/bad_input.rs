//! Bad input from the API and the environment, as listed in the README's "Bad input" table:
//! executions missing fields, unknown statuses, malformed `ResourceCountByStatus`, missing
//! `LastExecutionDate`, unknown error codes, and a state file that cannot be written.

use ssm_association_exporter::names;
use std::time::Duration;

use crate::common::*;
use ssm_simulator::{Fault, FaultRule, SimExecution};

fn minutes_ago(m: i64) -> i64 {
    now_ms() - m * 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_executions_never_fail_a_poll_and_are_counted_as_the_api_allows() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    let t = minutes_ago(20);
    sim.add_execution(
        id,
        SimExecution::new("ok", "Success", t).with_last_execution_ms(t + 1_000),
    );
    sim.add_execution(
        id,
        SimExecution::new("no-id", "Failed", t + 1).without_field("ExecutionId"),
    );
    sim.add_execution(
        id,
        SimExecution::new("no-created", "Failed", t + 2).without_field("CreatedTime"),
    );
    sim.add_execution(
        id,
        SimExecution::new("no-status", "Failed", t + 3).without_field("Status"),
    );
    sim.add_execution(
        id,
        SimExecution::new("new-status", "PartiallySucceeded", t + 4),
    );
    sim.add_execution(id, SimExecution::new("lower", "success", t + 5));
    sim.add_execution(id, SimExecution::new("no-end", "TimedOut", t + 6));
    sim.add_execution(
        id,
        SimExecution::new("end-before-start", "Cancelled", t + 7).with_last_execution_ms(t),
    );
    sim.add_execution(
        id,
        SimExecution::new("garbled", "Failed", t + 8)
            .with_last_execution_ms(t + 9_000)
            .with_resource_count_by_status("{Failed=two,=3,Success=4,Weird"),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    assert_eq!(m.value(names::POLL_SUCCESS, &[("association_id", id)]), 1.0);
    // Missing Status, an unknown status and a wrongly-cased one are not final: in progress.
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", id)]),
        3.0
    );
    // No end time, or an end before the start: counted, but no duration.
    assert_eq!(
        m.value(
            names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
            &[("association_id", id), ("status", "TimedOut")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
            &[("association_id", id), ("status", "Cancelled")]
        ),
        1.0
    );
    // The garbled resource counts keep what parses.
    let resources = m.series(names::LAST_EXECUTION_RESOURCES, &[("association_id", id)]);
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert_eq!(resources[0].0["status"], "Success");
    assert_eq!(resources[0].1, 4.0);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_error_codes_are_counted_by_code() {
    let (sim, ids) = simulator_with(1).await;
    // A run within the look-back: the change feed polls it (and retries the failed polls).
    sim.add_execution(
        &ids[0],
        SimExecution::new("x", "Success", minutes_ago(3)).with_last_execution_ms(minutes_ago(2)),
    );
    sim.push_fault(FaultRule::new(Fault::AccessDenied).operation("DescribeAssociationExecutions"));
    sim.push_fault(FaultRule::new(Fault::InternalError).operation("DescribeAssociationExecutions"));
    let exporter = Exporter::start(richest(test_config(&ids)), &sim).await;
    let m = exporter
        .wait_for("two failed polls and a good one", |m| {
            let errors = m.series(names::POLL_ERRORS_TOTAL, &[("association_id", &ids[0])]);
            let ok = m.value(names::POLL_SUCCESS, &[("association_id", &ids[0])]) == 1.0;
            if errors.len() == 2 && ok {
                Ok(())
            } else {
                Err(format!("{errors:?}"))
            }
        })
        .await;
    for code in ["AccessDeniedException", "InternalServerError"] {
        assert_eq!(
            m.value(
                names::API_REQUESTS_TOTAL,
                &[
                    ("operation", "DescribeAssociationExecutions"),
                    ("code", code)
                ]
            ),
            1.0,
            "{code}"
        );
    }
    exporter.stop().await;
}

/// A state file that cannot be written: the failure is in the metrics, and the counters on
/// /metrics stay at what the file holds (nothing yet), because publishing unsaved numbers would
/// let a crash make them go down. Once the disk is writable again they catch up, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_that_cannot_be_written_holds_the_counters_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("x", "Success", minutes_ago(3)).with_last_execution_ms(minutes_ago(2)),
    );
    let missing = dir.path().join("no-such-dir");
    let mut config = test_config(&ids);
    config.state_file = Some(missing.join("state.json"));
    config.state_save_interval = Duration::from_millis(100);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter
        .wait_for("a failing save", |m| {
            if m.value(names::STATE_SAVE_ERRORS_TOTAL, &[]) >= 2.0 {
                Ok(())
            } else {
                Err("no save error yet".into())
            }
        })
        .await;
    assert_eq!(m.value(names::STATE_SAVE_FAILING, &[]), 1.0);
    assert_eq!(m.value(names::LAST_STATE_SAVE_TIMESTAMP_SECONDS, &[]), 0.0);
    assert!(
        !m.samples
            .keys()
            .any(|k| k.starts_with(names::EXECUTIONS_TOTAL)),
        "unsaved counts must not be published"
    );
    assert!(
        !std::fs::read_dir(dir.path())
            .unwrap()
            .any(|e| e.unwrap().file_name() != "no-such-dir"),
        "no temporary file left behind"
    );
    // The disk comes back: the next save publishes exactly the truth.
    std::fs::create_dir(&missing).unwrap();
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("counts after the disk came back", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(m.value(names::STATE_SAVE_FAILING, &[]), 0.0);
    exporter.stop().await;
}
