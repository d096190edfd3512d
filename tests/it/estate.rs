//! One exporter over an estate: discovery, accounts (assumed roles), regions, and the change
//! feed, against the simulator's accounts and regions through the real SDK clients (SSM, and
//! STS for AssumeRole and GetCallerIdentity).

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::time::Duration;

use ssm_association_exporter::config::{AccountConfig, Config, Pattern, RoleArn, Selector};
use ssm_simulator::{
    Fault, FaultRule, LastExecutionDateMode, SimAssociation, SimExecution, Simulator,
    DEFAULT_ACCOUNT,
};

use crate::common::*;

const MEMBER: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/ssm-association-exporter";
const EXTERNAL_ID: &str = "estate-test-7f3a";
const US: &str = "us-east-1";
const EU: &str = "eu-west-1";

/// The three scopes of the test estate: (account, region).
const SCOPES: [(&str, &str); 3] = [(DEFAULT_ACCOUNT, US), (DEFAULT_ACCOUNT, EU), (MEMBER, EU)];

fn association(name: &str) -> SimAssociation {
    SimAssociation {
        name: Some(name.to_string()),
        document_name: "AWS-RunPatchBaseline".to_string(),
        schedule_expression: Some("rate(30 minutes)".to_string()),
        alarms: Vec::new(),
    }
}

fn execution(id: &str, status: &str, created_ms: i64, visible: bool) -> SimExecution {
    let last = (status != "InProgress").then_some(created_ms + 30_000);
    SimExecution {
        execution_id: id.to_string(),
        status: status.to_string(),
        detailed_status: None,
        created_ms,
        last_execution_ms: last,
        resource_count_by_status: None,
        triggered_alarms: Vec::new(),
        visible,
        omit: Vec::new(),
        alarm_listed_twice: false,
        targets: Vec::new(),
    }
}

fn selector(name: &str) -> Selector {
    Selector {
        association_name: Some(Pattern::new(name).unwrap()),
        ..Selector::default()
    }
}

/// Discovery of `prod-.*` in two regions of the own account and one region of a member
/// account reached through a role with an external ID.
fn estate_config() -> Config {
    let mut config = test_config(&[]);
    // The change feed alone must find everything: no sweep within the test, and no full
    // listing after the first: the delta listings (`LastExecutedAfter`) must show every run.
    config.full_sweep_interval = Duration::from_secs(3600);
    config.full_listing_interval = Duration::from_secs(3600);
    config.region = None;
    config.discovery = vec![selector("prod-.*")];
    config.regions = vec![US.to_string(), EU.to_string()];
    config.accounts = vec![
        AccountConfig {
            role_arn: Some(RoleArn::parse(ROLE).unwrap()),
            external_id: Some(EXTERNAL_ID.to_string()),
            regions: vec![EU.to_string()],
        },
        AccountConfig::default(),
    ];
    config
}

/// Per scope: the ids of `prod-<scope>-<i>` (i < n); each scope also has one `dev-` association
/// that no selector takes.
fn populate(sim: &Simulator, n: u32) -> BTreeMap<(String, String), Vec<String>> {
    sim.add_role(
        ROLE,
        MEMBER,
        Some(EXTERNAL_ID.to_string()),
        [DEFAULT_ACCOUNT],
    );
    let mut ids = BTreeMap::new();
    for (s, (account, region)) in SCOPES.iter().enumerate() {
        let mut scope_ids = Vec::new();
        for i in 0..n {
            let id = assoc_id(1000 * (s as u32 + 1) + i);
            sim.add_association_in(account, region, &id, association(&format!("prod-{s}-{i}")));
            scope_ids.push(id);
        }
        let dev = assoc_id(1000 * (s as u32 + 1) + 999);
        sim.add_association_in(account, region, &dev, association(&format!("dev-{s}")));
        sim.add_execution_in(
            account,
            region,
            &dev,
            execution("dev-run", "Failed", sim.now_ms() - 60_000, true),
        );
        ids.insert((account.to_string(), region.to_string()), scope_ids);
    }
    ids
}

