//! Tests of config loading, validation, error messages and durations.

use std::path::Path;
use std::time::Duration;

use std::collections::BTreeMap;

use ssm_association_exporter::config::{
    format_duration, load, parse, parse_duration, AccountConfig, AssociationConfig, Config,
    ConfigError, DurationHistogram, EventsConfig, LastExecutionStatus, MetricsConfig, Pattern,
    QueueConfig, RoleArn, Selector, TargetDetailConfig, DEFAULT_CONFIG_FILE,
};

const ID_A: &str = "8dfe3659-4309-493a-8755-0123456789ab";
const ID_B: &str = "0b1f2e3d-4c5b-4a69-8877-66554433aabb";
const KEY_LIST: &str = "associations, discovery, discovery_interval, poll_interval, \
                        full_listing_interval, full_sweep_interval, full_sweep_max_polls_per_interval, \
                        pending_recheck_max_interval, \
                        initial_lookback, max_backfill, late_visibility_window, \
                        api_requests_per_second, max_concurrent_requests, request_timeout, \
                        api_max_attempts, region, regions, accounts, state_file, \
                        state_save_interval, removed_association_retention, metrics, \
                        target_detail, events";
const REGION_HINT: &str =
    "(expected <area>-<direction>-<number>, e.g. us-east-1, eu-central-2 or us-gov-west-1)";
const ROLE: &str = "arn:aws:iam::111111111111:role/ssm-association-exporter";
const ID_HINT: &str =
    "(expected 8-4-4-4-12 hexadecimal characters, e.g. 8dfe3659-4309-493a-8755-0123456789ab)";

fn fixture(name: &str) -> String {
    format!("tests/fixtures/config/{name}")
}

