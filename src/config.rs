//! Configuration file: loading, strict validation and human-readable summary.
//!
//! The file is YAML. It is first parsed into a small, location-annotated tree
//! ([`yaml::Node`], by [`yaml::parse`]) and then validated key by key, so that every error can name the
//! offending key and point at the exact line and column of the offending value
//! (or of the key itself, for unknown and duplicate keys).
//!
//! To add a setting: add a field to [`Config`], a `*_SETTING` constant with its
//! default and limits in the "Defaults and limits" section, a name in `KEYS`,
//! an arm in `Validator::config`, and a line in [`Config::summary`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::yaml::{self, Node, Raw};

/// Config file used when none is given on the command line.
pub const DEFAULT_CONFIG_FILE: &str = "ssm-association-exporter.yaml";

// ---------------------------------------------------------------------------
// Defaults and limits (the only place where they are defined)
// ---------------------------------------------------------------------------

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration setting: default and inclusive bounds. The `*_text` fields are
/// the bounds as shown in error messages.
struct DurationSetting {
    default: Duration,
    min: Duration,
    min_text: &'static str,
    max: Option<(Duration, &'static str)>,
}

/// An integer setting: default and inclusive bounds.
struct IntSetting {
    default: u64,
    min: u64,
    max: u64,
}

/// A number setting: default, exclusive lower bound 0 and inclusive upper bound.
struct RateSetting {
    default: f64,
    max: f64,
}

const POLL_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: MINUTE,
    min: SECOND,
    min_text: "1s",
    max: None,
};
const INITIAL_LOOKBACK_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((Duration::from_secs(90 * 24 * 60 * 60), "90d")),
};
const LATE_VISIBILITY_WINDOW_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(10 * 60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((DAY, "24h")),
};
const REQUEST_TIMEOUT_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(10),
    min: Duration::from_millis(100),
    min_text: "100ms",
    max: Some((Duration::from_secs(5 * 60), "5m")),
};
const API_REQUESTS_PER_SECOND_SETTING: RateSetting = RateSetting {
    default: 5.0,
    max: 10_000.0,
};
const MAX_CONCURRENT_REQUESTS_SETTING: IntSetting = IntSetting {
    default: 4,
    min: 1,
    max: 256,
};
const API_MAX_ATTEMPTS_SETTING: IntSetting = IntSetting {
    default: 3,
    min: 1,
    max: 10,
};
const STATE_SAVE_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(5),
    min: Duration::from_millis(100),
    min_text: "100ms",
    max: Some((HOUR, "1h")),
};

const REMOVED_ASSOCIATION_RETENTION_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(7 * 24 * 60 * 60),
    min: Duration::ZERO,
    min_text: "0s",
    max: Some((Duration::from_secs(90 * 24 * 60 * 60), "90d")),
};

const DISCOVERY_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: Duration::from_secs(5 * 60),
    min: SECOND,
    min_text: "1s",
    max: Some((DAY, "24h")),
};
const FULL_SWEEP_INTERVAL_SETTING: DurationSetting = DurationSetting {
    default: HOUR,
    min: SECOND,
    min_text: "1s",
    max: Some((Duration::from_secs(7 * 24 * 60 * 60), "7d")),
};

/// The keys of the `metrics:` section, in documentation order.
const METRICS_KEYS: &[&str] = &[
    "duration_histogram",
    "last_execution_status",
    "per_association_internals",
];

/// The keys of the `target_detail:` section, in documentation order.
const TARGET_DETAIL_KEYS: &[&str] = &[
    "enabled",
    "max_targets_per_execution",
    "failing_targets_gauge",
    "max_failing_targets",
];
const MAX_TARGETS_PER_EXECUTION_SETTING: IntSetting = IntSetting {
    default: 50,
    min: 1,
    max: 1000,
};
const MAX_FAILING_TARGETS_SETTING: IntSetting = IntSetting {
    default: 20,
    min: 1,
    max: 1000,
};

/// The keys of a `discovery:` selector, in documentation order.
const SELECTOR_KEYS: &[&str] = &["association_name", "document_name", "tags"];

/// The keys of an `accounts:` entry, in documentation order.
const ACCOUNT_KEYS: &[&str] = &["role_arn", "external_id", "regions"];

/// Every accepted top-level key, in documentation order.
const KEYS: &[&str] = &[
    "associations",
    "discovery",
    "discovery_interval",
    "poll_interval",
    "full_sweep_interval",
    "initial_lookback",
    "late_visibility_window",
    "api_requests_per_second",
    "max_concurrent_requests",
    "request_timeout",
    "api_max_attempts",
    "region",
    "regions",
    "accounts",
    "state_file",
    "state_save_interval",
    "removed_association_retention",
    "metrics",
    "target_detail",
];

/// The area prefixes of AWS region names, one per partition family: `<area>-<direction>-<n>`.
/// The same as the partitions' `regionRegex` in the AWS SDK's endpoint data.
const REGION_AREAS: &[&str] = &[
    "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "us-gov", "us-iso", "us-isob",
    "us-isof", "eu-isoe", "eusc-de",
];

/// The directions of AWS region names.
const REGION_DIRECTIONS: &[&str] = &[
    "east",
    "west",
    "north",
    "south",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Regions that exist (the AWS SDK's endpoint data), only to suggest one for a misspelt name;
/// a well-formed name missing here is accepted (regions are added over time).
const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "eu-isoe-west-1",
    "eusc-de-east-1",
];

const REGION_EXAMPLES: &str = "e.g. us-east-1, eu-central-2 or us-gov-west-1";

const EXAMPLE_ASSOCIATION_ID: &str = "8dfe3659-4309-493a-8755-0123456789ab";

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

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
    /// The config file name as given, for messages and the landing page.
    pub source: String,
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

impl Default for TargetDetailConfig {
    fn default() -> Self {
        TargetDetailConfig {
            enabled: true,
            max_targets_per_execution: MAX_TARGETS_PER_EXECUTION_SETTING.default as usize,
            failing_targets_gauge: false,
            max_failing_targets: MAX_FAILING_TARGETS_SETTING.default as usize,
        }
    }
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

impl DurationHistogram {
    const NAMES: &'static [(&'static str, DurationHistogram)] = &[
        ("per_association", DurationHistogram::PerAssociation),
        ("per_status", DurationHistogram::PerStatus),
        ("off", DurationHistogram::Off),
    ];

    pub fn name(self) -> &'static str {
        name_of(Self::NAMES, self)
    }
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

