//! The config file's checks, key by key: every error names the key and points at the value.
//!
//! One [`Validator`] walks the parsed tree. Each shape has one helper, so that a key is checked
//! in one call: a mapping's keys (unknown, repeated) by `entries`, a section of known keys such
//! as `metrics:` by `section`, a list by `list`, a list of mappings such as `accounts:` by
//! `mapping_list`, an empty value or one of the wrong kind by `wrong_kind` (`missing`,
//! `unexpected`). This file holds them, the top level, the `metrics:` and `target_detail:`
//! sections and the scalar values; `watch.rs` what to watch (`associations`, `discovery`),
//! `scopes.rs` where (`region`, `regions`, `accounts`), `events.rs` the `events:` queues.

mod events;
mod scopes;
mod watch;

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::{
    DurationSetting, IntSetting, RateSetting, ACCOUNT_KEYS, API_MAX_ATTEMPTS_SETTING,
    API_REQUESTS_PER_SECOND_SETTING, DISCOVERY_INTERVAL_SETTING, EVENTS_FULL_SWEEP_INTERVAL,
    EVENTS_POLL_INTERVAL, FULL_LISTING_INTERVAL_SETTING, FULL_SWEEP_INTERVAL_SETTING,
    INITIAL_LOOKBACK_SETTING, KEYS, LATE_VISIBILITY_WINDOW_SETTING, MAX_BACKFILL_SETTING,
    MAX_CONCURRENT_REQUESTS_SETTING, MAX_FAILING_TARGETS_SETTING,
    MAX_TARGETS_PER_EXECUTION_SETTING, METRICS_KEYS, PENDING_RECHECK_MAX_INTERVAL_SETTING,
    POLL_INTERVAL_SETTING, REMOVED_ASSOCIATION_RETENTION_SETTING, REQUEST_TIMEOUT_SETTING,
    SELECTOR_KEYS, STATE_SAVE_INTERVAL_SETTING, TARGET_DETAIL_KEYS,
};
use super::{
    format_duration, parse_duration, Config, ConfigError, MetricsConfig, TargetDetailConfig, Word,
};
use crate::yaml::{Document, Node, Raw};

/// Validates a parsed config file into a [`Config`] whose [`Config::source`] is its file name.
pub(super) fn config(document: Document<'_>) -> Result<Config, ConfigError> {
    Validator {
        file: document.file,
        text: document.text,
    }
    .config(document.root)
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

/// A map entry's key name, key path (`accounts[1].regions`), key position, and value.
struct Entry<'n> {
    name: String,
    path: String,
    key: &'n Node,
    value: &'n Node,
}

/// A list of mappings (`discovery:`, `accounts:`), as its messages name it.
struct MappingList<'a> {
    /// An item, with its article: "a selector", "an account" (without it: "duplicate selector").
    item: &'a str,
    /// The keys of an item.
    keys: &'a [&'a str],
    /// What an empty item (`{}`) means: "{} selects every association".
    hint: &'a str,
}

/// `discovery:`, its items checked by [`Validator::discovery`].
const SELECTORS: MappingList<'static> = MappingList {
    item: "a selector",
    keys: SELECTOR_KEYS,
    hint: "{} selects every association",
};
/// `accounts:`, its items checked by [`Validator::accounts`].
const ACCOUNTS: MappingList<'static> = MappingList {
    item: "an account",
    keys: ACCOUNT_KEYS,
    hint: "{} stands for the exporter's own credentials",
};

