//! Tests of the exporter-toolkit web configuration: parsing, TLS handshakes against a real
//! hyper server on 127.0.0.1, and basic authentication.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use ssm_association_exporter::web_config::WebConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn fixtures() -> std::path::PathBuf {
    crate::common::repo_path("tests/fixtures/web")
}

// ---------------------------------------------------------------------------------------
// Certificates, generated at test time

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    server_key: KeyPair,
    client_cert_pem: String,
    client_key_pem: String,
    rogue_client_cert_pem: String,
    rogue_client_key_pem: String,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: &[&str],
    eku: ExtendedKeyUsagePurpose,
    key: &KeyPair,
    issuer: &Issuer<'_, KeyPair>,
) -> String {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![eku];
    params.signed_by(key, issuer).unwrap().pem()
}

impl Pki {
    fn new() -> Pki {
        let (ca_pem, issuer) = ca("test CA");
        let (_, rogue_issuer) = ca("rogue CA");
        let server_key = KeyPair::generate().unwrap();
        let server_cert_pem = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &server_key,
            &issuer,
        );
        let client_key = KeyPair::generate().unwrap();
        let client_cert_pem = leaf(
            &["client"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &client_key,
            &issuer,
        );
        let rogue_key = KeyPair::generate().unwrap();
        let rogue_client_cert_pem = leaf(
            &["client"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &rogue_key,
            &rogue_issuer,
        );
        Pki {
            ca_pem,
            server_cert_pem,
            server_key_pem: server_key.serialize_pem(),
            server_key,
            client_cert_pem,
            client_key_pem: client_key.serialize_pem(),
            rogue_client_cert_pem,
            rogue_client_key_pem: rogue_key.serialize_pem(),
        }
    }

    /// Writes ca.crt, server.crt and server.key into `dir`.
    fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.crt"), &self.ca_pem).unwrap();
        std::fs::write(dir.join("server.crt"), &self.server_cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &self.server_key_pem).unwrap();
    }
}

/// Copies fixture `name` into `dir` as `web.yml` and returns its path.
fn fixture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::copy(fixtures().join(name), &path).unwrap();
    path
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn load_err(path: &Path) -> String {
    WebConfig::load(path)
        .expect_err("the configuration should be rejected")
        .to_string()
}

/// Minimal DER reader: (tag, contents, rest).
fn der(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The algorithm-specific private key inside a PKCS#8 PrivateKeyInfo: an RSAPrivateKey
/// (PKCS#1) for RSA, an ECPrivateKey (SEC1) for EC.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = der(pkcs8);
    assert_eq!(tag, 0x30);
    let (tag, _version, rest) = der(info);
    assert_eq!(tag, 0x02);
    let (tag, _algorithm, rest) = der(rest);
    assert_eq!(tag, 0x30);
    let (tag, key, _) = der(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

// ---------------------------------------------------------------------------------------
// A hyper server and a rustls client

/// Serves `connections` connections (one after the other) with the exporter's wiring:
/// TLS handshake with `tls_acceptor()`, basic auth with `authorize()`, `headers()` on every
/// response. Returns, per connection, whether the TLS handshake succeeded.
async fn serve(config: Arc<WebConfig>, connections: usize) -> (SocketAddr, JoinHandle<Vec<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = config.tls_acceptor().expect("TLS is configured");
    let task = tokio::spawn(async move {
        let mut handshakes = Vec::new();
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.unwrap();
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
            handshakes.push(matches!(handshake, Ok(Ok(_))));
            let Ok(Ok(tls)) = handshake else {
                continue;
            };
            let cfg = config.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let cfg = cfg.clone();
                async move {
                    let authorization = req
                        .headers()
                        .get(AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let allowed = if cfg.requires_auth() {
                        let cfg = cfg.clone();
                        tokio::task::spawn_blocking(move || cfg.authorize(authorization.as_deref()))
                            .await
                            .unwrap_or(false)
                    } else {
                        true
                    };
                    let mut response = if allowed {
                        Response::new(Full::new(Bytes::from_static(b"ok\n")))
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"Unauthorized\n")));
                        *r.status_mut() = StatusCode::UNAUTHORIZED;
                        r.headers_mut().insert(
                            WWW_AUTHENTICATE,
                            HeaderValue::from_static("Basic realm=\"exporter\""),
                        );
                        r
                    };
                    for (name, value) in cfg.headers() {
                        if let (Ok(n), Ok(v)) = (
                            HeaderName::from_bytes(name.as_bytes()),
                            HeaderValue::from_str(value),
                        ) {
                            response.headers_mut().insert(n, v);
                        }
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            // A failing connection must not end the server.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
        handshakes
    });
    (addr, task)
}

struct Client<'a> {
    ca_pem: &'a str,
    cert: Option<(&'a str, &'a str)>,
    versions: &'a [&'static SupportedProtocolVersion],
    authorization: Option<String>,
}

