//! The misbehaviours an exporter must survive, each through the real `aws-sdk-ssm` client:
//! repeated and cycling page tokens, filter combinations, executions that never finish or
//! lie in the future, sustained partial throttling and clock skew.

use std::time::Duration;

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{
    AssociationExecutionFilterKey as Key, AssociationFilterOperatorType as Op,
};
use aws_sdk_ssm::Client;
use ssm_simulator::{format_filter_time, Fault, FaultRule, SimExecution, Simulator};

use crate::api::{client_for, created_ms, exec_id, filter, raw, setup, A, B, T0};

const OP: &str = "DescribeAssociationExecutions";

/// One page of `association`: its execution ids and `NextToken`.
async fn page(
    client: &Client,
    association: &str,
    token: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let out = client
        .describe_association_executions()
        .association_id(association)
        .set_next_token(token.map(str::to_owned))
        .send()
        .await
        .expect("page succeeds");
    let ids = out
        .association_executions()
        .iter()
        .map(|e| e.execution_id().unwrap().to_owned())
        .collect();
    (ids, out.next_token().map(str::to_owned))
}

/// `n` Success executions of `association`, one second apart from `T0`, pages of 2.
fn add_executions(sim: &Simulator, association: &str, n: usize) {
    sim.set_page_size(Some(2));
    for i in 0..n {
        sim.add_execution(
            association,
            SimExecution::new(exec_id(i), "Success", T0 + i as i64 * 1000),
        );
    }
}

#[tokio::test]
async fn repeated_next_token_comes_back_n_times_then_paging_moves_on() {
    let (sim, client) = setup().await;
    add_executions(&sim, A, 5);
    add_executions(&sim, B, 5);
    sim.push_fault(
        FaultRule::new(Fault::RepeatNextToken)
            .association(A)
            .times(2),
    );
    let (first, token) = page(&client, A, None).await;
    assert_eq!(first, [exec_id(4), exec_id(3)]);
    let token = token.expect("more pages");
    for _ in 0..2 {
        let (items, again) = page(&client, A, Some(&token)).await;
        assert_eq!(items, [exec_id(2), exec_id(1)], "the same page again");
        assert_eq!(
            again.as_deref(),
            Some(token.as_str()),
            "the very token sent"
        );
    }
    let (items, next) = page(&client, A, Some(&token)).await;
    assert_eq!(items, [exec_id(2), exec_id(1)]);
    let next = next.expect("a fresh token");
    assert_ne!(next, token);
    assert_eq!(
        page(&client, A, Some(&next)).await,
        (vec![exec_id(0)], None)
    );

    // Forever, even on the last page; other associations page normally.
    sim.clear_faults();
    sim.push_fault(
        FaultRule::new(Fault::RepeatNextToken)
            .association(A)
            .forever(),
    );
    for _ in 0..5 {
        let (items, again) = page(&client, A, Some(&next)).await;
        assert_eq!(items, [exec_id(0)]);
        assert_eq!(again.as_deref(), Some(next.as_str()));
    }
    let (_, b_token) = page(&client, B, None).await;
    let (_, b_next) = page(&client, B, b_token.as_deref()).await;
    assert_ne!(b_next, b_token);
    // The first page (no token) is never affected.
    assert_eq!(page(&client, A, None).await.1, Some(token));
}

