//! `DescribeAssociationExecutions`: request validation, filters, page tokens and paging,
//! including the token misbehaviours ([`Fault::RepeatNextToken`], [`Fault::CycleNextTokens`]).

use std::cmp::Reverse;
use std::fmt::Write as _;
use std::ops::Bound;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{validate_association_id, ApiError};
use crate::faults::Fault;
use crate::identity::Scope;
use crate::model::SimExecution;
use crate::responses::execution_json;
use crate::state::{Shared, State};

/// Default and maximum `MaxResults` of `DescribeAssociationExecutions`.
const MAX_RESULTS: i64 = 50;
/// Version prefix of the simulator's page tokens.
const TOKEN_VERSION: &str = "sim1";
/// Most issued tokens remembered for [`Fault::CycleNextTokens`] (then forgotten at once).
const MAX_ISSUED_TOKENS: usize = 100_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecutionsRequest {
    association_id: Option<String>,
    filters: Option<Vec<FilterInput>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterInput {
    key: Option<String>,
    value: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

/// A parsed `AssociationExecutionFilter`; several in one request must all hold (AND).
enum Filter {
    ExecutionId(String),
    Status(String),
    CreatedEqual(i64),
    CreatedAfter(i64),
    CreatedBefore(i64),
}

impl Filter {
    fn accepts(&self, e: &SimExecution) -> bool {
        match self {
            Filter::ExecutionId(id) => e.execution_id == *id,
            Filter::Status(status) => e.status == *status,
            Filter::CreatedEqual(ms) => e.created_ms == *ms,
            Filter::CreatedAfter(ms) => e.created_ms > *ms,
            Filter::CreatedBefore(ms) => e.created_ms < *ms,
        }
    }
}

/// Decoded page token: where a paging sequence stands.
struct PageToken {
    association_id: String,
    /// Empty pages already served in this sequence.
    empty_pages: usize,
    /// Sort key of the last item returned, `None` before the first item.
    after: Option<(i64, String)>,
}

impl PageToken {
    fn encode(&self) -> String {
        let after = match &self.after {
            Some((ms, id)) => format!("{ms}:{id}"),
            None => "-".to_owned(),
        };
        let plain = format!(
            "{TOKEN_VERSION}|{}|{}|{after}",
            self.association_id, self.empty_pages
        );
        hex_encode(&plain)
    }

    fn decode(token: &str) -> Option<PageToken> {
        let plain = hex_decode(token)?;
        let mut parts = plain.splitn(4, '|');
        if parts.next()? != TOKEN_VERSION {
            return None;
        }
        let association_id = parts.next()?.to_owned();
        let empty_pages = parts.next()?.parse().ok()?;
        let after = match parts.next()? {
            "-" => None,
            key => {
                let (ms, id) = key.split_once(':')?;
                Some((ms.parse().ok()?, id.to_owned()))
            }
        };
        Some(PageToken {
            association_id,
            empty_pages,
            after,
        })
    }
}

/// Opaque token text: the hex of `plain`.
pub(crate) fn hex_encode(plain: &str) -> String {
    plain.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The text of a [`hex_encode`]d token, if it is one.
pub(crate) fn hex_decode(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Parses one filter; keys and operators follow the service model.
fn parse_filter(f: &FilterInput) -> Result<Filter, ApiError> {
    let (Some(key), Some(value), Some(kind)) = (&f.key, &f.value, &f.kind) else {
        return Err(ApiError::validation(
            "Each filter needs Key, Value and Type",
        ));
    };
    if value.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '' at 'filters.member.value' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        ));
    }
    let time = || {
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .map(|t| {
                let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
                i64::try_from(ms).unwrap_or(i64::MAX)
            })
            .map_err(|_| {
                ApiError::validation(format!(
                    "Invalid CreatedTime filter value '{value}': expected an ISO-8601 UTC \
                     timestamp such as 2018-04-10T19:15:38.372Z"
                ))
            })
    };
    match (key.as_str(), kind.as_str()) {
        ("ExecutionId", "EQUAL") => Ok(Filter::ExecutionId(value.clone())),
        ("Status", "EQUAL") => Ok(Filter::Status(value.clone())),
        ("CreatedTime", "EQUAL") => time().map(Filter::CreatedEqual),
        ("CreatedTime", "GREATER_THAN") => time().map(Filter::CreatedAfter),
        ("CreatedTime", "LESS_THAN") => time().map(Filter::CreatedBefore),
        _ => Err(ApiError::validation(format!(
            "Filter key {key} does not support operator {kind}"
        ))),
    }
}

/// Answers `DescribeAssociationExecutions`; `token_fault` (a [`Fault::RepeatNextToken`] or
/// [`Fault::CycleNextTokens`] that fired) changes the `NextToken` sent back.
pub(crate) fn describe_executions(
    shared: &Shared,
    scope: &Scope,
    request: ExecutionsRequest,
    token_fault: Option<&Fault>,
) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let max_results = max_results(request.max_results)?;
    let filters = parse_filters(request.filters.as_deref(), parse_filter)?;

    let mut state = shared.lock();
    let association = state
        .association(scope, association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let sent = request.next_token.filter(|t| !t.is_empty());
    let position = match sent.as_deref() {
        None => PageToken {
            association_id: association_id.to_owned(),
            empty_pages: 0,
            after: None,
        },
        Some(token) => PageToken::decode(token)
            .filter(|t| t.association_id == association_id)
            .ok_or_else(|| {
                ApiError::client("InvalidNextToken", "The specified token isn't valid.")
            })?,
    };

    let (items, next) = if position.empty_pages < state.empty_pages {
        let next = PageToken {
            empty_pages: position.empty_pages + 1,
            ..position
        };
        (Vec::new(), Some(next.encode()))
    } else {
        let limit = state
            .page_size
            .map_or(max_results, |cap| cap.clamp(1, max_results));
        let start = match &position.after {
            Some((ms, id)) => Bound::Excluded((Reverse(*ms), id.clone())),
            None => Bound::Unbounded,
        };
        let mut matching = association
            .executions
            .range((start, Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| e.visible && filters.iter().all(|f| f.accepts(e)));
        let page: Vec<&SimExecution> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let items: Vec<Value> = page
            .iter()
            .map(|e| execution_json(association_id, association, e))
            .collect();
        let next = page.last().filter(|_| more).map(|last| {
            PageToken {
                association_id: association_id.to_owned(),
                empty_pages: position.empty_pages,
                after: Some((last.created_ms, last.execution_id.clone())),
            }
            .encode()
        });
        (items, next)
    };

    let mut body = json!({ "AssociationExecutions": items });
    if let Some(next) = next_token(&mut state, sent, next, token_fault) {
        body["NextToken"] = Value::from(next);
    }
    Ok(body)
}

/// The `NextToken` to send: `next`, or what a token fault that fired makes of it; remembers
/// which token answered which (for [`Fault::CycleNextTokens`]).
pub(crate) fn next_token(
    state: &mut State,
    sent: Option<String>,
    next: Option<String>,
    token_fault: Option<&Fault>,
) -> Option<String> {
    let next = match token_fault {
        Some(Fault::RepeatNextToken) => sent.clone(),
        Some(Fault::CycleNextTokens) => sent
            .as_ref()
            .and_then(|t| state.issued_tokens.get(t).cloned().flatten())
            .or(next),
        _ => next,
    }?;
    if state.issued_tokens.len() >= MAX_ISSUED_TOKENS {
        state.issued_tokens.clear();
    }
    state.issued_tokens.entry(next.clone()).or_insert(sent);
    Some(next)
}

/// Checks `MaxResults` (1 to 50, default 50).
/// A request's `Filters`: absent is none, an empty list is invalid (the service model's
/// minimum length 1), each one parsed by `parse`.
pub(crate) fn parse_filters<I, F>(
    list: Option<&[I]>,
    parse: impl Fn(&I) -> Result<F, ApiError>,
) -> Result<Vec<F>, ApiError> {
    match list {
        None => Ok(Vec::new()),
        Some([]) => Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'filters' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        )),
        Some(list) => list.iter().map(parse).collect(),
    }
}

pub(crate) fn max_results(value: Option<i64>) -> Result<usize, ApiError> {
    let max_results = value.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max_results) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{max_results}' at 'maxResults' failed to \
             satisfy constraint: Member must have value between 1 and 50"
        )));
    }
    Ok(max_results as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = PageToken {
            association_id: "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f".into(),
            empty_pages: 2,
            after: Some((1_550_505_827_119, "id:with|odd chars".into())),
        };
        let decoded = PageToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded.association_id, token.association_id);
        assert_eq!(decoded.empty_pages, 2);
        assert_eq!(decoded.after, token.after);
        for bad in ["", "zz", "abc", "6869", "é1"] {
            assert!(PageToken::decode(bad).is_none(), "{bad:?}");
        }
    }
}
