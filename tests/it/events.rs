//! State Manager events through SQS (issue 22): the real `run()` reads the simulator's queue
//! with `aws-sdk-sqs` (endpoint override, AWS-shaped queue URLs) and polls what events name.
//! Events change *when* an association is polled, never *what* is counted: every test checks
//! the counts against the simulator's ground truth.
//!
//! The tests that prove an event triggers a poll set `poll_interval` to 30 days: after the
//! first listing the next one comes at a random phase of the interval, so in a test of seconds
//! only an event can explain a poll (the `ListAssociations` count is checked as well).

use std::time::Duration;

use ssm_association_exporter::config::{Config, EventsConfig, QueueConfig};
use ssm_association_exporter::names;
use ssm_simulator::{
    EventRoute, Fault, FaultRule, QueueFaults, QueueOutage, SimExecution, SimTarget, Simulator,
    DEFAULT_ACCOUNT, DEFAULT_REGION,
};

use crate::common::*;

/// Longer than any test: only the first listing happens.
const NO_LISTING: Duration = Duration::from_secs(30 * 24 * 3600);

/// A queue in the default account and region receiving the default scope's events.
fn add_queue(sim: &Simulator, name: &str) -> String {
    let url = sim.add_queue(DEFAULT_ACCOUNT, DEFAULT_REGION, name);
    sim.route_events(
        EventRoute::to(url.clone())
            .account(DEFAULT_ACCOUNT)
            .region(DEFAULT_REGION),
    );
    url
}

/// `test_config` reading `url`, with `poll_interval` as given.
fn events_config(ids: &[String], url: &str, poll_interval: Duration) -> Config {
    let mut config = test_config(ids);
    config.poll_interval = poll_interval;
    let name = url.rsplit('/').next().unwrap().to_string();
    config.events = Some(EventsConfig {
        queues: vec![QueueConfig {
            url: url.to_string(),
            region: DEFAULT_REGION.to_string(),
            account_id: DEFAULT_ACCOUNT.to_string(),
            name,
            role_arn: None,
            external_id: None,
        }],
        ..EventsConfig::with_queues(Vec::new())
    });
    config
}

/// `n` associations and the default scope's queue `ssm-events`, read by a started and ready
/// exporter with `poll_interval` as given.
async fn started(n: u32, poll_interval: Duration) -> (Simulator, Vec<String>, String, Exporter) {
    let (sim, ids) = simulator_with(n).await;
    let url = add_queue(&sim, "ssm-events");
    let exporter = Exporter::start(events_config(&ids, &url, poll_interval), &sim).await;
    exporter.wait_ready().await;
    (sim, ids, url, exporter)
}

fn received(metrics: &Metrics, detail_type: &str, outcome: &str) -> Reading {
    metrics.value(
        names::EVENTS_RECEIVED_TOTAL,
        &[("detail_type", detail_type), ("outcome", outcome)],
    )
}