impl<'a> Client<'a> {
    fn new(pki: &'a Pki) -> Client<'a> {
        Client {
            ca_pem: &pki.ca_pem,
            cert: None,
            versions: rustls::ALL_VERSIONS,
            authorization: None,
        }
    }

    /// GET / over TLS; Ok(raw response) or Err(what failed).
    async fn get(&self, addr: SocketAddr) -> Result<String, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(self.versions)
        .unwrap()
        .with_root_certificates(roots);
        let config = match self.cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let work = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let mut request =
                "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_string();
            if let Some(a) = &self.authorization {
                request.push_str(&format!("Authorization: {a}\r\n"));
            }
            request.push_str("\r\n");
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut response = Vec::new();
            tls.read_to_end(&mut response)
                .await
                .map_err(|e| format!("read: {e}"))?;
            Ok(String::from_utf8_lossy(&response).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

fn is_200(response: &Result<String, String>) -> bool {
    matches!(response, Ok(r) if r.starts_with("HTTP/1.1 200"))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

// ---------------------------------------------------------------------------------------
// Parsing

#[test]
fn full_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let config = WebConfig::load(&fixture(dir.path(), "full.yml")).unwrap();
    assert!(config.tls_acceptor().is_some());
    assert!(config.requires_auth());
    assert_eq!(
        config.headers(),
        &[
            (
                "Strict-Transport-Security".to_string(),
                "max-age=31536000".to_string()
            ),
            ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
        ]
    );
    assert_eq!(
        config.describe(),
        "TLS (client certificates required), basic auth (2 users)"
    );
    // Both the htpasswd ($2y$) and the Rust/OpenBSD ($2b$) prefixes verify.
    assert!(config.authorize(Some(&basic("alice", "alice-password"))));
    assert!(config.authorize(Some(&basic("bob", "bob-password"))));
    let debug = format!("{config:?}");
    assert!(!debug.contains("$2"), "Debug must not show hashes: {debug}");
}

#[test]
fn empty_files_mean_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["empty.yml", "comments_only.yml", "empty_map.yml"] {
        let config = WebConfig::load(&fixture(dir.path(), name)).unwrap();
        assert!(config.tls_acceptor().is_none(), "{name}");
        assert!(!config.requires_auth(), "{name}");
        assert!(config.headers().is_empty(), "{name}");
        assert_eq!(config.describe(), "plain HTTP", "{name}");
        assert!(config.authorize(None), "no auth configured: {name}");
    }
    let plain = WebConfig::plain();
    assert!(plain.tls_acceptor().is_none());
    assert!(!plain.requires_auth());
    assert_eq!(plain.describe(), "plain HTTP");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "unknown_top.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:1: basic_auth_user: unknown field `basic_auth_user`, expected one of \
             tls_server_config, http_server_config, basic_auth_users, rate_limit",
            path.display()
        )
    );
}

#[test]
fn unknown_nested_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "unknown_nested.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:3: tls_server_config.client_auth: unknown field `client_auth`, expected one of \
             cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version, \
             cipher_suites, curve_preferences, prefer_server_cipher_suites, cert, key, client_ca, \
             client_allowed_sans",
            path.display()
        )
    );
    let path = write_config(dir.path(), "http_server_config:\n  header: {}\n");
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:2:3: http_server_config.header: unknown field `header`",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "wrong_type.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:3:13: tls_server_config.key_file: expected string scalar",
            path.display()
        )
    );
    let path = write_config(dir.path(), "basic_auth_users:\n  alice: [1]\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:10: basic_auth_users.alice: expected string scalar",
            path.display()
        )
    );
    let path = write_config(
        dir.path(),
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  cert_file: c\n",
    );
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:3: tls_server_config.cert_file: duplicate key (first set at line 2)",
            path.display()
        )
    );
}

