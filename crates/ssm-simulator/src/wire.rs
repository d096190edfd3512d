//! The wire protocols: an HTTP server on 127.0.0.1 speaking AWS JSON 1.1 (SSM), AWS JSON 1.0
//! (SQS) and the query protocol (STS): request parsing and dispatch, SigV4 header checks, the caller's account and
//! region, recording each request and its answer, error bodies, `Date` and `x-amzn-RequestId`
//! headers.

use std::collections::HashMap;
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

use crate::api::{
    ApiError, OP_DESCRIBE_EXECUTIONS, OP_DESCRIBE_TARGETS, OP_LIST_ASSOCIATIONS, OP_LIST_TAGS,
    SQS_OPERATIONS, SSM_OPERATIONS,
};
use crate::clock::{http_date, parse_amz_date, skew_error};
use crate::faults::{pick_fault_in, Fault};
use crate::identity::{
    parse_credential_scope, CredentialProblem, Scope, DEFAULT_ACCOUNT, DEFAULT_REGION,
};
use crate::listing::{list_associations, list_tags};
use crate::model::uuid_like;
use crate::paging::describe_executions;
use crate::responses::describe_association;
use crate::sqs::{serve_sqs, SqsOutcome};
use crate::state::{RecordedRequest, Shared};
use crate::sts::{error_xml, parse_form, serve_query};
use crate::targets::describe_targets;

/// `X-Amz-Target` prefix of every SSM operation.
const TARGET_PREFIX: &str = "AmazonSSM.";
/// `X-Amz-Target` prefix of every SQS operation.
const SQS_TARGET_PREFIX: &str = "AmazonSQS.";
/// Content type of AWS JSON 1.1 requests and responses.
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// Content type of AWS JSON 1.0 (SQS) requests and responses.
const AMZ_JSON_1_0: &str = "application/x-amz-json-1.0";
/// SQS's error `__type` namespace.
const SQS_ERROR_NAMESPACE: &str = "com.amazonaws.sqs#";
/// Content type of query-protocol (STS) responses.
const XML: &str = "text/xml";
/// Largest request body accepted (SSM requests are tiny).
const MAX_BODY_BYTES: usize = 1 << 20;

/// How a request ends.
enum Outcome {
    Reply(Result<Payload, ApiError>),
    /// Close the connection without a response; the string names the reason for the record.
    Drop(&'static str),
}

/// A successful answer's body.
enum Payload {
    Json(Value),
    Xml(String),
}

/// The AWS protocols the simulator speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// SSM: AWS JSON 1.1 (`X-Amz-Target: AmazonSSM.*`).
    Json,
    /// SQS: AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.*`), errors with `x-amzn-query-error`.
    Sqs,
    /// STS: the query protocol (form-encoded `Action=...`, XML answers).
    Query,
}

