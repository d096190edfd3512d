//! The `ssm-simulator` binary: it announces its address on the first stdout line, writes the
//! exporter config listing its associations, serves the promised history through the real
//! `aws-sdk-ssm` client and stops on SIGTERM. (The exporter's own tests check that it accepts
//! the config format, `ExporterConfig`.) In estate mode: associations spread over accounts and
//! regions, member roles, the discovery config, the activity and the request counts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use ssm_simulator::{EstateAccount, ExporterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::client_for;

const BIN: &str = env!("CARGO_BIN_EXE_ssm-simulator");

/// Starts the binary with `args`; returns it and the endpoint of its first stdout line.
fn start(args: &[&str]) -> (Running, String) {
    let child = Command::new(BIN)
        .args(args)
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
    (sim, endpoint)
}

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

/// `GET path` on `address` (HTTP/1.1, `Connection: close`): status and body.
async fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The counts `GET /_sim/requests` answers, by (account, region, operation).
async fn request_counts(
    address: &str,
) -> std::collections::BTreeMap<(String, String, String), u64> {
    let (status, body) = http_get(address, "/_sim/requests").await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    json["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            let key = (text("account"), text("region"), text("operation"));
            (key, r["count"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estate_mode_spreads_accounts_regions_and_activity() {
    const MEMBER: &str = "111111111101";
    const ROLE: &str = "arn:aws:iam::111111111101:role/ssm-association-exporter";
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("estate.yaml");
    let requests_address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let (mut sim, endpoint) = start(&[
        "--associations",
        "10",
        "--executions",
        "3",
        "--accounts",
        "2",
        "--regions",
        "us-east-1,eu-west-1",
        "--external-id",
        "bench-external-id",
        "--active-fraction",
        "0.5",
        "--activity-interval",
        "1s",
        "--requests-address",
        &requests_address,
        "--config-out",
        config_path.to_str().unwrap(),
        "--poll-interval",
        "10s",
        "--full-sweep-interval",
        "30m",
    ]);

    let written = std::fs::read_to_string(&config_path).expect("the config is written");
    let expected = ExporterConfig {
        poll_interval: "10s".into(),
        initial_lookback: "1h".into(),
        api_requests_per_second: 5.0,
        max_concurrent_requests: 4,
    }
    .estate_yaml(
        &["us-east-1".into(), "eu-west-1".into()],
        &[
            EstateAccount::Own,
            EstateAccount::Role {
                role_arn: ROLE.into(),
                external_id: Some("bench-external-id".into()),
            },
        ],
        "30m",
    );
    assert_eq!(written, expected);
    assert!(written.contains("discovery:\n  - {}\n"), "{written}");

    // 10 associations over 2 x 2 scopes: 3, 3, 2, 2, with their history.
    let (own_east, own_west) = (
        crate::estate::client_in(&endpoint, "us-east-1").await,
        crate::estate::client_in(&endpoint, "eu-west-1").await,
    );
    let member_west =
        crate::estate::assumed_client_in(&endpoint, "eu-west-1", ROLE, Some("bench-external-id"))
            .await;
    let mut own_ids = Vec::new();
    for (client, expected) in [(&own_east, 3), (&own_west, 3), (&member_west, 2)] {
        let listed = client.list_associations().send().await.unwrap();
        assert_eq!(listed.associations().len(), expected);
        if !std::ptr::eq(client, &member_west) {
            for a in listed.associations() {
                own_ids.push((client.clone(), a.association_id().unwrap().to_owned()));
            }
        }
    }
    let executions = |ids: Vec<(aws_sdk_ssm::Client, String)>| async move {
        let mut n = 0;
        for (client, id) in ids {
            let page = client
                .describe_association_executions()
                .association_id(id)
                .send()
                .await
                .unwrap();
            n += page.association_executions().len();
        }
        n
    };
    assert_eq!(executions(own_ids.clone()).await, 6 * 3);

    // Activity: 5 new runs a second across the 10 associations.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while executions(own_ids.clone()).await == 6 * 3 {
        assert!(std::time::Instant::now() < deadline, "no activity");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let counts = request_counts(&requests_address).await;
    let get = |account: &str, region: &str, op: &str| {
        counts
            .get(&(account.into(), region.into(), op.into()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(get("123456789012", "us-east-1", "ListAssociations"), 1);
    assert_eq!(get(MEMBER, "eu-west-1", "ListAssociations"), 1);
    assert_eq!(get("123456789012", "eu-west-1", "AssumeRole"), 1);
    assert!(get("123456789012", "us-east-1", "DescribeAssociationExecutions") >= 3);
    // Running totals: a later answer only grows.
    own_east.list_associations().send().await.unwrap();
    let later = request_counts(&requests_address).await;
    assert_eq!(
        later[&(
            "123456789012".into(),
            "us-east-1".into(),
            "ListAssociations".into()
        )],
        2
    );
    assert_eq!(http_get(&requests_address, "/other").await.0, 404);

    let pid = sim.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(sim.0.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_queues_get_the_activitys_events_by_route_with_faults_and_outages() {
    const CENTRAL: &str = "https://sqs.us-east-1.amazonaws.com/999999999999/central";
    const WEST: &str = "https://sqs.eu-west-1.amazonaws.com/999999999999/west";
    let requests_address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let west_route = format!("*/eu-west-1={WEST}");
    let central_route = format!("*/*={CENTRAL}");
    let west_faults = format!("{WEST}=duplicate=1");
    let west_outage = format!("{WEST}=throttled,for=1h");
    let (_sim, endpoint) = start(&[
        "--associations",
        "4",
        "--executions",
        "2",
        "--accounts",
        "2",
        "--regions",
        "us-east-1,eu-west-1",
        "--active-fraction",
        "1",
        "--activity-interval",
        "1s",
        "--requests-address",
        &requests_address,
        "--event-queue",
        CENTRAL,
        "--event-queue",
        WEST,
        "--event-route",
        &west_route,
        "--event-route",
        &central_route,
        "--event-faults",
        &west_faults,
        "--queue-outage",
        &west_outage,
    ]);
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);

    // The central queue gets every scope's events; the history sent none, so each
    // association's first event is its first live run starting.
    let mut first_status = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while first_status.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "{first_status:?}");
        let got = sqs
            .receive_message()
            .queue_url(CENTRAL)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(event["source"], "aws.ssm");
            let key = (
                event["account"].as_str().unwrap().to_owned(),
                event["region"].as_str().unwrap().to_owned(),
                event["detail"]["association-id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            let status = event["detail"]["status"].as_str().unwrap().to_owned();
            first_status.entry(key).or_insert(status);
        }
    }
    assert!(
        first_status.values().all(|s| s == "Pending"),
        "{first_status:?}"
    );
    let scopes: std::collections::BTreeSet<(String, String)> = first_status
        .keys()
        .map(|(a, r, _)| (a.clone(), r.clone()))
        .collect();
    assert_eq!(scopes.len(), 4, "{scopes:?}");

    // The west queue is throttled, yet its events (eu-west-1 only, each twice) keep coming.
    let error = sqs
        .receive_message()
        .queue_url(WEST)
        .send()
        .await
        .expect_err("throttled");
    assert!(error.into_service_error().is_request_throttled());
    let (status, body) = http_get(&requests_address, "/_sim/queues").await;
    assert_eq!(status, 200, "{body}");
    let queues: Value = serde_json::from_str(&body).unwrap();
    let west = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["url"] == WEST)
        .expect("the west queue is listed");
    let central = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["url"] == CENTRAL)
        .unwrap();
    assert!(west["events"].as_u64().unwrap() > 0, "{west}");
    assert_eq!(west["duplicated"], west["events"], "{west}");
    assert!(
        west["events"].as_u64().unwrap() < central["events"].as_u64().unwrap(),
        "{queues}"
    );
}
