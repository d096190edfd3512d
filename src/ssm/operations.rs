//! The SSM operations the exporter calls, read into the project's own types
//! ([`crate::model`]): pages of executions, associations and targets, tags, and the scope's
//! account (STS).

use tokio::time::Instant;

use aws_sdk_ssm::types::{
    AssociationExecutionFilter, AssociationExecutionFilterKey, AssociationFilter,
    AssociationFilterKey, AssociationFilterOperatorType,
};

use super::client::Ssm;
use super::error::{ApiError, ErrorKind};
use crate::model::{
    distinct_alarms, parse_resource_counts, summarize_targets, Execution, ListedAssociation,
    Status, TargetDetail, TriggeredAlarm,
};

/// Every SSM operation the exporter calls, with the IAM action it needs: what the shipped
/// policies must allow (tests compare them). `ListTagsForResource` is called only for
/// `discovery:` selectors with `tags`. STS `GetCallerIdentity` (the own account's ID) needs no
/// permission; `sts:AssumeRole` is in the exporter's own policy when `accounts:` name roles.
pub const SSM_OPERATIONS: &[&str] = &[
    "ListAssociations",
    "DescribeAssociationExecutions",
    "ListTagsForResource",
    "DescribeAssociationExecutionTargets",
];

/// Page size asked for: the API's maximum.
pub const MAX_RESULTS: i32 = 50;

/// One page of `DescribeAssociationExecutions`.
#[derive(Debug, Default)]
pub struct ExecutionPage {
    pub executions: Vec<Execution>,
    pub next_token: Option<String>,
    /// Entries without an ExecutionId or CreatedTime (never seen in practice), skipped.
    pub malformed: usize,
}

/// One page of `DescribeAssociationExecutionTargets`.
#[derive(Debug, Default)]
pub struct TargetPage {
    pub targets: Vec<TargetDetail>,
    pub next_token: Option<String>,
}

/// One page of `ListAssociations`.
#[derive(Debug, Default)]
pub struct AssociationPage {
    pub associations: Vec<ListedAssociation>,
    pub next_token: Option<String>,
    /// Entries without an AssociationId or document name (never seen in practice), skipped.
    pub malformed: usize,
}

impl Ssm {
    /// Reads one page of executions created after `since_ms`. `first_sent` is set to the time
    /// the first attempt went out, if it is still `None`.
    pub async fn execution_page(
        &self,
        association_id: &str,
        since_ms: i64,
        next_token: Option<String>,
        first_sent: &mut Option<Instant>,
    ) -> Result<ExecutionPage, ApiError> {
        let filter = build_filter(
            AssociationExecutionFilterKey::CreatedTime,
            format_filter_time(since_ms),
            AssociationFilterOperatorType::GreaterThan,
        )?;
        self.executions(association_id, filter, next_token, first_sent)
            .await
    }

    /// Reads one execution by its ID (an `ExecutionId EQUAL` filter): the re-check of an
    /// execution that stayed pending after the query window moved past it.
    pub async fn execution_by_id(
        &self,
        association_id: &str,
        execution_id: &str,
        first_sent: &mut Option<Instant>,
    ) -> Result<Option<Execution>, ApiError> {
        let filter = build_filter(
            AssociationExecutionFilterKey::ExecutionId,
            execution_id.to_string(),
            AssociationFilterOperatorType::Equal,
        )?;
        let page = self
            .executions(association_id, filter, None, first_sent)
            .await?;
        Ok(page.executions.into_iter().find(|e| e.id == execution_id))
    }

    async fn executions(
        &self,
        association_id: &str,
        filter: AssociationExecutionFilter,
        next_token: Option<String>,
        first_sent: &mut Option<Instant>,
    ) -> Result<ExecutionPage, ApiError> {
        let output = self
            .call(
                "DescribeAssociationExecutions",
                Some(&self.budget),
                first_sent,
                || {
                    self.client
                        .describe_association_executions()
                        .association_id(association_id)
                        .filters(filter.clone())
                        .max_results(MAX_RESULTS)
                        .set_next_token(next_token.clone())
                        .send()
                },
            )
            .await?;
        let mut page = ExecutionPage {
            next_token: output.next_token().map(str::to_string),
            ..ExecutionPage::default()
        };
        for e in output.association_executions() {
            let (Some(id), Some(created)) = (e.execution_id(), e.created_time()) else {
                page.malformed += 1;
                continue;
            };
            page.executions.push(Execution {
                id: id.to_string(),
                status: Status::parse(e.status().unwrap_or_default()),
                created_ms: round_to_millis(created),
                ended_ms: e.last_execution_date().map(round_to_millis),
                resources: e
                    .resource_count_by_status()
                    .map(parse_resource_counts)
                    .unwrap_or_default(),
                triggered_alarms: distinct_alarms(e.triggered_alarms().iter().map(|a| {
                    TriggeredAlarm {
                        name: a.name().to_string(),
                        state: a.state().as_str().to_string(),
                    }
                })),
            });
        }
        Ok(page)
    }