#[tokio::test]
async fn cycling_next_tokens_go_a_b_a() {
    let (sim, client) = setup().await;
    add_executions(&sim, A, 7);
    sim.push_fault(
        FaultRule::new(Fault::CycleNextTokens)
            .association(A)
            .forever(),
    );
    let (_, a) = page(&client, A, None).await;
    let a = a.unwrap();
    let (page2, b) = page(&client, A, Some(&a)).await;
    let b = b.unwrap();
    assert_ne!(a, b);
    let (page3, back) = page(&client, A, Some(&b)).await;
    assert_eq!(back.as_deref(), Some(a.as_str()), "B leads back to A");
    assert_eq!(page2, [exec_id(4), exec_id(3)]);
    assert_eq!(page3, [exec_id(2), exec_id(1)]);
    // And round again, forever: A -> B -> A.
    for _ in 0..3 {
        assert_eq!(
            page(&client, A, Some(&a)).await,
            (page2.clone(), Some(b.clone()))
        );
        assert_eq!(
            page(&client, A, Some(&b)).await,
            (page3.clone(), Some(a.clone()))
        );
    }
    // The SDK's paginator stops only on a token equal to the previous one, so a cycle must be
    // caught by the caller: here it would never end (checked for 20 pages).
    let mut paginator = client
        .describe_association_executions()
        .association_id(A)
        .into_paginator()
        .send();
    let mut pages = 0;
    while let Some(result) = paginator.next().await {
        result.unwrap();
        pages += 1;
        if pages == 20 {
            break;
        }
    }
    assert_eq!(pages, 20, "the paginator follows the cycle");
}