/// Exact against the ground truth; an over-count at any scrape fails at once (a count is
/// never taken back, so one scrape above the truth is already wrong).
fn exact_never_over(metrics: &Metrics, sim: &Simulator, ids: &[String]) -> Result<(), String> {
    let truth = sim.ground_truth();
    for id in ids {
        for (status, n) in truth.executions.get(id).cloned().unwrap_or_default() {
            let got = metrics.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", id), ("status", &status)],
            );
            assert!(
                !(got > n as f64),
                "{id} {status}: exported {got}, more than the truth {n}"
            );
        }
    }
    matches_ground_truth(metrics, &truth, ids)
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run that starts and ends after the first listing is counted by the polls its events
/// trigger: no listing happens (30-day interval), every poll after the first is `event`. Its
/// start (progress) is polled once `events.progress_poll_delay` (2 s here) has passed, not
/// before; its end at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_counts_an_execution_end_without_waiting_for_a_listing() {
    let (sim, ids) = simulator_with(2).await;
    let url = add_queue(&sim, "ssm-events");
    let mut config = events_config(&ids, &url, NO_LISTING);
    let delay = Duration::from_secs(2);
    config.events.as_mut().unwrap().progress_poll_delay = delay;
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let listings = sim.request_count("ListAssociations");
    let polls = sim.request_count("DescribeAssociationExecutions");
    let before = exporter.metrics().await;
    let event_polls = before
        .value(names::POLLS_TOTAL, &[("reason", "event")])
        .number();
    assert_eq!(event_polls, 0.0, "no event yet");

    let started = tokio::time::Instant::now();
    sim.add_execution(
        &ids[0],
        SimExecution::new("run-1", "InProgress", now_ms() - 1_000),
    );
    wait_until("the start's poll", || {
        sim.request_count("DescribeAssociationExecutions") > polls
    })
    .await;
    assert!(
        started.elapsed() >= delay,
        "the start's poll waited for the progress delay: {:?}",
        started.elapsed()
    );
    exporter
        .wait_for("the run in progress", |m| {
            match m.value(
                names::EXECUTIONS_IN_PROGRESS,
                &[("association_id", &ids[0])],
            ) {
                v if v == 1.0 => Ok(()),
                v => Err(format!("in progress {v}")),
            }
        })
        .await;
    sim.update_execution(&ids[0], "run-1", |e| {
        e.status = "Success".to_string();
        e.last_execution_ms = Some(now_ms());
    });
    let metrics = exporter
        .wait_for("the end counted", |m| exact_never_over(m, &sim, &ids))
        .await;
    assert_eq!(
        metrics.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &ids[0]), ("status", "Success")]
        ),
        1.0
    );
    assert_eq!(
        sim.request_count("ListAssociations"),
        listings,
        "no listing: the events alone explain the polls"
    );
    assert!(metrics.value(names::POLLS_TOTAL, &[("reason", "event")]) >= 2.0);
    assert!(received(&metrics, "association", "polled") >= 2.0);
    assert_eq!(
        metrics.value(&format!("{}_count", names::EVENT_TO_COUNT_SECONDS), &[]),
        1.0,
        "event-to-count latency observed for the end, not for the start's waiting poll"
    );
    assert!(
        metrics.value(
            names::EVENT_QUEUE_LAST_RECEIVE_TIMESTAMP_SECONDS,
            &[("queue", &url)]
        ) > 0.0
    );
    // Handled messages are deleted.
    wait_until("the queue emptied", || sim.queue_messages(&url).is_empty()).await;
    // The status page shows the queue and the association's last event.
    let page: serde_json::Value =
        serde_json::from_str(&exporter.get("/api/v1/associations").await.body).unwrap();
    assert_eq!(page["events"]["enabled"], true);
    assert_eq!(page["events"]["queues"][0]["url"], url.as_str());
    let row = page["associations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(row["last_event"]["outcome"], "polled");
    assert_eq!(row["last_event"]["detail_type"], "association");
    let html = exporter.get("/").await.body;
    assert!(html.contains("id=\"events\""), "{html}");
    exporter.stop().await;
}

