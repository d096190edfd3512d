//! The world model: associations and their executions as stored, and the ground truth an
//! exporter should converge to.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// Statuses after which an execution no longer changes.
const FINAL_STATUSES: &[&str] = &["Success", "Failed", "TimedOut", "Cancelled", "Skipped"];

/// Whether `status` is one an execution never leaves.
pub fn is_final_status(status: &str) -> bool {
    FINAL_STATUSES.contains(&status)
}

/// Formats epoch milliseconds as the ISO-8601 UTC filter value SSM accepts
/// (`2026-11-26T07:00:00.123Z`).
pub fn format_filter_time(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .expect("timestamp within the range of the time crate");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A uuid-shaped string from 128 random bits (request ids, execution ids).
pub fn uuid_like(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A 128-bit FNV-1a hash: stable ids derived from names (user ids, bulk association ids).
pub(crate) fn stable_hash(text: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

/// `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
pub(crate) fn is_uuid_shaped(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One association execution as the simulator stores it.
#[derive(Clone, Debug)]
pub struct SimExecution {
    /// `ExecutionId` (SSM uses uuids; any string works here).
    pub execution_id: String,
    /// `Status`: a free string (Pending, InProgress, Success, Failed, TimedOut, ...).
    pub status: String,
    /// `DetailedStatus`, omitted when `None`.
    pub detailed_status: Option<String>,
    /// `CreatedTime` in epoch milliseconds.
    pub created_ms: i64,
    /// `LastExecutionDate` in epoch milliseconds, omitted when `None`.
    pub last_execution_ms: Option<i64>,
    /// `ResourceCountByStatus`, e.g. `{Failed=2,Success=3}`, omitted when `None`.
    pub resource_count_by_status: Option<String>,
    /// `TriggeredAlarms` as (alarm name, state `ALARM` | `UNKNOWN`); at most one (service model).
    pub triggered_alarms: Vec<(String, String)>,
    /// Whether the execution is returned yet (late visibility when `false`).
    pub visible: bool,
    /// Wire fields left out of the response (`ExecutionId`, `CreatedTime`, `Status`): a
    /// malformed answer. Executions without an ID or CreatedTime cannot be counted and are left
    /// out of the ground truth; one without a Status is, to a client, not final.
    pub omit: Vec<&'static str>,
    /// Send the `TriggeredAlarms` entry twice on the wire: outside the service model (its list
    /// holds one alarm), as a misbehaving endpoint might. The ground truth still has one.
    pub alarm_listed_twice: bool,
    /// Its targets (`DescribeAssociationExecutionTargets`). When there are some and
    /// `resource_count_by_status` is `None`, `ResourceCountByStatus` is derived from them.
    pub targets: Vec<SimTarget>,
}

/// One target of an execution, as `DescribeAssociationExecutionTargets` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTarget {
    /// `ResourceId`, e.g. `i-0123456789abcdef0`; unique within an execution (the paging key).
    pub resource_id: String,
    /// `ResourceType`, e.g. `ManagedInstance`.
    pub resource_type: String,
    /// `Status`: Success, Failed, TimedOut, Cancelled, Skipped, Pending, InProgress, ...
    pub status: String,
    /// `DetailedStatus` (Run Command's: Success, Failed, TimedOut, Undeliverable, ...), omitted
    /// when `None`.
    pub detailed_status: Option<String>,
    /// `LastExecutionDate`; the execution's end (or creation) when `None`.
    pub last_execution_ms: Option<i64>,
    /// `OutputSource.OutputSourceId` (36 characters); one command id per execution, derived
    /// from the execution id, when `None`.
    pub output_source_id: Option<String>,
    /// `OutputSource.OutputSourceType`, `RunCommand` by default.
    pub output_source_type: String,
}

impl SimTarget {
    /// A managed instance in `status`, with `DetailedStatus` = `status`.
    pub fn new(resource_id: impl Into<String>, status: impl Into<String>) -> Self {
        let status = status.into();
        SimTarget {
            resource_id: resource_id.into(),
            resource_type: "ManagedInstance".to_owned(),
            detailed_status: Some(status.clone()),
            status,
            last_execution_ms: None,
            output_source_id: None,
            output_source_type: "RunCommand".to_owned(),
        }
    }

    /// Sets `DetailedStatus` (e.g. `Undeliverable` under status `Failed`).
    pub fn with_detailed_status(mut self, detailed_status: impl Into<String>) -> Self {
        self.detailed_status = Some(detailed_status.into());
        self
    }

    /// Sets `ResourceType`.
    pub fn with_resource_type(mut self, resource_type: impl Into<String>) -> Self {
        self.resource_type = resource_type.into();
        self
    }

    /// Sets `LastExecutionDate` (epoch milliseconds).
    pub fn with_last_execution_ms(mut self, ms: i64) -> Self {
        self.last_execution_ms = Some(ms);
        self
    }

    /// Sets `OutputSource`.
    pub fn with_output_source(
        mut self,
        id: impl Into<String>,
        source_type: impl Into<String>,
    ) -> Self {
        self.output_source_id = Some(id.into());
        self.output_source_type = source_type.into();
        self
    }
}

impl SimExecution {
    /// A visible execution with no optional fields set.
    pub fn new(
        execution_id: impl Into<String>,
        status: impl Into<String>,
        created_ms: i64,
    ) -> Self {
        SimExecution {
            execution_id: execution_id.into(),
            status: status.into(),
            detailed_status: None,
            created_ms,
            last_execution_ms: None,
            resource_count_by_status: None,
            triggered_alarms: Vec::new(),
            visible: true,
            omit: Vec::new(),
            alarm_listed_twice: false,
            targets: Vec::new(),
        }
    }

    /// Adds a target (see [`SimExecution::targets`]).
    pub fn with_target(mut self, target: SimTarget) -> Self {
        self.targets.push(target);
        self
    }

    /// Adds targets (see [`SimExecution::targets`]).
    pub fn with_targets(mut self, targets: impl IntoIterator<Item = SimTarget>) -> Self {
        self.targets.extend(targets);
        self
    }

    /// `ResourceCountByStatus` as sent: the explicit one, or derived from the targets
    /// (`{Failed=2,Success=3}`, statuses in name order), or none.
    pub fn resource_counts_text(&self) -> Option<String> {
        if let Some(text) = &self.resource_count_by_status {
            return Some(text.clone());
        }
        if self.targets.is_empty() {
            return None;
        }
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &self.targets {
            *counts.entry(t.status.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
        Some(format!("{{{}}}", parts.join(",")))
    }

    /// Lists the triggered alarm twice on the wire (see [`SimExecution::alarm_listed_twice`]).
    pub fn with_alarm_listed_twice(mut self) -> Self {
        self.alarm_listed_twice = true;
        self
    }

    /// Leaves `field` out of the wire response (see [`SimExecution::omit`]).
    pub fn without_field(mut self, field: &'static str) -> Self {
        self.omit.push(field);
        self
    }

    /// Sets `DetailedStatus`.
    pub fn with_detailed_status(mut self, detailed_status: impl Into<String>) -> Self {
        self.detailed_status = Some(detailed_status.into());
        self
    }

    /// Sets `LastExecutionDate` (epoch milliseconds).
    pub fn with_last_execution_ms(mut self, last_execution_ms: i64) -> Self {
        self.last_execution_ms = Some(last_execution_ms);
        self
    }

    /// Sets `ResourceCountByStatus`, e.g. `{Success=3}`.
    pub fn with_resource_count_by_status(mut self, counts: impl Into<String>) -> Self {
        self.resource_count_by_status = Some(counts.into());
        self
    }

    /// Adds a triggered alarm (`state` is `ALARM` or `UNKNOWN`).
    pub fn with_triggered_alarm(
        mut self,
        name: impl Into<String>,
        state: impl Into<String>,
    ) -> Self {
        self.triggered_alarms.push((name.into(), state.into()));
        self
    }

    /// Makes the execution invisible until [`Simulator::update_execution`](crate::Simulator::update_execution) sets `visible`.
    pub fn invisible(mut self) -> Self {
        self.visible = false;
        self
    }

    /// Why the execution breaks the service model's alarm limits, if it does.
    pub(crate) fn model_violation(&self) -> Option<String> {
        if self.triggered_alarms.len() > 1 {
            return Some(format!(
                "execution {}: the SSM model allows at most one TriggeredAlarms entry",
                self.execution_id
            ));
        }
        self.triggered_alarms
            .iter()
            .find(|(name, state)| name.trim().is_empty() || (state != "ALARM" && state != "UNKNOWN"))
            .map(|(name, state)| {
                format!(
                    "execution {}: triggered alarm ({name:?}, {state:?}) needs a name and state ALARM or UNKNOWN",
                    self.execution_id
                )
            })
    }
}

/// An association's metadata.
#[derive(Clone, Debug, Default)]
pub struct SimAssociation {
    /// `AssociationName`, omitted when `None`.
    pub name: Option<String>,
    /// The SSM document name (`Name`).
    pub document_name: String,
    /// `ScheduleExpression`, omitted when `None`.
    pub schedule_expression: Option<String>,
    /// Configured CloudWatch alarm names; at most one (service model).
    pub alarms: Vec<String>,
}

impl SimAssociation {
    /// An association running `document_name` with no name, schedule or alarms.
    pub fn new(document_name: impl Into<String>) -> Self {
        SimAssociation {
            document_name: document_name.into(),
            ..SimAssociation::default()
        }
    }

    /// Sets `AssociationName`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets `ScheduleExpression`.
    pub fn with_schedule(mut self, schedule_expression: impl Into<String>) -> Self {
        self.schedule_expression = Some(schedule_expression.into());
        self
    }

    /// Adds a configured alarm.
    pub fn with_alarm(mut self, alarm: impl Into<String>) -> Self {
        self.alarms.push(alarm.into());
        self
    }
}

/// Association fields beyond [`SimAssociation`] that `ListAssociations` returns (kept apart
/// so that code building a `SimAssociation` literal keeps compiling).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssociationDetails {
    /// `DocumentVersion` (default `$DEFAULT`).
    pub document_version: String,
    /// `Targets` as (key, values), e.g. `("tag:Env", ["prod"])` or
    /// `("resource-groups:Name", ["web"])`; at most 5 (service model).
    pub targets: Vec<(String, Vec<String>)>,
    /// `InstanceId` of a legacy single-instance association.
    pub instance_id: Option<String>,
}

impl Default for AssociationDetails {
    fn default() -> Self {
        AssociationDetails {
            document_version: "$DEFAULT".to_owned(),
            targets: Vec::new(),
            instance_id: None,
        }
    }
}

impl AssociationDetails {
    /// Sets `DocumentVersion`.
    pub fn with_document_version(mut self, version: impl Into<String>) -> Self {
        self.document_version = version.into();
        self
    }

    /// Adds a target (`Key`, `Values`).
    pub fn with_target(
        mut self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.targets
            .push((key.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// Sets `InstanceId`.
    pub fn with_instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }

    /// The resource group this association targets, if any.
    pub(crate) fn resource_group(&self) -> Option<&str> {
        self.targets
            .iter()
            .find(|(key, _)| key == "resource-groups:Name")
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

/// When an association's `LastExecutionDate` (in `ListAssociations` and `DescribeAssociation`)
/// moves; AWS does not document which, so the simulator models both.
///
/// Either way it looks at every execution, visible or not: the association's date moves when
/// it runs, independently of when the execution becomes visible in
/// `DescribeAssociationExecutions` (visibility lag). A client that polls executions only when
/// `LastExecutionDate` changes can therefore see the date move before the execution shows,
/// and must catch late-visible executions by other means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LastExecutionDateMode {
    /// When a run starts: the newest execution's `CreatedTime`, whatever its status or
    /// visibility.
    Start,
    /// When a run ends (the default): the newest end (`LastExecutionDate`, else
    /// `CreatedTime`) among executions in a final status, visible or not; runs in progress
    /// do not move it.
    #[default]
    End,
}

/// How `ListAssociations`' `LastExecutedAfter` and `LastExecutedBefore` filters compare
/// `LastExecutionDate` with their value. AWS documents neither the comparison nor the value's
/// format (its one public example is `2017-05-01T01:00:00.000Z`), and a public report says
/// some filters were ignored when several were given, so the simulator models each way: a
/// client must count exactly under all three, and may only differ in cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LastExecutedFilter {
    /// `After` keeps dates strictly after the value, `Before` strictly before (the default:
    /// what the names say).
    #[default]
    Strict,
    /// An equal date passes both filters.
    Inclusive,
    /// The filter is validated, then ignored: every association passes it.
    Ignored,
}

/// An association's `Overview`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Overview {
    pub(crate) status: &'static str,
    pub(crate) detailed_status: Option<String>,
    pub(crate) counts: BTreeMap<String, i64>,
}

/// Parses `{Failed=2,Success=3}` leniently into counts.
pub(crate) fn parse_resource_counts(text: &str) -> BTreeMap<String, i64> {
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

/// What an exporter watching the simulator should converge to.
///
/// Maps are sparse: only non-zero counts appear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroundTruth {
    /// Per association id: visible executions in a final status, counted by status.
    pub executions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per association id: visible executions not yet in a final status.
    pub in_progress: BTreeMap<String, u64>,
    /// Per association id: (alarm name, state) -> visible final executions that triggered it.
    pub triggered_alarms: BTreeMap<String, BTreeMap<(String, String), u64>>,
    /// Per association id: visible final executions without `LastExecutionDate`.
    pub without_end_time: BTreeMap<String, u64>,
    /// Per association id: the non-successful targets (status other than `Success`) of
    /// visible final executions, by (`Status`, `DetailedStatus`; the status when it has none).
    pub targets: BTreeMap<String, BTreeMap<(String, String), u64>>,
}

/// Sort key of an execution: newest `CreatedTime` first, ties by `ExecutionId`.
pub(crate) type ExecutionKey = (Reverse<i64>, String);

/// One association with its executions.
pub(crate) struct AssociationState {
    pub(crate) meta: SimAssociation,
    pub(crate) details: AssociationDetails,
    /// `AssociationVersion`: 1 when created, +1 per update.
    pub(crate) version: u32,
    /// Tags (`ListTagsForResource`).
    pub(crate) tags: BTreeMap<String, String>,
    /// When it was added, on the simulator's clock (epoch milliseconds).
    pub(crate) added_ms: i64,
    /// Executions in response order: newest `CreatedTime` first, ties by `ExecutionId`.
    pub(crate) executions: BTreeMap<ExecutionKey, SimExecution>,
    /// `ExecutionId` -> `CreatedTime`, to find an execution's key.
    created_by_id: HashMap<String, i64>,
    /// `ExecutionId` -> the `AssociationVersion` it ran (the version when first added).
    execution_versions: HashMap<String, u32>,
}

impl AssociationState {
    pub(crate) fn new(meta: SimAssociation, details: AssociationDetails, added_ms: i64) -> Self {
        AssociationState {
            meta,
            details,
            version: 1,
            tags: BTreeMap::new(),
            added_ms,
            executions: BTreeMap::new(),
            created_by_id: HashMap::new(),
            execution_versions: HashMap::new(),
        }
    }

    /// The `AssociationVersion` an execution ran.
    pub(crate) fn execution_version(&self, execution_id: &str) -> u32 {
        self.execution_versions
            .get(execution_id)
            .copied()
            .unwrap_or(self.version)
    }

    /// `LastExecutionDate` under `mode`, if there is one, from every execution (visible or
    /// not: the association moves when it runs, not when the run becomes visible).
    pub(crate) fn last_execution_ms(&self, mode: LastExecutionDateMode) -> Option<i64> {
        let all = self.executions.values();
        match mode {
            LastExecutionDateMode::Start => all.map(|e| e.created_ms).max(),
            LastExecutionDateMode::End => all
                .filter(|e| is_final_status(&e.status))
                .map(|e| e.last_execution_ms.unwrap_or(e.created_ms))
                .max(),
        }
    }

    /// `LastSuccessfulExecutionDate`, if there is one, from every execution (visible or not,
    /// as `LastExecutionDate`).
    pub(crate) fn last_success_ms(&self) -> Option<i64> {
        self.executions
            .values()
            .filter(|e| e.status == "Success")
            .map(|e| e.last_execution_ms.unwrap_or(e.created_ms))
            .max()
    }

    /// `Overview`, driven by the newest execution by `CreatedTime`, visible or not (`Pending`
    /// without one).
    pub(crate) fn overview(&self) -> Overview {
        let Some(latest) = self.executions.values().next() else {
            return Overview {
                status: "Pending",
                detailed_status: None,
                counts: BTreeMap::new(),
            };
        };
        let status = match latest.status.as_str() {
            "Success" | "Skipped" => "Success",
            "Failed" | "TimedOut" | "Cancelled" => "Failed",
            _ => "Pending",
        };
        let detailed = latest.detailed_status.as_deref().unwrap_or(&latest.status);
        let mut counts = latest
            .resource_counts_text()
            .as_deref()
            .map(parse_resource_counts)
            .unwrap_or_default();
        if counts.is_empty() {
            counts.insert(latest.status.clone(), 1);
        }
        Overview {
            status,
            detailed_status: Some(detailed.to_owned()),
            counts,
        }
    }

    /// Inserts an execution, replacing one with the same id.
    pub(crate) fn insert(&mut self, execution: SimExecution) {
        self.execution_versions
            .entry(execution.execution_id.clone())
            .or_insert(self.version);
        if let Some(old) = self
            .created_by_id
            .insert(execution.execution_id.clone(), execution.created_ms)
        {
            self.executions
                .remove(&(Reverse(old), execution.execution_id.clone()));
        }
        self.executions.insert(
            (
                Reverse(execution.created_ms),
                execution.execution_id.clone(),
            ),
            execution,
        );
    }

    /// Removes an execution by id.
    pub(crate) fn take(&mut self, execution_id: &str) -> Option<SimExecution> {
        let created = self.created_by_id.remove(execution_id)?;
        self.executions
            .remove(&(Reverse(created), execution_id.to_owned()))
    }
}

impl GroundTruth {
    /// Adds what an exporter should count from one association's visible executions.
    pub(crate) fn add(&mut self, id: &str, association: &AssociationState) {
        for e in association.executions.values().filter(|e| e.visible) {
            if e.omit.contains(&"ExecutionId") || e.omit.contains(&"CreatedTime") {
                continue;
            }
            if !is_final_status(&e.status) || e.omit.contains(&"Status") {
                *self.in_progress.entry(id.to_owned()).or_default() += 1;
                continue;
            }
            *self
                .executions
                .entry(id.to_owned())
                .or_default()
                .entry(e.status.clone())
                .or_default() += 1;
            for alarm in &e.triggered_alarms {
                *self
                    .triggered_alarms
                    .entry(id.to_owned())
                    .or_default()
                    .entry(alarm.clone())
                    .or_default() += 1;
            }
            for t in e.targets.iter().filter(|t| t.status != "Success") {
                let detailed = t
                    .detailed_status
                    .clone()
                    .unwrap_or_else(|| t.status.clone());
                *self
                    .targets
                    .entry(id.to_owned())
                    .or_default()
                    .entry((t.status.clone(), detailed))
                    .or_default() += 1;
            }
            // No usable end time: none at all, or one before the start.
            if e.last_execution_ms.is_none_or(|end| end < e.created_ms) {
                *self.without_end_time.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_filter_times_with_millis() {
        assert_eq!(
            format_filter_time(1_550_505_827_119),
            "2019-02-18T16:03:47.119Z"
        );
        assert_eq!(format_filter_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_filter_time(4_102_444_800_000),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn resource_counts_parse_leniently() {
        let counts = parse_resource_counts("{Failed=2, Success=3,bogus,x=y}");
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["Failed"], 2);
        assert_eq!(counts["Success"], 3);
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid_shaped(&uuid_like(u128::MAX)));
        assert!(is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2F-1a2b3c4d5e6f"));
        assert!(!is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6"));
        assert!(!is_uuid_shaped("3f2a9c1e-7b4d-4e8a-9c2f1a2b-3c4d5e6f"));
        assert!(!is_uuid_shaped("g f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f"));
    }
}
