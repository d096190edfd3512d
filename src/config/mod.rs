//! Configuration file: its types, and loading it (strict validation, located errors).
//!
//! The file is YAML. It is first parsed into a small, location-annotated tree
//! ([`yaml::Node`], by [`yaml::parse`]) and then validated key by key, so that every error can name the
//! offending key and point at the exact line and column of the offending value
//! (or of the key itself, for unknown and duplicate keys).
//!
//! - this file: the types of a validated configuration, [`load`] and [`parse`];
//! - `defaults.rs`: every default, limit and accepted key;
//! - `validate.rs` (and `validate/`): the checks, key by key, and their messages;
//! - `summary.rs`: [`Config::summary`], for `--config.check`;
//! - `duration.rs`: Prometheus durations ([`parse_duration`], [`format_duration`]).
//!
//! To add a setting: add a field to [`Config`]; in `defaults.rs` a `*_SETTING` constant with
//! its default and limits, a name in `KEYS` and the default in `Config::defaults`; an arm in
//! `Validator::config`; and a line in [`Config::summary`].

mod defaults;
mod duration;
mod summary;
mod validate;

use std::path::Path;
use std::time::Duration;

use crate::yaml;

pub use defaults::DEFAULT_CONFIG_FILE;
pub use duration::{format_duration, parse_duration};

/// Validated exporter configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Associations to watch, in file order; IDs are normalized to lower case.
    pub associations: Vec<AssociationConfig>,
    /// Time between two polls.
    pub poll_interval: Duration,
    /// How far back the first poll reaches when there is no saved state.
    pub initial_lookback: Duration,
    /// How far behind the newest `CreatedTime` seen each poll re-reads.
    pub late_visibility_window: Duration,
    /// How far back a poll resuming old saved or retired state reads at most; `None`: as far
    /// as `initial_lookback` ([`Config::max_backfill`]).
    pub max_backfill: Option<Duration>,
    /// Rate of the single token bucket shared by all SSM calls.
    pub api_requests_per_second: f64,
    /// Maximum number of SSM requests in flight.
    pub max_concurrent_requests: usize,
    /// Timeout of one SSM request attempt.
    pub request_timeout: Duration,
    /// Attempts per SSM request (first try included).
    pub api_max_attempts: u32,
    /// AWS region; `None` means "from the AWS config chain".
    pub region: Option<String>,
    /// Where to persist per-association state across restarts; `None` keeps it in memory only.
    /// A relative path is relative to the config file's directory.
    pub state_file: Option<std::path::PathBuf>,
    /// How often changed state is written to `state_file` (and then published on /metrics).
    pub state_save_interval: Duration,
    /// How long the state of an association removed from the list is kept, so that adding it
    /// back resumes its counters instead of counting its look-back again.
    pub removed_association_retention: Duration,
    /// What `/metrics` exports per association (the `metrics:` section).
    pub metrics: MetricsConfig,
    /// Per-target detail of failed executions (the `target_detail:` section).
    pub target_detail: TargetDetailConfig,
    /// Selectors of associations found by listing them (`discovery:`); empty: none.
    pub discovery: Vec<Selector>,
    /// How long the tags of a listed association are cached (for selectors with `tags`).
    pub discovery_interval: Duration,
    /// Regions to watch; empty: `region`, or the region of the AWS chain.
    pub regions: Vec<String>,
    /// Accounts to watch; empty: the exporter's own credentials only.
    pub accounts: Vec<AccountConfig>,
    /// An association is polled at least this often even when the listing shows no change.
    pub full_sweep_interval: Duration,
    /// At most this many sweep polls per account and region per `poll_interval`: the sweep's
    /// period stretches past `full_sweep_interval` when its N associations need more.
    pub full_sweep_max_polls_per_interval: usize,
    /// The longest spacing of the re-polls of an association with executions in progress.
    pub pending_recheck_max_interval: Duration,
    /// How often every association is listed; in between, a listing asks only for those whose
    /// `LastExecutionDate` moved (`LastExecutedAfter`). Zero: every listing is full.
    pub full_listing_interval: Duration,
    /// The `events:` section: SQS queues of State Manager events that trigger polls; `None`:
    /// polling alone.
    pub events: Option<EventsConfig>,
    /// The config file name as given, for messages and the landing page.
    pub source: String,
}

