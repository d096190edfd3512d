//! The simulated SQS queues and State Manager events, through the real `aws-sdk-sqs` client:
//! long polling, visibility timeouts and redelivery, batch deletes, the events an execution's
//! change sends, and each queue fault.

use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use serde_json::Value;
use ssm_simulator::{
    AssociationDetails, EventRoute, SimAssociation, SimExecution, SimTarget, Simulator,
    ASSOCIATION_STATE_CHANGE, DEFAULT_REGION, INSTANCE_ASSOCIATION_STATE_CHANGE,
};
use tokio::time::Instant;

use crate::api::{exec_id, A, T0};

/// The central account holding the queue (a central event bus).
const CENTRAL: &str = "999999999999";
/// A member account whose events go to the central queue.
const MEMBER: &str = "222222222222";
const MEMBER_REGION: &str = "eu-west-1";

/// An SQS client for `sim` with fake credentials, signing for `region`, no retries.
pub async fn sqs_client(sim: &Simulator, region: &str) -> Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(sim.endpoint_url())
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Client::new(&cfg)
}

/// A simulator with association `A` in the default scope, a queue in the central account
/// receiving the default scope's events, and a client.
async fn setup() -> (Simulator, Client, String) {
    let sim = Simulator::start().await.expect("simulator starts");
    sim.add_association(
        A,
        SimAssociation::new("AWS-RunPatchBaseline")
            .with_name("patch")
            .with_schedule("rate(30 minutes)"),
    );
    let url = sim.add_queue(CENTRAL, DEFAULT_REGION, "ssm-events");
    sim.route_events(EventRoute::to(url.clone()));
    let client = sqs_client(&sim, DEFAULT_REGION).await;
    (sim, client, url)
}

/// Receives up to 10 messages without waiting, with every system attribute.
async fn receive_now(client: &Client, url: &str) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive succeeds")
        .messages()
        .to_vec()
}

fn body_json(message: &Message) -> Value {
    serde_json::from_str(message.body().expect("a body")).expect("the body is JSON")
}

