//! The delta listing: between full listings (at start and every `full_listing_interval`) a
//! scope lists only the associations whose `LastExecutionDate` moved (`ListAssociations` with
//! `LastExecutedAfter`), through the real SDK client against the simulator.

use std::time::Duration;

use ssm_association_exporter::config::{Config, Selector};
use ssm_association_exporter::names;
use ssm_simulator::{
    Fault, FaultRule, LastExecutedFilter, RecordedRequest, SimAssociation, SimExecution, Simulator,
    DEFAULT_ACCOUNT, DEFAULT_REGION,
};

use crate::common::*;

const MINUTE_MS: i64 = 60_000;
const HOUR: Duration = Duration::from_secs(3600);

/// A run that ended 30 s after it started.
fn run(id: &str, status: &str, created_ms: i64) -> SimExecution {
    SimExecution::new(id, status, created_ms).with_last_execution_ms(created_ms + 30_000)
}

/// Discovery of every association, the production sweep (1 h) and `full_listing_interval`.
fn config(full_listing_interval: Duration) -> Config {
    let mut config = test_config(&[]);
    config.discovery = vec![Selector::default()];
    // The sweep at its longest (7 d): each association has a sweep slot once per period at a
    // phase of its own, so with 200 associations and the 1 h default one falls within a few
    // seconds of a test step about one run in ten, and the figures here are the change feed's
    // and the listing's. The sweep's own cost has its own test
    // (`scheduler::sweep::tests::*`,
    // `sweep::a_large_quiet_scope_is_swept_at_the_cap_per_listing_each_association_once_a_period`).
    config.full_sweep_interval = Duration::from_secs(7 * 24 * 3600);
    config.full_listing_interval = full_listing_interval;
    config
}

fn is_listing(r: &RecordedRequest) -> bool {
    r.operation == "ListAssociations"
}

/// A listing page asking only for what ran (`LastExecutedAfter`).
fn is_delta(r: &RecordedRequest) -> bool {
    is_listing(r)
        && r.association_filters
            .iter()
            .any(|(key, _)| key == "LastExecutedAfter")
}

/// Where each listing starts in `requests` (its first page: no `NextToken`).
fn listing_starts(requests: &[RecordedRequest]) -> Vec<usize> {
    (0..requests.len())
        .filter(|&i| is_listing(&requests[i]) && requests[i].next_token.is_none())
        .collect()
}

/// Waits until the simulator has seen `n` listings start since its record was last cleared.
async fn wait_listings(sim: &Simulator, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while listing_starts(&sim.requests()).len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} listings never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn converge(exporter: &Exporter, sim: &Simulator, ids: &[String], what: &str) {
    exporter
        .wait_for(what, |m| matches_ground_truth(m, &sim.ground_truth(), ids))
        .await;
}

async fn wait_counted(exporter: &Exporter, id: &str, status: &str) {
    exporter
        .wait_for(&format!("{id} {status} counted"), |m| {
            let got = m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", id), ("status", status)],
            );
            (got == 1.0).then_some(()).ok_or(format!("{got}"))
        })
        .await;
}

