//! What to watch: the `associations:` IDs and the `discovery:` selectors (patterns, tags).

use std::collections::{BTreeMap, HashMap};

use super::super::{AssociationConfig, ConfigError, Pattern, Selector};
use super::{Entry, Validator, SELECTORS};
use crate::yaml::{Node, Raw};

const EXAMPLE_ASSOCIATION_ID: &str = "8dfe3659-4309-493a-8755-0123456789ab";

impl Validator<'_> {
    /// The `associations:` list; it may be empty when `discovery` selects associations.
    pub(super) fn associations(
        &self,
        node: &Node,
        has_discovery: bool,
    ) -> Result<Vec<AssociationConfig>, ConfigError> {
        const KEY: &str = "associations";
        let empty = (!has_discovery).then_some("name at least one association ID");
        let items = self.list(KEY, node, "a list of association IDs", "", empty)?;

        // Lower-case ID -> (line, ID as written) of its first occurrence.
        let mut first_seen: HashMap<String, (u64, &str)> = HashMap::new();
        let mut associations = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{KEY}[{index}]");
            let (id_node, id_key) = self.association_id_node(item, &item_key)?;
            let id = match &id_node.value {
                Raw::Str(s) if is_association_id(s) => s.as_str(),
                Raw::Null => return Err(self.missing(id_node, &id_key, "an association ID")),
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
            Raw::Seq(_) => Err(self.unexpected(
                item,
                item_key,
                "an association ID or a mapping with the key id",
            )),
            _ => Ok((item, item_key.to_owned())),
        }
    }

    /// The `discovery:` selectors; no two alike.
    pub(super) fn discovery(&self, key: &str, node: &Node) -> Result<Vec<Selector>, ConfigError> {
        self.mapping_list(key, node, &SELECTORS, Selector::eq, |entries| {
            let mut selector = Selector::default();
            for Entry {
                name, path, value, ..
            } in entries
            {
                match name.as_str() {
                    "association_name" => {
                        selector.association_name = Some(self.pattern(&path, value)?);
                    }
                    "document_name" => selector.document_name = Some(self.pattern(&path, value)?),
                    "tags" => selector.tags = self.tags(&path, value)?,
                    // `mapping_list` only yields names listed in SELECTOR_KEYS.
                    _ => unreachable!("{name} is not in SELECTOR_KEYS"),
                }
            }
            Ok(selector)
        })
    }

    /// A regular expression matched against whole names.
    fn pattern(&self, key: &str, node: &Node) -> Result<Pattern, ConfigError> {
        const EXPECTED: &str = "a regular expression (a string)";
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
                return Err(self.missing(
                    node,
                    key,
                    "a regular expression such as '^prod-', or remove the key to match every name",
                ));
            }
            Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => {
                return Err(self.unquoted(node, key, EXPECTED));
            }
            _ => return Err(self.unexpected(node, key, EXPECTED)),
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
        const EXPECTED: &str = "a mapping of tag keys to values such as {team: platform}";
        let Raw::Map(entries) = &node.value else {
            return Err(self.wrong_kind(node, key, EXPECTED, ", or remove the key"));
        };
        let mut tags = BTreeMap::new();
        let mut first_line: HashMap<&str, u64> = HashMap::new();
        for (tag_key, value) in entries {
            let name = match &tag_key.value {
                Raw::Str(s) if !s.is_empty() => s.as_str(),
                Raw::Str(_) => return Err(self.error(tag_key, key, "empty tag key")),
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
                    let got = self.describe(value);
                    let message = format!("tag values are strings; quote it: '{got}'");
                    return Err(self.error(value, &full, message));
                }
                Raw::Null => {
                    let expected = "the tag's value (a string; '' for an empty one)";
                    return Err(self.missing(value, &full, expected));
                }
                _ => return Err(self.unexpected(value, &full, "the tag's value (a string)")),
            };
            tags.insert(name.to_owned(), value);
        }
        Ok(tags)
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

#[cfg(test)]
mod tests {
    use super::super::super::parse;
    use super::*;

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
}
