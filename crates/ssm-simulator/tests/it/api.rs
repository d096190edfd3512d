//! The simulated SSM endpoint, exercised through the real `aws-sdk-ssm` client (and raw HTTP
//! for the wire details the SDK hides).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{
    AssociationExecution, AssociationExecutionFilter, AssociationExecutionFilterKey,
    AssociationFilterOperatorType,
};
use aws_sdk_ssm::Client;
use serde_json::Value;
use ssm_simulator::{
    format_filter_time, Fault, FaultRule, GroundTruth, SimAssociation, SimExecution, Simulator,
    DEFAULT_ACCOUNT, DEFAULT_REGION, DEMO_ASSOCIATIONS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const A: &str = "11111111-2222-4333-8444-555555555555";
pub const B: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const UNKNOWN: &str = "99999999-9999-4999-8999-999999999999";
/// 2019-02-18T16:03:47.119Z: a value the SDK's f64 parsing turns into ...118.999 ms.
pub const T0: i64 = 1_550_505_827_119;
const OP: &str = "DescribeAssociationExecutions";

async fn client(sim: &Simulator) -> Client {
    client_for(&sim.endpoint_url()).await
}

/// A client for `endpoint` with fake credentials and no retries.
pub async fn client_for(endpoint: &str) -> Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Client::new(&cfg)
}

/// A simulator with association `A` (and `B`) and a client pointed at it.
pub async fn setup() -> (Simulator, Client) {
    let sim = Simulator::start().await.expect("simulator starts");
    sim.add_association(
        A,
        SimAssociation::new("AWS-RunPatchBaseline")
            .with_name("patch-linux-fleet")
            .with_schedule("rate(30 minutes)")
            .with_alarm("patch-errors"),
    );
    sim.add_association(B, SimAssociation::new("AWS-UpdateSSMAgent"));
    let client = client(&sim).await;
    (sim, client)
}

pub fn exec_id(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

/// `n` visible Success executions of `A`, one second apart, created from `T0` on.
fn add_many(sim: &Simulator, n: usize) {
    for i in 0..n {
        sim.add_execution(
            A,
            SimExecution::new(exec_id(i), "Success", T0 + i as i64 * 1000),
        );
    }
}

pub fn filter(
    key: AssociationExecutionFilterKey,
    value: impl Into<String>,
    op: AssociationFilterOperatorType,
) -> AssociationExecutionFilter {
    AssociationExecutionFilter::builder()
        .key(key)
        .value(value)
        .r#type(op)
        .build()
        .expect("filter has all fields")
}

/// `CreatedTime` rounded to the nearest millisecond (the SDK parses it through an f64).
pub fn created_ms(e: &AssociationExecution) -> i64 {
    let t = e.created_time().expect("CreatedTime present");
    t.secs() * 1000 + (f64::from(t.subsec_nanos()) / 1e6).round() as i64
}

/// Pages through `A` with explicit requests; returns each page's items and whether it had a token.
async fn pages(
    client: &Client,
    max_results: Option<i32>,
    filters: Option<Vec<AssociationExecutionFilter>>,
) -> Vec<(Vec<AssociationExecution>, bool)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_association_executions()
            .association_id(A)
            .set_max_results(max_results)
            .set_filters(filters.clone())
            .set_next_token(token.take())
            .send()
            .await
            .expect("page succeeds");
        token = page.next_token().map(str::to_owned);
        out.push((page.association_executions().to_vec(), token.is_some()));
        if token.is_none() {
            return out;
        }
        assert!(out.len() < 100, "paging does not end");
    }
}

fn ids(pages: &[(Vec<AssociationExecution>, bool)]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|(items, _)| items.iter().map(|e| e.execution_id().unwrap().to_owned()))
        .collect()
}

fn assert_each_once(ids: &[String], expected: usize) {
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no execution twice");
    assert_eq!(ids.len(), expected);
}

async fn describe_err(
    client: &Client,
    association_id: &str,
) -> SdkError<
    aws_sdk_ssm::operation::describe_association_executions::DescribeAssociationExecutionsError,
> {
    client
        .describe_association_executions()
        .association_id(association_id)
        .send()
        .await
        .expect_err("request fails")
}

