//! STS in the AWS query protocol: form-encoded requests, XML answers and errors; `AssumeRole`
//! with trust and `ExternalId` checks and expiring credentials mapped to the role's account,
//! and `GetCallerIdentity`.

use std::collections::HashMap;

use hyper::StatusCode;

use crate::api::ApiError;
use crate::identity::{role_arn_account, Scope};
use crate::state::Shared;

/// The STS API version every request names.
pub(crate) const STS_VERSION: &str = "2011-06-15";
/// Namespace of STS responses.
const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// `DurationSeconds` bounds of `AssumeRole` and its default.
const MIN_DURATION_S: i64 = 900;
const MAX_DURATION_S: i64 = 43_200;
const DEFAULT_DURATION_S: i64 = 3_600;

pub(crate) const OP_ASSUME_ROLE: &str = "AssumeRole";
pub(crate) const OP_GET_CALLER_IDENTITY: &str = "GetCallerIdentity";

/// Decodes an `application/x-www-form-urlencoded` body (later duplicates win).
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The query protocol's error document.
pub(crate) fn error_xml(status: StatusCode, code: &str, message: &str, request_id: &str) -> String {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    format!(
        "<ErrorResponse xmlns=\"{STS_XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
         <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n\
         </ErrorResponse>\n",
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id)
    )
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::client("ValidationError", message)
}

fn access_denied(caller: &Scope, role_arn: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        format!(
            "User: arn:aws:iam::{}:user/simulated is not authorized to perform: sts:AssumeRole \
             on resource: {role_arn}",
            caller.account
        ),
    )
}

/// `name` matches `[\w+=,.@-]*` (plus `:` and `/` when `more` allows them).
fn is_sts_word(name: &str, more: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) || more.contains(c))
}

/// ISO-8601 UTC with whole seconds, as STS sends `Expiration`.
fn iso_seconds(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Answers one query-protocol request (`AssumeRole` or `GetCallerIdentity`) from a caller
/// whose credentials were accepted: `caller` is its scope, `access_key` the key it signed with.
pub(crate) fn serve_query(
    shared: &Shared,
    caller: &Scope,
    access_key: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, ApiError> {
    let action = params.get("Action").map(String::as_str).unwrap_or_default();
    let version = params
        .get("Version")
        .map(String::as_str)
        .unwrap_or_default();
    match action {
        OP_ASSUME_ROLE if version == STS_VERSION => assume_role(shared, caller, params, request_id),
        OP_GET_CALLER_IDENTITY if version == STS_VERSION => {
            Ok(get_caller_identity(shared, caller, access_key, request_id))
        }
        _ => Err(ApiError::client(
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        )),
    }
}

/// `GetCallerIdentity`: the role session for credentials `AssumeRole` issued, else the IAM
/// user `simulated` of the access key's account. STS answers it whatever IAM allows, so only
/// fault rules fail it.
fn get_caller_identity(
    shared: &Shared,
    caller: &Scope,
    access_key: &str,
    request_id: &str,
) -> String {
    let principal = shared
        .lock()
        .identity
        .principal_of(access_key, &caller.account);
    format!(
        "<GetCallerIdentityResponse xmlns=\"{STS_XMLNS}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
         </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  \
         </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
        xml_escape(&principal.arn),
        xml_escape(&principal.user_id),
        xml_escape(&principal.account),
        xml_escape(request_id),
    )
}

fn assume_role(
    shared: &Shared,
    caller: &Scope,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, ApiError> {
    let role_arn = params.get("RoleArn").ok_or_else(|| {
        validation(
            "1 validation error detected: Value null at 'roleArn' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    let session = params.get("RoleSessionName").ok_or_else(|| {
        validation(
            "1 validation error detected: Value null at 'roleSessionName' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    if !(2..=64).contains(&session.len()) || !is_sts_word(session, "") {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* \
             and have length between 2 and 64"
        )));
    }
    let duration_s = match params.get("DurationSeconds") {
        None => DEFAULT_DURATION_S,
        Some(text) => text
            .parse()
            .ok()
            .filter(|s| (MIN_DURATION_S..=MAX_DURATION_S).contains(s))
            .ok_or_else(|| {
                validation(format!(
                    "1 validation error detected: Value '{text}' at 'durationSeconds' failed \
                     to satisfy constraint: Member must have value between 900 and 43200"
                ))
            })?,
    };
    let external_id = params.get("ExternalId");
    if let Some(id) = external_id {
        if !(2..=1224).contains(&id.len()) || !is_sts_word(id, ":/") {
            return Err(validation(format!(
                "1 validation error detected: Value '{id}' at 'externalId' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]* \
                 and have length between 2 and 1224"
            )));
        }
    }
    if role_arn_account(role_arn).is_none() {
        return Err(validation(format!("{role_arn} is not a valid role ARN")));
    }

    let now_ms = shared.clock.now_ms();
    let mut state = shared.lock();
    let role = state
        .identity
        .roles
        .get(role_arn)
        .filter(|role| role.trusted_accounts.contains(&caller.account))
        .ok_or_else(|| access_denied(caller, role_arn))?;
    if role
        .external_id
        .as_ref()
        .is_some_and(|wanted| external_id != Some(wanted))
    {
        return Err(access_denied(caller, role_arn));
    }
    let account = role.account.clone();
    let lifetime_ms = state.identity.lifetime_ms.unwrap_or(duration_s * 1000);
    // STS states whole seconds; the credentials stop working at exactly that instant.
    let expires_ms = (now_ms + lifetime_ms).div_euclid(1000) * 1000;
    let keys = state
        .identity
        .issue(&account, role_arn, session, expires_ms);
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"{STS_XMLNS}\">\n  <AssumeRoleResult>\n    \
         <AssumedRoleUser>\n      <Arn>{}</Arn>\n      \
         <AssumedRoleId>{}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
         <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      \
         <SecretAccessKey>{}</SecretAccessKey>\n      \
         <SessionToken>{}</SessionToken>\n      \
         <Expiration>{}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n\
         </AssumeRoleResponse>\n",
        xml_escape(&keys.arn),
        xml_escape(&keys.user_id),
        keys.access_key,
        keys.secret,
        keys.session_token,
        iso_seconds(expires_ms),
        xml_escape(request_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let form = parse_form(
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fx\
              &RoleSessionName=a+b&Bad=%zz&Tail=%4",
        );
        assert_eq!(form["Action"], "AssumeRole");
        assert_eq!(form["RoleArn"], "arn:aws:iam::111111111111:role/x");
        assert_eq!(form["RoleSessionName"], "a b");
        assert_eq!(form["Bad"], "%zz");
        assert_eq!(form["Tail"], "%4");
    }

    #[test]
    fn errors_are_escaped_xml() {
        let xml = error_xml(StatusCode::FORBIDDEN, "AccessDenied", "a <b> & c", "r1");
        assert!(xml.contains("<Type>Sender</Type>"));
        assert!(xml.contains("<Code>AccessDenied</Code>"));
        assert!(xml.contains("<Message>a &lt;b&gt; &amp; c</Message>"));
        assert_eq!(iso_seconds(1_550_505_827_119), "2019-02-18T16:03:47Z");
    }
}
