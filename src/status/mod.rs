//! The status page (`/`) and its JSON (`/api/v1/associations`, `/api/v1/associations/{id}`):
//! which associations fail, are overdue or cannot be polled, and for a failed newest execution
//! which targets failed and why.
//!
//! Everything is rendered from a [`Snapshot`] of the published numbers (what `/metrics` shows):
//! no AWS call is ever made for a page. Every string that came from AWS (names, documents,
//! statuses, resource IDs, error messages) is escaped for HTML; the JSON is written by
//! `serde_json`. The page is plain server-rendered HTML with inline CSS and a few lines of
//! inline JavaScript (the filter box submits as one types); no external assets.
//!
//! `html` renders the page, `json` the API, [`urls`] builds every link to the AWS console
//! (also the one in the poller's per-target log line); this file is the page's model.

mod html;
mod json;
pub mod urls;

use prometheus::Registry;

use crate::model::FinalStatus;
use crate::names;
use crate::store::{Exposed, RecentExecution, Store};

pub use html::{escape, render_html};
pub use json::{render_json, render_one_json};
pub use urls::{association_console_url, percent_decode, percent_encode, target_output_url};

/// Associations per page, on the page and in the JSON list.
pub const PAGE_SIZE: usize = 100;
/// "Failures in the last 24 h" counts the kept recent executions created this recently.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The shipped `SSMAssociationOverdue` alert's grace: 10 % of the schedule's gap, at least 1 h.
const OVERDUE_MIN_GRACE_SECONDS: f64 = 3600.0;

/// Whether the credentials of one account and region work (`credentials_valid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub account_id: String,
    pub region: String,
    pub valid: bool,
}

/// The credentials state per account and region, read from the exporter's own
/// `ssm_association_exporter_credentials_valid` gauge in `registry`.
pub fn credentials_from(registry: &Registry) -> Vec<Credentials> {
    let mut out = Vec::new();
    for family in registry.gather() {
        if family.name() != names::CREDENTIALS_VALID {
            continue;
        }
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            out.push(Credentials {
                account_id: label("account_id"),
                region: label("region"),
                valid: metric.get_gauge().value() != 0.0,
            });
        }
    }
    out.sort_by(|a, b| (&a.account_id, &a.region).cmp(&(&b.account_id, &b.region)));
    out
}

/// One association as the page shows it.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub account_id: String,
    pub region: String,
    pub exposed: Exposed,
    /// The newest final execution Failed or TimedOut.
    pub failing: bool,
    /// The newest execution is older than the schedule allows (as `SSMAssociationOverdue`).
    pub overdue: bool,
    /// Failed or TimedOut executions created in the last 24 h, among the kept recent ones.
    pub failures_24h: u64,
    /// Lower-cased name, for sorting and filtering.
    sort_name: String,
}

impl Row {
    fn new(id: String, account_id: String, region: String, exposed: Exposed, now_ms: i64) -> Row {
        let failing = exposed
            .newest
            .as_ref()
            .is_some_and(|n| is_failure(n.status));
        let overdue = match (&exposed.newest, exposed.schedule_interval_seconds) {
            (Some(newest), Some(interval)) => {
                let grace = (interval * 0.1).max(OVERDUE_MIN_GRACE_SECONDS);
                (now_ms - newest.created_ms) as f64 / 1000.0 > interval + grace
            }
            _ => false,
        };
        let failures_24h = exposed
            .recent
            .iter()
            .filter(|r| is_failure(r.status) && r.created_ms >= now_ms - DAY_MS)
            .count() as u64;
        let sort_name = exposed
            .info
            .as_ref()
            .map(|i| i.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(&id)
            .to_lowercase();
        Row {
            id,
            account_id,
            region,
            exposed,
            failing,
            overdue,
            failures_24h,
            sort_name,
        }
    }

    pub fn name(&self) -> &str {
        self.exposed
            .info
            .as_ref()
            .map(|i| i.name.as_str())
            .unwrap_or("")
    }

    fn document(&self) -> &str {
        self.exposed
            .info
            .as_ref()
            .map(|i| i.document_name.as_str())
            .unwrap_or("")
    }

    fn schedule(&self) -> &str {
        self.exposed
            .info
            .as_ref()
            .map(|i| i.schedule_expression.as_str())
            .unwrap_or("")
    }

    /// The failing targets of the newest execution, when it failed.
    fn failing_targets(&self) -> Option<&RecentExecution> {
        if !self.failing {
            return None;
        }
        self.exposed.recent.first()
    }

    fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.sort_name.contains(needle)
            || self.id.to_lowercase().contains(needle)
            || self.document().to_lowercase().contains(needle)
            || self.account_id.contains(needle)
            || self.region.to_lowercase().contains(needle)
    }

