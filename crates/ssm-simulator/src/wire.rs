//! The wire protocol: an AWS JSON 1.1 HTTP server on 127.0.0.1 (request parsing, SigV4
//! header checks, the request record, error bodies, `Date` and `x-amzn-RequestId` headers).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, DATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crate::clock::{http_date, parse_amz_date, skew_error};
use crate::faults::{pick_fault, Fault};
use crate::model::{is_uuid_shaped, uuid_like};
use crate::paging::describe_executions;
use crate::responses::describe_association;
use crate::Shared;

/// `X-Amz-Target` prefix of every SSM operation.
const TARGET_PREFIX: &str = "AmazonSSM.";
/// Content type of AWS JSON 1.1 requests and responses.
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// Largest request body accepted (SSM requests are tiny).
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) const OP_DESCRIBE_EXECUTIONS: &str = "DescribeAssociationExecutions";
pub(crate) const OP_DESCRIBE_ASSOCIATION: &str = "DescribeAssociation";

/// One request as received, with the answer given.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Operation from `X-Amz-Target` without the `AmazonSSM.` prefix (empty if absent).
    pub operation: String,
    /// `AssociationId` from the body, if any.
    pub association_id: Option<String>,
    /// `Filters` as (key, value, type).
    pub filters: Vec<(String, String, String)>,
    /// `MaxResults`, if present.
    pub max_results: Option<i32>,
    /// `NextToken`, if present.
    pub next_token: Option<String>,
    /// HTTP status sent; 0 while unanswered or when no response was sent (hang, reset).
    pub status: u16,
    /// Error code sent (`__type`), or the fault name (`Hang`, `ResetConnection`) when no
    /// response was sent.
    pub error_code: Option<String>,
}

/// An AWS error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        ApiError::client("ValidationException", message)
    }

    pub(crate) fn no_association(id: &str) -> Self {
        ApiError::client(
            "AssociationDoesNotExist",
            format!("Association {id} does not exist"),
        )
    }

    pub(crate) fn throttled() -> Self {
        ApiError::client("ThrottlingException", "Rate exceeded")
    }
}

/// How a request ends.
enum Outcome {
    Reply(Result<Value, ApiError>),
    /// Close the connection without a response; the string names the reason for the record.
    Drop(&'static str),
}

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "ssm simulator accept failed");
                // Avoid spinning on persistent errors such as running out of descriptors.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(|req| handle(shared.clone(), req));
            // The `Date` header comes from the simulator's clock (`handle`), not hyper's.
            let conn = http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                result = conn => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "ssm simulator connection closed");
                    }
                }
            }
        });
    }
    tracing::debug!("ssm simulator stopped");
}

/// Serves one request. An `Err` makes hyper close the connection without a response.
async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let request_id = uuid_like(rand::random());
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.strip_prefix(TARGET_PREFIX).unwrap_or(t).to_owned())
        .unwrap_or_default();
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
    let signed_at = req
        .headers()
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_amz_date);
    let method_ok = req.method() == Method::POST && req.uri().path() == "/";
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "ssm simulator could not read a request body");
            return Err(std::io::Error::other("unreadable request body"));
        }
    };
    let parsed: Result<Value, _> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Object(Map::new()))
    } else {
        serde_json::from_slice(&body)
    };
    let index = record(&shared, &operation, parsed.as_ref().ok());
    let association_id = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.get("AssociationId"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    let outcome = if !authorized {
        Outcome::Reply(Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )))
    } else if let Some(message) = signed_at.and_then(|at| skew_error(at, shared.clock.now_ms())) {
        Outcome::Reply(Err(ApiError::client("InvalidSignatureException", message)))
    } else if !method_ok
        || !matches!(
            operation.as_str(),
            OP_DESCRIBE_EXECUTIONS | OP_DESCRIBE_ASSOCIATION
        )
    {
        Outcome::Reply(Err(ApiError::client(
            "UnknownOperationException",
            format!("Unknown operation {operation:?}"),
        )))
    } else {
        match parsed {
            Err(error) => Outcome::Reply(Err(ApiError::client(
                "SerializationException",
                format!("Malformed request body: {error}"),
            ))),
            Ok(body) => serve(&shared, &operation, body).await,
        }
    };

    let (status, code, reply) = match outcome {
        Outcome::Drop(reason) => {
            finish(&shared, index, 0, Some(reason));
            tracing::debug!(
                operation,
                association_id,
                reason,
                "ssm simulator dropped the connection"
            );
            return Err(std::io::Error::other(reason));
        }
        Outcome::Reply(Ok(body)) => (StatusCode::OK, None, body),
        Outcome::Reply(Err(e)) => (
            e.status,
            Some(e.code),
            json!({"__type": e.code, "message": e.message}),
        ),
    };
    finish(&shared, index, status.as_u16(), code);
    tracing::debug!(
        operation,
        association_id,
        status = status.as_u16(),
        error_code = code,
        request_id,
        "ssm simulator request"
    );
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if !shared.lock().no_date_header {
        if let Ok(value) = HeaderValue::from_str(&http_date(shared.clock.now_ms())) {
            headers.insert(DATE, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    Ok(response)
}

/// Records a request as received and returns its index.
fn record(shared: &Shared, operation: &str, body: Option<&Value>) -> usize {
    let field = |name: &str| body.and_then(|b| b.get(name));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let filters = field("Filters")
        .and_then(Value::as_array)
        .map(|filters| {
            filters
                .iter()
                .map(|f| {
                    let part = |k: &str| text(f.get(k)).unwrap_or_default();
                    (part("Key"), part("Value"), part("Type"))
                })
                .collect()
        })
        .unwrap_or_default();
    let request = RecordedRequest {
        operation: operation.to_owned(),
        association_id: text(field("AssociationId")),
        filters,
        max_results: field("MaxResults")
            .and_then(Value::as_i64)
            .map(|n| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })),
        next_token: text(field("NextToken")),
        status: 0,
        error_code: None,
    };
    let mut state = shared.lock();
    state.requests.push(request);
    state.requests.len() - 1
}