impl LastExecutionStatus {
    const NAMES: &'static [(&'static str, LastExecutionStatus)] = &[
        ("current", LastExecutionStatus::Current),
        ("per_status", LastExecutionStatus::PerStatus),
    ];

    pub fn name(self) -> &'static str {
        name_of(Self::NAMES, self)
    }
}

fn name_of<T: PartialEq + Copy>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("", |(name, _)| name)
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

// ---------------------------------------------------------------------------
// Loading and parsing
// ---------------------------------------------------------------------------

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
    let document = yaml::parse(text, file)?;
    Validator {
        file,
        text: document.text,
    }
    .config(document.root)
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

/// An item of a list of mappings: its key path (`accounts[1]`), node, and entries.
struct ListItem<'n> {
    key: String,
    node: &'n Node,
    entries: &'n [(Node, Node)],
}

/// A map entry's key name, position, and value.
struct Entry<'n> {
    name: String,
    key: &'n Node,
    value: &'n Node,
}

impl Validator<'_> {
    fn error(&self, node: &Node, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, node.referenced, Some(key.to_owned()), message)
    }

    fn config(&self, root: Node) -> Result<Config, ConfigError> {
        let entries = match &root.value {
            Raw::Map(entries) => entries,
            Raw::Null => {
                return Err(ConfigError::whole_file(
                    self.file,
                    "the config file is empty; it must be a mapping with at least the key associations or discovery",
                ));
            }
            _ => {
                return Err(ConfigError::at(
                    self.file,
                    root.referenced,
                    None,
                    format!(
                        "the config file must be a mapping of settings (key: value), got {}",
                        self.describe(&root)
                    ),
                ));
            }
        };

        let mut config = Config {
            associations: Vec::new(),
            poll_interval: POLL_INTERVAL_SETTING.default,
            initial_lookback: INITIAL_LOOKBACK_SETTING.default,
            late_visibility_window: LATE_VISIBILITY_WINDOW_SETTING.default,
            api_requests_per_second: API_REQUESTS_PER_SECOND_SETTING.default,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS_SETTING.default as usize,
            request_timeout: REQUEST_TIMEOUT_SETTING.default,
            api_max_attempts: API_MAX_ATTEMPTS_SETTING.default as u32,
            region: None,
            state_file: None,
            state_save_interval: STATE_SAVE_INTERVAL_SETTING.default,
            removed_association_retention: REMOVED_ASSOCIATION_RETENTION_SETTING.default,
            metrics: MetricsConfig::default(),
            target_detail: TargetDetailConfig::default(),
            discovery: Vec::new(),
            discovery_interval: DISCOVERY_INTERVAL_SETTING.default,
            regions: Vec::new(),
            accounts: Vec::new(),
            full_sweep_interval: FULL_SWEEP_INTERVAL_SETTING.default,
            source: self.file.to_owned(),
        };

        let entries = self.entries(entries, "", KEYS)?;
        let has = |wanted: &str| entries.iter().any(|entry| entry.name == wanted);
        let (has_associations, has_discovery, has_region) =
            (has("associations"), has("discovery"), has("region"));
        for Entry { name, key, value } in entries {
            match name.as_str() {
                "associations" => {
                    config.associations = self.associations(value, has_discovery)?;
                }
                "discovery" => config.discovery = self.discovery(&name, value)?,
                "discovery_interval" => {
                    config.discovery_interval =
                        self.duration(&name, value, &DISCOVERY_INTERVAL_SETTING)?;
                }
                "full_sweep_interval" => {
                    config.full_sweep_interval =
                        self.duration(&name, value, &FULL_SWEEP_INTERVAL_SETTING)?;
                }
                "regions" => {
                    if has_region {
                        return Err(self.error(
                            key,
                            &name,
                            "set either region or regions, not both (regions replaces region)",
                        ));
                    }
                    config.regions =
                        self.regions(&name, value, "region or the AWS config chain")?;
                }
                "accounts" => config.accounts = self.accounts(&name, value)?,
                "poll_interval" => {
                    config.poll_interval = self.duration(&name, value, &POLL_INTERVAL_SETTING)?;
                }
                "initial_lookback" => {
                    config.initial_lookback =
                        self.duration(&name, value, &INITIAL_LOOKBACK_SETTING)?;
                }
                "late_visibility_window" => {
                    config.late_visibility_window =
                        self.duration(&name, value, &LATE_VISIBILITY_WINDOW_SETTING)?;
                }
                "api_requests_per_second" => {
                    config.api_requests_per_second =
                        self.rate(&name, value, &API_REQUESTS_PER_SECOND_SETTING)?;
                }
                "max_concurrent_requests" => {
                    let n = self.integer(&name, value, &MAX_CONCURRENT_REQUESTS_SETTING)?;
                    config.max_concurrent_requests = usize::try_from(n)
                        .map_err(|_| self.error(value, &name, "value is too large"))?;
                }
                "request_timeout" => {
                    config.request_timeout =
                        self.duration(&name, value, &REQUEST_TIMEOUT_SETTING)?;
                }
                "api_max_attempts" => {
                    let n = self.integer(&name, value, &API_MAX_ATTEMPTS_SETTING)?;
                    config.api_max_attempts = u32::try_from(n)
                        .map_err(|_| self.error(value, &name, "value is too large"))?;
                }
                "region" => config.region = Some(self.region(&name, value)?),
                "state_file" => config.state_file = Some(self.path(&name, value)?),
                "state_save_interval" => {
                    config.state_save_interval =
                        self.duration(&name, value, &STATE_SAVE_INTERVAL_SETTING)?;
                }
                "removed_association_retention" => {
                    config.removed_association_retention =
                        self.duration(&name, value, &REMOVED_ASSOCIATION_RETENTION_SETTING)?;
                }
                "metrics" => config.metrics = self.metrics(&name, value)?,
                "target_detail" => config.target_detail = self.target_detail(&name, value)?,
                // `entries` only yields names listed in KEYS.
                _ => return Err(self.unknown_key(key, &name, "", KEYS)),
            }
        }

        if !has_associations && !has_discovery {
            return Err(self.error(
                &root,
                "associations",
                "required key is missing: set associations (association IDs), discovery (selectors), or both",
            ));
        }
        Ok(config)
    }

    /// Checks a mapping's keys in document order (unknown and repeated keys
    /// are errors) and returns its entries. `prefix` is prepended to key names.
    fn entries<'n>(
        &self,
        entries: &'n [(Node, Node)],
        prefix: &str,
        known: &[&str],
    ) -> Result<Vec<Entry<'n>>, ConfigError> {
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut result = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = self.key_name(key);
            if !known.contains(&name.as_str()) {
                return Err(self.unknown_key(key, &name, prefix, known));
            }
            if let Some(first_line) = seen.get(&name) {
                return Err(self.error(
                    key,
                    &format!("{prefix}{name}"),
                    format!("duplicate key (first set at line {first_line})"),
                ));
            }
            seen.insert(name.clone(), key.referenced.line());
            result.push(Entry { name, key, value });
        }
        Ok(result)
    }

    fn unknown_key(&self, key: &Node, name: &str, prefix: &str, known: &[&str]) -> ConfigError {
        let mut message = if known.len() == 1 {
            format!("unknown key; expected {}", known[0])
        } else {
            format!("unknown key; expected one of {}", known.join(", "))
        };
        if let Some(suggestion) = suggest(name, known) {
            let _ = write!(message, " (did you mean {suggestion}?)");
        }
        self.error(key, &format!("{prefix}{name}"), message)
    }

    /// The name of a mapping key as written (non-string keys included).
    fn key_name(&self, key: &Node) -> String {
        match &key.value {
            Raw::Str(s) => s.clone(),
            Raw::Seq(_) => "[...]".to_owned(),
            Raw::Map(_) => "{...}".to_owned(),
            _ => self.describe(key),
        }
    }

    /// The source text of a scalar, as written.
    fn source_text(&self, node: &Node) -> Option<&str> {
        let span = node.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let text = self.text.get(start..start.checked_add(len)?)?.trim();
        (!text.is_empty() && !text.contains('\n')).then_some(text)
    }

    /// A short description of a value for "got ..." messages.
    fn describe(&self, node: &Node) -> String {
        match &node.value {
            Raw::Str(s) => format!("{s:?}"),
            Raw::Seq(_) => "a list".to_owned(),
            Raw::Map(_) => "a mapping".to_owned(),
            Raw::Null => "an empty value".to_owned(),
            scalar => self.source_text(node).map_or_else(
                || match scalar {
                    Raw::Bool(b) => b.to_string(),
                    Raw::Int(n) => n.to_string(),
                    Raw::Float(x) => x.to_string(),
                    _ => String::new(),
                },
                str::to_owned,
            ),
        }
    }

    fn duration(
        &self,
        key: &str,
        node: &Node,
        setting: &DurationSetting,
    ) -> Result<Duration, ConfigError> {
        let (text, shown) = match &node.value {
            Raw::Str(s) => (s.as_str(), format!("{s:?}")),
            Raw::Int(_) | Raw::Float(_) => {
                let shown = self.describe(node);
                let text = self.source_text(node).unwrap_or(&shown).to_owned();
                let message = match parse_duration(&text) {
                    Err(err) => format!("invalid duration {shown}: {err}"),
                    Ok(_) => format!("invalid duration {shown}: expected a string such as 60s"),
                };
                return Err(self.error(node, key, message));
            }
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "missing value; expected a duration such as 1m30s, or remove the key to use the default ({})",
                        format_duration(setting.default)
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a duration such as 1m30s, got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        let value = parse_duration(text)
            .map_err(|err| self.error(node, key, format!("invalid duration {shown}: {err}")))?;
        if value < setting.min {
            return Err(self.error(
                node,
                key,
                format!("must be at least {}, got {text}", setting.min_text),
            ));
        }
        if let Some((max, max_text)) = setting.max {
            if value > max {
                return Err(self.error(
                    node,
                    key,
                    format!("must be at most {max_text}, got {text}"),
                ));
            }
        }
        Ok(value)
    }

    fn integer(&self, key: &str, node: &Node, setting: &IntSetting) -> Result<u64, ConfigError> {
        let range = format!("between {} and {}", setting.min, setting.max);
        match &node.value {
            Raw::Int(n) => u64::try_from(*n)
                .ok()
                .filter(|n| (setting.min..=setting.max).contains(n))
                .ok_or_else(|| {
                    self.error(
                        node,
                        key,
                        format!("must be {range}, got {}", self.describe(node)),
                    )
                }),
            Raw::Null => Err(self.error(
                node,
                key,
                format!(
                    "missing value; expected a whole number {range}, or remove the key to use the default ({})",
                    setting.default
                ),
            )),
            _ => Err(self.error(
                node,
                key,
                format!(
                    "expected a whole number {range}, got {}",
                    self.describe(node)
                ),
            )),
        }
    }

    fn rate(&self, key: &str, node: &Node, setting: &RateSetting) -> Result<f64, ConfigError> {
        let expected = format!("a number greater than 0 and at most {}", setting.max);
        // i128 to f64: rounding is fine for a rate.
        let value = match &node.value {
            Raw::Int(n) => *n as f64,
            Raw::Float(x) => *x,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "missing value; expected {expected}, or remove the key to use the default ({})",
                        setting.default
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!("expected {expected}, got {}", self.describe(node)),
                ));
            }
        };
        let got = self.describe(node);
        if !value.is_finite() {
            Err(self.error(node, key, format!("must be {expected}, got {got}")))
        } else if value <= 0.0 {
            Err(self.error(node, key, format!("must be greater than 0, got {got}")))
        } else if value > setting.max {
            Err(self.error(
                node,
                key,
                format!("must be at most {}, got {got}", setting.max),
            ))
        } else {
            Ok(value)
        }
    }

    /// A file path; relative paths are relative to the config file's directory.
    fn path(&self, key: &str, node: &Node) -> Result<std::path::PathBuf, ConfigError> {
        match &node.value {
            Raw::Str(s) if !s.trim().is_empty() => {
                let path = std::path::Path::new(s);
                if path.is_relative() {
                    let base = std::path::Path::new(self.file)
                        .parent()
                        .unwrap_or(std::path::Path::new(""));
                    Ok(base.join(path))
                } else {
                    Ok(path.to_path_buf())
                }
            }
            _ => Err(self.error(
                node,
                key,
                format!("expected a file path, got {}", self.describe(node)),
            )),
        }
    }

    /// A region name, checked by [`is_region`] (`region`, `regions[i]`, `accounts[i].regions[j]`).
    fn region(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        const EXAMPLES: &str = REGION_EXAMPLES;
        match &node.value {
            Raw::Str(s) if is_region(s) => Ok(s.clone()),
            Raw::Str(s) => {
                let mut message = format!(
                    "{s:?} is not a known AWS region name (expected <area>-<direction>-<number>, {EXAMPLES})"
                );
                if let Some(suggestion) = suggest_region(s) {
                    let _ = write!(message, " (did you mean {suggestion}?)");
                }
                Err(self.error(node, key, message))
            }
            Raw::Null => Err(self.error(
                node,
                key,
                "missing value; expected an AWS region such as us-east-1, or remove the key to use the AWS config chain",
            )),
            _ => Err(self.error(
                node,
                key,
                format!(
                    "expected an AWS region ({EXAMPLES}), got {}",
                    self.describe(node)
                ),
            )),
        }
    }

    /// The `metrics:` section: a mapping of [`METRICS_KEYS`], each optional.
    fn metrics(&self, key: &str, node: &Node) -> Result<MetricsConfig, ConfigError> {
        let entries = match &node.value {
            Raw::Map(entries) => entries,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "missing value; expected a mapping with some of the keys {}, or remove the key to use the defaults",
                        METRICS_KEYS.join(", ")
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a mapping with some of the keys {}, got {}",
                        METRICS_KEYS.join(", "),
                        self.describe(node)
                    ),
                ));
            }
        };
        let prefix = format!("{key}.");
        let mut metrics = MetricsConfig::default();
        for Entry { name, value, .. } in self.entries(entries, &prefix, METRICS_KEYS)? {
            let full = format!("{prefix}{name}");
            match name.as_str() {
                "duration_histogram" => {
                    metrics.duration_histogram =
                        self.choice(&full, value, DurationHistogram::NAMES)?;
                }
                "last_execution_status" => {
                    metrics.last_execution_status =
                        self.choice(&full, value, LastExecutionStatus::NAMES)?;
                }
                "per_association_internals" => {
                    metrics.per_association_internals = self.boolean(&full, value)?;
                }
                // `entries` only yields names listed in METRICS_KEYS.
                _ => unreachable!("{name} is not in METRICS_KEYS"),
            }
        }
        Ok(metrics)
    }

    /// The `target_detail:` section: a mapping of [`TARGET_DETAIL_KEYS`], each optional.
    fn target_detail(&self, key: &str, node: &Node) -> Result<TargetDetailConfig, ConfigError> {
        let entries = match &node.value {
            Raw::Map(entries) => entries,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "missing value; expected a mapping with some of the keys {}, or remove the key to use the defaults",
                        TARGET_DETAIL_KEYS.join(", ")
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a mapping with some of the keys {}, got {}",
                        TARGET_DETAIL_KEYS.join(", "),
                        self.describe(node)
                    ),
                ));
            }
        };
        let prefix = format!("{key}.");
        let mut detail = TargetDetailConfig::default();
        for Entry { name, value, .. } in self.entries(entries, &prefix, TARGET_DETAIL_KEYS)? {
            let full = format!("{prefix}{name}");
            match name.as_str() {
                "enabled" => detail.enabled = self.boolean(&full, value)?,
                "max_targets_per_execution" => {
                    detail.max_targets_per_execution =
                        self.integer(&full, value, &MAX_TARGETS_PER_EXECUTION_SETTING)? as usize;
                }
                "failing_targets_gauge" => {
                    detail.failing_targets_gauge = self.boolean(&full, value)?;
                }
                "max_failing_targets" => {
                    detail.max_failing_targets =
                        self.integer(&full, value, &MAX_FAILING_TARGETS_SETTING)? as usize;
                }
                // `entries` only yields names listed in TARGET_DETAIL_KEYS.
                _ => unreachable!("{name} is not in TARGET_DETAIL_KEYS"),
            }
        }
        Ok(detail)
    }

    /// One of a fixed set of words; the first of `names` is the default.
    fn choice<T: Copy>(
        &self,
        key: &str,
        node: &Node,
        names: &[(&'static str, T)],
    ) -> Result<T, ConfigError> {
        let list = names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        // YAML 1.1 reads a bare `off` as false: take the word as written.
        if let (Raw::Bool(_), Some(text)) = (&node.value, self.source_text(node)) {
            if let Some((_, value)) = names.iter().find(|(name, _)| *name == text) {
                return Ok(*value);
            }
        }
        match &node.value {
            Raw::Str(s) => names
                .iter()
                .find(|(name, _)| name == s)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    self.error(node, key, format!("expected one of {list}, got {s:?}"))
                }),
            Raw::Null => Err(self.error(
                node,
                key,
                format!(
                    "missing value; expected one of {list}, or remove the key to use the default ({})",
                    names[0].0
                ),
            )),
            _ => Err(self.error(
                node,
                key,
                format!("expected one of {list}, got {}", self.describe(node)),
            )),
        }
    }

    fn boolean(&self, key: &str, node: &Node) -> Result<bool, ConfigError> {
        match &node.value {
            Raw::Bool(b) => Ok(*b),
            _ => Err(self.error(
                node,
                key,
                format!("expected true or false, got {}", self.describe(node)),
            )),
        }
    }

    /// The `associations:` list; it may be empty when `discovery` selects associations.
    fn associations(
        &self,
        node: &Node,
        has_discovery: bool,
    ) -> Result<Vec<AssociationConfig>, ConfigError> {
        const KEY: &str = "associations";
        let items = match &node.value {
            Raw::Seq(items) => items,
            Raw::Null => {
                return Err(self.error(
                    node,
                    KEY,
                    "missing value; expected a list of association IDs",
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    KEY,
                    format!(
                        "expected a list of association IDs, got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        if items.is_empty() && !has_discovery {
            return Err(self.error(
                node,
                KEY,
                "the list is empty; name at least one association ID",
            ));
        }

        // Lower-case ID -> (line, ID as written) of its first occurrence.
        let mut first_seen: HashMap<String, (u64, &str)> = HashMap::new();
        let mut associations = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{KEY}[{index}]");
            let (id_node, id_key) = self.association_id_node(item, &item_key)?;
            let id = match &id_node.value {
                Raw::Str(s) if is_association_id(s) => s.as_str(),
                Raw::Null => {
                    return Err(self.error(
                        id_node,
                        &id_key,
                        "missing value; expected an association ID",
                    ));
                }
                _ => {
                    return Err(self.error(
                        id_node,
                        &id_key,
                        format!(
                            "{} is not a valid association ID (expected 8-4-4-4-12 hexadecimal characters, e.g. {EXAMPLE_ASSOCIATION_ID})",
                            self.describe(id_node)
                        ),
                    ));
                }
            };
            let normalized = id.to_ascii_lowercase();
            if let Some((line, first)) = first_seen.get(&normalized) {
                let message = if *first == id {
                    format!("duplicate association ID {id} (first listed at line {line})")
                } else {
                    format!(
                        "duplicate association ID {id} (first listed at line {line} as {first}; IDs are compared case-insensitively)"
                    )
                };
                return Err(self.error(id_node, &id_key, message));
            }
            first_seen.insert(normalized.clone(), (id_node.referenced.line(), id));
            associations.push(AssociationConfig { id: normalized });
        }
        Ok(associations)
    }

    /// Returns the node holding an entry's ID and that node's key path:
    /// the entry itself for a plain ID, its `id` value for the map form.
    fn association_id_node<'n>(
        &self,
        item: &'n Node,
        item_key: &str,
    ) -> Result<(&'n Node, String), ConfigError> {
        match &item.value {
            Raw::Map(entries) => {
                let prefix = format!("{item_key}.");
                let entries = self.entries(entries, &prefix, &["id"])?;
                let id_key = format!("{prefix}id");
                match entries.first() {
                    Some(entry) => Ok((entry.value, id_key)),
                    None => Err(self.error(item, &id_key, "required key is missing")),
                }
            }
            Raw::Seq(_) => Err(self.error(
                item,
                item_key,
                format!(
                    "expected an association ID or a mapping with the key id, got {}",
                    self.describe(item)
                ),
            )),
            _ => Ok((item, item_key.to_owned())),
        }
    }

    /// A non-empty list of mappings (`discovery:`, `accounts:`), with `what` naming an item
    /// for messages ("a selector", "an account") and `hint` saying what `{}` means.
    fn mapping_list<'n>(
        &self,
        key: &str,
        node: &'n Node,
        what: &str,
        keys: &[&str],
        hint: &str,
    ) -> Result<Vec<ListItem<'n>>, ConfigError> {
        let mapping = format!("a mapping with some of the keys {}", keys.join(", "));
        let expected = format!("{what} ({mapping})");
        let items = match &node.value {
            Raw::Seq(items) if items.is_empty() => {
                return Err(self.error(
                    node,
                    key,
                    format!("the list is empty; add {what} ({hint}) or remove the key"),
                ));
            }
            Raw::Seq(items) => items,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "missing value; expected a list, each item {expected}, or remove the key"
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a list, each item {expected}, got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        let mut result = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            match &item.value {
                Raw::Map(entries) => result.push(ListItem {
                    key: item_key,
                    node: item,
                    entries,
                }),
                Raw::Null => {
                    return Err(self.error(
                        item,
                        &item_key,
                        format!("empty entry; expected {what} ({mapping}; {hint})"),
                    ));
                }
                _ => {
                    return Err(self.error(
                        item,
                        &item_key,
                        format!("expected {expected}, got {}", self.describe(item)),
                    ));
                }
            }
        }
        Ok(result)
    }

    /// The `discovery:` selectors; no two alike.
    fn discovery(&self, key: &str, node: &Node) -> Result<Vec<Selector>, ConfigError> {
        let items = self.mapping_list(
            key,
            node,
            "a selector",
            SELECTOR_KEYS,
            "{} selects every association",
        )?;
        let mut selectors: Vec<Selector> = Vec::with_capacity(items.len());
        for ListItem {
            key: item_key,
            node: item,
            entries,
        } in items
        {
            let prefix = format!("{item_key}.");
            let mut selector = Selector::default();
            for Entry { name, value, .. } in self.entries(entries, &prefix, SELECTOR_KEYS)? {
                let full = format!("{prefix}{name}");
                match name.as_str() {
                    "association_name" => {
                        selector.association_name = Some(self.pattern(&full, value)?);
                    }
                    "document_name" => selector.document_name = Some(self.pattern(&full, value)?),
                    "tags" => selector.tags = self.tags(&full, value)?,
                    // `entries` only yields names listed in SELECTOR_KEYS.
                    _ => unreachable!("{name} is not in SELECTOR_KEYS"),
                }
            }
            if let Some(first) = selectors.iter().position(|s| *s == selector) {
                return Err(self.error(
                    item,
                    &item_key,
                    format!("duplicate selector (same as {key}[{first}])"),
                ));
            }
            selectors.push(selector);
        }
        Ok(selectors)
    }

    /// A regular expression matched against whole names.
    fn pattern(&self, key: &str, node: &Node) -> Result<Pattern, ConfigError> {
        let source = match &node.value {
            Raw::Str(s) if s.is_empty() => {
                return Err(self.error(
                    node,
                    key,
                    "empty regular expression (it would match only an empty name); remove the key to match every name",
                ));
            }
            Raw::Str(s) => s,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    "missing value; expected a regular expression such as '^prod-', or remove the key to match every name",
                ));
            }
            Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a regular expression (a string), got {}; quote it",
                        self.describe(node)
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a regular expression (a string), got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        // Compiled alone first: a pattern that only compiles inside the anchors Pattern adds
        // (e.g. `a)|(b`) would not be matched whole.
        regex::Regex::new(source)
            .and_then(|_| Pattern::new(source))
            .map_err(|err| {
                self.error(
                    node,
                    key,
                    format!("invalid regular expression: {}", regex_error_gist(&err)),
                )
            })
    }

    /// `tags:`: a mapping of tag keys to values, both strings.
    fn tags(&self, key: &str, node: &Node) -> Result<BTreeMap<String, String>, ConfigError> {
        let entries = match &node.value {
            Raw::Map(entries) => entries,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    "missing value; expected a mapping of tag keys to values such as {team: platform}, or remove the key",
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a mapping of tag keys to values such as {{team: platform}}, got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        let mut tags = BTreeMap::new();
        let mut first_line: HashMap<&str, u64> = HashMap::new();
        for (tag_key, value) in entries {
            let name = match &tag_key.value {
                Raw::Str(s) if !s.is_empty() => s.as_str(),
                Raw::Str(_) => {
                    return Err(self.error(tag_key, key, "empty tag key"));
                }
                _ => {
                    return Err(self.error(
                        tag_key,
                        &format!("{key}.{}", self.key_name(tag_key)),
                        "tag keys are strings; quote it",
                    ));
                }
            };
            let full = format!("{key}.{name}");
            if let Some(line) = first_line.get(name) {
                return Err(self.error(
                    tag_key,
                    &full,
                    format!("duplicate key (first set at line {line})"),
                ));
            }
            first_line.insert(name, tag_key.referenced.line());
            let value = match &value.value {
                Raw::Str(s) => s.clone(),
                Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => {
                    return Err(self.error(
                        value,
                        &full,
                        format!(
                            "tag values are strings; quote it: '{}'",
                            self.describe(value)
                        ),
                    ));
                }
                Raw::Null => {
                    return Err(self.error(
                        value,
                        &full,
                        "missing value; expected the tag's value (a string; '' for an empty one)",
                    ));
                }
                _ => {
                    return Err(self.error(
                        value,
                        &full,
                        format!(
                            "expected the tag's value (a string), got {}",
                            self.describe(value)
                        ),
                    ));
                }
            };
            tags.insert(name.to_owned(), value);
        }
        Ok(tags)
    }

    /// A non-empty list of regions, no repeats; `default` says what removing the key means.
    fn regions(&self, key: &str, node: &Node, default: &str) -> Result<Vec<String>, ConfigError> {
        let items = match &node.value {
            Raw::Seq(items) if items.is_empty() => {
                return Err(self.error(
                    node,
                    key,
                    format!("the list is empty; name at least one region, or remove the key to use {default}"),
                ));
            }
            Raw::Seq(items) => items,
            Raw::Null => {
                return Err(self.error(
                    node,
                    key,
                    format!("missing value; expected a list of AWS regions such as [us-east-1, eu-west-1], or remove the key to use {default}"),
                ));
            }
            Raw::Str(s) => {
                return Err(self.error(
                    node,
                    key,
                    format!("expected a list of AWS regions, got {s:?}; write [{s}]"),
                ));
            }
            _ => {
                return Err(self.error(
                    node,
                    key,
                    format!(
                        "expected a list of AWS regions such as [us-east-1, eu-west-1], got {}",
                        self.describe(node)
                    ),
                ));
            }
        };
        let mut regions: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            if let Raw::Null = item.value {
                return Err(self.error(
                    item,
                    &item_key,
                    format!("missing value; expected an AWS region ({REGION_EXAMPLES})"),
                ));
            }
            let region = self.region(&item_key, item)?;
            if let Some(first) = regions.iter().position(|r| *r == region) {
                return Err(self.error(
                    item,
                    &item_key,
                    format!("duplicate region {region} (same as {key}[{first}])"),
                ));
            }
            regions.push(region);
        }
        Ok(regions)
    }

    /// The `accounts:` list; no two entries with the same role (or both without one).
    fn accounts(&self, key: &str, node: &Node) -> Result<Vec<AccountConfig>, ConfigError> {
        let items = self.mapping_list(
            key,
            node,
            "an account",
            ACCOUNT_KEYS,
            "{} stands for the exporter's own credentials",
        )?;
        let mut accounts: Vec<AccountConfig> = Vec::with_capacity(items.len());
        for ListItem {
            key: item_key,
            node: item,
            entries,
        } in items
        {
            let prefix = format!("{item_key}.");
            let mut account = AccountConfig::default();
            let mut external_id_key = None;
            for Entry { name, key, value } in self.entries(entries, &prefix, ACCOUNT_KEYS)? {
                let full = format!("{prefix}{name}");
                match name.as_str() {
                    "role_arn" => account.role_arn = Some(self.role_arn(&full, value)?),
                    "external_id" => {
                        account.external_id = Some(self.external_id(&full, value)?);
                        external_id_key = Some((key, full));
                    }
                    "regions" => {
                        account.regions = self.regions(&full, value, "the top-level regions")?;
                    }
                    // `entries` only yields names listed in ACCOUNT_KEYS.
                    _ => unreachable!("{name} is not in ACCOUNT_KEYS"),
                }
            }
            if let (Some((external_id, full)), None) = (external_id_key, &account.role_arn) {
                return Err(self.error(
                    external_id,
                    &full,
                    "external_id needs role_arn (it is sent with AssumeRole)",
                ));
            }
            if let Some(first) = accounts.iter().position(|a| a.role_arn == account.role_arn) {
                return Err(self.error(
                    item,
                    &item_key,
                    format!("duplicate account (same as {key}[{first}])"),
                ));
            }
            accounts.push(account);
        }
        Ok(accounts)
    }

    fn role_arn(&self, key: &str, node: &Node) -> Result<RoleArn, ConfigError> {
        const EXPECTED: &str =
            "a role ARN such as arn:aws:iam::111111111111:role/ssm-association-exporter";
        match &node.value {
            Raw::Str(s) => RoleArn::parse(s)
                .map_err(|reason| self.error(node, key, format!("malformed role ARN: {reason}"))),
            Raw::Null => Err(self.error(
                node,
                key,
                format!("missing value; expected {EXPECTED}, or remove the key to use the exporter's own credentials"),
            )),
            _ => Err(self.error(
                node,
                key,
                format!("expected {EXPECTED}, got {}", self.describe(node)),
            )),
        }
    }

    fn external_id(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        const EXPECTED: &str = "2 to 1224 letters, digits and _+=,.@:/-";
        match &node.value {
            Raw::Str(s) if is_external_id(s) => Ok(s.clone()),
            Raw::Str(s) => Err(self.error(
                node,
                key,
                format!("{s:?} is not a valid external ID (expected {EXPECTED})"),
            )),
            Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => Err(self.error(
                node,
                key,
                format!(
                    "expected an external ID (a string), got {}; quote it",
                    self.describe(node)
                ),
            )),
            Raw::Null => Err(self.error(
                node,
                key,
                format!("missing value; expected an external ID ({EXPECTED}), or remove the key"),
            )),
            _ => Err(self.error(
                node,
                key,
                format!(
                    "expected an external ID ({EXPECTED}), got {}",
                    self.describe(node)
                ),
            )),
        }
    }
}

