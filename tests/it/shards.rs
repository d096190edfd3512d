//! Sharding: several shard processes (`run()` with `--shard`/`--total-shards`) against one
//! simulated estate: every association exported by exactly one shard, the union exact, polls
//! split between the shards, and a change of the shard count that loses and repeats nothing.

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::time::Duration;

use ssm_association_exporter::model::ScopeKey;
use ssm_association_exporter::shard::{self, Shard};
use ssm_association_exporter::Options;
use ssm_simulator::{SimExecution, Simulator};

use crate::common::*;

fn run(id: &str, status: &str, created_ms: i64) -> SimExecution {
    SimExecution::new(id, status, created_ms).with_last_execution_ms(created_ms + 20_000)
}

async fn start_shards(
    config: &ssm_association_exporter::config::Config,
    sim: &Simulator,
    total: u32,
) -> Vec<Exporter> {
    let mut shards = Vec::new();
    for index in 0..total {
        let options = Options {
            shard: Shard::new(index, total).unwrap(),
            ..Options::default()
        };
        shards.push(Exporter::start_with(config.clone(), sim, options).await);
    }
    shards
}

/// The union of the shards' scrapes; panics if two shards export the same association.
async fn union(shards: &[Exporter]) -> (Metrics, Vec<Metrics>) {
    let mut samples = BTreeMap::new();
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    let mut each = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let m = shard.metrics().await;
        for (labels, _) in m.series(names::INFO, &[]) {
            let id = labels["association_id"].clone();
            if let Some(other) = owners.insert(id.clone(), i) {
                panic!("{id} exported by shards {other} and {i}");
            }
        }
        for (series, value) in &m.samples {
            if series.starts_with("ssm_association_")
                && !series.starts_with("ssm_association_exporter")
            {
                samples.insert(series.clone(), *value);
            }
        }
        each.push(m);
    }
    (Metrics::from_samples(samples, String::new()), each)
}

async fn converge_union(shards: &[Exporter], sim: &Simulator, ids: &[String]) -> Vec<Metrics> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (all, each) = union(shards).await;
        match matches_ground_truth(&all, &sim.ground_truth(), ids) {
            Ok(()) => return each,
            Err(reason) if tokio::time::Instant::now() > deadline => {
                panic!("union not exact: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Executions counted per association by one shard's scrape.
fn totals(m: &Metrics) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in m.series(names::EXECUTIONS_TOTAL, &[]) {
        *out.entry(labels["association_id"].clone()).or_default() += v;
    }
    out
}

#[tokio::test]
async fn three_shards_split_an_estate_exactly_and_a_change_to_two_loses_nothing() {
    let (sim, ids) = simulator_with(30).await;
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, run("a", "Success", now - 10 * 60_000));
        sim.add_execution(id, run("b", "Failed", now - 5 * 60_000));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&ids);
    config.full_sweep_interval = Duration::from_secs(3600);
    config.state_file = Some(dir.path().join("state.json"));
    config.state_save_interval = Duration::from_millis(100);

    let shards = start_shards(&config, &sim, 3).await;
    for shard in &shards {
        shard.wait_ready().await;
    }
    let each = converge_union(&shards, &sim, &ids).await;
    let owned: Vec<f64> = each
        .iter()
        .map(|m| m.value(names::OWNED_ASSOCIATIONS, &[]).number())
        .collect();
    assert_eq!(owned.iter().sum::<f64>(), 30.0, "{owned:?}");
    assert!(
        owned.iter().all(|n| (4.0..=16.0).contains(n)),
        "about a third each: {owned:?}"
    );
    for (i, m) in each.iter().enumerate() {
        assert_eq!(m.value(names::SHARD_ORDINAL, &[]), i as f64);
        assert_eq!(m.value(names::TOTAL_SHARDS, &[]), 3.0);
    }
    // Each association is polled by its owner only: about one poll each, not three of
    // each.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let polls = sim.request_count("DescribeAssociationExecutions") as f64;
    assert!(
        polls <= 30.0 + 5.0,
        "{polls} polls for 30 associations over 3 shards"
    );
    // Each shard's own calls: its associations' polls only (an unsharded run makes them all).
    let mut per_shard = Vec::new();
    for (shard, owned) in shards.iter().zip(&owned) {
        let m = shard.metrics().await;
        let calls = m
            .value(
                names::API_REQUESTS_TOTAL,
                &[
                    ("operation", "DescribeAssociationExecutions"),
                    ("code", "ok"),
                ],
            )
            .number();
        assert!(
            calls <= 2.0 * owned + 2.0,
            "{calls} polls for {owned} associations"
        );
        per_shard.push(calls);
    }
    assert_eq!(
        per_shard.iter().sum::<f64>(),
        polls,
        "{per_shard:?} vs {polls}"
    );
    assert!(
        per_shard.iter().all(|c| *c <= 0.6 * polls),
        "about a third each: {per_shard:?} of {polls}"
    );
    let before: Vec<BTreeMap<String, f64>> = each.iter().map(totals).collect();
    for shard in shards {
        shard.stop().await;
    }

    // The count goes down to 2: shards 0 and 1 keep what they owned (jump hash), shard 2's
    // associations move to them and start afresh there; nothing is lost or counted twice.
    let now = sim.now_ms();
    for id in &ids {
        sim.add_execution(id, run("c", "TimedOut", now));
    }
    let shards = start_shards(&config, &sim, 2).await;
    for shard in &shards {
        shard.wait_ready().await;
    }
    let each = converge_union(&shards, &sim, &ids).await;
    for (i, m) in each.iter().enumerate() {
        let after = totals(m);
        for (id, n) in &before[i] {
            let now = after.get(id).copied().unwrap_or(0.0);
            assert!(now >= *n, "shard {i}: {id} went down from {n} to {now}");
        }
        assert_eq!(m.value(names::TOTAL_SHARDS, &[]), 2.0);
    }
    for shard in shards {
        shard.stop().await;
    }
}