fn finish(shared: &Shared, index: usize, status: u16, error_code: Option<&str>) {
    if let Some(request) = shared.lock().requests.get_mut(index) {
        request.status = status;
        request.error_code = error_code.map(str::to_owned);
    }
}

/// Rate limit, faults, then the operation itself.
async fn serve(shared: &Shared, operation: &str, body: Value) -> Outcome {
    let association_id = body.get("AssociationId").and_then(Value::as_str);
    let has_token = body
        .get("NextToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let fault = {
        let mut state = shared.lock();
        if let Some(bucket) = state.rate_limit.as_mut() {
            if !bucket.try_take() {
                return Outcome::Reply(Err(ApiError::throttled()));
            }
        }
        pick_fault(&mut state.faults, operation, association_id, has_token)
    };
    let token_fault = fault.as_ref().filter(|f| f.is_token_fault());
    match &fault {
        None | Some(Fault::RepeatNextToken | Fault::CycleNextTokens) => {}
        Some(Fault::Throttle) => return Outcome::Reply(Err(ApiError::throttled())),
        Some(Fault::InternalError) => {
            return Outcome::Reply(Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal error has occurred (simulated).",
            )))
        }
        Some(Fault::InvalidNextToken) => {
            return Outcome::Reply(Err(ApiError::client(
                "InvalidNextToken",
                "The specified token isn't valid.",
            )))
        }
        Some(Fault::AccessDenied) => {
            return Outcome::Reply(Err(ApiError::client(
                "AccessDeniedException",
                format!("User is not authorized to perform: ssm:{operation} (simulated)"),
            )))
        }
        Some(Fault::ExpiredToken) => {
            return Outcome::Reply(Err(ApiError::client(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )))
        }
        Some(Fault::Delay(delay)) => {
            tokio::select! {
                () = shared.shutdown.cancelled() => return Outcome::Drop("Shutdown"),
                () = tokio::time::sleep(*delay) => {}
            }
        }
        Some(Fault::Hang) => {
            shared.shutdown.cancelled().await;
            return Outcome::Drop("Hang");
        }
        Some(Fault::ResetConnection) => return Outcome::Drop("ResetConnection"),
    }
    let result = match operation {
        OP_DESCRIBE_EXECUTIONS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_executions(shared, request, token_fault)),
        _ => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_association(shared, request)),
    };
    Outcome::Reply(result)
}

fn serialization_error(error: serde_json::Error) -> ApiError {
    ApiError::client("SerializationException", error.to_string())
}

pub(crate) fn validate_association_id(id: Option<&str>) -> Result<&str, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'associationId' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    if is_uuid_shaped(id) {
        Ok(id)
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at 'associationId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}"
        )))
    }
}
