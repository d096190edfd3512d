//! State Manager events: the EventBridge-shaped events (`source` `aws.ssm`) an execution's
//! change of state gives, sent to the queues routed from its account and region.

use serde_json::{json, Map, Value};

use crate::identity::Scope;
use crate::model::{
    format_filter_time, parse_resource_counts, uuid_like, AssociationState, SimExecution,
};
use crate::state::State;

/// `detail-type` of the association-level event.
pub const ASSOCIATION_STATE_CHANGE: &str = "EC2 State Manager Association State Change";
/// `detail-type` of the instance-level event.
pub const INSTANCE_ASSOCIATION_STATE_CHANGE: &str =
    "EC2 State Manager Instance Association State Change";

impl State {
    /// Sends the events of one execution's change: `before` is the execution as it was (`None`
    /// when new), the association in `scope` now holds the new one. An association event when
    /// the status changed (or the execution is new), an instance event for each target that is
    /// new or changed status. Nothing is built when no route takes `scope`'s events.
    pub(crate) fn execution_changed(
        &mut self,
        scope: &Scope,
        association_id: &str,
        execution_id: &str,
        before: Option<&SimExecution>,
        now_ms: i64,
    ) {
        if !self.queues.routes_scope(scope) {
            return;
        }
        let Some(association) = self.association(scope, association_id) else {
            return;
        };
        let Some(after) = association
            .executions
            .values()
            .find(|e| e.execution_id == execution_id)
        else {
            return;
        };
        let mode = self.last_execution_date_mode;
        let mut events = Vec::new();
        if before.is_none_or(|b| b.status != after.status) {
            events.push(association_event(
                scope,
                association_id,
                association,
                after,
                mode,
                now_ms,
            ));
        }
        for target in &after.targets {
            let changed = before.is_none_or(|b| {
                !b.targets
                    .iter()
                    .any(|t| t.resource_id == target.resource_id && t.status == target.status)
            });
            if changed {
                events.push(instance_event(
                    scope,
                    association_id,
                    association,
                    after,
                    target,
                    now_ms,
                ));
            }
        }
        let now = tokio::time::Instant::now();
        for event in &events {
            self.queues.publish(scope, event, now_ms, now);
        }
    }
}

/// An association's overall status as events give it: `Success`, `Failed` or `Pending`.
fn association_status(execution_status: &str) -> &'static str {
    match execution_status {
        "Success" | "Skipped" => "Success",
        "Failed" | "TimedOut" | "Cancelled" => "Failed",
        _ => "Pending",
    }
}

/// `targets` as events carry it: a JSON-encoded string of `[{"key":..,"values":[..]}]`.
fn targets_text(association: &AssociationState) -> String {
    let details = &association.details;
    let targets: Vec<Value> = if details.targets.is_empty() {
        details
            .instance_id
            .iter()
            .map(|id| json!({"key": "InstanceIds", "values": [id]}))
            .collect()
    } else {
        details
            .targets
            .iter()
            .map(|(key, values)| json!({"key": key, "values": values}))
            .collect()
    };
    Value::from(targets).to_string()
}

/// `2017-05-16T23:01:10Z`: an event's `time`.
fn event_time(ms: i64) -> String {
    let text = format_filter_time(ms);
    format!("{}Z", &text[..19])
}

fn envelope(
    detail_type: &str,
    scope: &Scope,
    resources: Vec<String>,
    detail: Value,
    now_ms: i64,
) -> Value {
    json!({
        "version": "0",
        "id": uuid_like(rand::random()),
        "detail-type": detail_type,
        "source": "aws.ssm",
        "account": scope.account,
        "time": event_time(now_ms),
        "region": scope.region,
        "resources": resources,
        "detail": detail,
    })
}

/// The document's ARN: AWS-owned documents (`AWS-*`) have no account.
fn document_arn(scope: &Scope, document: &str) -> String {
    let account = if document.starts_with("AWS-") {
        ""
    } else {
        scope.account.as_str()
    };
    format!("arn:aws:ssm:{}:{account}:document/{document}", scope.region)
}

fn association_event(
    scope: &Scope,
    association_id: &str,
    association: &AssociationState,
    execution: &SimExecution,
    mode: crate::model::LastExecutionDateMode,
    now_ms: i64,
) -> Value {
    let meta = &association.meta;
    let date = |ms: Option<i64>| ms.map(format_filter_time).unwrap_or_default();
    let mut counts: Map<String, Value> = execution
        .resource_counts_text()
        .as_deref()
        .map(parse_resource_counts)
        .unwrap_or_default()
        .into_iter()
        .map(|(status, n)| (status, Value::from(n)))
        .collect();
    if counts.is_empty() {
        counts.insert(execution.status.clone(), Value::from(1));
    }
    let detail = json!({
        "association-id": association_id,
        "document-name": meta.document_name,
        "association-version": association.execution_version(&execution.execution_id).to_string(),
        "document-version": association.details.document_version,
        "targets": targets_text(association),
        "creation-date": format_filter_time(association.added_ms),
        "last-successful-execution-date": date(association.last_success_ms()),
        "last-execution-date": date(association.last_execution_ms(mode)),
        "last-updated-date": format_filter_time(association.added_ms),
        "status": association_status(&execution.status),
        "association-status-aggregated-count": Value::Object(counts).to_string(),
        "schedule-expression": meta.schedule_expression.clone().unwrap_or_default(),
        "association-cwe-version": "1.0",
    });
    let resources = vec![document_arn(scope, &meta.document_name)];
    envelope(ASSOCIATION_STATE_CHANGE, scope, resources, detail, now_ms)
}

fn instance_event(
    scope: &Scope,
    association_id: &str,
    association: &AssociationState,
    execution: &SimExecution,
    target: &crate::model::SimTarget,
    now_ms: i64,
) -> Value {
    let meta = &association.meta;
    let end = target
        .last_execution_ms
        .or(execution.last_execution_ms)
        .unwrap_or(execution.created_ms);
    let success = if target.status == "Success" {
        format_filter_time(end)
    } else {
        String::new()
    };
    let detail = json!({
        "association-id": association_id,
        "instance-id": target.resource_id,
        "document-name": meta.document_name,
        "document-version": association.details.document_version,
        "targets": targets_text(association),
        "creation-date": format_filter_time(execution.created_ms),
        "last-successful-execution-date": success,
        "last-execution-date": format_filter_time(end),
        "status": target.status,
        "detailed-status": target.detailed_status.clone().unwrap_or_else(|| target.status.clone()),
        "error-code": "",
        "execution-summary": format!("1 out of 1 plugin processed, {}", target.status),
        "output-url": "",
        "instance-association-cwe-version": "1",
    });
    let resources = vec![
        format!(
            "arn:aws:ec2:{}:{}:instance/{}",
            scope.region, scope.account, target.resource_id
        ),
        document_arn(scope, &meta.document_name),
    ];
    envelope(
        INSTANCE_ASSOCIATION_STATE_CHANGE,
        scope,
        resources,
        detail,
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_times_have_whole_seconds() {
        assert_eq!(super::event_time(1_550_505_827_119), "2019-02-18T16:03:47Z");
    }
}
