//! The status page (`/`) and its JSON (`/api/v1/associations`, `/api/v1/associations/{id}`)
//! through `run()` against the simulator over real HTTP: escaping of API strings, long unicode
//! names, failing first, 404 for an unknown ID, basic auth like `/metrics`; and the real
//! binary's `--demo` page loaded by headless Chromium.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use ssm_association_exporter::web_config::WebConfig;
use ssm_association_exporter::Options;
use ssm_simulator::{SimAssociation, SimExecution, Simulator};

use crate::common::*;

const SCRIPT: &str = "<script>alert(1)</script>";

fn long_unicode_name() -> String {
    "Ünïcødé-名前-🚀-".chars().cycle().take(300).collect()
}

/// A simulator with three associations: one named like an XSS probe whose newest run failed,
/// one with a 300-character unicode name, one plain; each with a run.
async fn simulator() -> (Simulator, Vec<String>) {
    let sim = Simulator::start().await.expect("simulator starts");
    let ids: Vec<String> = (1..=3).map(assoc_id).collect();
    let names = [
        SCRIPT.to_string(),
        long_unicode_name(),
        "plain-one".to_string(),
    ];
    for (id, name) in ids.iter().zip(&names) {
        sim.add_association(
            id,
            SimAssociation::new("AWS-RunShellScript")
                .with_name(name.clone())
                .with_schedule("rate(30 minutes)"),
        );
    }
    let now = now_ms();
    sim.add_execution(
        &ids[0],
        SimExecution::new("e-1", "Failed", now - 60_000).with_last_execution_ms(now - 30_000),
    );
    sim.add_execution(
        &ids[1],
        SimExecution::new("e-2", "Success", now - 60_000).with_last_execution_ms(now - 30_000),
    );
    sim.add_execution(
        &ids[2],
        SimExecution::new("e-3", "Success", now - 60_000).with_last_execution_ms(now - 30_000),
    );
    (sim, ids)
}

