//! SQS in AWS JSON 1.0 on the simulator's queues: `ReceiveMessage` (long polling, visibility
//! timeouts, system attributes), `DeleteMessage`, `DeleteMessageBatch`, `GetQueueAttributes`,
//! SQS's errors, and queue outages.

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::api::{
    ApiError, OP_DELETE_MESSAGE, OP_DELETE_MESSAGE_BATCH, OP_GET_QUEUE_ATTRIBUTES,
    OP_RECEIVE_MESSAGE,
};
use crate::identity::Scope;
use crate::queues::{HandleError, QueueId, QueueOutage, Received};
use crate::state::Shared;

/// The longest `WaitTimeSeconds` SQS accepts.
const MAX_WAIT_SECONDS: i64 = 20;
/// The longest `VisibilityTimeout` SQS accepts (12 hours).
const MAX_VISIBILITY_SECONDS: i64 = 43_200;
/// Entries per batch.
const MAX_BATCH: usize = 10;

/// How an SQS request ends.
pub(crate) enum SqsOutcome {
    Reply(Result<Value, ApiError>),
    /// Close the connection without a response (an outage, or shutdown during a long poll).
    Reset,
}

fn no_queue() -> ApiError {
    ApiError::sqs(
        StatusCode::BAD_REQUEST,
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )
}

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::sqs(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        "InvalidParameterValue",
        message,
    )
}

fn invalid_handle(handle: &str) -> ApiError {
    ApiError::sqs(
        StatusCode::BAD_REQUEST,
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
    )
}

fn batch_error(code: &'static str, query_code: &'static str, message: &str) -> ApiError {
    ApiError::sqs(StatusCode::BAD_REQUEST, code, query_code, message)
}

/// Answers one SQS operation. The queue comes from the body's `QueueUrl`; a URL on another
/// host than `sqs.<region>.amazonaws.com` is in the caller's signing region.
pub(crate) async fn serve_sqs(
    shared: &Shared,
    scope: &Scope,
    operation: &str,
    body: Value,
) -> SqsOutcome {
    let reply = SqsOutcome::Reply;
    let Some(url) = body.get("QueueUrl").and_then(Value::as_str) else {
        return reply(Err(ApiError::sqs(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "MissingParameter",
            "The request must contain the parameter QueueUrl.",
        )));
    };
    let Some(id) = QueueId::parse(url, &scope.region) else {
        return reply(Err(no_queue()));
    };
    let outage = match shared.lock().queues.get(&id) {
        None => return reply(Err(no_queue())),
        Some(queue) => queue.outage(Instant::now()),
    };
    match outage {
        Some(QueueOutage::ResetConnection) => return SqsOutcome::Reset,
        Some(QueueOutage::ServerError) => {
            return reply(Err(ApiError::sqs(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "InternalFailure",
                "We encountered an internal error. Please try again. (simulated)",
            )))
        }
        Some(QueueOutage::Throttled) => {
            return reply(Err(ApiError::sqs(
                StatusCode::BAD_REQUEST,
                "RequestThrottled",
                "RequestThrottled",
                "Rate exceeded (simulated)",
            )))
        }
        None => {}
    }
    match operation {
        OP_RECEIVE_MESSAGE => match serde_json::from_value(body) {
            Ok(request) => receive(shared, &id, request).await,
            Err(error) => reply(Err(serialization(&error))),
        },
        OP_DELETE_MESSAGE => reply(
            serde_json::from_value(body)
                .map_err(|e| serialization(&e))
                .and_then(|request| delete_message(shared, &id, request)),
        ),
        OP_DELETE_MESSAGE_BATCH => reply(
            serde_json::from_value(body)
                .map_err(|e| serialization(&e))
                .and_then(|request| delete_batch(shared, &id, request)),
        ),
        OP_GET_QUEUE_ATTRIBUTES => reply(
            serde_json::from_value(body)
                .map_err(|e| serialization(&e))
                .and_then(|request| queue_attributes(shared, &id, request)),
        ),
        _ => reply(Err(ApiError::sqs(
            StatusCode::BAD_REQUEST,
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            format!("{operation} is not simulated"),
        ))),
    }
}

