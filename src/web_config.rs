//! The Prometheus exporter-toolkit web configuration file (`--web.config.file`).
//!
//! This is the format node_exporter and the other official exporters read
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM certificate chain, leaf first
//!   key_file: server.key           # PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt         # required by VerifyClientCertIfGiven / RequireAndVerifyClientCert
//!   min_version: TLS12             # TLS12 (default) or TLS13
//!   max_version: TLS13             # TLS12 or TLS13 (default)
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   alice: $2y$10$...              # bcrypt hash, e.g. from `htpasswd -nBC 10 "" | tr -d ':\n'`
//! ```
//!
//! Differences from the Go implementation, all of them deliberate:
//!
//! * The file is read once, at start: certificates, keys and CA files are loaded by
//!   [`WebConfig::load`], so every mistake surfaces before the listener opens. (The Go
//!   toolkit re-reads the file on every request.)
//! * Relative paths are resolved against the directory of the web configuration file.
//! * TLS is provided by rustls, which supports TLS 1.2 and 1.3 only: `TLS10`/`TLS11` are
//!   rejected with an explicit error. `cipher_suites`, `curve_preferences` and
//!   `prefer_server_cipher_suites` are accepted and ignored with a warning: rustls only
//!   offers its own short list of modern suites and groups, and always applies its own
//!   preference order.
//! * `http_server_config.http2` is accepted and ignored (this server speaks HTTP/1.1 and
//!   advertises only `http/1.1` via ALPN); `http_server_config.headers` accepts any valid
//!   header except the ones the server itself manages (`Content-Type`, `Content-Length`,
//!   `Date`, `WWW-Authenticate`, ...), not only the five the Go toolkit knows; a blank
//!   value leaves the header unset. [`WebConfig::headers`] lists them sorted by name.
//! * Inline `cert`, `key` and `client_ca`, `client_allowed_sans` and `rate_limit` are not
//!   implemented and are rejected with "not supported by this exporter" rather than
//!   silently ignored (ignoring `client_allowed_sans` would weaken security).
//! * Any other unknown key is an error.
//!
//! Errors read `{file}:{line}:{column}: {key}: {message}` (see [`crate::yaml`]), e.g.
//! `web.yml:2:14: tls_server_config.cert_file: cannot read "server.crt": No such file or directory`.
//!
//! Wiring into a hyper 1 accept loop: `tls_acceptor()` gives the TLS handshake to run
//! on each accepted TCP stream (under a timeout, in the per-connection task);
//! `authorize()` must be called for every request when `requires_auth()` (answer `401` with
//! `WWW-Authenticate: Basic realm="..."` when it returns false). `authorize()` runs bcrypt,
//! which takes tens of milliseconds on a cache miss, so call it from
//! `tokio::task::spawn_blocking` (share the `WebConfig` in an `Arc`). `headers()` are to be
//! added to every response.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};
use serde::de::IgnoredAny;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::yaml;

/// An error in the web configuration file, displayed as `{file}:{line}:{column}: {key}: {message}`
/// (see [`crate::yaml::Error`] for the parts left out when they do not apply). It never
/// contains a secret.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WebConfigError(#[from] yaml::Error);

/// The validated web configuration: optional TLS, optional basic authentication and
/// extra response headers. Share it between connections in an `Arc`.
pub struct WebConfig {
    tls: Option<TlsSettings>,
    users: BTreeMap<String, String>,
    /// A well-formed bcrypt hash, of the highest cost among the users, verified for
    /// unknown users so that the response time does not tell which users exist.
    dummy_hash: String,
    headers: Vec<(String, String)>,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// Random per-process key of the cache's keyed hash.
    cache_key: [u8; 32],
    verifications: AtomicU64,
}

struct TlsSettings {
    acceptor: tokio_rustls::TlsAcceptor,
    client_auth: ClientAuth,
    min: TlsVersion,
    max: TlsVersion,
}

/// How many successful (user, password) verifications are remembered.
const CACHE_CAPACITY: usize = 64;

/// Header names that the server manages itself and that the configuration may not set.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "date",
    "host",
    "keep-alive",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "www-authenticate",
];