/// Waits until the JSON list shows every association polled with a newest run.
async fn wait_for_rows(address: &str, headers: &[(&str, &str)]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = http_request_with(address, "GET", "/api/v1/associations", headers).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let json: Value = serde_json::from_str(&response.body).expect("valid JSON");
        let rows = json["associations"].as_array().unwrap();
        if rows.len() == 3 && rows.iter().all(|r| !r["newest"].is_null()) {
            return json;
        }
        assert!(Instant::now() < deadline, "rows never complete: {json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_escapes_api_strings_and_lists_failing_first() {
    let (sim, ids) = simulator().await;
    let exporter = Exporter::start(test_config(&ids), &sim).await;
    let json = wait_for_rows(&exporter.address, &[]).await;

    let rows = json["associations"].as_array().unwrap();
    assert_eq!(rows[0]["id"], ids[0].as_str(), "failing first");
    assert_eq!(rows[0]["name"], SCRIPT, "exact in JSON");
    assert_eq!(rows[0]["failing"], true);
    assert_eq!(rows[0]["newest"]["status"], "Failed");
    assert_eq!(rows[1]["name"], "plain-one", "then by name");
    assert_eq!(rows[2]["name"], long_unicode_name().as_str());
    assert_eq!(json["summary"]["total"], 3);
    assert_eq!(json["summary"]["failing"], 1);
    assert_eq!(json["summary"]["polling_errors"], 0);
    assert_eq!(json["credentials"][0]["valid"], true);
    let response = exporter.get("/api/v1/associations").await;
    assert_eq!(response.header("content-type"), Some("application/json"));
    // The raw body carries the name as a JSON string, not as markup to be interpreted.
    assert!(response.body.contains("\"<script>alert(1)</script>\""));

    let page = exporter.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(!page.body.contains(SCRIPT), "never raw in HTML");
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.body.contains(&long_unicode_name()));
    assert!(page.body.contains("<b id=\"failing\">1</b>"));
    assert!(page.body.contains("/metrics"), "the links stay");
    assert!(
        page.body.contains("<h2>Configuration</h2>"),
        "and the configuration"
    );
    let first_row = page.body.find("<tr class=\"association").unwrap();
    assert!(page.body[first_row..].starts_with("<tr class=\"association failing\""));

    let filtered = exporter.get("/api/v1/associations?q=PLAIN").await;
    let filtered: Value = serde_json::from_str(&filtered.body).unwrap();
    assert_eq!(filtered["matching"], 1);
    assert_eq!(filtered["associations"][0]["id"], ids[2].as_str());
    let filtered = exporter.get("/?q=%E5%90%8D%E5%89%8D").await;
    assert!(filtered.body.contains("1 of 3 associations"));

    let one = exporter
        .get(&format!("/api/v1/associations/{}", ids[0]))
        .await;
    assert_eq!(one.status, 200);
    let one: Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(one["name"], SCRIPT);
    // The pollers fill the recent executions (and their targets) once they read them; until
    // then the list is empty.
    let recent = one["recent_executions"].as_array().expect("a list");
    if let Some(newest) = recent.first() {
        assert_eq!(newest["id"], "e-1");
        assert_eq!(newest["status"], "Failed");
    }
    assert_eq!(
        one["console_url"],
        format!(
            "https://us-east-1.console.aws.amazon.com/systems-manager/state-manager/{}/description?region=us-east-1",
            ids[0]
        )
    );
    assert_eq!(
        exporter.get("/api/v1/associations/unknown-id").await.status,
        404
    );
    assert_eq!(exporter.get("/api/v1/associations/").await.status, 404);
    assert_eq!(exporter.get("/api/v1/other").await.status, 404);
    let post = http_request(&exporter.address, "POST", "/api/v1/associations").await;
    assert_eq!(post.status, 405);
    exporter.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_and_its_json_need_basic_auth_like_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pass-word", 4).unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  ops: {hash}\n")).unwrap();
    let web = WebConfig::load(&path).expect("valid web config");
    let (sim, ids) = simulator().await;
    let options = Options {
        web: Arc::new(web),
        ..Options::default()
    };
    let exporter = Exporter::start_with(test_config(&ids), &sim, options).await;
    let good = basic("ops", "pass-word");
    let json = wait_for_rows(&exporter.address, &[("Authorization", &good)]).await;
    assert_eq!(json["summary"]["total"], 3);

    let one = format!("/api/v1/associations/{}", ids[0]);
    for path in [
        "/",
        "/?q=x&page=2",
        "/api/v1/associations",
        one.as_str(),
        "/metrics",
    ] {
        for authorization in [
            None,
            Some(basic("ops", "wrong")),
            Some(basic("x", "pass-word")),
        ] {
            let headers: Vec<(&str, &str)> = authorization
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            let denied = http_request_with(&exporter.address, "GET", path, &headers).await;
            assert_eq!(denied.status, 401, "{path} {authorization:?}");
            assert!(!denied.body.contains("plain-one"));
            assert!(denied.header("www-authenticate").is_some());
        }
        let allowed =
            http_request_with(&exporter.address, "GET", path, &[("Authorization", &good)]).await;
        assert_eq!(allowed.status, 200, "{path}");
    }
    // The probes stay open.
    assert_eq!(exporter.get("/healthz").await.status, 200);
    exporter.stop().await;
}

/// Headless Chromium, required where `SSM_EXPORTER_REQUIRE_PROMTOOL` is set (scripts/test sets
/// it after scripts/install-test-tools installed it).
fn chromium() -> Option<&'static str> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(name);
        }
    }
    assert!(
        std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
        "headless Chromium is required: run scripts/install-test-tools (apt-get install chromium)"
    );
    eprintln!("chromium not found: skipping the browser test (run scripts/install-test-tools)");
    None
}

/// The real binary's `--demo` status page as a real browser builds its DOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_renders_the_demo_status_page() {
    let Some(chromium) = chromium() else { return };
    let port = free_port();
    let mut child = exporter_command()
        .arg("--demo")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    // Until every demo association has been polled.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            let body = http_request(&address, "GET", "/api/v1/associations")
                .await
                .body;
            if let Ok(json) = serde_json::from_str::<Value>(&body) {
                let rows = json["associations"].as_array().cloned().unwrap_or_default();
                if !rows.is_empty() && rows.iter().all(|r| r["polled"] == true) {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the demo never polled its associations"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let url = format!("http://{address}/");
        let profile = profile.path().to_path_buf();
        move || {
            Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--dump-dom")
                .arg(url)
                .stdin(Stdio::null())
                .output()
                .expect("chromium runs")
        }
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains("id=\"summary\""),
        "no summary in the DOM: {dom}"
    );
    assert!(dom.contains("id=\"total\""));
    assert!(dom.contains("id=\"failing\""));
    let rows = dom.matches("<tr class=\"association").count();
    assert!(rows >= 1, "no association row in the DOM: {dom}");
    assert!(dom.contains("console.aws.amazon.com/systems-manager/state-manager/"));
    assert!(dom.contains("<h2>Configuration</h2>"));
}
