//! SSM schedule expressions (`rate(...)`, `cron(...)`) to the longest expected gap between runs.
//!
//! State Manager associations run on `rate(N minutes|hours|days)` or on a six-field cron
//! expression `cron(minutes hours day-of-month month day-of-week year)` in UTC, with the
//! Quartz/EventBridge extensions SSM documents: `?` (no value) in day-of-month or day-of-week,
//! `L` (last day of the month, or `5L` the last Thursday), `#` (`THU#2`, the second Thursday),
//! `W` (nearest weekday), day-of-week numbered 1–7 from Sunday, names (`MON`, `JAN`), and
//! `N/step` starts (`0/15`).
//!
//! [`expected_interval`] is what an "overdue" alert needs: the longest gap between two
//! consecutive scheduled runs over the runs after `now` (a schedule that runs on weekdays only
//! has a 3-day gap over the weekend; `THU#2` has 28- and 35-day gaps), so that an association
//! is overdue once its last run is older than that gap plus a grace. Cron matching is
//! delegated to `croner` (maintained, no I/O, supports `L`, `#`, `W`, `?`, a year field and
//! Quartz weekday numbering); this module only turns SSM's syntax into croner's.
//!
//! Pure: no clock, no I/O; `now_ms` comes from the caller.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// Runs looked at, at most: enough for a schedule every minute to cover [`HORIZON`].
const MAX_RUNS: usize = 20_000;
/// Gaps looked at before stopping (once [`HORIZON`] is covered): a year of a monthly schedule.
const MIN_GAPS: usize = 12;
/// Time covered before stopping (once [`MIN_GAPS`] gaps are seen): more than a week, so that
/// weekday-only and weekend-only schedules show their longest gap.
const HORIZON: Duration = Duration::from_secs(8 * 24 * 3600);

/// The longest gap between consecutive scheduled runs after `now_ms` (Unix milliseconds),
/// looking at the next runs (at least a year of a monthly schedule, at least 8 days of a
/// dense one). `None` when the expression is empty or not understood, or when fewer than two
/// runs are left (a schedule restricted to past years, or to one run).
///
/// ```text
/// rate(30 minutes)          -> 30 min
/// cron(0 2 ? * SUN *)       -> 7 days
/// cron(0 2 ? * MON-FRI *)   -> 3 days (Friday to Monday)
/// cron(0 2 ? * THU#2 *)     -> 35 days (the longest month-to-month gap ahead)
/// ```
pub fn expected_interval(expression: &str, now_ms: i64) -> Option<Duration> {
    let expression = expression.trim();
    if let Some(inner) = strip_call(expression, "rate") {
        return parse_rate(inner);
    }
    let inner = strip_call(expression, "cron")?;
    let cron = parse_cron(inner)?;
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms)?;
    let mut previous: Option<DateTime<Utc>> = None;
    let mut first: Option<DateTime<Utc>> = None;
    let mut longest = Duration::ZERO;
    let mut gaps = 0;
    for run in cron.iter_after(now).take(MAX_RUNS) {
        if let Some(previous) = previous {
            let gap = (run - previous).to_std().ok()?;
            longest = longest.max(gap);
            gaps += 1;
        }
        let start = *first.get_or_insert(run);
        previous = Some(run);
        let covered = (run - start).to_std().unwrap_or_default();
        if gaps >= MIN_GAPS && covered >= HORIZON {
            break;
        }
    }
    (gaps > 0).then_some(longest)
}

/// `name(inner)`, case-insensitive name, spaces allowed inside the parentheses.
fn strip_call<'a>(expression: &'a str, name: &str) -> Option<&'a str> {
    let head = expression.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = expression[name.len()..].trim_start();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.trim())
}

/// `N minute(s)|hour(s)|day(s)`, N ≥ 1.
fn parse_rate(inner: &str) -> Option<Duration> {
    let mut parts = inner.split_whitespace();
    let (Some(number), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = number.parse().ok().filter(|n| *n >= 1)?;
    let unit_seconds = match unit.to_ascii_lowercase().as_str() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds).map(Duration::from_secs)
}

