//! The exporter's `run()` against the simulated SSM endpoint, over real HTTP through the real
//! `aws-sdk-ssm` client: every exported counter is compared with the simulator's ground truth.

use ssm_association_exporter::names;
use std::time::Duration;

use crate::common::*;
use ssm_simulator::{Fault, FaultRule, SimExecution};

fn minutes_ago(m: i64) -> i64 {
    now_ms() - m * 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_executions_are_counted_once_when_they_finish() {
    let (sim, ids) = simulator_with(2).await;
    let (a, b) = (&ids[0], &ids[1]);
    sim.add_execution(
        a,
        SimExecution::new("e-a1", "Success", minutes_ago(50))
            .with_last_execution_ms(minutes_ago(49))
            .with_resource_count_by_status("{Success=3}"),
    );
    sim.add_execution(a, SimExecution::new("e-a2", "InProgress", minutes_ago(10)));
    sim.add_execution(a, SimExecution::new("e-a3", "Pending", minutes_ago(5)));
    sim.add_execution(
        b,
        SimExecution::new("e-b1", "Failed", minutes_ago(30))
            .with_last_execution_ms(minutes_ago(29))
            .with_resource_count_by_status("{Failed=2,Success=3}")
            .with_triggered_alarm("cpu-high", "ALARM"),
    );
    sim.add_execution(b, SimExecution::new("e-b2", "Associated", minutes_ago(3)));
    // Older than the look-back: never counted.
    sim.add_execution(
        b,
        SimExecution::new("e-b0", "Failed", minutes_ago(120))
            .with_last_execution_ms(minutes_ago(119)),
    );

    // The edits below (`touch`) are seen by a full listing: every listing is one here.
    let mut config = test_config(&ids);
    config.full_listing_interval = Duration::ZERO;
    let exporter = Exporter::start(richest(config), &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", a), ("status", "Success")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", b), ("status", "Failed")]
        ),
        1.0,
        "the execution before the look-back is not counted"
    );
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", a)]),
        2.0
    );
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", b)]),
        1.0
    );
    // Every final status starts at 0 so that the first failure is an increase.
    assert_eq!(
        m.get(
            names::EXECUTIONS_TOTAL,
            &[("association_id", a), ("status", "Failed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_STATUS,
            &[("association_id", b), ("status", "Failed")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_STATUS,
            &[("association_id", b), ("status", "Success")]
        ),
        0.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_RESOURCES,
            &[("association_id", b), ("status", "Failed")]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_RESOURCES,
            &[("association_id", b), ("status", "Success")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            names::TRIGGERED_ALARM,
            &[
                ("association_id", b),
                ("alarm_name", "cpu-high"),
                ("state", "ALARM")
            ]
        ),
        1.0
    );
    // The ground truth knows nothing of the look-back: take the old execution out of it.
    sim.update_execution(b, "e-b0", |e| e.visible = false);
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();

    // The in-progress ones finish; the newest final execution changes, and with it the
    // last-* gauges; the alarm series of the older one goes away.
    sim.update_execution(a, "e-a2", |e| {
        e.status = "Failed".into();
        e.last_execution_ms = Some(e.created_ms + 60_000);
    });
    sim.update_execution(a, "e-a3", |e| {
        e.status = "TimedOut".into();
    });
    sim.update_execution(b, "e-b2", |e| {
        e.status = "Success".into();
        e.last_execution_ms = Some(now_ms());
        e.resource_count_by_status = Some("{Success=5}".into());
    });
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the finished executions", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        m.value(names::EXECUTIONS_IN_PROGRESS, &[("association_id", a)]),
        0.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_STATUS,
            &[("association_id", a), ("status", "TimedOut")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_STATUS,
            &[("association_id", b), ("status", "Success")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_STATUS,
            &[("association_id", b), ("status", "Failed")]
        ),
        0.0
    );
    assert_eq!(
        m.get(
            names::TRIGGERED_ALARM,
            &[
                ("association_id", b),
                ("alarm_name", "cpu-high"),
                ("state", "ALARM")
            ]
        ),
        None
    );
    assert_eq!(
        m.value(
            names::TRIGGERED_ALARMS_TOTAL,
            &[
                ("association_id", b),
                ("alarm_name", "cpu-high"),
                ("state", "ALARM")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            names::LAST_EXECUTION_RESOURCES,
            &[("association_id", b), ("status", "Failed")]
        ),
        None
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_RESOURCES,
            &[("association_id", b), ("status", "Success")]
        ),
        5.0
    );
    let created_b2 = sim
        .executions(b)
        .iter()
        .find(|e| e.execution_id == "e-b2")
        .unwrap()
        .created_ms;
    assert_eq!(
        m.value(
            names::LAST_SUCCESS_TIMESTAMP_SECONDS,
            &[("association_id", b)]
        ),
        created_b2 as f64 / 1000.0
    );
    assert_eq!(
        m.value(
            names::LAST_EXECUTION_TIMESTAMP_SECONDS,
            &[("association_id", b)]
        ),
        created_b2 as f64 / 1000.0
    );
    // e-a3 had no LastExecutionDate: no duration, counted as such.
    assert_eq!(
        m.value(
            names::EXECUTIONS_WITHOUT_END_TIME_TOTAL,
            &[("association_id", a), ("status", "TimedOut")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            &format!("{}_count", names::EXECUTION_DURATION_SECONDS),
            &[("association_id", a), ("status", "Failed")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            &format!("{}_sum", names::EXECUTION_DURATION_SECONDS),
            &[("association_id", a), ("status", "Failed")]
        ),
        60.0
    );
    // Info from the listing.
    assert_eq!(
        m.value(
            names::INFO,
            &[
                ("association_id", a),
                ("account_id", "123456789012"),
                ("region", "us-east-1"),
                ("association_name", "assoc-0"),
                ("document_name", "AWS-RunPatchBaseline"),
                ("document_version", "$DEFAULT"),
                ("schedule_expression", "rate(30 minutes)"),
                ("targets", "")
            ]
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.value(names::SCHEDULE_INTERVAL_SECONDS, &[("association_id", a)]),
        1800.0
    );
    assert_eq!(m.value(names::POLL_SUCCESS, &[("association_id", a)]), 1.0);

    // Repeated polls of unchanged executions (the associations edited, nothing run) change
    // nothing.
    for _ in 0..3 {
        let requests_before = sim.request_count("DescribeAssociationExecutions");
        touch(&sim, a);
        touch(&sim, b);
        exporter
            .wait_for("more polls", |_| {
                if sim.request_count("DescribeAssociationExecutions") >= requests_before + 2 {
                    Ok(())
                } else {
                    Err("waiting".into())
                }
            })
            .await;
    }
    matches_ground_truth(&exporter.metrics().await, &sim.ground_truth(), &ids).unwrap();
    exporter.stop().await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_use_the_created_time_filter_with_milliseconds_and_max_results_50() {
    let (sim, ids) = simulator_with(1).await;
    let created = minutes_ago(20) / 1000 * 1000 + 123;
    sim.add_execution(
        &ids[0],
        SimExecution::new("e1", "Success", created).with_last_execution_ms(created + 5_000),
    );
    let mut config = test_config(&ids);
    config.late_visibility_window = Duration::from_secs(60);
    // The edit below (`touch`) is seen by a full listing: every listing is one here.
    config.full_listing_interval = Duration::ZERO;
    let exporter = Exporter::start(richest(config), &sim).await;
    exporter.wait_ready().await;
    touch(&sim, &ids[0]);
    exporter
        .wait_for("a second poll", |_| {
            if sim.request_count("DescribeAssociationExecutions") >= 2 {
                Ok(())
            } else {
                Err("waiting".into())
            }
        })
        .await;
    let requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == "DescribeAssociationExecutions")
        .collect();
    let first = &requests[0];
    assert_eq!(first.max_results, Some(50));
    assert_eq!(first.filters.len(), 1);
    let (key, value, kind) = &first.filters[0];
    assert_eq!(
        (key.as_str(), kind.as_str()),
        ("CreatedTime", "GREATER_THAN")
    );
    assert!(
        value.len() == 24 && value.ends_with('Z') && value.as_bytes()[19] == b'.',
        "filter value {value}"
    );
    // After a complete poll, the window starts one late-visibility window before the newest
    // CreatedTime seen, to the millisecond.
    let second = &requests[1].filters[0].1;
    assert_eq!(
        second,
        &ssm_association_exporter::ssm::format_filter_time(created - 60_000)
    );
    let m = exporter.metrics().await;
    assert_eq!(
        m.value(
            names::WATERMARK_TIMESTAMP_SECONDS,
            &[("association_id", &ids[0])]
        ),
        created as f64 / 1000.0
    );
    exporter.stop().await;
}

/// #20 case 5: a run that becomes visible after a newer one changes nothing in the listing
/// (its `LastExecutionDate` already shows the newer run). With the production sweep (1 h), it
/// is counted within `late_visibility_window` + one poll interval of the newer run's date, by
/// one `late` poll at the window's end, and only one. Times are seconds here (a 6 s window), so
/// the test waits the window instead of 10 minutes; the sweep is at its longest (7 d).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_visible_after_a_newer_one_is_counted_within_the_window_without_the_sweep() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    let now = sim.now_ms();
    sim.add_execution(
        id,
        SimExecution::new("new", "Success", now - 1_000).with_last_execution_ms(now),
    );
    // Older than the newest, and not visible yet.
    sim.add_execution(
        id,
        SimExecution::new("late", "Failed", now - 3_000)
            .with_last_execution_ms(now - 2_000)
            .invisible(),
    );
    let mut config = test_config(&ids);
    config.late_visibility_window = Duration::from_secs(6);
    // The sweep at its longest: its slot (once a period, at a phase of the association's own)
    // cannot fall within this test, so every poll here is the change feed's.
    config.full_sweep_interval = Duration::from_secs(7 * 24 * 3600);
    let window_end = std::time::Instant::now() + Duration::from_secs(6);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let late_polls = |m: &Metrics| m.value(names::POLLS_TOTAL, &[("reason", "late")]);
    let m = exporter
        .wait_for("a complete poll", |m| {
            if m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", id), ("status", "Success")],
            ) == 1.0
            {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", id), ("status", "Failed")]
        ),
        0.0
    );
    // It becomes visible within the window; nothing in the listing changes.
    sim.update_execution(id, "late", |e| e.visible = true);
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("the late execution", |m| {
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert!(
        std::time::Instant::now() >= window_end,
        "counted at the window's end, not before (no other poll had a reason)"
    );
    assert_eq!(late_polls(&m), 1.0, "one poll at the window's end");
    assert_eq!(m.value(names::POLLS_TOTAL, &[("reason", "sweep")]), 0.0);
    // And no more: the window has passed and a poll ran after it.
    let polls = sim.request_count("DescribeAssociationExecutions");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.request_count("DescribeAssociationExecutions"), polls);
    assert_eq!(late_polls(&exporter.metrics().await), 1.0);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_empty_pages_with_tokens_are_paged_through_and_counted_once() {
    let (sim, ids) = simulator_with(2).await;
    let statuses = [
        "Success",
        "Failed",
        "TimedOut",
        "Cancelled",
        "Skipped",
        "InProgress",
    ];
    for (n, id) in ids.iter().enumerate() {
        for i in 0..230 {
            let created = minutes_ago(55) + i * 1_000 + n as i64;
            let mut e = SimExecution::new(
                format!("x{n}-{i}"),
                statuses[(i as usize) % statuses.len()],
                created,
            );
            if i % 7 != 0 {
                e = e.with_last_execution_ms(created + 30_000);
            }
            if i % 11 == 0 {
                e = e.with_triggered_alarm("errors", if i % 2 == 0 { "ALARM" } else { "UNKNOWN" });
            }
            sim.add_execution(id, e);
        }
    }
    sim.set_page_size(Some(7));
    sim.set_empty_pages(3);
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let truth = sim.ground_truth();
    assert_eq!(truth.executions[&ids[0]].values().sum::<u64>(), 192);
    let m = exporter.metrics().await;
    matches_ground_truth(&m, &truth, &ids).unwrap();
    assert!(
        sim.requests().iter().any(|r| r.next_token.is_some()),
        "paging used NextToken"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_half_way_through_paging_loses_nothing_and_counts_nothing_twice() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    for i in 0..120 {
        let created = minutes_ago(50) + i * 10_000;
        sim.add_execution(
            id,
            SimExecution::new(
                format!("p{i}"),
                if i % 3 == 0 { "Failed" } else { "Success" },
                created,
            )
            .with_last_execution_ms(created + 1_000),
        );
    }
    sim.set_page_size(Some(20));
    // The first poll fails on its third page (after 40 executions were read and counted).
    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation("DescribeAssociationExecutions")
            .only_with_next_token()
            .skip(1)
            .times(1),
    );
    let exporter = Exporter::start(richest(test_config(&ids)), &sim).await;
    exporter.wait_ready().await;
    let truth = sim.ground_truth();
    let m = exporter
        .wait_for("recovery", |m| matches_ground_truth(m, &truth, &ids))
        .await;
    assert_eq!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("association_id", id), ("code", "InternalServerError")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "DescribeAssociationExecutions"),
                ("code", "InternalServerError")
            ]
        ),
        1.0
    );
    exporter
        .wait_for("a successful poll", |m| {
            if m.value(names::POLL_SUCCESS, &[("association_id", id)]) == 1.0 {
                Ok(())
            } else {
                Err("poll_success still 0".into())
            }
        })
        .await;
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_next_token_half_way_restarts_paging_without_double_counting() {
    let (sim, ids) = simulator_with(1).await;
    let id = &ids[0];
    for i in 0..60 {
        let created = minutes_ago(40) + i * 10_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("t{i}"), "Success", created)
                .with_last_execution_ms(created + 1_000),
        );
    }
    sim.set_page_size(Some(25));
    sim.push_fault(
        FaultRule::new(Fault::InvalidNextToken)
            .operation("DescribeAssociationExecutions")
            .only_with_next_token()
            .times(1),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    assert_eq!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "DescribeAssociationExecutions"),
                ("code", "InvalidNextToken")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(names::POLL_SUCCESS, &[("association_id", id)]),
        1.0,
        "the poll recovered within itself"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_counted_and_loses_nothing() {
    let (sim, ids) = simulator_with(2).await;
    for id in &ids {
        for i in 0..30 {
            let created = minutes_ago(30) + i * 1_000;
            sim.add_execution(
                id,
                SimExecution::new(format!("{id}-{i}"), "Success", created)
                    .with_last_execution_ms(created + 500),
            );
        }
    }
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("DescribeAssociationExecutions")
            .times(2),
    );
    let mut config = test_config(&ids);
    config.api_max_attempts = 3;
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    assert_eq!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "DescribeAssociationExecutions"),
                ("code", "ThrottlingException")
            ]
        ),
        2.0
    );
    for id in &ids {
        assert_eq!(
            m.value(names::POLL_SUCCESS, &[("association_id", id)]),
            1.0,
            "retries hid the throttling from the poll"
        );
    }
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_association_loses_its_series_and_the_others_go_on() {
    let (sim, ids) = simulator_with(2).await;
    let (gone, kept) = (&ids[0], &ids[1]);
    sim.add_execution(
        gone,
        SimExecution::new("g1", "Success", minutes_ago(5)).with_last_execution_ms(minutes_ago(4)),
    );
    sim.add_execution(
        kept,
        SimExecution::new("k1", "Success", minutes_ago(5)).with_last_execution_ms(minutes_ago(4)),
    );
    // A removal without a run is seen by a full listing: every listing is one here.
    let mut config = test_config(&ids);
    config.full_listing_interval = Duration::ZERO;
    let exporter = Exporter::start(richest(config), &sim).await;
    exporter.wait_ready().await;
    exporter
        .wait_for("both counted", |m| {
            let n = m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", gone), ("status", "Success")],
            );
            (n == 1.0).then_some(()).ok_or(format!("{n}"))
        })
        .await;
    sim.remove_association(gone);
    sim.add_execution(
        kept,
        SimExecution::new("k2", "Failed", minutes_ago(1)).with_last_execution_ms(now_ms()),
    );
    let m = exporter
        .wait_for("the deleted one's series gone, the other counted", |m| {
            let gone_series = m
                .series(names::EXECUTIONS_TOTAL, &[("association_id", gone)])
                .len();
            let counted = m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", kept), ("status", "Failed")],
            ) == 1.0;
            if gone_series == 0 && counted {
                Ok(())
            } else {
                Err(format!("gone series={gone_series} counted={counted}"))
            }
        })
        .await;
    assert!(m
        .series(names::INFO, &[("association_id", gone)])
        .is_empty());
    assert_eq!(m.value(names::STATIC_ASSOCIATIONS_NOT_FOUND, &[]), 1.0);
    assert_eq!(
        m.value(names::POLL_SUCCESS, &[("association_id", kept)]),
        1.0
    );
    // The exporter stays ready: AWS trouble is a metric, not a probe failure.
    assert_eq!(exporter.get("/readyz").await.status, 200);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_readiness_and_methods() {
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("r1", "Success", minutes_ago(5)).with_last_execution_ms(minutes_ago(4)),
    );
    // Hold the first poll so readiness can be seen before it.
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_millis(1500)))
            .operation("DescribeAssociationExecutions"),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    let ready = exporter.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("1 associations await their first poll")
            || ready
                .body
                .contains("1 accounts/regions await their first listing"),
        "{}",
        ready.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = exporter.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("1 associations await their first poll"),
        "{}",
        ready.body
    );
    assert_eq!(exporter.get("/healthz").await.status, 200);
    exporter.wait_ready().await;
    assert_eq!(exporter.get("/readyz").await.body, "ready\n");

    let landing = exporter.get("/").await;
    assert_eq!(landing.status, 200);
    assert!(landing
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(landing.body.contains("href=\"/metrics\"") && landing.body.contains(&ids[0]));
    let metrics = exporter.get("/metrics").await;
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(metrics
        .body
        .contains("ssm_association_exporter_build_info{"));
    assert!(metrics.body.contains("process_resident_memory_bytes"));
    assert_eq!(exporter.get("/nope").await.status, 404);
    let post = http_request(&exporter.address, "POST", "/metrics").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = http_request(&exporter.address, "HEAD", "/healthz").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_passes_promtool_check_metrics() {
    let (sim, ids) = simulator_with(3).await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("m1", "Failed", minutes_ago(5))
            .with_last_execution_ms(minutes_ago(4))
            .with_target(
                ssm_simulator::SimTarget::new("i-0123456789abcdef0", "Failed")
                    .with_detailed_status("Undeliverable"),
            )
            .with_triggered_alarm("alarm-1", "ALARM"),
    );
    sim.add_execution(&ids[0], SimExecution::new("m0", "Success", minutes_ago(8)));
    sim.add_execution(
        &ids[1],
        SimExecution::new("m2", "InProgress", minutes_ago(2)),
    );
    sim.add_execution(
        &ids[1],
        SimExecution::new("m3", "Success", minutes_ago(9)).with_last_execution_ms(minutes_ago(8)),
    );
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("DescribeAssociationExecutions")
            .association(ids[1].clone()),
    );
    // A third one denied, for the access-denied gauge (present only while denied).
    sim.add_execution(&ids[2], SimExecution::new("m4", "Success", minutes_ago(3)));
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .operation("DescribeAssociationExecutions")
            .association(ids[2].clone())
            .forever(),
    );
    let mut config = test_config(&ids);
    config.discovery = vec![ssm_association_exporter::config::Selector::default()];
    // Every documented metric: the optional per-target gauge too.
    config.target_detail.failing_targets_gauge = true;
    // And the events' metrics: a queue with a message (a receive that returns at once) and
    // one that does not exist (its errors).
    let (account, region) = (
        ssm_simulator::DEFAULT_ACCOUNT,
        ssm_simulator::DEFAULT_REGION,
    );
    let queue = sim.add_queue(account, region, "ssm-events");
    sim.inject_message(&queue, "not an event");
    let missing = ssm_simulator::queue_url(account, region, "no-such-queue");
    let queue_config = |url: &str| ssm_association_exporter::config::QueueConfig {
        url: url.to_string(),
        region: region.to_string(),
        account_id: account.to_string(),
        name: url.rsplit('/').next().unwrap().to_string(),
        role_arn: None,
        external_id: None,
    };
    config.events = Some(ssm_association_exporter::config::EventsConfig::with_queues(
        vec![queue_config(&queue), queue_config(&missing)],
    ));
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    // Targets are read after the counts, off the polls' path: readiness does not wait for
    // them; nor for the queues.
    exporter
        .wait_for("both queues tried and the failed run's targets read", |m| {
            let received = m.value(
                names::EVENT_QUEUE_LAST_RECEIVE_TIMESTAMP_SECONDS,
                &[("queue", &queue)],
            );
            let errors = m.series(names::EVENT_QUEUE_ERRORS_TOTAL, &[("queue", &missing)]);
            let read = m.series(names::TARGET_RESULTS_TOTAL, &[]);
            (received != Reading::Missing && !errors.is_empty() && !read.is_empty())
                .then_some(())
                .ok_or(format!(
                    "received {received}, {} error series, {} target series",
                    errors.len(),
                    read.len()
                ))
        })
        .await;
    let body = exporter.get("/metrics").await.body;
    // The README's metric table and a real scrape name the same metrics.
    let mut documented = documented_metrics();
    documented.sort();
    let mut exported: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("ssm_association"))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert_eq!(
        exported, documented,
        "README metric table vs. a real scrape"
    );
    let Some(promtool) = promtool() else { return };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool findings:\n{findings}"
    );
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let after_labels = line.rsplit_once('}').map_or(line, |(_, rest)| rest);
        assert_eq!(
            after_labels.split_whitespace().count(),
            if line.contains('}') { 1 } else { 2 },
            "a sample with a timestamp: {line}"
        );
    }
    exporter.stop().await;
}

