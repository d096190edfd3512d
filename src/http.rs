//! The HTTP endpoints: the metrics path, `/healthz`, `/readyz`, `/-/reload`, the status page
//! (`/`) and its JSON (`/api/v1/associations`, `/api/v1/associations/{id}`).

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING, VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::events::Board;
use crate::exposition::{self, Shape};
use crate::readiness::Readiness;
use crate::status::{self, escape, Query, Snapshot};
use crate::store::Store;
use crate::web_config::WebConfig;

/// A reload request from `POST /-/reload`: the reply is the new summary or the error.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// How the HTTP side is set up (flags).
pub struct HttpSettings {
    pub telemetry_path: String,
    /// Most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// TLS and basic auth (`--web.config.file`).
    pub web: Arc<WebConfig>,
    /// `--web.enable-lifecycle`: whether `POST /-/reload` may reload (else 403).
    pub enable_lifecycle: bool,
}

/// Default `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Request heads larger than this are refused (431): no route takes more than a short line.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A client gets this long to send its request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and this long to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight responses get this long to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read: all of it in memory, so a scrape never waits on AWS.
pub struct HttpState {
    registry: Registry,
    store: Arc<Store>,
    readiness: Arc<Readiness>,
    telemetry_path: String,
    /// The lower part of the status page (links to the endpoints, the effective
    /// configuration), rendered at start and after each reload.
    landing_page: RwLock<String>,
    reload: Option<mpsc::Sender<ReloadRequest>>,
    /// `--web.enable-lifecycle`.
    lifecycle: bool,
    max_connections: usize,
    web: Arc<WebConfig>,
    cache: std::sync::Mutex<ScrapeCache>,
    /// The running configuration's shape of `/metrics` (set at start and after each reload).
    shape: RwLock<Shape>,
    /// Held while a rendering runs: one at a time.
    rendering: Arc<tokio::sync::Mutex<()>>,
    /// The `events:` input, for the status page.
    events: Arc<Board>,
}

impl HttpState {
    pub fn new(
        registry: Registry,
        store: Arc<Store>,
        readiness: Arc<Readiness>,
        settings: HttpSettings,
        shape: Shape,
        summary: &str,
        reload: Option<mpsc::Sender<ReloadRequest>>,
    ) -> HttpState {
        HttpState {
            registry,
            store,
            readiness,
            landing_page: RwLock::new(landing_page(&settings.telemetry_path, summary)),
            telemetry_path: settings.telemetry_path,
            reload,
            lifecycle: settings.enable_lifecycle,
            max_connections: settings.max_connections.max(1),
            web: settings.web,
            cache: std::sync::Mutex::new(ScrapeCache::default()),
            shape: RwLock::new(shape),
            rendering: Arc::new(tokio::sync::Mutex::new(())),
            events: Arc::new(Board::default()),
        }
    }

    /// Shows `board` (the `events:` input) on the status page.
    pub fn with_events(mut self, board: Arc<Board>) -> HttpState {
        self.events = board;
        self
    }

    /// Drops the cached /metrics body (after a reload, which changes what it shows).
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = ScrapeCache::default();
    }

    /// After a reload: the new configuration's shape of `/metrics`, and the status page's
    /// configuration section re-rendered from its summary.
    pub fn reconfigure(&self, shape: Shape, summary: &str) {
        *self.shape.write().unwrap_or_else(|e| e.into_inner()) = shape;
        *self.landing_page.write().unwrap_or_else(|e| e.into_inner()) =
            landing_page(&self.telemetry_path, summary);
    }
}

/// Serves until `shutdown` fires, then stops accepting and lets in-flight responses finish
/// (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    // At most this many connections at once: beyond it, new ones wait in the listen backlog.
    // Slow clients are cut off by the header read timeout, so they cannot hold slots forever.
    let slots = Arc::new(Semaphore::new(state.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match state.web.tls_acceptor() {
                None => serve_connection(stream, state, watcher).await,
                // The handshake runs here, in the connection's own task and under a timeout,
                // so a slow or plain-HTTP client cannot stall the accept loop.
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, state, watcher).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("HTTP connections still open after the shutdown grace period; closing them");
        }
    }
}

