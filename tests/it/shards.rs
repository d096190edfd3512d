//! Sharding: several shard processes (`run()` with `--shard`/`--total-shards`) against one
//! simulated estate: every association exported by exactly one shard, the union exact, polls
//! split between the shards, and a change of the shard count that loses and repeats nothing.

use ssm_association_exporter::names;
use std::collections::BTreeMap;
use std::time::Duration;

use ssm_association_exporter::shard::Shard;
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
    (
        Metrics {
            samples,
            text: String::new(),
        },
        each,
    )
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
