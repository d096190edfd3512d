//! Strict YAML documents whose every error reads `file:line:column: key: message`.
//!
//! Both config files (`config`, `web_config.rs`) are parsed here, in two steps:
//!
//! 1. [`parse`] reads the text into a location-annotated tree ([`Node`]). Only YAML
//!    itself can fail here (syntax, unsupported tags); such errors read
//!    `file:line:column: invalid YAML: message`.
//! 2. The caller either validates that tree itself (`config`, which reports
//!    repeated keys with both positions) or asks [`Document::deserialize`] for a
//!    typed value (`web_config.rs`, with `deny_unknown_fields`). A schema error
//!    from serde-saphyr is named by the key path found at its location in the
//!    tree, e.g. `tls_server_config.key_file` or `associations[1].id`.
//!
//! Locations always come from serde-saphyr's location data ([`Location`],
//! [`Spanned`], [`serde_saphyr::Error::location`]), never from its message text.
//! Checks made after parsing place their errors with [`Document::error`].

use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

/// An error in a YAML config file, displayed as `{file}:{line}:{column}: {key}: {message}`.
///
/// Parts that do not apply are left out: `{file}: {message}` when there is no
/// location (unreadable or empty file), `{file}:{line}:{column}: {message}`
/// when no key applies (YAML syntax errors, a document that is not a mapping).
#[derive(Debug, thiserror::Error)]
pub struct Error {
    /// The file name as given.
    pub file: String,
    /// 1-based line of the offending value or key.
    pub line: Option<u64>,
    /// 1-based column of the offending value or key.
    pub column: Option<u64>,
    /// Path of the offending key, e.g. `poll_interval` or `associations[1].id`.
    pub key: Option<String>,
    /// Lower-case description of the problem.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Error {
    /// An error without location or key.
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error at `location`; `key` is `None` when no key applies.
    pub fn at(
        file: &str,
        location: Location,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let known = location.line() > 0;
        Self {
            file: file.to_owned(),
            line: known.then(|| location.line()),
            column: known.then(|| location.column()),
            key,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// A parsed document: its text (without a byte-order mark) and its tree.
pub struct Document<'a> {
    /// The file name as given, for messages.
    pub file: &'a str,
    /// The text that locations and spans refer to.
    pub text: &'a str,
    /// The whole document; `Raw::Null` when it is empty or holds only comments.
    pub root: Node,
}

/// Parses `text` into a located tree. Repeated keys are kept (so that both
/// positions can be reported), `.inf`/`.nan` are kept (so that the key can be
/// named), and a tag such as `!secret` is an error rather than silently ignored.
pub fn parse<'a>(text: &'a str, file: &'a str) -> Result<Document<'a>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        reject_unsupported_tags: true,
        with_snippet: false,
    };
    let root: Node = serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        let message = format!("invalid YAML: {}", message(&err));
        match err.location() {
            Some(location) => Error::at(file, location, None, message),
            None => Error::whole_file(file, message),
        }
    })?;
    Ok(Document { file, text, root })
}

impl Document<'_> {
    /// Deserializes the document into `T`, rejecting repeated keys. An error is
    /// placed at serde-saphyr's location and named by the key path there.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let options = serde_saphyr::options! {
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
            reject_unsupported_tags: true,
            with_snippet: false,
        };
        serde_saphyr::from_str_with_options(self.text, options).map_err(|err| {
            let Some(location) = err.location().filter(|l| l.line() > 0) else {
                return Error::whole_file(self.file, message(&err));
            };
            let (path, first_line) = key_path_at(&self.root, (location.line(), location.column()));
            let message = match err.without_snippet() {
                serde_saphyr::Error::DuplicateMappingKey { .. } => match first_line {
                    Some(line) => format!("duplicate key (first set at line {line})"),
                    None => "duplicate key".to_owned(),
                },
                _ => message(&err),
            };
            Error::at(
                self.file,
                location,
                (!path.is_empty()).then_some(path),
                message,
            )
        })
    }

    /// An error about the value at `path` (mapping keys from the root), named
    /// by `path` joined with dots. When the path is not in the document (a
    /// required key is missing), the error points at the nearest value that is.
    /// An empty path gives an error about the whole file.
    pub fn error(&self, path: &[&str], message: impl Into<String>) -> Error {
        if path.is_empty() {
            return Error::whole_file(self.file, message);
        }
        let mut node = &self.root;
        for segment in path {
            let Raw::Map(entries) = &node.value else {
                break;
            };
            let Some((_, value)) = entries
                .iter()
                .find(|(key, _)| matches!(&key.value, Raw::Str(s) if s == segment))
            else {
                break;
            };
            node = value;
        }
        Error::at(self.file, node.referenced, Some(path.join(".")), message)
    }
}