/// A valid bcrypt hash (of an unknown password); its cost digits are replaced to match the
/// configured users.
const DUMMY_HASH_BODY: &str = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("description", &self.describe())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// No TLS, no auth (what runs when --web.config.file is not given).
    pub fn plain() -> WebConfig {
        WebConfig {
            tls: None,
            users: BTreeMap::new(),
            dummy_hash: dummy_hash(4),
            headers: Vec::new(),
            cache: Mutex::new(HashSet::new()),
            cache_key: [0; 32],
            verifications: AtomicU64::new(0),
        }
    }

    /// Reads and validates the file, loads certificates and keys now (so errors surface at start).
    ///
    /// An empty file (or `{}`) means plain HTTP without authentication.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            yaml::Error::whole_file(&file, format!("cannot read file: {}", io_message(&e)))
        })?;
        let document = yaml::parse(&text, &file)?;
        let raw: RawConfig = document
            .deserialize::<Option<RawConfig>>()?
            .unwrap_or_default();
        // An error about the value at `path`, located in the file.
        let err = |path: &[&str], message: String| WebConfigError(document.error(path, message));
        if raw.rate_limit.is_some() {
            return Err(err(
                &["rate_limit"],
                "not supported by this exporter".to_string(),
            ));
        }
        let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let tls = match raw.tls_server_config {
            None => None,
            Some(tls) => Some(build_tls(tls, base_dir, &provider, &err, &file)?),
        };

        let mut headers = Vec::new();
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                tracing::warn!(
                    file = %file,
                    "http_server_config.http2 is ignored: this exporter serves HTTP/1.1 only"
                );
            }
            let mut seen = HashSet::new();
            for (name, value) in http.headers.unwrap_or_default() {
                // As in the exporter-toolkit, a blank value leaves the header unset.
                if value.trim().is_empty() {
                    continue;
                }
                let key = ["http_server_config", "headers", name.as_str()];
                let parsed = hyper::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| err(&key, "not a valid HTTP header name".to_string()))?;
                if RESERVED_HEADERS.contains(&parsed.as_str()) {
                    return Err(err(
                        &key,
                        "this header is set by the server itself and cannot be configured"
                            .to_string(),
                    ));
                }
                if !seen.insert(parsed.as_str().to_string()) {
                    return Err(err(&key, "header given more than once".to_string()));
                }
                hyper::header::HeaderValue::from_str(&value)
                    .map_err(|_| err(&key, "not a valid HTTP header value".to_string()))?;
                headers.push((name, value));
            }
        }

        let users = raw.basic_auth_users.unwrap_or_default();
        // The dummy hash verified for unknown users costs as much as the slowest user's.
        let mut max_cost = 4;
        for (user, hash) in &users {
            let key = ["basic_auth_users", user.as_str()];
            if user.is_empty() {
                return Err(err(&["basic_auth_users"], "empty user name".to_string()));
            }
            if user.contains(':') {
                return Err(err(
                    &key,
                    "user names cannot contain ':' (HTTP basic authentication separates user and password with it)".to_string(),
                ));
            }
            max_cost = max_cost.max(check_bcrypt_hash(hash).map_err(|m| err(&key, m))?);
        }
        let mut cache_key = [0u8; 32];
        provider.secure_random.fill(&mut cache_key).map_err(|_| {
            err(
                &[],
                "cannot get random bytes from the operating system".to_string(),
            )
        })?;

        Ok(WebConfig {
            tls,
            dummy_hash: dummy_hash(max_cost),
            users,
            headers,
            cache: Mutex::new(HashSet::new()),
            cache_key,
            verifications: AtomicU64::new(0),
        })
    }

    /// The TLS acceptor when TLS is configured.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().map(|t| t.acceptor.clone())
    }

    /// True when basic_auth_users is non-empty.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value (`Basic base64(user:pass)`).
    ///
    /// Returns true when no authentication is configured. Otherwise unknown users are
    /// verified against a dummy hash so that timing does not reveal which users exist.
    /// Successful verifications are cached (a keyed SHA-256 of user and password, never the
    /// password itself, at most 64 entries), because bcrypt is deliberately slow (tens of
    /// milliseconds at cost 10) and Prometheus scrapes every few seconds. Failures are not
    /// cached. This blocks for the duration of a bcrypt verification on a cache miss: call
    /// it from `spawn_blocking`.
    pub fn authorize(&self, authorization: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let key = self.cache_entry(&user, &password);
        if self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_CAPACITY {
                if let Some(evict) = cache.iter().next().copied() {
                    cache.remove(&evict);
                }
            }
            cache.insert(key);
        }
        ok
    }

    /// Diagnostic: how many bcrypt verifications `authorize` has run (cache hits run none).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Extra response headers from http_server_config.headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// One line for the landing page / logs, e.g.
    /// "TLS (client certificates required), basic auth (2 users)" or "plain HTTP".
    /// Never contains secrets.
    pub fn describe(&self) -> String {
        let mut out = match &self.tls {
            None => "plain HTTP".to_string(),
            Some(tls) => {
                let mut details = Vec::new();
                if tls.min != TlsVersion::Tls12 || tls.max != TlsVersion::Tls13 {
                    if tls.min == tls.max {
                        details.push(format!("{} only", tls.min.label()));
                    } else {
                        details.push(format!("{} to {}", tls.min.label(), tls.max.label()));
                    }
                }
                if let Some(d) = tls.client_auth.describe() {
                    details.push(d.to_string());
                }
                if details.is_empty() {
                    "TLS".to_string()
                } else {
                    format!("TLS ({})", details.join(", "))
                }
            }
        };
        match self.users.len() {
            0 => {}
            1 => out.push_str(", basic auth (1 user)"),
            n => out.push_str(&format!(", basic auth ({n} users)")),
        }
        out
    }

    fn cache_entry(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.finalize());
        out
    }
}

