//! Durations in Prometheus syntax (`1h30m`, `500ms`): parsing and formatting.

use std::fmt::Write as _;
use std::time::Duration;

const MS_PER_SECOND: u64 = 1_000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;

/// Accepted units in the required (descending) order, with their size in milliseconds.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];
const UNIT_LIST: &str = "ms, s, m, h, d, w, y";

/// Formats a duration in Prometheus syntax using days, hours, minutes, seconds
/// and milliseconds (`1h30m`, `500ms`, `90d`); zero is `0s`. Sub-millisecond
/// parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut rest = d.as_millis();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS.iter().skip(2) {
        let size = u128::from(*size);
        let count = rest / size;
        if count > 0 {
            let _ = write!(out, "{count}{unit}");
            rest %= size;
        }
    }
    out
}

/// Parses a Prometheus-style duration: one or more `<integer><unit>` parts with
/// units `y`, `w`, `d`, `h`, `m`, `s`, `ms` in descending order, each at most
/// once (`1h30m`, `500ms`, `0s`). A year is 365 days. The error is a
/// lower-case explanation without the input itself.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration; expected e.g. 60s or 1h30m".to_owned());
    }
    if s.starts_with('-') {
        return Err("negative durations are not allowed".to_owned());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("a unit is required, e.g. {s}s"));
    }
    if s.contains('.') {
        return Err(
            "fractions are not allowed; use a smaller unit instead, e.g. 1500ms rather than 1.5s"
                .to_owned(),
        );
    }

    let mut rest = s;
    let mut total: u64 = 0;
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after_digits) = rest.split_at(digits_end);
        let unit_end = after_digits
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after_digits.len());
        let (unit, after_unit) = after_digits.split_at(unit_end);

        if unit.is_empty() {
            return Err(match after_digits.chars().next() {
                None => format!("missing unit after {digits}; expected one of {UNIT_LIST}"),
                Some(c) => format!("unexpected character {c:?}"),
            });
        }
        if digits.is_empty() {
            return Err(format!("expected a number before the unit {unit:?}"));
        }
        let Some(index) = DURATION_UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {unit:?}; expected one of {UNIT_LIST}"
            ));
        };
        if let Some(previous) = previous {
            if index <= previous {
                return Err(format!(
                    "units must appear at most once and in descending order (y, w, d, h, m, s, ms), but {unit:?} follows {:?}",
                    DURATION_UNITS[previous].0
                ));
            }
        }
        let too_large = || "duration is too large".to_owned();
        let count: u64 = digits.parse().map_err(|_| too_large())?;
        total = count
            .checked_mul(DURATION_UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .filter(|ms| i64::try_from(*ms).is_ok())
            .ok_or_else(too_large)?;
        previous = Some(index);
        rest = after_unit;
    }
    Ok(Duration::from_millis(total))
}