/// serde-saphyr's user-facing message for `err`, without location and on one line.
fn message(err: &serde_saphyr::Error) -> String {
    one_line(&UserMessageFormatter.format_message(err.without_snippet()))
}

/// Escapes control characters so that a message stays on one line.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// The path of the innermost key or list item at or before `at` (line, column)
/// (`a.b[2].c`), and, when that last key repeats an earlier key of its mapping,
/// the line where the earlier one is.
fn key_path_at(root: &Node, at: (u64, u64)) -> (String, Option<u64>) {
    let position = |l: Location| (l.line(), l.column());
    let mut path = String::new();
    let mut first_line = None;
    let mut node = root;
    loop {
        match &node.value {
            Raw::Map(entries) => {
                let Some(index) = entries
                    .iter()
                    .rposition(|(k, _)| position(k.referenced) <= at)
                else {
                    break;
                };
                let (key, value) = &entries[index];
                let name = key_name(key);
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&name);
                first_line = entries[..index]
                    .iter()
                    .find(|(k, _)| key_name(k) == name)
                    .map(|(k, _)| k.referenced.line());
                node = value;
            }
            Raw::Seq(items) => {
                let Some(index) = items
                    .iter()
                    .rposition(|item| position(item.referenced) <= at)
                else {
                    break;
                };
                path.push_str(&format!("[{index}]"));
                first_line = None;
                node = &items[index];
            }
            _ => break,
        }
    }
    (path, first_line)
}

/// A mapping key as shown in a key path.
fn key_name(key: &Node) -> String {
    match &key.value {
        Raw::Str(s) => s.clone(),
        Raw::Null => "~".to_owned(),
        Raw::Bool(b) => b.to_string(),
        Raw::Int(n) => n.to_string(),
        Raw::Float(x) => x.to_string(),
        Raw::Seq(_) => "[...]".to_owned(),
        Raw::Map(_) => "{...}".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Location-annotated YAML tree
// ---------------------------------------------------------------------------

/// A YAML value with the location where it is used (`referenced`) and written (`defined`).
pub type Node = Spanned<Raw>;

/// A YAML value as resolved by the YAML core schema, with located children.
#[derive(Debug)]
pub enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order, repeated keys included.
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML scalar, list or mapping")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        // Beyond i128: only used for messages and range errors, so a float is enough.
        Ok(i128::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
    }

    #[test]
    fn key_paths_follow_locations() {
        let doc = parse("a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\ne: 3\n", "f.yml").unwrap();
        let path = |line, column| key_path_at(&doc.root, (line, column)).0;
        assert_eq!(path(1, 1), "a");
        assert_eq!(path(2, 6), "a.b");
        assert_eq!(path(4, 7), "a.c[0]");
        assert_eq!(path(5, 8), "a.c[1].d");
        assert_eq!(path(6, 4), "e");
    }

    #[test]
    fn errors_about_missing_keys_point_at_the_parent() {
        let doc = parse("a:\n  b: 1\n", "f.yml").unwrap();
        assert_eq!(
            doc.error(&["a", "b"], "bad").to_string(),
            "f.yml:2:6: a.b: bad"
        );
        assert_eq!(
            doc.error(&["a", "z"], "missing").to_string(),
            "f.yml:2:3: a.z: missing"
        );
        assert_eq!(doc.error(&[], "whole").to_string(), "f.yml: whole");
    }
}
