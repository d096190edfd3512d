//! STS on the simulator: `AssumeRole` in the raw query-protocol wire format and through
//! aws-config's own `AssumeRoleProvider` feeding the real `aws-sdk-ssm` client, and
//! `GetCallerIdentity` on the wire and through the real `aws-sdk-sts` client.

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
    for unknown in [
        "Action=GetSessionToken&Version=2011-06-15",
        "Action=GetCallerIdentity&Version=2010-01-01",
    ] {
        let (status, _, xml) = sts_raw(&sim, "ANOTREAL", unknown).await;
        assert_eq!(
            (status, element(&xml, "Code")),
            (400, Some("InvalidAction")),
            "{unknown}"
        );
    }

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

const CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

#[tokio::test]
async fn get_caller_identity_wire_format_faults_and_record() {
    let sim = Simulator::start().await.unwrap();
    let (status, head, xml) = sts_raw(&sim, "ANOTREAL", CALLER_IDENTITY).await;
    assert_eq!(status, 200, "{xml}");
    assert!(head.contains("content-type: text/xml"));
    assert!(head.contains("x-amzn-requestid: "));
    let request_id = element(&xml, "RequestId").unwrap();
    let user_id = element(&xml, "UserId").unwrap();
    assert!(
        user_id.starts_with("AIDA") && user_id.len() == 21,
        "{user_id}"
    );
    assert_eq!(
        xml,
        format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
             <GetCallerIdentityResult>\n    \
             <Arn>arn:aws:iam::123456789012:user/simulated</Arn>\n    \
             <UserId>{user_id}</UserId>\n    <Account>123456789012</Account>\n  \
             </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
             <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
             </GetCallerIdentityResponse>\n"
        )
    );
    // The user id is stable per access key.
    let (_, _, again) = sts_raw(&sim, "ANOTREAL", CALLER_IDENTITY).await;
    assert_eq!(element(&again, "UserId"), Some(user_id));

    // Fault rules reach it as they reach AssumeRole, in STS's codes.
    let code = |(status, _, xml): (u16, String, String)| {
        (status, element(&xml, "Code").map(str::to_owned))
    };
    sim.push_fault(FaultRule::new(Fault::Throttle).operation("GetCallerIdentity"));
    sim.push_fault(FaultRule::new(Fault::AccessDenied).operation("GetCallerIdentity"));
    sim.push_fault(FaultRule::new(Fault::InternalError).operation("GetCallerIdentity"));
    sim.push_fault(FaultRule::new(Fault::ExpiredToken).operation("GetCallerIdentity"));
    let expected = [
        (400, "Throttling"),
        (403, "AccessDenied"),
        (500, "InternalFailure"),
        (400, "ExpiredToken"),
    ];
    for (status, wanted) in expected {
        assert_eq!(
            code(sts_raw(&sim, "ANOTREAL", CALLER_IDENTITY).await),
            (status, Some(wanted.to_owned()))
        );
    }
    // An AssumeRole rule leaves GetCallerIdentity alone.
    sim.push_fault(FaultRule::new(Fault::Throttle).operation("AssumeRole"));
    assert_eq!(
        code(sts_raw(&sim, "ANOTREAL", CALLER_IDENTITY).await),
        (200, None)
    );
    sim.clear_faults();

    // Recorded like every other request.
    let calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == "GetCallerIdentity")
        .collect();
    assert_eq!(calls.len(), 7);
    assert_eq!(sim.request_count("GetCallerIdentity"), 7);
    assert_eq!(calls[0].service, "sts");
    assert_eq!(calls[0].region, EU);
    assert_eq!(calls[0].account, DEFAULT_ACCOUNT);
    assert_eq!(calls[0].access_key, "ANOTREAL");
    assert_eq!(
        (calls[0].status, calls[0].error_code.as_deref()),
        (200, None)
    );
    assert_eq!(
        (calls[3].status, calls[3].error_code.as_deref()),
        (403, Some("AccessDenied"))
    );
}

/// An STS client (the real `aws-sdk-sts`) on the simulator, no retries.
async fn sts_client(
    sim: &Simulator,
    credentials: impl aws_sdk_sts::config::ProvideCredentials + 'static,
) -> aws_sdk_sts::Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(EU))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(credentials)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sts::Client::new(&cfg)
}

/// (Account, Arn, UserId) as the SDK parsed them.
async fn caller_identity(client: &aws_sdk_sts::Client) -> (String, String, String) {
    let out = client.get_caller_identity().send().await.unwrap();
    (
        out.account().unwrap().to_owned(),
        out.arn().unwrap().to_owned(),
        out.user_id().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn aws_sdk_sts_get_caller_identity_reports_the_callers_account() {
    let sim = Simulator::start().await.unwrap();

    // An unknown static key belongs to the default account.
    let unknown = sts_client(&sim, Credentials::new("AKIDUNKNOWN", "s", None, None, "t")).await;
    let (account, arn, user_id) = caller_identity(&unknown).await;
    assert_eq!(account, DEFAULT_ACCOUNT);
    assert_eq!(
        arn,
        format!("arn:aws:iam::{DEFAULT_ACCOUNT}:user/simulated")
    );
    assert!(user_id.starts_with("AIDA"), "{user_id}");

    // A mapped key reports its account.
    sim.add_access_key("AKIDMEMBER222", "222222222222");
    let mapped = sts_client(
        &sim,
        Credentials::new("AKIDMEMBER222", "s", None, None, "t"),
    )
    .await;
    let (account, arn, _) = caller_identity(&mapped).await;
    assert_eq!(account, "222222222222");
    assert_eq!(arn, "arn:aws:iam::222222222222:user/simulated");

    // Credentials from AssumeRole (via aws-config's provider) report the role's account and
    // session.
    setup_role(&sim, Some("secret-1"));
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(EU))
        .endpoint_url(sim.endpoint_url())
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let provider = AssumeRoleProvider::builder(ROLE)
        .external_id("secret-1")
        .session_name("estate-check")
        .configure(&base)
        .build()
        .await;
    let assumed = sts_client(&sim, provider).await;
    let (account, arn, user_id) = caller_identity(&assumed).await;
    assert_eq!(account, MEMBER);
    assert_eq!(
        arn,
        "arn:aws:sts::111111111111:assumed-role/ssm-association-exporter/estate-check"
    );
    assert!(
        user_id.starts_with("AROA") && user_id.ends_with(":estate-check"),
        "{user_id}"
    );

    let recorded = sim.requests();
    let operations: Vec<(&str, &str)> = recorded
        .iter()
        .map(|r| (r.operation.as_str(), r.account.as_str()))
        .collect();
    assert_eq!(
        operations,
        [
            ("GetCallerIdentity", DEFAULT_ACCOUNT),
            ("GetCallerIdentity", "222222222222"),
            ("AssumeRole", DEFAULT_ACCOUNT),
            ("GetCallerIdentity", MEMBER),
        ]
    );
    assert!(recorded
        .iter()
        .all(|r| r.status == 200 && r.service == "sts"));

    // A fault surfaces through the SDK with STS's code.
    sim.push_fault(FaultRule::new(Fault::AccessDenied).operation("GetCallerIdentity"));
    let e = assumed.get_caller_identity().send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
}