/// promtool, required where `SSM_EXPORTER_REQUIRE_PROMTOOL` is set (the README's test command
/// and CI set it and install Debian's `prometheus` package).
fn promtool() -> Option<&'static str> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok();
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
        "promtool is required (apt-get install prometheus)"
    );
    eprintln!("promtool not found: skipping the lint (scripts/test installs it)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_requests() {
    let (sim, ids) = simulator_with(11).await;
    for id in &ids {
        sim.add_execution(
            id,
            SimExecution::new("r1", "Success", minutes_ago(5))
                .with_last_execution_ms(minutes_ago(4)),
        );
    }
    let mut config = test_config(&ids);
    config.api_requests_per_second = 10.0;
    config.poll_interval = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    // One listing page + 11 first polls = 12 requests at 10/s: at least 1.1 s. STS
    // GetCallerIdentity is not on the SSM budget.
    let elapsed = started.elapsed();
    assert_eq!(sim.request_count("ListAssociations"), 1);
    assert_eq!(sim.request_count("DescribeAssociationExecutions"), 11);
    assert!(
        elapsed >= Duration::from_millis(1_100),
        "12 requests at 10/s took only {elapsed:?}"
    );
    let m = exporter.metrics().await;
    assert!(m.value(names::RATE_LIMIT_WAIT_SECONDS_TOTAL, &[]) > 0.5);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_gzipped_when_the_scraper_accepts_it() {
    let (sim, ids) = simulator_with(3).await;
    for id in &ids {
        sim.add_execution(
            id,
            SimExecution::new("z1", "Success", minutes_ago(5))
                .with_last_execution_ms(minutes_ago(4)),
        );
    }
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let raw = http_exchange(
        &exporter.address,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let mut text = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&raw[split + 4..])
        .read_to_string(&mut text)
        .unwrap();
    let m = Metrics::parse(&text);
    matches_ground_truth(&m, &sim.ground_truth(), &ids).unwrap();
    assert!(raw.len() - split < text.len() / 4, "gzip shrinks the body");

    for refused in ["gzip;q=0", "identity", "br"] {
        let plain = http_request_with(
            &exporter.address,
            "GET",
            "/metrics",
            &[("Accept-Encoding", refused)],
        )
        .await;
        assert_eq!(plain.header("content-encoding"), None, "{refused}");
        assert!(plain.body.contains(names::EXECUTIONS_TOTAL));
    }
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_rendering_is_served_while_a_fresh_one_is_made() {
    let (sim, ids) = simulator_with(1).await;
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let failed = |m: &Metrics| {
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &ids[0]), ("status", "Failed")],
        )
    };
    let mut served_stale = false;
    for attempt in 0..5 {
        // A fresh rendering (the last one is over a second old)...
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let started = std::time::Instant::now();
        let before = exporter.metrics().await;
        // ...then an execution is counted by the next poll...
        sim.add_execution(
            &ids[0],
            SimExecution::new(format!("f{attempt}"), "Failed", minutes_ago(1))
                .with_last_execution_ms(now_ms()),
        );
        let polls = sim.request_count("DescribeAssociationExecutions");
        while sim.request_count("DescribeAssociationExecutions") < polls + 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // ...and a scrape under a second after the rendering still gets that rendering.
        let during = exporter.metrics().await;
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(
                failed(&during),
                failed(&before),
                "attempt {attempt}: served the recent rendering"
            );
            served_stale = true;
            break;
        }
    }
    assert!(
        served_stale,
        "the machine was too slow to observe it in five attempts"
    );
    // The rendering made meanwhile shows the new count.
    let counted = sim.ground_truth().executions[&ids[0]]["Failed"] as f64;
    exporter
        .wait_for("the fresh rendering", |m| {
            if failed(m) == counted {
                Ok(())
            } else {
                Err(format!("{}", failed(m)))
            }
        })
        .await;
    exporter.stop().await;
}