    fn console_url(&self) -> String {
        association_console_url(&self.region, &self.id)
    }
}

fn is_failure(status: FinalStatus) -> bool {
    matches!(status, FinalStatus::Failed | FinalStatus::TimedOut)
}

/// The counts at the top of the page, over every association (not only the filtered ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub failing: usize,
    pub overdue: usize,
    pub polling_errors: usize,
}

/// The `events:` input as the page shows it (filled in by `events`, which sits above).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsView {
    /// Whether the configuration has an `events:` section.
    pub enabled: bool,
    pub queues: Vec<QueueView>,
    /// Association ID -> the last State Manager event of it (watched associations only).
    pub last: std::collections::HashMap<String, LastEvent>,
}

/// One `events:` queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueView {
    pub url: String,
    /// `starting`, `receiving` or `failing`.
    pub state: &'static str,
    pub last_receive_ms: Option<i64>,
    /// The last failure (code: message), until a receive succeeds.
    pub last_error: Option<String>,
}

/// The last State Manager event of one association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastEvent {
    /// The `detail_type` label: `association` or `instance_association`.
    pub detail_type: &'static str,
    /// The event's `time`, epoch milliseconds.
    pub time_ms: i64,
    /// When it was handled, epoch milliseconds.
    pub received_ms: i64,
    /// The `outcome` label: `polled` or `poll_failed`.
    pub outcome: &'static str,
    pub queue: String,
}

/// A copy of the published numbers of every association, sorted failing first, then by name.
pub struct Snapshot {
    pub now_ms: i64,
    pub rows: Vec<Row>,
    pub credentials: Vec<Credentials>,
    /// The events input (off unless set after [`Snapshot::take`]).
    pub events: EventsView,
}

impl Snapshot {
    pub fn take(store: &Store, credentials: Vec<Credentials>, now_ms: i64) -> Snapshot {
        let rows = store
            .entries()
            .into_iter()
            .map(|entry| {
                Row::new(
                    entry.id.clone(),
                    entry.scope.account_id.clone(),
                    entry.scope.region.clone(),
                    entry.published(),
                    now_ms,
                )
            })
            .collect();
        Snapshot::from_rows(rows, credentials, now_ms)
    }

    fn from_rows(mut rows: Vec<Row>, credentials: Vec<Credentials>, now_ms: i64) -> Snapshot {
        rows.sort_by(|a, b| {
            b.failing
                .cmp(&a.failing)
                .then_with(|| a.sort_name.cmp(&b.sort_name))
                .then_with(|| a.id.cmp(&b.id))
        });
        Snapshot {
            now_ms,
            rows,
            credentials,
            events: EventsView::default(),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            total: self.rows.len(),
            failing: self.rows.iter().filter(|r| r.failing).count(),
            overdue: self.rows.iter().filter(|r| r.overdue).count(),
            polling_errors: self
                .rows
                .iter()
                .filter(|r| r.exposed.polled && !r.exposed.poll_success)
                .count(),
        }
    }

    /// The page of rows `query` asks for, how many match, and how many pages they fill.
    pub fn select(&self, query: &Query) -> Selection<'_> {
        let needle = query.q.trim().to_lowercase();
        let matching: Vec<&Row> = self.rows.iter().filter(|r| r.matches(&needle)).collect();
        let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
        let page = query.page.clamp(1, pages);
        let rows = matching
            .iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .copied()
            .collect();
        Selection {
            rows,
            matching: matching.len(),
            page,
            pages,
        }
    }

    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }
}

/// One page of the filtered rows.
pub struct Selection<'a> {
    pub rows: Vec<&'a Row>,
    pub matching: usize,
    /// 1-based, within `1..=pages`.
    pub page: usize,
    pub pages: usize,
}

/// `?q=` (a case-insensitive substring of name, ID, document, account or region) and
/// `?page=` (1-based).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub q: String,
    pub page: usize,
}

impl Query {
    /// Parses a URL query string; unknown parameters and bad page numbers are ignored.
    pub fn parse(query: Option<&str>) -> Query {
        let mut out = Query {
            q: String::new(),
            page: 1,
        };
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "q" => out.q = percent_decode(value),
                "page" => out.page = value.parse().unwrap_or(1).max(1),
                _ => {}
            }
        }
        out
    }

    fn link(&self, page: usize) -> String {
        if self.q.is_empty() {
            format!("?page={page}")
        } else {
            format!("?q={}&page={page}", percent_encode(&self.q))
        }
    }
}

#[cfg(test)]
mod fixtures {
    //! Associations, a store and a snapshot for the status page's tests.