impl Validator<'_> {
    fn error(&self, node: &Node, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, node.referenced, Some(key.to_owned()), message)
    }

    /// "missing value; expected {expected}", at an empty value.
    fn missing(&self, node: &Node, key: &str, expected: impl Display) -> ConfigError {
        self.error(node, key, format!("missing value; expected {expected}"))
    }

    /// "expected {expected}, got {the value}", at a value of the wrong kind.
    fn unexpected(&self, node: &Node, key: &str, expected: impl Display) -> ConfigError {
        let got = self.describe(node);
        self.error(node, key, format!("expected {expected}, got {got}"))
    }

    /// The error for a value that is not `expected`: [`Validator::missing`] (followed by
    /// `remedy`, what removing the key does) for an empty value, else [`Validator::unexpected`].
    fn wrong_kind(
        &self,
        node: &Node,
        key: &str,
        expected: impl Display,
        remedy: impl Display,
    ) -> ConfigError {
        match node.value {
            Raw::Null => self.missing(node, key, format_args!("{expected}{remedy}")),
            _ => self.unexpected(node, key, expected),
        }
    }

    /// "expected {expected}, got {the value}; quote it", at a number or boolean where a string
    /// belongs.
    fn unquoted(&self, node: &Node, key: &str, expected: impl Display) -> ConfigError {
        let got = self.describe(node);
        self.error(
            node,
            key,
            format!("expected {expected}, got {got}; quote it"),
        )
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

        let mut config = Config::defaults(self.file);
        let entries = self.entries(entries, "", KEYS)?;
        let has = |wanted: &str| entries.iter().any(|entry| entry.name == wanted);
        let (has_associations, has_discovery, has_region) =
            (has("associations"), has("discovery"), has("region"));
        let (has_poll_interval, has_full_sweep_interval) =
            (has("poll_interval"), has("full_sweep_interval"));
        for Entry {
            name, key, value, ..
        } in entries
        {
            let name = name.as_str();
            let duration = |setting| self.duration(name, value, setting);
            match name {
                "associations" => config.associations = self.associations(value, has_discovery)?,
                "discovery" => config.discovery = self.discovery(name, value)?,
                "discovery_interval" => {
                    config.discovery_interval = duration(&DISCOVERY_INTERVAL_SETTING)?;
                }
                "full_sweep_interval" => {
                    config.full_sweep_interval = duration(&FULL_SWEEP_INTERVAL_SETTING)?;
                }
                "pending_recheck_max_interval" => {
                    config.pending_recheck_max_interval =
                        duration(&PENDING_RECHECK_MAX_INTERVAL_SETTING)?;
                }
                "full_listing_interval" => {
                    config.full_listing_interval = duration(&FULL_LISTING_INTERVAL_SETTING)?;
                }
                "regions" => {
                    if has_region {
                        return Err(self.error(
                            key,
                            name,
                            "set either region or regions, not both (regions replaces region)",
                        ));
                    }
                    config.regions = self.regions(name, value, "region or the AWS config chain")?;
                }
                "accounts" => config.accounts = self.accounts(name, value)?,
                "poll_interval" => config.poll_interval = duration(&POLL_INTERVAL_SETTING)?,
                "initial_lookback" => {
                    config.initial_lookback = duration(&INITIAL_LOOKBACK_SETTING)?;
                }
                "max_backfill" => config.max_backfill = Some(duration(&MAX_BACKFILL_SETTING)?),
                "late_visibility_window" => {
                    config.late_visibility_window = duration(&LATE_VISIBILITY_WINDOW_SETTING)?;
                }
                "api_requests_per_second" => {
                    config.api_requests_per_second =
                        self.rate(name, value, &API_REQUESTS_PER_SECOND_SETTING)?;
                }
                "max_concurrent_requests" => {
                    let n = self.integer(name, value, &MAX_CONCURRENT_REQUESTS_SETTING)?;
                    config.max_concurrent_requests = usize::try_from(n)
                        .map_err(|_| self.error(value, name, "value is too large"))?;
                }
                "request_timeout" => config.request_timeout = duration(&REQUEST_TIMEOUT_SETTING)?,
                "api_max_attempts" => {
                    let n = self.integer(name, value, &API_MAX_ATTEMPTS_SETTING)?;
                    config.api_max_attempts = u32::try_from(n)
                        .map_err(|_| self.error(value, name, "value is too large"))?;
                }
                "region" => config.region = Some(self.region(name, value)?),
                "state_file" => config.state_file = Some(self.path(name, value)?),
                "state_save_interval" => {
                    config.state_save_interval = duration(&STATE_SAVE_INTERVAL_SETTING)?;
                }
                "removed_association_retention" => {
                    config.removed_association_retention =
                        duration(&REMOVED_ASSOCIATION_RETENTION_SETTING)?;
                }
                "metrics" => config.metrics = self.metrics(name, value)?,
                "target_detail" => config.target_detail = self.target_detail(name, value)?,
                "events" => config.events = Some(self.events(name, value)?),
                // `entries` only yields names listed in KEYS.
                _ => return Err(self.unknown_key(key, name, "", KEYS)),
            }
        }

        if !has_associations && !has_discovery {
            return Err(self.error(
                &root,
                "associations",
                "required key is missing: set associations (association IDs), discovery (selectors), or both",
            ));
        }
        // With events, the listing and the sweep are safety nets: their defaults are longer.
        if config.events.is_some() {
            if !has_poll_interval {
                config.poll_interval = EVENTS_POLL_INTERVAL;
            }
            if !has_full_sweep_interval {
                config.full_sweep_interval = EVENTS_FULL_SWEEP_INTERVAL;
            }
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
            let path = format!("{prefix}{name}");
            if let Some(first_line) = seen.get(&name) {
                return Err(self.error(
                    key,
                    &path,
                    format!("duplicate key (first set at line {first_line})"),
                ));
            }
            seen.insert(name.clone(), key.referenced.line());
            result.push(Entry {
                name,
                path,
                key,
                value,
            });
        }
        Ok(result)
    }

    /// A section (`metrics:`, `target_detail:`): a mapping of some of `keys`, each optional;
    /// returns its entries.
    fn section<'n>(
        &self,
        key: &str,
        node: &'n Node,
        keys: &[&str],
    ) -> Result<Vec<Entry<'n>>, ConfigError> {
        let Raw::Map(entries) = &node.value else {
            let expected = format!("a mapping with some of the keys {}", keys.join(", "));
            let remedy = ", or remove the key to use the defaults";
            return Err(self.wrong_kind(node, key, expected, remedy));
        };
        self.entries(entries, &format!("{key}."), keys)
    }

    /// The items of a list, else a [`Validator::wrong_kind`] error; `empty`, when given, says
    /// what an empty list lacks ("the list is empty; {empty}").
    fn list<'n>(
        &self,
        key: &str,
        node: &'n Node,
        expected: &str,
        remedy: &str,
        empty: Option<&str>,
    ) -> Result<&'n [Node], ConfigError> {
        let Raw::Seq(items) = &node.value else {
            return Err(self.wrong_kind(node, key, expected, remedy));
        };
        match empty {
            Some(empty) if items.is_empty() => {
                Err(self.error(node, key, format!("the list is empty; {empty}")))
            }
            _ => Ok(items),
        }
    }

    /// A non-empty list of mappings, no two items alike by `same`: checks every item is a
    /// mapping, then each item's keys in turn and makes it with `item`.
    fn mapping_list<'n, T>(
        &self,
        key: &str,
        node: &'n Node,
        list: &MappingList<'_>,
        same: impl Fn(&T, &T) -> bool,
        mut item: impl FnMut(Vec<Entry<'n>>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let MappingList {
            item: what,
            keys,
            hint,
        } = list;
        let mapping = format!("a mapping with some of the keys {}", keys.join(", "));
        let expected = format!("{what} ({mapping})");
        let empty = format!("add {what} ({hint}) or remove the key");
        let items = self.list(
            key,
            node,
            &format!("a list, each item {expected}"),
            ", or remove the key",
            Some(&empty),
        )?;
        let mut mappings = Vec::with_capacity(items.len());
        for (index, node) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            match &node.value {
                Raw::Map(entries) => mappings.push((item_key, node, entries)),
                Raw::Null => {
                    return Err(self.error(
                        node,
                        &item_key,
                        format!("empty entry; expected {what} ({mapping}; {hint})"),
                    ));
                }
                _ => return Err(self.unexpected(node, &item_key, &expected)),
            }
        }
        // "a selector" -> "duplicate selector".
        let noun = what.split_once(' ').map_or(*what, |(_, noun)| noun);
        let mut result: Vec<T> = Vec::with_capacity(mappings.len());
        for (item_key, node, entries) in mappings {
            let value = item(self.entries(entries, &format!("{item_key}."), keys)?)?;
            if let Some(first) = result.iter().position(|other| same(other, &value)) {
                return Err(self.error(
                    node,
                    &item_key,
                    format!("duplicate {noun} (same as {key}[{first}])"),
                ));
            }
            result.push(value);
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

    /// The `metrics:` section: a mapping of [`METRICS_KEYS`], each optional.
    fn metrics(&self, key: &str, node: &Node) -> Result<MetricsConfig, ConfigError> {
        let mut metrics = MetricsConfig::default();
        for Entry {
            name, path, value, ..
        } in self.section(key, node, METRICS_KEYS)?
        {
            match name.as_str() {
                "duration_histogram" => metrics.duration_histogram = self.choice(&path, value)?,
                "last_execution_status" => {
                    metrics.last_execution_status = self.choice(&path, value)?;
                }
                "per_association_internals" => {
                    metrics.per_association_internals = self.boolean(&path, value)?;
                }
                // `section` only yields names listed in METRICS_KEYS.
                _ => unreachable!("{name} is not in METRICS_KEYS"),
            }
        }
        Ok(metrics)
    }

    /// The `target_detail:` section: a mapping of [`TARGET_DETAIL_KEYS`], each optional.
    fn target_detail(&self, key: &str, node: &Node) -> Result<TargetDetailConfig, ConfigError> {
        let mut detail = TargetDetailConfig::default();
        for Entry {
            name, path, value, ..
        } in self.section(key, node, TARGET_DETAIL_KEYS)?
        {
            let count = |setting| self.integer(&path, value, setting).map(|n| n as usize);
            match name.as_str() {
                "enabled" => detail.enabled = self.boolean(&path, value)?,
                "max_targets_per_execution" => {
                    detail.max_targets_per_execution = count(&MAX_TARGETS_PER_EXECUTION_SETTING)?;
                }
                "failing_targets_gauge" => {
                    detail.failing_targets_gauge = self.boolean(&path, value)?;
                }
                "max_failing_targets" => {
                    detail.max_failing_targets = count(&MAX_FAILING_TARGETS_SETTING)?;
                }
                // `section` only yields names listed in TARGET_DETAIL_KEYS.
                _ => unreachable!("{name} is not in TARGET_DETAIL_KEYS"),
            }
        }
        Ok(detail)
    }

    fn duration(
        &self,
        key: &str,
        node: &Node,
        setting: &DurationSetting,
    ) -> Result<Duration, ConfigError> {
        const EXPECTED: &str = "a duration such as 1m30s";
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
            _ => {
                let remedy = default_remedy(format_duration(setting.default));
                return Err(self.wrong_kind(node, key, EXPECTED, remedy));
            }
        };
        let value = parse_duration(text)
            .map_err(|err| self.error(node, key, format!("invalid duration {shown}: {err}")))?;
        if value < setting.min {
            let min = setting.min_text;
            return Err(self.error(node, key, format!("must be at least {min}, got {text}")));
        }
        match setting.max {
            Some((max, max_text)) if value > max => {
                Err(self.error(node, key, format!("must be at most {max_text}, got {text}")))
            }
            _ => Ok(value),
        }
    }

    fn integer(&self, key: &str, node: &Node, setting: &IntSetting) -> Result<u64, ConfigError> {
        let (min, max) = (setting.range.start(), setting.range.end());
        let expected = format!("a whole number between {min} and {max}");
        match &node.value {
            Raw::Int(n) => u64::try_from(*n)
                .ok()
                .filter(|n| setting.range.contains(n))
                .ok_or_else(|| {
                    let got = self.describe(node);
                    self.error(
                        node,
                        key,
                        format!("must be between {min} and {max}, got {got}"),
                    )
                }),
            _ => Err(self.wrong_kind(node, key, expected, default_remedy(setting.default))),
        }
    }

    fn rate(&self, key: &str, node: &Node, setting: &RateSetting) -> Result<f64, ConfigError> {
        let expected = format!("a number greater than 0 and at most {}", setting.max);
        // i128 to f64: rounding is fine for a rate.
        let value = match &node.value {
            Raw::Int(n) => *n as f64,
            Raw::Float(x) => *x,
            _ => {
                let remedy = default_remedy(setting.default);
                return Err(self.wrong_kind(node, key, expected, remedy));
            }
        };
        let got = self.describe(node);
        if !value.is_finite() {
            Err(self.error(node, key, format!("must be {expected}, got {got}")))
        } else if value <= 0.0 {
            Err(self.error(node, key, format!("must be greater than 0, got {got}")))
        } else if value > setting.max {
            let max = setting.max;
            Err(self.error(node, key, format!("must be at most {max}, got {got}")))
        } else {
            Ok(value)
        }
    }

    /// One of the words of `T`; the first is the default.
    fn choice<T: Word>(&self, key: &str, node: &Node) -> Result<T, ConfigError> {
        let names = T::WORDS;
        let list = names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        // YAML 1.1 reads a bare `off` as false: take the word as written.
        let word = match (&node.value, self.source_text(node)) {
            (Raw::Str(s), _) => Some(s.as_str()),
            (Raw::Bool(_), text) => text,
            _ => None,
        };
        if let Some((_, value)) = names.iter().find(|(name, _)| Some(*name) == word) {
            return Ok(*value);
        }
        let remedy = default_remedy(names[0].0);
        Err(self.wrong_kind(node, key, format_args!("one of {list}"), remedy))
    }

    fn boolean(&self, key: &str, node: &Node) -> Result<bool, ConfigError> {
        match &node.value {
            Raw::Bool(b) => Ok(*b),
            _ => Err(self.unexpected(node, key, "true or false")),
        }
    }

    /// A file path; relative paths are relative to the config file's directory.
    fn path(&self, key: &str, node: &Node) -> Result<PathBuf, ConfigError> {
        match &node.value {
            Raw::Str(s) if !s.trim().is_empty() => {
                let path = Path::new(s);
                if path.is_relative() {
                    let base = Path::new(self.file).parent().unwrap_or(Path::new(""));
                    Ok(base.join(path))
                } else {
                    Ok(path.to_path_buf())
                }
            }
            _ => Err(self.unexpected(node, key, "a file path")),
        }
    }
}

/// ", or remove the key to use the default ({default})", the remedy for a missing value.
fn default_remedy(default: impl Display) -> String {
    format!(", or remove the key to use the default ({default})")
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

#[cfg(test)]
mod tests {
    use super::super::{parse, DurationHistogram};
    use super::*;

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