fn serialization(error: &serde_json::Error) -> ApiError {
    ApiError::sqs(
        StatusCode::BAD_REQUEST,
        "SerializationException",
        "SerializationException",
        error.to_string(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveRequest {
    max_number_of_messages: Option<i64>,
    wait_time_seconds: Option<i64>,
    visibility_timeout: Option<i64>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
}

/// `ReceiveMessage`: answers at once when messages are receivable, else waits up to
/// `WaitTimeSeconds` and answers as soon as one becomes receivable (a new event, a delay or
/// a visibility timeout ending).
async fn receive(shared: &Shared, id: &QueueId, request: ReceiveRequest) -> SqsOutcome {
    let reply = SqsOutcome::Reply;
    let max = request.max_number_of_messages.unwrap_or(1);
    if !(1..=10).contains(&max) {
        return reply(Err(invalid_parameter(format!(
            "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between \
             1 and 10, if provided."
        ))));
    }
    let wait = request.wait_time_seconds.unwrap_or(0);
    if !(0..=MAX_WAIT_SECONDS).contains(&wait) {
        return reply(Err(invalid_parameter(format!(
            "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and \
             <= {MAX_WAIT_SECONDS}, if provided."
        ))));
    }
    if let Some(v) = request.visibility_timeout {
        if !(0..=MAX_VISIBILITY_SECONDS).contains(&v) {
            return reply(Err(invalid_parameter(format!(
                "Value {v} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 \
                 and <= {MAX_VISIBILITY_SECONDS}, if provided."
            ))));
        }
    }
    let attributes: BTreeSet<String> = request
        .attribute_names
        .into_iter()
        .chain(request.message_system_attribute_names)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(wait as u64);
    loop {
        let Some(notify) = shared.lock().queues.get(id).map(|q| q.notify.clone()) else {
            return reply(Err(no_queue()));
        };
        // Listen before looking, so that a message arriving in between wakes this poll.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now_ms = shared.clock.now_ms();
        let next = {
            let mut state = shared.lock();
            let Some(queue) = state.queues.get_mut(id) else {
                return reply(Err(no_queue()));
            };
            let visibility = request
                .visibility_timeout
                .map_or(queue.visibility_timeout, |v| Duration::from_secs(v as u64));
            let now = Instant::now();
            let got = queue.receive(max as usize, visibility, now, now_ms);
            if !got.is_empty() || now >= deadline {
                return reply(Ok(messages_json(&got, &attributes)));
            }
            queue
                .next_available()
                .filter(|at| *at > now)
                .map_or(deadline, |at| at.min(deadline))
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => return SqsOutcome::Reset,
            () = &mut notified => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

fn messages_json(received: &[Received], attributes: &BTreeSet<String>) -> Value {
    if received.is_empty() {
        return json!({});
    }
    let wanted = |name: &str| attributes.contains("All") || attributes.contains(name);
    let messages: Vec<Value> = received
        .iter()
        .map(|m| {
            let mut item = Map::new();
            item.insert("MessageId".into(), Value::from(m.id.as_str()));
            item.insert("ReceiptHandle".into(), Value::from(m.handle.as_str()));
            item.insert("Body".into(), Value::from(m.body.as_str()));
            let mut attrs = Map::new();
            if wanted("ApproximateReceiveCount") {
                attrs.insert(
                    "ApproximateReceiveCount".into(),
                    Value::from(m.receives.to_string()),
                );
            }
            if wanted("SentTimestamp") {
                attrs.insert("SentTimestamp".into(), Value::from(m.sent_ms.to_string()));
            }
            if wanted("ApproximateFirstReceiveTimestamp") {
                attrs.insert(
                    "ApproximateFirstReceiveTimestamp".into(),
                    Value::from(m.first_receive_ms.to_string()),
                );
            }
            if !attrs.is_empty() {
                item.insert("Attributes".into(), Value::Object(attrs));
            }
            Value::Object(item)
        })
        .collect();
    json!({ "Messages": messages })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    receipt_handle: Option<String>,
}

fn delete_message(
    shared: &Shared,
    id: &QueueId,
    request: DeleteRequest,
) -> Result<Value, ApiError> {
    let handle = request.receipt_handle.unwrap_or_default();
    let mut state = shared.lock();
    let queue = state.queues.get_mut(id).ok_or_else(no_queue)?;
    match queue.delete(&handle) {
        Ok(()) => Ok(json!({})),
        Err(HandleError::Invalid) => Err(invalid_handle(&handle)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchRequest {
    #[serde(default)]
    entries: Vec<BatchEntry>,
}

/// `DeleteMessageBatch`: the whole request fails on an empty, too long or ambiguous batch;
/// otherwise each entry succeeds or is listed in `Failed` (HTTP 200 either way).
fn delete_batch(shared: &Shared, id: &QueueId, request: BatchRequest) -> Result<Value, ApiError> {
    let entries = request.entries;
    if entries.is_empty() {
        return Err(batch_error(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one DeleteMessageBatchRequestEntry in the request.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(batch_error(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            &format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for entry in &entries {
        let entry_id = entry.id.as_deref().unwrap_or_default();
        let valid = !entry_id.is_empty()
            && entry_id.len() <= 80
            && entry_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(batch_error(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and \
                 underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(entry_id) {
            return Err(batch_error(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                &format!("Id {entry_id} repeated."),
            ));
        }
    }
    let mut state = shared.lock();
    let queue = state.queues.get_mut(id).ok_or_else(no_queue)?;
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for entry in &entries {
        let entry_id = entry.id.as_deref().unwrap_or_default();
        let handle = entry.receipt_handle.as_deref().unwrap_or_default();
        match queue.delete(handle) {
            Ok(()) => successful.push(json!({ "Id": entry_id })),
            Err(HandleError::Invalid) => failed.push(json!({
                "Id": entry_id,
                "SenderFault": true,
                "Code": "ReceiptHandleIsInvalid",
                "Message": format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
            })),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failed }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributesRequest {
    #[serde(default)]
    attribute_names: Vec<String>,
}

/// Queue attributes the simulator knows.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "VisibilityTimeout",
    "QueueArn",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds",
    "MessageRetentionPeriod",
    "MaximumMessageSize",
];

fn queue_attributes(
    shared: &Shared,
    id: &QueueId,
    request: AttributesRequest,
) -> Result<Value, ApiError> {
    if let Some(bad) = request
        .attribute_names
        .iter()
        .find(|n| *n != "All" && !QUEUE_ATTRIBUTES.contains(&n.as_str()))
    {
        return Err(ApiError::sqs(
            StatusCode::BAD_REQUEST,
            "InvalidAttributeName",
            "InvalidAttributeName",
            format!("Unknown Attribute {bad}."),
        ));
    }
    let state = shared.lock();
    let queue = state.queues.get(id).ok_or_else(no_queue)?;
    let stats = queue.stats(Instant::now());
    let all = request.attribute_names.iter().any(|n| n == "All");
    let mut attributes = Map::new();
    for name in QUEUE_ATTRIBUTES {
        if !all && !request.attribute_names.iter().any(|n| n == name) {
            continue;
        }
        let value = match *name {
            "ApproximateNumberOfMessages" => stats.visible.to_string(),
            "ApproximateNumberOfMessagesNotVisible" => stats.in_flight.to_string(),
            "ApproximateNumberOfMessagesDelayed" => stats.delayed.to_string(),
            "VisibilityTimeout" => queue.visibility_timeout.as_secs().to_string(),
            "QueueArn" => id.arn(),
            "CreatedTimestamp" | "LastModifiedTimestamp" => (queue.created_ms / 1000).to_string(),
            "MessageRetentionPeriod" => "345600".to_owned(),
            "MaximumMessageSize" => "262144".to_owned(),
            _ => "0".to_owned(),
        };
        attributes.insert((*name).to_owned(), Value::from(value));
    }
    if attributes.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": attributes }))
}