/// SSM's cron fields as croner's seven-field form (seconds first, year last, Quartz weekdays).
fn parse_cron(inner: &str) -> Option<croner::Cron> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    // SSM documents six fields; five (no year) and seven (Quartz, seconds first) are taken too.
    let mut seven: Vec<String> = match fields.len() {
        5 => ["0"]
            .iter()
            .chain(&fields)
            .chain(&["*"])
            .map(|f| f.to_string())
            .collect(),
        6 => ["0"].iter().chain(&fields).map(|f| f.to_string()).collect(),
        7 => fields.iter().map(|f| f.to_string()).collect(),
        _ => return None,
    };
    // croner refuses a bare start with a step ("0/15"); Quartz reads it as start-max/step.
    const MAX: [u32; 7] = [59, 59, 23, 31, 12, 7, 5000];
    for (field, max) in seven.iter_mut().zip(MAX) {
        *field = field
            .split(',')
            .map(|part| match part.split_once('/') {
                Some((start, step))
                    if !start.is_empty() && start.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    format!("{start}-{max}/{step}")
                }
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .build()
        .parse(&seven.join(" "))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;

    /// 2026-01-01T00:00:00Z, a Thursday.
    const NEW_YEAR_2026: i64 = 1_767_225_600_000;

    fn interval(expression: &str) -> Option<u64> {
        expected_interval(expression, NEW_YEAR_2026).map(|d| d.as_secs())
    }

    #[test]
    fn rates_in_every_unit_singular_and_plural() {
        assert_eq!(interval("rate(30 minutes)"), Some(30 * MIN));
        assert_eq!(interval("rate(1 minute)"), Some(MIN));
        assert_eq!(interval("rate(1 hour)"), Some(HOUR));
        assert_eq!(interval("rate(12 hours)"), Some(12 * HOUR));
        assert_eq!(interval("rate(1 day)"), Some(DAY));
        assert_eq!(interval("rate(14 days)"), Some(14 * DAY));
    }

    #[test]
    fn rates_are_the_same_at_any_time_and_for_every_count() {
        for n in 1..=2000u64 {
            for now in [0, NEW_YEAR_2026, NEW_YEAR_2026 + 123_456_789] {
                let got = expected_interval(&format!("rate({n} minutes)"), now);
                assert_eq!(got, Some(Duration::from_secs(n * MIN)), "rate({n} minutes)");
            }
        }
    }

    #[test]
    fn rates_tolerate_case_and_spaces() {
        assert_eq!(interval("  RATE( 2  Hours )  "), Some(2 * HOUR));
        assert_eq!(interval("Rate (3 DAYS)"), Some(3 * DAY));
    }

    #[test]
    fn malformed_rates_are_none() {
        for expression in [
            "rate()",
            "rate(0 minutes)",
            "rate(-5 minutes)",
            "rate(+5 minutes)",
            "rate(1.5 hours)",
            "rate(5)",
            "rate(minutes)",
            "rate(5 weeks)",
            "rate(5 seconds)",
            "rate(5 minutes extra)",
            "rate(5 minutes",
            "rate 5 minutes",
            "rate(99999999999999999999 days)",
            "rate(18446744073709551615 days)",
        ] {
            assert_eq!(interval(expression), None, "{expression}");
        }
    }

    #[test]
    fn empty_and_unknown_expressions_are_none() {
        for expression in [
            "",
            "   ",
            "at(2026-07-07T15:55:00)",
            "cron",
            "cron()",
            "daily",
            "ratex(5 minutes)",
            "cronx(0 2 * * ? *)",
        ] {
            assert_eq!(interval(expression), None, "{expression:?}");
        }
    }

    #[test]
    fn daily_and_hourly_crons() {
        assert_eq!(interval("cron(0 2 * * ? *)"), Some(DAY));
        assert_eq!(interval("cron(0 2 ? * * *)"), Some(DAY));
        assert_eq!(interval("cron(15 * * * ? *)"), Some(HOUR));
        assert_eq!(interval("cron(*/5 * * * ? *)"), Some(5 * MIN));
        assert_eq!(interval("cron(0 0,12 * * ? *)"), Some(12 * HOUR));
        // Uneven hours: 02:00 and 06:00, so the longest gap is 06:00 -> 02:00.
        assert_eq!(interval("cron(0 2,6 * * ? *)"), Some(20 * HOUR));
    }

    #[test]
    fn quartz_step_starts_are_understood() {
        assert_eq!(interval("cron(0/30 * * * ? *)"), Some(30 * MIN));
        assert_eq!(interval("cron(10/20 * * * ? *)"), Some(20 * MIN)); // :10 :30 :50 :10
        assert_eq!(interval("cron(0 0/6 * * ? *)"), Some(6 * HOUR));
        assert_eq!(interval("cron(0 2 1/1 * ? *)"), Some(DAY));
    }

    #[test]
    fn weekly_crons_with_names_and_quartz_numbers() {
        assert_eq!(interval("cron(0 2 ? * SUN *)"), Some(7 * DAY));
        assert_eq!(interval("cron(0 2 ? * sun *)"), Some(7 * DAY));
        // 1 is Sunday, 7 is Saturday (Quartz): SUN,SAT and 1,7 are the same weekend pair.
        assert_eq!(interval("cron(0 2 ? * 1 *)"), Some(7 * DAY));
        assert_eq!(interval("cron(0 2 ? * SUN,SAT *)"), Some(6 * DAY));
        assert_eq!(interval("cron(0 2 ? * 1,7 *)"), Some(6 * DAY));
        // Weekdays only: Friday 02:00 to Monday 02:00.
        assert_eq!(interval("cron(0 2 ? * MON-FRI *)"), Some(3 * DAY));
        assert_eq!(interval("cron(0 2 ? * 2-6 *)"), Some(3 * DAY));
    }

    #[test]
    fn business_hours_crons_see_the_weekend() {
        // Every 5 minutes 09:00-17:55 on weekdays: Friday 17:55 to Monday 09:00.
        assert_eq!(
            interval("cron(0/5 9-17 ? * MON-FRI *)"),
            Some(2 * DAY + 15 * HOUR + 5 * MIN)
        );
    }

    #[test]
    fn nth_and_last_weekday_of_the_month() {
        // Second Thursday, 2026: Jan 8, Feb 12, Mar 12, Apr 9, May 14, Jun 11, Jul 9, Aug 13,
        // Sep 10, Oct 8, Nov 12, Dec 10, Jan 14 2027: gaps of 28 and 35 days.
        assert_eq!(interval("cron(0 2 ? * THU#2 *)"), Some(35 * DAY));
        assert_eq!(interval("cron(0 2 ? * 5#2 *)"), Some(35 * DAY));
        // Last Friday: Jan 30, Feb 27, Mar 27, Apr 24, May 29, ...: gaps of 28 and 35 days.
        assert_eq!(interval("cron(0 2 ? * 6L *)"), Some(35 * DAY));
    }

    #[test]
    fn last_day_and_fixed_day_of_the_month() {
        // Jan 31, Feb 28, Mar 31, ...: longest gap 31 days.
        assert_eq!(interval("cron(0 2 L * ? *)"), Some(31 * DAY));
        assert_eq!(interval("cron(0 2 15 * ? *)"), Some(31 * DAY));
        // Quarterly on the 1st: Jan-Apr 90, Apr-Jul 91, Jul-Oct 92, Oct-Jan 92 days.
        assert_eq!(interval("cron(0 2 1 1,4,7,10 ? *)"), Some(92 * DAY));
        // Nearest weekday to the 15th, monthly.
        let w = interval("cron(0 2 15W * ? *)").unwrap();
        assert!((28 * DAY..=33 * DAY).contains(&w), "{w}");
    }

    #[test]
    fn the_longest_gap_depends_on_what_lies_ahead() {
        // Monthly on the 1st, seen from just after New Year: covers a year, so 31 days.
        assert_eq!(interval("cron(0 0 1 * ? *)"), Some(31 * DAY));
        // Yearly: 365 or 366 days.
        let yearly = interval("cron(0 0 1 1 ? *)").unwrap();
        assert!(yearly == 365 * DAY || yearly == 366 * DAY, "{yearly}");
    }

    #[test]
    fn year_ranges_past_and_single_runs_are_none() {
        assert_eq!(interval("cron(0 2 1 1 ? 2020)"), None, "only in the past");
        assert_eq!(interval("cron(0 2 1 1 ? 2027)"), None, "one run left");
        assert_eq!(interval("cron(0 2 1 1 ? 2027-2028)"), Some(365 * DAY));
        // Daily until the end of 2026, seen from its last day: one run left.
        let dec31 = NEW_YEAR_2026 + 364 * 86_400_000;
        assert_eq!(expected_interval("cron(0 2 * * ? 2026)", dec31), None);
        assert_eq!(
            expected_interval("cron(0 2 * * ? 2026)", dec31 - 86_400_000),
            Some(Duration::from_secs(DAY))
        );
    }

    #[test]
    fn five_and_seven_field_forms_are_taken() {
        assert_eq!(interval("cron(0 2 * * ?)"), Some(DAY));
        assert_eq!(interval("cron(0 0 2 ? * SUN *)"), Some(7 * DAY));
    }

    #[test]
    fn malformed_crons_are_none() {
        for expression in [
            "cron(0 2 * *)",
            "cron(0 2 * * ? * * *)",
            "cron(60 2 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 2 32 * ? *)",
            "cron(0 2 * 13 ? *)",
            "cron(0 2 ? * FUNDAY *)",
            "cron(0 2 ? * THU#6 *)",
            "cron(a b c d e f)",
            "cron(0 2 * * ? *",
        ] {
            assert_eq!(interval(expression), None, "{expression}");
        }
    }

    #[test]
    fn the_answer_does_not_depend_on_the_minute_asked() {
        // From any minute of a week, a weekly schedule is 7 days and a daily one 1 day.
        for minute in (0..7 * 24 * 60).step_by(37) {
            let now = NEW_YEAR_2026 + minute * 60_000;
            assert_eq!(
                expected_interval("cron(30 4 ? * WED *)", now),
                Some(Duration::from_secs(7 * DAY))
            );
            assert_eq!(
                expected_interval("cron(30 4 * * ? *)", now),
                Some(Duration::from_secs(DAY))
            );
        }
    }

    #[test]
    fn timestamps_out_of_range_are_none() {
        assert_eq!(expected_interval("cron(0 2 * * ? *)", i64::MAX), None);
        assert_eq!(
            expected_interval("rate(1 day)", i64::MIN),
            Some(Duration::from_secs(DAY))
        );
    }
}
