//! The estate: associations per account and region, `ListAssociations`, `ListTagsForResource`,
//! lifecycle while running, the `LastExecutionDate` switch and scoped faults, all through the
//! real `aws-sdk-ssm` client.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ssm::config::Credentials;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{
    Association, AssociationFilter, AssociationFilterKey as Key, ResourceTypeForTagging,
};
use aws_sdk_ssm::Client;
use serde_json::Value;
use ssm_simulator::{
    format_filter_time, AssociationDetails, Fault, FaultRule, LastExecutedFilter,
    LastExecutionDateMode, Scope, SimAssociation, SimExecution, Simulator, DEFAULT_ACCOUNT,
    DEFAULT_REGION,
};

use crate::api::{check_shape, exec_id, raw, T0};

const MEMBER: &str = "111111111111";
const MEMBER_KEY: &str = "AKIDMEMBER111";
const EU: &str = "eu-west-1";
/// The access key of aws-config's `test_credentials()`; unknown keys belong to the default account.
const DEFAULT_KEY: &str = "ANOTREAL";
const ID: &str = "11111111-2222-4333-8444-555555555555";

/// A uuid-shaped association id.
fn assoc_id(n: usize) -> String {
    format!("{n:08x}-aaaa-4bbb-8ccc-dddddddddddd")
}

/// A client signing for `region` with `access_key`, no retries.
pub async fn client_as(sim: &Simulator, region: &str, credentials: Credentials) -> Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(credentials)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Client::new(&cfg)
}

/// A client of `endpoint` for `region` with aws-config's test credentials (the default
/// account), no retries.
pub async fn client_in(endpoint: &str, region: &str) -> Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Client::new(&cfg)
}

/// A client of `endpoint` for `region` whose credentials come from assuming `role_arn` (with
/// `external_id`) through aws-config's `AssumeRoleProvider`, from the test credentials.
pub async fn assumed_client_in(
    endpoint: &str,
    region: &str,
    role_arn: &str,
    external_id: Option<&str>,
) -> Client {
    let region = aws_config::Region::new(region.to_owned());
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region.clone())
        .endpoint_url(endpoint)
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("ssm-association-exporter")
        .configure(&base);
    if let Some(external_id) = external_id {
        provider = provider.external_id(external_id);
    }
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .endpoint_url(endpoint)
        .credentials_provider(provider.build().await)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Client::new(&cfg)
}

fn static_key(access_key: &str) -> Credentials {
    Credentials::new(access_key, "secret", None, None, "test")
}

