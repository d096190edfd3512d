//! The project's own view of what SSM reports: statuses, executions, alarms, association info.
//!
//! `ssm` maps the SDK's types to these; everything above it speaks only these types, so the
//! counting rules and the numbers can be tested without AWS.

use std::fmt;
use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

/// The statuses after which an execution never changes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FinalStatus {
    Success,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
}

impl FinalStatus {
    /// Every final status, in the order `/metrics` lists them.
    pub const ALL: [FinalStatus; 5] = [
        FinalStatus::Success,
        FinalStatus::Failed,
        FinalStatus::TimedOut,
        FinalStatus::Cancelled,
        FinalStatus::Skipped,
    ];

    /// The API's name of the status (also the `status` label value).
    pub const fn name(self) -> &'static str {
        match self {
            FinalStatus::Success => "Success",
            FinalStatus::Failed => "Failed",
            FinalStatus::TimedOut => "TimedOut",
            FinalStatus::Cancelled => "Cancelled",
            FinalStatus::Skipped => "Skipped",
        }
    }

    /// The status with the API's `name`, exactly (status strings are case-sensitive).
    pub fn from_name(name: &str) -> Option<FinalStatus> {
        FinalStatus::ALL.into_iter().find(|s| s.name() == name)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FinalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An execution's status: final, or anything else (Pending, InProgress, Associated, a string
/// the API may add later), kept as sent for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Final(FinalStatus),
    NotFinal(String),
}

impl Status {
    /// Reads the API's free-form status string. Unknown strings are not final.
    pub fn parse(text: &str) -> Status {
        match FinalStatus::from_name(text) {
            Some(status) => Status::Final(status),
            None => Status::NotFinal(text.to_string()),
        }
    }

    pub fn final_status(&self) -> Option<FinalStatus> {
        match self {
            Status::Final(status) => Some(*status),
            Status::NotFinal(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Final(status) => status.name(),
            Status::NotFinal(text) => text,
        }
    }
}

/// One value per final status, indexed by [`FinalStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerStatus<T>([T; 5]);

impl<T> PerStatus<T> {
    /// Each status with its value, in [`FinalStatus::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FinalStatus, &T)> {
        FinalStatus::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> Index<FinalStatus> for PerStatus<T> {
    type Output = T;
    fn index(&self, status: FinalStatus) -> &T {
        &self.0[status.index()]
    }
}

impl<T> IndexMut<FinalStatus> for PerStatus<T> {
    fn index_mut(&mut self, status: FinalStatus) -> &mut T {
        &mut self.0[status.index()]
    }
}

/// One association execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    pub id: String,
    pub status: Status,
    /// `CreatedTime`, epoch milliseconds (rounded to the nearest millisecond).
    pub created_ms: i64,
    /// `LastExecutionDate`, epoch milliseconds, when the API gives one.
    pub ended_ms: Option<i64>,
    /// `ResourceCountByStatus` (e.g. `{Failed=2,Success=3}`), parsed once where the API's
    /// answer is read ([`parse_resource_counts`]): targets per status, sorted by status.
    pub resources: Vec<(String, u64)>,
    /// `TriggeredAlarms`, each alarm once, sorted ([`distinct_alarms`]): an alarm listed twice
    /// in one execution is one execution that triggered it.
    pub triggered_alarms: Vec<TriggeredAlarm>,
}

/// Alarms as one execution lists them, each once, sorted.
pub fn distinct_alarms(alarms: impl IntoIterator<Item = TriggeredAlarm>) -> Vec<TriggeredAlarm> {
    let mut alarms: Vec<TriggeredAlarm> = alarms.into_iter().collect();
    alarms.sort();
    alarms.dedup();
    alarms
}

/// A CloudWatch alarm that an execution triggered (`State` is `ALARM` or `UNKNOWN`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TriggeredAlarm {
    pub name: String,
    pub state: String,
}

