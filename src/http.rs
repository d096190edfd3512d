//! The HTTP endpoints: the metrics path, `/healthz`, `/readyz` and a landing page; nothing else.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::scheduler::Readiness;

/// A client gets this long to send its request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight responses get this long to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read: all of it in memory, so a scrape never waits on AWS.
pub struct HttpState {
    pub registry: Registry,
    pub readiness: Arc<Readiness>,
    pub telemetry_path: String,
    /// The landing page, rendered once at start.
    pub landing_page: String,
}

/// Serves until `shutdown` fires, then stops accepting and lets in-flight responses finish
/// (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    loop {
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
        let service = service_fn(move |request: Request<Incoming>| {
            let response = handle(&request, &state);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
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

enum Route {
    Metrics,
    Health,
    Ready,
    Landing,
}

fn handle(request: &Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let route = if path == state.telemetry_path {
        Route::Metrics
    } else {
        match path {
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/" => Route::Landing,
            _ => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        Route::Metrics => metrics(state, accepts_gzip(request)),
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Ready => match state.readiness.check() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        Route::Landing => {
            let mut response = Response::new(Full::new(Bytes::from(state.landing_page.clone())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
    }
}

fn metrics(state: &HttpState, gzip: bool) -> Response<Full<Bytes>> {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(64 * 1024);
    if let Err(error) = encoder.encode(&state.registry.gather(), &mut body) {
        tracing::error!(%error, "encoding metrics failed");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        );
    }
    let (body, gzipped) = match gzip.then(|| compress(&body)).flatten() {
        Some(compressed) => (compressed, true),
        None => (body, false),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzipped {
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

/// Gzips a scrape body at the fastest level: text metrics compress about tenfold even so.
fn compress(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
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

/// Renders the landing page: links to the endpoints and the effective configuration (which
/// holds no secrets: association IDs, intervals, limits and the region).
pub fn landing_page(telemetry_path: &str, summary: &str) -> String {
    let path = escape(telemetry_path);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>SSM Association Exporter</title></head>\n\
         <body>\n<h1>SSM Association Exporter</h1>\n<p>Version {version}</p>\n<ul>\n\
         <li><a href=\"{path}\">{path}</a>: metrics</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
         <li><a href=\"/readyz\">/readyz</a>: readiness (after the first round of polls)</li>\n\
         </ul>\n<h2>Configuration</h2>\n<pre>{summary}</pre>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        summary = escape(summary),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