fn attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// Starts execution `n` of `A` (InProgress) in the default scope: one association event.
fn start_run(sim: &Simulator, n: usize) {
    sim.add_execution(A, SimExecution::new(exec_id(n), "InProgress", T0));
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn an_execution_ending_sends_the_association_event_of_its_account_and_region() {
    let sim = Simulator::start().await.expect("simulator starts");
    let url = sim.add_queue(CENTRAL, DEFAULT_REGION, "central");
    // A central bus: the member account's eu-west-1 events only.
    sim.route_events(
        EventRoute::to(url.clone())
            .account(MEMBER)
            .region(MEMBER_REGION),
    );
    for (account, region) in [
        (MEMBER, MEMBER_REGION),
        (MEMBER, "us-east-1"),
        (CENTRAL, MEMBER_REGION),
    ] {
        sim.add_association_with_details_in(
            account,
            region,
            A,
            SimAssociation::new("AWS-RunPatchBaseline").with_schedule("rate(30 minutes)"),
            AssociationDetails::default().with_target("tag:Env", ["prod"]),
        );
        sim.add_execution_in(
            account,
            region,
            A,
            SimExecution::new(exec_id(1), "InProgress", T0),
        );
    }
    sim.update_execution_in(MEMBER, MEMBER_REGION, A, &exec_id(1), |e| {
        e.status = "Failed".into();
        e.last_execution_ms = Some(T0 + 60_000);
        e.targets = vec![
            SimTarget::new("i-0000000000000000a", "Success"),
            SimTarget::new("i-0000000000000000b", "Failed"),
        ];
    });
    // Scopes that are not routed send nothing.
    sim.update_execution_in(MEMBER, "us-east-1", A, &exec_id(1), |e| {
        e.status = "Success".into()
    });

    let client = sqs_client(&sim, DEFAULT_REGION).await;
    let events: Vec<Value> = receive_now(&client, &url)
        .await
        .iter()
        .map(body_json)
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap(),
                e["detail"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (ASSOCIATION_STATE_CHANGE, "Pending"),
            (ASSOCIATION_STATE_CHANGE, "Failed"),
            (INSTANCE_ASSOCIATION_STATE_CHANGE, "Success"),
            (INSTANCE_ASSOCIATION_STATE_CHANGE, "Failed"),
        ]
    );
    let ended = &events[1];
    assert_eq!(
        keys(ended),
        [
            "account",
            "detail",
            "detail-type",
            "id",
            "region",
            "resources",
            "source",
            "time",
            "version"
        ]
    );
    assert_eq!(ended["source"], "aws.ssm");
    assert_eq!(ended["version"], "0");
    assert_eq!(ended["account"], MEMBER);
    assert_eq!(ended["region"], MEMBER_REGION);
    let detail = &ended["detail"];
    assert_eq!(
        keys(detail),
        [
            "association-cwe-version",
            "association-id",
            "association-status-aggregated-count",
            "association-version",
            "creation-date",
            "document-name",
            "document-version",
            "last-execution-date",
            "last-successful-execution-date",
            "last-updated-date",
            "schedule-expression",
            "status",
            "targets",
        ]
    );
    assert_eq!(detail["association-id"], A);
    assert_eq!(detail["document-name"], "AWS-RunPatchBaseline");
    assert_eq!(detail["association-version"], "1");
    // JSON-encoded strings, as AWS sends them.
    let targets: Value = serde_json::from_str(detail["targets"].as_str().unwrap()).unwrap();
    assert_eq!(
        targets,
        serde_json::json!([{"key": "tag:Env", "values": ["prod"]}])
    );
    let counts: Value = serde_json::from_str(
        detail["association-status-aggregated-count"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(counts, serde_json::json!({"Failed": 1, "Success": 1}));
    assert_eq!(detail["last-execution-date"], "2019-02-18T16:04:47.119Z");

    let instance = &events[3]["detail"];
    assert_eq!(instance["instance-id"], "i-0000000000000000b");
    assert_eq!(instance["association-id"], A);
    assert!(instance.get("association-version").is_none());
    assert!(instance.get("instance-association-cwe-version").is_some());
    assert_eq!(sim.queue_stats(&url).events, 4);
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_answers_as_soon_as_an_event_arrives() {
    let (sim, client, url) = setup().await;
    let started = Instant::now();
    let later = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        start_run(&later, 1);
    });
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(20)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive succeeds");
    let waited = started.elapsed();
    assert_eq!(got.messages().len(), 1);
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(6)).contains(&waited),
        "answered after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_on_an_empty_queue_waits_the_full_time() {
    let (_sim, client, url) = setup().await;
    let started = Instant::now();
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(20)
        .send()
        .await
        .expect("receive succeeds");
    let waited = started.elapsed();
    assert!(got.messages().is_empty());
    assert!(
        (Duration::from_secs(20)..Duration::from_secs(21)).contains(&waited),
        "answered after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_undeleted_message_comes_back_after_its_visibility_timeout_with_a_new_handle() {
    let (sim, client, url) = setup().await;
    start_run(&sim, 1);
    let first = receive_now(&client, &url).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        attribute(
            &first[0],
            MessageSystemAttributeName::ApproximateReceiveCount
        ),
        Some("1")
    );
    // Invisible for the queue's default 30 s.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(receive_now(&client, &url).await.is_empty());
    assert_eq!(sim.queue_stats(&url).in_flight, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = receive_now(&client, &url).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id(), first[0].message_id());
    assert_ne!(second[0].receipt_handle(), first[0].receipt_handle());
    assert_eq!(
        attribute(
            &second[0],
            MessageSystemAttributeName::ApproximateReceiveCount
        ),
        Some("2")
    );
    // The outdated handle "succeeds" without deleting; the latest one deletes.
    let delete = |handle: &str| {
        client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(handle)
            .send()
    };
    delete(first[0].receipt_handle().unwrap())
        .await
        .expect("old handle accepted");
    assert_eq!(sim.queue_stats(&url).deleted, 0);
    assert_eq!(sim.queue_stats(&url).stale_deletes, 1);
    delete(second[0].receipt_handle().unwrap())
        .await
        .expect("deleted");
    let stats = sim.queue_stats(&url);
    assert_eq!((stats.deleted, stats.in_flight, stats.visible), (1, 0, 0));
    // A per-request visibility timeout wins over the queue's.
    start_run(&sim, 2);
    let got = client
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(2)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receive_now(&client, &url).await.len(), 1);
}