/// What the listing says about an association, for the info metric.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationInfo {
    pub name: String,
    pub document_name: String,
    pub schedule_expression: String,
    /// The region the association lives in, for console links.
    #[serde(default)]
    pub region: String,
    /// The account the association lives in.
    #[serde(default)]
    pub account_id: String,
    /// The document version the association runs (`$DEFAULT`, `$LATEST` or a number).
    #[serde(default)]
    pub document_version: String,
    /// Its targets in short: `key=value,value;key=value`, cut at [`TARGETS_SUMMARY_MAX`].
    #[serde(default)]
    pub targets: String,
}

/// The longest targets summary kept (a label value); longer ones end with `...`.
pub const TARGETS_SUMMARY_MAX: usize = 200;

/// `Targets` in short: `InstanceIds=i-1,i-2;tag:Env=prod`, at most [`TARGETS_SUMMARY_MAX`]
/// bytes (cut on a character boundary, ending with `...`).
pub fn summarize_targets<'a>(targets: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> String {
    let mut out = String::new();
    for (i, (key, values)) in targets.into_iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&values.join(","));
    }
    if out.len() > TARGETS_SUMMARY_MAX {
        let mut cut = TARGETS_SUMMARY_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// One account in one region: where an association lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ScopeKey {
    pub account_id: String,
    pub region: String,
}

impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.region)
    }
}

/// One association as `ListAssociations` shows it: what discovery selects on, what the info
/// metric shows, and what the change feed compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedAssociation {
    pub id: String,
    /// `AssociationName`; associations created without one have none.
    pub name: Option<String>,
    /// The document (`Name`).
    pub document_name: String,
    pub document_version: Option<String>,
    pub association_version: Option<String>,
    pub schedule_expression: Option<String>,
    /// [`summarize_targets`] of `Targets`.
    pub targets: String,
    /// `LastExecutionDate`, epoch milliseconds. Whether it moves when a run starts or when it
    /// ends is not documented; the change feed is exact either way.
    pub last_execution_ms: Option<i64>,
    /// `Overview` (status, detailed status, counts) in a stable text form.
    pub overview: String,
}

impl ListedAssociation {
    /// What the change feed compares between two listings: a change means something ran,
    /// ended or was edited.
    pub fn signature(&self) -> String {
        format!(
            "{}|{}|{}",
            self.last_execution_ms
                .map_or(String::new(), |ms| ms.to_string()),
            self.association_version.as_deref().unwrap_or_default(),
            self.overview
        )
    }

    /// The info metric's labels, in `scope`.
    pub fn info(&self, scope: &ScopeKey) -> AssociationInfo {
        AssociationInfo {
            name: self.name.clone().unwrap_or_default(),
            document_name: self.document_name.clone(),
            schedule_expression: self.schedule_expression.clone().unwrap_or_default(),
            region: scope.region.clone(),
            account_id: scope.account_id.clone(),
            document_version: self.document_version.clone().unwrap_or_default(),
            targets: self.targets.clone(),
        }
    }
}

