//! `/api/v1/associations` and `/api/v1/associations/{id}`: the status page's rows as JSON,
//! written by `serde_json`.

use serde_json::{json, Map, Value};

use super::urls::target_output_url;
use super::{EventsView, LastEvent, Query, Row, Snapshot, PAGE_SIZE};
use crate::store::TargetDetail;

/// Epoch milliseconds as RFC 3339 (JSON).
fn rfc3339(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

fn target_json(region: &str, t: &TargetDetail) -> Value {
    json!({
        "resource_id": t.resource_id,
        "resource_type": t.resource_type,
        "status": t.status,
        "detailed_status": t.detailed_status,
        "output_source_type": t.output_source_type,
        "output_source_id": t.output_source_id,
        "output_url": target_output_url(region, t),
    })
}

/// The last State Manager event of an association, or null.
fn last_event_json(last: Option<&LastEvent>) -> Value {
    last.map_or(Value::Null, |e| {
        json!({
            "detail_type": e.detail_type,
            "time_ms": e.time_ms,
            "time": rfc3339(e.time_ms),
            "received_ms": e.received_ms,
            "outcome": e.outcome,
            "queue": e.queue,
        })
    })
}

/// Whether events are on, and each queue's state.
fn events_json(events: &EventsView) -> Value {
    json!({
        "enabled": events.enabled,
        "queues": events.queues.iter().map(|q| json!({
            "url": q.url,
            "state": q.state,
            "last_receive_ms": q.last_receive_ms,
            "last_error": q.last_error,
        })).collect::<Vec<_>>(),
    })
}

fn row_json(row: &Row, events: &EventsView) -> Map<String, Value> {
    let e = &row.exposed;
    let info = e.info.as_ref();
    let newest = e.newest.as_ref().map_or(Value::Null, |n| {
        json!({
            "status": n.status.name(),
            "created_ms": n.created_ms,
            "created": rfc3339(n.created_ms),
            "resources": resources_json(&n.resources),
            "alarms": n.alarms.iter().map(|a| json!({"name": a.name, "state": a.state})).collect::<Vec<_>>(),
        })
    });
    let failing_targets: Vec<Value> = row
        .failing_targets()
        .map(|x| {
            x.targets
                .iter()
                .map(|t| target_json(&row.region, t))
                .collect()
        })
        .unwrap_or_default();
    let value = json!({
        "id": row.id,
        "name": info.map(|i| i.name.as_str()),
        "document_name": info.map(|i| i.document_name.as_str()),
        "schedule_expression": info.map(|i| i.schedule_expression.as_str()),
        "schedule_interval_seconds": e.schedule_interval_seconds,
        "account_id": row.account_id,
        "region": row.region,
        "console_url": row.console_url(),
        "newest": newest,
        "last_success_ms": e.last_success_ms,
        "last_success": e.last_success_ms.map_or(Value::Null, rfc3339),
        "failing": row.failing,
        "overdue": row.overdue,
        "failures_24h": row.failures_24h,
        "in_progress": e.in_progress,
        "polled": e.polled,
        "poll_success": e.poll_success,
        "last_poll_success_ms": e.last_poll_success_ms,
        "last_error": e.last_error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        "failing_targets": failing_targets,
        "last_event": last_event_json(events.last.get(&row.id)),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object"),
    }
}

fn resources_json(resources: &[(String, u64)]) -> Value {
    Value::Object(
        resources
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect(),
    )
}

/// `/api/v1/associations`: the page of rows `query` asks for, with the totals.
pub fn render_json(snapshot: &Snapshot, query: &Query) -> String {
    let summary = snapshot.summary();
    let selection = snapshot.select(query);
    let rows: Vec<Value> = selection
        .rows
        .iter()
        .map(|r| Value::Object(row_json(r, &snapshot.events)))
        .collect();
    json!({
        "summary": {
            "total": summary.total,
            "failing": summary.failing,
            "overdue": summary.overdue,
            "polling_errors": summary.polling_errors,
        },
        "credentials": snapshot.credentials.iter().map(|c| json!({
            "account_id": c.account_id, "region": c.region, "valid": c.valid,
        })).collect::<Vec<_>>(),
        "events": events_json(&snapshot.events),
        "query": query.q,
        "matching": selection.matching,
        "page": selection.page,
        "pages": selection.pages,
        "page_size": PAGE_SIZE,
        "recent_executions_kept": crate::store::RECENT_EXECUTIONS,
        "associations": rows,
    })
    .to_string()
}

/// `/api/v1/associations/{id}`: one association with its recent executions and their failing
/// targets; `None` for an unknown ID.
pub fn render_one_json(snapshot: &Snapshot, id: &str) -> Option<String> {
    let row = snapshot.row(id)?;
    let mut map = row_json(row, &snapshot.events);
    let recent: Vec<Value> = row
        .exposed
        .recent
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "status": r.status.name(),
                "created_ms": r.created_ms,
                "created": rfc3339(r.created_ms),
                "ended_ms": r.ended_ms,
                "resources": resources_json(&r.resources),
                "targets": r.targets.iter().map(|t| target_json(&row.region, t)).collect::<Vec<_>>(),
                "targets_left_out": r.targets_left_out,
            })
        })
        .collect();
    map.insert("recent_executions".into(), Value::Array(recent));
    Some(Value::Object(map).to_string())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{render_html, target_output_url};
    use super::*;
    use crate::model::FinalStatus;

    #[test]
    fn failing_targets_link_to_the_console_and_the_detail_lists_recent_runs() {
        let mut e = exposed("failing", FinalStatus::Failed, 60_000);
        let mut old = failed_recent();
        old.id = "exec-0".into();
        old.created_ms = NOW - 25 * HOUR;
        let mut timed_out = failed_recent();
        timed_out.id = "exec-t".into();
        timed_out.status = FinalStatus::TimedOut;
        let mut ok = failed_recent();
        ok.status = FinalStatus::Success;
        e.recent = vec![failed_recent(), timed_out, ok, old].into();
        let store = store(vec![("assoc-1", "eu-west-1", e)]);
        let snap = snapshot(&store);
        assert_eq!(
            snap.rows[0].failures_24h, 2,
            "24 h window, Failed and TimedOut only"
        );
        let html = render_html(&snap, &Query::parse(None), "");
        assert!(html.contains(
            "https://eu-west-1.console.aws.amazon.com/systems-manager/state-manager/assoc-1/description?region=eu-west-1"
        ));
        assert!(html.contains(
            "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/cmd-42?region=eu-west-1"
        ));
        assert!(html.contains("and 3 more not read"));
        assert!(html.contains("Failing targets of run"));

        let one: Value = serde_json::from_str(&render_one_json(&snap, "assoc-1").unwrap()).unwrap();
        assert_eq!(one["recent_executions"].as_array().unwrap().len(), 4);
        assert_eq!(
            one["recent_executions"][0]["targets"][0]["status"],
            "Failed"
        );
        assert_eq!(one["recent_executions"][0]["targets_left_out"], 3);
        assert_eq!(one["recent_executions"][0]["resources"]["Success"], 2);
        assert_eq!(
            one["failing_targets"][0]["output_url"],
            "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/cmd-42?region=eu-west-1"
        );
        assert!(render_one_json(&snap, "unknown").is_none());

        // A target without a Run Command output has no output link; a succeeding newest run
        // shows no targets.
        let mut t = failed_recent().targets[0].clone();
        t.output_source_type = String::new();
        assert!(target_output_url("eu-west-1", &t).is_none());
        let mut fine = exposed("fine", FinalStatus::Success, 1000);
        fine.recent = vec![failed_recent()].into();
        let store = self::store(vec![("assoc-2", "eu-west-1", fine)]);
        let html = render_html(&snapshot(&store), &Query::parse(None), "");
        assert!(!html.contains("Failing targets"));
    }
}