    /// Reads one page (50) of `ListAssociations`: every association of the scope, or with
    /// `executed_after_ms` only those whose `LastExecutionDate` is after it (the filter
    /// `LastExecutedAfter`, its value as [`format_filter_time`] writes it: AWS documents
    /// neither its format nor whether "after" is strict, so callers leave a margin and keep
    /// the full listing as the truth).
    pub async fn association_page(
        &self,
        next_token: Option<String>,
        executed_after_ms: Option<i64>,
    ) -> Result<AssociationPage, ApiError> {
        let filters = executed_after_ms
            .map(|ms| {
                AssociationFilter::builder()
                    .key(AssociationFilterKey::LastExecutedAfter)
                    .value(format_filter_time(ms))
                    .build()
                    .map(|f| vec![f])
                    .map_err(|e| ApiError {
                        kind: ErrorKind::Permanent,
                        code: "ConstructionFailure".into(),
                        message: e.to_string(),
                    })
            })
            .transpose()?;
        let output = self
            .call("ListAssociations", Some(&self.budget), &mut None, || {
                self.client
                    .list_associations()
                    .set_association_filter_list(filters.clone())
                    .max_results(MAX_RESULTS)
                    .set_next_token(next_token.clone())
                    .send()
            })
            .await?;
        let mut page = AssociationPage {
            next_token: output.next_token().map(str::to_string),
            ..AssociationPage::default()
        };
        for a in output.associations() {
            let (Some(id), Some(document)) = (a.association_id(), a.name()) else {
                page.malformed += 1;
                continue;
            };
            let overview = a.overview().map_or(String::new(), |o| {
                let mut counts: Vec<String> = o
                    .association_status_aggregated_count()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                counts.sort();
                format!(
                    "{}/{}/{}",
                    o.status().unwrap_or_default(),
                    o.detailed_status().unwrap_or_default(),
                    counts.join(",")
                )
            });
            page.associations.push(ListedAssociation {
                id: id.to_ascii_lowercase(),
                name: a.association_name().map(str::to_string),
                document_name: document.to_string(),
                document_version: a.document_version().map(str::to_string),
                association_version: a.association_version().map(str::to_string),
                schedule_expression: a.schedule_expression().map(str::to_string),
                targets: summarize_targets(a.targets().iter().map(|t| {
                    (
                        t.key().unwrap_or_default(),
                        t.values().iter().map(String::as_str).collect(),
                    )
                })),
                last_execution_ms: a.last_execution_date().map(round_to_millis),
                overview,
            });
        }
        Ok(page)
    }