#[test]
fn yaml_syntax_error_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "tls_server_config:\n  cert_file: [a\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:14: invalid YAML: unclosed bracket '['",
            path.display()
        )
    );
    let path = write_config(dir.path(), "basic_auth_users:\n  alice: !secret x\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:18: invalid YAML: unsupported tag `!secret`",
            path.display()
        )
    );
}

#[test]
fn not_yaml_mapping_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "- a\n- b\n");
    assert_eq!(
        load_err(&path),
        format!("{}:1:1: expected mapping start", path.display())
    );
}

#[test]
fn missing_key_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let path = fixture(dir.path(), "missing_key_file.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:3: tls_server_config.key_file: required when tls_server_config is present",
            path.display()
        )
    );
    let path = write_config(dir.path(), "tls_server_config: {}\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:1:20: tls_server_config.cert_file: required when tls_server_config is present",
            path.display()
        )
    );
}

#[test]
fn unreadable_cert_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let path = fixture(dir.path(), "missing_cert.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:14: tls_server_config.cert_file: cannot read \"missing.crt\": No such file or directory",
            path.display()
        )
    );
}

#[test]
fn missing_config_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}: cannot read file: No such file or directory",
            path.display()
        )
    );
}

#[test]
fn bad_pem_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    pki.write(dir.path());
    let path = fixture(dir.path(), "full.yml");

    std::fs::write(dir.path().join("server.crt"), "this is not PEM\n").unwrap();
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:4:14: tls_server_config.cert_file: no certificate",
            path.display()
        )),
        "{err}"
    );

    std::fs::write(
        dir.path().join("server.crt"),
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:4:14: tls_server_config.cert_file: invalid PEM in \"server.crt\"",
            path.display()
        )),
        "{err}"
    );

    // A certificate where the key belongs.
    std::fs::write(dir.path().join("server.crt"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), &pki.server_cert_pem).unwrap();
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:5:13: tls_server_config.key_file: no private key found in \"server.key\"",
            path.display()
        )),
        "{err}"
    );

    // A key that does not belong to the certificate.
    std::fs::write(dir.path().join("server.key"), &pki.client_key_pem).unwrap();
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:5:13: tls_server_config.key_file: ",
            path.display()
        )),
        "{err}"
    );

    // No certificate in the CA file.
    std::fs::write(dir.path().join("server.key"), &pki.server_key_pem).unwrap();
    std::fs::write(dir.path().join("ca.crt"), "").unwrap();
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:7:19: tls_server_config.client_ca_file: no certificate",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn key_formats_pkcs8_pkcs1_sec1_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    pki.write(dir.path());
    let path = fixture(dir.path(), "relative.yml");
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/server.crt"), &pki.server_cert_pem).unwrap();

    // SEC1 ("EC PRIVATE KEY") of the ECDSA server key.
    let sec1 = pem(
        "EC PRIVATE KEY",
        &pkcs8_inner(&pki.server_key.serialize_der()),
    );
    std::fs::write(dir.path().join("certs/server.key"), sec1).unwrap();
    WebConfig::load(&path).expect("SEC1 key");

    // PKCS#1 ("RSA PRIVATE KEY") with an RSA certificate.
    let (_, issuer) = ca("rsa CA");
    let rsa_key =
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let rsa_cert = leaf(
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &rsa_key,
        &issuer,
    );
    std::fs::write(dir.path().join("certs/server.crt"), rsa_cert).unwrap();
    std::fs::write(dir.path().join("certs/server.key"), rsa_key.serialize_pem()).unwrap();
    WebConfig::load(&path).expect("PKCS#8 RSA key");
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs8_inner(&rsa_key.serialize_der()));
    std::fs::write(dir.path().join("certs/server.key"), pkcs1).unwrap();
    WebConfig::load(&path).expect("PKCS#1 key");
}