// --- changing the shard count and changing it back (issue 20) ---------------------------------

/// The shard (of `total`) that owns the association a series is about.
fn owner_of(labels: &BTreeMap<String, String>, total: u32) -> u32 {
    let scope = ScopeKey {
        account_id: labels["account_id"].clone(),
        region: labels["region"].clone(),
    };
    shard::owner(&scope, &labels["association_id"], total)
}

/// Every counter series each shard index has shown, across its restarts (a StatefulSet pod
/// keeps its name and so its series): a scrape showing one lower fails the test.
#[derive(Default)]
struct Seen(BTreeMap<(usize, String), f64>);

impl Seen {
    fn check(&mut self, shard: usize, m: &Metrics) {
        for (series, value) in &m.samples {
            if series.starts_with("ssm_association_executions_total{") {
                let key = (shard, series.clone());
                if let Some(previous) = self.0.insert(key, *value) {
                    assert!(
                        *value >= previous,
                        "shard {shard}: {series} went down from {previous} to {value}"
                    );
                }
            }
        }
    }
}

/// Starts `total` shards and checks their very first scrapes: each exports only what it owns
/// under `total`, whatever its state file holds from another count.
async fn restart_as(
    config: &ssm_association_exporter::config::Config,
    sim: &Simulator,
    total: u32,
    seen: &mut Seen,
) -> Vec<Exporter> {
    let shards = start_shards(config, sim, total).await;
    for (i, shard) in shards.iter().enumerate() {
        let m = shard.metrics().await;
        for (labels, _) in m.series(names::INFO, &[]) {
            assert_eq!(
                owner_of(&labels, total),
                i as u32,
                "shard {i} of {total} exports {} from its first scrape",
                labels["association_id"]
            );
        }
        seen.check(i, &m);
    }
    for shard in &shards {
        shard.wait_ready().await;
    }
    shards
}