fn filter(key: Key, value: impl Into<String>) -> AssociationFilter {
    AssociationFilter::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// Every association of one listing, following `NextToken`; also the page sizes.
async fn list_all(
    client: &Client,
    filters: Option<Vec<AssociationFilter>>,
    max_results: Option<i32>,
) -> (Vec<Association>, Vec<usize>) {
    let (mut all, mut sizes, mut token) = (Vec::new(), Vec::new(), None);
    loop {
        let page = client
            .list_associations()
            .set_association_filter_list(filters.clone())
            .set_max_results(max_results)
            .set_next_token(token.take())
            .send()
            .await
            .expect("ListAssociations succeeds");
        sizes.push(page.associations().len());
        all.extend(page.associations().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return (all, sizes);
        }
        assert!(sizes.len() < 100, "paging does not end");
    }
}

fn ids(list: &[Association]) -> Vec<String> {
    list.iter()
        .map(|a| a.association_id().unwrap().to_owned())
        .collect()
}

/// Whole epoch milliseconds of an SDK timestamp (it parses through an f64).
fn ms(t: &aws_sdk_ssm::primitives::DateTime) -> i64 {
    t.secs() * 1000 + (f64::from(t.subsec_nanos()) / 1e6).round() as i64
}

#[tokio::test]
async fn accounts_and_regions_are_separate_scopes() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    // The same id in three scopes, each with its own name and history.
    sim.add_association(
        ID,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("home"),
    );
    sim.add_association_in(
        MEMBER,
        EU,
        ID,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("member-eu"),
    );
    sim.add_association_in(
        DEFAULT_ACCOUNT,
        EU,
        ID,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("home-eu"),
    );
    sim.add_execution_in(MEMBER, EU, ID, SimExecution::new(exec_id(1), "Failed", T0));
    sim.add_execution(ID, SimExecution::new(exec_id(2), "Success", T0));

    let name_seen = |client: Client| async move {
        match client
            .describe_association()
            .association_id(ID)
            .send()
            .await
        {
            Ok(out) => out
                .association_description()
                .and_then(|d| d.association_name())
                .map(str::to_owned),
            Err(e) => {
                assert_eq!(e.code(), Some("AssociationDoesNotExist"), "{e:?}");
                None
            }
        }
    };
    let home = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
    assert_eq!(name_seen(home.clone()).await.as_deref(), Some("home"));
    let home_eu = client_as(&sim, EU, static_key(DEFAULT_KEY)).await;
    assert_eq!(name_seen(home_eu).await.as_deref(), Some("home-eu"));
    let member_eu = client_as(&sim, EU, static_key(MEMBER_KEY)).await;
    assert_eq!(
        name_seen(member_eu.clone()).await.as_deref(),
        Some("member-eu")
    );
    let member_us = client_as(&sim, DEFAULT_REGION, static_key(MEMBER_KEY)).await;
    assert_eq!(name_seen(member_us.clone()).await, None);

    // Executions and listings answer from the caller's scope only.
    let executions = member_eu
        .describe_association_executions()
        .association_id(ID)
        .send()
        .await
        .unwrap();
    let statuses: Vec<&str> = executions
        .association_executions()
        .iter()
        .map(|e| e.status().unwrap())
        .collect();
    assert_eq!(statuses, ["Failed"]);
    assert!(list_all(&member_us, None, None).await.0.is_empty());
    assert_eq!(ids(&list_all(&member_eu, None, None).await.0), [ID]);

    // The record says who asked where.
    let recorded = sim.requests();
    assert_eq!(
        (recorded[2].account.as_str(), recorded[2].region.as_str()),
        (MEMBER, EU)
    );
    assert_eq!(recorded[2].access_key, MEMBER_KEY);
    assert_eq!(recorded[2].service, "ssm");
    assert_eq!(
        (recorded[0].account.as_str(), recorded[0].region.as_str()),
        (DEFAULT_ACCOUNT, DEFAULT_REGION)
    );

    // Ground truth per scope; the legacy one is the default scope's.
    let estate = sim.estate_ground_truth();
    assert_eq!(estate.len(), 3);
    assert_eq!(estate[&Scope::new(MEMBER, EU)].executions[ID]["Failed"], 1);
    assert_eq!(estate[&Scope::default()].executions[ID]["Success"], 1);
    assert_eq!(sim.ground_truth(), estate[&Scope::default()]);
    assert_eq!(
        sim.ground_truth_in(MEMBER, EU),
        estate[&Scope::new(MEMBER, EU)]
    );
    assert!(sim
        .ground_truth_in(DEFAULT_ACCOUNT, EU)
        .executions
        .is_empty());
}

/// 120 associations in the member account's eu-west-1, with varied metadata.
fn populate(sim: &Simulator) -> Vec<String> {
    let ids: Vec<String> = (0..120).map(assoc_id).collect();
    for (i, id) in ids.iter().enumerate() {
        let document = if i % 3 == 0 {
            "AWS-RunPatchBaseline"
        } else {
            "AWS-GatherSoftwareInventory"
        };
        let mut details = AssociationDetails::default().with_document_version("2");
        details = match i % 4 {
            0 => details.with_target("resource-groups:Name", ["web"]),
            1 => details.with_target("InstanceIds", ["i-0123456789abcdef0"]),
            _ => details.with_target("tag:Env", ["prod"]),
        };
        sim.add_association_with_details_in(
            MEMBER,
            EU,
            id,
            SimAssociation::new(document)
                .with_name(format!("prod-{i:03}"))
                .with_schedule("rate(30 minutes)"),
            details,
        );
    }
    sim.add_execution_in(
        MEMBER,
        EU,
        &ids[5],
        SimExecution::new(exec_id(1), "Failed", T0),
    );
    sim.add_execution_in(
        MEMBER,
        EU,
        &ids[6],
        SimExecution::new(exec_id(2), "Success", T0).with_last_execution_ms(T0 + 5_000),
    );
    ids
}