#[test]
fn tls10_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let path = fixture(dir.path(), "tls10.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:16: tls_server_config.min_version: TLS10 is not supported (rustls implements TLS12 and TLS13 only)",
            path.display()
        )
    );
    let path = write_config(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n",
    );
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:16: tls_server_config.min_version: TLS 1.3 is higher than max_version TLS 1.2",
            path.display()
        )
    );
    let path = write_config(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: tls13\n",
    );
    assert_eq!(
        load_err(&path),
        format!(
            "{}:4:16: tls_server_config.max_version: unknown TLS version \"tls13\" (expected TLS12 or TLS13)",
            path.display()
        )
    );
}

#[test]
fn client_auth_types() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let path = fixture(dir.path(), "verify_without_ca.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:3: tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert",
            path.display()
        )
    );
    let with = |auth: &str, ca: bool| {
        let ca = if ca { "  client_ca_file: ca.crt\n" } else { "" };
        write_config(
            dir.path(),
            &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {auth}\n{ca}"),
        )
    };
    let err = load_err(&with("VerifyClientCertIfGiven", false));
    assert!(err.contains("client_ca_file: required"), "{err}");
    let err = load_err(&with("Bogus", true));
    assert!(
        err.contains("tls_server_config.client_auth_type: unknown client_auth_type \"Bogus\""),
        "{err}"
    );
    let err = load_err(&with("NoClientCert", true));
    assert!(
        err.contains("tls_server_config.client_ca_file: set, but"),
        "{err}"
    );
    for (auth, description) in [
        ("NoClientCert", "TLS"),
        (
            "RequestClientCert",
            "TLS (client certificates requested, not verified)",
        ),
        (
            "RequireAnyClientCert",
            "TLS (client certificates required, not verified)",
        ),
        (
            "RequireClientCert",
            "TLS (client certificates required, not verified)",
        ),
    ] {
        let config = WebConfig::load(&with(auth, false)).unwrap();
        assert_eq!(config.describe(), description);
    }
    let config = WebConfig::load(&with("VerifyClientCertIfGiven", true)).unwrap();
    assert_eq!(
        config.describe(),
        "TLS (client certificates verified if given)"
    );
}

#[test]
fn unsupported_toolkit_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let path = fixture(dir.path(), "client_allowed_sans.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:6:24: tls_server_config.client_allowed_sans: not supported by this exporter",
            path.display()
        )
    );
    let path = write_config(dir.path(), "rate_limit:\n  interval: 1s\n  burst: 5\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:2:3: rate_limit: not supported by this exporter",
            path.display()
        )
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    pki.write(&dir.path().join("certs"));
    let path = fixture(dir.path(), "relative.yml");
    // The current directory is the crate, where certs/ does not exist.
    assert!(!Path::new("certs/server.crt").exists());
    WebConfig::load(&path).expect("certs/ next to web.yml");
    // Absolute paths are used as they are.
    let elsewhere = tempfile::tempdir().unwrap();
    let abs = write_config(
        elsewhere.path(),
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            dir.path().join("certs/server.crt").display(),
            dir.path().join("certs/server.key").display()
        ),
    );
    WebConfig::load(&abs).expect("absolute paths");
}

#[test]
fn bad_users_and_headers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "bad_hash.yml");
    let err = load_err(&path);
    assert!(
        err.starts_with(&format!(
            "{}:2:10: basic_auth_users.alice: not a bcrypt hash",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains("plaintext-password"), "{err}");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let path = write_config(
        dir.path(),
        &format!("basic_auth_users:\n  \"a:b\": {hash}\n"),
    );
    assert!(load_err(&path).contains("basic_auth_users.a:b: user names cannot contain ':'"));

    let path = fixture(dir.path(), "reserved_header.yml");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:3:19: http_server_config.headers.Content-Type: this header is set by the server itself and cannot be configured",
            path.display()
        )
    );
    let path = write_config(
        dir.path(),
        "http_server_config:\n  headers:\n    \"Bad Header\": x\n",
    );
    assert!(load_err(&path)
        .contains("http_server_config.headers.Bad Header: not a valid HTTP header name"));
    let path = write_config(
        dir.path(),
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    x-frame-options: sameorigin\n",
    );
    assert!(load_err(&path).contains("header given more than once"));
    let path = write_config(
        dir.path(),
        "http_server_config:\n  headers:\n    X-Frame-Options: \"\"\n    X-XSS-Protection: \"0\"\n",
    );
    let config = WebConfig::load(&path).unwrap();
    assert_eq!(
        config.headers(),
        &[("X-XSS-Protection".to_string(), "0".to_string())],
        "a blank value leaves the header unset"
    );
}

