//! Where to watch: the `region` and `regions` names and the `accounts:` entries (role ARNs,
//! external IDs).

use std::fmt::Write as _;

use super::super::{AccountConfig, ConfigError, RoleArn};
use super::{edit_distance, Entry, Validator, ACCOUNTS};
use crate::yaml::{Node, Raw};

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

impl Validator<'_> {
    /// A region name, checked by [`is_region`] (`region`, `regions[i]`, `accounts[i].regions[j]`).
    pub(super) fn region(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
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
            Raw::Null => Err(self.missing(
                node,
                key,
                "an AWS region such as us-east-1, or remove the key to use the AWS config chain",
            )),
            _ => Err(self.unexpected(node, key, format_args!("an AWS region ({EXAMPLES})"))),
        }
    }

    /// A non-empty list of regions, no repeats; `default` says what removing the key means.
    pub(super) fn regions(
        &self,
        key: &str,
        node: &Node,
        default: &str,
    ) -> Result<Vec<String>, ConfigError> {
        const EXPECTED: &str = "a list of AWS regions such as [us-east-1, eu-west-1]";
        if let Raw::Str(s) = &node.value {
            return Err(self.error(
                node,
                key,
                format!("expected a list of AWS regions, got {s:?}; write [{s}]"),
            ));
        }
        let remove = format!("or remove the key to use {default}");
        let empty = format!("name at least one region, {remove}");
        let items = self.list(key, node, EXPECTED, &format!(", {remove}"), Some(&empty))?;
        let mut regions: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            if let Raw::Null = item.value {
                let expected = format!("an AWS region ({REGION_EXAMPLES})");
                return Err(self.missing(item, &item_key, expected));
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
    pub(super) fn accounts(
        &self,
        key: &str,
        node: &Node,
    ) -> Result<Vec<AccountConfig>, ConfigError> {
        let same_role = |a: &AccountConfig, b: &AccountConfig| a.role_arn == b.role_arn;
        self.mapping_list(key, node, &ACCOUNTS, same_role, |entries| {
            let mut account = AccountConfig::default();
            let mut external_id_key = None;
            for Entry {
                name,
                path,
                key,
                value,
            } in entries
            {
                match name.as_str() {
                    "role_arn" => account.role_arn = Some(self.role_arn(&path, value)?),
                    "external_id" => {
                        account.external_id = Some(self.external_id(&path, value)?);
                        external_id_key = Some((key, path));
                    }
                    "regions" => {
                        account.regions = self.regions(&path, value, "the top-level regions")?;
                    }
                    // `mapping_list` only yields names listed in ACCOUNT_KEYS.
                    _ => unreachable!("{name} is not in ACCOUNT_KEYS"),
                }
            }
            if let (Some((external_id, path)), None) = (external_id_key, &account.role_arn) {
                return Err(self.error(
                    external_id,
                    &path,
                    "external_id needs role_arn (it is sent with AssumeRole)",
                ));
            }
            Ok(account)
        })
    }

    pub(super) fn role_arn(&self, key: &str, node: &Node) -> Result<RoleArn, ConfigError> {
        const EXPECTED: &str =
            "a role ARN such as arn:aws:iam::111111111111:role/ssm-association-exporter";
        match &node.value {
            Raw::Str(s) => RoleArn::parse(s)
                .map_err(|reason| self.error(node, key, format!("malformed role ARN: {reason}"))),
            _ => {
                let remedy = ", or remove the key to use the exporter's own credentials";
                Err(self.wrong_kind(node, key, EXPECTED, remedy))
            }
        }
    }

    pub(super) fn external_id(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        const EXPECTED: &str = "2 to 1224 letters, digits and _+=,.@:/-";
        match &node.value {
            Raw::Str(s) if is_external_id(s) => Ok(s.clone()),
            Raw::Str(s) => Err(self.error(
                node,
                key,
                format!("{s:?} is not a valid external ID (expected {EXPECTED})"),
            )),
            Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => {
                Err(self.unquoted(node, key, "an external ID (a string)"))
            }
            _ => {
                let expected = format!("an external ID ({EXPECTED})");
                Err(self.wrong_kind(node, key, expected, ", or remove the key"))
            }
        }
    }
}

/// Whether `s` is a well-formed AWS region name: `<area>-<direction>-<number>` with an area
/// of [`REGION_AREAS`] (`us`, `us-gov`, ...), a direction of [`REGION_DIRECTIONS`] and a
/// number from 1 to 99 (`us-east-1`, `us-gov-west-1`, `ap-southeast-7`).
pub(super) fn is_region(s: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