/// SSM calls follow activity, not fleet size: 200 associations, the production sweep and a
/// full listing only at start (`full_listing_interval` 1 h): a quiet listing is one delta
/// page, a run is polled before the second listing after it (within one `poll_interval`),
/// and five runs cost about one poll each.
#[tokio::test]
async fn calls_follow_activity_not_fleet_size() {
    let sim = Simulator::start().await.unwrap();
    let ids = sim.add_associations_in(DEFAULT_ACCOUNT, DEFAULT_REGION, 200, "fleet");
    let now = sim.now_ms();
    for id in &ids[..10] {
        sim.add_execution(id, run("r1", "Success", now - 5 * MINUTE_MS));
    }
    let exporter = Exporter::start(config(HOUR), &sim).await;
    exporter.wait_ready().await;
    converge(&exporter, &sim, &ids, "first round").await;
    let first_round = sim.request_count("DescribeAssociationExecutions");
    assert!(
        first_round <= 12,
        "the first round polls the 10 that ran in the look-back, not all 200: {first_round}"
    );
    assert_eq!(sim.request_count("DescribeAssociation"), 0);
    let first: Vec<RecordedRequest> = sim.requests().into_iter().filter(is_listing).collect();
    assert!(
        first[..4].iter().all(|r| r.association_filters.is_empty()),
        "the first listing is full: 4 pages of 50"
    );

    // Quiet: each listing is one page of what ran lately (the 10 above), never all 200.
    tokio::time::sleep(Duration::from_millis(600)).await;
    sim.clear_requests();
    wait_listings(&sim, 6).await;
    let requests = sim.requests();
    let pages: Vec<&RecordedRequest> = requests.iter().filter(|r| is_listing(r)).collect();
    assert!(
        pages.iter().all(|r| is_delta(r)),
        "no full listing within the hour"
    );
    let listings = listing_starts(&requests).len();
    assert!(
        pages.len() <= listings + 1,
        "one ListAssociations call per quiet listing: {} calls, {listings} listings",
        pages.len()
    );
    assert_eq!(
        sim.request_count("DescribeAssociationExecutions"),
        0,
        "nothing ran, nothing polled"
    );

    // One run: the first listing that starts after it shows it, and it is polled before the
    // next one starts.
    sim.clear_requests();
    let id = &ids[150];
    sim.add_execution(id, run("r2", "Failed", sim.now_ms()));
    wait_counted(&exporter, id, "Failed").await;
    let requests = sim.requests();
    let starts = listing_starts(&requests);
    let poll = requests
        .iter()
        .position(|r| {
            r.operation == "DescribeAssociationExecutions"
                && r.association_id.as_deref() == Some(id.as_str())
        })
        .expect("the run was polled");
    assert!(starts[0] < poll, "polled after a listing showed it");
    assert!(
        starts.get(1).is_none_or(|&second| poll < second),
        "polled before the second listing after the run: {starts:?}, poll at {poll}"
    );
    assert!(requests.iter().filter(|r| is_listing(r)).all(is_delta));

    // Five runs: one poll each.
    sim.clear_requests();
    let now = sim.now_ms();
    for id in &ids[100..105] {
        sim.add_execution(id, run("r3", "Failed", now));
    }
    converge(&exporter, &sim, &ids, "after five runs").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let polls = sim.request_count("DescribeAssociationExecutions");
    assert!((5..=7).contains(&polls), "5 runs, {polls} polls");
    let m = exporter.metrics().await;
    assert!(m.value(names::POLLS_TOTAL, &[("reason", "changed")]) >= 5.0);
    exporter.stop().await;
}

/// The delta listing's margin: AWS's listing is eventually consistent, so a run may show up
/// in it only after a later listing has started. A run that ended 8 minutes before the
/// previous listing and shows up only now is still in the next delta listing (it asks from
/// `late_visibility_window`, 10 minutes, before the previous listing's start), never left for
/// the full listing an hour away. A new association that runs is in a delta listing too, and
/// brings the full listing forward.
#[tokio::test]
async fn a_run_the_listing_shows_late_is_in_the_delta_listing_within_its_margin() {
    let (sim, ids) = simulator_with(3).await;
    let exporter = Exporter::start(config(HOUR), &sim).await;
    exporter.wait_ready().await;
    sim.clear_requests();
    wait_listings(&sim, 2).await;

    // Dated 8.5 minutes ago, listed only from now on.
    let ended = sim.now_ms() - 17 * MINUTE_MS / 2;
    sim.add_execution(&ids[0], run("late-record", "Failed", ended - 30_000));
    wait_counted(&exporter, &ids[0], "Failed").await;
    let requests = sim.requests();
    assert!(
        requests.iter().filter(|r| is_listing(r)).all(is_delta),
        "found by a delta listing, not a full one"
    );
    let after = &requests
        .iter()
        .rev()
        .find(|r| is_delta(r))
        .unwrap()
        .association_filters[0]
        .1;
    assert!(
        after.ends_with('Z') && after.len() == "2026-11-26T07:00:00.123Z".len(),
        "ISO-8601 UTC with milliseconds: {after}"
    );

    // A new association that ran: a delta listing shows it, a full listing follows at once.
    sim.clear_requests();
    let new = assoc_id(40);
    sim.add_association(
        &new,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("new"),
    );
    sim.add_execution(&new, run("new-run", "Success", sim.now_ms()));
    wait_counted(&exporter, &new, "Success").await;
    let requests = sim.requests();
    let full_listings = listing_starts(&requests)
        .into_iter()
        .filter(|&i| !is_delta(&requests[i]))
        .count();
    assert!(
        full_listings >= 1,
        "a full listing came at once, not an hour later"
    );
    exporter.stop().await;
    sim.shutdown();
}