#[tokio::test]
async fn list_associations_pages_and_filters() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    let all_ids = populate(&sim);
    let client = client_as(&sim, EU, static_key(MEMBER_KEY)).await;

    let (all, sizes) = list_all(&client, None, None).await;
    assert_eq!(sizes, [50, 50, 20], "50 per page by default");
    assert_eq!(ids(&all), all_ids, "each once, in id order");
    let (_, sizes) = list_all(&client, None, Some(7)).await;
    assert_eq!(sizes.len(), 18);

    // Item shape.
    let item = &all[6];
    assert_eq!(item.name(), Some("AWS-RunPatchBaseline"));
    assert_eq!(item.association_name(), Some("prod-006"));
    assert_eq!(item.association_version(), Some("1"));
    assert_eq!(item.document_version(), Some("2"));
    assert_eq!(item.schedule_expression(), Some("rate(30 minutes)"));
    assert_eq!(item.targets()[0].key(), Some("tag:Env"));
    assert_eq!(item.targets()[0].values(), ["prod"]);
    assert_eq!(ms(item.last_execution_date().unwrap()), T0 + 5_000);
    let overview = item.overview().unwrap();
    assert_eq!(overview.status(), Some("Success"));
    assert_eq!(
        overview.association_status_aggregated_count().unwrap()["Success"],
        1
    );
    assert!(all[7].last_execution_date().is_none());
    assert_eq!(all[7].overview().unwrap().status(), Some("Pending"));

    // Each filter key, and several at once (AND).
    let count = |filters: Vec<AssociationFilter>| {
        let client = client.clone();
        async move { list_all(&client, Some(filters), None).await.0.len() }
    };
    assert_eq!(
        count(vec![filter(Key::Name, "AWS-RunPatchBaseline")]).await,
        40
    );
    assert_eq!(
        count(vec![filter(Key::AssociationName, "prod-042")]).await,
        1
    );
    assert_eq!(
        count(vec![filter(Key::AssociationId, all_ids[9].clone())]).await,
        1
    );
    assert_eq!(count(vec![filter(Key::Status, "Failed")]).await, 1);
    assert_eq!(count(vec![filter(Key::Status, "Pending")]).await, 118);
    assert_eq!(count(vec![filter(Key::ResourceGroupName, "web")]).await, 30);
    assert_eq!(
        count(vec![filter(Key::InstanceId, "i-0123456789abcdef0")]).await,
        30
    );
    assert_eq!(
        count(vec![
            filter(Key::Name, "AWS-RunPatchBaseline"),
            filter(Key::ResourceGroupName, "web"),
        ])
        .await,
        10
    );
    assert_eq!(
        count(vec![filter(Key::LastExecutedAfter, format_filter_time(T0))]).await,
        1
    );
    assert_eq!(
        count(vec![filter(
            Key::LastExecutedBefore,
            "2019-02-18T16:03:48Z"
        )])
        .await,
        1,
        "whole-second values work too"
    );
    assert_eq!(count(vec![filter(Key::CloudConnectorId, "x")]).await, 0);

    // Validation and tokens, as SSM answers them.
    let err = |max: i32, filters: Option<Vec<AssociationFilter>>, token: Option<&str>| {
        let client = client.clone();
        let token = token.map(str::to_owned);
        async move {
            client
                .list_associations()
                .max_results(max)
                .set_association_filter_list(filters)
                .set_next_token(token)
                .send()
                .await
                .expect_err("request fails")
                .code()
                .map(str::to_owned)
        }
    };
    assert_eq!(
        err(51, None, None).await.as_deref(),
        Some("ValidationException")
    );
    assert_eq!(
        err(0, None, None).await.as_deref(),
        Some("ValidationException")
    );
    assert_eq!(
        err(
            5,
            Some(vec![filter(Key::LastExecutedAfter, "yesterday")]),
            None
        )
        .await
        .as_deref(),
        Some("ValidationException")
    );
    assert_eq!(
        err(5, Some(vec![filter(Key::from("Colour"), "red")]), None)
            .await
            .as_deref(),
        Some("ValidationException")
    );
    assert_eq!(
        err(5, None, Some("garbage")).await.as_deref(),
        Some("InvalidNextToken")
    );
    // A token from another region is not valid here.
    let other_region = client_as(&sim, DEFAULT_REGION, static_key(MEMBER_KEY)).await;
    sim.add_association_in(MEMBER, DEFAULT_REGION, ID, SimAssociation::new("AWS-X"));
    sim.add_association_in(
        MEMBER,
        DEFAULT_REGION,
        &assoc_id(0),
        SimAssociation::new("AWS-X"),
    );
    let page = other_region
        .list_associations()
        .max_results(1)
        .send()
        .await
        .unwrap();
    let token = page.next_token().unwrap().to_owned();
    assert_eq!(
        err(5, None, Some(&token)).await.as_deref(),
        Some("InvalidNextToken")
    );
    let recorded = sim.requests();
    let list = recorded
        .iter()
        .find(|r| !r.association_filters.is_empty())
        .unwrap();
    assert_eq!(list.operation, "ListAssociations");
    assert_eq!(
        list.association_filters,
        [("Name".to_owned(), "AWS-RunPatchBaseline".to_owned())]
    );

    // Short and empty pages apply to listings as to executions.
    sim.set_page_size(Some(30));
    sim.set_empty_pages(2);
    let (again, sizes) = list_all(&client, None, None).await;
    assert_eq!(sizes, [0, 0, 30, 30, 30, 30]);
    assert_eq!(ids(&again), all_ids);
}