// ---------------------------------------------------------------------------------------
// authorize()

fn auth_config(dir: &Path) -> WebConfig {
    let alice = bcrypt::hash("alice-password", 4).unwrap();
    let bob = bcrypt::hash("bob-password", 4).unwrap();
    let path = write_config(
        dir,
        &format!("basic_auth_users:\n  alice: {alice}\n  bob: {bob}\n"),
    );
    WebConfig::load(&path).unwrap()
}

#[test]
fn authorize_checks_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    assert!(config.requires_auth());
    assert!(config.tls_acceptor().is_none());
    assert_eq!(config.describe(), "plain HTTP, basic auth (2 users)");

    assert!(config.authorize(Some(&basic("alice", "alice-password"))));
    assert!(config.authorize(Some(&basic("bob", "bob-password"))));
    // The scheme is case-insensitive.
    let lower = basic("alice", "alice-password").replacen("Basic", "basic", 1);
    assert!(config.authorize(Some(&lower)));

    assert!(!config.authorize(Some(&basic("alice", "wrong"))));
    assert!(!config.authorize(Some(&basic("alice", "bob-password"))));
    assert!(!config.authorize(Some(&basic("alice", ""))));
    assert!(!config.authorize(Some(&basic("mallory", "alice-password"))));
    assert!(!config.authorize(Some(&basic("", ""))));
    assert!(!config.authorize(None));
    assert!(!config.authorize(Some("")));
    assert!(!config.authorize(Some("Bearer abc")));
    assert!(!config.authorize(Some("Basic")));
    assert!(!config.authorize(Some("Basic !!!not-base64!!!")));
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alicealice-password")
    );
    assert!(!config.authorize(Some(&no_colon)));
}

#[test]
fn unknown_users_still_cost_a_bcrypt_verification() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let before = config.bcrypt_verifications();
    assert!(!config.authorize(Some(&basic("mallory", "x"))));
    assert_eq!(config.bcrypt_verifications(), before + 1);
    // Malformed headers are rejected without any.
    assert!(!config.authorize(Some("Bearer abc")));
    assert_eq!(config.bcrypt_verifications(), before + 1);
}

#[test]
fn successful_verifications_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let alice = basic("alice", "alice-password");
    assert_eq!(config.bcrypt_verifications(), 0);
    assert!(config.authorize(Some(&alice)));
    assert_eq!(config.bcrypt_verifications(), 1);
    for _ in 0..5 {
        assert!(config.authorize(Some(&alice)));
    }
    assert_eq!(config.bcrypt_verifications(), 1, "cache hits run no bcrypt");

    // Failures are not cached: each one is verified again.
    assert!(!config.authorize(Some(&basic("alice", "wrong"))));
    assert!(!config.authorize(Some(&basic("alice", "wrong"))));
    assert_eq!(config.bcrypt_verifications(), 3);

    // A cached success for alice does not authorize another user with the same password.
    assert!(!config.authorize(Some(&basic("bob", "alice-password"))));
    assert_eq!(config.bcrypt_verifications(), 4);

    // The cache is bounded, and keeps working after evictions.
    let hash = bcrypt::hash("pw", 4).unwrap();
    let users: String = (0..70).map(|i| format!("  u{i}: {hash}\n")).collect();
    let path = write_config(dir.path(), &format!("basic_auth_users:\n{users}"));
    let many = WebConfig::load(&path).unwrap();
    for i in 0..70 {
        assert!(many.authorize(Some(&basic(&format!("u{i}"), "pw"))));
    }
    assert_eq!(many.bcrypt_verifications(), 70);
    assert!(many.authorize(Some(&basic("u69", "pw"))));
    assert_eq!(
        many.bcrypt_verifications(),
        70,
        "the latest entry is cached"
    );
}

#[test]
fn web_config_is_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<WebConfig>();
}

// ---------------------------------------------------------------------------------------
// TLS against a real server

fn tls_config(dir: &Path, pki: &Pki, extra: &str) -> Arc<WebConfig> {
    pki.write(dir);
    let path = write_config(
        dir,
        &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
    );
    Arc::new(WebConfig::load(&path).unwrap())
}

