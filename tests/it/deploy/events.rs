//! The State Manager events set-up (issue 22): `deploy/cloudformation/events-queue.yaml` (the
//! EventBridge rules, the queue, its dead-letter queue, policy and encryption, the central bus
//! of an organization), `events-forwarder-stackset.yaml` (member accounts' rules to that bus),
//! and the SQS part of the exporter's IAM policies.
//!
//! `cfn-lint` checks both templates; the rules' pattern is matched against the events the
//! project's simulator sends for a real execution (so the detail types are the simulator's,
//! which the exporter's tests read), the queue policy against the rules that target the queue,
//! and the SQS actions of the policies against the operations the real exporter sent to the
//! simulator while it handled events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use ssm_association_exporter::config::{EventsConfig, QueueConfig};
use ssm_association_exporter::names;
use ssm_simulator::{
    EventRoute, SimExecution, SimTarget, ASSOCIATION_STATE_CHANGE, DEFAULT_ACCOUNT, DEFAULT_REGION,
    INSTANCE_ASSOCIATION_STATE_CHANGE,
};

use super::iam::{
    exporter_role, grants, json_files, json_policy, lint_clean, one_or_many, policy_dirs,
    resolved_resources, substitute, EXPORTER_POLICY,
};
use super::{read, repo, yaml};
use crate::common::{now_ms, simulator_with, test_config, Exporter};

const QUEUE_TEMPLATE: &str = "deploy/cloudformation/events-queue.yaml";
const FORWARDER_TEMPLATE: &str = "deploy/cloudformation/events-forwarder-stackset.yaml";
/// The SQS actions the exporter's policies grant on the event queue. `ReceiveMessage` and
/// `DeleteMessage` (which authorizes `DeleteMessageBatch`) are what the exporter calls (see
/// `the_exporter_calls_no_sqs_action_the_policies_do_not_grant`); `GetQueueAttributes`, asked
/// for by issue 22, is granted for the operator's checks with the exporter's role and is the
/// one the test lets go uncalled.
pub const SQS_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];
const ORGANIZATION: &str = "o-a1b2c3d4e5";

/// Whether `resource` is one SQS queue: `arn:<partition>:sqs:<region>:<account>:<name>`, no
/// wildcard anywhere.
fn is_queue_arn(resource: &Value) -> bool {
    let Some(arn) = resource.as_str() else {
        return false;
    };
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-us-gov" | "aws-cn", "sqs", region, account, name]
            if !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
    ) && !arn.contains(['*', '?'])
}

/// The SQS part of a policy is exactly [`SQS_ACTIONS`], each on the same one queue.
pub fn assert_sqs_grants(what: &str, policy: &Value) {
    let grants = grants(policy);
    let sqs: BTreeSet<&str> = grants
        .keys()
        .filter(|a| a.to_ascii_lowercase().starts_with("sqs:"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        sqs,
        BTreeSet::from(SQS_ACTIONS),
        "{what}: SQS actions differ from SQS_ACTIONS"
    );
    let queue = json!(policy_queue_arn(policy));
    for action in SQS_ACTIONS {
        assert_eq!(
            grants[action],
            std::slice::from_ref(&queue),
            "{what}: {action}"
        );
    }
    assert!(is_queue_arn(&queue), "{what}: {queue} is not one queue");
}

/// The queue a policy grants `sqs:ReceiveMessage` on.
pub fn policy_queue_arn(policy: &Value) -> String {
    let resources = &grants(policy)["sqs:ReceiveMessage"];
    assert_eq!(resources.len(), 1, "{resources:?}");
    resources[0].as_str().unwrap().to_string()
}

/// Whether an event matches an EventBridge pattern of exact values (the only kind these
/// templates use; content filters panic rather than match wrongly): every field the pattern
/// names is in the event with one of the listed values, nested objects likewise.
fn matches_pattern(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().unwrap().iter().all(|(key, want)| {
        let got = &event[key];
        match want {
            Value::Object(_) => got.is_object() && matches_pattern(want, got),
            Value::Array(allowed) => {
                assert!(
                    allowed.iter().all(|v| !v.is_object()),
                    "content filters are not modelled: {want}"
                );
                one_or_many(got).iter().any(|v| allowed.contains(v))
            }
            other => panic!("a pattern field is a list or an object: {key}: {other}"),
        }
    })
}

/// `(logical ID, properties)` of the resources of `kind`.
fn of_type(resources: &Value, kind: &str) -> BTreeMap<String, Value> {
    resources
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.clone(), r["Properties"].clone()))
        .collect()
}