/// Serves HTTP/1.1 on one (plain or TLS) connection until it closes or shutdown ends it.
async fn serve_connection<I>(
    io: I,
    state: Arc<HttpState>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        async move {
            let mut response = handle(request, &state).await;
            for (name, value) in state.web.headers() {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

enum Route {
    Metrics,
    Health,
    Ready,
    Status,
    Associations,
    Association(String),
    Reload,
}

async fn handle(request: Request<Incoming>, state: &Arc<HttpState>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let route = if path == state.telemetry_path {
        Route::Metrics
    } else {
        match path {
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/" => Route::Status,
            "/api/v1/associations" => Route::Associations,
            "/-/reload" => Route::Reload,
            _ => match path.strip_prefix("/api/v1/associations/") {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    Route::Association(status::percent_decode(id))
                }
                _ => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
            },
        }
    };
    let allowed: &[Method] = match route {
        Route::Reload => &[Method::POST, Method::PUT],
        _ => &[Method::GET, Method::HEAD],
    };
    if !allowed.contains(request.method()) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        let allow = if allowed[0] == Method::GET {
            "GET, HEAD"
        } else {
            "POST, PUT"
        };
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    // Probes carry no credentials and reveal nothing but liveness; everything else needs them
    // when basic_auth_users is set.
    if state.web.requires_auth() && !matches!(route, Route::Health | Route::Ready) {
        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let web = state.web.clone();
        // bcrypt is deliberately slow: keep it off the async workers.
        let allowed = tokio::task::spawn_blocking(move || web.authorize(authorization.as_deref()))
            .await
            .unwrap_or(false);
        if !allowed {
            let mut response = text(StatusCode::UNAUTHORIZED, "401 unauthorized\n");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ssm-association-exporter\""),
            );
            return response;
        }
    }
    // No route takes a body: refuse one rather than read it.
    if has_body(&request) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 request bodies are not accepted\n",
        );
    }
    match route {
        Route::Metrics => metrics(state, accepts_gzip(&request)).await,
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Ready => match state.readiness.check() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        Route::Reload => reload(state).await,
        Route::Status | Route::Associations | Route::Association(_) => {
            let query = Query::parse(request.uri().query());
            status_page(state, route, query).await
        }
    }
}

/// The status page or its JSON, rendered off the async workers from a snapshot of the
/// published numbers (no AWS call).
async fn status_page(state: &Arc<HttpState>, route: Route, query: Query) -> Response<Full<Bytes>> {
    let shared = state.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let mut snapshot = Snapshot::take(
            &shared.store,
            status::credentials_from(&shared.registry),
            crate::clock::now_ms(),
        );
        snapshot.events = shared.events.view();
        match route {
            Route::Associations => Some((status::render_json(&snapshot, &query), true)),
            Route::Association(id) => status::render_one_json(&snapshot, &id).map(|b| (b, true)),
            _ => {
                let footer = shared
                    .landing_page
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Some((status::render_html(&snapshot, &query, &footer), false))
            }
        }
    })
    .await;
    let (body, is_json) = match rendered {
        Ok(Some(rendered)) => rendered,
        Ok(None) => return text(StatusCode::NOT_FOUND, "404 association not found\n"),
        Err(error) => {
            tracing::error!(%error, "rendering the status page failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n");
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if is_json {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        }),
    );
    response
}

fn has_body(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// `POST /-/reload`: only with `--web.enable-lifecycle` (Prometheus' answer and status
/// otherwise); the reload loop answers every request waiting when a reload starts with that
/// one reload's result.
async fn reload(state: &HttpState) -> Response<Full<Bytes>> {
    if !state.lifecycle {
        return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n");
    }
    let Some(sender) = &state.reload else {
        return text(StatusCode::NOT_FOUND, "reloading is not enabled\n");
    };
    let (reply, answer) = oneshot::channel();
    if sender.send(reply).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match answer.await {
        Ok(Ok(message)) => text(StatusCode::OK, &format!("{message}\n")),
        Ok(Err(error)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("failed to reload config: {error}\n"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// Scrapes within this long of a rendering share it: under a burst of scrapers (or several
/// Prometheus replicas) the body is rendered at most a few times a second.
const SCRAPE_CACHE_TTL: Duration = Duration::from_millis(250);
/// A rendering younger than this is still served while a fresh one is made in the
/// background, so that under constant scraping no scrape waits for a rendering. Older than
/// this (a Prometheus scraping every 15 s), the scrape waits for a fresh one.
const SCRAPE_MAX_STALE: Duration = Duration::from_secs(1);

/// The last rendered bodies, plain and gzipped, with when they were rendered.
#[derive(Default)]
pub struct ScrapeCache {
    plain: Option<(tokio::time::Instant, Bytes)>,
    gzip: Option<(tokio::time::Instant, Bytes)>,
}

impl ScrapeCache {
    fn slot(&mut self, gzip: bool) -> &mut Option<(tokio::time::Instant, Bytes)> {
        if gzip {
            &mut self.gzip
        } else {
            &mut self.plain
        }
    }
}

impl HttpState {
    fn cached(&self, gzip: bool) -> Option<(tokio::time::Instant, Bytes)> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slot(gzip)
            .clone()
    }
}

/// The `/metrics` body in the asked-for encoding: cached, refreshed in the background, or
/// rendered now.
async fn scrape_body(state: &Arc<HttpState>, gzip: bool) -> Result<Bytes, String> {
    if let Some((at, body)) = state.cached(gzip) {
        let age = at.elapsed();
        if age < SCRAPE_CACHE_TTL {
            return Ok(body);
        }
        if age < SCRAPE_MAX_STALE {
            if let Ok(guard) = state.rendering.clone().try_lock_owned() {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(error) = render_into_cache(&state, gzip).await {
                        tracing::error!(%error, "rendering metrics failed");
                    }
                    drop(guard);
                });
            }
            return Ok(body);
        }
    }
    let _guard = state.rendering.lock().await;
    if let Some((at, body)) = state.cached(gzip) {
        if at.elapsed() < SCRAPE_CACHE_TTL {
            return Ok(body);
        }
    }
    render_into_cache(state, gzip).await
}

/// Renders (and gzips, streaming) the body off the async workers and caches it.
async fn render_into_cache(state: &Arc<HttpState>, gzip: bool) -> Result<Bytes, String> {
    let shared = state.clone();
    let shape = *state.shape.read().unwrap_or_else(|e| e.into_inner());
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let error = |e: &dyn std::fmt::Display| e.to_string();
        if gzip {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(256 * 1024),
                flate2::Compression::fast(),
            );
            exposition::render_body(&shared.registry, &shared.store, &shape, &mut encoder)
                .map_err(|e| error(&e))?;
            encoder.finish().map_err(|e| error(&e))
        } else {
            let mut body = Vec::with_capacity(256 * 1024);
            exposition::render_body(&shared.registry, &shared.store, &shape, &mut body)
                .map_err(|e| error(&e))?;
            Ok(body)
        }
    })
    .await
    .map_err(|e| e.to_string())??;
    let body = Bytes::from(body);
    *state
        .cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .slot(gzip) = Some((tokio::time::Instant::now(), body.clone()));
    Ok(body)
}

