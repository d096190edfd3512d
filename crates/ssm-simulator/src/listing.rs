//! The listing operations of one account and region: `ListAssociations` (filters, page tokens,
//! paging) and `ListTagsForResource` for associations.

use std::ops::Bound;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::ApiError;
use crate::faults::Fault;
use crate::identity::Scope;
use crate::model::{AssociationState, LastExecutedFilter, LastExecutionDateMode};
use crate::paging::{hex_decode, hex_encode, max_results, next_token};
use crate::responses::{overview_json, targets_json, timestamp};
use crate::state::Shared;

/// Version prefix of `ListAssociations` page tokens.
const TOKEN_VERSION: &str = "siml1";
/// `AssociationFilterKey` of the service model, plus `CloudConnectorId` of newer models
/// (accepted; no simulated association has a cloud connector, so it matches nothing).
const FILTER_KEYS: &[&str] = &[
    "CloudConnectorId",
    "InstanceId",
    "Name",
    "AssociationId",
    "AssociationStatusName",
    "LastExecutedBefore",
    "LastExecutedAfter",
    "AssociationName",
    "ResourceGroupName",
];
/// `ResourceTypeForTagging` of the service model.
const TAGGABLE_TYPES: &[&str] = &[
    "Document",
    "ManagedInstance",
    "MaintenanceWindow",
    "Parameter",
    "PatchBaseline",
    "OpsItem",
    "OpsMetadata",
    "Automation",
    "Association",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListRequest {
    association_filter_list: Option<Vec<FilterInput>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `AssociationFilter`: the only lower-case member names in the SSM model.
#[derive(Deserialize)]
struct FilterInput {
    key: Option<String>,
    value: Option<String>,
}

/// A parsed `AssociationFilter`; several in one request must all hold (AND).
enum Filter {
    InstanceId(String),
    DocumentName(String),
    AssociationId(String),
    Status(String),
    LastExecutedBefore(i64),
    LastExecutedAfter(i64),
    AssociationName(String),
    ResourceGroupName(String),
    CloudConnectorId,
}

impl Filter {
    fn accepts(
        &self,
        id: &str,
        a: &AssociationState,
        mode: LastExecutionDateMode,
        dates: LastExecutedFilter,
    ) -> bool {
        match self {
            Filter::InstanceId(instance) => {
                a.details.instance_id.as_deref() == Some(instance.as_str())
                    || a.details
                        .targets
                        .iter()
                        .any(|(key, values)| key == "InstanceIds" && values.contains(instance))
            }
            Filter::DocumentName(name) => a.meta.document_name == *name,
            Filter::AssociationId(wanted) => id == wanted,
            Filter::Status(status) => a.overview().status == status,
            Filter::LastExecutedBefore(ms) => {
                dates == LastExecutedFilter::Ignored
                    || a.last_execution_ms(mode).is_some_and(|t| {
                        t < *ms || (t == *ms && dates == LastExecutedFilter::Inclusive)
                    })
            }
            Filter::LastExecutedAfter(ms) => {
                dates == LastExecutedFilter::Ignored
                    || a.last_execution_ms(mode).is_some_and(|t| {
                        t > *ms || (t == *ms && dates == LastExecutedFilter::Inclusive)
                    })
            }
            Filter::AssociationName(name) => a.meta.name.as_deref() == Some(name.as_str()),
            Filter::ResourceGroupName(group) => a.details.resource_group() == Some(group.as_str()),
            Filter::CloudConnectorId => false,
        }
    }
}

/// A `LastExecuted*` filter value in epoch ms (a fraction beyond milliseconds is cut off).
///
/// AWS documents no format for it; the simulator takes only the shape of its one public
/// example, ISO-8601 UTC with an upper-case `T` and `Z`, seconds always, with or without a
/// fraction (`2017-05-01T01:00:00.000Z`, `2017-05-01T01:00:00Z`), so that a client sending
/// anything else (an offset, a date alone, epoch seconds, lower case) fails its tests rather
/// than, perhaps, AWS.
fn parse_time(value: &str) -> Option<i64> {
    let body = value.strip_suffix('Z')?;
    let (date_time, fraction) = match body.split_once('.') {
        Some((date_time, fraction)) => (date_time, Some(fraction)),
        None => (body, None),
    };
    let shape_ok = date_time.len() == 19
        && date_time.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
        && fraction
            .is_none_or(|f| (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return None;
    }
    let t =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

fn parse_filter(index: usize, f: &FilterInput) -> Result<Filter, ApiError> {
    let (Some(key), Some(value)) = (&f.key, &f.value) else {
        return Err(ApiError::validation(
            "Each AssociationFilter needs key and value",
        ));
    };
    let member = index + 1;
    if !FILTER_KEYS.contains(&key.as_str()) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{key}' at 'associationFilterList.{member}.member.key' \
             failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            FILTER_KEYS.join(", ")
        )));
    }
    if value.is_empty() {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '' at 'associationFilterList.{member}.member.value' \
             failed to satisfy constraint: Member must have length greater than or equal to 1"
        )));
    }
    let time = || {
        parse_time(value).ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid {key} filter value '{value}': expected an ISO-8601 UTC timestamp such \
                 as 2026-11-27T10:00:00.000Z"
            ))
        })
    };
    let v = value.clone();
    Ok(match key.as_str() {
        "InstanceId" => Filter::InstanceId(v),
        "Name" => Filter::DocumentName(v),
        "AssociationId" => Filter::AssociationId(v),
        "AssociationStatusName" => Filter::Status(v),
        "LastExecutedBefore" => Filter::LastExecutedBefore(time()?),
        "LastExecutedAfter" => Filter::LastExecutedAfter(time()?),
        "AssociationName" => Filter::AssociationName(v),
        "CloudConnectorId" => Filter::CloudConnectorId,
        _ => Filter::ResourceGroupName(v),
    })
}