/// Scrapes until every watched association equals the estate's ground truth, checking on
/// every scrape that no counter went down.
async fn converge(exporter: &Exporter, sim: &Simulator, ids: &[String], what: &str) -> Metrics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last: Option<Metrics> = None;
    loop {
        let m = exporter.metrics().await;
        if let Some(prev) = &last {
            for (series, before) in &prev.samples {
                if series.starts_with(names::EXECUTIONS_TOTAL)
                    || series.starts_with(names::TRIGGERED_ALARMS_TOTAL)
                {
                    let now = m.samples.get(series).copied().unwrap_or(0.0);
                    assert!(now >= *before, "{series} went down: {before} -> {now}");
                }
            }
        }
        let truth = estate_truth(sim);
        match matches_ground_truth(&m, &truth, ids) {
            Ok(()) => return m,
            Err(reason) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not exact after 30 s: {reason}")
            }
            Err(_) => {}
        }
        last = Some(m);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ground truth of every scope merged (association ids are unique across the estate).
fn estate_truth(sim: &Simulator) -> ssm_simulator::GroundTruth {
    let mut all = ssm_simulator::GroundTruth::default();
    for truth in sim.estate_ground_truth().into_values() {
        all.executions.extend(truth.executions);
        all.in_progress.extend(truth.in_progress);
        all.triggered_alarms.extend(truth.triggered_alarms);
        all.without_end_time.extend(truth.without_end_time);
    }
    all
}

/// The whole estate, counted exactly through a run's life (in progress at the first look,
/// ended later, new runs, a run visible only two listings after the listing showed it), with
/// `LastExecutionDate` moving at the start or at the end of a run.
async fn an_estate_is_counted_exactly(mode: LastExecutionDateMode) {
    let sim = Simulator::start().await.unwrap();
    sim.set_last_execution_date_mode(mode);
    // The fourth association of each scope stays quiet: no delta listing returns it, and it
    // must stay exact (nothing retired or forgotten for not being in a delta listing).
    let by_scope = populate(&sim, 4);
    let now = sim.now_ms();
    for ((account, region), ids) in &by_scope {
        for (i, id) in ids.iter().enumerate() {
            sim.add_execution_in(
                account,
                region,
                id,
                execution("old-ok", "Success", now - 20 * 60_000, true),
            );
            if i == 0 {
                sim.add_execution_in(
                    account,
                    region,
                    id,
                    execution("running", "InProgress", now - 60_000, true),
                );
            }
        }
    }
    let all: Vec<String> = by_scope.values().flatten().cloned().collect();
    let exporter = Exporter::start(estate_config(), &sim).await;
    exporter.wait_ready().await;
    let m = converge(&exporter, &sim, &all, "first round").await;

    // Labels: each association in its own account and region; the dev ones are not watched.
    for ((account, region), ids) in &by_scope {
        for id in ids {
            let series = m.series(names::EXECUTIONS_TOTAL, &[("association_id", id)]);
            assert_eq!(series.len(), 5, "{id}: one series per final status");
            for (labels, _) in series {
                assert_eq!(labels["account_id"], *account, "{id}");
                assert_eq!(labels["region"], *region, "{id}");
            }
            let info = m.series(names::INFO, &[("association_id", id)]);
            assert_eq!(info.len(), 1, "{id}");
            assert_eq!(info[0].0["document_name"], "AWS-RunPatchBaseline");
            assert!(
                info[0].0.contains_key("targets") && info[0].0.contains_key("document_version")
            );
        }
        let watched = m.value(
            names::ASSOCIATIONS_WATCHED,
            &[("account_id", account), ("region", region)],
        );
        assert_eq!(watched, 4.0, "{account}/{region}");
    }
    for s in 1..=3u32 {
        let dev = assoc_id(1000 * s + 999);
        assert!(!m.text.contains(&dev), "{dev} matches no selector");
    }

    // Activity: the running executions end, new runs happen, one shows up late.
    let now = sim.now_ms();
    for ((account, region), ids) in &by_scope {
        sim.update_execution_in(account, region, &ids[0], "running", |e| {
            e.status = "Failed".to_string();
            e.last_execution_ms = Some(now);
        });
        sim.add_execution_in(
            account,
            region,
            &ids[1],
            execution("new-ok", "Success", now, true),
        );
        sim.add_execution_in(
            account,
            region,
            &ids[2],
            execution("late", "TimedOut", now, false),
        );
    }
    converge(&exporter, &sim, &all, "after the runs").await;
    // Two listings later, the late ones become visible; the listing shows no change then.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for ((account, region), ids) in &by_scope {
        sim.update_execution_in(account, region, &ids[2], "late", |e| e.visible = true);
    }
    let m = converge(&exporter, &sim, &all, "after the late ones became visible").await;
    for ids in by_scope.values() {
        assert_eq!(
            m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &ids[2]), ("status", "TimedOut")]
            ),
            1.0
        );
    }
    exporter.stop().await;
}