/// Duplicated, delayed, out-of-order and forged events change only when associations are
/// polled: the counts stay exact at every scrape. A lost event is made up by the next poll of
/// its association (here the next event's): nothing is counted from an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_delayed_reordered_forged_and_lost_events_leave_counts_exact() {
    let (sim, ids) = simulator_with(3).await;
    let url = add_queue(&sim, "ssm-events");
    sim.set_queue_faults(
        &url,
        QueueFaults::default()
            .duplicate(0.7)
            .delay(Duration::from_millis(300))
            .reorder()
            .seed(22),
    );
    let exporter = Exporter::start(events_config(&ids, &url, NO_LISTING), &sim).await;
    exporter.wait_ready().await;
    let listings = sim.request_count("ListAssociations");
    let statuses = ["Success", "Failed", "TimedOut"];
    for round in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            let run = format!("run-{round}-{i}");
            sim.add_execution(id, SimExecution::new(&run, "InProgress", now_ms() - 500));
            sim.update_execution(id, &run, |e| {
                e.status = statuses[(round + i) % 3].to_string();
                e.last_execution_ms = Some(now_ms());
            });
        }
        exporter
            .wait_for("the round counted", |m| exact_never_over(m, &sim, &ids))
            .await;
    }
    let stats = sim.queue_stats(&url);
    assert!(stats.duplicated > 0, "duplicates were sent: {stats:?}");
    // Every copy handled (a late duplicate would poll in the parts below).
    wait_until("the queue drained", || sim.queue_messages(&url).is_empty()).await;

    // Forged: an event of the third association for a run that never happened.
    let polled = received(&exporter.metrics().await, "association", "polled").number();
    sim.inject_message(&url, forged_event(&ids[2]));
    let metrics = exporter
        .wait_for("the forged event handled", |m| {
            let now = received(m, "association", "polled").number();
            (now > polled).then_some(()).ok_or(format!("polled {now}"))
        })
        .await;
    exact_never_over(&metrics, &sim, &ids).expect("a forged event counts nothing");
    wait_until("the queue drained", || sim.queue_messages(&url).is_empty()).await;

    // Lost: the event of a run never comes; nothing counts it until the next poll of that
    // association, whose own event then counts both.
    sim.set_queue_faults(&url, QueueFaults::default().lose(1.0).seed(1));
    sim.add_execution(
        &ids[0],
        SimExecution::new("lost", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    wait_until("the lost event's fate", || sim.queue_stats(&url).lost > 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = exporter.metrics().await;
    let truth = sim.ground_truth();
    assert!(
        matches_ground_truth(&metrics, &truth, &ids).is_err(),
        "nothing but a poll counts the lost run, and none came"
    );
    sim.set_queue_faults(&url, QueueFaults::default());
    sim.add_execution(
        &ids[0],
        SimExecution::new("after", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    exporter
        .wait_for("both runs counted", |m| exact_never_over(m, &sim, &ids))
        .await;
    assert_eq!(
        sim.request_count("ListAssociations"),
        listings,
        "no listing: events alone"
    );
    exporter.stop().await;
}

/// An EventBridge-shaped State Manager event of `id` in the default scope, now.
fn forged_event(id: &str) -> String {
    forged_event_at(id, time::OffsetDateTime::now_utc())
}

/// An EventBridge-shaped State Manager event of `id` in the default scope, dated `at`.
fn forged_event_at(id: &str, at: time::OffsetDateTime) -> String {
    let time = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    serde_json::json!({
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "EC2 State Manager Association State Change",
        "source": "aws.ssm",
        "account": DEFAULT_ACCOUNT,
        "time": time,
        "region": DEFAULT_REGION,
        "resources": [],
        "detail": {"association-id": id, "status": "Failed"}
    })
    .to_string()
}

/// Malformed and foreign messages are deleted, logged and counted; the events beside them
/// still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_foreign_messages_are_deleted_and_counted() {
    let (sim, ids, url, exporter) = started(1, NO_LISTING).await;
    sim.inject_message(&url, "{not json");
    sim.inject_message(
        &url,
        r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","account":"123456789012","region":"us-east-1","time":"2026-12-03T10:00:00Z","detail":{}}"#,
    );
    let mut missing_id: serde_json::Value = serde_json::from_str(&forged_event(&ids[0])).unwrap();
    missing_id["detail"] = serde_json::json!({"status": "Success"});
    sim.inject_message(&url, missing_id.to_string());
    sim.add_execution(
        &ids[0],
        SimExecution::new("run", "Failed", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    let metrics = exporter
        .wait_for("every message handled", |m| {
            let got = (
                received(m, "other", "malformed"),
                received(m, "other", "foreign"),
                received(m, "association", "malformed"),
            );
            (got.0 == 1.0 && got.1 == 1.0 && got.2 == 1.0)
                .then_some(())
                .ok_or(format!("{got:?}"))
        })
        .await;
    assert_eq!(received(&metrics, "association", "unwatched"), 0.0);
    exporter
        .wait_for("the event beside them counted", |m| {
            exact_never_over(m, &sim, &ids)
        })
        .await;
    wait_until("every message deleted", || {
        sim.queue_messages(&url).is_empty()
    })
    .await;
    exporter.stop().await;
}

/// A queue that fails is retried with backoff and reported (metric, status page) while the
/// listing goes on counting; once it works again its events are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_queue_is_retried_and_reported_while_polling_goes_on() {
    let (sim, ids) = simulator_with(1).await;
    let url = add_queue(&sim, "ssm-events");
    // Down until the test ends the outage.
    sim.set_queue_outage(
        &url,
        Some((QueueOutage::ServerError, Duration::from_secs(3600))),
    );
    // Polling must go on without the queue: a short interval, the listing counts.
    let exporter =
        Exporter::start(events_config(&ids, &url, Duration::from_millis(300)), &sim).await;
    exporter.wait_ready().await;
    let errors = |m: &Metrics| -> f64 {
        m.series(names::EVENT_QUEUE_ERRORS_TOTAL, &[("queue", &url)])
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    exporter
        .wait_for("the failures retried and counted", |m| {
            (errors(m) >= 2.0)
                .then_some(())
                .ok_or(format!("{} errors", errors(m)))
        })
        .await;
    let page: serde_json::Value =
        serde_json::from_str(&exporter.get("/api/v1/associations").await.body).unwrap();
    assert_eq!(page["events"]["queues"][0]["state"], "failing", "{page}");
    sim.add_execution(
        &ids[0],
        SimExecution::new("during", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    exporter
        .wait_for("polling goes on", |m| exact_never_over(m, &sim, &ids))
        .await;
    assert_eq!(sim.queue_stats(&url).deleted, 0, "the queue is still down");
    sim.set_queue_outage(&url, None);
    // Back: the queue works again, its messages are handled and deleted.
    exporter
        .wait_for("the queue back", |m| {
            match m.value(
                names::EVENT_QUEUE_LAST_RECEIVE_TIMESTAMP_SECONDS,
                &[("queue", &url)],
            ) {
                Reading::Value(_) => Ok(()),
                Reading::Missing => Err("no receive yet".into()),
            }
        })
        .await;
    wait_until("the queue emptied", || sim.queue_messages(&url).is_empty()).await;
    let page: serde_json::Value =
        serde_json::from_str(&exporter.get("/api/v1/associations").await.body).unwrap();
    assert_eq!(page["events"]["queues"][0]["state"], "receiving", "{page}");
    exporter.stop().await;
}

/// A stop between an event's receive and the end of the poll it triggered (a slow
/// `DescribeAssociationExecutions`) leaves the message in the queue: the next exporter gets it
/// again after the visibility timeout, and the count is exact, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_between_receive_and_delete_redelivers_the_event() {
    let (sim, ids) = simulator_with(1).await;
    let url = add_queue(&sim, "ssm-events");
    sim.set_queue_visibility_timeout(&url, Duration::from_secs(3));
    let mut config = events_config(&ids, &url, NO_LISTING);
    // The hung poll must still be running when the exporter stops.
    config.request_timeout = Duration::from_secs(60);
    let first = Exporter::start(config.clone(), &sim).await;
    first.wait_ready().await;
    let polls = sim.request_count("DescribeAssociationExecutions");
    sim.push_fault(
        FaultRule::new(Fault::Hang)
            .operation("DescribeAssociationExecutions")
            .association(ids[0].clone())
            .times(1),
    );
    sim.add_execution(
        &ids[0],
        SimExecution::new("run", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    // Only the event can start a poll (no listing): it was received.
    wait_until("the event's poll started", || {
        sim.request_count("DescribeAssociationExecutions") > polls
    })
    .await;
    first.stop().await;
    assert_eq!(
        sim.queue_messages(&url).len(),
        1,
        "the message outlives the exporter that received it"
    );
    let second = Exporter::start(config, &sim).await;
    second.wait_ready().await;
    let metrics = second
        .wait_for("the event delivered again and handled", |m| {
            let handled: f64 = ["polled", "poll_failed", "unwatched"]
                .iter()
                .map(|o| received(m, "association", o).number())
                .sum();
            (handled >= 1.0)
                .then_some(())
                .ok_or(format!("{handled} handled"))
        })
        .await;
    assert!(sim.queue_stats(&url).received >= 2, "received twice");
    wait_until("the message deleted", || {
        sim.queue_messages(&url).is_empty()
    })
    .await;
    exact_never_over(&metrics, &sim, &ids).expect("counted once");
    second
        .wait_for("exact", |m| exact_never_over(m, &sim, &ids))
        .await;
    second.stop().await;
}

/// Events of one association that come together make one poll: six received in one batch
/// (the queue down while they arrive, so that the first receive that works takes them all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_arrive_together_make_one_poll() {
    let (sim, ids) = simulator_with(1).await;
    let url = add_queue(&sim, "ssm-events");
    sim.set_queue_outage(
        &url,
        Some((QueueOutage::ServerError, Duration::from_secs(3600))),
    );
    let exporter = Exporter::start(events_config(&ids, &url, NO_LISTING), &sim).await;
    exporter.wait_ready().await;
    for _ in 0..6 {
        sim.inject_message(&url, forged_event(&ids[0]));
    }
    sim.set_queue_outage(&url, None);
    let metrics = exporter
        .wait_for("six events handled", |m| {
            let n = received(m, "association", "polled").number();
            (n == 6.0).then_some(()).ok_or(format!("{n} handled"))
        })
        .await;
    assert_eq!(
        metrics.value(names::POLLS_TOTAL, &[("reason", "event")]),
        1.0,
        "one poll for six events of one association"
    );
    exporter.stop().await;
}

/// #22: with events, a run's end costs one poll, the event's: the listings after it (one every
/// 300 ms, so that several come while the test looks) show its `LastExecutionDate` and
/// `Overview` move, which that poll has already read (`changed` would poll it again). Counted
/// in the simulator's own request log: `DescribeAssociationExecutions` from the run's start to
/// the tenth listing after its count. A listing that comes between the run and the event's
/// poll may poll it first (then the event polls it again, as events always do): that attempt
/// is not a measure, and another run is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_events_a_run_s_end_costs_one_poll_whatever_the_listings_show() {
    let (sim, ids, _url, exporter) = started(1, Duration::from_millis(300)).await;
    let changed = |m: &Metrics| {
        m.value(names::POLLS_TOTAL, &[("reason", "changed")])
            .number()
    };
    for attempt in 0..5 {
        let changed_before = changed(&exporter.metrics().await);
        let from = sim.requests().len();
        sim.add_execution(
            &ids[0],
            SimExecution::new(format!("run-{attempt}"), "Success", now_ms() - 500)
                .with_last_execution_ms(now_ms()),
        );
        exporter
            .wait_for("the run counted", |m| exact_never_over(m, &sim, &ids))
            .await;
        let listings_after = |n: usize| {
            sim.requests()[from..]
                .iter()
                .filter(|r| r.operation == "ListAssociations")
                .count()
                >= n
        };
        // Past a follow-up's first wait (2 s), too: the poll read the run, none comes.
        wait_until("ten listings after the count", || listings_after(10)).await;
        let log: Vec<String> = sim.requests()[from..]
            .iter()
            .map(|r| r.operation.clone())
            .filter(|o| o == "ListAssociations" || o == "DescribeAssociationExecutions")
            .collect();
        let first_poll = log
            .iter()
            .position(|o| o == "DescribeAssociationExecutions")
            .expect("polled");
        if log[..first_poll].iter().any(|o| o == "ListAssociations") {
            continue;
        }
        let polls = log
            .iter()
            .filter(|o| *o == "DescribeAssociationExecutions")
            .count();
        assert_eq!(
            polls, 1,
            "one poll for the run, across the listings: {log:?}"
        );
        let metrics = exporter.metrics().await;
        assert_eq!(changed(&metrics), changed_before, "no `changed` poll");
        exact_never_over(&metrics, &sim, &ids).expect("exact");
        exporter.stop().await;
        return;
    }
    panic!("every attempt raced a listing");
}

/// #22: a run that becomes visible in `DescribeAssociationExecutions` only after its event's
/// poll (AWS's late visibility) is counted by a follow-up poll within seconds, without a
/// listing (30-day interval): the event's poll read nothing new while the event is dated after
/// everything read, so the association is polled again 2, 4, 8, 16 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_visible_after_its_event_s_poll_is_counted_by_a_follow_up() {
    let (sim, ids, _url, exporter) = started(1, NO_LISTING).await;
    let listings = sim.request_count("ListAssociations");
    sim.add_execution(
        &ids[0],
        SimExecution::new("late", "Failed", now_ms() - 500)
            .with_last_execution_ms(now_ms())
            .invisible(),
    );
    exporter
        .wait_for("the event's poll ended", |m| {
            let n = received(m, "association", "polled").number();
            (n >= 1.0).then_some(()).ok_or(format!("{n} handled"))
        })
        .await;
    assert!(
        matches_ground_truth(&exporter.metrics().await, &sim.ground_truth(), &ids).is_ok(),
        "nothing visible, nothing counted yet"
    );
    sim.update_execution(&ids[0], "late", |e| e.visible = true);
    let metrics = exporter
        .wait_for("the late run counted", |m| {
            exact_never_over(m, &sim, &ids)?;
            match m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &ids[0]), ("status", "Failed")],
            ) {
                v if v == 1.0 => Ok(()),
                v => Err(format!("Failed {v}")),
            }
        })
        .await;
    assert!(metrics.value(names::POLLS_TOTAL, &[("reason", "follow_up")]) >= 1.0);
    assert_eq!(
        sim.request_count("ListAssociations"),
        listings,
        "no listing: the follow-up counted it"
    );
    exporter.stop().await;
}

/// #22: follow-ups are bounded: an event that no poll explains (forged: nothing ran) is
/// followed up only while within `late_visibility_window` (3 s here: the follow-up 2 s after
/// the event's poll, not the one 4 s after that); an event dated within seconds of what was
/// read (a duplicate of a run's event, its run read) is explained, and not followed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_stop_at_their_bound_and_an_explained_event_has_none() {
    let (sim, ids) = simulator_with(1).await;
    let url = add_queue(&sim, "ssm-events");
    let mut config = events_config(&ids, &url, NO_LISTING);
    config.late_visibility_window = Duration::from_secs(3);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let follow_ups = |m: &Metrics| m.value(names::POLLS_TOTAL, &[("reason", "follow_up")]);
    sim.inject_message(&url, forged_event(&ids[0]));
    exporter
        .wait_for("the forged event followed up", |m| {
            (follow_ups(m) == 1.0)
                .then_some(())
                .ok_or(format!("{:?}", follow_ups(m)))
        })
        .await;
    // The next would be 4 s after that one ended: past the window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(follow_ups(&exporter.metrics().await), 1.0, "bounded");

    // A run, its event's poll reading it; then the same event again.
    sim.add_execution(
        &ids[0],
        SimExecution::new("run", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    exporter
        .wait_for("the run counted", |m| exact_never_over(m, &sim, &ids))
        .await;
    let polled = received(&exporter.metrics().await, "association", "polled").number();
    sim.inject_message(&url, forged_event(&ids[0]));
    exporter
        .wait_for("the duplicate handled", |m| {
            let n = received(m, "association", "polled").number();
            (n > polled).then_some(()).ok_or(format!("{n} polled"))
        })
        .await;
    // A follow-up would come 2 s after its poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = exporter.metrics().await;
    assert_eq!(follow_ups(&metrics), 1.0, "the duplicate is explained");
    exact_never_over(&metrics, &sim, &ids).expect("exact");
    exporter.stop().await;
}

/// #22: an event that comes while its association is being polled, dated after that poll
/// started, is answered by it when it reads something new: no poll of its own. And an event
/// dated (to the second) before the start of a poll of its association that ended is answered
/// by that poll: a late duplicate costs no poll either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_a_poll_already_answers_costs_no_poll_of_its_own() {
    let (sim, ids, url, exporter) = started(1, NO_LISTING).await;
    let polls = sim.request_count("DescribeAssociationExecutions");
    // The event's poll takes 3 s: long enough for another event to come while it runs.
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_secs(3)))
            .operation("DescribeAssociationExecutions")
            .association(ids[0].clone())
            .times(1),
    );
    let run_end = time::OffsetDateTime::now_utc();
    sim.add_execution(
        &ids[0],
        SimExecution::new("run", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    wait_until("the event's poll started", || {
        sim.request_count("DescribeAssociationExecutions") > polls
    })
    .await;
    // The run's end event again, dated (to the second) when the run ended: that poll read it.
    sim.inject_message(&url, forged_event_at(&ids[0], run_end));
    wait_until("every event handled", || {
        sim.queue_messages(&url).is_empty()
    })
    .await;
    let metrics = exporter
        .wait_for("exact", |m| exact_never_over(m, &sim, &ids))
        .await;
    assert_eq!(
        metrics.value(names::POLLS_TOTAL, &[("reason", "event")]),
        1.0,
        "the event that came during the poll is answered by it"
    );
    let handled = received(&metrics, "association", "polled").number();
    assert!(handled >= 2.0, "{handled} association events polled");
    // A late duplicate, dated before the poll started.
    sim.inject_message(
        &url,
        forged_event_at(&ids[0], run_end - time::Duration::seconds(2)),
    );
    let metrics = exporter
        .wait_for("the duplicate handled", |m| {
            let n = received(m, "association", "polled").number();
            (n > handled).then_some(()).ok_or(format!("{n} handled"))
        })
        .await;
    assert_eq!(
        metrics.value(names::POLLS_TOTAL, &[("reason", "event")]),
        1.0,
        "an event dated before an ended poll's start is answered by that poll"
    );
    exact_never_over(&metrics, &sim, &ids).expect("exact");
    exporter.stop().await;
}

/// #22: an end that comes while a poll runs is not answered by it when that poll read
/// something new but not the end: here the poll of run A's end reads run B in progress on its
/// first page and A's end on its second (3 s late); B ends in between, its end event coming
/// during the poll, dated a second after anything it read. B's end gets a poll of its own and
/// is counted within seconds, with no listing (30-day interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_read_a_run_s_start_does_not_answer_its_end() {
    let (sim, ids, _url, exporter) = started(1, NO_LISTING).await;
    let listings = sim.request_count("ListAssociations");
    let polls = sim.request_count("DescribeAssociationExecutions");
    sim.set_page_size(Some(1));
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_secs(3)))
            .operation("DescribeAssociationExecutions")
            .association(ids[0].clone())
            .only_with_next_token()
            .times(1),
    );
    // B, newest, on the first page (its start is progress: no poll of its own yet).
    sim.add_execution(
        &ids[0],
        SimExecution::new("b", "InProgress", now_ms() - 1_000),
    );
    let a_end = now_ms();
    sim.add_execution(
        &ids[0],
        SimExecution::new("a", "Success", a_end - 3_000).with_last_execution_ms(a_end),
    );
    wait_until("the poll of A's end at its second page", || {
        sim.request_count("DescribeAssociationExecutions") >= polls + 2
    })
    .await;
    // B ends a second after anything that poll has read.
    let next_second = (a_end / 1000 + 1) * 1000;
    tokio::time::sleep(Duration::from_millis(
        (next_second - now_ms()).max(0) as u64 + 50,
    ))
    .await;
    sim.update_execution(&ids[0], "b", |e| {
        e.status = "Failed".to_string();
        e.last_execution_ms = Some(now_ms());
    });
    let metrics = exporter
        .wait_for("B's end counted", |m| {
            exact_never_over(m, &sim, &ids)?;
            match m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &ids[0]), ("status", "Failed")],
            ) {
                v if v == 1.0 => Ok(()),
                v => Err(format!("Failed {v}")),
            }
        })
        .await;
    assert_eq!(
        sim.request_count("ListAssociations"),
        listings,
        "no listing: B's own event poll counted it"
    );
    assert!(metrics.value(names::POLLS_TOTAL, &[("reason", "event")]) >= 2.0);
    exporter.stop().await;
}