#[tokio::test]
async fn lifecycle_create_update_replace_delete_while_paging() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    let all_ids = populate(&sim);
    let client = client_as(&sim, EU, static_key(MEMBER_KEY)).await;

    // A listing in progress sees deletions and creations after its position, and never an
    // item twice.
    let first = client.list_associations().send().await.unwrap();
    assert_eq!(first.associations().len(), 50);
    sim.remove_association_in(MEMBER, EU, &all_ids[60]);
    sim.remove_association_in(MEMBER, EU, &all_ids[10]);
    sim.add_association_in(
        MEMBER,
        EU,
        &assoc_id(500),
        SimAssociation::new("AWS-New").with_name("prod-new"),
    );
    let mut seen = ids(first.associations());
    let mut token = first.next_token().map(str::to_owned);
    while let Some(t) = token.take() {
        let page = client
            .list_associations()
            .next_token(t)
            .send()
            .await
            .unwrap();
        seen.extend(ids(page.associations()));
        token = page.next_token().map(str::to_owned);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(seen.contains(&assoc_id(500)));
    assert!(!seen.contains(&all_ids[60]));
    assert_eq!(
        seen.len(),
        120 - 1 + 1,
        "the earlier deletion was already listed"
    );

    // Update: the version goes up; later executions carry it; earlier ones keep theirs.
    let target = all_ids[3].clone();
    sim.add_execution_in(
        MEMBER,
        EU,
        &target,
        SimExecution::new(exec_id(1), "Success", T0),
    );
    let version = sim.update_association_in(MEMBER, EU, &target, |meta, details| {
        meta.schedule_expression = Some("rate(1 hour)".into());
        details.document_version = "3".into();
    });
    assert_eq!(version, 2);
    assert_eq!(sim.association_version_in(MEMBER, EU, &target), Some(2));
    sim.add_execution_in(
        MEMBER,
        EU,
        &target,
        SimExecution::new(exec_id(2), "Success", T0 + 1000),
    );
    let listed = list_all(
        &client,
        Some(vec![filter(Key::AssociationId, target.clone())]),
        None,
    )
    .await
    .0;
    assert_eq!(listed[0].association_version(), Some("2"));
    assert_eq!(listed[0].schedule_expression(), Some("rate(1 hour)"));
    assert_eq!(listed[0].document_version(), Some("3"));
    let described = client
        .describe_association()
        .association_id(&target)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .association_description()
            .unwrap()
            .association_version(),
        Some("2")
    );
    let executions = client
        .describe_association_executions()
        .association_id(&target)
        .send()
        .await
        .unwrap();
    let versions: Vec<&str> = executions
        .association_executions()
        .iter()
        .map(|e| e.association_version().unwrap())
        .collect();
    assert_eq!(versions, ["2", "1"], "newest first");

    // Replace: a new id under the same name; the old one is gone everywhere, tags move.
    sim.set_tags_in(MEMBER, EU, &target, [("team", "platform")]);
    let new_id = assoc_id(900);
    sim.replace_association_in(
        MEMBER,
        EU,
        &target,
        &new_id,
        SimAssociation::new("AWS-RunPatchBaseline"),
    );
    let by_name = list_all(
        &client,
        Some(vec![filter(Key::AssociationName, "prod-003")]),
        None,
    )
    .await
    .0;
    assert_eq!(ids(&by_name), std::slice::from_ref(&new_id));
    assert_eq!(by_name[0].association_version(), Some("1"));
    let gone = client
        .describe_association_executions()
        .association_id(&target)
        .send()
        .await
        .expect_err("the replaced association is gone");
    assert_eq!(gone.code(), Some("AssociationDoesNotExist"));
    assert!(sim.executions_in(MEMBER, EU, &new_id).is_empty());
    assert!(!sim
        .ground_truth_in(MEMBER, EU)
        .executions
        .contains_key(&target));
    let tags = client
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Association)
        .resource_id(&new_id)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_list()[0].key(), "team");
    assert_eq!(sim.association_ids_in(MEMBER, EU).len(), 119);
}