/// Whether `s` matches SSM's association ID pattern (8-4-4-4-12 hex digits).
fn is_association_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether `s` is a well-formed AWS region name: `<area>-<direction>-<number>` with an area
/// of [`REGION_AREAS`] (`us`, `us-gov`, ...), a direction of [`REGION_DIRECTIONS`] and a
/// number from 1 to 99 (`us-east-1`, `us-gov-west-1`, `ap-southeast-7`).
fn is_region(s: &str) -> bool {
    let mut parts = s.rsplitn(3, '-');
    let (Some(number), Some(direction), Some(area)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    REGION_AREAS.contains(&area)
        && REGION_DIRECTIONS.contains(&direction)
        && (1..=2).contains(&number.len())
        && !number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A region name `s` was likely meant to be, for a name that is not well-formed.
fn suggest_region(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    if lower != s && is_region(&lower) {
        return Some(lower);
    }
    // Closer than `suggest` allows: region names are alike (`europe-west-1` is not
    // `eu-isoe-west-1`).
    KNOWN_REGIONS
        .iter()
        .map(|known| (edit_distance(&lower, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known.to_owned())
}

/// Whether `s` is a valid `ExternalId` for `AssumeRole`: 2 to 1224 characters of
/// `[\w+=,.@:/-]` (the STS pattern).
fn is_external_id(s: &str) -> bool {
    (2..=1224).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

/// The gist of a regular expression error: its `error:` line, without the pattern echo and
/// caret (whose columns would count the anchors the pattern is wrapped in).
fn regex_error_gist(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .or_else(|| text.lines().map(str::trim).find(|line| !line.is_empty()))
        .unwrap_or("unknown error")
        .trim_end_matches('.')
        .to_owned()
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance > 0 && *distance <= candidate.len().div_ceil(4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

impl Config {
    /// Human-readable multi-line summary for `--config.check` and logs: the
    /// config file, the associations, and every setting with its effective value.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "config file: {}", self.source);
        let _ = writeln!(out, "associations: {}", self.associations.len());
        for association in &self.associations {
            let _ = writeln!(out, "  - {}", association.id);
        }
        let _ = writeln!(out, "discovery: {}", self.discovery.len());
        for selector in &self.discovery {
            let _ = writeln!(out, "  - {}", selector.describe());
        }
        let _ = writeln!(
            out,
            "discovery_interval: {}",
            format_duration(self.discovery_interval)
        );
        let _ = writeln!(
            out,
            "poll_interval: {}",
            format_duration(self.poll_interval)
        );
        let _ = writeln!(
            out,
            "full_sweep_interval: {}",
            format_duration(self.full_sweep_interval)
        );
        let _ = writeln!(
            out,
            "initial_lookback: {}",
            format_duration(self.initial_lookback)
        );
        let _ = writeln!(
            out,
            "late_visibility_window: {}",
            format_duration(self.late_visibility_window)
        );
        let _ = writeln!(
            out,
            "api_requests_per_second: {}",
            self.api_requests_per_second
        );
        let _ = writeln!(
            out,
            "max_concurrent_requests: {}",
            self.max_concurrent_requests
        );
        let _ = writeln!(
            out,
            "request_timeout: {}",
            format_duration(self.request_timeout)
        );
        let _ = writeln!(out, "api_max_attempts: {}", self.api_max_attempts);
        let _ = write!(
            out,
            "region: {}",
            self.region
                .as_deref()
                .unwrap_or("from the AWS config chain")
        );
        if self.regions.is_empty() {
            let _ = write!(out, "\nregions: none (the region above)");
        } else {
            let _ = write!(out, "\nregions: {}", self.regions.join(", "));
        }
        if self.accounts.is_empty() {
            let _ = write!(out, "\naccounts: none (the exporter's own credentials)");
        } else {
            let _ = write!(out, "\naccounts: {}", self.accounts.len());
        }
        for account in &self.accounts {
            let who = account
                .role_arn
                .as_ref()
                .map_or("own credentials", |role| role.arn.as_str());
            let external_id = if account.external_id.is_some() {
                " with an external ID"
            } else {
                ""
            };
            let regions = if !account.regions.is_empty() {
                account.regions.join(", ")
            } else if !self.regions.is_empty() {
                self.regions.join(", ")
            } else {
                self.region
                    .clone()
                    .unwrap_or_else(|| "the region of the AWS config chain".to_owned())
            };
            let _ = write!(out, "\n  - {who}{external_id} in {regions}");
        }
        let _ = write!(
            out,
            "\nstate_file: {}",
            self.state_file
                .as_ref()
                .map_or("none (state is kept in memory only)".to_string(), |p| p
                    .display()
                    .to_string())
        );
        let _ = write!(
            out,
            "\nstate_save_interval: {}",
            format_duration(self.state_save_interval)
        );
        let _ = write!(
            out,
            "\nremoved_association_retention: {}",
            format_duration(self.removed_association_retention)
        );
        let _ = write!(
            out,
            "\nmetrics: duration_histogram {}, last_execution_status {}, per_association_internals {}",
            self.metrics.duration_histogram.name(),
            self.metrics.last_execution_status.name(),
            self.metrics.per_association_internals
        );
        let _ = write!(
            out,
            "\ntarget_detail: enabled {}, max_targets_per_execution {}, failing_targets_gauge {}, max_failing_targets {}",
            self.target_detail.enabled,
            self.target_detail.max_targets_per_execution,
            self.target_detail.failing_targets_gauge,
            self.target_detail.max_failing_targets
        );
        out
    }
}

// ---------------------------------------------------------------------------
// Durations (Prometheus syntax)
// ---------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the parser accepts has a row in the README's configuration table (the keys of
    /// selectors and accounts in their list's row), and each row's default is the one the
    /// parser applies.
    #[test]
    fn the_readme_documents_every_key_with_its_default() {
        let rows: HashMap<&str, &str> = include_str!("../README.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((key, *cells.get(2)?))
            })
            .collect();
        let row = |key: &str| -> &str {
            rows.get(key)
                .copied()
                .unwrap_or_else(|| panic!("{key} has no row in the README's configuration table"))
        };
        for key in KEYS
            .iter()
            .filter(|k| !["metrics", "target_detail"].contains(k))
        {
            row(key);
        }
        for key in METRICS_KEYS {
            row(&format!("metrics.{key}"));
        }
        for key in TARGET_DETAIL_KEYS {
            row(&format!("target_detail.{key}"));
        }
        let described = |list: &str, keys: &[&str]| {
            let text = include_str!("../README.md")
                .lines()
                .find(|l| l.starts_with(&format!("| `{list}` |")))
                .unwrap_or_else(|| panic!("{list} has no row in the README"));
            for key in keys {
                assert!(
                    text.contains(&format!("`{key}`")),
                    "README row {list} lacks `{key}`"
                );
            }
        };
        described("discovery", SELECTOR_KEYS);
        described("accounts", ACCOUNT_KEYS);

        let c = parse("associations: []\ndiscovery: [{}]\n", "defaults.yaml").unwrap();
        let value = |key: &str| row(key).trim_matches('`').to_string();
        for (key, default) in [
            ("poll_interval", c.poll_interval),
            ("discovery_interval", c.discovery_interval),
            ("full_sweep_interval", c.full_sweep_interval),
            ("initial_lookback", c.initial_lookback),
            ("late_visibility_window", c.late_visibility_window),
            ("request_timeout", c.request_timeout),
            ("state_save_interval", c.state_save_interval),
            (
                "removed_association_retention",
                c.removed_association_retention,
            ),
        ] {
            assert_eq!(
                parse_duration(&value(key)),
                Ok(default),
                "README default of {key}"
            );
        }
        for (key, default) in [
            ("api_requests_per_second", c.api_requests_per_second),
            ("max_concurrent_requests", c.max_concurrent_requests as f64),
            ("api_max_attempts", f64::from(c.api_max_attempts)),
            (
                "target_detail.max_targets_per_execution",
                c.target_detail.max_targets_per_execution as f64,
            ),
            (
                "target_detail.max_failing_targets",
                c.target_detail.max_failing_targets as f64,
            ),
        ] {
            assert_eq!(
                value(key).parse::<f64>(),
                Ok(default),
                "README default of {key}"
            );
        }
        for (key, default) in [
            ("target_detail.enabled", c.target_detail.enabled),
            (
                "target_detail.failing_targets_gauge",
                c.target_detail.failing_targets_gauge,
            ),
            (
                "metrics.per_association_internals",
                c.metrics.per_association_internals,
            ),
        ] {
            assert_eq!(
                value(key).parse::<bool>(),
                Ok(default),
                "README default of {key}"
            );
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-northwest-1",
            "us-isob-east-1",
            "us-isof-south-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
            "ap-southeast-7",
            "mx-central-1",
            "il-central-1",
            "us-east-12",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for known in KNOWN_REGIONS {
            assert!(is_region(known), "{known}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "us--1",
            "us-east-1a",
            "-us-east-1",
            "u-east-1",
            "us-esat-1",
            "xx-east-1",
            "us-east-0",
            "us-east-01",
            "us-east-100",
            "us-gov-1",
            "us-foo-east-1",
            "useast-1",
            "us-east-1-",
            "us-east--1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn region_suggestions() {
        assert_eq!(suggest_region("us-esat-1").as_deref(), Some("us-east-1"));
        assert_eq!(suggest_region("US-East-1").as_deref(), Some("us-east-1"));
        assert_eq!(
            suggest_region("eu-centrl-1").as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(suggest_region("europe"), None);
        assert_eq!(suggest_region("europe-west-1"), None);
    }

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

    #[test]
    fn external_ids() {
        assert!(is_external_id("optional"));
        assert!(is_external_id("ab"));
        assert!(is_external_id("Ab_9+=,.@:/-"));
        assert!(is_external_id(&"x".repeat(1224)));
        assert!(!is_external_id("a"));
        assert!(!is_external_id(&"x".repeat(1225)));
        assert!(!is_external_id("with space"));
        assert!(!is_external_id("caf\u{e9}"));
    }

    #[test]
    fn regex_errors_are_one_line() {
        // Built at run time: clippy rejects an invalid literal pattern.
        let err = regex::Regex::new(&["^prod-", "("].concat()).unwrap_err();
        assert_eq!(regex_error_gist(&err), "unclosed group");
        let err = regex::Regex::new("a{99999999}").unwrap_err();
        assert!(!regex_error_gist(&err).contains('\n'));
    }

    #[test]
    fn a_pattern_is_matched_whole_even_with_an_alternation_or_a_stray_paren() {
        let parse_with = |pattern: &str| {
            parse(
                &format!("discovery:\n  - association_name: '{pattern}'\n"),
                "d.yaml",
            )
        };
        let config = parse_with("prod-|dev-").unwrap();
        let pattern = config.discovery[0].association_name.as_ref().unwrap();
        assert!(pattern.is_match("prod-"));
        assert!(!pattern.is_match("prod-web"));
        // Compiles inside Pattern's anchors, `^(?:a)|(b)$`, but not alone.
        let err = parse_with("a)|(b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.yaml:2:23: discovery[0].association_name: invalid regular expression: unopened group"
        );
    }

    #[test]
    fn association_ids() {
        assert!(is_association_id(EXAMPLE_ASSOCIATION_ID));
        assert!(is_association_id("8DFE3659-4309-493A-8755-0123456789AB"));
        assert!(!is_association_id("8dfe3659-4309-493a-8755-0123456789a"));
        assert!(!is_association_id("8dfe3659x4309-493a-8755-0123456789ab"));
        assert!(!is_association_id("8dfe3659-4309-493a-8755-0123456789ag"));
    }

    #[test]
    fn metrics_words_parse_unquoted() {
        let text = "associations: [8dfe3659-4309-493a-8755-0123456789ab]\nmetrics:\n  duration_histogram: off\n  last_execution_status: per_status\n  per_association_internals: true\n";
        let config = parse(text, "m.yaml").unwrap();
        assert_eq!(
            config.metrics,
            MetricsConfig {
                duration_histogram: DurationHistogram::Off,
                ..MetricsConfig::RICHEST
            }
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("pol_interval", KEYS), Some("poll_interval"));
        assert_eq!(suggest("regoin", KEYS), Some("region"));
        assert_eq!(suggest("name", &["id"]), None);
        assert_eq!(suggest("completely_different", KEYS), None);
    }
}