fn load_fixture(name: &str) -> Result<Config, ConfigError> {
    load(Path::new(&fixture(name)))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn pattern(source: &str) -> Option<Pattern> {
    Some(Pattern::new(source).unwrap())
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn role(arn: &str) -> Option<RoleArn> {
    Some(RoleArn::parse(arn).unwrap())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// --- valid files -----------------------------------------------------------

#[test]
fn minimal_config_gets_defaults() {
    let config = load_fixture("valid_minimal.yaml").unwrap();
    assert_eq!(
        config,
        Config {
            associations: vec![AssociationConfig { id: ID_A.into() }],
            poll_interval: secs(60),
            initial_lookback: secs(3600),
            late_visibility_window: secs(600),
            max_backfill: None,
            api_requests_per_second: 5.0,
            max_concurrent_requests: 4,
            request_timeout: secs(10),
            api_max_attempts: 3,
            region: None,
            state_file: None,
            state_save_interval: secs(5),
            removed_association_retention: secs(7 * 24 * 3600),
            metrics: MetricsConfig {
                duration_histogram: DurationHistogram::PerAssociation,
                last_execution_status: LastExecutionStatus::Current,
                per_association_internals: false,
            },
            target_detail: TargetDetailConfig {
                enabled: true,
                max_targets_per_execution: 50,
                failing_targets_gauge: false,
                max_failing_targets: 20,
            },
            discovery: Vec::new(),
            discovery_interval: secs(300),
            regions: Vec::new(),
            accounts: Vec::new(),
            full_sweep_interval: secs(3600),
            full_sweep_max_polls_per_interval: 5,
            pending_recheck_max_interval: secs(3600),
            full_listing_interval: secs(600),
            events: None,
            source: fixture("valid_minimal.yaml"),
        }
    );
}

#[test]
fn full_config_sets_every_key() {
    let config = load_fixture("valid_full.yaml").unwrap();
    assert_eq!(
        config,
        Config {
            // The map-form ID is written in upper case and normalized.
            associations: vec![
                AssociationConfig { id: ID_A.into() },
                AssociationConfig { id: ID_B.into() },
            ],
            poll_interval: secs(120),
            initial_lookback: secs(36 * 3600),
            late_visibility_window: Duration::ZERO,
            max_backfill: Some(secs(6 * 3600)),
            api_requests_per_second: 2.5,
            max_concurrent_requests: 16,
            request_timeout: Duration::from_millis(1500),
            api_max_attempts: 5,
            region: Some("eu-central-2".into()),
            // Relative to the config file's directory.
            state_file: Some("tests/fixtures/config/state/exporter-state.json".into()),
            state_save_interval: secs(2),
            removed_association_retention: secs(3600),
            metrics: MetricsConfig {
                duration_histogram: DurationHistogram::PerStatus,
                last_execution_status: LastExecutionStatus::PerStatus,
                per_association_internals: true,
            },
            target_detail: TargetDetailConfig {
                enabled: true,
                max_targets_per_execution: 200,
                failing_targets_gauge: true,
                max_failing_targets: 5,
            },
            discovery: vec![Selector {
                association_name: None,
                document_name: pattern("AWS-RunPatchBaseline"),
                tags: tags(&[("env", "prod"), ("team", "platform")]),
            }],
            discovery_interval: secs(600),
            // Set in valid_estate.yaml: it excludes region.
            regions: Vec::new(),
            accounts: vec![
                AccountConfig {
                    role_arn: role("arn:aws:iam::222222222222:role/ops/ssm-reader"),
                    external_id: Some("ext-id-1".into()),
                    regions: Vec::new(),
                },
                AccountConfig {
                    role_arn: None,
                    external_id: None,
                    regions: strings(&["eu-west-1", "eu-central-1"]),
                },
            ],
            full_sweep_interval: secs(1800),
            full_sweep_max_polls_per_interval: 12,
            pending_recheck_max_interval: secs(1200),
            full_listing_interval: secs(0),
            events: Some(EventsConfig {
                queues: vec![
                    QueueConfig {
                        url: "https://sqs.eu-central-2.amazonaws.com/111111111111/ssm-events"
                            .into(),
                        region: "eu-central-2".into(),
                        account_id: "111111111111".into(),
                        name: "ssm-events".into(),
                        role_arn: None,
                        external_id: None,
                    },
                    QueueConfig {
                        url: "https://sqs.eu-west-1.amazonaws.com/222222222222/ssm-events".into(),
                        region: "eu-west-1".into(),
                        account_id: "222222222222".into(),
                        name: "ssm-events".into(),
                        role_arn: Some(RoleArn {
                            arn: "arn:aws:iam::222222222222:role/ops/ssm-events-reader".into(),
                            account_id: "222222222222".into(),
                        }),
                        external_id: Some("ext-id-2".into()),
                    },
                ],
                progress_poll_delay: secs(45),
            }),
            source: fixture("valid_full.yaml"),
        }
    );
}

#[test]
fn estate_config_parses() {
    let config = load_fixture("valid_estate.yaml").unwrap();
    let minimal = load_fixture("valid_minimal.yaml").unwrap();
    assert_eq!(
        config,
        Config {
            associations: vec![AssociationConfig { id: ID_A.into() }],
            discovery: vec![
                Selector {
                    association_name: pattern("^prod-"),
                    document_name: pattern("^AWS-RunPatchBaseline$"),
                    tags: tags(&[("team", "platform")]),
                },
                Selector::default(),
            ],
            discovery_interval: secs(300),
            regions: strings(&["us-east-1", "eu-west-1"]),
            accounts: vec![
                AccountConfig {
                    role_arn: role(ROLE),
                    external_id: Some("optional".into()),
                    regions: strings(&["eu-west-1"]),
                },
                AccountConfig::default(),
            ],
            full_sweep_interval: secs(3600),
            source: fixture("valid_estate.yaml"),
            ..minimal
        }
    );
    assert_eq!(
        config.accounts[0].role_arn.as_ref().unwrap().account_id,
        "111111111111"
    );
    let summary = config.summary();
    assert!(
        summary.contains(
            "discovery: 2\n\
             \x20 - association_name=^prod-,document_name=^AWS-RunPatchBaseline$,tag:team=platform\n\
             \x20 - everything\n\
             discovery_interval: 5m\npoll_interval: 1m\nfull_listing_interval: 10m\n\
             full_sweep_interval: 1h\n"
        ),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "region: from the AWS config chain\nregions: us-east-1, eu-west-1\naccounts: 2\n\
             \x20 - {ROLE} with an external ID in eu-west-1\n\
             \x20 - own credentials in us-east-1, eu-west-1\n"
        )),
        "{summary}"
    );
}

#[test]
fn discovery_alone_needs_no_associations() {
    let config = load_fixture("valid_discovery_only.yaml").unwrap();
    assert_eq!(config.associations, Vec::new());
    assert_eq!(
        config.discovery,
        vec![Selector {
            document_name: pattern("AWS-RunPatchBaseline"),
            ..Selector::default()
        }]
    );
    let config = load_fixture("associations_empty_with_discovery.yaml").unwrap();
    assert_eq!(config.associations, Vec::new());
    assert_eq!(config.discovery.len(), 1);
}

#[test]
fn estate_boundary_values_are_accepted() {
    let text = "discovery:\n  - tags: {}\n    association_name: '(?i)PROD-.*'\n\
                discovery_interval: 24h\nfull_sweep_interval: 7d\n\
                regions: [us-gov-west-1, cn-northwest-1, us-isob-east-1, eu-isoe-west-1, ap-southeast-12]\n\
                accounts:\n  - role_arn: arn:aws-us-gov:iam::123456789012:role/a/b/c\n    external_id: ab\n";
    let config = parse(text, "bounds.yaml").unwrap();
    assert_eq!(config.discovery_interval, secs(86_400));
    assert_eq!(config.full_sweep_interval, secs(7 * 86_400));
    assert!(config.discovery[0].tags.is_empty());
    let name = config.discovery[0].association_name.as_ref().unwrap();
    assert!(name.is_match("prod-web"));
    assert!(!name.is_match("x-prod-web"));
    assert_eq!(config.regions.len(), 5);
    assert_eq!(config.accounts[0].external_id.as_deref(), Some("ab"));
    // Two own-credentials entries differ only in regions: a duplicate all the same.
    let config = parse(
        "discovery: [{}]\ndiscovery_interval: 1s\nfull_sweep_interval: 1s\n",
        "bounds.yaml",
    )
    .unwrap();
    assert_eq!(config.discovery, vec![Selector::default()]);
}

#[test]
fn example_configs_parse() {
    let minimal = load(Path::new("config/minimal.yaml")).unwrap();
    let example = load(Path::new("config/example.yaml")).unwrap();
    // example.yaml documents the defaults: apart from the extra association
    // and the region it must match what minimal.yaml gets by default.
    assert_eq!(
        example,
        Config {
            associations: vec![
                AssociationConfig { id: ID_A.into() },
                AssociationConfig { id: ID_B.into() },
            ],
            region: Some("us-east-1".into()),
            source: "config/example.yaml".into(),
            ..minimal.clone()
        }
    );
    assert_eq!(
        minimal.associations,
        vec![AssociationConfig { id: ID_A.into() }]
    );
}

#[test]
fn parse_uses_given_file_name() {
    let config = parse(&format!("associations: [{ID_A}]\n"), "inline.yaml").unwrap();
    assert_eq!(config.source, "inline.yaml");
}

#[test]
fn boundary_values_are_accepted() {
    let text = format!(
        "associations: [{ID_A}]\npoll_interval: 1s\ninitial_lookback: 90d\n\
         late_visibility_window: 24h\napi_requests_per_second: 10000\n\
         max_concurrent_requests: 256\nrequest_timeout: 100ms\napi_max_attempts: 10\n"
    );
    let config = parse(&text, "bounds.yaml").unwrap();
    assert_eq!(config.poll_interval, secs(1));
    assert_eq!(config.initial_lookback, secs(90 * 86_400));
    assert_eq!(config.late_visibility_window, secs(86_400));
    assert_eq!(config.api_requests_per_second, 10_000.0);
    assert_eq!(config.max_concurrent_requests, 256);
    assert_eq!(config.request_timeout, Duration::from_millis(100));
    assert_eq!(config.api_max_attempts, 10);

    let text = format!(
        "associations: [{ID_A}]\ninitial_lookback: 1s\nrequest_timeout: 5m\n\
         api_requests_per_second: 0.01\nmax_concurrent_requests: 1\napi_max_attempts: 1\n"
    );
    let config = parse(&text, "bounds.yaml").unwrap();
    assert_eq!(config.request_timeout, secs(300));
    assert_eq!(config.api_requests_per_second, 0.01);
}

#[test]
fn summary_lists_effective_values() {
    let config = load_fixture("valid_minimal.yaml").unwrap();
    assert_eq!(
        config.summary(),
        format!(
            "config file: tests/fixtures/config/valid_minimal.yaml\n\
             associations: 1\n  - {ID_A}\n\
             discovery: 0\ndiscovery_interval: 5m\n\
             poll_interval: 1m\nfull_listing_interval: 10m\nfull_sweep_interval: 1h\n\
             full_sweep_max_polls_per_interval: 5\npending_recheck_max_interval: 1h\n\
             initial_lookback: 1h\nmax_backfill: 1h (initial_lookback)\nlate_visibility_window: 10m\n\
             api_requests_per_second: 5\nmax_concurrent_requests: 4\nrequest_timeout: 10s\n\
             api_max_attempts: 3\nregion: from the AWS config chain\n\
             regions: none (the region above)\n\
             accounts: none (the exporter's own credentials)\n\
             state_file: none (state is kept in memory only)\nstate_save_interval: 5s\n\
             removed_association_retention: 7d\n\
             metrics: duration_histogram per_association, last_execution_status current, \
             per_association_internals false\n\
             target_detail: enabled true, max_targets_per_execution 50, \
             failing_targets_gauge false, max_failing_targets 20\n\
             events: off (polling only)"
        )
    );
    let full = load_fixture("valid_full.yaml").unwrap().summary();
    assert!(
        full.contains("initial_lookback: 1d12h\nmax_backfill: 6h\n"),
        "{full}"
    );
    assert!(full.contains("late_visibility_window: 0s\n"), "{full}");
    assert!(full.contains("api_requests_per_second: 2.5\n"), "{full}");
    assert!(full.contains("region: eu-central-2\n"), "{full}");
    assert!(
        full.contains(
            "discovery: 1\n  - document_name=AWS-RunPatchBaseline,tag:env=prod,tag:team=platform\n\
             discovery_interval: 10m\npoll_interval: 2m\nfull_listing_interval: 0s\n\
             full_sweep_interval: 30m\nfull_sweep_max_polls_per_interval: 12\n"
        ),
        "{full}"
    );
    assert!(
        full.contains(
            "regions: none (the region above)\naccounts: 2\n\
             \x20 - arn:aws:iam::222222222222:role/ops/ssm-reader with an external ID in eu-central-2\n\
             \x20 - own credentials in eu-west-1, eu-central-1\n"
        ),
        "{full}"
    );
    assert!(
        full.ends_with(
            "state_file: tests/fixtures/config/state/exporter-state.json\nstate_save_interval: 2s\n\
             removed_association_retention: 1h\n\
             metrics: duration_histogram per_status, last_execution_status per_status, \
             per_association_internals true\n\
             target_detail: enabled true, max_targets_per_execution 200, \
             failing_targets_gauge true, max_failing_targets 5\n\
             events: 2 SQS queues (polls on State Manager events: an end's at once, progress within 45s; listing and sweep as above)\n\
             \x20 - https://sqs.eu-central-2.amazonaws.com/111111111111/ssm-events (account 111111111111, eu-central-2) read with own credentials\n\
             \x20 - https://sqs.eu-west-1.amazonaws.com/222222222222/ssm-events (account 222222222222, eu-west-1) read with arn:aws:iam::222222222222:role/ops/ssm-events-reader"
        ),
        "{full}"
    );
}

#[test]
fn default_config_file_name() {
    assert_eq!(DEFAULT_CONFIG_FILE, "ssm-association-exporter.yaml");
}

// --- invalid files: exact messages -------------------------------------------

/// The invalid config files, as their errors name them.
const BAD_DIR: &str = "tests/fixtures/config/bad";

/// Every invalid config file in [`BAD_DIR`] and the exact error loading it prints
/// (`file:line:column: key: message`), as blackbox_exporter's `TestLoadBadConfigs`.
const BAD_CONFIGS: &[(&str, &str)] = &[
    (
        "unknown_key.yaml",
        "tests/fixtures/config/bad/unknown_key.yaml:3:1: pol_interval: unknown key; expected one of associations, discovery, discovery_interval, poll_interval, full_listing_interval, full_sweep_interval, full_sweep_max_polls_per_interval, pending_recheck_max_interval, initial_lookback, max_backfill, late_visibility_window, api_requests_per_second, max_concurrent_requests, request_timeout, api_max_attempts, region, regions, accounts, state_file, state_save_interval, removed_association_retention, metrics, target_detail, events (did you mean poll_interval?)",
    ),
    (
        "unknown_entry_key.yaml",
        "tests/fixtures/config/bad/unknown_entry_key.yaml:4:5: associations[1].name: unknown key; expected id",
    ),
    (
        "duplicate_key.yaml",
        "tests/fixtures/config/bad/duplicate_key.yaml:4:1: poll_interval: duplicate key (first set at line 3)",
    ),
    (
        "duration_malformed.yaml",
        "tests/fixtures/config/bad/duration_malformed.yaml:3:16: poll_interval: invalid duration \"5x\": unknown unit \"x\"; expected one of ms, s, m, h, d, w, y",
    ),
    (
        "duration_bare_number.yaml",
        "tests/fixtures/config/bad/duration_bare_number.yaml:3:16: poll_interval: invalid duration 60: a unit is required, e.g. 60s",
    ),
    (
        "duration_fraction.yaml",
        "tests/fixtures/config/bad/duration_fraction.yaml:3:18: request_timeout: invalid duration \"1.5s\": fractions are not allowed; use a smaller unit instead, e.g. 1500ms rather than 1.5s",
    ),
    (
        "duration_missing_value.yaml",
        "tests/fixtures/config/bad/duration_missing_value.yaml:3:14: poll_interval: missing value; expected a duration such as 1m30s, or remove the key to use the default (1m)",
    ),
    (
        "poll_interval_too_small.yaml",
        "tests/fixtures/config/bad/poll_interval_too_small.yaml:3:16: poll_interval: must be at least 1s, got 500ms",
    ),
    (
        "initial_lookback_too_small.yaml",
        "tests/fixtures/config/bad/initial_lookback_too_small.yaml:3:19: initial_lookback: must be at least 1s, got 0s",
    ),
    (
        "initial_lookback_too_large.yaml",
        "tests/fixtures/config/bad/initial_lookback_too_large.yaml:3:19: initial_lookback: must be at most 90d, got 91d",
    ),
    (
        "late_visibility_window_too_large.yaml",
        "tests/fixtures/config/bad/late_visibility_window_too_large.yaml:3:25: late_visibility_window: must be at most 24h, got 1d1m",
    ),
    (
        "request_timeout_too_small.yaml",
        "tests/fixtures/config/bad/request_timeout_too_small.yaml:3:18: request_timeout: must be at least 100ms, got 50ms",
    ),
    (
        "request_timeout_too_large.yaml",
        "tests/fixtures/config/bad/request_timeout_too_large.yaml:3:18: request_timeout: must be at most 5m, got 6m",
    ),
    (
        "id_invalid_plain.yaml",
        "tests/fixtures/config/bad/id_invalid_plain.yaml:3:5: associations[1]: \"not-an-id\" is not a valid association ID (expected 8-4-4-4-12 hexadecimal characters, e.g. 8dfe3659-4309-493a-8755-0123456789ab)",
    ),
    (
        "id_invalid_map.yaml",
        "tests/fixtures/config/bad/id_invalid_map.yaml:3:9: associations[1].id: \"8dfe3659-4309-493a-8755-0123456789\" is not a valid association ID (expected 8-4-4-4-12 hexadecimal characters, e.g. 8dfe3659-4309-493a-8755-0123456789ab)",
    ),
    (
        "id_duplicate.yaml",
        "tests/fixtures/config/bad/id_duplicate.yaml:4:9: associations[2].id: duplicate association ID 0b1f2e3d-4c5b-4a69-8877-66554433aabb (first listed at line 3)",
    ),
    (
        "id_duplicate_case.yaml",
        "tests/fixtures/config/bad/id_duplicate_case.yaml:4:5: associations[2]: duplicate association ID 8DFE3659-4309-493A-8755-0123456789AB (first listed at line 2 as 8dfe3659-4309-493a-8755-0123456789ab; IDs are compared case-insensitively)",
    ),
    (
        "entry_missing_id.yaml",
        "tests/fixtures/config/bad/entry_missing_id.yaml:3:5: associations[1].id: required key is missing",
    ),
    (
        "associations_empty.yaml",
        "tests/fixtures/config/bad/associations_empty.yaml:1:15: associations: the list is empty; name at least one association ID",
    ),
    (
        "associations_missing.yaml",
        "tests/fixtures/config/bad/associations_missing.yaml:2:1: associations: required key is missing: set associations (association IDs), discovery (selectors), or both",
    ),
    (
        "associations_not_list.yaml",
        "tests/fixtures/config/bad/associations_not_list.yaml:1:15: associations: expected a list of association IDs, got \"8dfe3659-4309-493a-8755-0123456789ab\"",
    ),
    (
        "wrong_type.yaml",
        "tests/fixtures/config/bad/wrong_type.yaml:3:26: max_concurrent_requests: expected a whole number between 1 and 256, got \"many\"",
    ),
    (
        "yaml_syntax.yaml",
        "tests/fixtures/config/bad/yaml_syntax.yaml:4:7: invalid YAML: illegal placement of ':' indicator",
    ),
    (
        "empty.yaml",
        "tests/fixtures/config/bad/empty.yaml: the config file is empty; it must be a mapping with at least the key associations or discovery",
    ),
    (
        "comments_only.yaml",
        "tests/fixtures/config/bad/comments_only.yaml: the config file is empty; it must be a mapping with at least the key associations or discovery",
    ),
    (
        "not_mapping.yaml",
        "tests/fixtures/config/bad/not_mapping.yaml:1:1: the config file must be a mapping of settings (key: value), got a list",
    ),
    (
        "rate_zero.yaml",
        "tests/fixtures/config/bad/rate_zero.yaml:3:26: api_requests_per_second: must be greater than 0, got 0",
    ),
    (
        "rate_negative.yaml",
        "tests/fixtures/config/bad/rate_negative.yaml:3:26: api_requests_per_second: must be greater than 0, got -2.5",
    ),
    (
        "rate_too_large.yaml",
        "tests/fixtures/config/bad/rate_too_large.yaml:3:26: api_requests_per_second: must be at most 10000, got 20000",
    ),
    (
        "max_concurrent_requests_zero.yaml",
        "tests/fixtures/config/bad/max_concurrent_requests_zero.yaml:3:26: max_concurrent_requests: must be between 1 and 256, got 0",
    ),
    (
        "api_max_attempts_too_large.yaml",
        "tests/fixtures/config/bad/api_max_attempts_too_large.yaml:3:19: api_max_attempts: must be between 1 and 10, got 11",
    ),
    (
        "region_invalid.yaml",
        "tests/fixtures/config/bad/region_invalid.yaml:3:9: region: \"US-East-1\" is not a known AWS region name (expected <area>-<direction>-<number>, e.g. us-east-1, eu-central-2 or us-gov-west-1) (did you mean us-east-1?)",
    ),
    (
        "discovery_regex_invalid.yaml",
        "tests/fixtures/config/bad/discovery_regex_invalid.yaml:3:23: discovery[1].association_name: invalid regular expression: unclosed group",
    ),
    (
        "discovery_unknown_key.yaml",
        "tests/fixtures/config/bad/discovery_unknown_key.yaml:2:5: discovery[0].association_names: unknown key; expected one of association_name, document_name, tags (did you mean association_name?)",
    ),
    (
        "discovery_tag_not_string.yaml",
        "tests/fixtures/config/bad/discovery_tag_not_string.yaml:4:13: discovery[0].tags.tier: tag values are strings; quote it: '1'",
    ),
    (
        "discovery_duplicate_selector.yaml",
        "tests/fixtures/config/bad/discovery_duplicate_selector.yaml:5:5: discovery[2]: duplicate selector (same as discovery[0])",
    ),
    (
        "discovery_null_entry.yaml",
        "tests/fixtures/config/bad/discovery_null_entry.yaml:3:4: discovery[1]: empty entry; expected a selector (a mapping with some of the keys association_name, document_name, tags; {} selects every association)",
    ),
    (
        "region_and_regions.yaml",
        "tests/fixtures/config/bad/region_and_regions.yaml:3:1: regions: set either region or regions, not both (regions replaces region)",
    ),
    (
        "regions_unknown.yaml",
        "tests/fixtures/config/bad/regions_unknown.yaml:4:5: regions[1]: \"us-esat-1\" is not a known AWS region name (expected <area>-<direction>-<number>, e.g. us-east-1, eu-central-2 or us-gov-west-1) (did you mean us-east-1?)",
    ),
    (
        "account_region_unknown.yaml",
        "tests/fixtures/config/bad/account_region_unknown.yaml:5:26: accounts[1].regions[1]: \"europe-west-1\" is not a known AWS region name (expected <area>-<direction>-<number>, e.g. us-east-1, eu-central-2 or us-gov-west-1)",
    ),
    (
        "regions_duplicate.yaml",
        "tests/fixtures/config/bad/regions_duplicate.yaml:2:33: regions[2]: duplicate region us-east-1 (same as regions[0])",
    ),
    (
        "role_arn_wrong_service.yaml",
        "tests/fixtures/config/bad/role_arn_wrong_service.yaml:3:15: accounts[0].role_arn: malformed role ARN: the service must be iam, got \"sts\" (expected arn:aws:iam::<12-digit account ID>:role/<name>)",
    ),
    (
        "role_arn_short_account.yaml",
        "tests/fixtures/config/bad/role_arn_short_account.yaml:3:15: accounts[0].role_arn: malformed role ARN: the account ID must be 12 digits, got \"11111111111\"",
    ),
    (
        "role_arn_not_role.yaml",
        "tests/fixtures/config/bad/role_arn_not_role.yaml:3:15: accounts[0].role_arn: malformed role ARN: expected a role (role/<name>), got \"user/ssm-association-exporter\"",
    ),
    (
        "external_id_without_role.yaml",
        "tests/fixtures/config/bad/external_id_without_role.yaml:4:5: accounts[0].external_id: external_id needs role_arn (it is sent with AssumeRole)",
    ),
    (
        "account_duplicate.yaml",
        "tests/fixtures/config/bad/account_duplicate.yaml:6:5: accounts[2]: duplicate account (same as accounts[0])",
    ),
    (
        "discovery_interval_too_large.yaml",
        "tests/fixtures/config/bad/discovery_interval_too_large.yaml:3:21: discovery_interval: must be at most 24h, got 2d",
    ),
    (
        "full_sweep_interval_too_small.yaml",
        "tests/fixtures/config/bad/full_sweep_interval_too_small.yaml:2:22: full_sweep_interval: must be at least 1s, got 500ms",
    ),
    (
        "metrics_not_mapping.yaml",
        "tests/fixtures/config/bad/metrics_not_mapping.yaml:3:10: metrics: expected a mapping with some of the keys duration_histogram, last_execution_status, per_association_internals, got \"off\"",
    ),
    (
        "metrics_missing_value.yaml",
        "tests/fixtures/config/bad/metrics_missing_value.yaml:3:8: metrics: missing value; expected a mapping with some of the keys duration_histogram, last_execution_status, per_association_internals, or remove the key to use the defaults",
    ),
    (
        "metrics_unknown_key.yaml",
        "tests/fixtures/config/bad/metrics_unknown_key.yaml:4:3: metrics.duration_histograms: unknown key; expected one of duration_histogram, last_execution_status, per_association_internals (did you mean duration_histogram?)",
    ),
    (
        "metrics_duration_histogram_invalid.yaml",
        "tests/fixtures/config/bad/metrics_duration_histogram_invalid.yaml:4:23: metrics.duration_histogram: expected one of per_association, per_status, off, got \"per-status\"",
    ),
    (
        "metrics_last_execution_status_invalid.yaml",
        "tests/fixtures/config/bad/metrics_last_execution_status_invalid.yaml:4:26: metrics.last_execution_status: expected one of current, per_status, got true",
    ),
    (
        "metrics_per_association_internals_not_bool.yaml",
        "tests/fixtures/config/bad/metrics_per_association_internals_not_bool.yaml:4:30: metrics.per_association_internals: expected true or false, got \"yes\"",
    ),
    (
        "metrics_duplicate_key.yaml",
        "tests/fixtures/config/bad/metrics_duplicate_key.yaml:5:3: metrics.duration_histogram: duplicate key (first set at line 4)",
    ),
    (
        "target_detail_not_mapping.yaml",
        "tests/fixtures/config/bad/target_detail_not_mapping.yaml:3:16: target_detail: expected a mapping with some of the keys enabled, max_targets_per_execution, failing_targets_gauge, max_failing_targets, got \"off\"",
    ),
    (
        "target_detail_missing_value.yaml",
        "tests/fixtures/config/bad/target_detail_missing_value.yaml:3:14: target_detail: missing value; expected a mapping with some of the keys enabled, max_targets_per_execution, failing_targets_gauge, max_failing_targets, or remove the key to use the defaults",
    ),
    (
        "target_detail_unknown_key.yaml",
        "tests/fixtures/config/bad/target_detail_unknown_key.yaml:4:3: target_detail.max_target_per_execution: unknown key; expected one of enabled, max_targets_per_execution, failing_targets_gauge, max_failing_targets (did you mean max_targets_per_execution?)",
    ),
    (
        "target_detail_max_targets_zero.yaml",
        "tests/fixtures/config/bad/target_detail_max_targets_zero.yaml:4:30: target_detail.max_targets_per_execution: must be between 1 and 1000, got 0",
    ),
    (
        "target_detail_max_failing_targets_too_large.yaml",
        "tests/fixtures/config/bad/target_detail_max_failing_targets_too_large.yaml:4:24: target_detail.max_failing_targets: must be between 1 and 1000, got 1001",
    ),
    (
        "target_detail_enabled_not_bool.yaml",
        "tests/fixtures/config/bad/target_detail_enabled_not_bool.yaml:4:12: target_detail.enabled: expected true or false, got \"yes\"",
    ),
    (
        "target_detail_gauge_not_bool.yaml",
        "tests/fixtures/config/bad/target_detail_gauge_not_bool.yaml:4:26: target_detail.failing_targets_gauge: expected true or false, got 1",
    ),
    (
        "events_external_id_without_role.yaml",
        "tests/fixtures/config/bad/events_external_id_without_role.yaml:5:7: events.queues[0].external_id: external_id needs role_arn (it is sent with AssumeRole)",
    ),
    (
        "events_queue_duplicate.yaml",
        "tests/fixtures/config/bad/events_queue_duplicate.yaml:5:7: events.queues[1]: duplicate queue (same as events.queues[0])",
    ),
    (
        "events_queue_url_missing.yaml",
        "tests/fixtures/config/bad/events_queue_url_missing.yaml:4:7: events.queues[0]: required key url is missing; expected the queue's URL (https://sqs.<region>.amazonaws.com/<12-digit account ID>/<queue name>)",
    ),
    (
        "events_queue_url_not_sqs.yaml",
        "tests/fixtures/config/bad/events_queue_url_not_sqs.yaml:4:12: events.queues[0].url: \"https://sqs.eu-west-1.example.com/111111111111/ssm-events\" is not an SQS queue URL (expected https://sqs.<region>.amazonaws.com/<12-digit account ID>/<queue name>)",
    ),
    (
        "events_queue_url_short_account.yaml",
        "tests/fixtures/config/bad/events_queue_url_short_account.yaml:4:12: events.queues[0].url: the account ID in the queue URL must be 12 digits, got \"11111111111\"",
    ),
    (
        "events_queues_empty.yaml",
        "tests/fixtures/config/bad/events_queues_empty.yaml:3:11: events.queues: the list is empty; add a queue (url is required) or remove the key",
    ),
    (
        "events_queues_missing.yaml",
        "tests/fixtures/config/bad/events_queues_missing.yaml:2:9: events: required key is missing: set queues (the SQS queues EventBridge sends State Manager events to), or remove events to poll only",
    ),
    (
        "events_unknown_key.yaml",
        "tests/fixtures/config/bad/events_unknown_key.yaml:3:3: events.queue: unknown key; expected one of queues, progress_poll_delay (did you mean queues?)",
    ),
    (
        "events_progress_poll_delay_too_long.yaml",
        "tests/fixtures/config/bad/events_progress_poll_delay_too_long.yaml:5:24: events.progress_poll_delay: must be at most 1h, got 2h",
    ),
];

#[test]
fn bad_config_files_fail_with_their_exact_errors() {
    let mut mismatches = Vec::new();
    for (name, expected) in BAD_CONFIGS {
        let path = format!("{BAD_DIR}/{name}");
        let actual = match load(Path::new(&path)) {
            Ok(config) => format!("no error; loads as {config:?}"),
            Err(err) => err.to_string(),
        };
        if actual != *expected {
            mismatches.push(format!(
                "{path}\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    // Every file has a row: none is left untested.
    let mut files: Vec<String> = std::fs::read_dir(BAD_DIR)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in files {
        if !BAD_CONFIGS.iter().any(|(name, _)| *name == file) {
            mismatches.push(format!("{BAD_DIR}/{file}\n  has no row in BAD_CONFIGS"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} bad config files are not rejected as expected:\n{}",
        mismatches.len(),
        BAD_CONFIGS.len(),
        mismatches.join("\n")
    );
}

#[test]
fn estate_inline_edge_cases() {
    let cases = [
        (
            "discovery: []\n",
            "x.yaml:1:12: discovery: the list is empty; add a selector ({} selects every association) or remove the key",
        ),
        (
            "discovery:\n",
            "x.yaml:1:10: discovery: missing value; expected a list, each item a selector (a mapping with some of the keys association_name, document_name, tags), or remove the key",
        ),
        (
            "discovery: {}\n",
            "x.yaml:1:12: discovery: expected a list, each item a selector (a mapping with some of the keys association_name, document_name, tags), got a mapping",
        ),
        (
            "discovery: [prod]\n",
            "x.yaml:1:13: discovery[0]: expected a selector (a mapping with some of the keys association_name, document_name, tags), got \"prod\"",
        ),
        (
            "discovery:\n  - association_name: 5\n",
            "x.yaml:2:23: discovery[0].association_name: expected a regular expression (a string), got 5; quote it",
        ),
        (
            "discovery:\n  - document_name: ''\n",
            "x.yaml:2:20: discovery[0].document_name: empty regular expression (it would match only an empty name); remove the key to match every name",
        ),
        (
            "discovery:\n  - tags: {enabled: true}\n",
            "x.yaml:2:21: discovery[0].tags.enabled: tag values are strings; quote it: 'true'",
        ),
        (
            "discovery:\n  - tags: {1: x}\n",
            "x.yaml:2:12: discovery[0].tags.1: tag keys are strings; quote it",
        ),
        (
            "discovery:\n  - tags: {a: x, a: y}\n",
            "x.yaml:2:18: discovery[0].tags.a: duplicate key (first set at line 2)",
        ),
        (
            "discovery:\n  - tags: team\n",
            "x.yaml:2:11: discovery[0].tags: expected a mapping of tag keys to values such as {team: platform}, got \"team\"",
        ),
        (
            "discovery:\n  - {}\n  - {}\n",
            "x.yaml:3:5: discovery[1]: duplicate selector (same as discovery[0])",
        ),
        (
            "discovery:\n  - document_name: x\n    document_name: y\n",
            "x.yaml:3:5: discovery[0].document_name: duplicate key (first set at line 2)",
        ),
        (
            "associations: []\n",
            "x.yaml:1:15: associations: the list is empty; name at least one association ID",
        ),
        (
            "associations: [ID]\nregions: []\n",
            "x.yaml:2:10: regions: the list is empty; name at least one region, or remove the key to use region or the AWS config chain",
        ),
        (
            "associations: [ID]\nregions: us-east-1\n",
            "x.yaml:2:10: regions: expected a list of AWS regions, got \"us-east-1\"; write [us-east-1]",
        ),
        (
            "associations: [ID]\nregions:\n  -\n",
            "x.yaml:3:4: regions[0]: missing value; expected an AWS region (e.g. us-east-1, eu-central-2 or us-gov-west-1)",
        ),
        (
            "associations: [ID]\nregions: [us-east-1]\nregion: us-east-1\n",
            "x.yaml:2:1: regions: set either region or regions, not both (regions replaces region)",
        ),
        (
            "associations: [ID]\nregion: us-east-0\n",
            &format!("x.yaml:2:9: region: \"us-east-0\" is not a known AWS region name {REGION_HINT} (did you mean us-east-1?)"),
        ),
        (
            "associations: [ID]\naccounts: []\n",
            "x.yaml:2:11: accounts: the list is empty; add an account ({} stands for the exporter's own credentials) or remove the key",
        ),
        (
            "associations: [ID]\naccounts:\n  - {}\n  - {}\n",
            "x.yaml:4:5: accounts[1]: duplicate account (same as accounts[0])",
        ),
        (
            "associations: [ID]\naccounts:\n  - {}\n  - regions: [eu-west-1]\n",
            "x.yaml:4:5: accounts[1]: duplicate account (same as accounts[0])",
        ),
        (
            "associations: [ID]\naccounts:\n  - rolearn: x\n",
            "x.yaml:3:5: accounts[0].rolearn: unknown key; expected one of role_arn, external_id, regions (did you mean role_arn?)",
        ),
        (
            "associations: [ID]\naccounts:\n  - role_arn: ROLE\n    external_id: x\n",
            "x.yaml:4:18: accounts[0].external_id: \"x\" is not a valid external ID (expected 2 to 1224 letters, digits and _+=,.@:/-)",
        ),
        (
            "associations: [ID]\naccounts:\n  - role_arn: ROLE\n    external_id: 1234\n",
            "x.yaml:4:18: accounts[0].external_id: expected an external ID (a string), got 1234; quote it",
        ),
        (
            "associations: [ID]\naccounts:\n  - external_id: abc\n    role_arn: ROLE\n",
            "",
        ),
        (
            "associations: [ID]\naccounts:\n  - role_arn:\n",
            "x.yaml:3:13: accounts[0].role_arn: missing value; expected a role ARN such as arn:aws:iam::111111111111:role/ssm-association-exporter, or remove the key to use the exporter's own credentials",
        ),
        (
            "associations: [ID]\naccounts:\n  - role_arn: ROLE\n    regions: [eu-west-1, eu-west-1]\n",
            "x.yaml:4:26: accounts[0].regions[1]: duplicate region eu-west-1 (same as accounts[0].regions[0])",
        ),
        (
            "associations: [ID]\naccounts:\n  - role_arn: ROLE\n    regions: []\n",
            "x.yaml:4:14: accounts[0].regions: the list is empty; name at least one region, or remove the key to use the top-level regions",
        ),
        (
            "associations: [ID]\ndiscovery_interval: 0s\n",
            "x.yaml:2:21: discovery_interval: must be at least 1s, got 0s",
        ),
        (
            "associations: [ID]\nfull_sweep_interval: 8d\n",
            "x.yaml:2:22: full_sweep_interval: must be at most 7d, got 8d",
        ),
        (
            "associations: [ID]\npending_recheck_max_interval: 500ms\n",
            "x.yaml:2:31: pending_recheck_max_interval: must be at least 1s, got 500ms",
        ),
        (
            "associations: [ID]\npending_recheck_max_interval: 25h\n",
            "x.yaml:2:31: pending_recheck_max_interval: must be at most 24h, got 25h",
        ),
    ];
    for (text, expected) in cases {
        let text = text.replace("ID", ID_A).replace("ROLE", ROLE);
        match parse(&text, "x.yaml") {
            Ok(_) if expected.is_empty() => {}
            Ok(config) => panic!("input {text:?} should be invalid, got {config:?}"),
            Err(err) => assert_eq!(err.to_string(), expected, "input: {text:?}"),
        }
    }
}

#[test]
fn missing_file() {
    let err = load_fixture("does_not_exist.yaml").unwrap_err();
    assert_eq!(err.file, fixture("does_not_exist.yaml"));
    assert_eq!(
        (err.line, err.column, err.key.as_deref()),
        (None, None, None)
    );
    let io = std::io::Error::from(std::io::ErrorKind::NotFound);
    let expected = std::fs::read("tests/fixtures/config/does_not_exist.yaml").unwrap_err();
    assert_eq!(expected.kind(), io.kind());
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read config file: {expected}",
            fixture("does_not_exist.yaml")
        )
    );
}

#[test]
fn error_fields() {
    let path = format!("{BAD_DIR}/poll_interval_too_small.yaml");
    let err = load(Path::new(&path)).unwrap_err();
    assert_eq!(err.file, path);
    assert_eq!(err.line, Some(3));
    assert_eq!(err.column, Some(16));
    assert_eq!(err.key.as_deref(), Some("poll_interval"));
    assert_eq!(err.message, "must be at least 1s, got 500ms");
}

#[test]
fn inline_edge_cases() {
    let cases = [
        (
            "associations: [ID]\napi_requests_per_second: .inf\n",
            "x.yaml:2:26: api_requests_per_second: must be a number greater than 0 and at most 10000, got .inf",
        ),
        (
            "associations: [ID]\napi_max_attempts: 2.0\n",
            "x.yaml:2:19: api_max_attempts: expected a whole number between 1 and 10, got 2.0",
        ),
        (
            "associations: [ID]\nregion: 5\n",
            "x.yaml:2:9: region: expected an AWS region (e.g. us-east-1, eu-central-2 or us-gov-west-1), got 5",
        ),
        (
            "associations: [ID]\npoll_interval: [30s]\n",
            "x.yaml:2:16: poll_interval: expected a duration such as 1m30s, got a list",
        ),
        (
            "associations:\n  - 12345\n",
            &format!("x.yaml:2:5: associations[0]: 12345 is not a valid association ID {ID_HINT}"),
        ),
        (
            "associations:\n  - [ID]\n",
            "x.yaml:2:5: associations[0]: expected an association ID or a mapping with the key id, got a list",
        ),
        (
            "associations:\n  - id:\n",
            "x.yaml:2:7: associations[0].id: missing value; expected an association ID",
        ),
        (
            "associations:\n  - id: ID\n    id: ID\n",
            "x.yaml:3:5: associations[0].id: duplicate key (first set at line 2)",
        ),
        (
            "associations:\n",
            "x.yaml:1:13: associations: missing value; expected a list of association IDs",
        ),
        (
            "associations: [ID]\nregion:\n",
            "x.yaml:2:7: region: missing value; expected an AWS region such as us-east-1, or remove the key to use the AWS config chain",
        ),
        (
            "associations: [ID]\n---\nregion: us-east-1\n",
            "x.yaml:3:1: invalid YAML: only single YAML document expected but multiple found",
        ),
        (
            "associations: [ID]\nregion: !secret us-east-1\n",
            "x.yaml:2:17: invalid YAML: unsupported tag `!secret`",
        ),
        (
            "hello\n",
            "x.yaml:1:1: the config file must be a mapping of settings (key: value), got \"hello\"",
        ),
        ("~\n", "x.yaml: the config file is empty; it must be a mapping with at least the key associations or discovery"),
        (
            "associations: [ID]\n1: x\n",
            &format!("x.yaml:2:1: 1: unknown key; expected one of {KEY_LIST}"),
        ),
        (
            "associations: [ID]\nregoin: us-east-1\n",
            &format!("x.yaml:2:1: regoin: unknown key; expected one of {KEY_LIST} (did you mean region?)"),
        ),
        (
            "\u{feff}associations: [ID]\npoll_interval: 30\n",
            "x.yaml:2:16: poll_interval: invalid duration 30: a unit is required, e.g. 30s",
        ),
        (
            "associations: [ID]\r\npoll_interval: 1m1h\r\n",
            "x.yaml:2:16: poll_interval: invalid duration \"1m1h\": units must appear at most once and in descending order (y, w, d, h, m, s, ms), but \"h\" follows \"m\"",
        ),
    ];
    for (text, expected) in cases {
        let text = text.replace("ID", ID_A);
        let err = parse(&text, "x.yaml").expect_err(&text);
        assert_eq!(err.to_string(), expected, "input: {text:?}");
    }
}

#[test]
fn error_display_without_location_or_key() {
    let err = ConfigError {
        file: "f.yaml".into(),
        line: Some(2),
        column: Some(3),
        key: None,
        message: "invalid YAML: x".into(),
    };
    assert_eq!(err.to_string(), "f.yaml:2:3: invalid YAML: x");
    let err = ConfigError {
        file: "f.yaml".into(),
        line: None,
        column: None,
        key: Some("region".into()),
        message: "m".into(),
    };
    assert_eq!(err.to_string(), "f.yaml: region: m");
}

// --- durations -------------------------------------------------------------

#[test]
fn parse_duration_accepts_prometheus_syntax() {
    let cases = [
        ("0s", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("500ms", Duration::from_millis(500)),
        ("1s", secs(1)),
        ("90s", secs(90)),
        ("1m", secs(60)),
        ("1h30m", secs(5400)),
        ("2d", secs(2 * 86_400)),
        ("1w", secs(7 * 86_400)),
        ("1y", secs(365 * 86_400)),
        (
            "1y2w3d4h5m6s7ms",
            Duration::from_millis(((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7),
        ),
        ("01m", secs(60)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
}

#[test]
fn parse_duration_rejects_invalid_input() {
    let cases = [
        ("", "empty duration; expected e.g. 60s or 1h30m"),
        ("60", "a unit is required, e.g. 60s"),
        ("1m1h", "units must appear at most once and in descending order (y, w, d, h, m, s, ms), but \"h\" follows \"m\""),
        ("1m1m", "units must appear at most once and in descending order (y, w, d, h, m, s, ms), but \"m\" follows \"m\""),
        ("m", "expected a number before the unit \"m\""),
        ("1hm", "unknown unit \"hm\"; expected one of ms, s, m, h, d, w, y"),
        ("h1m", "expected a number before the unit \"h\""),
        ("-1s", "negative durations are not allowed"),
        ("1.5s", "fractions are not allowed; use a smaller unit instead, e.g. 1500ms rather than 1.5s"),
        ("5x", "unknown unit \"x\"; expected one of ms, s, m, h, d, w, y"),
        ("5S", "unknown unit \"S\"; expected one of ms, s, m, h, d, w, y"),
        ("1h30", "missing unit after 30; expected one of ms, s, m, h, d, w, y"),
        ("1h 30m", "unexpected character ' '"),
        ("+1s", "unexpected character '+'"),
        ("99999999999999999999s", "duration is too large"),
        ("300000000y", "duration is too large"),
        ("9223372036854775807ms1ms", "units must appear at most once and in descending order (y, w, d, h, m, s, ms), but \"ms\" follows \"ms\""),
        ("9223372036854775s808ms", "duration is too large"),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Err(expected.to_owned()), "{text:?}");
    }
    // The largest accepted value: i64::MAX milliseconds, as in Prometheus.
    assert_eq!(
        parse_duration("9223372036854775807ms"),
        Ok(Duration::from_millis(i64::MAX as u64))
    );
}

#[test]
fn format_duration_uses_prometheus_syntax() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_micros(1), "0s"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_millis(1500), "1s500ms"),
        (secs(60), "1m"),
        (secs(5400), "1h30m"),
        (secs(86_400), "1d"),
        (secs(90 * 86_400), "90d"),
        (secs(2 * 86_400 + 1), "2d1s"),
    ];
    for (duration, expected) in cases {
        assert_eq!(format_duration(duration), expected, "{duration:?}");
    }
}

#[test]
fn durations_round_trip() {
    for text in ["1h30m", "500ms", "2d", "0s", "1m", "1d2h3m4s5ms", "90d"] {
        let duration = parse_duration(text).unwrap();
        assert_eq!(format_duration(duration), text);
        assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
    }
    // Weeks and years are accepted but printed in days.
    for (text, printed) in [("2w", "14d"), ("1y", "365d"), ("1w1d", "8d")] {
        let duration = parse_duration(text).unwrap();
        assert_eq!(format_duration(duration), printed);
        assert_eq!(parse_duration(printed), Ok(duration));
    }
    for millis in [1, 999, 1000, 61_001, 3_600_000, 86_399_999, 31_536_000_000] {
        let duration = Duration::from_millis(millis);
        assert_eq!(
            parse_duration(&format_duration(duration)),
            Ok(duration),
            "{millis}"
        );
    }
}

/// The config `ssm-simulator --config-out` writes (benchmarks) is one the exporter accepts.
#[test]
fn the_simulators_generated_config_is_accepted() {
    let ids = vec![ID_A.to_owned(), ID_B.to_owned()];
    let yaml = ssm_simulator::ExporterConfig {
        poll_interval: "1h".into(),
        initial_lookback: "2h".into(),
        api_requests_per_second: 1000.0,
        max_concurrent_requests: 2,
    }
    .yaml(&ids);
    let config = parse(&yaml, "ssm-simulator --config-out").expect("valid config");
    let loaded: Vec<&str> = config.associations.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(loaded, [ID_A, ID_B]);
    assert_eq!(config.poll_interval, Duration::from_secs(3600));
    assert_eq!(config.initial_lookback, Duration::from_secs(7200));
    assert_eq!(config.api_requests_per_second, 1000.0);
    assert_eq!(config.max_concurrent_requests, 2);
}