    use super::*;
    use crate::model::{AssociationInfo, ScopeKey};
    use crate::store::{Live, Newest, TargetDetail};
    use crate::tracker::Tracker;

    pub const NOW: i64 = 1_800_000_000_000;
    pub const HOUR: i64 = 3_600_000;

    pub fn exposed(name: &str, status: FinalStatus, age_ms: i64) -> Exposed {
        Exposed {
            info: Some(AssociationInfo {
                name: name.to_string(),
                document_name: "AWS-RunPatchBaseline".to_string(),
                schedule_expression: "rate(1 hour)".to_string(),
                ..AssociationInfo::default()
            }),
            newest: Some(Newest {
                status,
                created_ms: NOW - age_ms,
                resources: vec![(status.name().to_string(), 1)],
                alarms: Vec::new(),
            }),
            schedule_interval_seconds: Some(3600.0),
            polled: true,
            poll_success: true,
            last_poll_success_ms: Some(NOW - 1000),
            ..Exposed::default()
        }
    }

    pub fn store(rows: Vec<(&str, &str, Exposed)>) -> Store {
        let store = Store::default();
        for (id, region, exposed) in rows {
            let scope = ScopeKey {
                account_id: "123456789012".to_string(),
                region: region.to_string(),
            };
            let live = Live {
                tracker: Tracker::new(HOUR, 600_000),
                exposed,
            };
            store.insert(id, &scope, live).publish();
        }
        store
    }

    pub fn snapshot(store: &Store) -> Snapshot {
        let credentials = vec![
            Credentials {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                valid: true,
            },
            Credentials {
                account_id: "210987654321".into(),
                region: "eu-west-1".into(),
                valid: false,
            },
        ];
        Snapshot::take(store, credentials, NOW)
    }

