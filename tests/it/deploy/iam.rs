//! The IAM policies (`deploy/iam/`) and the member-role StackSet template
//! (`deploy/cloudformation/member-role-stackset.yaml`) against what the exporter calls.
//!
//! The SSM actions every policy grants are compared with `ssm::SSM_OPERATIONS`, the list of
//! operations the code calls, so a new call without a policy change (or a policy granting more
//! than the code calls) fails here. `cfn-lint` (PyPI, `scripts/install-test-tools`) checks the
//! template, and the JSON policies wrapped in a template of their own so that its IAM rules
//! (known action names, ARN and principal shapes) apply to them too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use ssm_association_exporter::ssm::SSM_OPERATIONS;

use super::{read, tools_dir, yaml};

const TEMPLATE: &str = "deploy/cloudformation/member-role-stackset.yaml";
pub(super) const EXPORTER_POLICY: &str = "deploy/iam/exporter-policy.json";
const MEMBER_POLICY: &str = "deploy/iam/member-role-policy.json";
const TRUST_POLICY: &str = "deploy/iam/member-role-trust-policy.json";
const EXPORTER_ROLE: &str = "deploy/cloudformation/exporter-role.yaml";
pub(super) const ORGANIZATION_POLICY: &str = "deploy/iam/exporter-policy-organization.json";
/// The partitions besides `aws` that `scripts/gen-iam-partitions` writes documents for.
const PARTITIONS: [&str; 2] = ["aws-us-gov", "aws-cn"];
/// The SSM operation called only for `discovery:` selectors with tags (`UseTagDiscovery`).
const TAG_OPERATION: &str = "ListTagsForResource";

/// `cfn-lint` from the tools virtualenv. Not skipped when missing: these checks are cheap and
/// the template is otherwise untested.
fn cfn_lint() -> Command {
    let path = tools_dir().join("venv/bin/cfn-lint");
    assert!(
        path.exists(),
        "cfn-lint is required: run scripts/install-test-tools ({} is missing)",
        path.display()
    );
    let mut command = Command::new(path);
    command.current_dir(crate::common::repo_path("."));
    command
}

/// Runs cfn-lint with every rule, informational ones included; panics unless it reports nothing.
pub(super) fn lint_clean(template: &Path) {
    let out = cfn_lint()
        .args(["--include-checks", "I", "--template"])
        .arg(template)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "cfn-lint on {} ({}):\n{text}",
        template.display(),
        out.status
    );
}

/// The SSM IAM actions the code calls: `ssm:<Op>` for each of `SSM_OPERATIONS`.
fn called_actions() -> BTreeSet<String> {
    SSM_OPERATIONS
        .iter()
        .map(|op| format!("ssm:{op}"))
        .collect()
}

/// A JSON policy document of `deploy/iam`: it parses, has the current policy language version
/// and only `Allow` statements.
pub(super) fn json_policy(path: &str) -> Value {
    let policy: Value = serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(policy["Version"], "2012-10-17", "{path}");
    let statements = policy["Statement"].as_array().expect("Statement list");
    assert!(!statements.is_empty(), "{path}: no statements");
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{path}: {s}");
    }
    policy
}

/// A policy element that is one value or a list of them.
pub(super) fn one_or_many(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Action -> the resources it is granted on, over every statement of a policy. Panics on the
/// constructs that would grant more than the listed actions and resources.
pub(super) fn grants(policy: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut grants: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in policy["Statement"].as_array().expect("Statement list") {
        assert_eq!(s["Effect"], "Allow", "{s}");
        for inverted in ["NotAction", "NotResource"] {
            assert!(
                s.get(inverted).is_none(),
                "{inverted} grants everything else: {s}"
            );
        }
        for action in one_or_many(&s["Action"]) {
            let action = action.as_str().expect("an action name").to_string();
            assert!(
                !action.contains(['*', '?']),
                "a wildcard action grants more than the exporter calls: {action}"
            );
            grants
                .entry(action)
                .or_default()
                .extend(one_or_many(&s["Resource"]));
        }
    }
    grants
}

/// The ARN text of a resource: a string, or the template of a `Fn::Sub`.
fn arn_text(resource: &Value) -> &str {
    resource
        .as_str()
        .or_else(|| resource["Fn::Sub"].as_str())
        .unwrap_or_else(|| panic!("a resource ARN: {resource}"))
}

/// Whether a resource is State Manager associations: `arn:<partition>:ssm:<region>:<account>:association/<id>`.
fn is_association_arn(resource: &Value) -> bool {
    // The template's pseudo parameters hold "::": substitute them before splitting.
    let arn = arn_text(resource)
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", "123456789012");
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-us-gov" | "aws-cn", "ssm", _, account, id]
            if !account.is_empty()
                && *account != "*"
                && id.starts_with("association/")
    )
}