/// Values as a set (of their JSON texts: `Value` has no order).
fn set_of(values: impl IntoIterator<Item = Value>) -> BTreeSet<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// A shape of a template: its name, the parameters and the resolved resources.
type Shape = (String, Vec<(&'static str, &'static str)>, Value);

/// Resolved resources of the queue template for each of its two shapes: one account (no
/// OrganizationId), and an organization with its central bus; each with SSE-SQS or KMS.
fn queue_template_shapes() -> Vec<Shape> {
    let template = yaml(QUEUE_TEMPLATE);
    let mut shapes = Vec::new();
    for organization in ["", ORGANIZATION] {
        for encryption in ["sqs-managed", "kms"] {
            let params = vec![("OrganizationId", organization), ("Encryption", encryption)];
            let name = format!("OrganizationId={organization:?} Encryption={encryption}");
            shapes.push((name, params.clone(), resolved_resources(&template, &params)));
        }
    }
    shapes
}

#[test]
fn cfn_lint_finds_nothing_in_the_event_templates() {
    for path in [QUEUE_TEMPLATE, FORWARDER_TEMPLATE] {
        lint_clean(&repo(path));
        let text = read(path);
        let body = &text[text.find("AWSTemplateFormatVersion").unwrap()..];
        assert!(
            !body.contains("arn:aws:"),
            "{path}: use ${{AWS::Partition}}"
        );
    }
}

/// Every rule of both templates has one pattern, and it takes the association and the instance
/// events the simulator sends for a run (the same `source` and `detail-type` strings the
/// exporter's tests read) and refuses other sources and detail types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_take_the_state_manager_events_the_simulator_sends_and_nothing_else() {
    let central = resolved_resources(&yaml(QUEUE_TEMPLATE), &[("OrganizationId", ORGANIZATION)]);
    let forwarder = resolved_resources(&yaml(FORWARDER_TEMPLATE), &[]);
    let mut rules = of_type(&central, "AWS::Events::Rule");
    rules.extend(of_type(&forwarder, "AWS::Events::Rule"));
    let names: Vec<&str> = rules.keys().map(String::as_str).collect();
    assert_eq!(names, ["ForwardingRule", "LocalRule", "OrganizationRule"]);
    let pattern = rules["LocalRule"]["EventPattern"].clone();
    for (id, rule) in &rules {
        assert_eq!(rule["EventPattern"], pattern, "{id}: the same events");
        assert_eq!(rule["State"], "ENABLED", "{id}");
        assert!(
            rule.get("InputTransformer").is_none() && rule["Targets"][0].get("Input").is_none(),
            "{id}: the whole event is the message"
        );
    }

    // A run with two targets, as the simulator's EventBridge sends it to a queue.
    let (sim, ids) = simulator_with(1).await;
    let url = sim.add_queue(DEFAULT_ACCOUNT, DEFAULT_REGION, "ssm-association-events");
    sim.route_events(EventRoute::to(url.clone()));
    let targets = |status: &str| {
        [
            SimTarget::new("i-0123456789abcdef0", status),
            SimTarget::new("i-0123456789abcdef1", status),
        ]
    };
    sim.add_execution(
        &ids[0],
        SimExecution::new("run-1", "InProgress", now_ms() - 1_000)
            .with_targets(targets("InProgress")),
    );
    sim.update_execution(&ids[0], "run-1", |e| {
        e.status = "Success".to_string();
        e.last_execution_ms = Some(now_ms());
        e.targets = targets("Success").into();
    });
    let events: Vec<Value> = sim
        .queue_messages(&url)
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    let detail_types: BTreeSet<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        detail_types,
        BTreeSet::from([ASSOCIATION_STATE_CHANGE, INSTANCE_ASSOCIATION_STATE_CHANGE]),
        "the simulator sent both kinds"
    );
    for event in &events {
        assert!(
            matches_pattern(&pattern, event),
            "{pattern} refuses {event}"
        );
        let mut other_source = event.clone();
        other_source["source"] = json!("aws.ec2");
        assert!(!matches_pattern(&pattern, &other_source), "{other_source}");
        let mut other_type = event.clone();
        other_type["detail-type"] = json!("EC2 State Manager Document State Change");
        assert!(!matches_pattern(&pattern, &other_type), "{other_type}");
    }
}