fn dummy_hash(cost: u32) -> String {
    format!("$2b${cost:02}${DUMMY_HASH_BODY}")
}

/// Validates the shape of a bcrypt hash and returns its cost.
fn check_bcrypt_hash(hash: &str) -> Result<u32, String> {
    let invalid = || {
        "not a bcrypt hash (expected e.g. $2y$10$ followed by 53 characters; see htpasswd -B)"
            .to_string()
    };
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| invalid())?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4..=31"));
    }
    let body = hash.rsplit('$').next().unwrap_or("");
    let alphabet_ok = body
        .bytes()
        .all(|b| b == b'.' || b == b'/' || b.is_ascii_alphanumeric());
    if !hash.starts_with('$') || body.len() != 53 || !alphabet_ok {
        return Err(invalid());
    }
    Ok(cost)
}

/// Parses `Basic base64(user:password)`; the scheme is case-insensitive (RFC 7617).
fn parse_basic(header: &str) -> Option<(String, Vec<u8>)> {
    let header = header.trim();
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_string();
    Some((user, decoded[colon + 1..].to_vec()))
}

/// The message of an I/O error without the trailing " (os error N)".
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------------------------------
// YAML schema

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to the exporter-toolkit, not implemented here.
    rate_limit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted and ignored (rustls chooses).
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    // Known to the exporter-toolkit, not implemented here.
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------
// TLS

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(s: &str) -> Result<TlsVersion, String> {
        match s {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{s} is not supported (rustls implements TLS12 and TLS13 only)"
            )),
            other => Err(format!(
                "unknown TLS version {other:?} (expected TLS12 or TLS13)"
            )),
        }
    }

    fn label(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Result<ClientAuth, String> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is the exporter-toolkit's backwards-compatible alias.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(format!(
                    "unknown client_auth_type {other:?} (expected NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    fn describe(self) -> Option<&'static str> {
        match self {
            ClientAuth::NoClientCert => None,
            ClientAuth::RequestClientCert => Some("client certificates requested, not verified"),
            ClientAuth::RequireAnyClientCert => Some("client certificates required, not verified"),
            ClientAuth::VerifyClientCertIfGiven => Some("client certificates verified if given"),
            ClientAuth::RequireAndVerifyClientCert => Some("client certificates required"),
        }
    }
}