/// The SSM part of a policy is exactly `expected`, `ssm:ListAssociations` on "*" (it has no
/// resource-level permissions) and everything else on association ARNs only.
fn assert_ssm_grants(what: &str, policy: &Value, expected: &BTreeSet<String>) {
    let grants = grants(policy);
    let ssm: BTreeSet<String> = grants
        .keys()
        .filter(|a| a.to_ascii_lowercase().starts_with("ssm:"))
        .cloned()
        .collect();
    assert_eq!(
        &ssm, expected,
        "{what}: SSM actions differ from SSM_OPERATIONS"
    );
    for action in &ssm {
        let resources = &grants[action];
        if action == "ssm:ListAssociations" {
            assert_eq!(resources, &[json!("*")], "{what}: {action}");
        } else {
            assert!(
                !resources.is_empty() && resources.iter().all(is_association_arn),
                "{what}: {action} must be on association ARNs only: {resources:?}"
            );
        }
    }
}

/// Evaluates a template condition for the given parameter values.
fn condition(template: &Value, expr: &Value, params: &BTreeMap<&str, &str>) -> bool {
    let operand = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            other => {
                let name = other["Ref"].as_str().unwrap_or_else(|| panic!("{other}"));
                params
                    .get(name)
                    .map(|s| s.to_string())
                    .or_else(|| {
                        template["Parameters"][name]["Default"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| panic!("no value for parameter {name}"))
            }
        }
    };
    let (function, args) = expr
        .as_object()
        .and_then(|o| o.iter().next())
        .unwrap_or_else(|| panic!("a condition: {expr}"));
    match function.as_str() {
        "Fn::Equals" => operand(&args[0]) == operand(&args[1]),
        "Fn::Not" => !condition(template, &args[0], params),
        "Fn::And" => one_or_many(args)
            .iter()
            .all(|a| condition(template, a, params)),
        "Fn::Or" => one_or_many(args)
            .iter()
            .any(|a| condition(template, a, params)),
        "Condition" => {
            let name = args.as_str().unwrap();
            condition(template, &template["Conditions"][name], params)
        }
        other => panic!("unexpected condition function {other}"),
    }
}