/// Decoded `ListAssociations` page token: the scope it belongs to, empty pages served so far,
/// and the last association id returned (associations are listed in id order).
struct ListToken {
    scope: Scope,
    empty_pages: usize,
    after: Option<String>,
}

impl ListToken {
    fn encode(&self) -> String {
        hex_encode(&format!(
            "{TOKEN_VERSION}|{}|{}|{}|{}",
            self.scope.account,
            self.scope.region,
            self.empty_pages,
            self.after.as_deref().unwrap_or("-")
        ))
    }

    fn decode(token: &str) -> Option<ListToken> {
        let plain = hex_decode(token)?;
        let mut parts = plain.splitn(5, '|');
        if parts.next()? != TOKEN_VERSION {
            return None;
        }
        let scope = Scope::new(parts.next()?, parts.next()?);
        let empty_pages = parts.next()?.parse().ok()?;
        let after = match parts.next()? {
            "-" => None,
            id => Some(id.to_owned()),
        };
        Some(ListToken {
            scope,
            empty_pages,
            after,
        })
    }
}

/// One `Association` item of `ListAssociations`.
fn association_json(id: &str, a: &AssociationState, mode: LastExecutionDateMode) -> Value {
    let mut item = Map::new();
    item.insert("AssociationId".into(), Value::from(id));
    item.insert("Name".into(), Value::from(a.meta.document_name.as_str()));
    if let Some(name) = &a.meta.name {
        item.insert("AssociationName".into(), Value::from(name.as_str()));
    }
    item.insert(
        "AssociationVersion".into(),
        Value::from(a.version.to_string()),
    );
    item.insert(
        "DocumentVersion".into(),
        Value::from(a.details.document_version.as_str()),
    );
    if let Some(instance) = &a.details.instance_id {
        item.insert("InstanceId".into(), Value::from(instance.as_str()));
    }
    if let Some(last) = a.last_execution_ms(mode) {
        item.insert("LastExecutionDate".into(), timestamp(last));
    }
    item.insert("Overview".into(), overview_json(a));
    if let Some(schedule) = &a.meta.schedule_expression {
        item.insert("ScheduleExpression".into(), Value::from(schedule.as_str()));
    }
    if !a.details.targets.is_empty() {
        item.insert("Targets".into(), targets_json(&a.details));
    }
    Value::Object(item)
}

