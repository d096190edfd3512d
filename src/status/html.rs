//! The status page's HTML: summary, filter, one page of associations, failing targets; every
//! string from AWS escaped.

use std::fmt::Write as _;

use super::urls::{percent_encode, target_output_url};
use super::{EventsView, LastEvent, Query, Row, Selection, Snapshot};

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
    events_html(&mut out, &snapshot.events, snapshot.now_ms);
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
        row_html(
            &mut out,
            row,
            snapshot.now_ms,
            snapshot.events.last.get(&row.id),
        );
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

/// Whether events are on, and each queue's state.
fn events_html(out: &mut String, events: &EventsView, now_ms: i64) {
    if !events.enabled {
        out.push_str("<p id=\"events\" class=\"id\">Events: off (polling only).</p>\n");
        return;
    }
    out.push_str("<div class=\"summary\" id=\"events\">");
    for q in &events.queues {
        let class = match q.state {
            "receiving" => "ok",
            "failing" => "bad",
            _ => "warn",
        };
        let _ = write!(
            out,
            "<div class=\"card {class} queue\"><b>{}</b>events queue ",
            q.state
        );
        escape_into(out, &q.url);
        if let Some(ms) = q.last_receive_ms {
            let _ = write!(out, "<br>last receive {}", ago(now_ms, ms));
        }
        if let Some(error) = &q.last_error {
            out.push_str("<br><span class=\"err\">");
            escape_into(out, error);
            out.push_str("</span>");
        }
        out.push_str("</div>");
    }
    out.push_str("</div>\n");
}

fn row_html(out: &mut String, row: &Row, now_ms: i64, last_event: Option<&LastEvent>) {
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
    if let Some(event) = last_event {
        let _ = write!(
            out,
            "<br><span class=\"event\" title=\"{}\">event {} ({}): {}</span>",
            format_time(event.time_ms),
            ago(now_ms, event.received_ms),
            event.detail_type,
            event.outcome
        );
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::fixtures::*;
    use super::super::render_json;
    use super::*;
    use crate::model::FinalStatus;

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
}