/// The template's `Resources` with `Fn::If` decided, `Ref: AWS::NoValue` and the resources of
/// false conditions dropped, as CloudFormation would for the given parameters; other
/// intrinsics stay as written.
pub(super) fn resolved_resources(template: &Value, params: &[(&str, &str)]) -> Value {
    let params: BTreeMap<&str, &str> = params.iter().copied().collect();
    let conditions: BTreeMap<String, bool> = template["Conditions"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(name, expr)| (name.clone(), condition(template, expr, &params)))
                .collect()
        })
        .unwrap_or_default();
    fn resolve(value: &Value, conditions: &BTreeMap<String, bool>) -> Option<Value> {
        match value {
            Value::Object(o) if o.len() == 1 && o.contains_key("Fn::If") => {
                let args = o["Fn::If"].as_array().expect("Fn::If arguments");
                let name = args[0].as_str().expect("Fn::If condition name");
                let chosen = if conditions[name] { &args[1] } else { &args[2] };
                resolve(chosen, conditions)
            }
            Value::Object(o) if o.len() == 1 && o.get("Ref") == Some(&json!("AWS::NoValue")) => {
                None
            }
            Value::Object(o) => Some(Value::Object(
                o.iter()
                    .filter_map(|(k, v)| resolve(v, conditions).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|v| resolve(v, conditions))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }
    // Resources whose `Condition` is false are not created.
    let mut resources = resolve(&template["Resources"], &conditions).unwrap();
    resources
        .as_object_mut()
        .unwrap()
        .retain(|_, r| r["Condition"].as_str().is_none_or(|name| conditions[name]));
    resources
}

/// The template's one role, resolved for the parameters.
fn template_role(params: &[(&str, &str)]) -> Value {
    role_of(TEMPLATE, params)
}

/// The one role of a template, resolved for the parameters.
fn role_of(path: &str, params: &[(&str, &str)]) -> Value {
    let template = yaml(path);
    let resources = resolved_resources(&template, params);
    let roles: Vec<&Value> = resources
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::Role")
        .collect();
    assert_eq!(roles.len(), 1, "one role in {path}");
    roles[0]["Properties"].clone()
}

/// The single inline policy of the template's role.
fn template_inline_policy(params: &[(&str, &str)]) -> Value {
    let role = template_role(params);
    let policies = role["Policies"].as_array().expect("inline Policies");
    assert_eq!(policies.len(), 1, "one inline policy");
    let policy = policies[0]["PolicyDocument"].clone();
    assert_eq!(policy["Version"], "2012-10-17");
    policy
}

/// The role name of `arn:<partition>:iam::<account>:role/<path/><name>`.
fn role_name(arn: &str) -> &str {
    let (_, resource) = arn
        .rsplit_once(":role/")
        .unwrap_or_else(|| panic!("a role ARN: {arn}"));
    resource.rsplit('/').next().unwrap()
}

#[test]
fn cfn_lint_finds_nothing_in_the_member_role_template() {
    lint_clean(&super::repo(TEMPLATE));
}

/// The JSON documents of `deploy/iam` (the `aws` partition) and of each generated partition.
pub(super) fn policy_dirs() -> Vec<(&'static str, String)> {
    let mut dirs = vec![("aws", "deploy/iam".to_string())];
    for partition in PARTITIONS {
        dirs.push((partition, format!("deploy/iam/partitions/{partition}")));
    }
    dirs
}

/// The `.json` files of a directory, sorted.
pub(super) fn json_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(super::repo(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn cfn_lint_finds_nothing_in_the_json_policies() {
    // cfn-lint checks policy documents inside templates (action names against the service's
    // actions, ARN and principal shapes): wrap the JSON files of every partition in one, the
    // permission policies as managed policies, the trust policies as roles'.
    for (partition, dir) in policy_dirs() {
        let mut resources = serde_json::Map::new();
        let mut trusts = 0;
        for (i, path) in json_files(&dir).iter().enumerate() {
            let document = json_policy(path);
            let resource = if path.contains("trust") {
                trusts += 1;
                json!({ "Type": "AWS::IAM::Role",
                        "Properties": { "AssumeRolePolicyDocument": document } })
            } else {
                json!({ "Type": "AWS::IAM::ManagedPolicy",
                        "Properties": { "PolicyDocument": document } })
            };
            resources.insert(format!("Document{i}"), resource);
        }
        assert_eq!(
            trusts, 4,
            "{dir}: the member role's and three of the exporter's"
        );
        let template = json!({ "AWSTemplateFormatVersion": "2010-09-09", "Resources": resources });
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join(format!("policies-{partition}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&template).unwrap()).unwrap();
        lint_clean(&path);
    }
}

#[test]
fn every_policy_grants_exactly_the_ssm_calls_the_exporter_makes() {
    assert!(SSM_OPERATIONS.contains(&TAG_OPERATION));
    let all = called_actions();
    let exporter = json_policy(EXPORTER_POLICY);
    assert_ssm_grants(EXPORTER_POLICY, &exporter, &all);
    super::events::assert_sqs_grants(EXPORTER_POLICY, &exporter);
    let others: Vec<String> = grants(&exporter)
        .into_keys()
        .filter(|a| !all.contains(a) && !a.starts_with("sqs:"))
        .collect();
    assert_eq!(others, ["sts:AssumeRole"], "{EXPORTER_POLICY}");

    let member = json_policy(MEMBER_POLICY);
    assert_ssm_grants(MEMBER_POLICY, &member, &all);
    assert_eq!(
        grants(&member).into_keys().collect::<BTreeSet<_>>(),
        all,
        "{MEMBER_POLICY}: nothing but the SSM reads"
    );

    let with_tags = template_inline_policy(&[("UseTagDiscovery", "true")]);
    assert_ssm_grants("template, UseTagDiscovery=true", &with_tags, &all);
    assert_eq!(grants(&with_tags).into_keys().collect::<BTreeSet<_>>(), all);
    let without: BTreeSet<String> = all
        .iter()
        .filter(|a| **a != format!("ssm:{TAG_OPERATION}"))
        .cloned()
        .collect();
    let no_tags = template_inline_policy(&[("UseTagDiscovery", "false")]);
    assert_ssm_grants("template, UseTagDiscovery=false", &no_tags, &without);
    assert_eq!(
        grants(&no_tags).into_keys().collect::<BTreeSet<_>>(),
        without
    );

    // The member role's JSON policy is the template's (for the default parameters), up to the
    // account and partition the template fills in.
    let default = template_inline_policy(&[]);
    let shape = |policy: &Value| -> BTreeMap<String, Vec<String>> {
        grants(policy)
            .into_iter()
            .map(|(action, resources)| {
                let kinds = resources
                    .iter()
                    .map(|r| {
                        if r == "*" {
                            "*".to_string()
                        } else {
                            assert!(is_association_arn(r), "{r}");
                            "association".to_string()
                        }
                    })
                    .collect();
                (action, kinds)
            })
            .collect()
    };
    assert_eq!(
        shape(&default),
        shape(&member),
        "{TEMPLATE} vs {MEMBER_POLICY}"
    );
}

#[test]
fn the_template_builds_arns_for_its_own_partition_and_account() {
    let role = template_role(&[]);
    let text = serde_json::to_string(&role).unwrap();
    assert!(
        !text.contains("arn:aws:"),
        "use ${{AWS::Partition}}: {text}"
    );
    let policy = template_inline_policy(&[]);
    for (action, resources) in grants(&policy) {
        for r in resources.iter().filter(|r| *r != "*") {
            assert_eq!(
                arn_text(r),
                "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:association/*",
                "{action}"
            );
        }
    }
}

#[test]
fn the_exporter_may_assume_the_member_role_and_only_it() {
    let exporter = json_policy(EXPORTER_POLICY);
    let assume = &grants(&exporter)["sts:AssumeRole"];
    assert_eq!(assume.len(), 1, "{assume:?}");
    let target = assume[0].as_str().unwrap();
    assert!(
        target.starts_with("arn:aws:iam::*:role/"),
        "member roles in any account: {target}"
    );
    let member_role = role_name(target);

    let trust = json_policy(TRUST_POLICY);
    let statements = trust["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{TRUST_POLICY}");
    let s = &statements[0];
    assert_eq!(s["Action"], "sts:AssumeRole");
    let principal = s["Principal"]["AWS"].as_str().expect("Principal.AWS");
    assert!(
        principal.starts_with("arn:aws:iam::123456789012:role/"),
        "{principal}"
    );
    assert_eq!(role_name(principal), member_role, "{TRUST_POLICY}");
    let external_id = &s["Condition"]["StringEquals"]["sts:ExternalId"];
    assert!(
        external_id.as_str().is_some_and(|id| !id.is_empty()),
        "{TRUST_POLICY}: sts:ExternalId condition: {s}"
    );

    // The StackSet creates the role under the name the exporter's policy may assume.
    let template = yaml(TEMPLATE);
    assert_eq!(
        template["Parameters"]["RoleName"]["Default"], member_role,
        "{TEMPLATE}: RoleName default"
    );
}

#[test]
fn the_template_trusts_the_exporter_role_with_the_external_id_when_given() {
    let template = yaml(TEMPLATE);
    let params = &template["Parameters"];
    let mut names: Vec<&str> = params
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ExporterRoleArn",
            "ExternalId",
            "OrganizationId",
            "RoleName",
            "UseTagDiscovery"
        ]
    );
    assert_eq!(params["ExternalId"]["NoEcho"], true);
    assert_eq!(params["ExternalId"]["Default"], "");
    assert_eq!(
        params["UseTagDiscovery"]["AllowedValues"],
        json!(["true", "false"])
    );
    assert!(
        params["ExporterRoleArn"].get("Default").is_none(),
        "no default principal"
    );
    assert_eq!(
        template["Outputs"]["RoleArn"]["Value"],
        json!({ "Fn::GetAtt": ["MemberRole", "Arn"] })
    );

    let trust_statement = |params: &[(&str, &str)]| -> Value {
        let role = template_role(params);
        assert_eq!(role["RoleName"], json!({ "Ref": "RoleName" }));
        let trust = &role["AssumeRolePolicyDocument"];
        assert_eq!(trust["Version"], "2012-10-17");
        let statements = trust["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        let s = statements[0].clone();
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(
            s["Principal"],
            json!({ "AWS": { "Ref": "ExporterRoleArn" } })
        );
        s
    };
    let with_id = trust_statement(&[("ExternalId", "an-external-id")]);
    assert_eq!(
        with_id["Condition"],
        json!({ "StringEquals": { "sts:ExternalId": { "Ref": "ExternalId" } } })
    );
    let without_id = trust_statement(&[("ExternalId", "")]);
    assert!(
        without_id.get("Condition").is_none(),
        "an empty ExternalId means no condition: {without_id}"
    );
    let in_organization = trust_statement(&[("OrganizationId", "o-a1b2c3d4e5")]);
    assert_eq!(
        in_organization["Condition"],
        json!({ "StringEquals": { "aws:PrincipalOrgID": { "Ref": "OrganizationId" } } })
    );
    let both = trust_statement(&[
        ("OrganizationId", "o-a1b2c3d4e5"),
        ("ExternalId", "an-external-id"),
    ]);
    assert_eq!(
        both["Condition"],
        json!({ "StringEquals": {
            "sts:ExternalId": { "Ref": "ExternalId" },
            "aws:PrincipalOrgID": { "Ref": "OrganizationId" } } })
    );
}

/// Every string of a JSON value, keys included.
fn all_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                all_strings(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_partition_has_its_own_policies_naming_only_its_arns() {
    let out = Command::new("bash")
        .arg(super::repo("scripts/gen-iam-partitions"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/iam/partitions is not what scripts/gen-iam-partitions makes:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let names = |dir: &str| -> Vec<String> {
        json_files(dir)
            .iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let all = called_actions();
    for (partition, dir) in policy_dirs() {
        assert_eq!(names(&dir), names("deploy/iam"), "{dir}: every document");
        for path in json_files(&dir) {
            let document = json_policy(&path);
            let mut strings = Vec::new();
            all_strings(&document, &mut strings);
            for s in strings.iter().filter(|s| s.contains("arn:")) {
                assert!(
                    s.starts_with(&format!("arn:{partition}:")),
                    "{path}: {s} is not an ARN of partition {partition}"
                );
            }
            // Regions and the EKS OIDC issuer host of the partition.
            let (region, domain) = match partition {
                "aws" => ("us-east-1", ".amazonaws.com/"),
                "aws-us-gov" => ("us-gov-west-1", ".amazonaws.com/"),
                _ => ("cn-north-1", ".amazonaws.com.cn/"),
            };
            for s in strings
                .iter()
                .filter(|s| s.starts_with("oidc.eks.") || s.contains(":oidc-provider/"))
            {
                assert!(
                    s.contains(&format!("oidc.eks.{region}{domain}")),
                    "{path}: {s}"
                );
            }
            for s in strings.iter().filter(|s| s.contains(":ecs:")) {
                assert!(s.contains(&format!(":ecs:{region}:")), "{path}: {s}");
            }
            if !path.contains("trust") {
                assert_ssm_grants(&path, &document, &all);
            }
            if path.contains("exporter-policy") {
                super::events::assert_sqs_grants(&path, &document);
            }
        }
    }
}

/// A resolved template value with `Ref` and `Fn::Sub` filled in from `values` (pseudo
/// parameters included); JSON text from `Fn::Sub` is parsed.
pub(super) fn substitute(value: &Value, values: &BTreeMap<&str, &str>) -> Value {
    let sub = |text: &str| -> String {
        let mut out = text.to_string();
        for (k, v) in values {
            out = out.replace(&format!("${{{k}}}"), v);
        }
        assert!(!out.contains("${"), "unfilled: {out}");
        out
    };
    match value {
        Value::Object(o) if o.len() == 1 && o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap();
            Value::from(
                *values
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for {name}")),
            )
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::Sub") => {
            let text = sub(o["Fn::Sub"].as_str().unwrap());
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, values)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        other => other.clone(),
    }
}

/// The exporter-role template's role for `params`, every intrinsic filled in as
/// CloudFormation would in account 123456789012, region us-east-1, partition `aws`.
pub(super) fn exporter_role(params: &[(&str, &str)]) -> Value {
    let template = yaml(EXPORTER_ROLE);
    let mut values: BTreeMap<&str, &str> = BTreeMap::from([
        ("AWS::Partition", "aws"),
        ("AWS::AccountId", "123456789012"),
        ("AWS::Region", "us-east-1"),
    ]);
    for (name, p) in template["Parameters"].as_object().unwrap() {
        if let Some(default) = p["Default"].as_str() {
            values.insert(name.as_str(), default);
        }
    }
    for (k, v) in params {
        values.insert(k, v);
    }
    let role = role_of(EXPORTER_ROLE, params);
    substitute(&role, &values)
}

const OIDC: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

#[test]
fn cfn_lint_finds_nothing_in_the_exporter_role_template() {
    lint_clean(&super::repo(EXPORTER_ROLE));
    let text = read(EXPORTER_ROLE);
    let body = &text[text.find("AWSTemplateFormatVersion").unwrap()..];
    assert!(!body.contains("arn:aws:"), "use ${{AWS::Partition}}");
}

#[test]
fn the_exporter_role_template_trusts_the_runtime_it_is_for_as_the_json_examples_do() {
    for (runtime, example, extra) in [
        (
            "eks-irsa",
            "deploy/iam/exporter-trust-irsa.json",
            Some(("OidcProvider", OIDC)),
        ),
        (
            "eks-pod-identity",
            "deploy/iam/exporter-trust-pod-identity.json",
            None,
        ),
        ("ecs-task", "deploy/iam/exporter-trust-ecs-task.json", None),
    ] {
        // With events: the queue of exporter-policy.json.
        let queue = super::events::policy_queue_arn(&json_policy(EXPORTER_POLICY));
        let mut params = vec![("Runtime", runtime), ("EventsQueueArn", queue.as_str())];
        params.extend(extra);
        let role = exporter_role(&params);
        assert_eq!(
            role["AssumeRolePolicyDocument"],
            json_policy(example),
            "{EXPORTER_ROLE} Runtime={runtime} vs {example}"
        );
        // The permissions do not depend on the runtime: exporter-policy.json's.
        let policy = &role["Policies"][0]["PolicyDocument"];
        assert_eq!(
            grants(policy),
            grants(&json_policy(EXPORTER_POLICY)),
            "{runtime}"
        );
    }
    // IRSA without the issuer is refused before anything is created.
    let template = yaml(EXPORTER_ROLE);
    let rule = &template["Rules"]["IrsaNeedsTheOidcProvider"];
    assert_eq!(rule["RuleCondition"]["Fn::Equals"][1], "eks-irsa");
    assert_eq!(
        rule["Assertions"][0]["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"],
        "OidcProvider"
    );
    // One account only: no sts:AssumeRole at all.
    let single = exporter_role(&[("Runtime", "ecs-task"), ("MemberRoleName", "")]);
    let actions: BTreeSet<String> = grants(&single["Policies"][0]["PolicyDocument"])
        .into_keys()
        .collect();
    assert_eq!(actions, called_actions());
}

#[test]
fn the_organization_condition_limits_assume_role_to_the_organization() {
    // The JSON variant is exporter-policy.json with aws:ResourceOrgID on sts:AssumeRole.
    let plain = json_policy(EXPORTER_POLICY);
    let org = json_policy(ORGANIZATION_POLICY);
    assert_eq!(grants(&plain), grants(&org));
    let assume = |policy: &Value| -> Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == "sts:AssumeRole")
            .cloned()
            .unwrap()
    };
    assert!(assume(&plain).get("Condition").is_none());
    let condition = &assume(&org)["Condition"]["StringEquals"]["aws:ResourceOrgID"];
    assert!(
        condition.as_str().is_some_and(|id| id.starts_with("o-")),
        "{ORGANIZATION_POLICY}: {condition}"
    );
    // The exporter-role template: with OrganizationId only.
    for (org_id, expected) in [
        ("", Value::Null),
        (
            "o-a1b2c3d4e5",
            json!({ "StringEquals": { "aws:ResourceOrgID": "o-a1b2c3d4e5" } }),
        ),
    ] {
        let role = exporter_role(&[("Runtime", "ecs-task"), ("OrganizationId", org_id)]);
        let statement = assume(&role["Policies"][0]["PolicyDocument"]);
        assert_eq!(
            statement.get("Condition").cloned().unwrap_or(Value::Null),
            expected,
            "OrganizationId={org_id:?}"
        );
        assert_eq!(
            statement["Resource"],
            "arn:aws:iam::*:role/ssm-association-exporter"
        );
    }
}

#[test]
fn the_trust_examples_name_the_charts_service_account_and_the_ecs_tasks_account() {
    // The chart installed as the README says: release ssm-association-exporter, namespace
    // monitoring.
    let Some(mut helm) = super::tool("helm") else {
        return;
    };
    helm.args([
        "template",
        "ssm-association-exporter",
        "deploy/helm/ssm-association-exporter",
        "--namespace",
        "monitoring",
    ]);
    let docs = super::yaml_documents(&super::run_ok(helm));
    let account = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("the chart's ServiceAccount");
    let namespace = account["metadata"]["namespace"].as_str().unwrap();
    let name = account["metadata"]["name"].as_str().unwrap();
    let irsa = json_policy("deploy/iam/exporter-trust-irsa.json");
    assert_eq!(
        irsa["Statement"][0]["Condition"]["StringEquals"][format!("{OIDC}:sub")],
        format!("system:serviceaccount:{namespace}:{name}")
    );
    let pod_identity = json_policy("deploy/iam/exporter-trust-pod-identity.json");
    let tags = &pod_identity["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(tags["aws:RequestTag/kubernetes-namespace"], namespace);
    assert_eq!(tags["aws:RequestTag/kubernetes-service-account"], name);
    // The ECS example trusts the tasks of the task definitions' account and region.
    let ecs = json_policy("deploy/iam/exporter-trust-ecs-task.json");
    let condition = &ecs["Statement"][0]["Condition"];
    for path in super::ecs::TASK_DEFINITIONS {
        let task: Value = serde_json::from_str(&read(path)).unwrap();
        let role = task["taskRoleArn"].as_str().unwrap();
        let account_id = role.split(':').nth(4).unwrap();
        assert_eq!(
            condition["StringEquals"]["aws:SourceAccount"], account_id,
            "{path}"
        );
        let region = task["containerDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|c| c["logConfiguration"]["options"]["awslogs-region"].as_str())
            .unwrap();
        assert_eq!(
            condition["ArnLike"]["aws:SourceArn"],
            format!("arn:aws:ecs:{region}:{account_id}:*"),
            "{path}"
        );
    }
}
