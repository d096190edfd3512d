//! The simulated SQS queues and State Manager events, through the real `aws-sdk-sqs` client:
//! long polling, visibility timeouts and redelivery, batch deletes, the events an execution's
//! change sends, and each queue fault.

use std::time::Duration;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use serde_json::Value;
use ssm_simulator::{
    AssociationDetails, EventRoute, QueueFaults, QueueOutage, SimAssociation, SimExecution,
    SimTarget, Simulator, ASSOCIATION_STATE_CHANGE, DEFAULT_ACCOUNT, DEFAULT_REGION,
    DEMO_ASSOCIATIONS, DEMO_QUEUE_NAME, INSTANCE_ASSOCIATION_STATE_CHANGE,
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

/// Starts and ends run `i` of `A`: 2 events.
fn run_once(sim: &Simulator, i: usize) {
    start_run(sim, i);
    sim.update_execution(A, &exec_id(i), |e| e.status = "Success".into());
}

/// Starts and ends `n` runs of `A`: 2 events each.
fn run_many(sim: &Simulator, n: usize) {
    for i in 0..n {
        run_once(sim, i);
    }
}

/// Receives and deletes everything receivable now; returns the bodies in the order received.
async fn drain(client: &Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = receive_now(client, url).await;
        if got.is_empty() {
            return bodies;
        }
        for m in got {
            bodies.push(m.body().unwrap().to_owned());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("deleted");
        }
    }
}

/// Which of 100 runs (200 events) lose an event under `seed`.
async fn lost_positions(seed: u64) -> Vec<usize> {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().lose(0.3).seed(seed));
    let mut lost = Vec::new();
    for i in 0..100 {
        let before = sim.queue_stats(&url).lost;
        run_once(&sim, i);
        let after = sim.queue_stats(&url).lost;
        if after > before {
            lost.push(i);
        }
    }
    let stats = sim.queue_stats(&url);
    assert_eq!(stats.events, 200);
    let delivered = drain(&client, &url).await.len() as u64;
    assert_eq!(
        delivered + stats.lost,
        200,
        "every event is delivered or lost"
    );
    assert!(
        (30..=90).contains(&stats.lost),
        "lost {} of 200",
        stats.lost
    );
    // Lost events never touch the model.
    assert_eq!(sim.ground_truth().executions[A]["Success"], 100);
    lost
}

#[tokio::test]
async fn lost_events_are_a_seeded_fraction() {
    let first = lost_positions(7).await;
    assert_eq!(
        first,
        lost_positions(7).await,
        "the same seed loses the same events"
    );
    assert_ne!(first, lost_positions(8).await);
}

#[tokio::test]
async fn duplicated_events_arrive_twice_with_one_event_id() {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().duplicate(1.0));
    run_many(&sim, 2);
    let bodies = drain(&client, &url).await;
    assert_eq!(bodies.len(), 8);
    let mut ids: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "two messages per event");
    assert_eq!(sim.queue_stats(&url).duplicated, 4);
}

#[tokio::test(start_paused = true)]
async fn delayed_events_become_receivable_after_the_delay() {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().delay(Duration::from_secs(10)));
    start_run(&sim, 1);
    assert!(receive_now(&client, &url).await.is_empty());
    assert_eq!(sim.queue_stats(&url).delayed, 1);
    // A long poll answers when the delay ends, not before.
    let started = Instant::now();
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(20)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(11)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test]
async fn reordered_queues_hand_out_the_newest_events_first() {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().reorder());
    run_many(&sim, 1);
    let statuses: Vec<String> = receive_now(&client, &url)
        .await
        .iter()
        .map(|m| {
            body_json(m)["detail"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["Success", "Pending"], "the end before the start");
}

#[tokio::test]
async fn malformed_messages_follow_events() {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().malformed(1.0));
    start_run(&sim, 1);
    sim.update_execution(A, &exec_id(1), |e| e.status = "Success".into());
    start_run(&sim, 2);
    let bodies = drain(&client, &url).await;
    assert_eq!(bodies.len(), 6);
    let parsed: Vec<Option<Value>> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).ok())
        .collect();
    // Each event, then its malformed follower: not JSON, a foreign source, no association-id.
    assert_eq!(parsed[0].as_ref().unwrap()["source"], "aws.ssm");
    assert!(parsed[1].is_none(), "{}", bodies[1]);
    assert_eq!(parsed[3].as_ref().unwrap()["source"], "aws.ec2");
    let missing = parsed[5].as_ref().unwrap();
    assert_eq!(missing["source"], "aws.ssm");
    assert!(missing["detail"].get("association-id").is_none());
    assert!(missing["detail"].get("status").is_some());
    assert_eq!(sim.queue_stats(&url).malformed, 3);
}