#[tokio::test]
async fn an_estate_is_counted_exactly_when_last_execution_date_moves_at_the_end() {
    an_estate_is_counted_exactly(LastExecutionDateMode::End).await;
}

#[tokio::test]
async fn an_estate_is_counted_exactly_when_last_execution_date_moves_at_the_start() {
    an_estate_is_counted_exactly(LastExecutionDateMode::Start).await;
}

/// A member account whose role cannot be assumed (wrong external ID), and a region whose
/// endpoint resets every connection: their health metrics say so, the rest is exact and the
/// exporter is ready.
#[tokio::test]
async fn a_failing_account_or_region_never_stops_the_others() {
    let sim = Simulator::start().await.unwrap();
    let by_scope = populate(&sim, 2);
    let now = sim.now_ms();
    for ((account, region), ids) in &by_scope {
        for id in ids {
            sim.add_execution_in(
                account,
                region,
                id,
                execution("ok", "Success", now - 60_000, true),
            );
        }
    }
    // Us-east-1 of the own account is reachable; its eu-west-1 is not.
    sim.push_fault(
        FaultRule::new(Fault::ResetConnection)
            .account(DEFAULT_ACCOUNT)
            .region(EU)
            .forever(),
    );
    let mut config = estate_config();
    config.accounts[0].external_id = Some("the-wrong-one".to_string());
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let healthy = &by_scope[&(DEFAULT_ACCOUNT.to_string(), US.to_string())];
    converge(&exporter, &sim, healthy, "the healthy scope").await;
    assert_eq!(exporter.get("/readyz").await.status, 200);
    let m = exporter
        .wait_for("the member account's credentials reported", |m| {
            let v = m.get(
                names::CREDENTIALS_VALID,
                &[("account_id", MEMBER), ("region", EU)],
            );
            (v == Some(0.0)).then_some(()).ok_or(format!("{v:?}"))
        })
        .await;
    assert_eq!(
        m.value(
            names::CREDENTIALS_VALID,
            &[("account_id", DEFAULT_ACCOUNT), ("region", US)]
        ),
        1.0
    );
    // The own account's eu-west-1 is unreachable, STS there too: once STS has failed three
    // times the scope goes on as account `unknown`, and reports its failing listing (a
    // missing series would hide it).
    exporter
        .wait_for("the unreachable region's failing listing reported", |m| {
            let eu: Vec<f64> = m
                .series(names::LISTING_SUCCESS, &[("region", EU)])
                .into_iter()
                .filter(|(labels, _)| labels["account_id"] != MEMBER)
                .map(|(_, v)| v)
                .collect();
            (eu == [0.0]).then_some(()).ok_or(format!("{eu:?}"))
        })
        .await;
    assert_eq!(
        m.value(
            names::LISTING_SUCCESS,
            &[("account_id", DEFAULT_ACCOUNT), ("region", US)]
        ),
        1.0
    );
    exporter.stop().await;
}

