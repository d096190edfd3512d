//! The status page (`/`) and its JSON (`/api/v1/associations`, `/api/v1/associations/{id}`):
//! which associations fail, are overdue or cannot be polled, and for a failed newest execution
//! which targets failed and why.
//!
//! Everything is rendered from a [`Snapshot`] of the published numbers (what `/metrics` shows):
//! no AWS call is ever made for a page. Every string that came from AWS (names, documents,
//! statuses, resource IDs, error messages) is escaped for HTML; the JSON is written by
//! `serde_json`. The page is plain server-rendered HTML with inline CSS and a few lines of
//! inline JavaScript (the filter box submits as one types); no external assets.

use std::fmt::Write as _;

use prometheus::Registry;
use serde_json::{json, Map, Value};

use crate::model::FinalStatus;
use crate::names;
use crate::store::{Exposed, RecentExecution, Store, TargetDetail};

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
            .is_some_and(|n| is_failure(n.status.name()));
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
            .filter(|r| is_failure(&r.status) && r.created_ms >= now_ms - DAY_MS)
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

fn is_failure(status: &str) -> bool {
    status == FinalStatus::Failed.name() || status == FinalStatus::TimedOut.name()
}

/// The counts at the top of the page, over every association (not only the filtered ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub failing: usize,
    pub overdue: usize,
    pub polling_errors: usize,
}

/// A copy of the published numbers of every association, sorted failing first, then by name.
pub struct Snapshot {
    pub now_ms: i64,
    pub rows: Vec<Row>,
    pub credentials: Vec<Credentials>,
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

/// `application/x-www-form-urlencoded` decoding (`+` is a space); invalid UTF-8 is replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL paths and queries).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The AWS console page of an association.
pub fn association_console_url(region: &str, id: &str) -> String {
    let region = percent_encode(region);
    format!(
        "https://{region}.console.aws.amazon.com/systems-manager/state-manager/{}/description?region={region}",
        percent_encode(id)
    )
}

/// The AWS console page of a Run Command command (a target's output), when the target has one.
pub fn target_output_url(region: &str, target: &TargetDetail) -> Option<String> {
    if target.output_source_type != "RunCommand" || target.output_source_id.is_empty() {
        return None;
    }
    let region = percent_encode(region);
    Some(format!(
        "https://{region}.console.aws.amazon.com/systems-manager/run-command/{}?region={region}",
        percent_encode(&target.output_source_id)
    ))
}

/// Epoch milliseconds as `2026-11-27 13:01:25Z` (UTC).
fn format_time(ms: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| ms.to_string())
}

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

