//! Response shapes of the service model built from the world model: an execution item,
//! `DescribeAssociation`'s description, and the targets and overview that `ListAssociations`
//! shares with it.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{validate_association_id, ApiError};
use crate::identity::Scope;
use crate::model::{AssociationDetails, AssociationState, SimAssociation, SimExecution};
use crate::state::Shared;

/// Epoch milliseconds as an AWS JSON timestamp (epoch seconds with a millisecond fraction).
pub(crate) fn timestamp(ms: i64) -> Value {
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
    association: &AssociationState,
    e: &SimExecution,
) -> Value {
    let mut item = Map::new();
    item.insert("AssociationId".into(), Value::from(association_id));
    let version = association.execution_version(&e.execution_id);
    item.insert(
        "AssociationVersion".into(),
        Value::from(version.to_string()),
    );
    item.insert("ExecutionId".into(), Value::from(e.execution_id.as_str()));
    item.insert("Status".into(), Value::from(e.status.as_str()));
    if let Some(detailed) = &e.detailed_status {
        item.insert("DetailedStatus".into(), Value::from(detailed.as_str()));
    }
    item.insert("CreatedTime".into(), timestamp(e.created_ms));
    if let Some(ms) = e.last_execution_ms {
        item.insert("LastExecutionDate".into(), timestamp(ms));
    }
    if let Some(counts) = e.resource_counts_text() {
        item.insert("ResourceCountByStatus".into(), Value::from(counts));
    }
    if let Some(alarms) = alarm_configuration(&association.meta) {
        item.insert("AlarmConfiguration".into(), alarms);
    }
    if !e.triggered_alarms.is_empty() {
        let alarms: Vec<Value> = e
            .triggered_alarms
            .iter()
            .map(|(name, state)| json!({ "Name": name, "State": state }))
            .collect();
        let alarms = if e.alarm_listed_twice {
            alarms.iter().chain(&alarms).cloned().collect()
        } else {
            alarms
        };
        item.insert("TriggeredAlarms".into(), Value::from(alarms));
    }
    for field in &e.omit {
        item.remove(*field);
    }
    Value::Object(item)
}

/// `Targets` as the service model has them.
pub(crate) fn targets_json(details: &AssociationDetails) -> Value {
    let targets: Vec<Value> = details
        .targets
        .iter()
        .map(|(key, values)| json!({ "Key": key, "Values": values }))
        .collect();
    Value::from(targets)
}

/// `AssociationOverview` as the service model has it.
pub(crate) fn overview_json(association: &AssociationState) -> Value {
    let overview = association.overview();
    let mut out = Map::new();
    out.insert("Status".into(), Value::from(overview.status));
    if let Some(detailed) = overview.detailed_status {
        out.insert("DetailedStatus".into(), Value::from(detailed));
        out.insert(
            "AssociationStatusAggregatedCount".into(),
            json!(overview.counts),
        );
    }
    Value::Object(out)
}

/// Answers `DescribeAssociation` from the caller's account and region.
pub(crate) fn describe_association(
    shared: &Shared,
    scope: &Scope,
    request: AssociationRequest,
) -> Result<Value, ApiError> {
    let association_id = validate_association_id(request.association_id.as_deref())?;
    let state = shared.lock();
    let association = state
        .association(scope, association_id)
        .ok_or_else(|| ApiError::no_association(association_id))?;
    let meta = &association.meta;
    let details = &association.details;

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
    description.insert(
        "DocumentVersion".into(),
        Value::from(details.document_version.as_str()),
    );
    if let Some(schedule) = &meta.schedule_expression {
        description.insert("ScheduleExpression".into(), Value::from(schedule.as_str()));
    }
    description.insert(
        "AssociationVersion".into(),
        Value::from(association.version.to_string()),
    );
    description.insert("Date".into(), timestamp(created));
    if let Some(alarms) = alarm_configuration(meta) {
        description.insert("AlarmConfiguration".into(), alarms);
    }
    if !details.targets.is_empty() {
        description.insert("Targets".into(), targets_json(details));
    }
    if let Some(instance) = &details.instance_id {
        description.insert("InstanceId".into(), Value::from(instance.as_str()));
    }
    if let Some(last) = association.last_execution_ms(state.last_execution_date_mode) {
        description.insert("LastExecutionDate".into(), timestamp(last));
    }
    if let Some(last) = association.last_success_ms() {
        description.insert("LastSuccessfulExecutionDate".into(), timestamp(last));
    }
    description.insert("Overview".into(), overview_json(association));
    Ok(json!({ "AssociationDescription": description }))
}