/// Answers `ListAssociations` from the caller's account and region; `token_fault` changes
/// the `NextToken` sent back as for `DescribeAssociationExecutions`.
pub(crate) fn list_associations(
    shared: &Shared,
    scope: &Scope,
    request: ListRequest,
    token_fault: Option<&Fault>,
) -> Result<Value, ApiError> {
    let max_results = max_results(request.max_results)?;
    let filters = match &request.association_filter_list {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            return Err(ApiError::validation(
                "1 validation error detected: Value '[]' at 'associationFilterList' failed to \
                 satisfy constraint: Member must have length greater than or equal to 1",
            ))
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, f)| parse_filter(i, f))
            .collect::<Result<_, _>>()?,
    };
    let sent = request.next_token.filter(|t| !t.is_empty());
    let position = match sent.as_deref() {
        None => ListToken {
            scope: scope.clone(),
            empty_pages: 0,
            after: None,
        },
        Some(token) => ListToken::decode(token)
            .filter(|t| t.scope == *scope)
            .ok_or_else(|| {
                ApiError::client("InvalidNextToken", "The specified token isn't valid.")
            })?,
    };

    let mut state = shared.lock();
    let mode = state.last_execution_date_mode;
    let dates = state.last_executed_filter;
    let (items, next) = if position.empty_pages < state.empty_pages {
        let next = ListToken {
            empty_pages: position.empty_pages + 1,
            ..position
        };
        (Vec::new(), Some(next.encode()))
    } else {
        let limit = state
            .page_size
            .map_or(max_results, |cap| cap.clamp(1, max_results));
        let start = match &position.after {
            Some(id) => Bound::Excluded(id.clone()),
            None => Bound::Unbounded,
        };
        let (items, next) = match state.scopes.get(scope) {
            None => (Vec::new(), None),
            Some(store) => {
                let mut matching = store
                    .range((start, Bound::Unbounded))
                    .filter(|(id, a)| filters.iter().all(|f| f.accepts(id, a, mode, dates)));
                let page: Vec<(&String, &AssociationState)> =
                    matching.by_ref().take(limit).collect();
                let more = matching.next().is_some();
                let items = page
                    .iter()
                    .map(|(id, a)| association_json(id, a, mode))
                    .collect();
                let next = page.last().filter(|_| more).map(|(id, _)| {
                    ListToken {
                        scope: scope.clone(),
                        empty_pages: position.empty_pages,
                        after: Some((*id).clone()),
                    }
                    .encode()
                });
                (items, next)
            }
        };
        (items, next)
    };
    let mut body = json!({ "Associations": items });
    if let Some(next) = next_token(&mut state, sent, next, token_fault) {
        body["NextToken"] = Value::from(next);
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagsRequest {
    resource_type: Option<String>,
    resource_id: Option<String>,
}

/// Answers `ListTagsForResource` for an association of the caller's account and region.
pub(crate) fn list_tags(
    shared: &Shared,
    scope: &Scope,
    request: TagsRequest,
) -> Result<Value, ApiError> {
    let (Some(kind), Some(id)) = (request.resource_type, request.resource_id) else {
        return Err(ApiError::validation(
            "2 validation errors detected: ResourceType and ResourceId must not be null",
        ));
    };
    if !TAGGABLE_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{kind}' at 'resourceType' failed to satisfy \
             constraint: Member must satisfy enum value set: [{}]",
            TAGGABLE_TYPES.join(", ")
        )));
    }
    if kind != "Association" {
        return Err(ApiError::client(
            "InvalidResourceType",
            format!("The simulator keeps tags of associations only, not of {kind}"),
        ));
    }
    let state = shared.lock();
    let association = state.association(scope, &id).ok_or_else(|| {
        ApiError::client(
            "InvalidResourceId",
            "The resource ID isn't valid. Verify that you entered the correct ID and try again.",
        )
    })?;
    let tags: Vec<Value> = association
        .tags
        .iter()
        .map(|(key, value)| json!({ "Key": key, "Value": value }))
        .collect();
    Ok(json!({ "TagList": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_tokens_round_trip_and_carry_their_scope() {
        let token = ListToken {
            scope: Scope::new("111111111111", "eu-west-1"),
            empty_pages: 1,
            after: Some("3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f".into()),
        };
        let decoded = ListToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded.scope, token.scope);
        assert_eq!(decoded.empty_pages, 1);
        assert_eq!(decoded.after, token.after);
        assert!(ListToken::decode("7369").is_none());
    }

    #[test]
    fn filter_times_parse_with_or_without_millis() {
        assert_eq!(
            parse_time("2019-02-18T16:03:47.119Z"),
            Some(1_550_505_827_119)
        );
        assert_eq!(parse_time("2019-02-18T16:03:47Z"), Some(1_550_505_827_000));
        assert_eq!(
            parse_time("2019-02-18T16:03:47.1Z"),
            Some(1_550_505_827_100)
        );
        // Beyond milliseconds: cut off, not rounded.
        assert_eq!(
            parse_time("2019-02-18T16:03:47.119999Z"),
            Some(1_550_505_827_119)
        );
    }

    /// Only the shape of AWS's one public example (UTC, `Z`, seconds always): an exporter that
    /// sends another shape fails here, not perhaps at AWS.
    #[test]
    fn filter_times_take_only_the_documented_shape() {
        for bad in [
            "2019-02-18",
            "2019-02-18T16:03Z",
            "2019-02-18T16:03:47",
            "2019-02-18T16:03:47+00:00",
            "2019-02-18T18:03:47+02:00",
            "2019-02-18t16:03:47z",
            "2019-02-18 16:03:47Z",
            "2019-02-18T16:03:47.Z",
            "2019-02-18T16:03:47.1234567890Z",
            "2019-02-30T16:03:47Z",
            "1550505827",
            "1550505827.119",
            "yesterday",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
            let input = FilterInput {
                key: Some("LastExecutedAfter".into()),
                value: Some(bad.into()),
            };
            let error = parse_filter(0, &input).err().expect(bad);
            assert_eq!(error.code, "ValidationException", "{bad}");
            assert!(error.message.contains(bad), "{}", error.message);
        }
    }

    /// At a date equal to the filter's value: `Strict` keeps it out of both filters,
    /// `Inclusive` in both; `Ignored` lets everything through, dated or not.
    #[test]
    fn an_equal_date_passes_the_date_filters_only_when_inclusive() {
        let t = 1_550_505_827_119;
        let mut ran = AssociationState::new(
            crate::model::SimAssociation::new("AWS-RunPatchBaseline"),
            crate::model::AssociationDetails::default(),
            0,
        );
        let mut run = crate::model::SimExecution::new("e1", "Success", t - 30_000);
        run.last_execution_ms = Some(t);
        ran.insert(run);
        let never_ran = AssociationState::new(
            crate::model::SimAssociation::new("AWS-RunPatchBaseline"),
            crate::model::AssociationDetails::default(),
            0,
        );
        let end = LastExecutionDateMode::End;
        let check =
            |filter: Filter, a: &AssociationState, dates| filter.accepts("x", a, end, dates);
        use LastExecutedFilter::{Ignored, Inclusive, Strict};
        assert!(!check(Filter::LastExecutedAfter(t), &ran, Strict));
        assert!(!check(Filter::LastExecutedBefore(t), &ran, Strict));
        assert!(check(Filter::LastExecutedAfter(t - 1), &ran, Strict));
        assert!(check(Filter::LastExecutedBefore(t + 1), &ran, Strict));
        assert!(check(Filter::LastExecutedAfter(t), &ran, Inclusive));
        assert!(check(Filter::LastExecutedBefore(t), &ran, Inclusive));
        assert!(!check(Filter::LastExecutedAfter(t + 1), &ran, Inclusive));
        assert!(!check(Filter::LastExecutedBefore(t - 1), &ran, Inclusive));
        assert!(check(Filter::LastExecutedAfter(t + 1), &ran, Ignored));
        assert!(check(Filter::LastExecutedBefore(t - 1), &ran, Ignored));
        // Never ran: no date, in no filter unless it is ignored.
        assert!(!check(Filter::LastExecutedAfter(0), &never_ran, Inclusive));
        assert!(!check(Filter::LastExecutedBefore(t), &never_ran, Strict));
        assert!(check(Filter::LastExecutedAfter(t), &never_ran, Ignored));
    }
}
