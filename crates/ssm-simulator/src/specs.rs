//! The text forms of the simulator's settings, for the `ssm-simulator` command line:
//! Prometheus durations, queue faults, queue outages, event routes and queue URLs.

use std::time::Duration;

use crate::queues::{EventRoute, QueueFaults, QueueOutage};

/// A queue outage at a time ([`parse_queue_outage`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledOutage {
    /// How the queue fails.
    pub kind: QueueOutage,
    /// When the outage starts, from the simulator's start.
    pub after: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// Splits `[URL=]SPEC`: the URL when the text starts with one.
pub fn split_target(text: &str) -> (Option<&str>, &str) {
    if text.starts_with("http://") || text.starts_with("https://") {
        match text.split_once('=') {
            Some((url, spec)) => (Some(url), spec),
            None => (Some(text), ""),
        }
    } else {
        (None, text)
    }
}

/// Parses `lose=F,duplicate=F,malformed=F,delay=D,reorder,seed=N`.
pub fn parse_queue_faults(spec: &str) -> Result<QueueFaults, String> {
    let mut faults = QueueFaults::default();
    for item in spec.split(',').filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let fraction = || match value.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
            _ => Err(format!(
                "{key}: expected a fraction from 0 to 1, got {value:?}"
            )),
        };
        faults = match key {
            "lose" => faults.lose(fraction()?),
            "duplicate" => faults.duplicate(fraction()?),
            "malformed" => faults.malformed(fraction()?),
            "delay" => faults.delay(parse_duration(value)?),
            "reorder" if value.is_empty() => faults.reorder(),
            "seed" => faults.seed(value.parse().map_err(|_| format!("seed: {value:?}"))?),
            _ => return Err(format!("unknown event fault {item:?}")),
        };
    }
    Ok(faults)
}

/// Parses `error|reset|throttled,after=D,for=D`.
pub fn parse_queue_outage(spec: &str) -> Result<ScheduledOutage, String> {
    let mut items = spec.split(',');
    let kind = match items.next().unwrap_or_default() {
        "error" => QueueOutage::ServerError,
        "reset" => QueueOutage::ResetConnection,
        "throttled" => QueueOutage::Throttled,
        other => {
            return Err(format!(
                "unknown outage {other:?}: error, reset or throttled"
            ))
        }
    };
    let mut outage = ScheduledOutage {
        kind,
        after: Duration::ZERO,
        length: Duration::ZERO,
    };
    for item in items {
        match item.split_once('=') {
            Some(("after", d)) => outage.after = parse_duration(d)?,
            Some(("for", d)) => outage.length = parse_duration(d)?,
            _ => return Err(format!("unknown outage setting {item:?}")),
        }
    }
    if outage.length.is_zero() {
        return Err("an outage needs for=DURATION".into());
    }
    Ok(outage)
}

/// Parses `ACCOUNT/REGION=URL` (`*` for any).
pub fn parse_event_route(text: &str) -> Result<EventRoute, String> {
    let (scope, url) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ACCOUNT/REGION=URL"))?;
    let (account, region) = scope
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected ACCOUNT/REGION=URL"))?;
    let mut route = EventRoute::to(url);
    if account != "*" {
        route = route.account(account);
    }
    if region != "*" {
        route = route.region(region);
    }
    Ok(route)
}

/// (account, region, name) of `https://sqs.<region>.amazonaws.com/<account>/<name>`.
pub fn split_queue_url(url: &str) -> Option<(String, String, String)> {
    let rest = url.strip_prefix("https://sqs.")?;
    let (region, path) = rest.split_once(".amazonaws.com/")?;
    let (account, name) = path.split_once('/')?;
    let valid = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !region.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| (account.to_owned(), region.to_owned(), name.to_owned()))
}

/// Parses a Prometheus-style duration such as `50m` or `1h30m` (units `ms`, `s`, `m`, `h`,
/// `d`, `w`, `y`; a year is 365 days).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u64)] = &[
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let invalid = || format!("invalid duration {text:?}; expected e.g. 50m or 1h30m");
    let mut rest = text;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let letters = rest[digits..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(rest.len(), |n| digits + n);
        let count: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit = UNITS
            .iter()
            .find(|(name, _)| *name == &rest[digits..letters])
            .ok_or_else(invalid)?;
        total = count
            .checked_mul(unit.1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(invalid)?;
        rest = &rest[letters..];
    }
    Ok(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("50m"), Ok(Duration::from_secs(3000)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "5", "m", "5x", "1.5h", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_queue_specs() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/q";
        assert_eq!(
            split_target(&format!("{url}=lose=0.5")),
            (Some(url), "lose=0.5")
        );
        assert_eq!(split_target("lose=0.5"), (None, "lose=0.5"));
        assert_eq!(
            parse_queue_faults("lose=0.5,duplicate=0.1,malformed=1,delay=2s,reorder,seed=7"),
            Ok(QueueFaults::default()
                .lose(0.5)
                .duplicate(0.1)
                .malformed(1.0)
                .delay(Duration::from_secs(2))
                .reorder()
                .seed(7))
        );
        for bad in ["lose=2", "lose", "reorder=1", "jitter=1", "delay=x"] {
            assert!(parse_queue_faults(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_queue_outage("throttled,after=1m,for=30s"),
            Ok(ScheduledOutage {
                kind: QueueOutage::Throttled,
                after: Duration::from_secs(60),
                length: Duration::from_secs(30),
            })
        );
        assert!(parse_queue_outage("reset").is_err(), "needs for=");
        assert!(parse_queue_outage("down,for=1s").is_err());
        assert_eq!(
            parse_event_route(&format!("222222222222/*={url}")),
            Ok(EventRoute::to(url).account("222222222222"))
        );
        assert!(parse_event_route("222222222222=x").is_err());
        assert_eq!(
            split_queue_url(url),
            Some(("123456789012".into(), "us-east-1".into(), "q".into()))
        );
        assert_eq!(
            split_queue_url("https://sqs.us-east-1.amazonaws.com/1/q"),
            None
        );
    }
}
