//! `DescribeAssociationExecutionTargets` through the real `aws-sdk-ssm` client: paging,
//! filters, errors, faults, derived `ResourceCountByStatus` and the target ground truth.

use std::collections::BTreeMap;

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{AssociationExecutionTargetsFilter, AssociationExecutionTargetsFilterKey};
use aws_sdk_ssm::Client;
use ssm_simulator::{Fault, FaultRule, SimExecution, SimTarget, Simulator, DEFAULT_ACCOUNT};

use crate::api::{exec_id, setup, A, B, T0};

fn instance(n: usize) -> String {
    format!("i-{n:017x}")
}

/// `n` targets: every 10th `Failed`, every 7th (not 10th) `TimedOut`, the rest `Success`.
fn many_targets(n: usize) -> Vec<SimTarget> {
    (0..n)
        .map(|i| {
            if i % 10 == 0 {
                SimTarget::new(instance(i), "Failed")
            } else if i % 7 == 0 {
                SimTarget::new(instance(i), "TimedOut").with_detailed_status("DeliveryTimedOut")
            } else {
                SimTarget::new(instance(i), "Success")
            }
        })
        .collect()
}

fn status_filter(value: &str) -> AssociationExecutionTargetsFilter {
    AssociationExecutionTargetsFilter::builder()
        .key(AssociationExecutionTargetsFilterKey::Status)
        .value(value)
        .build()
        .unwrap()
}

/// Every target of `execution` (optionally filtered) by paging `max_results` at a time.
async fn all_targets(
    client: &Client,
    execution: &str,
    filters: Vec<AssociationExecutionTargetsFilter>,
    max_results: i32,
) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client
            .describe_association_execution_targets()
            .association_id(A)
            .execution_id(execution)
            .set_filters((!filters.is_empty()).then(|| filters.clone()))
            .max_results(max_results)
            .set_next_token(token)
            .send()
            .await
            .expect("page");
        pages += 1;
        for t in page.association_execution_targets() {
            out.push((
                t.resource_id().unwrap().to_owned(),
                t.status().unwrap().to_owned(),
                t.detailed_status().unwrap_or_default().to_owned(),
            ));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return (out, pages);
        }
    }
}

#[tokio::test]
async fn targets_page_stably_and_filter_by_status() {
    let (sim, client) = setup().await;
    let execution = exec_id(1);
    sim.add_execution(
        A,
        SimExecution::new(&execution, "Failed", T0)
            .with_last_execution_ms(T0 + 60_000)
            .with_targets(many_targets(120)),
    );
    let (all, pages) = all_targets(&client, &execution, Vec::new(), 50).await;
    assert_eq!(all.len(), 120);
    assert_eq!(pages, 3);
    let mut ids: Vec<&String> = all.iter().map(|(id, _, _)| id).collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort();
        s
    };
    assert_eq!(ids, sorted, "in ResourceId order");
    ids.dedup();
    assert_eq!(ids.len(), 120, "no target twice");

    let (failed, _) = all_targets(&client, &execution, vec![status_filter("Failed")], 5).await;
    assert_eq!(failed.len(), 12);
    assert!(failed
        .iter()
        .all(|(_, s, d)| s == "Failed" && d == "Failed"));
    let (timed_out, _) =
        all_targets(&client, &execution, vec![status_filter("TimedOut")], 50).await;
    assert_eq!(timed_out.len(), 16);
    assert!(timed_out.iter().all(|(_, _, d)| d == "DeliveryTimedOut"));

    // Two filters must both hold.
    let resource = AssociationExecutionTargetsFilter::builder()
        .key(AssociationExecutionTargetsFilterKey::ResourceId)
        .value(instance(10))
        .build()
        .unwrap();
    let (one, _) = all_targets(
        &client,
        &execution,
        vec![status_filter("Failed"), resource.clone()],
        50,
    )
    .await;
    assert_eq!(one.len(), 1);
    let (none, _) = all_targets(
        &client,
        &execution,
        vec![status_filter("Success"), resource],
        50,
    )
    .await;
    assert!(none.is_empty());
    let by_type = AssociationExecutionTargetsFilter::builder()
        .key(AssociationExecutionTargetsFilterKey::ResourceType)
        .value("ManagedInstance")
        .build()
        .unwrap();
    assert_eq!(
        all_targets(&client, &execution, vec![by_type], 50)
            .await
            .0
            .len(),
        120
    );

    // The item's other fields.
    let page = client
        .describe_association_execution_targets()
        .association_id(A)
        .execution_id(&execution)
        .filters(status_filter("Failed"))
        .max_results(1)
        .send()
        .await
        .unwrap();
    let t = &page.association_execution_targets()[0];
    assert_eq!(t.association_id(), Some(A));
    assert_eq!(t.execution_id(), Some(execution.as_str()));
    assert_eq!(t.resource_type(), Some("ManagedInstance"));
    assert_eq!(t.association_version(), Some("1"));
    // The SDK parses timestamps through an f64: within a millisecond.
    let last = t.last_execution_date().unwrap().to_millis().unwrap();
    assert!((last - (T0 + 60_000)).abs() <= 1, "{last}");
    let source = t.output_source().unwrap();
    assert_eq!(source.output_source_type(), Some("RunCommand"));
    assert_eq!(source.output_source_id().unwrap().len(), 36);
}