#[tokio::test]
async fn a_batch_delete_reports_bad_handles_in_failed() {
    let (sim, client, url) = setup().await;
    start_run(&sim, 1);
    start_run(&sim, 2);
    let got = receive_now(&client, &url).await;
    assert_eq!(got.len(), 2);
    let entry = |id: &str, handle: &str| {
        DeleteMessageBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(handle)
            .build()
            .unwrap()
    };
    let answer = client
        .delete_message_batch()
        .queue_url(&url)
        .entries(entry("good", got[0].receipt_handle().unwrap()))
        .entries(entry("bad", "not-a-receipt-handle"))
        .send()
        .await
        .expect("HTTP 200 even with failed entries");
    let ok: Vec<&str> = answer.successful().iter().map(|s| s.id()).collect();
    assert_eq!(ok, ["good"]);
    assert_eq!(answer.failed().len(), 1);
    let failed = &answer.failed()[0];
    assert_eq!(
        (failed.id(), failed.code(), failed.sender_fault()),
        ("bad", "ReceiptHandleIsInvalid", true)
    );
    let stats = sim.queue_stats(&url);
    assert_eq!((stats.deleted, stats.in_flight), (1, 1));

    // The whole batch fails on repeated ids, and on more than 10 entries.
    let repeated = client
        .delete_message_batch()
        .queue_url(&url)
        .entries(entry("x", got[1].receipt_handle().unwrap()))
        .entries(entry("x", got[1].receipt_handle().unwrap()))
        .send()
        .await
        .expect_err("ids must be distinct");
    assert!(repeated
        .into_service_error()
        .is_batch_entry_ids_not_distinct());
    let mut too_many = client.delete_message_batch().queue_url(&url);
    for i in 0..11 {
        too_many = too_many.entries(entry(&format!("e{i}"), got[1].receipt_handle().unwrap()));
    }
    let error = too_many.send().await.expect_err("at most 10 entries");
    assert!(error
        .into_service_error()
        .is_too_many_entries_in_batch_request());
    assert_eq!(sim.queue_stats(&url).deleted, 1);
}

#[tokio::test]
async fn an_unknown_queue_is_queue_does_not_exist() {
    let (_sim, client, _url) = setup().await;
    let error = client
        .receive_message()
        .queue_url(format!(
            "https://sqs.us-east-1.amazonaws.com/{CENTRAL}/nope"
        ))
        .send()
        .await
        .expect_err("no such queue");
    let error = error.into_service_error();
    assert!(error.is_queue_does_not_exist(), "{error:?}");
    assert_eq!(
        error.code(),
        Some("AWS.SimpleQueueService.NonExistentQueue")
    );
}

#[tokio::test]
async fn queue_attributes_count_visible_and_in_flight_messages() {
    let (sim, client, url) = setup().await;
    start_run(&sim, 1);
    start_run(&sim, 2);
    client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = attributes.attributes().expect("some attributes");
    let get = |name: &str| {
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(name))
            .map(String::as_str)
    };
    assert_eq!(get("ApproximateNumberOfMessages"), Some("1"));
    assert_eq!(get("ApproximateNumberOfMessagesNotVisible"), Some("1"));
    assert_eq!(get("VisibilityTimeout"), Some("30"));
    assert_eq!(
        get("QueueArn"),
        Some(format!("arn:aws:sqs:us-east-1:{CENTRAL}:ssm-events").as_str())
    );
}

#[tokio::test]
async fn receive_rejects_out_of_range_parameters() {
    let (_sim, client, url) = setup().await;
    for (max, wait) in [(0, 0), (11, 0), (1, 21)] {
        let error = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .send()
            .await
            .expect_err("out of range");
        assert_eq!(error.code(), Some("InvalidParameterValue"), "{max} {wait}");
    }
}