/// Polls that hang in one region hold only that region's poll slots: the other region's
/// polls, listed after them, still run and count exactly. (Were the slots shared, the hanging
/// polls of eu-west-1, spawned first, would hold every one for the whole request timeout.)
#[tokio::test]
async fn polls_hanging_in_one_region_do_not_hold_back_another() {
    let sim = Simulator::start().await.unwrap();
    let by_scope = populate(&sim, 6);
    let now = sim.now_ms();
    for ((account, region), ids) in &by_scope {
        for id in ids {
            sim.add_execution_in(
                account,
                region,
                id,
                execution("ok", "Success", now - 60_000, true),
            );
        }
    }
    // eu-west-1 answers its listing but never its polls; us-east-1's listing comes later.
    sim.push_fault(
        FaultRule::new(Fault::Hang)
            .operation("DescribeAssociationExecutions")
            .account(DEFAULT_ACCOUNT)
            .region(EU)
            .forever(),
    );
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_millis(1500)))
            .operation("ListAssociations")
            .region(US)
            .forever(),
    );
    let mut config = estate_config();
    config.accounts = vec![AccountConfig::default()];
    config.request_timeout = Duration::from_secs(60);
    config.max_concurrent_requests = 1;
    let exporter = Exporter::start(config, &sim).await;
    let us = &by_scope[&(DEFAULT_ACCOUNT.to_string(), US.to_string())];
    let eu = &by_scope[&(DEFAULT_ACCOUNT.to_string(), EU.to_string())];
    assert!(eu.len() > ssm_association_exporter::scheduler::polls_per_scope(1));
    let m = converge(&exporter, &sim, us, "us-east-1 beside a hanging eu-west-1").await;
    for id in eu {
        assert_eq!(
            m.get(names::POLL_SUCCESS, &[("association_id", id)]),
            None,
            "{id}: a poll in eu-west-1 ended"
        );
    }
    exporter.stop().await;
}

/// Throttling of ListAssociations itself delays the listing; nothing is lost.
#[tokio::test]
async fn a_throttled_listing_is_retried_and_loses_nothing() {
    let (sim, ids) = simulator_with(3).await;
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, execution("ok", "Success", now - 60_000, true));
    }
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("ListAssociations")
            .times(3),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;
    let m = converge(&exporter, &sim, &ids, "after the throttling").await;
    assert!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "ListAssociations"),
                ("code", "ThrottlingException")
            ]
        ) >= 1.0
    );
    exporter.stop().await;
}

/// Terraform replaces an association: new ID, same name. The old series go, the new ones
/// start, and nothing of the old is counted under the new ID.
#[tokio::test]
async fn an_association_replaced_under_the_same_name_ends_its_series_and_starts_new_ones() {
    let sim = Simulator::start().await.unwrap();
    let old = assoc_id(1);
    sim.add_association_in(DEFAULT_ACCOUNT, US, &old, association("prod-web"));
    sim.add_execution_in(
        DEFAULT_ACCOUNT,
        US,
        &old,
        execution("a", "Failed", sim.now_ms() - 60_000, true),
    );
    let mut config = test_config(&[]);
    config.discovery = vec![selector("prod-.*")];
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    converge(&exporter, &sim, std::slice::from_ref(&old), "before").await;

    let new = assoc_id(2);
    sim.replace_association_in(DEFAULT_ACCOUNT, US, &old, &new, association("prod-web"));
    sim.add_execution_in(
        DEFAULT_ACCOUNT,
        US,
        &new,
        execution("b", "Success", sim.now_ms(), true),
    );
    let m = exporter
        .wait_for("the old series gone, the new counted", |m| {
            let old_series = m.series(names::EXECUTIONS_TOTAL, &[("association_id", &old)]);
            let new_ok = m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &new), ("status", "Success")],
            );
            (old_series.is_empty() && new_ok == 1.0)
                .then_some(())
                .ok_or(format!("old {} series, new {new_ok}", old_series.len()))
        })
        .await;
    assert_eq!(
        m.value(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &new), ("status", "Failed")]
        ),
        0.0
    );
    assert!(m
        .series(names::INFO, &[("association_id", &old)])
        .is_empty());
    exporter.stop().await;
}

