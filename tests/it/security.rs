//! The real binary with `--web.config.file`: TLS with certificates generated at test time,
//! bcrypt basic auth, open probes, plain HTTP to the TLS port, the TLS health check, and no
//! secrets in the logs.

use ssm_association_exporter::names;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ssm_simulator::SimExecution;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_ssm-association-exporter");
const PASSWORD: &str = "s3cret-scrape-pass";

/// Writes ca.crt, server.crt, server.key into `dir`; returns the CA certificate (PEM).
fn make_pki(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.crt"), &ca_pem).unwrap();
    std::fs::write(dir.join("server.crt"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    ca_pem
}

/// One HTTPS GET trusting `ca_pem`; returns the raw response.
async fn https_get(
    address: &str,
    ca_pem: &str,
    path: &str,
    authorization: Option<&str>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_metrics_and_leave_probes_open() {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = make_pki(dir.path());
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\nbasic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n"),
    )
    .unwrap();
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("s1", "Failed", now_ms() - 60_000).with_last_execution_ms(now_ms()),
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("associations:\n  - {}\npoll_interval: 1s\n", ids[0]),
    )
    .unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = exporter_command()
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.config.file={}", web.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=trace")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the (trace-level) logs as they come, so the pipe never fills up.
    let logs = drain_stderr(&mut child);

    // Authorized scrape over TLS, once the failure is counted.
    let good = basic("prometheus", PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        if let Ok(response) = https_get(&address, &ca_pem, "/metrics", Some(&good)).await {
            if response.contains(&format!(
                "ssm_association_executions_total{{association_id=\"{}\",account_id=\"123456789012\",region=\"us-east-1\",status=\"Failed\"}} 1",
                ids[0]
            )) {
                break response;
            }
        }
        assert!(Instant::now() < deadline, "no authorized TLS scrape");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(response.starts_with("HTTP/1.1 200"));
    assert!(response
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age=31536000"));

    for authorization in [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("nobody", PASSWORD)),
        Some("Bearer x".to_string()),
    ] {
        let denied = https_get(&address, &ca_pem, "/metrics", authorization.as_deref())
            .await
            .unwrap();
        assert!(
            denied.starts_with("HTTP/1.1 401"),
            "{authorization:?}: {denied}"
        );
        assert!(
            denied.contains("www-authenticate: Basic realm=\"ssm-association-exporter\""),
            "{denied}"
        );
        assert!(!denied.contains(names::EXECUTIONS_TOTAL));
    }
    let landing = https_get(&address, &ca_pem, "/", None).await.unwrap();
    assert!(
        landing.starts_with("HTTP/1.1 401"),
        "the landing page needs credentials too"
    );
    // Probes carry no credentials.
    let health = https_get(&address, &ca_pem, "/healthz", None)
        .await
        .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // Plain HTTP to the TLS port fails cleanly: no HTTP answer, and the server goes on.
    let mut plain = TcpStream::connect(&address).await.unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut raw)).await;
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"));
    assert!(https_get(&address, &ca_pem, "/healthz", None)
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));

    // The container health check speaks TLS when the web config says so.
    let check = Command::new(BIN)
        .arg("--healthcheck")
        .arg(format!("--web.listen-address=:{port}"))
        .arg(format!("--web.config.file={}", web.display()))
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let logs = logs.join().unwrap();
    assert!(
        logs.contains("basic auth (1 user)"),
        "the web config is described at start"
    );
    for secret in [PASSWORD, good.as_str(), &good[6..], "fake-secret-for-tests"] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs");
    }
}

#[test]
fn an_invalid_web_config_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--demo")
        .arg(format!("--web.config.file={}", web.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls_server_config.cert_file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_stay_out_of_the_logs_even_with_rust_log_trace_for_every_crate() {
    let (sim, ids) = simulator_with(1).await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("t1", "Success", now_ms() - 60_000).with_last_execution_ms(now_ms()),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("associations:\n  - {}\npoll_interval: 1s\n", ids[0]),
    )
    .unwrap();
    let port = free_port();
    let mut child = exporter_command()
        .env("RUST_LOG", "trace")
        .env("AWS_SECRET_ACCESS_KEY", "secret-key-never-logged")
        .env("AWS_SESSION_TOKEN", "session-token-never-logged")
        .env("AWS_ENDPOINT_URL_SSM", sim.endpoint_url())
        .env("AWS_ENDPOINT_URL_STS", sim.endpoint_url())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = drain_stderr(&mut child);
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(&address).await.is_ok() {
            let body = http_request(&address, "GET", "/metrics").await.body;
            if body.contains("ssm_association_executions_total{")
                && body.contains("status=\"Success\"} 1")
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "never counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let logs = logs.join().unwrap();
    assert!(logs.lines().count() > 50, "trace logging was on");
    assert!(
        logs.contains("x-amz-security-token"),
        "the SDK logged its request headers (redacted)"
    );
    for secret in ["secret-key-never-logged", "session-token-never-logged"] {
        assert!(!logs.contains(secret), "{secret} leaked at RUST_LOG=trace");
    }
}
