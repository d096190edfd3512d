//! The sweep's cost bound (issue 21): an account and region with more quiet associations
//! than `full_sweep_max_polls_per_interval` × `full_sweep_interval` / `poll_interval` costs at
//! most the cap in sweep polls per listing, its sweep period stretches (and is published), and
//! every association is still swept once per period; through `run()`, the real SDK client and
//! the simulator.

use std::collections::HashMap;
use std::time::Duration;

use ssm_association_exporter::config::Selector;
use ssm_association_exporter::names;
use ssm_simulator::{Simulator, DEFAULT_ACCOUNT, DEFAULT_REGION};

use crate::common::*;

/// 600 quiet associations (none ran: their first polls need no call), the production ratio
/// of `poll_interval` to `full_sweep_interval` (1 : 60: 300 ms and 18 s) and the production cap
/// (5). Swept by `full_sweep_interval` they would cost 600 × 0.3 / 18 = 10 polls a listing;
/// capped, the period is ⌈600 / 5⌉ × 300 ms = 36 s, and it takes 120 listings, at 5 sweep
/// polls each, to sweep every association once; none is swept twice before all were swept.
/// Counted in listings (the simulator's record), not in wall-clock time: a slow machine
/// delays listings, never adds polls to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_quiet_scope_is_swept_at_the_cap_per_listing_each_association_once_a_period() {
    const N: usize = 600;
    let sim = Simulator::start().await.unwrap();
    sim.add_associations_in(DEFAULT_ACCOUNT, DEFAULT_REGION, N, "quiet");
    let mut config = test_config(&[]);
    config.discovery = vec![Selector::default()];
    config.poll_interval = Duration::from_millis(300);
    config.full_sweep_interval = Duration::from_secs(18);
    let cap = config.full_sweep_max_polls_per_interval;
    assert_eq!(cap, 5, "the production default");
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    let scope = [("account_id", DEFAULT_ACCOUNT), ("region", DEFAULT_REGION)];
    exporter
        .wait_for("the sweep period stretched to 36 s", |m| {
            let period = m.value(names::SWEEP_PERIOD_SECONDS, &scope);
            (period == 36.0).then_some(()).ok_or(format!("{period:?}"))
        })
        .await;

    // Until every association has been swept once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let requests = loop {
        let requests = sim.requests();
        let swept: std::collections::HashSet<&str> = requests
            .iter()
            .filter(|r| r.operation == "DescribeAssociationExecutions")
            .filter_map(|r| r.association_id.as_deref())
            .collect();
        if swept.len() == N {
            break requests;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {N} associations swept",
            swept.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Each poll by the listing that started it: the number of listings started before it.
    let mut listing = 0usize;
    let mut polls: Vec<(usize, &str)> = Vec::new();
    for r in &requests {
        if r.operation == "ListAssociations" && r.next_token.is_none() {
            listing += 1;
        } else if r.operation == "DescribeAssociationExecutions" {
            polls.push((listing, r.association_id.as_deref().unwrap()));
        }
    }
    // At most the cap per listing: in any run of listings, at most cap a listing, give or
    // take one listing's polls reaching the simulator after the next listing started.
    let mut per_listing = vec![0usize; listing + 1];
    for (at, _) in &polls {
        per_listing[*at] += 1;
    }
    for a in 0..per_listing.len() {
        for b in a..per_listing.len() {
            let n: usize = per_listing[a..=b].iter().sum();
            assert!(
                n <= cap * (b - a + 2),
                "{n} sweep polls in listings {a} to {b}: {per_listing:?}"
            );
        }
    }
    // Each association swept once per period: the first (full) listing's plan is made at its
    // end, and the next ⌈600 / 5⌉ = 120 listings hold every slot of the period (one more for a
    // slot just before the first poll); an association swept twice in that time was swept
    // again one period after its first sweep.
    let mut sweeps: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, id) in &polls {
        sweeps.entry(*id).or_default().push(*at);
    }
    let period = N / cap;
    let last_first = sweeps.values().map(|at| at[0]).max().unwrap();
    assert!(
        last_first >= period,
        "every association swept by listing {last_first}: more than {cap} a listing"
    );
    assert!(
        last_first <= period + 2,
        "the last association first swept at listing {last_first}: it waited past the period"
    );
    for (id, at) in &sweeps {
        assert!(
            at.windows(2).all(|w| w[1] - w[0] >= period - 1),
            "{id} swept at listings {at:?}"
        );
    }
    let m = exporter.metrics().await;
    assert!(m.value(names::POLLS_TOTAL, &[("reason", "sweep")]) >= N as f64);
    assert_eq!(m.value(names::POLLS_TOTAL, &[("reason", "first")]), 0.0);
    exporter.stop().await;
}