async fn metrics(state: &Arc<HttpState>, gzip: bool) -> Response<Full<Bytes>> {
    let body = match scrape_body(state, gzip).await {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            );
        }
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether the client takes gzip (Prometheus sends `Accept-Encoding: gzip`); `gzip;q=0` refuses.
fn accepts_gzip(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Renders the lower part of the status page: links to the endpoints and the effective
/// configuration (which holds no secrets: association IDs, intervals, limits and the region).
pub fn landing_page(telemetry_path: &str, summary: &str) -> String {
    let path = escape(telemetry_path);
    format!(
        "<h2>Endpoints</h2>\n<p>Version {version}</p>\n<ul>\n\
         <li><a href=\"{path}\">{path}</a>: metrics</li>\n\
         <li><a href=\"/api/v1/associations\">/api/v1/associations</a>: this page as JSON \
         (<code>?q=</code>, <code>?page=</code>); <code>/api/v1/associations/{{id}}</code>: one \
         association with its recent runs and their failing targets</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
         <li><a href=\"/readyz\">/readyz</a>: readiness (after the first round of polls)</li>\n\
         </ul>\n<h2>Configuration</h2>\n<pre>{summary}</pre>\n",
        version = env!("CARGO_PKG_VERSION"),
        summary = escape(summary),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Arc<HttpState> {
        Arc::new(HttpState::new(
            Registry::new(),
            Arc::new(Store::default()),
            Arc::new(Readiness::new()),
            HttpSettings {
                telemetry_path: "/metrics".into(),
                max_connections: 4,
                web: Arc::new(WebConfig::plain()),
                enable_lifecycle: false,
            },
            Shape::default(),
            "",
            None,
        ))
    }

    /// Waits (on the paused clock, letting the blocking renderer run) until the cache holds a
    /// rendering other than `old`.
    async fn cache_replaced(state: &HttpState, old: &Bytes) -> Bytes {
        for _ in 0..1_000 {
            if let Some((_, body)) = state.cached(false) {
                if body.as_ptr() != old.as_ptr() {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the background rendering never landed");
    }

    /// The scrape cache on tokio's paused clock: one rendering is shared for 250 ms; up to 1 s
    /// a stale one is served at once while a fresh one is rendered in the background; past
    /// that, the scrape waits for a fresh rendering.
    #[tokio::test(start_paused = true)]
    async fn scrape_cache_shares_then_serves_stale_then_renders() {
        let state = state();
        let first = scrape_body(&state, false).await.unwrap();
        tokio::time::advance(SCRAPE_CACHE_TTL - Duration::from_millis(1)).await;
        let shared = scrape_body(&state, false).await.unwrap();
        assert_eq!(shared.as_ptr(), first.as_ptr(), "shared within the TTL");

        tokio::time::advance(Duration::from_millis(2)).await;
        let stale = scrape_body(&state, false).await.unwrap();
        assert_eq!(stale.as_ptr(), first.as_ptr(), "stale body served at once");
        let fresh = cache_replaced(&state, &first).await;
        let next = scrape_body(&state, false).await.unwrap();
        assert_eq!(
            next.as_ptr(),
            fresh.as_ptr(),
            "the background rendering is served"
        );

        tokio::time::advance(SCRAPE_MAX_STALE + Duration::from_millis(1)).await;
        let late = scrape_body(&state, false).await.unwrap();
        assert_ne!(late.as_ptr(), fresh.as_ptr(), "too old: rendered anew");
        assert_eq!(state.cached(false).unwrap().1.as_ptr(), late.as_ptr());
    }
}