#[tokio::test]
async fn tags_per_association() {
    let sim = Simulator::start().await.unwrap();
    sim.add_association(ID, SimAssociation::new("AWS-RunPatchBaseline"));
    sim.add_association_in(
        DEFAULT_ACCOUNT,
        EU,
        ID,
        SimAssociation::new("AWS-RunPatchBaseline"),
    );
    sim.set_tags_in(
        DEFAULT_ACCOUNT,
        DEFAULT_REGION,
        ID,
        [("team", "platform"), ("env", "prod")],
    );
    let client = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
    let tags = |client: Client, kind: ResourceTypeForTagging, id: &'static str| async move {
        client
            .list_tags_for_resource()
            .resource_type(kind)
            .resource_id(id)
            .send()
            .await
    };
    let out = tags(client.clone(), ResourceTypeForTagging::Association, ID)
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = out
        .tag_list()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(pairs, [("env", "prod"), ("team", "platform")]);
    // Tagging is not an update.
    assert_eq!(
        sim.association_version_in(DEFAULT_ACCOUNT, DEFAULT_REGION, ID),
        Some(1)
    );
    // Same id in another region: its own (no) tags.
    let eu = client_as(&sim, EU, static_key(DEFAULT_KEY)).await;
    let out = tags(eu, ResourceTypeForTagging::Association, ID)
        .await
        .unwrap();
    assert!(out.tag_list().is_empty());
    let unknown = tags(
        client.clone(),
        ResourceTypeForTagging::Association,
        "99999999-9999-4999-8999-999999999999",
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Some("InvalidResourceId"));
    let other = tags(client, ResourceTypeForTagging::Document, ID)
        .await
        .unwrap_err();
    assert_eq!(other.code(), Some("InvalidResourceType"));
    assert_eq!(sim.requests()[0].association_id.as_deref(), Some(ID));
}

/// `LastExecutionDate` of `ID` in ListAssociations and DescribeAssociation (they agree).
async fn last_execution(client: &Client) -> Option<i64> {
    let listed = list_all(client, None, None).await.0;
    let described = client
        .describe_association()
        .association_id(ID)
        .send()
        .await
        .unwrap();
    let from_list = listed[0].last_execution_date().map(ms);
    let from_describe = described
        .association_description()
        .unwrap()
        .last_execution_date()
        .map(ms);
    assert_eq!(from_list, from_describe);
    from_list
}

async fn matches_after(client: &Client, ms: i64) -> bool {
    !list_all(
        client,
        Some(vec![filter(Key::LastExecutedAfter, format_filter_time(ms))]),
        None,
    )
    .await
    .0
    .is_empty()
}

#[tokio::test]
async fn last_execution_date_follows_the_mode() {
    for mode in [LastExecutionDateMode::Start, LastExecutionDateMode::End] {
        let sim = Simulator::start().await.unwrap();
        sim.set_last_execution_date_mode(mode);
        sim.add_association(ID, SimAssociation::new("AWS-RunPatchBaseline"));
        let client = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
        assert_eq!(last_execution(&client).await, None);

        // A run starts at T0 + 60 s.
        let started = T0 + 60_000;
        sim.add_execution(ID, SimExecution::new(exec_id(1), "InProgress", started));
        let while_running = last_execution(&client).await;
        // It ends 30 s later.
        sim.update_execution(ID, &exec_id(1), |e| {
            e.status = "Success".into();
            e.last_execution_ms = Some(started + 30_000);
        });
        let after_end = last_execution(&client).await;
        match mode {
            LastExecutionDateMode::Start => {
                assert_eq!(while_running, Some(started), "set when the run starts");
                assert_eq!(after_end, Some(started), "and not moved by its end");
                assert!(matches_after(&client, started - 1).await);
                assert!(!matches_after(&client, started).await);
            }
            LastExecutionDateMode::End => {
                assert_eq!(while_running, None, "not set while the run is in progress");
                assert_eq!(after_end, Some(started + 30_000), "set when the run ends");
                assert!(matches_after(&client, started + 29_999).await);
                assert!(!matches_after(&client, started + 30_000).await);
            }
        }
        sim.shutdown();
    }
}