/// An association named by ID and by a selector is watched once; an ID found nowhere and a
/// selector that matches nothing are reported.
#[tokio::test]
async fn selected_twice_is_watched_once_and_what_matches_nothing_is_reported() {
    let (sim, ids) = simulator_with(2).await;
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, execution("ok", "Success", now - 60_000, true));
    }
    let missing = assoc_id(77);
    let mut config = test_config(&[ids[0].clone(), missing.clone()]);
    config.discovery = vec![Selector::default(), selector("nothing-.*")];
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = converge(&exporter, &sim, &ids, "both").await;
    assert_eq!(
        m.series(
            names::EXECUTIONS_TOTAL,
            &[("association_id", &ids[0]), ("status", "Success")]
        )
        .len(),
        1
    );
    assert_eq!(m.value(names::ASSOCIATIONS_WATCHED, &[]), 2.0);
    assert_eq!(m.value(names::STATIC_ASSOCIATIONS_NOT_FOUND, &[]), 1.0);
    assert_eq!(
        m.value(names::DISCOVERY_SELECTOR_ASSOCIATIONS, &[("selector", "0")]),
        2.0
    );
    assert_eq!(
        m.get(names::DISCOVERY_SELECTOR_ASSOCIATIONS, &[("selector", "1")]),
        Some(0.0)
    );
    exporter.stop().await;
}

/// A tag selector reads tags only for associations whose names match, once per
/// `discovery_interval`, and selects only the tagged ones.
#[tokio::test]
async fn tag_selectors_take_only_tagged_associations_and_cache_the_tags() {
    let (sim, ids) = simulator_with(3).await;
    sim.set_tags_in(DEFAULT_ACCOUNT, US, &ids[1], [("team", "platform")]);
    sim.set_tags_in(DEFAULT_ACCOUNT, US, &ids[2], [("team", "data")]);
    let mut config = test_config(&[]);
    config.discovery = vec![Selector {
        tags: [("team".to_string(), "platform".to_string())].into(),
        ..Selector::default()
    }];
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter
        .wait_for("the tagged association watched", |m| {
            let n = m.value(names::ASSOCIATIONS_WATCHED, &[]);
            (n == 1.0).then_some(()).ok_or(format!("{n}"))
        })
        .await;
    assert_eq!(
        m.series(names::INFO, &[("association_id", &ids[1])]).len(),
        1
    );
    assert!(m
        .series(names::INFO, &[("association_id", &ids[2])])
        .is_empty());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        sim.request_count("ListTagsForResource"),
        3,
        "each association's tags read once within discovery_interval"
    );
    exporter.stop().await;
}

/// STS unreachable (a private network with an SSM endpoint only): the region is still watched,
/// under `account_id="unknown"`.
#[tokio::test]
async fn without_sts_the_region_is_watched_under_an_unknown_account() {
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        execution("ok", "Success", sim.now_ms() - 60_000, true),
    );
    sim.push_fault(
        FaultRule::new(Fault::ResetConnection)
            .operation("GetCallerIdentity")
            .forever(),
    );
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    let m = converge(&exporter, &sim, &ids, "without STS").await;
    let series = m.series(names::EXECUTIONS_TOTAL, &[("association_id", &ids[0])]);
    assert_eq!(series.len(), 5, "one series per final status");
    assert!(series
        .iter()
        .all(|(labels, _)| labels["account_id"] == "unknown"));
    assert!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "GetCallerIdentity"),
                ("code", "ConnectionError")
            ]
        ) >= 3.0
    );
    exporter.stop().await;
}

/// `ListTagsForResource` denied: a tag selector matches nothing (no tags known), the call is
/// counted by code, and nothing else is affected.
#[tokio::test]
async fn denied_tags_match_no_tag_selector_and_are_counted() {
    let (sim, ids) = simulator_with(2).await;
    sim.set_tags_in(DEFAULT_ACCOUNT, US, &ids[0], [("team", "platform")]);
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .operation("ListTagsForResource")
            .forever(),
    );
    let mut config = test_config(&[ids[1].clone()]);
    config.discovery = vec![Selector {
        tags: [("team".to_string(), "platform".to_string())].into(),
        ..Selector::default()
    }];
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let m = exporter
        .wait_for("the denied tags counted", |m| {
            let n = m.value(
                names::API_REQUESTS_TOTAL,
                &[
                    ("operation", "ListTagsForResource"),
                    ("code", "AccessDeniedException"),
                ],
            );
            (n >= 2.0).then_some(()).ok_or(format!("{n}"))
        })
        .await;
    assert_eq!(
        m.value(names::ASSOCIATIONS_WATCHED, &[]),
        1.0,
        "the static one"
    );
    assert!(m
        .series(names::INFO, &[("association_id", &ids[0])])
        .is_empty());
    // Denied on that association: its own gauge, not the account's credentials.
    assert_eq!(
        m.value(
            names::ACCESS_DENIED,
            &[
                ("association_id", &ids[0]),
                ("operation", "ListTagsForResource")
            ]
        ),
        Reading::Value(1.0)
    );
    assert_eq!(m.value(names::CREDENTIALS_VALID, &[]), Reading::Value(1.0));
    exporter.stop().await;
}