/// The change feed decides over every watched association at every listing, not only over
/// what a delta listing returns: an association whose newest run is older than any delta
/// listing reaches (30 minutes), whose first poll fails, is retried at the next listings (the
/// `retry` rule), not at the full listing an hour away.
#[tokio::test]
async fn an_association_no_delta_listing_returns_is_still_retried() {
    let (sim, ids) = simulator_with(2).await;
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, run("old", "Success", now - 30 * MINUTE_MS));
    }
    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation("DescribeAssociationExecutions")
            .association(&ids[0])
            .times(1),
    );
    let exporter = Exporter::start(config(HOUR), &sim).await;
    converge(&exporter, &sim, &ids, "the failed first poll retried").await;
    let requests = sim.requests();
    let starts = listing_starts(&requests);
    assert!(
        starts[1..].iter().all(|&i| is_delta(&requests[i])),
        "retried after delta listings only"
    );
    let m = exporter.metrics().await;
    assert!(m.value(names::POLLS_TOTAL, &[("reason", "retry")]) >= 1.0);
    exporter.stop().await;
    sim.shutdown();
}

/// What only a full listing shows: an association added, edited or removed without running.
/// `full_listing_interval` is short here (2 s, about 7 listings) so that the test sees the
/// next full listing; each change is seen once a full listing has started after it.
#[tokio::test]
async fn an_association_added_edited_or_removed_without_running_is_seen_at_the_next_full_listing() {
    let (sim, ids) = simulator_with(3).await;
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, run("r1", "Success", now - 5 * MINUTE_MS));
    }
    let exporter = Exporter::start(config(Duration::from_secs(2)), &sim).await;
    exporter.wait_ready().await;
    converge(&exporter, &sim, &ids, "first round").await;

    sim.clear_requests();
    let new = assoc_id(40);
    sim.add_association(
        &new,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("added"),
    );
    sim.update_association_in(DEFAULT_ACCOUNT, DEFAULT_REGION, &ids[0], |meta, _| {
        meta.name = Some("renamed".to_string());
    });
    sim.remove_association(&ids[1]);
    exporter
        .wait_for("the addition, the edit and the removal seen", |m| {
            let added = m.series(names::INFO, &[("association_id", &new)]).len();
            let renamed = m
                .series(
                    names::INFO,
                    &[("association_id", &ids[0]), ("association_name", "renamed")],
                )
                .len();
            let removed = m.series(names::INFO, &[("association_id", &ids[1])]).len();
            (added == 1 && renamed == 1 && removed == 0)
                .then_some(())
                .ok_or(format!(
                    "added {added}, renamed {renamed}, removed still {removed}"
                ))
        })
        .await;
    let requests = sim.requests();
    assert!(
        listing_starts(&requests)
            .into_iter()
            .any(|i| !is_delta(&requests[i])),
        "seen by a full listing"
    );
    let m = exporter.metrics().await;
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &ids[0]), ("status", "Success")]
        ),
        1.0,
        "an edit keeps what was counted"
    );
    exporter.stop().await;
    sim.shutdown();
}

/// AWS documents neither whether `LastExecutedAfter` is strict nor that it is always applied:
/// applied inclusively, or ignored (every association comes back), the delta listing costs
/// more, never a count.
#[tokio::test]
async fn a_date_filter_applied_inclusively_or_ignored_costs_more_never_a_count() {
    for filter in [LastExecutedFilter::Inclusive, LastExecutedFilter::Ignored] {
        let sim = Simulator::start().await.unwrap();
        sim.set_last_executed_filter(filter);
        let ids = sim.add_associations_in(DEFAULT_ACCOUNT, DEFAULT_REGION, 60, "fleet");
        let now = sim.now_ms();
        sim.add_execution(&ids[0], run("r1", "Success", now - 5 * MINUTE_MS));
        let exporter = Exporter::start(config(HOUR), &sim).await;
        exporter.wait_ready().await;
        converge(&exporter, &sim, &ids, "first round").await;
        sim.clear_requests();
        for (i, id) in ids[10..15].iter().enumerate() {
            sim.add_execution(id, run(&format!("r{i}"), "Failed", sim.now_ms()));
        }
        converge(&exporter, &sim, &ids, &format!("{filter:?}: five runs")).await;
        let requests = sim.requests();
        let pages = requests.iter().filter(|r| is_listing(r)).count();
        let listings = listing_starts(&requests).len();
        if filter == LastExecutedFilter::Ignored {
            assert!(
                pages >= 2 * listings - 1,
                "everything comes back: 2 pages a listing ({pages} pages, {listings} listings)"
            );
        }
        assert!(requests.iter().filter(|r| is_listing(r)).all(is_delta));
        exporter.stop().await;
        sim.shutdown();
    }
}