/// #22, one poll per run: at the default `events.progress_poll_delay` (1 minute), a run that
/// starts and ends within it costs one `DescribeAssociationExecutions`, its end's. Its start's
/// events (the association's `Pending`, the instance's `InProgress`) are deleted from the
/// queue at once, ask for no poll of their own, and are answered by the end's poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_within_the_progress_delay_costs_one_poll() {
    let (sim, ids, url, exporter) = started(1, NO_LISTING).await;
    let polls = sim.request_count("DescribeAssociationExecutions");
    let received_start = sim.queue_stats(&url).received;
    sim.add_execution(
        &ids[0],
        SimExecution::new("run", "InProgress", now_ms() - 500)
            .with_target(SimTarget::new("i-0123456789abcdef0", "InProgress")),
    );
    wait_until("the start's events received and deleted", || {
        let stats = sim.queue_stats(&url);
        stats.received >= received_start + 2 && sim.queue_messages(&url).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.request_count("DescribeAssociationExecutions"),
        polls,
        "a run's start asks for no poll now"
    );
    sim.update_execution(&ids[0], "run", |e| {
        e.status = "Success".to_string();
        e.last_execution_ms = Some(now_ms());
        for target in &mut e.targets {
            target.status = "Success".to_string();
            target.detailed_status = Some("Success".to_string());
        }
    });
    let metrics = exporter
        .wait_for("the run counted and its four events answered", |m| {
            exact_never_over(m, &sim, &ids)?;
            let answered = received(m, "association", "polled").number()
                + received(m, "instance_association", "polled").number();
            (answered == 4.0)
                .then_some(())
                .ok_or(format!("{answered} answered"))
        })
        .await;
    assert_eq!(
        sim.request_count("DescribeAssociationExecutions"),
        polls + 1,
        "one poll for the run"
    );
    assert_eq!(
        metrics.value(names::POLLS_TOTAL, &[("reason", "event")]),
        1.0
    );
    wait_until("the queue emptied", || sim.queue_messages(&url).is_empty()).await;
    exporter.stop().await;
}