/// What the request parsers found.
struct Parsed {
    operation: String,
    body: Result<Value, String>,
    form: HashMap<String, String>,
    /// `AssociationId`, or `ResourceId` of an association's tags.
    association_id: Option<String>,
    has_token: bool,
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
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let target = header("x-amz-target");
    let authorization = header(AUTHORIZATION.as_str()).unwrap_or_default();
    let authorized = authorization.starts_with("AWS4-HMAC-SHA256");
    let credential = parse_credential_scope(&authorization);
    let session_token = header("x-amz-security-token");
    let is_form = header(CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let protocol = if target.is_none() && (credential.service.as_deref() == Some("sts") || is_form)
    {
        Protocol::Query
    } else if target
        .as_deref()
        .is_some_and(|t| t.starts_with(SQS_TARGET_PREFIX))
    {
        Protocol::Sqs
    } else {
        Protocol::Json
    };
    let signed_at = header("x-amz-date").as_deref().and_then(parse_amz_date);
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
    let parsed = parse(protocol, target.as_deref(), &body);
    let now_ms = shared.clock.now_ms();
    let identity =
        shared
            .lock()
            .identity
            .account_of(&credential.access_key, session_token.as_deref(), now_ms);
    let scope = Scope::new(
        identity
            .clone()
            .unwrap_or_else(|_| DEFAULT_ACCOUNT.to_owned()),
        credential
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    );
    let index = record(&shared, protocol, &parsed, &scope, &credential.access_key);
    let operation = parsed.operation.clone();
    let association_id = parsed.association_id.clone();

    let outcome = if !authorized {
        Outcome::Reply(Err(match protocol {
            Protocol::Json | Protocol::Sqs => ApiError::new(
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            Protocol::Query => ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
        }))
    } else if let Some(message) = signed_at.and_then(|at| skew_error(at, now_ms)) {
        Outcome::Reply(Err(ApiError::client(
            match protocol {
                Protocol::Json | Protocol::Sqs => "InvalidSignatureException",
                Protocol::Query => "SignatureDoesNotMatch",
            },
            message,
        )))
    } else if let Err(problem) = identity {
        Outcome::Reply(Err(credential_error(protocol, problem)))
    } else if protocol == Protocol::Query {
        match gate(&shared, protocol, &scope, &parsed).await {
            Err(outcome) => outcome,
            Ok(_) => Outcome::Reply(
                serve_query(
                    &shared,
                    &scope,
                    &credential.access_key,
                    &parsed.form,
                    &request_id,
                )
                .map(Payload::Xml),
            ),
        }
    } else if protocol == Protocol::Sqs {
        if !method_ok || !SQS_OPERATIONS.contains(&operation.as_str()) {
            Outcome::Reply(Err(ApiError::sqs(
                StatusCode::BAD_REQUEST,
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                format!("Unknown operation {operation:?}"),
            )))
        } else {
            match parsed.body {
                Err(error) => Outcome::Reply(Err(ApiError::sqs(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    "SerializationException",
                    format!("Malformed request body: {error}"),
                ))),
                Ok(body) => match serve_sqs(&shared, &scope, &operation, body).await {
                    SqsOutcome::Reply(reply) => Outcome::Reply(reply.map(Payload::Json)),
                    SqsOutcome::Reset => Outcome::Drop("ResetConnection"),
                },
            }
        }
    } else if !method_ok || !SSM_OPERATIONS.contains(&operation.as_str()) {
        Outcome::Reply(Err(ApiError::client(
            "UnknownOperationException",
            format!("Unknown operation {operation:?}"),
        )))
    } else {
        match &parsed.body {
            Err(error) => Outcome::Reply(Err(ApiError::client(
                "SerializationException",
                format!("Malformed request body: {error}"),
            ))),
            Ok(_) => match gate(&shared, protocol, &scope, &parsed).await {
                Err(outcome) => outcome,
                Ok(token_fault) => {
                    let body = parsed.body.unwrap_or_default();
                    Outcome::Reply(
                        serve_json(&shared, &scope, &operation, body, token_fault.as_ref())
                            .map(Payload::Json),
                    )
                }
            },
        }
    };

    let mut query_error = None;
    let (status, code, reply, content_type) = match outcome {
        Outcome::Drop(reason) => {
            finish(&shared, index, 0, Some(reason));
            tracing::debug!(
                operation,
                association_id,
                %scope,
                reason,
                "ssm simulator dropped the connection"
            );
            return Err(std::io::Error::other(reason));
        }
        Outcome::Reply(Ok(Payload::Json(body))) => {
            let content_type = if protocol == Protocol::Sqs {
                AMZ_JSON_1_0
            } else {
                AMZ_JSON
            };
            (StatusCode::OK, None, body.to_string(), content_type)
        }
        Outcome::Reply(Ok(Payload::Xml(body))) => (StatusCode::OK, None, body, XML),
        Outcome::Reply(Err(e)) => match protocol {
            Protocol::Json => (
                e.status,
                Some(e.code),
                json!({"__type": e.code, "message": e.message}).to_string(),
                AMZ_JSON,
            ),
            Protocol::Sqs => {
                let fault = if e.status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                query_error = e.query_code.map(|q| format!("{q};{fault}"));
                (
                    e.status,
                    Some(e.code),
                    json!({"__type": format!("{SQS_ERROR_NAMESPACE}{}", e.code), "message": e.message})
                        .to_string(),
                    AMZ_JSON_1_0,
                )
            }
            Protocol::Query => (
                e.status,
                Some(e.code),
                error_xml(e.status, e.code, &e.message, &request_id),
                XML,
            ),
        },
    };
    finish(&shared, index, status.as_u16(), code);
    tracing::debug!(
        operation,
        association_id,
        %scope,
        status = status.as_u16(),
        error_code = code,
        request_id,
        "ssm simulator request"
    );
    let mut response = Response::new(Full::new(Bytes::from(reply)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !shared.lock().no_date_header {
        if let Ok(value) = HeaderValue::from_str(&http_date(shared.clock.now_ms())) {
            headers.insert(DATE, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Some(value) = query_error.and_then(|q| HeaderValue::from_str(&q).ok()) {
        headers.insert("x-amzn-query-error", value);
    }
    Ok(response)
}

/// Parses a request body by protocol.
fn parse(protocol: Protocol, target: Option<&str>, body: &[u8]) -> Parsed {
    match protocol {
        Protocol::Query => {
            let form = parse_form(body);
            Parsed {
                operation: form.get("Action").cloned().unwrap_or_default(),
                body: Ok(Value::Object(Map::new())),
                form,
                association_id: None,
                has_token: false,
            }
        }
        Protocol::Json | Protocol::Sqs => {
            let operation = target
                .map(|t| {
                    t.strip_prefix(TARGET_PREFIX)
                        .or_else(|| t.strip_prefix(SQS_TARGET_PREFIX))
                        .unwrap_or(t)
                        .to_owned()
                })
                .unwrap_or_default();
            let body: Result<Value, String> = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Value::Object(Map::new()))
            } else {
                serde_json::from_slice(body).map_err(|e| e.to_string())
            };
            let field = |name: &str| {
                body.as_ref()
                    .ok()
                    .and_then(|b| b.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let association_id = field("AssociationId").or_else(|| {
                (field("ResourceType").as_deref() == Some("Association"))
                    .then(|| field("ResourceId"))
                    .flatten()
            });
            let has_token = field("NextToken").is_some_and(|t| !t.is_empty());
            Parsed {
                operation,
                body,
                form: HashMap::new(),
                association_id,
                has_token,
            }
        }
    }
}

/// The error for refused credentials.
fn credential_error(protocol: Protocol, problem: CredentialProblem) -> ApiError {
    match (protocol, problem) {
        (Protocol::Json | Protocol::Sqs, CredentialProblem::Expired) => ApiError::client(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        (Protocol::Query, CredentialProblem::Expired) => ApiError::client(
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        (Protocol::Json | Protocol::Sqs, CredentialProblem::BadSessionToken) => ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        (Protocol::Query, CredentialProblem::BadSessionToken) => ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
    }
}

/// Records a request as received and returns its index.
fn record(
    shared: &Shared,
    protocol: Protocol,
    parsed: &Parsed,
    scope: &Scope,
    access_key: &str,
) -> usize {
    let body = parsed.body.as_ref().ok();
    let field = |name: &str| body.and_then(|b| b.get(name));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let pairs = |name: &str, keys: &[&str]| -> Vec<Vec<String>> {
        field(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|f| {
                        keys.iter()
                            .map(|k| text(f.get(*k)).unwrap_or_default())
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let filters = pairs("Filters", &["Key", "Value", "Type"])
        .into_iter()
        .map(|mut f| (f.remove(0), f.remove(0), f.remove(0)))
        .collect();
    let association_filters = pairs("AssociationFilterList", &["key", "value"])
        .into_iter()
        .map(|mut f| (f.remove(0), f.remove(0)))
        .collect();
    let request = RecordedRequest {
        operation: parsed.operation.clone(),
        service: match protocol {
            Protocol::Json => "ssm",
            Protocol::Sqs => "sqs",
            Protocol::Query => "sts",
        }
        .to_owned(),
        account: scope.account.clone(),
        region: scope.region.clone(),
        access_key: access_key.to_owned(),
        association_id: parsed.association_id.clone(),
        filters,
        association_filters,
        max_results: field("MaxResults")
            .and_then(Value::as_i64)
            .map(|n| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })),
        next_token: text(field("NextToken")),
        role_arn: parsed.form.get("RoleArn").cloned(),
        external_id: parsed.form.get("ExternalId").cloned(),
        status: 0,
        error_code: None,
    };
    let mut state = shared.lock();
    state.requests.push(request);
    state.requests_cleared + state.requests.len() - 1
}

/// Notes the answer in the record `index` (counted from the first request ever), unless
/// [`Simulator::clear_requests`](crate::Simulator::clear_requests) dropped it meanwhile.
fn finish(shared: &Shared, index: usize, status: u16, error_code: Option<&str>) {
    let mut state = shared.lock();
    let Some(position) = index.checked_sub(state.requests_cleared) else {
        return;
    };
    if let Some(request) = state.requests.get_mut(position) {
        request.status = status;
        request.error_code = error_code.map(str::to_owned);
    }
}

/// The error a fault gives, in the request's protocol. `association_id` is the association the
/// request names, if any (the resource of an access denial).
fn fault_error(
    protocol: Protocol,
    operation: &str,
    scope: &Scope,
    association_id: Option<&str>,
    fault: &Fault,
) -> ApiError {
    let sts = protocol == Protocol::Query;
    match fault {
        Fault::Throttle if sts => ApiError::client("Throttling", "Rate exceeded"),
        Fault::InternalError if sts => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "An internal error has occurred (simulated).",
        ),
        Fault::AccessDenied if sts => ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: arn:aws:iam::{}:user/simulated is not authorized to perform: \
                 sts:{operation} (simulated)",
                scope.account
            ),
        ),
        Fault::ExpiredToken if sts => ApiError::client(
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        Fault::InternalError => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal error has occurred (simulated).",
        ),
        Fault::InvalidNextToken => {
            ApiError::client("InvalidNextToken", "The specified token isn't valid.")
        }
        // As IAM words it: the denied action on the association's ARN (an association-scoped
        // policy or SCP), or on the account's SSM resources for calls that name none.
        Fault::AccessDenied => {
            let (account, region) = (&scope.account, &scope.region);
            let resource = match association_id {
                Some(id) => format!("arn:aws:ssm:{region}:{account}:association/{id}"),
                None => format!("arn:aws:ssm:{region}:{account}:*"),
            };
            ApiError::client(
                "AccessDeniedException",
                format!(
                    "User: arn:aws:iam::{account}:user/simulated is not authorized to perform: \
                     ssm:{operation} on resource: {resource} because no identity-based policy \
                     allows the ssm:{operation} action (simulated)"
                ),
            )
        }
        Fault::ExpiredToken => ApiError::client(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        _ => ApiError::throttled(),
    }
}

/// Rate limit and faults: `Err` when they decide the request's fate, else the token fault
/// (if one fired) for the operation to apply.
async fn gate(
    shared: &Shared,
    protocol: Protocol,
    scope: &Scope,
    parsed: &Parsed,
) -> Result<Option<Fault>, Outcome> {
    let operation = parsed.operation.as_str();
    let fault = {
        let mut state = shared.lock();
        if let Some(bucket) = state.rate_limit.as_mut() {
            if !bucket.try_take() {
                let error = fault_error(protocol, operation, scope, None, &Fault::Throttle);
                return Err(Outcome::Reply(Err(error)));
            }
        }
        pick_fault_in(
            &mut state.faults,
            Some(scope),
            operation,
            parsed.association_id.as_deref(),
            parsed.has_token,
        )
    };
    match fault {
        None => Ok(None),
        Some(f) if f.is_token_fault() => Ok(Some(f)),
        Some(Fault::Delay(delay)) => {
            tokio::select! {
                () = shared.shutdown.cancelled() => Err(Outcome::Drop("Shutdown")),
                () = tokio::time::sleep(delay) => Ok(None),
            }
        }
        Some(Fault::Hang) => {
            shared.shutdown.cancelled().await;
            Err(Outcome::Drop("Hang"))
        }
        Some(Fault::ResetConnection) => Err(Outcome::Drop("ResetConnection")),
        Some(f) => Err(Outcome::Reply(Err(fault_error(
            protocol,
            operation,
            scope,
            parsed.association_id.as_deref(),
            &f,
        )))),
    }
}

/// Answers one SSM operation for the caller's account and region.
fn serve_json(
    shared: &Shared,
    scope: &Scope,
    operation: &str,
    body: Value,
    token_fault: Option<&Fault>,
) -> Result<Value, ApiError> {
    match operation {
        OP_DESCRIBE_EXECUTIONS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_executions(shared, scope, request, token_fault)),
        OP_LIST_ASSOCIATIONS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| list_associations(shared, scope, request, token_fault)),
        OP_DESCRIBE_TARGETS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_targets(shared, scope, request, token_fault)),
        OP_LIST_TAGS => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| list_tags(shared, scope, request)),
        _ => serde_json::from_value(body)
            .map_err(serialization_error)
            .and_then(|request| describe_association(shared, scope, request)),
    }
}

fn serialization_error(error: serde_json::Error) -> ApiError {
    ApiError::client("SerializationException", error.to_string())
}