/// A role or SCP that denies `DescribeAssociationExecutions` on one association of four: that
/// association's polls fail (`poll_success` 0, counted by code, backed off) and its own
/// `access_denied` gauge says why, while the account's credentials stay valid and `/readyz`
/// stays 200 on every sample over many denied polls (each denied poll used to mark the
/// account's credentials rejected until the next listing cleared them, so both flapped). The
/// other three count exactly throughout, and the denied one catches up once it is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_one_association_is_its_failure_not_the_accounts() {
    let (sim, ids) = simulator_with(4).await;
    let now = sim.now_ms();
    for (i, id) in ids.iter().enumerate() {
        sim.add_execution(
            id,
            execution(&format!("ok-{i}"), "Success", now - 120_000, true),
        );
        sim.add_execution(
            id,
            execution(&format!("no-{i}"), "Failed", now - 60_000, true),
        );
    }
    let (denied, others) = (&ids[3], &ids[..3]);
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .operation("DescribeAssociationExecutions")
            .association(denied.clone())
            .forever(),
    );
    let mut config = test_config(&ids);
    config.full_sweep_interval = Duration::from_secs(3600);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let denied_calls = |m: &Metrics| {
        m.value(
            names::API_REQUESTS_TOTAL,
            &[
                ("operation", "DescribeAssociationExecutions"),
                ("code", "AccessDeniedException"),
            ],
        )
        .or_zero() // not exported before the first denied call
    };
    // Sample /readyz and /metrics every 50 ms until three more denied polls have gone out
    // (backed off: 1, 3, 7 listings apart) and at least 20 samples are taken; each denied
    // poll used to leave about one 300 ms listing interval of rejected credentials.
    let first = denied_calls(&exporter.metrics().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut samples = 0;
    loop {
        let ready = exporter.get("/readyz").await;
        assert_eq!(ready.status, 200, "sample {samples}: {}", ready.body);
        let m = exporter.metrics().await;
        assert_eq!(
            m.value(names::CREDENTIALS_VALID, &[]),
            Reading::Value(1.0),
            "sample {samples}"
        );
        samples += 1;
        if samples >= 20 && denied_calls(&m) >= first + 3.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} denied calls in 30 s",
            denied_calls(&m) - first
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The others go on counting exactly, new runs included.
    for (i, id) in others.iter().enumerate() {
        let at = sim.now_ms();
        sim.add_execution(
            id,
            execution(&format!("new-{i}"), "TimedOut", at - 1_000, true),
        );
    }
    let m = converge(&exporter, &sim, others, "the three allowed ones").await;
    assert_eq!(m.value(names::CREDENTIALS_VALID, &[]), Reading::Value(1.0));
    for id in others {
        assert_eq!(
            m.value(names::POLL_SUCCESS, &[("association_id", id)]),
            Reading::Value(1.0)
        );
        assert!(
            m.series(names::ACCESS_DENIED, &[("association_id", id)])
                .is_empty(),
            "{id}"
        );
    }
    // The denied one: its poll error, by code, and its own gauge.
    assert_eq!(
        m.value(names::POLL_SUCCESS, &[("association_id", denied)]),
        Reading::Value(0.0)
    );
    assert!(
        m.value(
            names::POLL_ERRORS_TOTAL,
            &[("code", "AccessDeniedException")]
        )
        .number()
            >= 4.0
    );
    assert_eq!(
        m.value(
            names::ACCESS_DENIED,
            &[
                ("association_id", denied),
                ("account_id", DEFAULT_ACCOUNT),
                ("region", US),
                ("operation", "DescribeAssociationExecutions"),
            ]
        ),
        Reading::Value(1.0)
    );
    assert_eq!(m.series(names::ACCESS_DENIED, &[]).len(), 1);
    // Allowed again: its gauge goes and it catches up, exactly (its backoff is 16 intervals
    // at most).
    sim.clear_faults();
    let m = converge(&exporter, &sim, &ids, "the denied one allowed again").await;
    let m = if m.series(names::ACCESS_DENIED, &[]).is_empty() {
        m
    } else {
        exporter
            .wait_for("the denial cleared", |m| {
                let left = m.series(names::ACCESS_DENIED, &[]);
                left.is_empty().then_some(()).ok_or(format!("{left:?}"))
            })
            .await
    };
    assert_eq!(
        m.value(names::POLL_SUCCESS, &[("association_id", denied)]),
        Reading::Value(1.0)
    );
    exporter.stop().await;
}

