//! Tag selectors (issue 21): tags are read off the listing's path, in the background through
//! the request budget's leftover, only for associations this shard would watch and no other
//! selector took, and kept in the state file so a restart does not read them again.

use ssm_association_exporter::names;
use ssm_association_exporter::shard::{self, Shard};
use std::time::Duration;

use ssm_association_exporter::config::{Config, Pattern, Selector};
use ssm_association_exporter::model::ScopeKey;
use ssm_association_exporter::Options;
use ssm_simulator::{Fault, FaultRule, SimExecution, Simulator, DEFAULT_ACCOUNT, DEFAULT_REGION};

use crate::common::*;

const TAGS: &str = "ListTagsForResource";

fn tag_selector() -> Selector {
    Selector {
        tags: [("team".to_string(), "platform".to_string())].into(),
        ..Selector::default()
    }
}

/// `n` associations (`assoc-0` .. ), all but the first tagged `team=platform`, each with one
/// finished run; a config whose discovery takes the tagged ones.
async fn tagged_estate(n: u32) -> (Simulator, Vec<String>, Config) {
    let (sim, ids) = simulator_with(n).await;
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sim.set_tags_in(DEFAULT_ACCOUNT, DEFAULT_REGION, id, [("team", "platform")]);
        }
        let created = sim.now_ms() - 120_000;
        sim.add_execution(
            id,
            SimExecution::new(format!("run-{i}"), "Success", created)
                .with_last_execution_ms(created + 20_000),
        );
    }
    let mut config = test_config(&[]);
    config.discovery = vec![tag_selector()];
    (sim, ids, config)
}

fn tag_reads(m: &Metrics) -> f64 {
    m.series(names::API_REQUESTS_TOTAL, &[("operation", TAGS)])
        .iter()
        .map(|(_, v)| v)
        .sum()
}

/// Every tag read slow (300 ms) at 20 requests/s: an association selected by name is polled
/// and exact without waiting for the tag reads (its first poll comes before half of them), and
/// the tagged ones are selected as their tags arrive. Reading tags inside the listing polled
/// nothing until every tag had been read.
#[tokio::test]
async fn slow_tag_reads_hold_up_neither_the_listing_nor_the_polls() {
    let (sim, ids, mut config) = tagged_estate(25).await;
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_millis(300)))
            .operation(TAGS)
            .forever(),
    );
    config.api_requests_per_second = 20.0;
    config.discovery.push(Selector {
        association_name: Some(Pattern::new("assoc-0").unwrap()),
        ..Selector::default()
    });
    let exporter = Exporter::start(config, &sim).await;
    let truth = sim.ground_truth();
    exporter
        .wait_for("the association selected by name exact", |m| {
            matches_ground_truth(m, &truth, &ids[..1])
        })
        .await;
    let requests = sim.requests();
    let first_poll = requests
        .iter()
        .position(|r| r.operation != TAGS && r.association_id.as_deref() == Some(&ids[0]))
        .expect("the association selected by name was polled");
    let tags_before = requests[..first_poll]
        .iter()
        .filter(|r| r.operation == TAGS)
        .count();
    assert!(
        tags_before < 12,
        "the name-only association's first poll waited for {tags_before} tag reads (of 24)"
    );
    let m = exporter
        .wait_for("every tagged association watched and exact", |m| {
            let n = m.value(names::ASSOCIATIONS_WATCHED, &[]);
            (n == 25.0).then_some(()).ok_or(format!("{n} watched"))?;
            matches_ground_truth(m, &truth, &ids)
        })
        .await;
    assert_eq!(
        sim.request_count("ListTagsForResource"),
        24,
        "the tags of the name-selected association are not read; the others' once"
    );
    assert_eq!(tag_reads(&m), 24.0);
    exporter.stop().await;
}

/// Two shards: each reads the tags of the associations it owns and of no other.
#[tokio::test]
async fn each_shard_reads_only_the_tags_of_the_associations_it_owns() {
    let (sim, ids, config) = tagged_estate(21).await;
    let scope = ScopeKey {
        account_id: DEFAULT_ACCOUNT.to_string(),
        region: DEFAULT_REGION.to_string(),
    };
    let mut shards = Vec::new();
    for index in 0..2 {
        let options = Options {
            shard: Shard::new(index, 2).unwrap(),
            ..Options::default()
        };
        shards.push(Exporter::start_with(config.clone(), &sim, options).await);
    }
    for (index, exporter) in shards.iter().enumerate() {
        let owned = ids
            .iter()
            .filter(|id| shard::owner(&scope, id, 2) == index as u32)
            .count();
        let tagged_owned = owned - usize::from(shard::owner(&scope, &ids[0], 2) == index as u32);
        let m = exporter
            .wait_for("the shard's tagged associations watched", |m| {
                let n = m.value(names::ASSOCIATIONS_WATCHED, &[]);
                (n == tagged_owned as f64)
                    .then_some(())
                    .ok_or(format!("{n} of {tagged_owned}"))
            })
            .await;
        assert!(
            tagged_owned > 0 && owned < ids.len(),
            "the split is not trivial"
        );
        assert_eq!(
            tag_reads(&m),
            owned as f64,
            "shard {index} reads the tags of its {owned} associations only"
        );
    }
    assert_eq!(sim.request_count(TAGS), ids.len() as u64);
    for exporter in shards {
        exporter.stop().await;
    }
}

/// A restart within `discovery_interval` reads no tag again: they are in the state file.
#[tokio::test]
async fn a_restart_reads_no_tags_read_within_the_discovery_interval() {
    let (sim, ids, mut config) = tagged_estate(4).await;
    let dir = tempfile::tempdir().unwrap();
    config.state_file = Some(dir.path().join("state.json"));
    let exporter = Exporter::start(config.clone(), &sim).await;
    let truth = sim.ground_truth();
    exporter
        .wait_for("the tagged associations exact", |m| {
            let n = m.value(names::ASSOCIATIONS_WATCHED, &[]);
            (n == 3.0).then_some(()).ok_or(format!("{n} watched"))?;
            matches_ground_truth(m, &truth, &ids[1..])
        })
        .await;
    assert_eq!(sim.request_count(TAGS), 4);
    // Saved (every 200 ms) with the tags.
    tokio::time::sleep(Duration::from_millis(600)).await;
    exporter.stop().await;
    sim.clear_requests();

    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    exporter
        .wait_for("the tagged associations watched again", |m| {
            let n = m.value(names::ASSOCIATIONS_WATCHED, &[]);
            (n == 3.0).then_some(()).ok_or(format!("{n} watched"))?;
            matches_ground_truth(m, &truth, &ids[1..])
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        sim.request_count(TAGS),
        0,
        "tags read within discovery_interval come from the state file"
    );
    exporter.stop().await;
}
