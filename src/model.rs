//! The project's own view of what SSM reports: statuses, executions, alarms, association info.
//!
//! `ssm.rs` maps the SDK's types to these; everything above it speaks only these types, so the
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
    /// `ResourceCountByStatus` as sent, e.g. `{Failed=2,Success=3}`.
    pub resource_counts: Option<String>,
    pub triggered_alarms: Vec<TriggeredAlarm>,
}

/// A CloudWatch alarm that an execution triggered (`State` is `ALARM` or `UNKNOWN`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TriggeredAlarm {
    pub name: String,
    pub state: String,
}

/// What `DescribeAssociation` says about an association, for the info metric.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationInfo {
    pub name: String,
    pub document_name: String,
    pub schedule_expression: String,
    /// The region the association lives in (the client's), for console links.
    #[serde(default)]
    pub region: String,
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