#[tokio::test]
async fn tls_request_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = tls_config(dir.path(), &pki, "");
    assert_eq!(config.describe(), "TLS");
    let (addr, server) = serve(config, 2).await;
    let response = Client::new(&pki).get(addr).await;
    assert!(is_200(&response), "{response:?}");
    assert!(response.unwrap().ends_with("ok\n"));
    // TLS 1.2 works by default too.
    let response = Client {
        versions: &[&rustls::version::TLS12],
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(is_200(&response), "{response:?}");
    assert_eq!(server.await.unwrap(), vec![true, true]);
}

#[tokio::test]
async fn client_certificates_are_required_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = tls_config(
        dir.path(),
        &pki,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let (addr, server) = serve(config, 3).await;

    let anonymous = Client::new(&pki).get(addr).await;
    assert!(!is_200(&anonymous), "no client certificate: {anonymous:?}");

    let trusted = Client {
        cert: Some((&pki.client_cert_pem, &pki.client_key_pem)),
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(
        is_200(&trusted),
        "client certificate from the CA: {trusted:?}"
    );

    let rogue = Client {
        cert: Some((&pki.rogue_client_cert_pem, &pki.rogue_client_key_pem)),
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(
        !is_200(&rogue),
        "client certificate from another CA: {rogue:?}"
    );

    assert_eq!(server.await.unwrap(), vec![false, true, false]);
}

#[tokio::test]
async fn require_any_client_cert_accepts_unverified_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = tls_config(
        dir.path(),
        &pki,
        "  client_auth_type: RequireAnyClientCert\n",
    );
    let (addr, server) = serve(config, 2).await;
    let anonymous = Client::new(&pki).get(addr).await;
    assert!(!is_200(&anonymous), "{anonymous:?}");
    let rogue = Client {
        cert: Some((&pki.rogue_client_cert_pem, &pki.rogue_client_key_pem)),
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(is_200(&rogue), "{rogue:?}");
    assert_eq!(server.await.unwrap(), vec![false, true]);
}

#[tokio::test]
async fn min_version_tls13_rejects_tls12_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = tls_config(dir.path(), &pki, "  min_version: TLS13\n");
    assert_eq!(config.describe(), "TLS (TLS 1.3 only)");
    let (addr, server) = serve(config, 2).await;
    let tls12 = Client {
        versions: &[&rustls::version::TLS12],
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(
        matches!(&tls12, Err(e) if e.starts_with("handshake")),
        "{tls12:?}"
    );
    let tls13 = Client {
        versions: &[&rustls::version::TLS13],
        ..Client::new(&pki)
    }
    .get(addr)
    .await;
    assert!(is_200(&tls13), "{tls13:?}");
    assert_eq!(server.await.unwrap(), vec![false, true]);
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_response() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = tls_config(dir.path(), &pki, "");
    let (addr, server) = serve(config, 2).await;

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    let _ = read; // a reset is as good as a close
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{buf:?}"
    );

    // The server is still up and serves TLS clients.
    let response = Client::new(&pki).get(addr).await;
    assert!(is_200(&response), "{response:?}");
    assert_eq!(server.await.expect("no panic"), vec![false, true]);
}

#[tokio::test]
async fn basic_auth_and_headers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let hash = bcrypt::hash("alice-password", 4).unwrap();
    let config = tls_config(
        dir.path(),
        &pki,
        &format!(
            "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  alice: {hash}\n"
        ),
    );
    assert_eq!(config.describe(), "TLS, basic auth (1 user)");
    let (addr, server) = serve(config, 3).await;

    let anonymous = Client::new(&pki).get(addr).await.unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(anonymous
        .to_ascii_lowercase()
        .contains("www-authenticate: basic realm=\"exporter\""));
    assert!(anonymous
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age=31536000"));

    let wrong = Client {
        authorization: Some(basic("alice", "nope")),
        ..Client::new(&pki)
    }
    .get(addr)
    .await
    .unwrap();
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");

    let ok = Client {
        authorization: Some(basic("alice", "alice-password")),
        ..Client::new(&pki)
    }
    .get(addr)
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age=31536000"));
    assert_eq!(server.await.unwrap(), vec![true, true, true]);
}
