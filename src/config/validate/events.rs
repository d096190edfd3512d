//! The `events:` section: the SQS queues State Manager events are read from (queue URLs, the
//! role to read each with).

use super::super::defaults::{EVENTS_KEYS, PROGRESS_POLL_DELAY_SETTING, QUEUE_KEYS};
use super::super::{ConfigError, EventsConfig, QueueConfig};
use super::scopes::is_region;
use super::{Entry, MappingList, Validator};
use crate::yaml::{Node, Raw};

/// `events.queues`, its items checked by [`Validator::queue`].
const QUEUES: MappingList<'static> = MappingList {
    item: "a queue",
    keys: QUEUE_KEYS,
    hint: "url is required",
};

/// The shape of a queue URL, for messages.
const URL_SHAPE: &str = "https://sqs.<region>.amazonaws.com/<12-digit account ID>/<queue name>";

impl Validator<'_> {
    /// The `events:` section: a mapping with the required key `queues`.
    pub(super) fn events(&self, key: &str, node: &Node) -> Result<EventsConfig, ConfigError> {
        let mut queues = None;
        let mut progress_poll_delay = PROGRESS_POLL_DELAY_SETTING.default;
        for Entry {
            name, path, value, ..
        } in self.section(key, node, EVENTS_KEYS)?
        {
            match name.as_str() {
                "queues" => queues = Some(self.queues(&path, value)?),
                "progress_poll_delay" => {
                    progress_poll_delay =
                        self.duration(&path, value, &PROGRESS_POLL_DELAY_SETTING)?;
                }
                // `section` only yields names listed in EVENTS_KEYS.
                _ => unreachable!("{name} is not in EVENTS_KEYS"),
            }
        }
        match queues {
            Some(queues) => Ok(EventsConfig {
                queues,
                progress_poll_delay,
            }),
            None => Err(self.error(
                node,
                key,
                "required key is missing: set queues (the SQS queues EventBridge sends State Manager events to), or remove events to poll only",
            )),
        }
    }

    /// The `events.queues` list: no queue twice.
    fn queues(&self, key: &str, node: &Node) -> Result<Vec<QueueConfig>, ConfigError> {
        let same_url = |a: &QueueConfig, b: &QueueConfig| a.url == b.url;
        self.mapping_list(key, node, &QUEUES, same_url, |entries| {
            let item = entries.first().map(|e| (e.key, e.path.clone()));
            let mut url = None;
            let (mut role_arn, mut external_id, mut external_id_key) = (None, None, None);
            for Entry {
                name,
                path,
                key,
                value,
            } in entries
            {
                match name.as_str() {
                    "url" => url = Some(self.queue_url(&path, value)?),
                    "role_arn" => role_arn = Some(self.role_arn(&path, value)?),
                    "external_id" => {
                        external_id = Some(self.external_id(&path, value)?);
                        external_id_key = Some((key, path));
                    }
                    // `mapping_list` only yields names listed in QUEUE_KEYS.
                    _ => unreachable!("{name} is not in QUEUE_KEYS"),
                }
            }
            if let (Some((node, path)), None) = (&external_id_key, &role_arn) {
                return Err(self.error(
                    node,
                    path,
                    "external_id needs role_arn (it is sent with AssumeRole)",
                ));
            }
            let Some((url, region, account_id, name)) = url else {
                // The item has at least one key (an empty one is `{}`: no entries, no key).
                let (at, path) = item.map_or((None, String::new()), |(k, p)| (Some(k), p));
                let item_key = path.rsplit_once('.').map_or(path.as_str(), |(i, _)| i);
                let message =
                    format!("required key url is missing; expected the queue's URL ({URL_SHAPE})");
                return Err(match at {
                    Some(at) => self.error(at, item_key, message),
                    None => self.error(node, key, message),
                });
            };
            Ok(QueueConfig {
                url,
                region,
                account_id,
                name,
                role_arn,
                external_id,
            })
        })
    }

    /// A queue URL: the URL, its region, account and queue name.
    fn queue_url(
        &self,
        key: &str,
        node: &Node,
    ) -> Result<(String, String, String, String), ConfigError> {
        match &node.value {
            Raw::Str(s) => match parse_queue_url(s) {
                Ok((region, account, name)) => Ok((s.clone(), region, account, name)),
                Err(reason) => Err(self.error(node, key, reason)),
            },
            _ => Err(self.wrong_kind(
                node,
                key,
                format_args!("an SQS queue URL ({URL_SHAPE})"),
                "",
            )),
        }
    }
}