#[test]
fn only_this_stacks_rules_may_send_to_the_queue_and_unhandled_messages_go_to_the_dead_letter_queue()
{
    for (shape, _, resources) in queue_template_shapes() {
        let rules = of_type(&resources, "AWS::Events::Rule");
        let queue_arn = get_att("Queue", "Arn");
        let targeting: BTreeSet<String> = rules
            .iter()
            .filter(|(_, r)| {
                one_or_many(&r["Targets"])
                    .iter()
                    .any(|t| t["Arn"] == queue_arn)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let expected: BTreeSet<String> = if shape.contains(ORGANIZATION) {
            vec!["LocalRule", "OrganizationRule"]
        } else {
            vec!["LocalRule"]
        }
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(
            targeting, expected,
            "{shape}: the rules that fill the queue"
        );

        let policies = of_type(&resources, "AWS::SQS::QueuePolicy");
        let policy = &policies["QueuePolicy"];
        assert_eq!(policy["Queues"], json!([{ "Ref": "Queue" }]), "{shape}");
        let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
        let allows: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .collect();
        assert_eq!(allows.len(), 1, "{shape}: one Allow");
        let allow = allows[0];
        assert_eq!(
            allow["Principal"],
            json!({ "Service": "events.amazonaws.com" })
        );
        assert_eq!(allow["Action"], "sqs:SendMessage", "{shape}");
        assert_eq!(allow["Resource"], queue_arn, "{shape}");
        let conditions = allow["Condition"].as_object().unwrap();
        assert_eq!(conditions.len(), 1, "{shape}: {allow}");
        let sources = set_of(one_or_many(
            &allow["Condition"]["ArnEquals"]["aws:SourceArn"],
        ));
        let rule_arns = set_of(targeting.iter().map(|id| get_att(id, "Arn")));
        assert_eq!(
            sources, rule_arns,
            "{shape}: aws:SourceArn is the rules' ARNs"
        );
        let deny = statements.iter().find(|s| s["Effect"] == "Deny").unwrap();
        assert_eq!(
            deny["Condition"],
            json!({ "Bool": { "aws:SecureTransport": "false" } })
        );

        let queues = of_type(&resources, "AWS::SQS::Queue");
        let queue = &queues["Queue"];
        assert_eq!(
            queue["RedrivePolicy"]["deadLetterTargetArn"],
            get_att("DeadLetterQueue", "Arn"),
            "{shape}"
        );
        // The exporter long-polls for 20 s: the queue's default wait is the same.
        assert_eq!(queue["ReceiveMessageWaitTimeSeconds"], 20);
        assert!(
            queues["DeadLetterQueue"]["MessageRetentionPeriod"].as_i64()
                > queue["MessageRetentionPeriod"].as_i64(),
            "{shape}: a message outlives its retention in the dead-letter queue"
        );
    }
    // The visibility timeout is at least SQS's default, which the README calls enough.
    let template = yaml(QUEUE_TEMPLATE);
    assert!(template["Parameters"]["VisibilityTimeout"]["Default"].as_i64() >= Some(30));
}

/// SSE-SQS by default; with Encryption=kms both queues use the stack's key, which EventBridge
/// may use only for this stack's rules: the ARNs the key policy builds from the rules' names
/// are the rules' ARNs (AWS's format: `rule/<name>` on the default bus, `rule/<bus>/<name>`).
#[test]
fn queues_are_encrypted_and_the_key_serves_only_this_stacks_rules() {
    let template = yaml(QUEUE_TEMPLATE);
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
    for (shape, params, resources) in queue_template_shapes() {
        let kms = shape.contains("kms");
        let keys = of_type(&resources, "AWS::KMS::Key");
        for (id, queue) in of_type(&resources, "AWS::SQS::Queue") {
            if kms {
                assert_eq!(
                    queue["KmsMasterKeyId"],
                    json!({ "Ref": "EventsKey" }),
                    "{shape} {id}"
                );
                assert!(queue.get("SqsManagedSseEnabled").is_none(), "{shape} {id}");
            } else {
                assert_eq!(queue["SqsManagedSseEnabled"], true, "{shape} {id}");
                assert!(queue.get("KmsMasterKeyId").is_none(), "{shape} {id}");
                assert!(keys.is_empty(), "{shape}: no key");
            }
        }
        if !kms {
            continue;
        }
        let mut values = values.clone();
        values.extend(params.iter().copied());
        // Ref of an event bus is its name.
        if let Some(bus) = of_type(&resources, "AWS::Events::EventBus").get("CentralEventBus") {
            assert_eq!(bus["Name"], json!({ "Ref": "CentralBusName" }));
            values.insert("CentralEventBus", values["CentralBusName"]);
        }
        let key = substitute(&keys["EventsKey"], &values);
        assert_eq!(key["EnableKeyRotation"], true);
        let events = key["KeyPolicy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Principal"] == json!({ "Service": "events.amazonaws.com" }))
            .cloned()
            .expect("a statement for EventBridge");
        assert_eq!(
            set_of(one_or_many(&events["Action"])),
            set_of([json!("kms:Decrypt"), json!("kms:GenerateDataKey")])
        );
        let sources = set_of(one_or_many(
            &events["Condition"]["ArnEquals"]["aws:SourceArn"],
        ));
        let rule_arns = set_of(
            of_type(&resources, "AWS::Events::Rule")
                .values()
                .map(|rule| {
                    let rule = substitute(rule, &values);
                    let name = rule["Name"].as_str().unwrap();
                    let path = match rule.get("EventBusName") {
                        Some(bus) => format!("{}/{name}", bus.as_str().unwrap()),
                        None => name.to_string(),
                    };
                    json!(format!("arn:aws:events:us-east-1:123456789012:rule/{path}"))
                }),
        );
        assert_eq!(
            sources, rule_arns,
            "{shape}: the key policy names the rules"
        );
    }
}

/// With OrganizationId the central bus takes events from the organization's accounts only,
/// a rule on it fills the queue, and the member accounts' template sends there with a role
/// that may put events on that bus and nowhere else.
#[test]
fn member_accounts_forward_to_a_central_bus_only_the_organization_may_put_on() {
    let single = resolved_resources(&yaml(QUEUE_TEMPLATE), &[]);
    assert!(of_type(&single, "AWS::Events::EventBus").is_empty());
    let central = resolved_resources(&yaml(QUEUE_TEMPLATE), &[("OrganizationId", ORGANIZATION)]);
    let bus_policy = &of_type(&central, "AWS::Events::EventBusPolicy")["CentralEventBusPolicy"];
    assert_eq!(
        bus_policy["EventBusName"],
        json!({ "Ref": "CentralEventBus" })
    );
    let statement = &bus_policy["Statement"];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "events:PutEvents");
    assert_eq!(statement["Resource"], get_att("CentralEventBus", "Arn"));
    assert_eq!(
        statement["Condition"],
        json!({ "StringEquals": { "aws:PrincipalOrgID": { "Ref": "OrganizationId" } } })
    );
    let rule = &of_type(&central, "AWS::Events::Rule")["OrganizationRule"];
    assert_eq!(rule["EventBusName"], json!({ "Ref": "CentralEventBus" }));
    let template = yaml(QUEUE_TEMPLATE);
    assert_eq!(
        template["Outputs"]["CentralBusArn"]["Value"],
        get_att("CentralEventBus", "Arn")
    );

    let forwarder = resolved_resources(&yaml(FORWARDER_TEMPLATE), &[]);
    let rule = &of_type(&forwarder, "AWS::Events::Rule")["ForwardingRule"];
    assert!(
        rule.get("EventBusName").is_none(),
        "the account's default bus"
    );
    let targets = rule["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], json!({ "Ref": "CentralEventBusArn" }));
    assert_eq!(targets[0]["RoleArn"], get_att("ForwarderRole", "Arn"));
    let role = &of_type(&forwarder, "AWS::IAM::Role")["ForwarderRole"];
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({ "Service": "events.amazonaws.com" })
    );
    let policies = role["Policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    let granted = grants(&policies[0]["PolicyDocument"]);
    assert_eq!(
        granted,
        BTreeMap::from([(
            "events:PutEvents".to_string(),
            vec![json!({ "Ref": "CentralEventBusArn" })]
        )])
    );
    // The bus ARN the central stack makes, in every partition, is one the parameter takes.
    let pattern = yaml(FORWARDER_TEMPLATE)["Parameters"]["CentralEventBusArn"]["AllowedPattern"]
        .as_str()
        .unwrap()
        .to_string();
    let pattern = regex::Regex::new(&pattern).unwrap();
    for partition in ["aws", "aws-us-gov", "aws-cn"] {
        let arn = format!(
            "arn:{partition}:events:us-east-1:123456789012:event-bus/ssm-association-events"
        );
        assert!(pattern.is_match(&arn), "{arn}");
    }
    assert!(!pattern.is_match("arn:aws:sqs:us-east-1:123456789012:ssm-association-events"));
}

/// exporter-role.yaml grants the queue's SQS actions only with EventsQueueArn, and kms:Decrypt
/// only with a key as well.
#[test]
fn the_exporter_role_reads_the_event_queue_only_when_given_one() {
    let queue = "arn:aws:sqs:eu-west-1:123456789012:ssm-association-events";
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let policy = |params: &[(&str, &str)]| -> Value {
        let mut all = vec![("Runtime", "ecs-task")];
        all.extend(params);
        exporter_role(&all)["Policies"][0]["PolicyDocument"].clone()
    };
    let actions = |policy: &Value| -> BTreeSet<String> {
        grants(policy)
            .into_keys()
            .filter(|a| a.starts_with("sqs:") || a.starts_with("kms:"))
            .collect()
    };
    assert!(actions(&policy(&[])).is_empty(), "no events, no SQS");
    assert!(
        actions(&policy(&[("EventsKmsKeyArn", key)])).is_empty(),
        "a key without a queue grants nothing"
    );
    let with_queue = policy(&[("EventsQueueArn", queue)]);
    assert_sqs_grants("EventsQueueArn", &with_queue);
    assert_eq!(policy_queue_arn(&with_queue), queue);
    assert!(!actions(&with_queue).contains("kms:Decrypt"));
    let with_key = policy(&[("EventsQueueArn", queue), ("EventsKmsKeyArn", key)]);
    assert_sqs_grants("EventsKmsKeyArn", &with_key);
    assert_eq!(grants(&with_key)["kms:Decrypt"], [json!(key)]);
}

/// The IAM action of an SQS operation: the batch forms are authorized by the single action.
fn sqs_action(operation: &str) -> String {
    format!(
        "sqs:{}",
        operation.strip_suffix("Batch").unwrap_or(operation)
    )
}

/// The real exporter handles events from the simulator's queue; every SQS operation it sent is
/// one the policies grant, and it both receives and deletes (the two it cannot work without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_calls_no_sqs_action_the_policies_do_not_grant() {
    let (sim, ids) = simulator_with(1).await;
    let url = sim.add_queue(DEFAULT_ACCOUNT, DEFAULT_REGION, "ssm-association-events");
    sim.route_events(EventRoute::to(url.clone()));
    let mut config = test_config(&ids);
    config.poll_interval = Duration::from_secs(30 * 24 * 3600);
    config.events = Some(EventsConfig {
        queues: vec![QueueConfig {
            url: url.clone(),
            region: DEFAULT_REGION.to_string(),
            account_id: DEFAULT_ACCOUNT.to_string(),
            name: "ssm-association-events".to_string(),
            role_arn: None,
            external_id: None,
        }],
        ..EventsConfig::with_queues(Vec::new())
    });
    let exporter = Exporter::start(config, &sim).await;
    exporter.wait_ready().await;
    sim.add_execution(
        &ids[0],
        SimExecution::new("run-1", "Success", now_ms() - 1_000),
    );
    exporter
        .wait_for("the event handled and its message deleted", |m| {
            let polled = m.value(names::POLLS_TOTAL, &[("reason", "event")]);
            if polled >= 1.0 && sim.queue_messages(&url).is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "event polls {polled}, queue {:?}",
                    sim.queue_messages(&url)
                ))
            }
        })
        .await;
    exporter.stop().await;
    let called: BTreeSet<String> = sim
        .requests()
        .iter()
        .filter(|r| r.service == "sqs")
        .map(|r| sqs_action(&r.operation))
        .collect();
    assert!(
        called.contains("sqs:ReceiveMessage") && called.contains("sqs:DeleteMessage"),
        "{called:?}"
    );
    let granted: BTreeSet<String> = SQS_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert!(
        called.is_subset(&granted),
        "the exporter calls SQS actions the policies do not grant: {:?}",
        called.difference(&granted).collect::<Vec<_>>()
    );
    // Granted but not called: only GetQueueAttributes (see SQS_ACTIONS).
    let uncalled: Vec<&String> = granted.difference(&called).collect();
    assert!(
        uncalled.iter().all(|a| *a == "sqs:GetQueueAttributes"),
        "{uncalled:?}"
    );
    // And every shipped exporter policy grants exactly SQS_ACTIONS.
    for (_, dir) in policy_dirs() {
        for path in json_files(&dir)
            .iter()
            .filter(|p| p.contains("exporter-policy"))
        {
            assert_sqs_grants(path, &json_policy(path));
        }
    }
    assert_sqs_grants(EXPORTER_POLICY, &json_policy(EXPORTER_POLICY));
}
