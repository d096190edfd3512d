//! How long `/` and `/api/v1/associations` take to render at 10,000 associations: builds a
//! synthetic store (a tenth failing, each with ten recent runs and five failing targets), then
//! times 100 renderings of each, each from a fresh snapshot as a request makes one, and prints
//! p50, p99 and max. Run it with `bench/status-page` (a release build). Exits 1 when a p99 is
//! above 200 ms.

use std::time::Instant;

use ssm_association_exporter::model::{AssociationInfo, FinalStatus, ScopeKey};
use ssm_association_exporter::status::{self, Credentials, Query, Snapshot};
use ssm_association_exporter::store::{
    Exposed, Live, Newest, RecentExecution, Store, TargetDetail, RECENT_EXECUTIONS,
};
use ssm_association_exporter::tracker::Tracker;

const ASSOCIATIONS: usize = 10_000;
const RENDERS: usize = 100;
const TARGET_P99_MS: f64 = 200.0;

fn store(now_ms: i64) -> Store {
    let store = Store::default();
    for i in 0..ASSOCIATIONS {
        let failing = i % 10 == 0;
        let status = if failing {
            FinalStatus::Failed
        } else {
            FinalStatus::Success
        };
        let recent: Vec<_> = (0..RECENT_EXECUTIONS)
            .map(|k| RecentExecution {
                id: format!("{i:08x}-exec-{k}"),
                status,
                created_ms: now_ms - (k as i64 + 1) * 1_800_000,
                ended_ms: Some(now_ms - (k as i64 + 1) * 1_800_000 + 60_000),
                resources: vec![("Failed".into(), 5), ("Success".into(), 20)],
                targets: if failing {
                    (0..5)
                        .map(|t| TargetDetail {
                            resource_id: format!("i-{i:08x}{t:09x}"),
                            resource_type: "ManagedInstance".into(),
                            status: "Failed".into(),
                            detailed_status: "Failed: script exited with code 1 <stderr>".into(),
                            output_source_type: "RunCommand".into(),
                            output_source_id: format!("{i:08x}-cmd-{k}-{t}"),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                targets_left_out: 0,
            })
            .collect();
        let exposed = Exposed {
            info: Some(AssociationInfo {
                name: format!("team-{}-patch-fleet-{i:05}-{}", i % 37, "x".repeat(i % 60)),
                document_name: "AWS-RunPatchBaseline".into(),
                schedule_expression: "rate(30 minutes)".into(),
                ..AssociationInfo::default()
            }),
            newest: Some(Newest {
                status,
                created_ms: now_ms - 1_800_000,
                resources: vec![("Failed".into(), 5), ("Success".into(), 20)],
                alarms: Vec::new(),
            }),
            last_success_ms: Some(now_ms - 3_600_000),
            schedule_interval_seconds: Some(1800.0),
            polled: true,
            poll_success: i % 50 != 0,
            last_error: (i % 50 == 0)
                .then(|| ("ThrottlingException".into(), "Rate exceeded".into())),
            last_poll_success_ms: Some(now_ms - 30_000),
            recent: recent.into(),
            ..Exposed::default()
        };
        let scope = ScopeKey {
            account_id: format!("{:012}", 100_000_000_000u64 + (i % 4) as u64),
            region: ["us-east-1", "eu-west-1"][i % 2].into(),
        };
        let id = format!("{i:08x}-0000-4000-8000-{i:012x}");
        store
            .insert(
                &id,
                &scope,
                Live {
                    tracker: Tracker::new(3_600_000, 600_000),
                    exposed,
                },
            )
            .publish();
    }
    store
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn time(what: &str, mut render: impl FnMut() -> usize) -> f64 {
    let mut times = Vec::with_capacity(RENDERS);
    let mut bytes = 0;
    for _ in 0..RENDERS {
        let start = Instant::now();
        bytes = render();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let p99 = percentile(&times, 99.0);
    println!(
        "{what:<40} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({bytes} bytes)",
        percentile(&times, 50.0),
        p99,
        times[times.len() - 1],
    );
    p99
}

fn main() {
    let now_ms = ssm_association_exporter::now_ms();
    let store = store(now_ms);
    let credentials = || {
        (0..4)
            .flat_map(|a| {
                ["us-east-1", "eu-west-1"].map(|r| Credentials {
                    account_id: format!("{:012}", 100_000_000_000u64 + a),
                    region: r.into(),
                    valid: true,
                })
            })
            .collect::<Vec<_>>()
    };
    println!(
        "status page at {ASSOCIATIONS} associations, {RENDERS} renders each (snapshot + render):"
    );
    let first = Query::parse(None);
    let filtered = Query::parse(Some("q=team-3-&page=2"));
    let p99s = [
        time("GET /", || {
            let s = Snapshot::take(&store, credentials(), now_ms);
            status::render_html(&s, &first, "").len()
        }),
        time("GET /?q=team-3-&page=2", || {
            let s = Snapshot::take(&store, credentials(), now_ms);
            status::render_html(&s, &filtered, "").len()
        }),
        time("GET /api/v1/associations", || {
            let s = Snapshot::take(&store, credentials(), now_ms);
            status::render_json(&s, &first).len()
        }),
        time("GET /api/v1/associations/{id}", || {
            let s = Snapshot::take(&store, credentials(), now_ms);
            status::render_one_json(&s, "00000000-0000-4000-8000-000000000000")
                .map_or(0, |b| b.len())
        }),
    ];
    let worst = p99s.iter().cloned().fold(0.0, f64::max);
    if worst > TARGET_P99_MS {
        println!("FAIL: p99 {worst:.1} ms is above the {TARGET_P99_MS} ms target");
        std::process::exit(1);
    }
    println!("ok: every p99 within the {TARGET_P99_MS} ms target");
}
