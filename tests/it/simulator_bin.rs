//! The `ssm-simulator` binary: it announces its address on the first stdout line, writes an
//! exporter config the exporter accepts, serves the promised history to the exporter's `run()`
//! and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use ssm_association_exporter::config;
use ssm_association_exporter::ssm::ClientSettings;
use ssm_association_exporter::{run, Options};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_ssm-simulator");

/// Kills the simulator when a test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_history_it_announces_to_the_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("bench.yaml");
    let child = Command::new(BIN)
        .args([
            "--associations",
            "3",
            "--executions",
            "7",
            "--page-size",
            "2",
        ])
        .args(["--history", "20m", "--new-executions-per-second", "0"])
        .arg("--config-out")
        .arg(&config_path)
        .args(["--poll-interval", "1h", "--api-requests-per-second", "1000"])
        .args(["--max-concurrent-requests", "2", "--initial-lookback", "2h"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("simulator starts");
    let mut sim = Running(child);
    let mut first = String::new();
    BufReader::new(sim.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let endpoint = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    let config = config::load(&config_path).expect("the written config is valid");
    assert_eq!(config.associations.len(), 3);
    assert_eq!(config.poll_interval, Duration::from_secs(3600));
    assert_eq!(config.api_requests_per_second, 1000.0);
    assert_eq!(config.max_concurrent_requests, 2);
    let ids: Vec<String> = config.associations.iter().map(|a| a.id.clone()).collect();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = Options {
        client: ClientSettings {
            endpoint_url: Some(endpoint),
            fake_credentials: true,
        },
        ..Options::default()
    };
    let exporter = tokio::spawn(run(config, options, listener, async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http_request(&address, "GET", "/readyz").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = http_request(&address, "GET", "/metrics").await.body;
    let metrics = Metrics::parse(&body);
    for id in &ids {
        let counted: f64 = metrics
            .series(
                "ssm_association_executions_total",
                &[("association_id", id)],
            )
            .iter()
            .map(|(_, v)| v)
            .sum();
        assert_eq!(counted, 7.0, "{id}\n{body}");
        assert_eq!(
            metrics.value(
                "ssm_association_exporter_poll_success",
                &[("association_id", id)]
            ),
            1.0
        );
    }
    let _ = stop.send(());
    exporter.await.unwrap().unwrap();

    // SIGTERM ends it cleanly.
    let pid = sim.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = sim.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