#[tokio::test]
async fn pages_through_120_executions_newest_first() {
    let (sim, client) = setup().await;
    add_many(&sim, 120);
    sim.add_execution(
        A,
        SimExecution::new(exec_id(500), "Success", T0 + 5).invisible(),
    );

    let pages = pages(&client, Some(50), None).await;
    let sizes: Vec<usize> = pages.iter().map(|(items, _)| items.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let all = ids(&pages);
    assert_each_once(&all, 120);
    let expected: Vec<String> = (0..120).rev().map(exec_id).collect();
    assert_eq!(all, expected, "newest CreatedTime first");

    // The SDK's own paginator agrees.
    let items: Vec<_> = client
        .describe_association_executions()
        .association_id(A)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginator succeeds");
    assert_eq!(items.len(), 120);
    // Default MaxResults is 50.
    assert_eq!(sim.request_count(OP), 3 + 3);
}

#[tokio::test]
async fn short_pages_and_empty_pages_still_yield_everything_once() {
    let (sim, client) = setup().await;
    add_many(&sim, 120);

    sim.set_page_size(Some(7));
    let short = pages(&client, Some(50), None).await;
    assert_eq!(short.len(), 18, "ceil(120 / 7) pages");
    assert!(short.iter().all(|(items, _)| items.len() <= 7));
    assert_each_once(&ids(&short), 120);

    sim.set_page_size(None);
    sim.set_empty_pages(3);
    let with_empty = pages(&client, Some(50), None).await;
    let sizes: Vec<usize> = with_empty.iter().map(|(items, _)| items.len()).collect();
    assert_eq!(sizes, [0, 0, 0, 50, 50, 20]);
    assert!(with_empty[..3].iter().all(|(_, has_token)| *has_token));
    assert_each_once(&ids(&with_empty), 120);

    // Both at once, through the SDK paginator.
    sim.set_page_size(Some(7));
    let items: Vec<_> = client
        .describe_association_executions()
        .association_id(A)
        .max_results(50)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginator succeeds");
    let ids: Vec<String> = items
        .iter()
        .map(|e| e.execution_id().unwrap().to_owned())
        .collect();
    assert_each_once(&ids, 120);

    // An association without executions still serves its empty pages.
    let empty = client
        .describe_association_executions()
        .association_id(B)
        .send()
        .await
        .unwrap();
    assert!(empty.association_executions().is_empty());
    assert!(empty.next_token().is_some());
}

#[tokio::test]
async fn paging_is_stable_while_executions_arrive() {
    let (sim, client) = setup().await;
    add_many(&sim, 30);
    let first = client
        .describe_association_executions()
        .association_id(A)
        .max_results(10)
        .send()
        .await
        .unwrap();
    // A newer execution lands before the cursor, an older one after it.
    sim.add_execution(A, SimExecution::new(exec_id(1000), "Success", T0 + 100_000));
    sim.add_execution(A, SimExecution::new(exec_id(1001), "Success", T0 - 1));
    let mut seen: Vec<String> = first
        .association_executions()
        .iter()
        .map(|e| e.execution_id().unwrap().to_owned())
        .collect();
    let mut token = first.next_token().map(str::to_owned);
    while let Some(t) = token {
        let page = client
            .describe_association_executions()
            .association_id(A)
            .max_results(10)
            .next_token(t)
            .send()
            .await
            .unwrap();
        seen.extend(
            page.association_executions()
                .iter()
                .map(|e| e.execution_id().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
    }
    assert_each_once(&seen, 31);
    assert!(!seen.contains(&exec_id(1000)));
    assert_eq!(seen.last(), Some(&exec_id(1001)));
}

#[tokio::test]
async fn created_time_filters_work_at_millisecond_precision() {
    let (sim, client) = setup().await;
    for i in 0..3 {
        sim.add_execution(A, SimExecution::new(exec_id(i), "Success", T0 + i as i64));
    }
    let query = |op, value: String| {
        let client = client.clone();
        async move {
            let out = client
                .describe_association_executions()
                .association_id(A)
                .filters(filter(
                    AssociationExecutionFilterKey::CreatedTime,
                    value,
                    op,
                ))
                .send()
                .await
                .expect("filtered request succeeds");
            out.association_executions()
                .iter()
                .map(created_ms)
                .collect::<Vec<_>>()
        }
    };
    use AssociationFilterOperatorType::{GreaterThan, LessThan};
    assert_eq!(
        query(GreaterThan, format_filter_time(T0 + 1)).await,
        [T0 + 2]
    );
    assert_eq!(
        query(GreaterThan, format_filter_time(T0)).await,
        [T0 + 2, T0 + 1]
    );
    assert_eq!(query(LessThan, format_filter_time(T0 + 1)).await, [T0]);
    assert_eq!(query(LessThan, format_filter_time(T0 + 3)).await.len(), 3);
    // Without milliseconds: whole second 16:03:47 is before all three.
    assert_eq!(
        query(GreaterThan, "2019-02-18T16:03:47Z".into())
            .await
            .len(),
        3
    );
    assert!(query(LessThan, "2019-02-18T16:03:47Z".into())
        .await
        .is_empty());

    // The tricky value survives the SDK's f64 parsing once rounded.
    let raw = client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .unwrap();
    assert_eq!(created_ms(&raw.association_executions()[2]), T0);

    // Unparseable values and unsupported key/operator pairs are rejected.
    let bad = client
        .describe_association_executions()
        .association_id(A)
        .filters(filter(
            AssociationExecutionFilterKey::CreatedTime,
            "yesterday",
            GreaterThan,
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("ValidationException"));
    let bad = client
        .describe_association_executions()
        .association_id(A)
        .filters(filter(
            AssociationExecutionFilterKey::Status,
            "Success",
            LessThan,
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("ValidationException"));
    let bad = client
        .describe_association_executions()
        .association_id(A)
        .set_filters(Some(Vec::new()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("ValidationException"));
}

#[tokio::test]
async fn status_and_execution_id_filters() {
    let (sim, client) = setup().await;
    sim.add_execution(A, SimExecution::new(exec_id(1), "Success", T0));
    sim.add_execution(A, SimExecution::new(exec_id(2), "Failed", T0 + 1));
    sim.add_execution(A, SimExecution::new(exec_id(3), "Failed", T0 + 2));
    use AssociationExecutionFilterKey::{ExecutionId, Status};
    use AssociationFilterOperatorType::Equal;

    let failed = pages(&client, None, Some(vec![filter(Status, "Failed", Equal)])).await;
    assert_eq!(ids(&failed), [exec_id(3), exec_id(2)]);
    let one = pages(
        &client,
        None,
        Some(vec![filter(ExecutionId, exec_id(1), Equal)]),
    )
    .await;
    assert_eq!(ids(&one), [exec_id(1)]);
    let both = pages(
        &client,
        None,
        Some(vec![
            filter(Status, "Failed", Equal),
            filter(ExecutionId, exec_id(1), Equal),
        ]),
    )
    .await;
    assert!(ids(&both).is_empty(), "filters combine with AND");

    let recorded = sim.requests();
    assert_eq!(
        recorded[0].filters,
        [("Status".to_owned(), "Failed".to_owned(), "EQUAL".to_owned())]
    );
}

#[tokio::test]
async fn invisible_executions_appear_once_made_visible() {
    let (sim, client) = setup().await;
    sim.add_execution(A, SimExecution::new(exec_id(1), "Success", T0));
    sim.add_execution(
        A,
        SimExecution::new(exec_id(2), "Success", T0 - 10).invisible(),
    );
    assert_eq!(ids(&pages(&client, None, None).await), [exec_id(1)]);
    assert_eq!(sim.executions(A).len(), 2);

    sim.update_execution(A, &exec_id(2), |e| e.visible = true);
    assert_eq!(
        ids(&pages(&client, None, None).await),
        [exec_id(1), exec_id(2)]
    );
}

#[tokio::test]
async fn unknown_and_removed_associations_do_not_exist() {
    let (sim, client) = setup().await;
    add_many(&sim, 3);
    assert_eq!(
        describe_err(&client, UNKNOWN).await.code(),
        Some("AssociationDoesNotExist")
    );
    let err = describe_err(&client, UNKNOWN).await;
    assert!(err.into_service_error().is_association_does_not_exist());
    assert_eq!(
        describe_err(&client, "not-a-uuid").await.code(),
        Some("ValidationException")
    );
    let bad_max = client
        .describe_association_executions()
        .association_id(A)
        .max_results(51)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_max.code(), Some("ValidationException"));

    sim.remove_association(A);
    assert_eq!(
        describe_err(&client, A).await.code(),
        Some("AssociationDoesNotExist")
    );
    let err = client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AssociationDoesNotExist"));
    assert_eq!(sim.ground_truth(), GroundTruth::default());
}

#[tokio::test]
async fn faults_surface_as_aws_error_codes() {
    let (sim, client) = setup().await;
    add_many(&sim, 3);
    let cases = [
        (Fault::Throttle, "ThrottlingException"),
        (Fault::InternalError, "InternalServerError"),
        (Fault::InvalidNextToken, "InvalidNextToken"),
        (Fault::AccessDenied, "AccessDeniedException"),
        (Fault::ExpiredToken, "ExpiredTokenException"),
    ];
    for (fault, code) in cases {
        sim.push_fault(FaultRule::new(fault));
        assert_eq!(describe_err(&client, A).await.code(), Some(code));
        // Each rule fires once by default.
        client
            .describe_association_executions()
            .association_id(A)
            .send()
            .await
            .expect("next request succeeds");
    }
    let throttled = sim.requests()[0].clone();
    assert_eq!(throttled.status, 400);
    assert_eq!(throttled.error_code.as_deref(), Some("ThrottlingException"));
    assert_eq!(sim.requests()[2].status, 500);
    assert_eq!(sim.requests()[1].status, 200);
}

/// Access denied to one association (a policy on some association ARNs, an SCP): that
/// association's calls are refused as IAM words it, naming its ARN; the others' are answered.
#[tokio::test]
async fn access_denied_to_one_association_names_its_arn_and_spares_the_others() {
    let (sim, client) = setup().await;
    add_many(&sim, 3);
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .operation("DescribeAssociationExecutions")
            .association(A)
            .forever(),
    );
    for _ in 0..2 {
        let err = describe_err(&client, A).await;
        assert_eq!(err.code(), Some("AccessDeniedException"));
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains("not authorized to perform: ssm:DescribeAssociationExecutions")
                && message.contains(&format!(
                    "on resource: arn:aws:ssm:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:association/{A}"
                )),
            "{message}"
        );
        client
            .describe_association_executions()
            .association_id(B)
            .send()
            .await
            .expect("another association is answered");
    }
    assert!(client.list_associations().send().await.is_ok());
}

#[tokio::test]
async fn bad_next_tokens_are_rejected() {
    let (sim, client) = setup().await;
    add_many(&sim, 5);
    sim.add_execution(B, SimExecution::new(exec_id(9), "Success", T0));
    sim.add_execution(B, SimExecution::new(exec_id(10), "Success", T0 + 1));
    for token in ["garbage", "00ff", "abc"] {
        let err = client
            .describe_association_executions()
            .association_id(A)
            .next_token(token)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidNextToken"), "{token}");
    }
    // A token belongs to its association.
    let b_page = client
        .describe_association_executions()
        .association_id(B)
        .max_results(1)
        .send()
        .await
        .unwrap();
    let err = client
        .describe_association_executions()
        .association_id(A)
        .next_token(b_page.next_token().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidNextToken"));
}

#[tokio::test]
async fn fault_rules_honour_skip_times_and_next_token() {
    let (sim, client) = setup().await;
    add_many(&sim, 6);
    let ok = |client: Client| async move {
        client
            .describe_association_executions()
            .association_id(A)
            .send()
            .await
            .is_ok()
    };

    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation(OP)
            .skip(1)
            .times(2),
    );
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(ok(client.clone()).await);
    }
    assert_eq!(results, [true, false, false, true, true]);
    // Other operations and associations do not match.
    sim.clear_faults();
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation(OP)
            .association(B)
            .forever(),
    );
    assert!(client
        .describe_association()
        .association_id(B)
        .send()
        .await
        .is_ok());
    assert!(ok(client.clone()).await);
    assert_eq!(
        describe_err(&client, B).await.code(),
        Some("ThrottlingException")
    );
    assert_eq!(
        describe_err(&client, B).await.code(),
        Some("ThrottlingException")
    );

    // only_with_next_token: first pages pass, the second page fails.
    sim.clear_faults();
    sim.push_fault(FaultRule::new(Fault::InvalidNextToken).only_with_next_token());
    let first = client
        .describe_association_executions()
        .association_id(A)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert!(ok(client.clone()).await, "no token, no fault");
    let err = client
        .describe_association_executions()
        .association_id(A)
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidNextToken"));
    // The rule is spent: the same page now succeeds.
    let second = client
        .describe_association_executions()
        .association_id(A)
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.association_executions().len(), 2);
}