/// The `LastExecuted*` filters at their edge, through the SDK: a date equal to the value is
/// out under `Strict` (the default) and in under `Inclusive`; `Ignored` lists everything; a
/// value in any shape but AWS's example (`...T..:..:..[.fff]Z`) is a `ValidationException`.
#[tokio::test]
async fn last_executed_filters_at_their_edge_and_their_value_format() {
    let sim = Simulator::start().await.unwrap();
    sim.add_association(ID, SimAssociation::new("AWS-RunPatchBaseline"));
    sim.add_association(&assoc_id(7), SimAssociation::new("AWS-RunPatchBaseline"));
    let ended = T0 + 30_000;
    sim.add_execution(
        ID,
        SimExecution::new(exec_id(1), "Success", T0).with_last_execution_ms(ended),
    );
    let client = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
    let listed = |key: Key, ms: i64| {
        let client = client.clone();
        async move {
            ids(&list_all(
                &client,
                Some(vec![filter(key, format_filter_time(ms))]),
                None,
            )
            .await
            .0)
        }
    };
    let just = vec![ID.to_owned()];
    let none: Vec<String> = Vec::new();
    // Strict, the default.
    assert_eq!(listed(Key::LastExecutedAfter, ended).await, none);
    assert_eq!(listed(Key::LastExecutedAfter, ended - 1).await, just);
    assert_eq!(listed(Key::LastExecutedBefore, ended).await, none);
    assert_eq!(listed(Key::LastExecutedBefore, ended + 1).await, just);
    sim.set_last_executed_filter(LastExecutedFilter::Inclusive);
    assert_eq!(listed(Key::LastExecutedAfter, ended).await, just);
    assert_eq!(listed(Key::LastExecutedAfter, ended + 1).await, none);
    assert_eq!(listed(Key::LastExecutedBefore, ended).await, just);
    sim.set_last_executed_filter(LastExecutedFilter::Ignored);
    assert_eq!(
        listed(Key::LastExecutedAfter, ended + 60_000).await.len(),
        2
    );

    for value in ["2019-02-18T16:03:47Z", "2019-02-18T16:03:47.119Z"] {
        list_all(
            &client,
            Some(vec![filter(Key::LastExecutedAfter, value)]),
            None,
        )
        .await;
    }
    for value in [
        "2019-02-18T16:03:47+00:00",
        "2019-02-18",
        "1550505827",
        "2019-02-18T16:03:47.119",
    ] {
        let error = client
            .list_associations()
            .association_filter_list(filter(Key::LastExecutedAfter, value))
            .send()
            .await
            .expect_err(value);
        assert_eq!(error.code(), Some("ValidationException"), "{value}");
    }
    sim.shutdown();
}

/// The newest execution `DescribeAssociationExecutions` shows for `ID`, if any.
async fn newest_visible(client: &Client) -> Option<String> {
    let page = client
        .describe_association_executions()
        .association_id(ID)
        .send()
        .await
        .unwrap();
    page.association_executions()
        .first()
        .and_then(|e| e.execution_id())
        .map(str::to_owned)
}

/// `Overview.Status` of `ID` in ListAssociations and DescribeAssociation (they agree).
async fn overview_status(client: &Client) -> String {
    let listed = list_all(client, None, None).await.0;
    let described = client
        .describe_association()
        .association_id(ID)
        .send()
        .await
        .unwrap();
    let from_list = listed[0].overview().unwrap().status().unwrap().to_owned();
    let from_describe = described
        .association_description()
        .unwrap()
        .overview()
        .unwrap()
        .status()
        .unwrap()
        .to_owned();
    assert_eq!(from_list, from_describe);
    from_list
}

#[tokio::test]
async fn invisible_executions_move_last_execution_date_and_overview() {
    for mode in [LastExecutionDateMode::Start, LastExecutionDateMode::End] {
        let sim = Simulator::start().await.unwrap();
        sim.set_last_execution_date_mode(mode);
        sim.add_association(ID, SimAssociation::new("AWS-RunPatchBaseline"));
        let client = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
        // A visible, finished run.
        sim.add_execution(
            ID,
            SimExecution::new(exec_id(1), "Success", T0).with_last_execution_ms(T0 + 10_000),
        );
        let before = last_execution(&client).await;
        assert_eq!(overview_status(&client).await, "Success");

        // A later run that failed and is not visible yet (visibility lag).
        let started = T0 + 60_000;
        sim.add_execution(
            ID,
            SimExecution::new(exec_id(2), "Failed", started)
                .with_last_execution_ms(started + 30_000)
                .invisible(),
        );
        assert_eq!(newest_visible(&client).await.as_deref(), Some(&*exec_id(1)));
        let after = last_execution(&client).await;
        match mode {
            LastExecutionDateMode::Start => {
                assert_eq!(before, Some(T0));
                assert_eq!(after, Some(started), "moved by the invisible run's start");
            }
            LastExecutionDateMode::End => {
                assert_eq!(before, Some(T0 + 10_000));
                assert_eq!(
                    after,
                    Some(started + 30_000),
                    "moved by the invisible run's end"
                );
            }
        }
        assert!(matches_after(&client, before.unwrap()).await);
        assert_eq!(
            overview_status(&client).await,
            "Failed",
            "the overview follows the newest run, visible or not"
        );
        // An invisible success moves LastSuccessfulExecutionDate as well.
        sim.add_execution(
            ID,
            SimExecution::new(exec_id(3), "Success", started + 60_000)
                .with_last_execution_ms(started + 70_000)
                .invisible(),
        );
        let described = client
            .describe_association()
            .association_id(ID)
            .send()
            .await
            .unwrap();
        let success = described
            .association_description()
            .unwrap()
            .last_successful_execution_date()
            .map(ms);
        assert_eq!(success, Some(started + 70_000));
        assert_eq!(overview_status(&client).await, "Success");

        // Nothing changes at the association when the runs become visible.
        let settled = last_execution(&client).await;
        sim.update_execution(ID, &exec_id(2), |e| e.visible = true);
        sim.update_execution(ID, &exec_id(3), |e| e.visible = true);
        assert_eq!(last_execution(&client).await, settled);
        assert_eq!(newest_visible(&client).await.as_deref(), Some(&*exec_id(3)));
        // The ground truth counts only what is visible.
        assert_eq!(sim.ground_truth().executions[ID]["Success"], 2);
        sim.shutdown();
    }
}

