//! Response shapes of the service model built from the world model: an execution item and
//! `DescribeAssociation`'s description.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::model::{SimAssociation, SimExecution};
use crate::wire::{validate_association_id, ApiError};
use crate::Shared;

/// Epoch milliseconds as an AWS JSON timestamp (epoch seconds with a millisecond fraction).
fn timestamp(ms: i64) -> Value {
    Value::from(ms as f64 / 1000.0)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // accepted for wire compatibility, not used
pub(crate) struct AssociationRequest {
    association_id: Option<String>,
    name: Option<String>,
    instance_id: Option<String>,
    association_version: Option<String>,
}

fn alarm_configuration(association: &SimAssociation) -> Option<Value> {
    (!association.alarms.is_empty()).then(|| {
        let alarms: Vec<Value> = association
            .alarms
            .iter()
            .map(|name| json!({ "Name": name }))
            .collect();
        json!({ "IgnorePollAlarmFailure": false, "Alarms": alarms })
    })
}

/// One `AssociationExecution` item.
pub(crate) fn execution_json(
    association_id: &str,
    association: &SimAssociation,
    e: &SimExecution,
) -> Value {
    let mut item = Map::new();
    item.insert("AssociationId".into(), Value::from(association_id));
    item.insert("AssociationVersion".into(), Value::from("1"));
    item.insert("ExecutionId".into(), Value::from(e.execution_id.as_str()));
    item.insert("Status".into(), Value::from(e.status.as_str()));
    if let Some(detailed) = &e.detailed_status {
        item.insert("DetailedStatus".into(), Value::from(detailed.as_str()));
    }
    item.insert("CreatedTime".into(), timestamp(e.created_ms));
    if let Some(ms) = e.last_execution_ms {
        item.insert("LastExecutionDate".into(), timestamp(ms));
    }
    if let Some(counts) = &e.resource_count_by_status {
        item.insert("ResourceCountByStatus".into(), Value::from(counts.as_str()));
    }
    if let Some(alarms) = alarm_configuration(association) {
        item.insert("AlarmConfiguration".into(), alarms);
    }
    if !e.triggered_alarms.is_empty() {
        let alarms: Vec<Value> = e
            .triggered_alarms
            .iter()
            .map(|(name, state)| json!({ "Name": name, "State": state }))
            .collect();
        item.insert("TriggeredAlarms".into(), Value::from(alarms));
    }
    for field in &e.omit {
        item.remove(*field);
    }
    Value::Object(item)
}

/// Parses `{Failed=2,Success=3}` leniently into counts.
fn parse_resource_counts(text: &str) -> BTreeMap<String, i64> {
    text.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| {
            let (status, count) = pair.split_once('=')?;
            Some((status.trim().to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

/// Answers `DescribeAssociation`.
pub(crate) fn describe_association(
    shared: &Shared,
    request: AssociationRequest,
) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let state = shared.lock();
    let association = state
        .associations
        .get(association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let meta = &association.meta;

    let first_created = association.executions.values().map(|e| e.created_ms).min();
    let created = first_created.map_or(association.added_ms, |first| {
        first.min(association.added_ms)
    });
    let mut description = Map::new();
    description.insert("AssociationId".into(), Value::from(association_id));
    if let Some(name) = &meta.name {
        description.insert("AssociationName".into(), Value::from(name.as_str()));
    }
    description.insert("Name".into(), Value::from(meta.document_name.as_str()));
    description.insert("DocumentVersion".into(), Value::from("$DEFAULT"));
    if let Some(schedule) = &meta.schedule_expression {
        description.insert("ScheduleExpression".into(), Value::from(schedule.as_str()));
    }
    description.insert("AssociationVersion".into(), Value::from("1"));
    description.insert("Date".into(), timestamp(created));
    if let Some(alarms) = alarm_configuration(meta) {
        description.insert("AlarmConfiguration".into(), alarms);
    }

    let visible = || association.executions.values().filter(|e| e.visible);
    let ran_at = |e: &SimExecution| e.last_execution_ms.unwrap_or(e.created_ms);
    if let Some(last) = visible().map(ran_at).max() {
        description.insert("LastExecutionDate".into(), timestamp(last));
    }
    if let Some(last) = visible()
        .filter(|e| e.status == "Success")
        .map(ran_at)
        .max()
    {
        description.insert("LastSuccessfulExecutionDate".into(), timestamp(last));
    }

    // Newest visible execution drives the overview (executions are stored newest first).
    let mut overview = Map::new();
    match visible().next() {
        None => {
            overview.insert("Status".into(), Value::from("Pending"));
        }
        Some(latest) => {
            let status = match latest.status.as_str() {
                "Success" | "Skipped" => "Success",
                "Failed" | "TimedOut" | "Cancelled" => "Failed",
                _ => "Pending",
            };
            overview.insert("Status".into(), Value::from(status));
            let detailed = latest.detailed_status.as_deref().unwrap_or(&latest.status);
            overview.insert("DetailedStatus".into(), Value::from(detailed));
            let mut counts = latest
                .resource_count_by_status
                .as_deref()
                .map(parse_resource_counts)
                .unwrap_or_default();
            if counts.is_empty() {
                counts.insert(latest.status.clone(), 1);
            }
            overview.insert("AssociationStatusAggregatedCount".into(), json!(counts));
        }
    }
    description.insert("Overview".into(), Value::Object(overview));
    Ok(json!({ "AssociationDescription": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_counts_parse_leniently() {
        let counts = parse_resource_counts("{Failed=2, Success=3,bogus,x=y}");
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["Failed"], 2);
        assert_eq!(counts["Success"], 3);
    }
}