impl Config {
    /// `max_backfill`, or `initial_lookback` when it is not set.
    pub fn max_backfill(&self) -> Duration {
        self.max_backfill.unwrap_or(self.initial_lookback)
    }
}

/// One `discovery:` selector: every given condition must hold; an empty selector selects
/// every association.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    /// Full match on `AssociationName` (an association without a name never matches).
    pub association_name: Option<Pattern>,
    /// Full match on the document name (`Name`).
    pub document_name: Option<Pattern>,
    /// Exact tag matches (every key present with this value).
    pub tags: std::collections::BTreeMap<String, String>,
}

impl Selector {
    /// Whether the association's name and document match; tags are checked apart (they cost
    /// a call).
    pub fn matches_names(&self, association_name: Option<&str>, document_name: &str) -> bool {
        self.association_name
            .as_ref()
            .is_none_or(|p| association_name.is_some_and(|n| p.is_match(n)))
            && self
                .document_name
                .as_ref()
                .is_none_or(|p| p.is_match(document_name))
    }

    /// Whether `tags` (the association's) hold every tag of the selector.
    pub fn matches_tags(&self, tags: &[(String, String)]) -> bool {
        self.tags
            .iter()
            .all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v))
    }

    /// A short description for logs and the `selector` label: its index and conditions.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.association_name {
            parts.push(format!("association_name={}", p.source()));
        }
        if let Some(p) = &self.document_name {
            parts.push(format!("document_name={}", p.source()));
        }
        for (k, v) in &self.tags {
            parts.push(format!("tag:{k}={v}"));
        }
        if parts.is_empty() {
            "everything".to_string()
        } else {
            parts.join(",")
        }
    }
}

