//! End to end with a real Prometheus (Debian's `prometheus` package): the exporter polls the
//! simulated SSM endpoint, Prometheus scrapes it every second with deploy/prometheus/alerts.yml
//! loaded, and its HTTP API must show the target up, the simulator's ground truth in the stored
//! counters, and the failed-execution alert firing while the others stay quiet, every rule
//! healthy, a duration quantile per association and every dashboard query answering, all on the
//! default `metrics:` setting.

use ssm_association_exporter::names;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;
use ssm_simulator::SimExecution;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn api(address: &str, path: &str) -> Value {
    let response = http_request(address, "GET", path).await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    let value: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(value["status"], "success", "{path}: {}", response.body);
    value["data"].clone()
}

/// Polls `check` (Ok = done) every 200 ms for up to `limit`.
async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_true_counts_and_fires_the_failure_alert() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
            "prometheus is required (apt-get install prometheus)"
        );
        eprintln!("prometheus not found: skipping (scripts/test installs it)");
        return;
    }
    let (sim, ids) = simulator_with(2).await;
    let (flaky, healthy) = (&ids[0], &ids[1]);
    let t0 = now_ms();
    for (i, id) in ids.iter().enumerate() {
        for n in 0..5 {
            let created = t0 - 40 * 60_000 + n * 60_000 + i as i64;
            sim.add_execution(
                id,
                SimExecution::new(format!("ok-{n}"), "Success", created)
                    .with_last_execution_ms(created + 20_000),
            );
        }
    }
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    exporter.wait_ready().await;

    let dir = tempfile::tempdir().unwrap();
    let rules = crate::common::repo_path("deploy/prometheus/alerts.yml");
    let rules = rules.display();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: ssm-association-exporter\n    static_configs:\n      - targets: ['{}']\n",
        exporter.address
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let prom_address = format!("127.0.0.1:{port}");
    let _prometheus = KillOnDrop(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_address}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );

    // The target is up.
    eventually("the target to be up", Duration::from_secs(30), async || {
        let Ok(_) = tokio::net::TcpStream::connect(&prom_address).await else {
            return Err("prometheus not listening yet".to_string());
        };
        let targets = api(&prom_address, "/api/v1/targets").await;
        match targets["activeTargets"][0]["health"].as_str() {
            Some("up") => Ok(()),
            other => Err(format!("health {other:?}")),
        }
    })
    .await;
    // Let Prometheus store a few samples of the quiet state, then failures happen.
    eventually("a few scrapes", Duration::from_secs(20), async || {
        let data = api(
            &prom_address,
            &format!("/api/v1/query?query={}", encode("count_over_time(up[1m])")),
        )
        .await;
        let n: f64 = data["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap();
        if n >= 3.0 {
            Ok(())
        } else {
            Err(format!("{n} scrapes"))
        }
    })
    .await;
    let now = now_ms();
    sim.add_execution(
        flaky,
        SimExecution::new("bad-1", "Failed", now - 30_000)
            .with_last_execution_ms(now - 20_000)
            .with_resource_count_by_status("{Failed=2,Success=8}"),
    );
    sim.add_execution(
        flaky,
        SimExecution::new("bad-2", "TimedOut", now - 25_000).with_last_execution_ms(now - 5_000),
    );
    sim.add_execution(
        flaky,
        SimExecution::new("good-after", "Success", now - 10_000)
            .with_last_execution_ms(now - 2_000),
    );
    sim.add_execution(
        healthy,
        SimExecution::new("good-1", "Success", now - 10_000).with_last_execution_ms(now - 1_000),
    );
    let truth = sim.ground_truth();

    // The counters Prometheus stored equal the ground truth, series by series.
    eventually(
        "Prometheus to store the ground truth",
        Duration::from_secs(30),
        async || {
            let data = api(
                &prom_address,
                &format!("/api/v1/query?query={}", encode(names::EXECUTIONS_TOTAL)),
            )
            .await;
            let mut seen = 0;
            for sample in data["result"].as_array().unwrap() {
                let id = sample["metric"]["association_id"].as_str().unwrap();
                let status = sample["metric"]["status"].as_str().unwrap();
                let stored: f64 = sample["value"][1].as_str().unwrap().parse().unwrap();
                let want = truth
                    .executions
                    .get(id)
                    .and_then(|m| m.get(status))
                    .copied()
                    .unwrap_or(0) as f64;
                if stored != want {
                    return Err(format!("{id} {status}: stored {stored}, truth {want}"));
                }
                seen += 1;
            }
            if seen == 10 {
                Ok(())
            } else {
                Err(format!("{seen} series"))
            }
        },
    )
    .await;

    // The failure alert fires for the flaky association only; nothing else fires or is pending.
    let alerts = eventually(
        "SSMAssociationExecutionFailed to fire",
        Duration::from_secs(30),
        async || {
            let alerts = api(&prom_address, "/api/v1/alerts").await["alerts"].clone();
            let firing = alerts.as_array().unwrap().iter().any(|a| {
                a["labels"]["alertname"] == "SSMAssociationExecutionFailed"
                    && a["state"] == "firing"
            });
            if firing {
                Ok(alerts)
            } else {
                Err(format!("alerts: {alerts}"))
            }
        },
    )
    .await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "only the failure alert is active: {alerts:?}"
    );
    assert_eq!(alerts[0]["labels"]["association_id"], flaky.as_str());
    // And it keeps quiet about the healthy association after several more evaluations.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = api(&prom_address, "/api/v1/alerts").await["alerts"].clone();
    let names: Vec<String> = later
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["labels"]["alertname"], a["labels"]["association_id"]
            )
        })
        .collect();
    assert_eq!(
        names,
        [format!("\"SSMAssociationExecutionFailed\":\"{flaky}\"")]
    );
    // Every recording and alerting rule evaluates without error on the default metric shapes.
    let groups = api(&prom_address, "/api/v1/rules").await["groups"].clone();
    for group in groups.as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "{rule}");
        }
    }
    // The dashboard's and README's p90 per association works on the default histogram (one per
    // association, every status together).
    let p90 = "histogram_quantile(0.9, sum by (association_id, le) \
               (rate(ssm_association_execution_duration_seconds_bucket[1m])))";
    eventually(
        "a p90 per association",
        Duration::from_secs(30),
        async || {
            let data = api(
                &prom_address,
                &format!("/api/v1/query?query={}", encode(p90)),
            )
            .await;
            let ids: Vec<&str> = data["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["value"][1] != "NaN")
                .filter_map(|r| r["metric"]["association_id"].as_str())
                .collect();
            if ids.len() == 2 {
                Ok(())
            } else {
                Err(format!("{data}"))
            }
        },
    )
    .await;
    // Every dashboard query runs on the default shapes (variables set to "every value"); the
    // panels of the exporter's internals show their exporter-wide series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::repo_path("deploy/grafana/dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() > 20, "{exprs:?}");
    for expr in exprs {
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$cluster", ".*")
            .replace("$job", ".*")
            .replace("$instance", ".*")
            .replace("$account_id", ".*")
            .replace("$region", ".*")
            .replace("$association_id", ".*");
        let data = api(
            &prom_address,
            &format!("/api/v1/query?query={}", encode(&query)),
        )
        .await;
        if expr.contains(names::POLL_DELAY_SECONDS) {
            let ids: Vec<&str> = data["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["metric"]["association_id"].as_str())
                .collect();
            assert_eq!(ids, ["all associations"], "{query}: {data}");
        }
    }
    exporter.stop().await;
}

/// The `expr` of every target of every panel, rows included.
fn collect_exprs(panels: &Value, out: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        collect_exprs(&panel["panels"], out);
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(expr.to_string());
            }
        }
    }
}
