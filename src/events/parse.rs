//! One SQS message body to what it says: a State Manager event naming an association, its
//! account, region and time, or why it is not one. Pure.
//!
//! EventBridge sends the whole event as the body (a rule without an input transformer):
//! `{"source": "aws.ssm", "detail-type": "EC2 State Manager Association State Change",
//! "account": "111111111111", "region": "eu-west-1", "time": "2026-12-03T15:49:09Z",
//! "detail": {"association-id": "...", ...}}`. The instance event (`EC2 State Manager Instance
//! Association State Change`) names the association the same way. Nothing else of the event is
//! read: it only says *which* association to poll, never what to count.

use serde_json::Value;

/// The two State Manager event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetailType {
    /// `EC2 State Manager Association State Change`.
    Association,
    /// `EC2 State Manager Instance Association State Change`.
    InstanceAssociation,
}

/// The `detail_type` label of messages that are not State Manager events.
pub const OTHER: &str = "other";

impl DetailType {
    pub const ALL: [DetailType; 2] = [DetailType::Association, DetailType::InstanceAssociation];

    /// The event's `detail-type`.
    pub fn aws_name(self) -> &'static str {
        match self {
            DetailType::Association => "EC2 State Manager Association State Change",
            DetailType::InstanceAssociation => {
                "EC2 State Manager Instance Association State Change"
            }
        }
    }

    /// The `detail_type` label.
    pub fn name(self) -> &'static str {
        match self {
            DetailType::Association => "association",
            DetailType::InstanceAssociation => "instance_association",
        }
    }

    fn from_aws(name: &str) -> Option<DetailType> {
        DetailType::ALL.into_iter().find(|d| d.aws_name() == name)
    }
}

/// A State Manager event: which association changed, where, and when AWS says it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub detail_type: DetailType,
    pub account_id: String,
    pub region: String,
    /// Lower case, as the configuration and the store keep IDs.
    pub association_id: String,
    /// The event's `time`, epoch milliseconds.
    pub time_ms: i64,
    /// An association event whose `status` is not `Pending` or `InProgress`: a run of the
    /// association may have ended (its poll is due now). Every other event is progress: a run
    /// starting, or one instance's change, whose poll may wait (`events.progress_poll_delay`).
    pub announces_end: bool,
}

/// What one message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Event(Event),
    /// Well-formed, but not a State Manager event (another source or detail type): the queue
    /// is shared, or the rule matches more than it should.
    Foreign(String),
    /// Not an event at all, or a State Manager event without what it must have; the detail
    /// type when it said one.
    Malformed(Option<DetailType>, String),
}

/// Reads one message body.
pub fn parse(body: &str) -> Message {
    let value: Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(error) => return Message::Malformed(None, format!("not JSON: {error}")),
    };
    let Some(event) = value.as_object() else {
        return Message::Malformed(None, "not a JSON object".to_string());
    };
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    let (Some(source), Some(detail_type)) = (text("source"), text("detail-type")) else {
        return Message::Malformed(
            None,
            "no source or detail-type: not an EventBridge event".into(),
        );
    };
    let Some(kind) = DetailType::from_aws(detail_type).filter(|_| source == "aws.ssm") else {
        return Message::Foreign(format!("{source}: {detail_type}"));
    };
    let malformed = |why: String| Message::Malformed(Some(kind), why);
    let account_id = match text("account") {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => a.to_string(),
        other => return malformed(format!("account is not a 12-digit account ID: {other:?}")),
    };
    let region = match text("region") {
        Some(r)
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            r.to_string()
        }
        other => return malformed(format!("region is not a region name: {other:?}")),
    };
    let time_ms = match text("time").map(parse_time) {
        Some(Some(ms)) => ms,
        _ => return malformed(format!("time is not an RFC 3339 time: {:?}", text("time"))),
    };
    let id = event
        .get("detail")
        .and_then(|d| d.get("association-id"))
        .and_then(Value::as_str);
    let association_id = match id {
        Some(id) if is_association_id(id) => id.to_ascii_lowercase(),
        other => {
            return malformed(format!(
                "detail.association-id is not an association ID: {other:?}"
            ))
        }
    };
    let status = event
        .get("detail")
        .and_then(|d| d.get("status"))
        .and_then(Value::as_str);
    Message::Event(Event {
        detail_type: kind,
        account_id,
        region,
        association_id,
        time_ms,
        announces_end: kind == DetailType::Association && status.is_none_or(|s| !in_progress(s)),
    })
}