/// A regular expression matched against a whole string (anchored at both ends).
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source` to match whole strings only.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        Ok(Pattern {
            source: source.to_string(),
            regex: regex::Regex::new(&format!("^(?:{source})$"))?,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

/// One `accounts:` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountConfig {
    /// The role to assume in the account; `None`: the exporter's own credentials.
    pub role_arn: Option<RoleArn>,
    /// `ExternalId` sent with `AssumeRole`.
    pub external_id: Option<String>,
    /// Regions for this account; empty: the top-level `regions`.
    pub regions: Vec<String>,
}

/// A validated IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleArn {
    pub arn: String,
    pub account_id: String,
}

/// The AWS partitions a role ARN may name.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

impl RoleArn {
    /// Parses a role ARN, or says what is wrong with it (a lower-case reason, without the ARN).
    pub fn parse(arn: &str) -> Result<RoleArn, String> {
        const SHAPE: &str = "arn:aws:iam::<12-digit account ID>:role/<name>";
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
            let count = parts.len();
            let plural = if count == 1 { "" } else { "s" };
            return Err(format!(
                "expected {SHAPE} (6 parts separated by colons), got {count} part{plural}"
            ));
        };
        if *prefix != "arn" {
            return Err(format!("expected {SHAPE}, starting with arn:"));
        }
        if !PARTITIONS.contains(partition) {
            return Err(format!(
                "unknown partition {partition:?}; expected one of {}",
                PARTITIONS.join(", ")
            ));
        }
        if *service != "iam" {
            return Err(format!(
                "the service must be iam, got {service:?} (expected {SHAPE})"
            ));
        }
        if !region.is_empty() {
            return Err(format!(
                "IAM ARNs have no region, got {region:?} (expected {SHAPE})"
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the account ID must be 12 digits, got {account:?}"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(format!("expected a role (role/<name>), got {resource:?}"));
        };
        // `role/<path/>name`: the path's parts and the name are non-empty and use IAM's
        // characters; the name is at most 64 characters, the path at most 512.
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
        let (path, name) = match path_and_name.rsplit_once('/') {
            Some((path, name)) => (Some(path), name),
            None => (None, path_and_name),
        };
        if name.is_empty() || name.len() > 64 || !name.bytes().all(valid) {
            return Err(format!(
                "{name:?} is not a valid role name (1 to 64 letters, digits and +=,.@_-)"
            ));
        }
        if let Some(path) = path.filter(|path| {
            path.len() + 2 > 512
                || path
                    .split('/')
                    .any(|part| part.is_empty() || !part.bytes().all(valid))
        }) {
            return Err(format!(
                "{path:?} is not a valid role path (parts of letters, digits and +=,.@_- separated by /)"
            ));
        }
        Ok(RoleArn {
            arn: arn.to_string(),
            account_id: account.to_string(),
        })
    }
}

/// One account in one region: what the exporter builds a client, a request budget and a
/// listing for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeConfig {
    /// `None`: the exporter's own credentials.
    pub role_arn: Option<RoleArn>,
    pub external_id: Option<String>,
    /// `None`: the region of the AWS chain.
    pub region: Option<String>,
}

impl Config {
    /// Every (account, region) to watch, in config order, without repeats: each account's
    /// regions (its own, or `regions`, or `region`, or the chain's).
    pub fn scopes(&self) -> Vec<ScopeConfig> {
        let own = [AccountConfig::default()];
        let accounts: &[AccountConfig] = if self.accounts.is_empty() {
            &own
        } else {
            &self.accounts
        };
        let mut scopes: Vec<ScopeConfig> = Vec::new();
        for account in accounts {
            let regions: Vec<Option<String>> = if !account.regions.is_empty() {
                account.regions.iter().cloned().map(Some).collect()
            } else if !self.regions.is_empty() {
                self.regions.iter().cloned().map(Some).collect()
            } else {
                vec![self.region.clone()]
            };
            for region in regions {
                let scope = ScopeConfig {
                    role_arn: account.role_arn.clone(),
                    external_id: account.external_id.clone(),
                    region,
                };
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        scopes
    }
}

/// The `metrics:` section: which per-association series `/metrics` exports. The defaults keep
/// an association within the series budget of the README's "Cardinality" section; the richest
/// setting exports what 0.1 did. Only the rendering depends on it (the state keeps every
/// number per status), so it can change on reload without losing anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub duration_histogram: DurationHistogram,
    pub last_execution_status: LastExecutionStatus,
    /// Watermark, poll delay, poll errors and abandoned executions per association; when false,
    /// the same families without `association_id`, aggregated over the associations.
    pub per_association_internals: bool,
}

impl MetricsConfig {
    /// Every per-association family at its finest (the shape 0.1 exported).
    pub const RICHEST: MetricsConfig = MetricsConfig {
        duration_histogram: DurationHistogram::PerStatus,
        last_execution_status: LastExecutionStatus::PerStatus,
        per_association_internals: true,
    };
}

/// The `target_detail:` section: whether and how much the exporter reads of the targets of
/// final executions that did not succeed everywhere (`DescribeAssociationExecutionTargets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetDetailConfig {
    /// Read the non-successful targets of final executions.
    pub enabled: bool,
    /// Most non-successful targets read per execution (the rest is counted as left out).
    pub max_targets_per_execution: usize,
    /// Export `ssm_association_failing_target` (one series per failing target).
    pub failing_targets_gauge: bool,
    /// Most `ssm_association_failing_target` series per association.
    pub max_failing_targets: usize,
}

/// `metrics.duration_histogram`: the labels of `ssm_association_execution_duration_seconds`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DurationHistogram {
    /// One histogram per association, every final status together.
    #[default]
    PerAssociation,
    /// One histogram per association and final status.
    PerStatus,
    /// No duration histogram.
    Off,
}

/// `metrics.last_execution_status`: the shape of `ssm_association_last_execution_status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LastExecutionStatus {
    /// One series, labelled with the newest final execution's status, value 1.
    #[default]
    Current,
    /// One series per final status: 1 for the newest final execution's, 0 for the others.
    PerStatus,
}

/// A setting written as one of a few words (`metrics.duration_histogram: per_status`).
pub trait Word: Copy + PartialEq + 'static {
    /// Every value with its word, the default first (in `defaults.rs`).
    const WORDS: &'static [(&'static str, Self)];

    /// The value's word, as the file writes it.
    fn name(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, value)| *value == self)
            .map_or("", |(word, _)| word)
    }
}

/// The `events:` section: where State Manager events (EventBridge rules targeting SQS) are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsConfig {
    /// One reader per queue, in file order, no repeats.
    pub queues: Vec<QueueConfig>,
    /// How long the poll a progress event asks for (a run starting, one instance's change)
    /// waits; a poll of the association that starts meanwhile answers it. An end's poll is
    /// due at once.
    pub progress_poll_delay: Duration,
}