    pub fn failed_recent() -> RecentExecution {
        RecentExecution {
            id: "exec-1".into(),
            status: FinalStatus::Failed,
            created_ms: NOW - 60_000,
            ended_ms: Some(NOW - 30_000),
            resources: vec![("Failed".into(), 1), ("Success".into(), 2)],
            targets: vec![TargetDetail {
                resource_id: "i-0123<b>".into(),
                resource_type: "ManagedInstance".into(),
                status: "Failed".into(),
                detailed_status: "Failed: exit code 1 & \"quoted\"".into(),
                output_source_type: "RunCommand".into(),
                output_source_id: "cmd-42".into(),
            }],
            targets_left_out: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::fixtures::*;
    use super::*;

    #[test]
    fn failing_first_then_by_name_and_the_counts() {
        let mut broken = exposed("b-broken", FinalStatus::Success, 60_000);
        broken.poll_success = false;
        broken.last_error = Some(("AccessDenied".into(), "not <allowed>".into()));
        let store = store(vec![
            (
                "id-1",
                "us-east-1",
                exposed("Zeta", FinalStatus::Success, 60_000),
            ),
            (
                "id-2",
                "us-east-1",
                exposed("alpha", FinalStatus::Success, 60_000),
            ),
            (
                "id-3",
                "us-east-1",
                exposed("yankee", FinalStatus::Failed, 60_000),
            ),
            (
                "id-4",
                "us-east-1",
                exposed("charlie", FinalStatus::TimedOut, 60_000),
            ),
            // Older than 1 h + max(10 % of 1 h, 1 h): overdue; Cancelled is not failing.
            (
                "id-5",
                "eu-west-1",
                exposed("delta", FinalStatus::Cancelled, 2 * HOUR + 60_000),
            ),
            ("id-6", "us-east-1", broken),
        ]);
        let snap = snapshot(&store);
        let order: Vec<&str> = snap.rows.iter().map(|r| r.name()).collect();
        assert_eq!(
            order,
            ["charlie", "yankee", "alpha", "b-broken", "delta", "Zeta"]
        );
        assert_eq!(
            snap.summary(),
            Summary {
                total: 6,
                failing: 2,
                overdue: 1,
                polling_errors: 1
            }
        );
        // Just under the grace: not overdue.
        let store = self::store(vec![(
            "id-7",
            "us-east-1",
            exposed("x", FinalStatus::Success, 2 * HOUR - 1000),
        )]);
        assert_eq!(snapshot(&store).summary().overdue, 0);

        let html = render_html(&snap, &Query::parse(None), "<p id=\"footer\">f</p>");
        assert!(html.contains("<b id=\"failing\">2</b>"), "{html}");
        assert!(html.contains("<b id=\"overdue\">1</b>"));
        assert!(html.contains("<b id=\"poll-errors\">1</b>"));
        assert!(html.contains("credentials 210987654321/eu-west-1"));
        assert!(html.contains("<b>rejected</b>"));
        assert!(html.contains("<b>AccessDenied</b>: not &lt;allowed&gt;"));
        assert!(html.contains("<p id=\"footer\">f</p>"));
        let json: Value = serde_json::from_str(&render_json(&snap, &Query::default())).unwrap();
        assert_eq!(json["summary"]["failing"], 2);
        assert_eq!(json["summary"]["overdue"], 1);
        assert_eq!(json["summary"]["polling_errors"], 1);
        assert_eq!(json["associations"][0]["name"], "charlie");
        assert_eq!(
            json["associations"][3]["last_error"]["code"],
            "AccessDenied"
        );
        assert_eq!(json["credentials"][1]["valid"], false);
    }

    #[test]
    fn pages_of_100_with_links_that_keep_the_filter() {
        let names: Vec<(String, String)> = (0..250)
            .map(|i| (format!("id-{i:03}"), format!("web-{i:03}")))
            .collect();
        let store = store(
            names
                .iter()
                .map(|(id, name)| {
                    (
                        id.as_str(),
                        "us-east-1",
                        exposed(name, FinalStatus::Success, 1000),
                    )
                })
                .collect(),
        );
        let snap = snapshot(&store);
        let first = snap.select(&Query::parse(None));
        assert_eq!(
            (first.rows.len(), first.matching, first.pages, first.page),
            (100, 250, 3, 1)
        );
        assert_eq!(first.rows[0].name(), "web-000");
        let last = snap.select(&Query::parse(Some("page=3")));
        assert_eq!((last.rows.len(), last.page), (50, 3));
        assert_eq!(last.rows[0].name(), "web-200");
        // Out of range: clamped; nonsense: page 1.
        assert_eq!(snap.select(&Query::parse(Some("page=99"))).page, 3);
        assert_eq!(snap.select(&Query::parse(Some("page=x"))).page, 1);
        assert_eq!(snap.select(&Query::parse(Some("page=0"))).page, 1);

        let html = render_html(&snap, &Query::parse(Some("q=web+&page=2")), "");
        assert!(html.contains("page 2 of 3"), "{html}");
        assert!(html.contains("href=\"?q=web%20&amp;page=1\" rel=\"prev\""));
        assert!(html.contains("href=\"?q=web%20&amp;page=3\" rel=\"next\""));
        assert_eq!(html.matches("<tr class=\"association").count(), 100);
        let json: Value =
            serde_json::from_str(&render_json(&snap, &Query::parse(Some("page=3")))).unwrap();
        assert_eq!(json["associations"].as_array().unwrap().len(), 50);
        assert_eq!(
            (json["page"].clone(), json["pages"].clone()),
            (3.into(), 3.into())
        );
        assert_eq!(json["matching"], 250);
    }

    #[test]
    fn the_filter_matches_name_id_document_account_and_region_ignoring_case() {
        let mut other_doc = exposed("two", FinalStatus::Success, 1000);
        other_doc.info.as_mut().unwrap().document_name = "Custom-Doc".into();
        let store = store(vec![
            (
                "aaaa-1111",
                "us-east-1",
                exposed("Patch-Linux", FinalStatus::Success, 1000),
            ),
            ("bbbb-2222", "us-east-1", other_doc),
            (
                "cccc-3333",
                "eu-west-1",
                exposed("three", FinalStatus::Success, 1000),
            ),
        ]);
        let snap = snapshot(&store);
        let ids = |q: &str| -> Vec<String> {
            snap.select(&Query::parse(Some(&format!("q={q}"))))
                .rows
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(ids("patch-l"), ["aaaa-1111"]);
        assert_eq!(ids("BBBB"), ["bbbb-2222"]);
        assert_eq!(ids("custom-doc"), ["bbbb-2222"]);
        assert_eq!(ids("EU-WEST"), ["cccc-3333"]);
        assert_eq!(ids("123456789012").len(), 3);
        assert_eq!(ids("%20three%20"), ["cccc-3333"]);
        assert!(ids("nothing").is_empty());
        let html = render_html(&snap, &Query::parse(Some("q=nothing")), "");
        assert!(html.contains("No association matches."));
        assert!(html.contains("0 of 3 associations"));
    }

    #[test]
    fn query_parsing_decodes_form_encoding() {
        assert_eq!(
            Query::parse(Some("q=a+b%2Fc%zz&page=4&x=1")),
            Query {
                q: "a b/c%zz".into(),
                page: 4
            }
        );
        assert_eq!(Query::parse(Some("q=%")).q, "%");
        assert_eq!(Query::parse(None).page, 1);
    }
}