/// How long ago, coarsely: `42s`, `5m`, `3h`, `2d`.
fn ago(now_ms: i64, ms: i64) -> String {
    let s = (now_ms - ms).max(0) / 1000;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#1b1f24;max-width:100%}\
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin-top:2em}\
.summary{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:.4em .8em;min-width:8em}\
.card b{display:block;font-size:1.5em}.bad{background:#ffebe9;border-color:#ff8182}\
.warn{background:#fff8c5;border-color:#d4a72c}.ok{background:#dafbe1;border-color:#4ac26b}\
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:.9em}\
th,td{border-bottom:1px solid #d0d7de;padding:.3em .4em;text-align:left;vertical-align:top;\
overflow-wrap:anywhere;word-break:break-word}\
th{background:#f6f8fa;word-break:normal;overflow-wrap:normal}td.n{text-align:right}\
tr.failing>td:first-child{border-left:4px solid #cf222e}\
.id{color:#57606a;font-size:.85em;font-family:ui-monospace,monospace}\
.s-Failed,.s-TimedOut,.err{color:#cf222e;font-weight:600}.s-Success{color:#1a7f37}\
.targets td{background:#fff5f5}.targets ul{margin:.2em 0;padding-left:1.2em}\
form{margin:.8em 0}input[type=search]{width:28em;max-width:90%;padding:.3em}\
.pages a,.pages span{margin-right:.8em}pre{white-space:pre-wrap;overflow-wrap:anywhere}";

/// The status page: summary, filter, one page of associations, then `footer` (the links to
/// the endpoints and the effective configuration, as HTML).
pub fn render_html(snapshot: &Snapshot, query: &Query, footer: &str) -> String {
    let summary = snapshot.summary();
    let selection = snapshot.select(query);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>SSM Association Exporter</title><style>",
    );
    out.push_str(STYLE);
    out.push_str("</style></head>\n<body>\n<h1>SSM Association Exporter</h1>\n");
    let _ = write!(
        out,
        "<div class=\"summary\" id=\"summary\">\
         <div class=\"card\"><b id=\"total\">{}</b>associations</div>\
         <div class=\"card {}\"><b id=\"failing\">{}</b>failing (newest run Failed or TimedOut)</div>\
         <div class=\"card {}\"><b id=\"overdue\">{}</b>overdue</div>\
         <div class=\"card {}\"><b id=\"poll-errors\">{}</b>with polling errors</div>",
        summary.total,
        if summary.failing > 0 { "bad" } else { "ok" },
        summary.failing,
        if summary.overdue > 0 { "warn" } else { "ok" },
        summary.overdue,
        if summary.polling_errors > 0 { "warn" } else { "ok" },
        summary.polling_errors,
    );
    for c in &snapshot.credentials {
        let _ = write!(
            out,
            "<div class=\"card {}\"><b>{}</b>credentials {}/{}</div>",
            if c.valid { "ok" } else { "bad" },
            if c.valid { "valid" } else { "rejected" },
            escape(&c.account_id),
            escape(&c.region),
        );
    }
    out.push_str("</div>\n");
    let _ = write!(
        out,
        "<form id=\"filter\" method=\"get\" action=\"/\"><input type=\"search\" name=\"q\" value=\"{}\" \
         placeholder=\"Filter by name, ID, document, account or region\" aria-label=\"Filter\"> \
         <button type=\"submit\">Filter</button></form>\n\
         <script>(function(){{var f=document.getElementById('filter'),t;\
         f.q.addEventListener('input',function(){{clearTimeout(t);t=setTimeout(function(){{f.submit()}},500)}});\
         if(f.q.value){{f.q.focus();f.q.setSelectionRange(f.q.value.length,f.q.value.length)}}}})()</script>\n",
        escape(&query.q)
    );
    pager(&mut out, query, &selection, snapshot.rows.len());
    out.push_str(
        "<table id=\"associations\"><colgroup><col style=\"width:20%\"><col style=\"width:12%\">\
         <col style=\"width:9%\"><col style=\"width:11%\"><col style=\"width:12%\"><col style=\"width:9%\">\
         <col style=\"width:6%\"><col style=\"width:6%\"><col style=\"width:15%\"></colgroup>\n\
         <thead><tr><th>Association</th><th>Document</th><th>Schedule</th><th>Account / region</th>\
         <th>Newest run</th><th>Last success</th><th title=\"Failed or TimedOut runs created in the last 24 h, among the kept recent runs\">Failures 24 h</th>\
         <th>In progress</th><th>Polling</th></tr></thead>\n<tbody>\n",
    );
    for row in &selection.rows {
        row_html(&mut out, row, snapshot.now_ms);
    }
    if selection.rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\">No association matches.</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
    pager(&mut out, query, &selection, snapshot.rows.len());
    let _ = write!(
        out,
        "<p class=\"id\">Failures 24 h counts among the last {} non-successful runs kept per association. \
         Overdue: the newest run is older than the schedule's longest gap plus 10 % of it (at least 1 h), \
         as the SSMAssociationOverdue alert. Rendered {} from the exporter's memory; no AWS call is made for this page.</p>",
        crate::store::RECENT_EXECUTIONS,
        format_time(snapshot.now_ms)
    );
    out.push('\n');
    out.push_str(footer);
    out.push_str("</body></html>\n");
    out
}

fn pager(out: &mut String, query: &Query, selection: &Selection<'_>, total: usize) {
    let _ = write!(
        out,
        "<p class=\"pages\"><span>{} of {} associations</span><span>page {} of {}</span>",
        selection.matching, total, selection.page, selection.pages
    );
    if selection.page > 1 {
        let _ = write!(
            out,
            "<a href=\"{}\">first</a><a href=\"{}\" rel=\"prev\">previous</a>",
            escape(&query.link(1)),
            escape(&query.link(selection.page - 1))
        );
    }
    if selection.page < selection.pages {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"next\">next</a><a href=\"{}\">last</a>",
            escape(&query.link(selection.page + 1)),
            escape(&query.link(selection.pages))
        );
    }
    out.push_str("</p>\n");
}

fn row_html(out: &mut String, row: &Row, now_ms: i64) {
    let e = &row.exposed;
    let _ = write!(
        out,
        "<tr class=\"association{}\" data-id=\"{}\"><td><a href=\"{}\">",
        if row.failing { " failing" } else { "" },
        escape(&row.id),
        escape(&row.console_url()),
    );
    if row.name().is_empty() {
        out.push_str("<i>(no name)</i>");
    } else {
        escape_into(out, row.name());
    }
    let _ = write!(
        out,
        "</a><br><a class=\"id\" href=\"/api/v1/associations/{}\">{}</a></td><td>",
        percent_encode(&row.id),
        escape(&row.id)
    );
    escape_into(out, row.document());
    out.push_str("</td><td>");
    escape_into(out, row.schedule());
    out.push_str("</td><td>");
    escape_into(out, &row.account_id);
    out.push_str("<br>");
    escape_into(out, &row.region);
    out.push_str("</td><td>");
    match &e.newest {
        Some(n) => {
            let _ = write!(
                out,
                "<span class=\"s-{0}\">{0}</span>{1}<br><span title=\"{2}\">{3}</span>",
                n.status.name(),
                if row.overdue {
                    " <span class=\"err\">overdue</span>"
                } else {
                    ""
                },
                format_time(n.created_ms),
                ago(now_ms, n.created_ms)
            );
        }
        None => out.push_str("none yet"),
    }
    out.push_str("</td><td>");
    match e.last_success_ms {
        Some(ms) => {
            let _ = write!(
                out,
                "<span title=\"{}\">{}</span>",
                format_time(ms),
                ago(now_ms, ms)
            );
        }
        None => out.push_str("never seen"),
    }
    let _ = write!(
        out,
        "</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td>",
        if row.failures_24h > 0 { " err" } else { "" },
        row.failures_24h,
        e.in_progress
    );
    if !e.polled {
        out.push_str("not polled yet");
    } else if e.poll_success {
        out.push_str("ok");
        if let Some(ms) = e.last_poll_success_ms {
            let _ = write!(out, " ({})", ago(now_ms, ms));
        }
    } else {
        out.push_str("<span class=\"err\">failing</span>");
        if let Some((code, message)) = &e.last_error {
            out.push_str("<br><b>");
            escape_into(out, code);
            out.push_str("</b>: ");
            escape_into(out, message);
        }
    }
    out.push_str("</td></tr>\n");
    if let Some(execution) = row.failing_targets() {
        if execution.targets.is_empty() && execution.targets_left_out == 0 {
            return;
        }
        let _ = write!(
            out,
            "<tr class=\"targets\"><td colspan=\"9\">Failing targets of run <span class=\"id\">{}</span>:<ul>",
            escape(&execution.id)
        );
        for t in &execution.targets {
            out.push_str("<li><span class=\"id\">");
            escape_into(out, &t.resource_id);
            let _ = write!(
                out,
                "</span> <span class=\"s-{0}\">{0}</span>",
                escape(&t.status)
            );
            if !t.detailed_status.is_empty() && t.detailed_status != t.status {
                out.push_str(" (");
                escape_into(out, &t.detailed_status);
                out.push(')');
            }
            if let Some(url) = target_output_url(&row.region, t) {
                let _ = write!(out, " <a href=\"{}\">output</a>", escape(&url));
            }
            out.push_str("</li>");
        }
        if execution.targets_left_out > 0 {
            let _ = write!(
                out,
                "<li>and {} more not read</li>",
                execution.targets_left_out
            );
        }
        out.push_str("</ul></td></tr>\n");
    }
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

fn row_json(row: &Row) -> Map<String, Value> {
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
        .map(|r| Value::Object(row_json(r)))
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
    let mut map = row_json(row);
    let recent: Vec<Value> = row
        .exposed
        .recent
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "status": r.status,
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
    use super::*;
    use crate::model::{AssociationInfo, ScopeKey};
    use crate::store::{Live, Newest};
    use crate::tracker::Tracker;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn exposed(name: &str, status: FinalStatus, age_ms: i64) -> Exposed {
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

    fn store(rows: Vec<(&str, &str, Exposed)>) -> Store {
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

    fn snapshot(store: &Store) -> Snapshot {
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

    fn failed_recent() -> RecentExecution {
        RecentExecution {
            id: "exec-1".into(),
            status: "Failed".into(),
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
    fn strings_from_the_api_are_escaped_in_html_and_exact_in_json() {
        let script = "<script>alert(1)</script>";
        let mut e = exposed(script, FinalStatus::Failed, 60_000);
        e.info.as_mut().unwrap().document_name = "Doc'\"&".into();
        e.newest.as_mut().unwrap().alarms = vec![crate::model::TriggeredAlarm {
            name: "<alarm>".into(),
            state: "ALARM".into(),
        }];
        e.recent = vec![failed_recent()].into();
        e.poll_success = false;
        e.last_error = Some(("<code>".into(), "<img src=x onerror=alert(1)>".into()));
        let store = store(vec![("a<b>\"c", "us-east-1", e)]);
        let snap = snapshot(&store);
        let html = render_html(&snap, &Query::parse(Some("q=%3Cscript")), "");
        assert!(!html.contains(script), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            html.contains("value=\"&lt;script\""),
            "the filter box is escaped too"
        );
        assert!(html.contains("Doc&#39;&quot;&amp;"));
        assert!(html.contains("i-0123&lt;b&gt;"));
        assert!(html.contains("Failed: exit code 1 &amp; &quot;quoted&quot;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>\"c"));
        assert!(html.contains("data-id=\"a&lt;b&gt;&quot;c\""));
        assert!(html.contains("/api/v1/associations/a%3Cb%3E%22c"));

        let json: Value = serde_json::from_str(&render_json(&snap, &Query::default())).unwrap();
        let row = &json["associations"][0];
        assert_eq!(row["name"], script);
        assert_eq!(row["id"], "a<b>\"c");
        assert_eq!(row["failing_targets"][0]["resource_id"], "i-0123<b>");
        assert_eq!(row["last_error"]["message"], "<img src=x onerror=alert(1)>");
        assert_eq!(row["newest"]["alarms"][0]["name"], "<alarm>");
    }

    #[test]
    fn a_300_character_unicode_name_renders_whole() {
        let name: String = "Ünïcødé-名前-🚀-".chars().cycle().take(300).collect();
        assert_eq!(name.chars().count(), 300);
        let store = store(vec![(
            "id-1",
            "us-east-1",
            exposed(&name, FinalStatus::Success, 1000),
        )]);
        let snap = snapshot(&store);
        let html = render_html(&snap, &Query::parse(None), "");
        assert!(html.contains(&name));
        assert!(html.contains("table-layout:fixed") && html.contains("overflow-wrap:anywhere"));
        let json: Value = serde_json::from_str(&render_json(&snap, &Query::default())).unwrap();
        assert_eq!(json["associations"][0]["name"], name.as_str());
        let filtered = snap.select(&Query::parse(Some("q=%E5%90%8D%E5%89%8D")));
        assert_eq!(filtered.matching, 1, "percent-encoded UTF-8 filter");
    }

    #[test]
    fn failing_targets_link_to_the_console_and_the_detail_lists_recent_runs() {
        let mut e = exposed("failing", FinalStatus::Failed, 60_000);
        let mut old = failed_recent();
        old.id = "exec-0".into();
        old.created_ms = NOW - 25 * HOUR;
        let mut timed_out = failed_recent();
        timed_out.id = "exec-t".into();
        timed_out.status = "TimedOut".into();
        let mut ok = failed_recent();
        ok.status = "Success".into();
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