impl EventsConfig {
    /// `queues` with every other key at its default.
    pub fn with_queues(queues: Vec<QueueConfig>) -> EventsConfig {
        EventsConfig {
            queues,
            progress_poll_delay: defaults::PROGRESS_POLL_DELAY_SETTING.default,
        }
    }
}

/// One `events.queues` entry: an SQS queue and the credentials to read it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// `https://sqs.<region>.amazonaws.com/<account>/<name>`, as written.
    pub url: String,
    /// The queue's region and account, from the URL.
    pub region: String,
    pub account_id: String,
    /// The queue's name, from the URL.
    pub name: String,
    /// The role to assume to read it; `None`: the exporter's own credentials.
    pub role_arn: Option<RoleArn>,
    /// `ExternalId` sent with `AssumeRole`.
    pub external_id: Option<String>,
}

/// One watched State Manager association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationConfig {
    /// Association ID, lower case.
    pub id: String,
}

/// A config error, displayed as `{file}:{line}:{column}: {key}: {message}`
/// (see [`crate::yaml::Error`] for the parts left out when they do not apply).
pub type ConfigError = yaml::Error;

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|err| ConfigError::whole_file(&file, format!("cannot read config file: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        ConfigError::whole_file(
            &file,
            format!(
                "config file is not valid UTF-8 (invalid byte at offset {})",
                err.utf8_error().valid_up_to()
            ),
        )
    })?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` is used in messages and as [`Config::source`].
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    validate::config(yaml::parse(text, file)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        let role =
            RoleArn::parse("arn:aws:iam::111111111111:role/ssm-association-exporter").unwrap();
        assert_eq!(role.account_id, "111111111111");
        assert_eq!(
            role.arn,
            "arn:aws:iam::111111111111:role/ssm-association-exporter"
        );
        for ok in [
            "arn:aws-us-gov:iam::111111111111:role/x",
            "arn:aws-cn:iam::111111111111:role/team/app/Reader+=,.@_-1",
        ] {
            assert!(RoleArn::parse(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", "expected arn:aws:iam::<12-digit account ID>:role/<name> (6 parts separated by colons), got 1 part"),
            ("arn:aws:iam:111111111111:role/x", "expected arn:aws:iam::<12-digit account ID>:role/<name> (6 parts separated by colons), got 5 parts"),
            ("ARN:aws:iam::111111111111:role/x", "expected arn:aws:iam::<12-digit account ID>:role/<name>, starting with arn:"),
            ("arn:amazon:iam::111111111111:role/x", "unknown partition \"amazon\"; expected one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc"),
            ("arn:aws:sts::111111111111:role/x", "the service must be iam, got \"sts\" (expected arn:aws:iam::<12-digit account ID>:role/<name>)"),
            ("arn:aws:iam:us-east-1:111111111111:role/x", "IAM ARNs have no region, got \"us-east-1\" (expected arn:aws:iam::<12-digit account ID>:role/<name>)"),
            ("arn:aws:iam::11111111111:role/x", "the account ID must be 12 digits, got \"11111111111\""),
            ("arn:aws:iam::11111111111a:role/x", "the account ID must be 12 digits, got \"11111111111a\""),
            ("arn:aws:iam::111111111111:user/x", "expected a role (role/<name>), got \"user/x\""),
            ("arn:aws:iam::111111111111:role/", "\"\" is not a valid role name (1 to 64 letters, digits and +=,.@_-)"),
            ("arn:aws:iam::111111111111:role/team/", "\"\" is not a valid role name (1 to 64 letters, digits and +=,.@_-)"),
            ("arn:aws:iam::111111111111:role/a b", "\"a b\" is not a valid role name (1 to 64 letters, digits and +=,.@_-)"),
            ("arn:aws:iam::111111111111:role//x", "\"\" is not a valid role path (parts of letters, digits and +=,.@_- separated by /)"),
            ("arn:aws:iam::111111111111:role/a//x", "\"a/\" is not a valid role path (parts of letters, digits and +=,.@_- separated by /)"),
        ];
        for (arn, expected) in cases {
            assert_eq!(RoleArn::parse(arn), Err(expected.to_owned()), "{arn}");
        }
        let long = format!("arn:aws:iam::111111111111:role/{}", "r".repeat(65));
        assert!(RoleArn::parse(&long).is_err());
        let long_path = format!("arn:aws:iam::111111111111:role/{}/x", "p".repeat(511));
        assert!(RoleArn::parse(&long_path).is_err());
    }
}
