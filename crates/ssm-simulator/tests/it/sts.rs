//! STS `AssumeRole` on the simulator: the raw query-protocol wire format, and aws-config's own
//! `AssumeRoleProvider` feeding the real `aws-sdk-ssm` client.

use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_sdk_ssm::config::Credentials;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};
use ssm_simulator::{Fault, FaultRule, SimAssociation, Simulator, DEFAULT_ACCOUNT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::estate::client_as;

const MEMBER: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/ssm-association-exporter";
const EU: &str = "eu-west-1";
const ID: &str = "11111111-2222-4333-8444-555555555555";

fn setup_role(sim: &Simulator, external_id: Option<&str>) {
    sim.add_role(
        ROLE,
        MEMBER,
        external_id.map(str::to_owned),
        [DEFAULT_ACCOUNT],
    );
    sim.add_association_in(
        MEMBER,
        EU,
        ID,
        SimAssociation::new("AWS-RunPatchBaseline").with_name("member"),
    );
}

/// POSTs a form to the simulator signed for STS; returns (status, lower-cased head, body).
async fn sts_raw(sim: &Simulator, access_key: &str, form: &str) -> (u16, String, String) {
    let addr = sim.endpoint_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20261127/{EU}/sts/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The text of `<tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

fn form(external_id: Option<&str>, extra: &str) -> String {
    let mut form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=exporter{extra}",
        ROLE.replace(':', "%3A").replace('/', "%2F")
    );
    if let Some(id) = external_id {
        form.push_str(&format!("&ExternalId={id}"));
    }
    form
}

#[tokio::test]
async fn assume_role_wire_format_and_denials() {
    let sim = Simulator::start().await.unwrap();
    setup_role(&sim, Some("secret-1"));

    let before = sim.now_ms();
    let (status, head, xml) = sts_raw(
        &sim,
        "ANOTREAL",
        &form(Some("secret-1"), "&DurationSeconds=900"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(head.contains("content-type: text/xml"));
    assert!(
        xml.starts_with("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
    );
    let result = element(&xml, "AssumeRoleResult").unwrap();
    let key = element(result, "AccessKeyId").unwrap();
    let secret = element(result, "SecretAccessKey").unwrap();
    let token = element(result, "SessionToken").unwrap();
    assert!(key.starts_with("ASIA"));
    assert_eq!(
        element(result, "Arn"),
        Some("arn:aws:sts::111111111111:assumed-role/ssm-association-exporter/exporter")
    );
    assert!(element(result, "AssumedRoleId")
        .unwrap()
        .ends_with(":exporter"));
    let expiration = element(result, "Expiration").unwrap();
    let expires =
        time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let expires_ms = (expires.unix_timestamp_nanos() / 1_000_000) as i64;
    assert!(
        (before + 899_000..=sim.now_ms() + 900_000).contains(&expires_ms),
        "DurationSeconds honoured: {expiration}"
    );
    assert!(element(&xml, "RequestId").is_some());

    // The issued credentials act in the role's account; without their token they are refused.
    let client = client_as(
        &sim,
        EU,
        Credentials::new(key, secret, Some(token.to_owned()), None, "sts"),
    )
    .await;
    let out = client
        .describe_association()
        .association_id(ID)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.association_description().unwrap().association_name(),
        Some("member")
    );
    assert_eq!(sim.requests().last().unwrap().account, MEMBER);
    let tokenless = client_as(&sim, EU, Credentials::new(key, secret, None, None, "sts")).await;
    let e = tokenless.list_associations().send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));

    // Denials: wrong or missing ExternalId, unknown role, untrusted caller account.
    let denied = |(status, head, xml): (u16, String, String)| {
        assert_eq!(status, 403, "{xml}");
        assert!(head.contains("content-type: text/xml"));
        assert!(
            xml.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
        );
        let error = element(&xml, "Error").unwrap();
        assert_eq!(element(error, "Type"), Some("Sender"));
        assert_eq!(element(error, "Code"), Some("AccessDenied"));
        assert!(element(error, "Message")
            .unwrap()
            .contains("sts:AssumeRole"));
        assert!(element(&xml, "RequestId").is_some());
    };
    denied(sts_raw(&sim, "ANOTREAL", &form(Some("secret-2"), "")).await);
    denied(sts_raw(&sim, "ANOTREAL", &form(None, "")).await);
    sim.add_access_key("AKIDSTRANGER", "999999999999");
    denied(sts_raw(&sim, "AKIDSTRANGER", &form(Some("secret-1"), "")).await);
    sim.remove_role(ROLE);
    denied(sts_raw(&sim, "ANOTREAL", &form(Some("secret-1"), "")).await);
    // The credentials issued before the role went keep working until they expire.
    assert!(client.list_associations().send().await.is_ok());

    // Validation errors and unknown actions.
    setup_role(&sim, Some("secret-1"));
    for (extra, code) in [
        ("&DurationSeconds=100", "ValidationError"),
        ("&RoleSessionName=x", "ValidationError"),
    ] {
        let (status, _, xml) = sts_raw(&sim, "ANOTREAL", &form(Some("secret-1"), extra)).await;
        assert_eq!(
            (status, element(&xml, "Code")),
            (400, Some(code)),
            "{extra}"
        );
    }
    let (status, _, xml) = sts_raw(
        &sim,
        "ANOTREAL",
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    assert_eq!(
        (status, element(&xml, "Code")),
        (400, Some("InvalidAction"))
    );

    // Fault rules reach AssumeRole too, in STS's own codes.
    sim.push_fault(FaultRule::new(Fault::AccessDenied).operation("AssumeRole"));
    denied(sts_raw(&sim, "ANOTREAL", &form(Some("secret-1"), "")).await);
    sim.push_fault(FaultRule::new(Fault::Throttle).operation("AssumeRole"));
    let (status, _, xml) = sts_raw(&sim, "ANOTREAL", &form(Some("secret-1"), "")).await;
    assert_eq!((status, element(&xml, "Code")), (400, Some("Throttling")));

    // Every AssumeRole is recorded with its role, ExternalId and answer.
    let calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == "AssumeRole")
        .collect();
    assert_eq!(calls.len(), 9);
    assert_eq!(calls[0].service, "sts");
    assert_eq!(calls[0].role_arn.as_deref(), Some(ROLE));
    assert_eq!(calls[0].external_id.as_deref(), Some("secret-1"));
    assert_eq!((calls[0].status, calls[1].status), (200, 403));
    assert_eq!(calls[1].error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(calls[3].account, "999999999999");
}

#[tokio::test]
async fn issued_credentials_expire_on_the_simulators_clock() {
    let sim = Simulator::start().await.unwrap();
    setup_role(&sim, None);
    sim.set_assumed_role_lifetime(Some(Duration::from_secs(60)));
    let (status, _, xml) = sts_raw(&sim, "ANOTREAL", &form(None, "")).await;
    assert_eq!(status, 200, "{xml}");
    let credentials = Credentials::new(
        element(&xml, "AccessKeyId").unwrap(),
        element(&xml, "SecretAccessKey").unwrap(),
        Some(element(&xml, "SessionToken").unwrap().to_owned()),
        None,
        "sts",
    );
    let client = client_as(&sim, EU, credentials).await;
    assert!(client.list_associations().send().await.is_ok());
    // 61 s later (within SigV4's 5-minute skew, so only the expiry matters).
    sim.set_clock_offset_ms(61_000);
    let e = client.list_associations().send().await.unwrap_err();
    assert_eq!(e.code(), Some("ExpiredTokenException"));
    let raw = e.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let recorded = sim.requests();
    assert_eq!(
        recorded.last().unwrap().error_code.as_deref(),
        Some("ExpiredTokenException")
    );
}

/// An SSM client whose credentials come from aws-config's `AssumeRoleProvider`, which calls
/// STS on the simulator with the base (test) credentials.
async fn assumed_client(sim: &Simulator, external_id: &str) -> aws_sdk_ssm::Client {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(EU))
        .endpoint_url(sim.endpoint_url())
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let provider = AssumeRoleProvider::builder(ROLE)
        .external_id(external_id)
        .session_name("ssm-association-exporter")
        .configure(&base)
        .build()
        .await;
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(EU))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(provider)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_ssm::Client::new(&cfg)
}

#[tokio::test]
async fn aws_configs_assume_role_provider_works_end_to_end() {
    let sim = Simulator::start().await.unwrap();
    setup_role(&sim, Some("secret-1"));
    let client = assumed_client(&sim, "secret-1").await;
    for _ in 0..3 {
        let listed = client.list_associations().send().await.unwrap();
        assert_eq!(listed.associations()[0].association_id(), Some(ID));
    }
    let recorded = sim.requests();
    let operations: Vec<&str> = recorded.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        operations,
        [
            "AssumeRole",
            "ListAssociations",
            "ListAssociations",
            "ListAssociations"
        ],
        "credentials are cached while valid"
    );
    assert_eq!(recorded[0].external_id.as_deref(), Some("secret-1"));
    assert_eq!(recorded[0].region, EU);
    assert_eq!(recorded[0].account, DEFAULT_ACCOUNT, "the caller");
    assert_eq!(recorded[1].account, MEMBER, "the role's account");
    assert!(recorded[1].access_key.starts_with("ASIA"));

    // Credentials that live shorter than the SDK's refresh buffer are fetched again.
    sim.set_assumed_role_lifetime(Some(Duration::from_secs(5)));
    let client = assumed_client(&sim, "secret-1").await;
    for _ in 0..2 {
        client.list_associations().send().await.unwrap();
    }
    let assumes = sim
        .requests()
        .iter()
        .skip(4)
        .filter(|r| r.operation == "AssumeRole")
        .count();
    assert_eq!(
        assumes, 2,
        "one AssumeRole per call: refreshed before expiry"
    );
}

#[tokio::test]
async fn a_wrong_external_id_fails_the_assume_role_provider_with_access_denied() {
    let sim = Simulator::start().await.unwrap();
    setup_role(&sim, Some("secret-1"));
    let client = assumed_client(&sim, "wrong").await;
    let e = client.list_associations().send().await.unwrap_err();
    let text = format!("{}", DisplayErrorContext(&e));
    assert!(text.contains("AccessDenied"), "{text}");
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1, "no SSM call without credentials");
    assert_eq!(recorded[0].status, 403);
}
