//! The `ssm-simulator` binary: it announces its address on the first stdout line, writes the
//! exporter config listing its associations, serves the promised history through the real
//! `aws-sdk-ssm` client and stops on SIGTERM. (The exporter's own tests check that it accepts
//! the config format, `ExporterConfig`.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ssm_simulator::ExporterConfig;

use crate::api::client_for;

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
async fn serves_the_history_it_announces() {
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

    let written = std::fs::read_to_string(&config_path).expect("the config is written");
    let ids: Vec<String> = written
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 3, "{written}");
    let expected = ExporterConfig {
        poll_interval: "1h".into(),
        initial_lookback: "2h".into(),
        api_requests_per_second: 1000.0,
        max_concurrent_requests: 2,
    };
    assert_eq!(written, expected.yaml(&ids));

    let client = client_for(&endpoint).await;
    for id in &ids {
        let mut pages = 0;
        let mut executions = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .describe_association_executions()
                .association_id(id)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            pages += 1;
            executions.extend(page.association_executions().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(executions.len(), 7, "{id}");
        assert_eq!(pages, 4, "pages of at most 2");
        let description = client
            .describe_association()
            .association_id(id)
            .send()
            .await
            .unwrap();
        let name = description
            .association_description()
            .and_then(|d| d.association_name())
            .unwrap_or_default()
            .to_owned();
        assert!(name.starts_with("bench-"), "{name}");
    }

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
