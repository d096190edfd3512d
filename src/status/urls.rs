//! Percent-encoding and every link to the AWS console the exporter builds (State Manager
//! associations and executions, Run Command outputs).
//!
//! The console's own links have these shapes; they are not an API and may move.

use std::fmt::Write as _;

use crate::store::TargetDetail;

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

/// The console page of an execution's targets (State Manager, association, execution,
/// resources): `https://{region}.console.aws.amazon.com/systems-manager/state-manager/{association}/execution/{execution}/resources?region={region}`.
/// Unlike the page's links, its parts are not percent-encoded (as the log line always had it).
pub fn execution_console_url(region: &str, association_id: &str, execution_id: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/systems-manager/state-manager/{association_id}/execution/{execution_id}/resources?region={region}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_url_names_the_region_association_and_execution() {
        assert_eq!(
            execution_console_url("eu-west-1", "a-1", "e-2"),
            "https://eu-west-1.console.aws.amazon.com/systems-manager/state-manager/a-1/execution/e-2/resources?region=eu-west-1"
        );
    }
}