/// #22: with events, a run whose end event came and whose run its poll read costs no `late`
/// poll when its late-visibility window ends (2 s here, listings every 300 ms); a run whose
/// event was lost (the queue loses every event) does, as without events; and once events come
/// again, the next run costs none again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_run_its_poll_read_costs_no_late_poll_a_lost_one_does() {
    let (sim, ids) = simulator_with(1).await;
    let url = add_queue(&sim, "ssm-events");
    let mut config = events_config(&ids, &url, Duration::from_millis(300));
    config.late_visibility_window = Duration::from_secs(2);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let late = |m: &Metrics| m.value(names::POLLS_TOTAL, &[("reason", "late")]).number();
    // A run, then ten listings after its window's end; `late` polls over that time.
    let run = |name: &'static str, status: &'static str| {
        let (sim, ids, exporter) = (&sim, &ids, &exporter);
        async move {
            let before = late(&exporter.metrics().await);
            let end = now_ms();
            sim.add_execution(
                &ids[0],
                SimExecution::new(name, status, end - 500).with_last_execution_ms(end),
            );
            exporter
                .wait_for("the run counted", |m| exact_never_over(m, sim, ids))
                .await;
            tokio::time::sleep(Duration::from_millis((end + 2_500 - now_ms()).max(0) as u64)).await;
            let listings = sim.request_count("ListAssociations");
            wait_until("ten listings past the window", || {
                sim.request_count("ListAssociations") >= listings + 10
            })
            .await;
            let metrics = exporter.metrics().await;
            exact_never_over(&metrics, sim, ids).expect("exact");
            late(&metrics) - before
        }
    };
    assert_eq!(
        run("announced", "Success").await,
        0.0,
        "announced and read: no late poll"
    );
    sim.set_queue_faults(&url, QueueFaults::default().lose(1.0).seed(1));
    assert_eq!(
        run("lost", "Failed").await,
        1.0,
        "its event lost: the late poll, once"
    );
    sim.set_queue_faults(&url, QueueFaults::default());
    assert_eq!(
        run("announced again", "Failed").await,
        0.0,
        "events again: no late poll"
    );
    assert_eq!(
        run("and again", "Success").await,
        0.0,
        "events again: no late poll"
    );
    exporter.stop().await;
}