#[tokio::test]
async fn faults_apply_to_the_new_operations_and_per_scope() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    populate(&sim);
    sim.add_association_in(MEMBER, DEFAULT_REGION, ID, SimAssociation::new("AWS-X"));
    let eu = client_as(&sim, EU, static_key(MEMBER_KEY)).await;
    let us = client_as(&sim, DEFAULT_REGION, static_key(MEMBER_KEY)).await;

    sim.push_fault(
        FaultRule::new(Fault::Throttle)
            .operation("ListAssociations")
            .times(2),
    );
    for _ in 0..2 {
        let e = eu.list_associations().send().await.unwrap_err();
        assert_eq!(e.code(), Some("ThrottlingException"));
        assert_eq!(e.message(), Some("Rate exceeded"));
    }
    assert!(eu.list_associations().send().await.is_ok());

    // One region's endpoint unreachable; the other region still answers.
    sim.push_fault(FaultRule::new(Fault::ResetConnection).region(EU).forever());
    let e = eu.list_associations().send().await.unwrap_err();
    assert!(
        matches!(e, aws_sdk_ssm::error::SdkError::DispatchFailure(_)),
        "{e:?}"
    );
    assert!(us.list_associations().send().await.is_ok());
    assert_eq!(sim.requests().last().unwrap().status, 200);
    sim.clear_faults();

    // Per account: the member account is denied, the default account is not.
    sim.push_fault(
        FaultRule::new(Fault::AccessDenied)
            .account(MEMBER)
            .forever(),
    );
    let e = us.list_associations().send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    let home = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
    assert!(home.list_associations().send().await.is_ok());
    sim.clear_faults();

    // Tag lookups fail per association; token faults reach listings too.
    sim.push_fault(
        FaultRule::new(Fault::InternalError)
            .operation("ListTagsForResource")
            .association(assoc_id(1)),
    );
    let e = eu
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Association)
        .resource_id(assoc_id(1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InternalServerError"));
    sim.push_fault(FaultRule::new(Fault::RepeatNextToken).operation("ListAssociations"));
    let first = eu.list_associations().send().await.unwrap();
    let token = first.next_token().unwrap().to_owned();
    let second = eu
        .list_associations()
        .next_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.next_token(),
        Some(token.as_str()),
        "the sent token came back"
    );
}