/// The region, account ID and queue name of an SQS queue URL
/// (`https://sqs.<region>.amazonaws.com[.cn]/<account>/<name>`), or what is wrong with it.
pub(in crate::config) fn parse_queue_url(url: &str) -> Result<(String, String, String), String> {
    let shape = || format!("{url:?} is not an SQS queue URL (expected {URL_SHAPE})");
    let rest = url.strip_prefix("https://").ok_or_else(shape)?;
    let (host, path) = rest.split_once('/').ok_or_else(shape)?;
    let region = host
        .strip_prefix("sqs.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .ok_or_else(shape)?;
    if !is_region(region) {
        return Err(format!(
            "{region:?} in the queue URL is not a known AWS region name (expected {URL_SHAPE})"
        ));
    }
    let (account, name) = path.split_once('/').ok_or_else(shape)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the account ID in the queue URL must be 12 digits, got {account:?}"
        ));
    }
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if base.is_empty() || name.len() > 80 || !base.bytes().all(valid) {
        return Err(format!(
            "{name:?} is not a valid queue name (1 to 80 letters, digits, - and _, ending in .fifo for a FIFO queue)"
        ));
    }
    Ok((region.to_owned(), account.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::super::{defaults, parse};
    use super::*;

    /// With events, the listing and the sweep default to longer intervals; a value the file
    /// sets is kept, and without events the usual defaults hold.
    #[test]
    fn events_lengthen_the_listing_and_sweep_defaults_unless_set() {
        let id = "associations: [8dfe3659-4309-493a-8755-0123456789ab]\n";
        let events =
            "events:\n  queues:\n    - url: https://sqs.eu-west-1.amazonaws.com/111111111111/q\n";
        let plain = parse(id, "x.yaml").unwrap();
        assert_eq!(plain.events, None);
        let with = parse(&format!("{id}{events}"), "x.yaml").unwrap();
        assert_eq!(with.poll_interval, defaults::EVENTS_POLL_INTERVAL);
        assert_eq!(
            with.full_sweep_interval,
            defaults::EVENTS_FULL_SWEEP_INTERVAL
        );
        assert!(with.poll_interval > plain.poll_interval);
        assert!(with.full_sweep_interval > plain.full_sweep_interval);
        let set = parse(
            &format!("{id}{events}poll_interval: 30s\nfull_sweep_interval: 2h\n"),
            "x.yaml",
        )
        .unwrap();
        assert_eq!(set.poll_interval, std::time::Duration::from_secs(30));
        assert_eq!(
            set.full_sweep_interval,
            std::time::Duration::from_secs(7200)
        );
        let queue = &with.events.unwrap().queues[0];
        assert_eq!(
            (
                queue.region.as_str(),
                queue.account_id.as_str(),
                queue.name.as_str()
            ),
            ("eu-west-1", "111111111111", "q")
        );
    }

    #[test]
    fn queue_urls() {
        assert_eq!(
            parse_queue_url("https://sqs.eu-west-1.amazonaws.com/111111111111/ssm-events"),
            Ok((
                "eu-west-1".into(),
                "111111111111".into(),
                "ssm-events".into()
            ))
        );
        assert_eq!(
            parse_queue_url("https://sqs.cn-north-1.amazonaws.com.cn/111111111111/q.fifo"),
            Ok(("cn-north-1".into(), "111111111111".into(), "q.fifo".into()))
        );
        let shape = |u: &str| format!("{u:?} is not an SQS queue URL (expected {URL_SHAPE})");
        for bad in [
            "http://sqs.eu-west-1.amazonaws.com/111111111111/q",
            "https://sqs.eu-west-1.amazonaws.com",
            "https://sqs.eu-west-1.amazonaws.com/111111111111",
            "https://queue.amazonaws.com/111111111111/q",
            "https://sqs.eu-west-1.example.com/111111111111/q",
        ] {
            assert_eq!(parse_queue_url(bad), Err(shape(bad)), "{bad}");
        }
        assert_eq!(
            parse_queue_url("https://sqs.eu-west-1.amazonaws.com/1111/q"),
            Err("the account ID in the queue URL must be 12 digits, got \"1111\"".into())
        );
        assert_eq!(
            parse_queue_url("https://sqs.eu-wets-1.amazonaws.com/111111111111/q"),
            Err(format!("\"eu-wets-1\" in the queue URL is not a known AWS region name (expected {URL_SHAPE})"))
        );
        for name in ["", ".fifo", "a/b", "a b", &"q".repeat(81)] {
            let url = format!("https://sqs.eu-west-1.amazonaws.com/111111111111/{name}");
            assert!(parse_queue_url(&url).is_err(), "{url}");
        }
    }
}