/// Parses `ResourceCountByStatus` (`{Failed=2,Success=3}`) leniently: malformed parts are
/// skipped, never an error. Repeated statuses are added up; the result is sorted by status.
pub fn parse_resource_counts(text: &str) -> Vec<(String, u64)> {
    let inner = text.trim();
    let inner = inner.strip_prefix('{').unwrap_or(inner);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut counts: Vec<(String, u64)> = Vec::new();
    for part in inner.split(',') {
        let Some((status, count)) = part.split_once('=') else {
            continue;
        };
        let status = status.trim();
        let Ok(count) = count.trim().parse::<u64>() else {
            continue;
        };
        if status.is_empty() {
            continue;
        }
        match counts.iter_mut().find(|(s, _)| s == status) {
            Some((_, total)) => *total = total.saturating_add(count),
            None => counts.push((status.to_string(), count)),
        }
    }
    counts.sort();
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_are_exactly_the_documented_five() {
        for s in ["Success", "Failed", "TimedOut", "Cancelled", "Skipped"] {
            assert_eq!(
                Status::parse(s).final_status().map(FinalStatus::name),
                Some(s)
            );
        }
        for s in [
            "Pending",
            "InProgress",
            "Associated",
            "",
            "success",
            "Weird",
        ] {
            assert_eq!(Status::parse(s), Status::NotFinal(s.to_string()), "{s}");
        }
    }

    #[test]
    fn per_status_is_indexed_by_status_not_by_position() {
        let mut counts = PerStatus::<u64>::default();
        counts[FinalStatus::Skipped] += 3;
        counts[FinalStatus::Success] += 1;
        let listed: Vec<_> = counts.iter().map(|(s, n)| (s.name(), *n)).collect();
        assert_eq!(
            listed,
            [
                ("Success", 1),
                ("Failed", 0),
                ("TimedOut", 0),
                ("Cancelled", 0),
                ("Skipped", 3)
            ]
        );
    }

    #[test]
    fn targets_are_summarized_and_cut_on_a_character_boundary() {
        assert_eq!(
            summarize_targets([
                ("InstanceIds", vec!["i-1", "i-2"]),
                ("tag:Env", vec!["prod"])
            ]),
            "InstanceIds=i-1,i-2;tag:Env=prod"
        );
        let long = "é".repeat(300);
        let summary = summarize_targets([("tag:x", vec![long.as_str()])]);
        assert!(summary.len() <= TARGETS_SUMMARY_MAX, "{}", summary.len());
        assert!(summary.ends_with("..."));
    }

    #[test]
    fn resource_counts_parse_leniently() {
        assert_eq!(
            parse_resource_counts("{Failed=2,Success=3}"),
            [("Failed".to_string(), 2), ("Success".to_string(), 3)]
        );
        assert_eq!(
            parse_resource_counts("{Success=1}"),
            [("Success".to_string(), 1)]
        );
        assert_eq!(
            parse_resource_counts(" { Success = 4 , Failed=1 } "),
            [("Failed".to_string(), 1), ("Success".to_string(), 4)]
        );
        assert_eq!(
            parse_resource_counts("{Success=1,Success=2}"),
            [("Success".to_string(), 3)]
        );
        assert!(parse_resource_counts("").is_empty());
        assert!(parse_resource_counts("{}").is_empty());
        assert_eq!(
            parse_resource_counts("{Success=x,=3,Failed,TimedOut=-1,Skipped=2"),
            [("Skipped".to_string(), 2)]
        );
    }
}

/// One target of an execution, as `DescribeAssociationExecutionTargets` shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetDetail {
    pub resource_id: String,
    pub resource_type: String,
    pub status: String,
    pub detailed_status: String,
    /// `OutputSource`: type (e.g. `RunCommand`) and id (the command ID).
    pub output_source_type: String,
    pub output_source_id: String,
}

/// The target statuses and `DetailedStatus` values the `status` and `detailed_status` labels
/// keep: State Manager's target statuses and Run Command's documented detailed statuses
/// (https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html), both
/// spellings of cancelled. Anything else is `other`, so a label never takes an unbounded set.
pub const TARGET_STATUS_LABELS: &[&str] = &[
    "Success",
    "Failed",
    "TimedOut",
    "Cancelled",
    "Canceled",
    "Cancelling",
    "Undeliverable",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Terminated",
    "Incomplete",
    "Skipped",
    "NoInstancesInTag",
    "InvalidPlatform",
    "AccessDenied",
    "Pending",
    "InProgress",
    "Delayed",
];

/// A target status or detailed status as a label value: itself if in [`TARGET_STATUS_LABELS`],
/// else `other`.
pub fn target_status_label(status: &str) -> &'static str {
    TARGET_STATUS_LABELS
        .iter()
        .find(|s| **s == status)
        .copied()
        .unwrap_or("other")
}