#[tokio::test]
async fn listing_responses_match_the_service_model() {
    let model: Value =
        serde_json::from_str(include_str!("../fixtures/ssm-api-model.json")).unwrap();
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    populate(&sim);
    sim.add_association_with_details_in(
        MEMBER,
        EU,
        ID,
        SimAssociation::new("AWS-RunPatchBaseline"),
        AssociationDetails::default().with_instance_id("i-0123456789abcdef0"),
    );
    let auth = (
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDMEMBER111/20261127/eu-west-1/ssm/aws4_request, SignedHeaders=host, Signature=00",
    );
    let json = ("Content-Type", "application/x-amz-json-1.1");
    let list = ("X-Amz-Target", "AmazonSSM.ListAssociations");
    let mut token: Option<String> = None;
    let mut items = 0;
    loop {
        let mut request = serde_json::json!({"MaxResults": 50});
        if let Some(t) = token.take() {
            request["NextToken"] = Value::from(t);
        }
        let (status, _, body) = raw(&sim, &[auth, json, list], &request.to_string()).await;
        assert_eq!(status, 200, "{body}");
        check_shape(&model, "ListAssociationsResult", &body, "$");
        items += body["Associations"].as_array().unwrap().len();
        token = body["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(items, 121);
    let (status, _, body) = raw(
        &sim,
        &[
            auth,
            json,
            ("X-Amz-Target", "AmazonSSM.DescribeAssociation"),
        ],
        &serde_json::json!({"AssociationId": ID}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    check_shape(&model, "DescribeAssociationResult", &body, "$");
    assert_eq!(
        body["AssociationDescription"]["InstanceId"],
        "i-0123456789abcdef0"
    );
    // The filter keys are lower-case on the wire.
    let (status, _, body) = raw(
        &sim,
        &[auth, json, list],
        r#"{"AssociationFilterList":[{"key":"AssociationId","value":"11111111-2222-4333-8444-555555555555"}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["Associations"].as_array().unwrap().len(), 1);
    let (status, _, body) = raw(&sim, &[auth, json, list], r#"{"AssociationFilterList":[]}"#).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ValidationException"))
    );
}

#[tokio::test]
async fn requests_are_counted_by_scope_and_can_be_cleared() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    let home = client_as(&sim, DEFAULT_REGION, static_key(DEFAULT_KEY)).await;
    let member_eu = client_as(&sim, EU, static_key(MEMBER_KEY)).await;
    for _ in 0..3 {
        home.list_associations().send().await.unwrap();
    }
    member_eu.list_associations().send().await.unwrap();
    // Refused requests count too.
    let e = member_eu
        .describe_association()
        .association_id(ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AssociationDoesNotExist"));

    let home_scope = Scope::default();
    let member_scope = Scope::new(MEMBER, EU);
    assert_eq!(sim.requests()[3].scope(), member_scope);
    assert_eq!(
        sim.request_counts_by_scope(),
        BTreeMap::from([
            ((home_scope.clone(), "ListAssociations".to_owned()), 3),
            ((member_scope.clone(), "DescribeAssociation".to_owned()), 1),
            ((member_scope.clone(), "ListAssociations".to_owned()), 1),
        ])
    );
    assert_eq!(sim.request_count("ListAssociations"), 4);

    // Counting and clearing at once.
    let counts = sim.request_counts_by_scope();
    assert_eq!(sim.take_request_counts_by_scope(), counts);
    assert!(sim.requests().is_empty());
    member_eu.list_associations().send().await.unwrap();
    assert_eq!(
        sim.take_request_counts_by_scope(),
        BTreeMap::from([((member_scope.clone(), "ListAssociations".to_owned()), 1)])
    );

    sim.clear_requests();
    assert!(sim.requests().is_empty());
    assert!(sim.request_counts_by_scope().is_empty());
    assert_eq!(sim.request_count("ListAssociations"), 0);

    // A request in flight during a clear does not write its answer into a later record.
    sim.push_fault(
        FaultRule::new(Fault::Delay(Duration::from_millis(300))).operation("ListAssociations"),
    );
    let slow = tokio::spawn({
        let home = home.clone();
        async move { home.list_associations().send().await.map(|_| ()) }
    });
    while sim.request_count("ListAssociations") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sim.clear_requests();
    let e = member_eu
        .describe_association()
        .association_id(ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AssociationDoesNotExist"));
    slow.await.unwrap().unwrap();
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].operation, "DescribeAssociation");
    assert_eq!(
        (recorded[0].status, recorded[0].error_code.as_deref()),
        (400, Some("AssociationDoesNotExist"))
    );
    assert_eq!(
        sim.request_counts_by_scope(),
        BTreeMap::from([((member_scope, "DescribeAssociation".to_owned()), 1)])
    );
}

#[tokio::test]
async fn many_associations_are_added_in_bulk() {
    let sim = Simulator::start().await.unwrap();
    sim.add_access_key(MEMBER_KEY, MEMBER);
    let ids = sim.add_associations_in(MEMBER, EU, 120, "bench");
    assert_eq!(ids.len(), 120);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 120);
    assert_eq!(
        sim.association_ids_in(MEMBER, EU),
        ids,
        "listing order is i order"
    );
    assert!(sim.association_ids_in(DEFAULT_ACCOUNT, EU).is_empty());

    let client = client_as(&sim, EU, static_key(MEMBER_KEY)).await;
    let (all, sizes) = list_all(&client, None, None).await;
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(
        crate::estate::ids(&all),
        ids,
        "uuid-shaped ids the SDK accepts"
    );
    assert_eq!(all[7].association_name(), Some("bench-7"));
    assert_eq!(all[7].name(), Some("AWS-RunPatchBaseline"));
    assert_eq!(all[7].association_version(), Some("1"));
    assert_eq!(all[7].overview().unwrap().status(), Some("Pending"));
    let described = client
        .describe_association()
        .association_id(&ids[119])
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .association_description()
            .unwrap()
            .association_name(),
        Some("bench-119")
    );

    // Executions can be added to them; the same prefix again keeps them, another adds more.
    sim.add_execution_in(
        MEMBER,
        EU,
        &ids[3],
        SimExecution::new(exec_id(1), "Success", T0),
    );
    assert_eq!(sim.add_associations_in(MEMBER, EU, 120, "bench"), ids);
    assert_eq!(sim.executions_in(MEMBER, EU, &ids[3]).len(), 1);
    let more = sim.add_associations_in(MEMBER, EU, 5, "other");
    assert!(more.iter().all(|id| !ids.contains(id)));
    assert_eq!(sim.association_ids_in(MEMBER, EU).len(), 125);
    assert!(sim.add_associations_in(MEMBER, EU, 0, "none").is_empty());
}