#[tokio::test]
async fn resource_counts_are_derived_from_targets_and_ground_truth_counts_them() {
    let (sim, client) = setup().await;
    sim.add_execution(
        A,
        SimExecution::new(exec_id(1), "Failed", T0).with_targets([
            SimTarget::new(instance(1), "Success"),
            SimTarget::new(instance(2), "Failed"),
            SimTarget::new(instance(3), "Failed").with_detailed_status("Undeliverable"),
            SimTarget::new(instance(4), "TimedOut"),
        ]),
    );
    // Explicit counts win; running executions' targets are not ground truth yet.
    sim.add_execution(
        A,
        SimExecution::new(exec_id(2), "Failed", T0 + 1)
            .with_resource_count_by_status("{Failed=1}")
            .with_target(SimTarget::new(instance(5), "Failed")),
    );
    sim.add_execution(
        A,
        SimExecution::new(exec_id(3), "InProgress", T0 + 2)
            .with_target(SimTarget::new(instance(6), "Failed")),
    );
    let page = client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let counts: BTreeMap<String, Option<String>> = page
        .association_executions()
        .iter()
        .map(|e| {
            (
                e.execution_id().unwrap().to_owned(),
                e.resource_count_by_status().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        counts[&exec_id(1)].as_deref(),
        Some("{Failed=2,Success=1,TimedOut=1}")
    );
    assert_eq!(counts[&exec_id(2)].as_deref(), Some("{Failed=1}"));
    let truth = sim.ground_truth();
    assert_eq!(
        truth.targets[A],
        BTreeMap::from([
            (("Failed".to_owned(), "Failed".to_owned()), 2),
            (("Failed".to_owned(), "Undeliverable".to_owned()), 1),
            (("TimedOut".to_owned(), "TimedOut".to_owned()), 1),
        ])
    );
}

#[tokio::test]
async fn errors_follow_the_service_model() {
    let (sim, client) = setup().await;
    sim.add_execution(
        A,
        SimExecution::new(exec_id(1), "Failed", T0).with_targets(many_targets(3)),
    );
    sim.add_execution(
        A,
        SimExecution::new(exec_id(2), "Failed", T0 + 1).invisible(),
    );
    let err = |r: Result<_, aws_sdk_ssm::error::SdkError<_, _>>| {
        let e: aws_sdk_ssm::error::SdkError<
            aws_sdk_ssm::operation::describe_association_execution_targets::DescribeAssociationExecutionTargetsError,
            _,
        > = r.map(|_: aws_sdk_ssm::operation::describe_association_execution_targets::DescribeAssociationExecutionTargetsOutput| ()).unwrap_err();
        e.code().unwrap_or_default().to_owned()
    };
    let unknown = "99999999-9999-4999-8999-999999999999";
    let call = |association: &str, execution: &str| {
        client
            .describe_association_execution_targets()
            .association_id(association)
            .execution_id(execution)
    };
    assert_eq!(
        err(call(unknown, &exec_id(1)).send().await),
        "AssociationDoesNotExist"
    );
    assert_eq!(
        err(call(B, &exec_id(1)).send().await),
        "AssociationExecutionDoesNotExist"
    );
    assert_eq!(
        err(call(A, &exec_id(2)).send().await),
        "AssociationExecutionDoesNotExist",
        "not visible yet"
    );
    assert_eq!(
        err(call(A, &exec_id(1)).max_results(51).send().await),
        "ValidationException"
    );
    assert_eq!(
        err(call(A, &exec_id(1)).max_results(0).send().await),
        "ValidationException"
    );
    assert_eq!(
        err(call(A, &exec_id(1))
            .set_filters(Some(Vec::new()))
            .send()
            .await),
        "ValidationException"
    );
    assert_eq!(
        err(call(A, &exec_id(1)).filters(status_filter("")).send().await),
        "ValidationException"
    );
    assert_eq!(
        err(call(A, &exec_id(1)).next_token("garbage").send().await),
        "InvalidNextToken"
    );
    // A token of another execution is not valid here.
    sim.add_execution(
        A,
        SimExecution::new(exec_id(3), "Failed", T0 + 2).with_targets(many_targets(3)),
    );
    let token = call(A, &exec_id(3))
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token()
        .unwrap()
        .to_owned();
    assert_eq!(
        err(call(A, &exec_id(1)).next_token(token).send().await),
        "InvalidNextToken"
    );

    // Faults by operation name.
    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("DescribeAssociationExecutionTargets")
            .times(1),
    );
    assert_eq!(
        err(call(A, &exec_id(1)).send().await),
        "ThrottlingException"
    );
    assert!(call(A, &exec_id(1)).send().await.is_ok());
    let recorded = sim
        .requests()
        .iter()
        .filter(|r| r.operation == "DescribeAssociationExecutionTargets")
        .count();
    assert!(recorded >= 10);
}

#[tokio::test]
async fn answers_from_the_callers_scope() {
    let sim = Simulator::start().await.unwrap();
    sim.add_association_in(
        "210987654321",
        "us-east-1",
        A,
        ssm_simulator::SimAssociation::new("AWS-RunShellScript"),
    );
    sim.add_execution_in(
        "210987654321",
        "us-east-1",
        A,
        SimExecution::new(exec_id(1), "Failed", T0).with_targets(many_targets(2)),
    );
    let client = crate::api::client_for(&sim.endpoint_url()).await;
    let e = client
        .describe_association_execution_targets()
        .association_id(A)
        .execution_id(exec_id(1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AssociationDoesNotExist"));
    assert_ne!(DEFAULT_ACCOUNT, "210987654321");
}