fn build_tls(
    raw: RawTls,
    base_dir: &Path,
    provider: &Arc<CryptoProvider>,
    err: &dyn Fn(&[&str], String) -> WebConfigError,
    file: &str,
) -> Result<TlsSettings, WebConfigError> {
    let unsupported = [
        (
            "cert",
            raw.cert.is_some(),
            "inline certificates are not supported by this exporter; use cert_file",
        ),
        (
            "key",
            raw.key.is_some(),
            "inline keys are not supported by this exporter; use key_file",
        ),
        (
            "client_ca",
            raw.client_ca.is_some(),
            "inline CA certificates are not supported by this exporter; use client_ca_file",
        ),
        (
            "client_allowed_sans",
            raw.client_allowed_sans.is_some(),
            "not supported by this exporter",
        ),
    ];
    for (key, present, message) in unsupported {
        if present {
            return Err(err(&["tls_server_config", key], message.to_string()));
        }
    }
    for (key, present) in [
        ("cipher_suites", raw.cipher_suites.is_some()),
        ("curve_preferences", raw.curve_preferences.is_some()),
        (
            "prefer_server_cipher_suites",
            raw.prefer_server_cipher_suites.is_some(),
        ),
    ] {
        if present {
            tracing::warn!(
                file = %file,
                "tls_server_config.{key} is ignored: rustls uses its own cipher suites, key exchange groups and preference order"
            );
        }
    }

    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let cert_file = non_empty(raw.cert_file).ok_or_else(|| {
        err(
            &["tls_server_config", "cert_file"],
            "required when tls_server_config is present".to_string(),
        )
    })?;
    let key_file = non_empty(raw.key_file).ok_or_else(|| {
        err(
            &["tls_server_config", "key_file"],
            "required when tls_server_config is present".to_string(),
        )
    })?;
    let client_auth = ClientAuth::parse(raw.client_auth_type.as_deref().unwrap_or(""))
        .map_err(|m| err(&["tls_server_config", "client_auth_type"], m))?;
    let min = TlsVersion::parse(raw.min_version.as_deref().unwrap_or("TLS12"))
        .map_err(|m| err(&["tls_server_config", "min_version"], m))?;
    let max = TlsVersion::parse(raw.max_version.as_deref().unwrap_or("TLS13"))
        .map_err(|m| err(&["tls_server_config", "max_version"], m))?;
    if min > max {
        return Err(err(
            &["tls_server_config", "min_version"],
            format!("{} is higher than max_version {}", min.label(), max.label()),
        ));
    }
    let client_ca_file = non_empty(raw.client_ca_file);

    let read = |key: &[&str], name: &str| -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(resolve(base_dir, name))
            .map_err(|e| err(key, format!("cannot read {name:?}: {}", io_message(&e))))
    };

    let cert_key: &[&str] = &["tls_server_config", "cert_file"];
    let cert_pem = read(cert_key, &cert_file)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(cert_key, format!("invalid PEM in {cert_file:?}: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            cert_key,
            format!("no certificate (PEM \"BEGIN CERTIFICATE\" block) found in {cert_file:?}"),
        ));
    }

    let key_key: &[&str] = &["tls_server_config", "key_file"];
    let key_pem = read(key_key, &key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => err(
            key_key,
            format!(
                "no private key found in {key_file:?} (expected an unencrypted PEM \"PRIVATE KEY\", \
                 \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)"
            ),
        ),
        other => err(key_key, format!("invalid PEM in {key_file:?}: {other}")),
    })?;

    let ca_key: &[&str] = &["tls_server_config", "client_ca_file"];
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match (client_auth, &client_ca_file) {
        (ClientAuth::NoClientCert, None) => None,
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(err(
                ca_key,
                "set, but client_auth_type is NoClientCert; set client_auth_type to RequireAndVerifyClientCert to verify client certificates".to_string(),
            ))
        }
        (mode, None) if mode.verifies() => {
            return Err(err(
                ca_key,
                format!("required when client_auth_type is {mode:?}"),
            ))
        }
        (mode, Some(ca_file)) if mode.verifies() => {
            let ca_pem = read(ca_key, ca_file)?;
            let cas = CertificateDer::pem_slice_iter(&ca_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(ca_key, format!("invalid PEM in {ca_file:?}: {e}")))?;
            if cas.is_empty() {
                return Err(err(
                    ca_key,
                    format!("no certificate (PEM \"BEGIN CERTIFICATE\" block) found in {ca_file:?}"),
                ));
            }
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| err(ca_key, format!("invalid CA certificate in {ca_file:?}: {e}")))?;
            }
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if mode == ClientAuth::VerifyClientCertIfGiven {
                builder = builder.allow_unauthenticated();
            }
            Some(
                builder
                    .build()
                    .map_err(|e| err(ca_key, format!("cannot use {ca_file:?}: {e}")))?,
            )
        }
        (mode, ca_file) => {
            if ca_file.is_some() {
                tracing::warn!(
                    file = %file,
                    "tls_server_config.client_ca_file is not used with client_auth_type {mode:?}: client certificates are not verified"
                );
            }
            Some(Arc::new(AcceptAnyClientCert {
                mandatory: mode == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
    };

    let versions: Vec<&'static SupportedProtocolVersion> = [TlsVersion::Tls13, TlsVersion::Tls12]
        .into_iter()
        .filter(|v| (min..=max).contains(v))
        .map(TlsVersion::rustls)
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(&["tls_server_config"], format!("cannot configure TLS: {e}")))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        err(
            key_key,
            format!("cannot use {key_file:?} with the certificate in {cert_file:?}: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok(TlsSettings {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        client_auth,
        min,
        max,
    })
}

fn resolve(base_dir: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: ask for a client certificate and check that
/// the client holds its key, but do not validate the certificate (as in Go's crypto/tls).
#[derive(Debug)]
struct AcceptAnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