/// Access denied to `ListAssociations` is the scope's failure, as before: the account's
/// credentials are reported rejected and, with no other account, `/readyz` is 503 with the
/// code; allowed again, both recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_the_listing_marks_the_account() {
    let (sim, ids) = simulator_with(2).await;
    let mut config = test_config(&ids);
    config.full_sweep_interval = Duration::from_secs(3600);
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .operation("ListAssociations")
            .forever(),
    );
    let m = exporter
        .wait_for("the credentials reported rejected", |m| {
            let valid = m.value(names::CREDENTIALS_VALID, &[]);
            (valid == Reading::Value(0.0))
                .then_some(())
                .ok_or(format!("{valid:?}"))
        })
        .await;
    assert_eq!(m.value(names::LISTING_SUCCESS, &[]), Reading::Value(0.0));
    assert!(m.series(names::ACCESS_DENIED, &[]).is_empty());
    let ready = exporter.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("AccessDeniedException"),
        "{}",
        ready.body
    );
    sim.clear_faults();
    exporter
        .wait_for("the credentials working again", |m| {
            let valid = m.value(names::CREDENTIALS_VALID, &[]);
            (valid == Reading::Value(1.0))
                .then_some(())
                .ok_or(format!("{valid:?}"))
        })
        .await;
    exporter.wait_ready().await;
    exporter.stop().await;
}

/// Assumed-role credentials that expire every two seconds are renewed before they do: the
/// member account goes on being polled, never with expired credentials.
#[tokio::test]
async fn assumed_role_credentials_are_renewed_before_they_expire() {
    let sim = Simulator::start().await.unwrap();
    sim.add_role(
        ROLE,
        MEMBER,
        Some(EXTERNAL_ID.to_string()),
        [DEFAULT_ACCOUNT],
    );
    sim.set_assumed_role_lifetime(Some(Duration::from_secs(2)));
    let id = assoc_id(42);
    sim.add_association_in(MEMBER, EU, &id, association("prod-member"));
    sim.add_execution_in(
        MEMBER,
        EU,
        &id,
        execution("a", "Success", sim.now_ms() - 60_000, true),
    );
    let mut config = test_config(&[]);
    config.region = None;
    config.discovery = vec![selector("prod-.*")];
    config.accounts = vec![AccountConfig {
        role_arn: Some(RoleArn::parse(ROLE).unwrap()),
        external_id: Some(EXTERNAL_ID.to_string()),
        regions: vec![EU.to_string()],
    }];
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let ids = [id.clone()];
    converge(&exporter, &sim, &ids, "first").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    sim.add_execution_in(
        MEMBER,
        EU,
        &id,
        execution("b", "Failed", sim.now_ms(), true),
    );
    let m = converge(&exporter, &sim, &ids, "after the first credentials expired").await;
    assert_eq!(
        m.value(
            names::API_REQUESTS_TOTAL,
            &[("account_id", MEMBER), ("code", "ExpiredTokenException")]
        ),
        Reading::Missing,
        "no request was refused for an expired token"
    );
    assert!(sim.request_count("AssumeRole") >= 2, "renewed");
    exporter.stop().await;
}