#[tokio::test]
async fn filters_combine_with_and() {
    let (sim, client) = setup().await;
    for (i, status) in ["Success", "Failed", "Success", "Failed", "Success"]
        .iter()
        .enumerate()
    {
        sim.add_execution(
            A,
            SimExecution::new(exec_id(i), *status, T0 + i as i64 * 1000),
        );
    }
    let query = |filters: Vec<(Key, String, Op)>| {
        let client = client.clone();
        async move {
            let filters = filters
                .into_iter()
                .map(|(key, value, op)| filter(key, value, op))
                .collect();
            client
                .describe_association_executions()
                .association_id(A)
                .set_filters(Some(filters))
                .send()
                .await
                .expect("filtered request succeeds")
                .association_executions()
                .iter()
                .map(|e| e.execution_id().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let at = |i: i64| format_filter_time(T0 + i * 1000);
    // ExecutionId alone: the re-check of one execution by ID.
    assert_eq!(
        query(vec![(Key::ExecutionId, exec_id(3), Op::Equal)]).await,
        [exec_id(3)]
    );
    assert!(query(vec![(Key::ExecutionId, exec_id(9), Op::Equal)])
        .await
        .is_empty());
    assert_eq!(
        query(vec![(Key::Status, "Failed".into(), Op::Equal)]).await,
        [exec_id(3), exec_id(1)]
    );
    assert_eq!(
        query(vec![(Key::CreatedTime, at(2), Op::Equal)]).await,
        [exec_id(2)]
    );
    // Two CreatedTime filters: a window (AND), bounds excluded.
    assert_eq!(
        query(vec![
            (Key::CreatedTime, at(0), Op::GreaterThan),
            (Key::CreatedTime, at(4), Op::LessThan),
        ])
        .await,
        [exec_id(3), exec_id(2), exec_id(1)]
    );
    // Two lower bounds: the later one wins, as AND implies.
    assert_eq!(
        query(vec![
            (Key::CreatedTime, at(0), Op::GreaterThan),
            (Key::CreatedTime, at(2), Op::GreaterThan),
        ])
        .await,
        [exec_id(4), exec_id(3)]
    );
    // An empty window, and a window combined with Status.
    assert!(query(vec![
        (Key::CreatedTime, at(3), Op::GreaterThan),
        (Key::CreatedTime, at(3), Op::LessThan),
    ])
    .await
    .is_empty());
    assert_eq!(
        query(vec![
            (Key::CreatedTime, at(0), Op::GreaterThan),
            (Key::CreatedTime, at(4), Op::LessThan),
            (Key::Status, "Success".into(), Op::Equal),
        ])
        .await,
        [exec_id(2)]
    );
}

#[tokio::test]
async fn unfinished_and_future_executions_are_served_as_they_are() {
    let (sim, client) = setup().await;
    // 2100-01-01T00:00:00.000Z
    const YEAR_2100: i64 = 4_102_444_800_000;
    let statuses = ["Pending", "InProgress", "Associated", "SomethingNew"];
    for (i, status) in statuses.iter().enumerate() {
        sim.add_execution(A, SimExecution::new(exec_id(i), *status, T0 + i as i64));
    }
    sim.add_execution(
        A,
        SimExecution::new(exec_id(9), "Success", YEAR_2100).with_last_execution_ms(YEAR_2100 + 5),
    );
    let out = client
        .describe_association_executions()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let items = out.association_executions();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[0].execution_id(),
        Some(exec_id(9).as_str()),
        "newest first"
    );
    assert_eq!(created_ms(&items[0]), YEAR_2100);
    let served: Vec<&str> = items[1..].iter().map(|e| e.status().unwrap()).collect();
    assert_eq!(
        served,
        ["SomethingNew", "Associated", "InProgress", "Pending"]
    );
    // Found by a filter from "now".
    let later = client
        .describe_association_executions()
        .association_id(A)
        .filters(filter(
            Key::CreatedTime,
            format_filter_time(sim.now_ms()),
            Op::GreaterThan,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(later.association_executions().len(), 1);
    let description = client
        .describe_association()
        .association_id(A)
        .send()
        .await
        .unwrap();
    let last = description
        .association_description()
        .unwrap()
        .last_execution_date()
        .unwrap();
    assert_eq!(last.secs(), YEAR_2100 / 1000);

    // Unfinished ones stay unfinished; the future one counts like any other.
    let truth = sim.ground_truth();
    assert_eq!(truth.in_progress.get(A), Some(&4));
    assert_eq!(truth.executions[A].get("Success"), Some(&1));
    // Some hours later nothing has changed by itself.
    assert_eq!(
        sim.executions(A)
            .iter()
            .filter(|e| e.status == "Pending")
            .count(),
        1
    );
}

/// Throttled (true) or answered (false), for `n` requests of `association`.
async fn throttle_pattern(client: &Client, association: &str, n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for _ in 0..n {
        match client
            .describe_association_executions()
            .association_id(association)
            .send()
            .await
        {
            Ok(_) => out.push(false),
            Err(error) => {
                assert_eq!(error.code(), Some("ThrottlingException"));
                assert_eq!(error.message(), Some("Rate exceeded"));
                let raw = error.raw_response().expect("an HTTP answer");
                assert_eq!(raw.status().as_u16(), 400);
                out.push(true);
            }
        }
    }
    out
}

#[tokio::test]
async fn sustained_partial_throttling_is_seeded_and_per_association() {
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let (sim, client) = setup().await;
        sim.push_fault(
            FaultRule::new(Fault::Throttle)
                .operation(OP)
                .association(A)
                .forever()
                .fraction(0.5, 42),
        );
        let pattern = throttle_pattern(&client, A, 60).await;
        let throttled = pattern.iter().filter(|t| **t).count();
        assert!((18..=42).contains(&throttled), "{throttled} of 60");
        assert!(
            !throttle_pattern(&client, B, 10).await.contains(&true),
            "B is untouched"
        );
        patterns.push(pattern);
    }
    assert_eq!(
        patterns[0], patterns[1],
        "the same seed throttles the same requests"
    );
}

#[tokio::test]
async fn every_response_carries_a_date_from_the_simulators_clock() {
    let (sim, _client) = setup().await;
    let auth = ("Authorization", "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00");
    let target = ("X-Amz-Target", "AmazonSSM.DescribeAssociationExecutions");
    let body = format!(r#"{{"AssociationId":"{A}"}}"#);
    let date_of = |head: &str| -> i64 {
        let line = head
            .lines()
            .find_map(|l| l.strip_prefix("date: "))
            .expect("a Date header");
        let format = time::macros::format_description!(
            "[weekday repr:short case_sensitive:false], [day] \
             [month repr:short case_sensitive:false] [year] [hour]:[minute]:[second] gmt"
        );
        time::PrimitiveDateTime::parse(line, format)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .assume_utc()
            .unix_timestamp()
            * 1000
    };
    for offset in [0, 3_600_000, -86_400_000] {
        sim.set_clock_offset_ms(offset);
        assert_eq!(sim.clock_offset_ms(), offset);
        let (status, head, _) = raw(&sim, &[auth, target], &body).await;
        assert_eq!(status, 200);
        let served = date_of(&head);
        assert!((served - sim.now_ms()).abs() < 3_000, "{head}");
        // Errors carry it too.
        let (status, head, _) = raw(&sim, &[target], &body).await;
        assert_eq!(status, 403);
        assert!((date_of(&head) - sim.now_ms()).abs() < 3_000, "{head}");
    }
}

#[tokio::test]
async fn requests_signed_more_than_five_minutes_off_are_rejected_as_aws_does() {
    let (sim, _client) = setup().await;
    let auth = ("Authorization", "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00");
    let target = ("X-Amz-Target", "AmazonSSM.DescribeAssociationExecutions");
    let body = format!(r#"{{"AssociationId":"{A}"}}"#);
    let amz = |ms: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let now = sim.now_ms();
    for (skew, prefix) in [
        (-10 * 60_000, "Signature expired: "),
        (10 * 60_000, "Signature not yet current: "),
    ] {
        let signed = amz(now + skew);
        let (status, _, error) = raw(&sim, &[auth, target, ("X-Amz-Date", &signed)], &body).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["__type"], "InvalidSignatureException");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{prefix}{signed} is ")),
            "{message}"
        );
        assert!(message.ends_with(" 5 min.)"), "{message}");
    }
    let (status, _, _) = raw(
        &sim,
        &[auth, target, ("X-Amz-Date", &amz(now - 60_000))],
        &body,
    )
    .await;
    assert_eq!(status, 200, "one minute off is fine");
    assert_eq!(
        sim.requests()[0].error_code.as_deref(),
        Some("InvalidSignatureException")
    );
}

/// What the SDK does when the simulator's clock is `offset_ms` away from the host's and
/// `max_attempts` attempts are allowed: the outcome (error code or "ok") of three operations
/// in a row on one client, and the number of requests the simulator received.
async fn skewed_outcomes(
    offset_ms: i64,
    max_attempts: u32,
    date_header: bool,
) -> (Vec<String>, usize) {
    let sim = Simulator::start().await.unwrap();
    sim.add_association(
        A,
        ssm_simulator::SimAssociation::new("AWS-RunPatchBaseline"),
    );
    sim.set_clock_offset_ms(offset_ms);
    sim.set_date_header(date_header);
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(sim.endpoint_url())
        .test_credentials()
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await;
    let client = Client::new(&cfg);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let result = client
            .describe_association_executions()
            .association_id(A)
            .send()
            .await;
        outcomes.push(match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.code().unwrap_or("no code").to_owned(),
        });
    }
    (outcomes, sim.requests().len())
}

/// The finding the exporter's retry design rests on: the SDK learns the clock skew from the
/// `Date` header of every response (a rejected one included) and signs later requests of the
/// same client with the corrected time. With retries off, the first operation fails with
/// `InvalidSignatureException` and the next one succeeds; with two or more attempts the
/// retry of the first operation already succeeds. Without a `Date` header nothing is learned
/// and `InvalidSignatureException` is not retried at all (each operation sends one request).
#[tokio::test]
async fn clock_skew_and_the_sdks_correction() {
    let bad = "InvalidSignatureException".to_owned();
    let ok = "ok".to_owned();
    for offset in [10 * 60_000, -10 * 60_000] {
        let (outcomes, requests) = skewed_outcomes(offset, 1, true).await;
        assert_eq!(
            outcomes,
            [bad.clone(), ok.clone(), ok.clone()],
            "offset {offset}"
        );
        assert_eq!(requests, 3);
        for attempts in [2, 3] {
            let (outcomes, requests) = skewed_outcomes(offset, attempts, true).await;
            assert_eq!(
                outcomes,
                [ok.clone(), ok.clone(), ok.clone()],
                "offset {offset}"
            );
            assert_eq!(requests, 4, "one retry, then corrected");
        }
        let (outcomes, requests) = skewed_outcomes(offset, 2, false).await;
        assert_eq!(
            outcomes,
            [bad.clone(), bad.clone(), bad.clone()],
            "no Date, no correction"
        );
        assert_eq!(requests, 3, "and no retry either");
    }
    let _ = client_for;
}