    /// One page of the targets of an execution in target status `status` (a `Status` filter;
    /// `DescribeAssociationExecutionTargets`), `max_results` (1-50) at most.
    pub async fn execution_targets(
        &self,
        association_id: &str,
        execution_id: &str,
        status: &str,
        max_results: i32,
        next_token: Option<String>,
    ) -> Result<TargetPage, ApiError> {
        let filter = aws_sdk_ssm::types::AssociationExecutionTargetsFilter::builder()
            .key(aws_sdk_ssm::types::AssociationExecutionTargetsFilterKey::Status)
            .value(status)
            .build()
            .map_err(|e| ApiError {
                kind: ErrorKind::Permanent,
                code: "ConstructionFailure".into(),
                message: e.to_string(),
            })?;
        let output = self
            .call(
                "DescribeAssociationExecutionTargets",
                Some(&self.budget),
                &mut None,
                || {
                    self.client
                        .describe_association_execution_targets()
                        .association_id(association_id)
                        .execution_id(execution_id)
                        .filters(filter.clone())
                        .max_results(max_results.clamp(1, MAX_RESULTS))
                        .set_next_token(next_token.clone())
                        .send()
                },
            )
            .await?;
        Ok(TargetPage {
            next_token: output.next_token().map(str::to_string),
            targets: output
                .association_execution_targets()
                .iter()
                .map(|t| {
                    let source = t.output_source();
                    TargetDetail {
                        resource_id: t.resource_id().unwrap_or_default().to_string(),
                        resource_type: t.resource_type().unwrap_or_default().to_string(),
                        status: t.status().unwrap_or_default().to_string(),
                        detailed_status: t.detailed_status().unwrap_or_default().to_string(),
                        output_source_type: source
                            .and_then(|s| s.output_source_type())
                            .unwrap_or_default()
                            .to_string(),
                        output_source_id: source
                            .and_then(|s| s.output_source_id())
                            .unwrap_or_default()
                            .to_string(),
                    }
                })
                .collect(),
        })
    }

    /// The tags of an association (`ListTagsForResource`).
    pub async fn association_tags(
        &self,
        association_id: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let output = self
            .call("ListTagsForResource", Some(&self.budget), &mut None, || {
                self.client
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Association)
                    .resource_id(association_id)
                    .send()
            })
            .await?;
        Ok(output
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// The account ID of the scope's credentials (STS `GetCallerIdentity`, which needs no
    /// permission). Not on the SSM request budget.
    pub async fn caller_account(&self) -> Result<String, ApiError> {
        let output = self
            .call("GetCallerIdentity", None, &mut None, || {
                self.sts.get_caller_identity().send()
            })
            .await?;
        output
            .account()
            .map(str::to_string)
            .ok_or_else(|| ApiError {
                kind: ErrorKind::Transient,
                code: "InvalidResponse".into(),
                message: "GetCallerIdentity returned no Account".into(),
            })
    }
}

fn build_filter(
    key: AssociationExecutionFilterKey,
    value: String,
    operator: AssociationFilterOperatorType,
) -> Result<AssociationExecutionFilter, ApiError> {
    AssociationExecutionFilter::builder()
        .key(key)
        .value(value)
        .r#type(operator)
        .build()
        .map_err(|e| ApiError {
            kind: ErrorKind::Permanent,
            code: "ConstructionFailure".into(),
            message: e.to_string(),
        })
}

/// The SDK parses timestamps through an `f64`, so `1550505827.119` can arrive as
/// `...118999958` ns: round to the nearest millisecond.
pub fn round_to_millis(t: &aws_sdk_ssm::primitives::DateTime) -> i64 {
    let nanos = t.as_nanos();
    (nanos + 500_000).div_euclid(1_000_000) as i64
}

/// Formats epoch milliseconds as the filter value SSM documents: `2026-11-26T07:00:00.123Z`.
pub fn format_filter_time(ms: i64) -> String {
    // Clamped to years 1970-9999: never an error, never a fall-back to 1970 for a far date.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis
        ),
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::primitives::DateTime;

    #[test]
    fn filter_time_never_falls_back_to_1970_for_a_far_date() {
        assert_eq!(format_filter_time(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_filter_time(4_102_444_800_000),
            "2100-01-01T00:00:00.000Z"
        );
        assert_eq!(format_filter_time(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn filter_time_has_exactly_three_fraction_digits() {
        assert_eq!(format_filter_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_filter_time(1_550_505_827_119),
            "2019-02-18T16:03:47.119Z"
        );
        assert_eq!(
            format_filter_time(1_795_676_400_005),
            "2026-11-26T07:00:00.005Z"
        );
    }

    #[test]
    fn created_time_read_through_f64_rounds_to_the_right_millisecond() {
        // What the SDK's JSON parser does with 1550505827.119.
        let t = DateTime::from_secs_f64(1_550_505_827.119);
        assert_eq!(round_to_millis(&t), 1_550_505_827_119);
        for ms in [
            1_795_676_400_001i64,
            1_795_676_400_999,
            1_700_000_000_000,
            1_234_567_890_123,
        ] {
            let t = DateTime::from_secs_f64(ms as f64 / 1000.0);
            assert_eq!(round_to_millis(&t), ms);
        }
    }
}