/// An association status that says a run is going on, not that one ended. An unknown or
/// missing status counts as an end: when in doubt, the poll is not put off.
fn in_progress(status: &str) -> bool {
    ["Pending", "InProgress"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
}

/// `2026-12-03T15:49:09Z` to epoch milliseconds.
fn parse_time(text: &str) -> Option<i64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// 8-4-4-4-12 hexadecimal characters, as SSM's association ID pattern.
fn is_association_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "8DFE3659-4309-493A-8755-0123456789AB";

    /// The user guide's association event, trimmed of what the exporter does not read.
    fn association_event() -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 State Manager Association State Change",
            "source": "aws.ssm",
            "account": "123456789012",
            "time": "2026-12-03T15:49:09Z",
            "region": "us-east-2",
            "resources": [format!("arn:aws:ssm:us-east-2:123456789012:association/{ID}")],
            "detail": {
                "association-id": ID,
                "document-name": "AWS-RunPowerShellScript",
                "association-version": "1",
                "status": "Success",
                "association-status-aggregated-count": "{\"Success\":1}"
            }
        })
    }

    #[test]
    fn both_state_manager_events_name_their_association() {
        let expected = |detail_type, announces_end| {
            Message::Event(Event {
                detail_type,
                account_id: "123456789012".into(),
                region: "us-east-2".into(),
                association_id: ID.to_ascii_lowercase(),
                time_ms: 1_796_312_949_000,
                announces_end,
            })
        };
        assert_eq!(
            parse(&association_event().to_string()),
            expected(DetailType::Association, true)
        );
        let mut instance = association_event();
        instance["detail-type"] = json!("EC2 State Manager Instance Association State Change");
        instance["detail"] =
            json!({"association-id": ID, "instance-id": "i-0123", "status": "Failed"});
        assert_eq!(
            parse(&instance.to_string()),
            expected(DetailType::InstanceAssociation, false)
        );
    }

    /// Only an association event can announce an end, and only when its status is not one of
    /// a run going on; an instance event is progress whatever its status (one instance's end
    /// is not the run's).
    #[test]
    fn an_association_s_end_is_told_from_progress() {
        let ends = |detail_type: &str, status: Option<&str>| {
            let mut event = association_event();
            event["detail-type"] = json!(detail_type);
            match status {
                Some(status) => event["detail"]["status"] = json!(status),
                None => {
                    event["detail"].as_object_mut().unwrap().remove("status");
                }
            }
            match parse(&event.to_string()) {
                Message::Event(e) => e.announces_end,
                other => panic!("{other:?}"),
            }
        };
        let association = DetailType::Association.aws_name();
        let instance = DetailType::InstanceAssociation.aws_name();
        for status in ["Success", "Failed", "TimedOut", "Cancelled", "Skipped"] {
            assert!(ends(association, Some(status)), "{status}");
            assert!(!ends(instance, Some(status)), "instance {status}");
        }
        for status in ["Pending", "InProgress", "inprogress"] {
            assert!(!ends(association, Some(status)), "{status}");
        }
        assert!(ends(association, None), "no status: not put off");
        assert!(!ends(instance, None));
    }

    #[test]
    fn other_events_are_foreign() {
        let mut other = association_event();
        other["detail-type"] = json!("EC2 Instance State-change Notification");
        assert_eq!(
            parse(&other.to_string()),
            Message::Foreign("aws.ssm: EC2 Instance State-change Notification".into())
        );
        let mut forged_source = association_event();
        forged_source["source"] = json!("my.app");
        assert!(matches!(
            parse(&forged_source.to_string()),
            Message::Foreign(_)
        ));
    }

    #[test]
    fn broken_events_are_malformed() {
        assert!(matches!(parse("{not json"), Message::Malformed(None, _)));
        assert!(matches!(parse("[1]"), Message::Malformed(None, _)));
        assert!(matches!(
            parse("{\"hello\": 1}"),
            Message::Malformed(None, _)
        ));
        let broken = |key: &str, value: Value| {
            let mut event = association_event();
            event[key] = value;
            parse(&event.to_string())
        };
        for (key, value) in [
            ("account", json!("12345")),
            ("account", Value::Null),
            ("region", json!("")),
            ("region", json!(5)),
            ("time", json!("yesterday")),
            ("time", Value::Null),
            ("detail", json!({"association-id": "not-an-id"})),
            ("detail", json!({})),
            ("detail", json!("x")),
        ] {
            assert!(
                matches!(
                    broken(key, value.clone()),
                    Message::Malformed(Some(DetailType::Association), _)
                ),
                "{key}: {value}"
            );
        }
    }
}
