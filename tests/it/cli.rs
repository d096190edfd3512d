//! The real binary: `--config.check`, exit codes, the standard endpoint override
//! (`AWS_ENDPOINT_URL_SSM`), `--demo`, and graceful shutdown on SIGTERM/SIGINT.

use ssm_association_exporter::names;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use ssm_simulator::SimExecution;

const BIN: &str = env!("CARGO_BIN_EXE_ssm-association-exporter");

fn exporter() -> Command {
    exporter_command()
}

fn run_to_end(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("binary runs")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the child to exit, at most `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the exporter did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_check_accepts_a_valid_file_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "associations:\n  - 8dfe3659-4309-493a-8755-0123456789ab\npoll_interval: 2m\n",
    );
    let out = run_to_end(
        exporter()
            .arg(format!("--config.file={}", path.display()))
            .arg("--config.check"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(stdout.contains("2m"), "{stdout}");
}

#[test]
fn config_check_rejects_an_invalid_file_with_exit_code_2_and_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "associations:\n  - 8dfe3659-4309-493a-8755-0123456789ab\npoll_intervall: 2m\n",
    );
    let out = run_to_end(
        exporter()
            .arg(format!("--config.file={}", path.display()))
            .arg("--config.check"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!(
            "{}:3:1: poll_intervall: unknown key",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_invalid_config_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "associations: []\n");
    let port = free_port();
    let started = Instant::now();
    let out = run_to_end(
        exporter()
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("associations"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // It never listened: the port is still free.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port was never bound");
}

#[test]
fn a_missing_config_file_is_exit_code_2() {
    let out = run_to_end(
        exporter()
            .arg("--config.file=/nonexistent/exporter.yaml")
            .arg("--config.check"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/exporter.yaml"));
}

#[test]
fn an_address_in_use_is_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "associations:\n  - 8dfe3659-4309-493a-8755-0123456789ab\n",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run_to_end(
        exporter()
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--web.listen-address={}",
                taken.local_addr().unwrap()
            )),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let port = free_port();
    let out = run_to_end(
        exporter()
            .arg("--healthcheck")
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("healthcheck failed"));
}

#[test]
fn bad_flags_are_exit_code_2() {
    let out = run_to_end(exporter().arg("--log.level=loud"));
    assert_eq!(out.status.code(), Some(2));
    let out = run_to_end(exporter().arg("--demo").arg("--web.max-connections=0"));
    assert_eq!(out.status.code(), Some(2));
    let out = run_to_end(exporter().arg("--demo").arg("--web.telemetry-path=metrics"));
    assert_eq!(out.status.code(), Some(2));
    let out = run_to_end(
        exporter()
            .arg("--demo")
            .arg("--web.telemetry-path=/healthz"),
    );
    assert_eq!(out.status.code(), Some(2));
}

/// Shard flags that cannot work stop the binary before anything starts; a StatefulSet pod name
/// gives the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_flags_are_checked_and_the_pod_name_gives_the_shard() {
    for args in [
        &["--shard=3", "--total-shards=3"][..],
        &["--total-shards=0"][..],
        &["--shard.from-hostname", "--shard=1", "--total-shards=3"][..],
    ] {
        let out = run_to_end(exporter().arg("--demo").args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("shard"),
            "{args:?}"
        );
    }
    let out = run_to_end(
        exporter()
            .env("HOSTNAME", "ssm-association-exporter")
            .args(["--demo", "--shard.from-hostname", "--total-shards=3"]),
    );
    assert_eq!(out.status.code(), Some(2));

    let port = free_port();
    let mut child = exporter()
        .env("HOSTNAME", "ssm-association-exporter-2")
        .args(["--demo", "--shard.from-hostname", "--total-shards=3"])
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            let response = http_request(&address, "GET", "/metrics").await;
            if response.status == 200 {
                break response.body;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let m = Metrics::parse(&body);
    assert_eq!(m.value(names::SHARD_ORDINAL, &[]), 2.0);
    assert_eq!(m.value(names::TOTAL_SHARDS, &[]), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_honours_aws_endpoint_url_ssm_and_stops_cleanly_on_sigterm() {
    let (sim, ids) = simulator_with(1).await;
    let created = now_ms() - 120_000;
    sim.add_execution(
        &ids[0],
        SimExecution::new("bin-1", "Failed", created).with_last_execution_ms(created + 3_000),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &format!("associations:\n  - {}\npoll_interval: 1s\n", ids[0]),
    );
    let port = free_port();
    let mut child = exporter()
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .arg(format!("--config.file={}", path.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.format=json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = try_get(&address, "/metrics").await {
            let m = Metrics::parse(&body);
            if m.value(
                names::EXECUTIONS_TOTAL,
                &[("association_id", &ids[0]), ("status", "Failed")],
            ) == 1.0
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the binary never exported the execution"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = run_to_end(
        exporter()
            .arg("--healthcheck")
            .arg(format!("--web.listen-address=:{port}")),
    );
    assert_eq!(
        health.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let mut logs = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs:\n{logs}"
    );
    assert!(logs.contains("received SIGTERM"), "{logs}");
    assert!(
        !logs.contains("fake-secret-for-tests"),
        "the secret key must never be logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_serves_counts_within_seconds_and_stops_on_sigint() {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SSM")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .arg("--demo")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let mut counted = 0.0;
    while started.elapsed() < Duration::from_secs(15) {
        if let Some(body) = try_get(&address, "/metrics").await {
            let m = Metrics::parse(&body);
            counted = m
                .series(names::EXECUTIONS_TOTAL, &[])
                .iter()
                .map(|(_, v)| v)
                .sum();
            let failures: f64 = m
                .series(names::EXECUTIONS_TOTAL, &[("status", "Failed")])
                .iter()
                .map(|(_, v)| v)
                .sum();
            if counted > 0.0 && failures > 0.0 && try_get(&address, "/readyz").await.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted > 0.0, "demo exported no executions within 15s");
    assert!(
        try_get(&address, "/readyz").await.is_some(),
        "demo not ready within 15s"
    );
    signal(&child, "INT");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(5)).code(),
        Some(0)
    );
}

/// GET that tolerates the server not listening yet; `Some(body)` on 200.
async fn try_get(address: &str, path: &str) -> Option<String> {
    tokio::net::TcpStream::connect(address).await.ok()?;
    let response = http_request(address, "GET", path).await;
    (response.status == 200).then_some(response.body)
}

/// The "Flags" table of docs/configuration.md: (flag, default column) of each
/// `| \`--flag...\`` row.
fn readme_flags() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo_path("docs/configuration.md")).unwrap();
    let table = readme
        .split("### Flags")
        .nth(1)
        .expect("docs/configuration.md has a Flags section");
    let mut flags = Vec::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for flag in cells[1].split(", ") {
            if let Some(name) = flag.strip_prefix("`--") {
                let name = name.trim_end_matches('`');
                let name = name.split('=').next().unwrap();
                flags.push((format!("--{name}"), cells[2].trim_matches('`').to_string()));
            }
        }
    }
    flags
}

/// Every flag of the real binary's `--help` is in the README's Flags table with the same
/// default, and the table has no flag the binary lacks.
#[test]
fn the_readme_documents_every_flag_with_its_default() {
    let help = run_to_end(exporter().arg("--help"));
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let mut from_help: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines() {
        let Some(at) = line.find("--") else { continue };
        let name: String = line[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let default = line
            .split("[default: ")
            .nth(1)
            .map(|d| d.split(']').next().unwrap().to_string());
        from_help.push((name, default));
    }
    assert!(from_help.len() >= 10, "--help lists too few flags: {help}");
    let readme = readme_flags();
    for (flag, default) in &from_help {
        let row = readme.iter().find(|(f, _)| f == flag);
        let Some((_, documented)) = row else {
            panic!("{flag} is in --help but not in the README's Flags table");
        };
        if let Some(default) = default {
            assert_eq!(documented, default, "README default of {flag}");
        }
    }
    for (flag, _) in &readme {
        assert!(
            from_help.iter().any(|(f, _)| f == flag),
            "the README documents {flag}, which --help does not list"
        );
    }
}