/// Waits until each association's count, on the one shard exporting it, is `want(id)`;
/// every scrape is checked by `seen`, and no association is exported by two shards.
async fn wait_counts(
    shards: &[Exporter],
    seen: &mut Seen,
    what: &str,
    want: impl Fn(&str) -> f64,
) -> Vec<Metrics> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, each) = union(shards).await;
        let mut reason = None;
        let mut got = BTreeMap::new();
        for (i, m) in each.iter().enumerate() {
            seen.check(i, m);
            got.extend(totals(m));
        }
        for (id, n) in &got {
            if *n != want(id) {
                reason = Some(format!("{id}: {n}, want {}", want(id)));
            }
        }
        match reason {
            None => return each,
            Some(reason) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: {reason}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Executions of each association in the simulator.
fn truth_totals(sim: &Simulator) -> BTreeMap<String, f64> {
    sim.ground_truth()
        .executions
        .iter()
        .map(|(id, by_status)| (id.clone(), by_status.values().sum::<u64>() as f64))
        .collect()
}

fn add_runs(sim: &Simulator, ids: &[String], name: &str) {
    let now = sim.now_ms();
    for id in ids {
        sim.add_execution(id, run(name, "Failed", now - 1_000));
    }
}

/// Executions a shard absorbed from returns.
fn absorbed(m: &Metrics) -> f64 {
    m.value(names::HANDOFF_ABSORBED_EXECUTIONS_TOTAL, &[])
        .number()
}

async fn stop_all(shards: Vec<Exporter>) {
    for shard in shards {
        shard.stop().await;
    }
}

fn config_with_state(
    ids: &[String],
    dir: &std::path::Path,
) -> ssm_association_exporter::config::Config {
    let mut config = test_config(ids);
    config.full_sweep_interval = Duration::from_secs(3600);
    config.state_file = Some(dir.join("state.json"));
    config.state_save_interval = Duration::from_millis(100);
    config
}

/// 2 → 3 → 2 shards, restarted each time with the new count (state files kept). Going to 3,
/// the associations that move to the new shard leave shards 0 and 1 from their first scrape
/// (kept there retired, as moved away) and start afresh on shard 2 (at full value: no
/// increase). Going back to 2 they return to their old shard, which resumes their counters
/// and absorbs every run that ended before the return (shard 2 counted them): no increase, so
/// no alert for a run already alerted; runs after the return are counted. Counters never go
/// down; no association is exported twice; the rest stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_to_three_to_two_shards_counts_no_run_twice_and_exports_only_owned_associations() {
    let (sim, ids) = simulator_with(30).await;
    add_runs(&sim, &ids, "a");
    add_runs(&sim, &ids, "b");
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_state(&ids, dir.path());
    let mut seen = Seen::default();

    let shards = restart_as(&config, &sim, 2, &mut seen).await;
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "2 shards", |id| truth[id]).await;
    stop_all(shards).await;

    add_runs(&sim, &ids, "c");
    let shards = restart_as(&config, &sim, 3, &mut seen).await;
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "3 shards", |id| truth[id]).await;
    stop_all(shards).await;
    let scope = ScopeKey {
        account_id: ssm_simulator::DEFAULT_ACCOUNT.to_string(),
        region: ssm_simulator::DEFAULT_REGION.to_string(),
    };
    let moved: Vec<&String> = ids
        .iter()
        .filter(|id| shard::owner(&scope, id, 3) == 2)
        .collect();
    assert!(moved.len() >= 4, "{} of 30 moved", moved.len());

    // Back to 2: the moved ones return, with `c` and `d` counted by shard 2 (or while no
    // shard ran): absorbed. Their counters stay at the 2 runs of before the move.
    add_runs(&sim, &ids, "d");
    let shards = restart_as(&config, &sim, 2, &mut seen).await;
    let truth = truth_totals(&sim);
    let want = |id: &str| {
        if moved.iter().any(|m| *m == id) {
            2.0
        } else {
            truth[id]
        }
    };
    let each = wait_counts(&shards, &mut seen, "back to 2 shards", want).await;
    for (i, m) in each.iter().enumerate() {
        let returned = moved
            .iter()
            .filter(|id| shard::owner(&scope, id, 2) == i as u32)
            .count() as f64;
        // Their first poll absorbed `c` and `d` (`a` and `b` were its own already).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut m = m.clone();
        while absorbed(&m) != 2.0 * returned && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m = shards[i].metrics().await;
        }
        assert_eq!(absorbed(&m), 2.0 * returned, "shard {i}");
    }
    // A run after the return is counted once, by its owner.
    add_runs(&sim, &ids, "e");
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "a run after the return", |id| {
        if moved.iter().any(|m| *m == id) {
            3.0
        } else {
            truth[id]
        }
    })
    .await;
    stop_all(shards).await;
}

/// 3 → 2 → 3 with the volumes kept (a StatefulSet scaled down keeps shard 2's), shard 2
/// coming back a month later (its state file dated 30 days earlier): its file was written with
/// 3 shards and the count is 3 again, but its state is older than `max_backfill`, and other
/// shards owned its associations meanwhile, so it is a return, not a month of backfill; shards
/// 0 and 1 drop what moved back to shard 2 from their first scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_two_to_three_shards_with_kept_volumes_a_month_later_counts_no_run_twice() {
    let (sim, ids) = simulator_with(30).await;
    add_runs(&sim, &ids, "a");
    add_runs(&sim, &ids, "b");
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_state(&ids, dir.path());
    let mut seen = Seen::default();

    let shards = restart_as(&config, &sim, 3, &mut seen).await;
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "3 shards", |id| truth[id]).await;
    stop_all(shards).await;

    add_runs(&sim, &ids, "c");
    let shards = restart_as(&config, &sim, 2, &mut seen).await;
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "2 shards", |id| truth[id]).await;
    stop_all(shards).await;
    age_state_file(&dir.path().join("state.shard-2.json"), 30 * 24 * 3_600_000);
    let scope = ScopeKey {
        account_id: ssm_simulator::DEFAULT_ACCOUNT.to_string(),
        region: ssm_simulator::DEFAULT_REGION.to_string(),
    };
    let back: Vec<&String> = ids
        .iter()
        .filter(|id| shard::owner(&scope, id, 3) == 2)
        .collect();
    assert!(back.len() >= 4, "{} of 30 on shard 2", back.len());

    add_runs(&sim, &ids, "d");
    let shards = restart_as(&config, &sim, 3, &mut seen).await;
    let truth = truth_totals(&sim);
    let on_two = |id: &str| back.iter().any(|b| *b == id);
    let each = wait_counts(&shards, &mut seen, "3 shards again", |id| {
        if on_two(id) {
            2.0
        } else {
            truth[id]
        }
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut m = each[2].clone();
    while absorbed(&m) != 2.0 * back.len() as f64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = shards[2].metrics().await;
    }
    assert_eq!(absorbed(&m), 2.0 * back.len() as f64, "c and d of each");
    assert_eq!(absorbed(&each[0]), 0.0);
    assert_eq!(m.value(names::BACKFILL_TRUNCATED_TOTAL, &[]), 0.0);

    add_runs(&sim, &ids, "e");
    let truth = truth_totals(&sim);
    wait_counts(&shards, &mut seen, "a run after the return", |id| {
        if on_two(id) {
            3.0
        } else {
            truth[id]
        }
    })
    .await;
    stop_all(shards).await;
}