#[tokio::test]
async fn reset_connection_is_a_dispatch_error() {
    let (sim, client) = setup().await;
    add_many(&sim, 1);
    // Warm a pooled connection first, so the reset hits a reused one.
    client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();
    sim.push_fault(FaultRule::new(Fault::ResetConnection));
    let err = describe_err(&client, A).await;
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "expected a dispatch failure, got {err:?}"
    );
    assert_eq!(err.code(), None);
    let recorded = sim.requests().pop().unwrap();
    assert_eq!(recorded.status, 0);
    assert_eq!(recorded.error_code.as_deref(), Some("ResetConnection"));
    // The next request gets a fresh connection and works.
    client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .expect("works after the reset");
}

#[tokio::test]
async fn delay_answers_late_and_hang_ends_on_shutdown() {
    let (sim, client) = setup().await;
    add_many(&sim, 1);
    sim.push_fault(FaultRule::new(Fault::Delay(Duration::from_millis(300))));
    let started = std::time::Instant::now();
    client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .expect("delayed request succeeds");
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.push_fault(FaultRule::new(Fault::Hang));
    let hung = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .describe_association_executions()
                .association_id(A)
                .send()
                .await
        }
    });
    // Wait until the hung request has arrived.
    tokio::time::timeout(Duration::from_secs(5), async {
        while sim.request_count(OP) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("hung request arrives");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hung.is_finished(), "a hung request gets no answer");
    sim.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("shutdown ends the hung request")
        .unwrap();
    assert!(result.is_err());
    // The server is gone.
    assert!(client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn describe_association_round_trips() {
    let (sim, client) = setup().await;
    sim.add_execution(
        A,
        SimExecution::new(exec_id(1), "Success", T0)
            .with_last_execution_ms(T0 + 30_000)
            .with_resource_count_by_status("{Success=3}"),
    );
    sim.add_execution(
        A,
        SimExecution::new(exec_id(2), "Failed", T0 + 60_000)
            .with_detailed_status("Failed")
            .with_last_execution_ms(T0 + 90_000)
            .with_resource_count_by_status("{Failed=1,Success=2}")
            .with_triggered_alarm("patch-errors", "ALARM"),
    );
    let out = client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let d = out.association_description().expect("description");
    assert_eq!(d.association_id(), Some(A));
    assert_eq!(d.association_name(), Some("patch-linux-fleet"));
    assert_eq!(d.name(), Some("AWS-RunPatchBaseline"));
    assert_eq!(d.document_version(), Some("$DEFAULT"));
    assert_eq!(d.schedule_expression(), Some("rate(30 minutes)"));
    assert_eq!(d.association_version(), Some("1"));
    assert_eq!(d.date().unwrap().secs(), T0 / 1000);
    assert_eq!(
        d.last_execution_date().unwrap().secs(),
        (T0 + 90_000) / 1000
    );
    assert_eq!(
        d.last_successful_execution_date().unwrap().secs(),
        (T0 + 30_000) / 1000
    );
    let alarms = d.alarm_configuration().expect("alarm configuration");
    assert_eq!(alarms.alarms()[0].name(), "patch-errors");
    let overview = d.overview().expect("overview");
    assert_eq!(overview.status(), Some("Failed"));
    let counts = overview.association_status_aggregated_count().unwrap();
    assert_eq!(counts.get("Failed"), Some(&1));
    assert_eq!(counts.get("Success"), Some(&2));

    // Executions carry the association's alarm configuration and their triggered alarms.
    let page = client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let newest = &page.association_executions()[0];
    assert_eq!(newest.association_id(), Some(A));
    assert_eq!(newest.association_version(), Some("1"));
    assert_eq!(newest.detailed_status(), Some("Failed"));
    assert_eq!(
        newest.resource_count_by_status(),
        Some("{Failed=1,Success=2}")
    );
    assert_eq!(
        newest.alarm_configuration().unwrap().alarms()[0].name(),
        "patch-errors"
    );
    let triggered = &newest.triggered_alarms()[0];
    assert_eq!(triggered.name(), "patch-errors");
    assert_eq!(triggered.state().as_str(), "ALARM");
    let oldest = &page.association_executions()[1];
    assert!(oldest.triggered_alarms().is_empty());
    assert!(oldest.detailed_status().is_none());

    // Without executions: pending, no dates derived.
    let out = client
        .describe_association()
        .association_id(B)
        .send()
        .await
        .unwrap();
    let d = out.association_description().unwrap();
    assert_eq!(d.overview().unwrap().status(), Some("Pending"));
    assert!(d.last_execution_date().is_none());
    assert!(d.association_name().is_none());
    assert!(d.alarm_configuration().is_none());
}

#[tokio::test]
async fn ground_truth_counts_visible_executions() {
    let (sim, _client) = setup().await;
    sim.add_execution(
        A,
        SimExecution::new(exec_id(1), "Success", T0).with_last_execution_ms(T0 + 1),
    );
    sim.add_execution(A, SimExecution::new(exec_id(2), "Success", T0 + 1));
    sim.add_execution(
        A,
        SimExecution::new(exec_id(3), "Failed", T0 + 2)
            .with_last_execution_ms(T0 + 5)
            .with_triggered_alarm("patch-errors", "ALARM"),
    );
    sim.add_execution(A, SimExecution::new(exec_id(4), "InProgress", T0 + 3));
    sim.add_execution(
        A,
        SimExecution::new(exec_id(5), "Failed", T0 + 4).invisible(),
    );
    sim.add_execution(B, SimExecution::new(exec_id(6), "Pending", T0));

    let truth = sim.ground_truth();
    let expected = GroundTruth {
        executions: BTreeMap::from([(
            A.to_owned(),
            BTreeMap::from([("Failed".to_owned(), 1), ("Success".to_owned(), 2)]),
        )]),
        in_progress: BTreeMap::from([(A.to_owned(), 1), (B.to_owned(), 1)]),
        triggered_alarms: BTreeMap::from([(
            A.to_owned(),
            BTreeMap::from([(("patch-errors".to_owned(), "ALARM".to_owned()), 1)]),
        )]),
        without_end_time: BTreeMap::from([(A.to_owned(), 1)]),
        targets: BTreeMap::new(),
    };
    assert_eq!(truth, expected);

    sim.update_execution(A, &exec_id(4), |e| {
        e.status = "TimedOut".into();
        e.last_execution_ms = Some(T0 + 10);
    });
    sim.update_execution(A, &exec_id(5), |e| e.visible = true);
    let truth = sim.ground_truth();
    assert_eq!(truth.executions[A]["Failed"], 2);
    assert_eq!(truth.executions[A]["TimedOut"], 1);
    assert_eq!(truth.in_progress.get(A), None);
    assert_eq!(truth.without_end_time[A], 2);

    sim.remove_association(A);
    assert!(sim.ground_truth().executions.is_empty());
}

#[tokio::test]
async fn rate_limit_throttles_when_exceeded() {
    let (sim, client) = setup().await;
    // Burst of one and (practically) no refill: the second call is over the limit.
    sim.set_rate_limit(Some(0.001));
    client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let err = client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(err.message(), Some("Rate exceeded"));

    // A generous limit lets a burst through.
    sim.set_rate_limit(Some(1000.0));
    for _ in 0..20 {
        client
            .describe_association()
            .association_id(A)
            .send()
            .await
            .unwrap();
    }
    sim.set_rate_limit(None);
    client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let (sim, client) = setup().await;
    add_many(&sim, 3);
    let first = client
        .describe_association_executions()
        .association_id(A)
        .max_results(2)
        .send()
        .await
        .unwrap();
    client
        .describe_association_executions()
        .association_id(A)
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    let _ = describe_err(&client, UNKNOWN).await;
    client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[0].operation, OP);
    assert_eq!(recorded[0].association_id.as_deref(), Some(A));
    assert_eq!(recorded[0].max_results, Some(2));
    assert_eq!(recorded[0].next_token, None);
    assert_eq!(recorded[1].next_token.as_deref(), first.next_token());
    assert_eq!(recorded[2].status, 400);
    assert_eq!(
        recorded[2].error_code.as_deref(),
        Some("AssociationDoesNotExist")
    );
    assert_eq!(recorded[3].operation, "DescribeAssociation");
    assert_eq!(recorded[3].status, 200);
    assert_eq!(sim.request_count(OP), 3);
    assert_eq!(sim.request_count("DescribeAssociation"), 1);
}

/// Sends one raw HTTP/1.1 request; returns (status, lower-cased header block, JSON body).
pub async fn raw(sim: &Simulator, headers: &[(&str, &str)], body: &str) -> (u16, String, Value) {
    let addr = sim.endpoint_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("header block");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn raw_wire_format_and_errors() {
    let (sim, _client) = setup().await;
    add_many(&sim, 2);
    let auth = ("Authorization", "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00");
    let json = ("Content-Type", "application/x-amz-json-1.1");
    let target = ("X-Amz-Target", "AmazonSSM.DescribeAssociationExecutions");
    let body = format!(r#"{{"AssociationId":"{A}"}}"#);

    let (status, head, ok) = raw(&sim, &[auth, json, target], &body).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/x-amz-json-1.1"));
    assert!(head.contains("x-amzn-requestid: "));
    let items = ok["AssociationExecutions"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["CreatedTime"].as_f64(), Some(1_550_505_827.119));
    assert!(ok.get("NextToken").is_none());

    let expect_error = |status: u16, code: &str, (got_status, head, body): (u16, String, Value)| {
        assert_eq!(got_status, status, "{body}");
        assert_eq!(body["__type"], code);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "only __type and message"
        );
        assert!(head.contains("x-amzn-requestid: "));
    };
    expect_error(
        403,
        "UnrecognizedClientException",
        raw(&sim, &[json, target], &body).await,
    );
    expect_error(
        403,
        "UnrecognizedClientException",
        raw(&sim, &[("Authorization", "Basic abc"), json, target], &body).await,
    );
    expect_error(
        400,
        "UnknownOperationException",
        raw(
            &sim,
            &[auth, json, ("X-Amz-Target", "AmazonSSM.DeleteEverything")],
            "{}",
        )
        .await,
    );
    expect_error(
        400,
        "SerializationException",
        raw(&sim, &[auth, json, target], "{not json").await,
    );
    expect_error(
        400,
        "SerializationException",
        raw(
            &sim,
            &[auth, json, target],
            &format!(r#"{{"AssociationId":"{A}","MaxResults":"ten"}}"#),
        )
        .await,
    );
    expect_error(
        400,
        "AssociationDoesNotExist",
        raw(
            &sim,
            &[auth, json, target],
            &format!(r#"{{"AssociationId":"{UNKNOWN}"}}"#),
        )
        .await,
    );
    expect_error(
        400,
        "ValidationException",
        raw(&sim, &[auth, json, target], r#"{"AssociationId":"abc"}"#).await,
    );
    expect_error(
        400,
        "ValidationException",
        raw(
            &sim,
            &[auth, json, target],
            &format!(r#"{{"AssociationId":"{A}","MaxResults":0}}"#),
        )
        .await,
    );
    sim.push_fault(FaultRule::new(Fault::InternalError));
    expect_error(
        500,
        "InternalServerError",
        raw(&sim, &[auth, json, target], &body).await,
    );
    sim.push_fault(FaultRule::new(Fault::Throttle));
    let throttled = raw(&sim, &[auth, json, target], &body).await;
    assert_eq!(throttled.2["message"], "Rate exceeded");
    expect_error(400, "ThrottlingException", throttled);
    // Unauthenticated requests are recorded too.
    assert_eq!(
        sim.requests()[1].error_code.as_deref(),
        Some("UnrecognizedClientException")
    );
}

#[tokio::test]
async fn demo_scenario_is_realistic_and_lives() {
    let sim = Simulator::start().await.unwrap();
    let client = client(&sim).await;
    let started_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sim.start_demo_activity_with_speedup(100);
    sim.start_demo_activity_with_speedup(100); // second call is a no-op

    assert!((4..=5).contains(&DEMO_ASSOCIATIONS.len()));
    let truth = sim.ground_truth();
    let mut statuses = BTreeSet::new();
    for demo in DEMO_ASSOCIATIONS {
        let history = sim.executions(demo.id);
        assert!(
            history.len() >= 10,
            "{} has ~50 minutes of history",
            demo.name
        );
        assert!(demo.alarms.len() <= 1);
        statuses.extend(truth.executions[demo.id].keys().cloned());

        let d = client
            .describe_association()
            .association_id(demo.id)
            .send()
            .await
            .unwrap();
        let d = d.association_description().unwrap();
        assert_eq!(d.association_name(), Some(demo.name));
        assert_eq!(d.name(), Some(demo.document));
        assert_eq!(d.schedule_expression(), Some(demo.schedule));

        let items: Vec<_> = client
            .describe_association_executions()
            .association_id(demo.id)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .unwrap();
        assert!(items.len() >= history.iter().filter(|e| e.visible).count());
        // History (created before the live activity began): ends 20-300 s after creation.
        for e in items
            .iter()
            .filter(|e| e.created_time().unwrap().secs() < started_secs - 60)
        {
            let last = e.last_execution_date().map(|d| d.secs());
            let created = e.created_time().unwrap().secs();
            if let Some(last) = last {
                assert!((created + 20..=created + 301).contains(&last));
            }
        }
    }
    for status in ["Success", "Failed", "TimedOut", "Cancelled", "Skipped"] {
        assert!(statuses.contains(status), "history has a {status}");
    }
    assert!(!truth.triggered_alarms.is_empty());

    // Live activity (100x faster): new executions appear, and in-progress ones get finalised.
    let total = |sim: &Simulator| -> usize {
        DEMO_ASSOCIATIONS
            .iter()
            .map(|d| sim.executions(d.id).len())
            .sum()
    };
    let before = total(&sim);
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 10_000;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let live_finalised = DEMO_ASSOCIATIONS
                .iter()
                .flat_map(|d| sim.executions(d.id))
                .filter(|e| e.created_ms >= started_ms && e.visible)
                .filter(|e| ssm_simulator::is_final_status(&e.status))
                .count();
            if total(&sim) >= before + 3 && live_finalised >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the demo keeps producing and finalising executions");
    sim.shutdown();
}

#[tokio::test]
#[should_panic(expected = "at most one")]
async fn model_limits_are_enforced_on_test_data() {
    let sim = Simulator::start().await.unwrap();
    sim.add_association(
        A,
        SimAssociation::new("AWS-RunPatchBaseline")
            .with_alarm("a")
            .with_alarm("b"),
    );
}

/// Minimal structural check of a JSON value against a shape of the official service model.
pub fn check_shape(model: &Value, shape: &str, value: &Value, path: &str) {
    let def = &model["shapes"][shape];
    assert!(def.is_object(), "unknown shape {shape}");
    match def["type"].as_str().unwrap() {
        "structure" => {
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: object expected"));
            for required in def["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                assert!(obj.contains_key(name), "{path}: missing required {name}");
            }
            for (name, member) in obj {
                let target = def["members"][name]["shape"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{path}: {name} is not in shape {shape}"));
                check_shape(model, target, member, &format!("{path}.{name}"));
            }
        }
        "list" => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{path}: array expected"));
            if let Some(min) = def["min"].as_u64() {
                assert!(items.len() as u64 >= min, "{path}: fewer than {min} items");
            }
            if let Some(max) = def["max"].as_u64() {
                assert!(items.len() as u64 <= max, "{path}: more than {max} items");
            }
            let member = def["member"]["shape"].as_str().unwrap();
            for (i, item) in items.iter().enumerate() {
                check_shape(model, member, item, &format!("{path}[{i}]"));
            }
        }
        "map" => {
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: object expected"));
            let member = def["value"]["shape"].as_str().unwrap();
            for (k, v) in obj {
                check_shape(model, member, v, &format!("{path}.{k}"));
            }
        }
        "string" => {
            let s = value
                .as_str()
                .unwrap_or_else(|| panic!("{path}: string expected"));
            if let Some(allowed) = def["enum"].as_array() {
                assert!(
                    allowed.iter().any(|a| a == s),
                    "{path}: {s} not in {allowed:?}"
                );
            }
            if let Some(min) = def["min"].as_u64() {
                assert!(s.chars().count() as u64 >= min, "{path}: too short");
            }
            if let Some(max) = def["max"].as_u64() {
                assert!(s.chars().count() as u64 <= max, "{path}: too long");
            }
            if matches!(shape, "AssociationId" | "AssociationExecutionId") {
                let groups: Vec<usize> = s.split('-').map(str::len).collect();
                assert_eq!(groups, [8, 4, 4, 4, 12], "{path}: {s} is not a uuid");
                assert!(s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            }
            if shape == "AssociationName" {
                assert!((3..=128).contains(&s.len()));
                assert!(s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
            }
        }
        "timestamp" => assert!(value.is_number(), "{path}: epoch seconds expected"),
        "integer" => assert!(value.is_i64(), "{path}: integer expected"),
        "boolean" => assert!(value.is_boolean(), "{path}: boolean expected"),
        other => panic!("{path}: unhandled shape type {other}"),
    }
}

#[tokio::test]
async fn responses_match_the_service_model() {
    // A copy of shared/ssm-api-model.json, compiled in: cargo rebuilds the test when it changes.
    let model: Value =
        serde_json::from_str(include_str!("../fixtures/ssm-api-model.json")).unwrap();
    let sim = Simulator::start().await.unwrap();
    sim.start_demo_activity();
    let auth = ("Authorization", "AWS4-HMAC-SHA256 Credential=x");
    let json = ("Content-Type", "application/x-amz-json-1.1");
    for demo in DEMO_ASSOCIATIONS {
        let mut token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({"AssociationId": demo.id, "MaxResults": 7});
            if let Some(t) = token.take() {
                request["NextToken"] = Value::from(t);
            }
            let (status, _, body) = raw(
                &sim,
                &[
                    auth,
                    json,
                    ("X-Amz-Target", "AmazonSSM.DescribeAssociationExecutions"),
                ],
                &request.to_string(),
            )
            .await;
            assert_eq!(status, 200);
            check_shape(&model, "DescribeAssociationExecutionsResult", &body, "$");
            token = body["NextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let (status, _, body) = raw(
            &sim,
            &[
                auth,
                json,
                ("X-Amz-Target", "AmazonSSM.DescribeAssociation"),
            ],
            &serde_json::json!({"AssociationId": demo.id}).to_string(),
        )
        .await;
        assert_eq!(status, 200);
        check_shape(&model, "DescribeAssociationResult", &body, "$");
    }
    sim.shutdown();
}