/// #22: a slow poll holds up no other event: while one association's poll hangs, the queue
/// goes on receiving, and another association's event is polled, counted and deleted (the
/// hung one's message stays until its own poll ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_poll_holds_up_no_other_event() {
    let (sim, ids) = simulator_with(2).await;
    let url = add_queue(&sim, "ssm-events");
    let mut config = events_config(&ids, &url, NO_LISTING);
    // The hung poll runs for the whole test.
    config.request_timeout = Duration::from_secs(60);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let polls = sim.request_count("DescribeAssociationExecutions");
    sim.push_fault(
        FaultRule::new(Fault::Hang)
            .operation("DescribeAssociationExecutions")
            .association(ids[0].clone())
            .times(1),
    );
    sim.add_execution(
        &ids[0],
        SimExecution::new("slow", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    wait_until("the hung poll started", || {
        sim.request_count("DescribeAssociationExecutions") > polls
    })
    .await;
    let hung = sim.queue_messages(&url).len();
    assert!(hung >= 1, "the hung poll's messages are not deleted");
    sim.add_execution(
        &ids[1],
        SimExecution::new("quick", "Success", now_ms() - 500).with_last_execution_ms(now_ms()),
    );
    exporter
        .wait_for("the other association's run counted", |m| {
            match m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &ids[1]), ("status", "Success")],
            ) {
                v if v == 1.0 => Ok(()),
                v => Err(format!("{v}")),
            }
        })
        .await;
    wait_until("the other association's messages deleted", || {
        sim.queue_messages(&url).len() == hung
    })
    .await;
    exporter.stop().await;
}
