//! `DescribeAssociationExecutionTargets`: request validation, filters, page tokens and paging.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{validate_association_id, ApiError};
use crate::faults::Fault;
use crate::identity::Scope;
use crate::model::{stable_hash, uuid_like, SimExecution, SimTarget};
use crate::paging::{hex_decode, hex_encode, max_results, next_token, parse_filters};
use crate::responses::timestamp;
use crate::state::Shared;

/// Version prefix of the simulator's target page tokens.
const TOKEN_VERSION: &str = "simt1";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetsRequest {
    association_id: Option<String>,
    execution_id: Option<String>,
    filters: Option<Vec<FilterInput>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterInput {
    key: Option<String>,
    value: Option<String>,
}

/// A parsed `AssociationExecutionTargetsFilter`; several in one request must all hold.
enum Filter {
    Status(String),
    ResourceId(String),
    ResourceType(String),
}

impl Filter {
    fn accepts(&self, t: &SimTarget) -> bool {
        match self {
            Filter::Status(v) => t.status == *v,
            Filter::ResourceId(v) => t.resource_id == *v,
            Filter::ResourceType(v) => t.resource_type == *v,
        }
    }
}

fn parse_filter(f: &FilterInput) -> Result<Filter, ApiError> {
    let (Some(key), Some(value)) = (&f.key, &f.value) else {
        return Err(ApiError::validation("Each filter needs Key and Value"));
    };
    if value.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '' at 'filters.member.value' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        ));
    }
    match key.as_str() {
        "Status" => Ok(Filter::Status(value.clone())),
        "ResourceId" => Ok(Filter::ResourceId(value.clone())),
        "ResourceType" => Ok(Filter::ResourceType(value.clone())),
        _ => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{key}' at 'filters.member.key' failed to \
             satisfy constraint: Member must satisfy enum value set: [Status, ResourceId, \
             ResourceType]"
        ))),
    }
}

/// `tokens bind to (association, execution)`; they carry the last `ResourceId` returned.
fn encode_token(association_id: &str, execution_id: &str, after: &str) -> String {
    hex_encode(&format!(
        "{TOKEN_VERSION}|{association_id}|{execution_id}|{after}"
    ))
}

fn decode_token(token: &str, association_id: &str, execution_id: &str) -> Option<String> {
    let plain = hex_decode(token)?;
    let mut parts = plain.splitn(4, '|');
    (parts.next()? == TOKEN_VERSION
        && parts.next()? == association_id
        && parts.next()? == execution_id)
        .then_some(())?;
    Some(parts.next()?.to_owned())
}

/// One `AssociationExecutionTarget` item.
fn target_json(association_id: &str, version: u32, e: &SimExecution, t: &SimTarget) -> Value {
    let mut item = Map::new();
    item.insert("AssociationId".into(), Value::from(association_id));
    item.insert(
        "AssociationVersion".into(),
        Value::from(version.to_string()),
    );
    item.insert("ExecutionId".into(), Value::from(e.execution_id.as_str()));
    item.insert("ResourceId".into(), Value::from(t.resource_id.as_str()));
    item.insert("ResourceType".into(), Value::from(t.resource_type.as_str()));
    item.insert("Status".into(), Value::from(t.status.as_str()));
    if let Some(detailed) = &t.detailed_status {
        item.insert("DetailedStatus".into(), Value::from(detailed.as_str()));
    }
    let last = t
        .last_execution_ms
        .or(e.last_execution_ms)
        .unwrap_or(e.created_ms);
    item.insert("LastExecutionDate".into(), timestamp(last));
    let source_id = t
        .output_source_id
        .clone()
        .unwrap_or_else(|| uuid_like(stable_hash(&format!("command/{}", e.execution_id))));
    item.insert(
        "OutputSource".into(),
        json!({ "OutputSourceId": source_id, "OutputSourceType": t.output_source_type }),
    );
    Value::Object(item)
}

/// Answers `DescribeAssociationExecutionTargets` from the caller's scope.
pub(crate) fn describe_targets(
    shared: &Shared,
    scope: &Scope,
    request: TargetsRequest,
    token_fault: Option<&Fault>,
) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let execution_id = request.execution_id.as_deref().ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'executionId' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    let max_results = max_results(request.max_results)?;
    let filters: Vec<Filter> = parse_filters(request.filters.as_deref(), parse_filter)?;
    let mut state = shared.lock();
    let association = state
        .association(scope, association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let execution = association
        .executions
        .values()
        .find(|e| e.execution_id == execution_id && e.visible)
        .ok_or_else(|| {
            ApiError::client(
                "AssociationExecutionDoesNotExist",
                format!(
                    "AssociationExecution with ID {execution_id} does not exist for association \
                     {association_id}"
                ),
            )
        })?;
    let sent = request.next_token.filter(|t| !t.is_empty());
    let after = match sent.as_deref() {
        None => None,
        Some(token) => Some(
            decode_token(token, association_id, execution_id).ok_or_else(|| {
                ApiError::client("InvalidNextToken", "The specified token isn't valid.")
            })?,
        ),
    };
    let limit = state
        .page_size
        .map_or(max_results, |cap| cap.clamp(1, max_results));
    let mut sorted: Vec<&SimTarget> = execution.targets.iter().collect();
    sorted.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
    let mut matching = sorted
        .into_iter()
        .filter(|t| after.as_deref().is_none_or(|a| t.resource_id.as_str() > a))
        .filter(|t| filters.iter().all(|f| f.accepts(t)));
    let page: Vec<&SimTarget> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let version = association.execution_version(execution_id);
    let items: Vec<Value> = page
        .iter()
        .map(|t| target_json(association_id, version, execution, t))
        .collect();
    let next = page
        .last()
        .filter(|_| more)
        .map(|last| encode_token(association_id, execution_id, &last.resource_id));
    let mut body = json!({ "AssociationExecutionTargets": items });
    if let Some(next) = next_token(&mut state, sent, next, token_fault) {
        body["NextToken"] = Value::from(next);
    }
    Ok(body)
}