#[tokio::test]
async fn injected_messages_are_received_as_they_are() {
    let (sim, client, url) = setup().await;
    sim.set_queue_faults(&url, QueueFaults::default().lose(1.0));
    let id = sim.inject_message(&url, "{\"source\":\"forged\"}");
    let got = receive_now(&client, &url).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id(), Some(id.as_str()));
    assert_eq!(got[0].body(), Some("{\"source\":\"forged\"}"));
    assert_eq!(sim.queue_messages(&url).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_queue_fails_for_its_window_then_recovers() {
    let (sim, client, url) = setup().await;
    start_run(&sim, 1);
    sim.set_queue_outage(
        &url,
        Some((QueueOutage::ServerError, Duration::from_secs(60))),
    );
    let error = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect_err("down");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(error.code(), Some("InternalFailure"));
    sim.set_queue_outage(
        &url,
        Some((QueueOutage::ResetConnection, Duration::from_secs(60))),
    );
    let error = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect_err("down");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    // Events keep arriving meanwhile; after the window the queue answers again.
    start_run(&sim, 2);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(receive_now(&client, &url).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_queue_answers_the_sdks_throttling_error() {
    let (sim, client, url) = setup().await;
    sim.set_queue_outage(&url, Some((QueueOutage::Throttled, Duration::from_secs(5))));
    let error = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(error.code(), Some("RequestThrottled"));
    assert!(error.into_service_error().is_request_throttled());
    tokio::time::sleep(Duration::from_secs(5)).await;
    client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect("answers again");
}

#[tokio::test]
async fn the_sdks_standard_retries_treat_a_throttled_queue_as_throttling() {
    let (sim, _client, url) = setup().await;
    sim.set_queue_outage(
        &url,
        Some((QueueOutage::Throttled, Duration::from_secs(3600))),
    );
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(DEFAULT_REGION))
        .endpoint_url(sim.endpoint_url())
        .test_credentials()
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await;
    sim.clear_requests();
    let error = Client::new(&cfg)
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(error.code(), Some("RequestThrottled"));
    assert_eq!(
        sim.request_count("ReceiveMessage"),
        2,
        "retried as throttling"
    );
}

#[tokio::test]
async fn the_demo_queue_gets_the_live_activitys_events_not_the_historys() {
    let sim = Simulator::start().await.expect("simulator starts");
    let url = sim.add_demo_queue();
    assert_eq!(
        url,
        format!("https://sqs.us-east-1.amazonaws.com/{DEFAULT_ACCOUNT}/{DEMO_QUEUE_NAME}")
    );
    sim.start_demo_activity_with_speedup(50);
    assert_eq!(
        sim.queue_stats(&url).events,
        0,
        "the history sends no events"
    );
    let client = sqs_client(&sim, DEFAULT_REGION).await;
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(20)
        .send()
        .await
        .expect("receive");
    let event = body_json(&got.messages()[0]);
    assert_eq!(event["account"], DEFAULT_ACCOUNT);
    let id = event["detail"]["association-id"].as_str().unwrap();
    assert!(DEMO_ASSOCIATIONS.iter().any(|d| d.id == id), "{id}");
    sim.shutdown();
}

#[tokio::test]
async fn an_event_can_announce_an_execution_not_visible_yet() {
    let (sim, client, url) = setup().await;
    sim.add_execution(A, SimExecution::new(exec_id(1), "Success", T0).invisible());
    let got = receive_now(&client, &url).await;
    assert_eq!(got.len(), 1);
    assert_eq!(body_json(&got[0])["detail"]["status"], "Success");
    let ssm = crate::api::client_for(&sim.endpoint_url()).await;
    let listed = ssm
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .unwrap();
    assert!(
        listed.association_executions().is_empty(),
        "not visible yet"
    );
    // Becoming visible is no change of state: no second event.
    sim.update_execution(A, &exec_id(1), |e| e.visible = true);
    assert_eq!(sim.queue_stats(&url).events, 1);
}
