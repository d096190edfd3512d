//! Who is calling, and where: the SigV4 credential scope (access key, region, service), the
//! account behind an access key, IAM roles and the temporary credentials `AssumeRole` issues,
//! and who a caller is (`GetCallerIdentity`).

use std::collections::HashMap;
use std::fmt;

use crate::model::{stable_hash, uuid_like};

/// Account that unknown (static) access keys belong to, and of [`Simulator::add_association`](crate::Simulator::add_association).
pub const DEFAULT_ACCOUNT: &str = "123456789012";
/// Region of requests whose credential scope names none, and of [`Simulator::add_association`](crate::Simulator::add_association).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where associations live: one account in one region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// 12-digit account id.
    pub account: String,
    /// Region name such as `eu-west-1`.
    pub region: String,
}

impl Scope {
    /// The scope of `account` in `region`.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }
}

impl Default for Scope {
    /// [`DEFAULT_ACCOUNT`] in [`DEFAULT_REGION`].
    fn default() -> Self {
        Scope::new(DEFAULT_ACCOUNT, DEFAULT_REGION)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/ssm/aws4_request, ...`
/// the simulator uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CredentialScope {
    pub(crate) access_key: String,
    pub(crate) region: Option<String>,
    pub(crate) service: Option<String>,
}

/// Parses the credential scope of a SigV4 `Authorization` header; parts that are missing are
/// left empty (`Credential=x` gives access key `x` and no region).
pub(crate) fn parse_credential_scope(authorization: &str) -> CredentialScope {
    let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256") else {
        return CredentialScope::default();
    };
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))
        .unwrap_or_default();
    let mut parts = credential.split('/');
    let access_key = parts.next().unwrap_or_default().to_owned();
    let _date = parts.next();
    let nonempty = |p: Option<&str>| p.filter(|s| !s.is_empty()).map(str::to_owned);
    let region = nonempty(parts.next());
    let service = nonempty(parts.next());
    CredentialScope {
        access_key,
        region,
        service,
    }
}

/// An IAM role that `AssumeRole` can assume.
#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub(crate) account: String,
    pub(crate) external_id: Option<String>,
    /// Accounts the role's trust policy lets assume it.
    pub(crate) trusted_accounts: Vec<String>,
}

/// Temporary credentials issued by `AssumeRole`.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) account: String,
    pub(crate) session_token: String,
    pub(crate) expires_ms: i64,
    /// The role session: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub(crate) arn: String,
    /// `<role id>:<session>` (`AssumedRoleId`, and `GetCallerIdentity`'s `UserId`).
    pub(crate) user_id: String,
}

/// What `AssumeRole` hands out: the keys and the session's principal.
#[derive(Clone, Debug)]
pub(crate) struct IssuedKeys {
    pub(crate) access_key: String,
    pub(crate) secret: String,
    pub(crate) session_token: String,
    pub(crate) arn: String,
    pub(crate) user_id: String,
}

/// Who a caller is, as `GetCallerIdentity` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    pub(crate) arn: String,
    pub(crate) user_id: String,
    pub(crate) account: String,
}

/// Why a caller's credentials are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialProblem {
    /// Issued credentials past their `Expiration`.
    Expired,
    /// Issued credentials sent without their session token, or with another one.
    BadSessionToken,
}

/// Accounts, roles and issued credentials.
#[derive(Default)]
pub(crate) struct Identity {
    /// Static access key -> account ([`Simulator::add_access_key`](crate::Simulator::add_access_key)).
    keys: HashMap<String, String>,
    /// Role ARN -> role.
    pub(crate) roles: HashMap<String, Role>,
    /// Issued access key -> credentials.
    issued: HashMap<String, Issued>,
    /// Overrides the requested `DurationSeconds` of issued credentials.
    pub(crate) lifetime_ms: Option<i64>,
}

impl Identity {
    pub(crate) fn add_key(&mut self, access_key: String, account: String) {
        self.keys.insert(access_key, account);
    }

    /// The account of a caller, or why its credentials are refused. Unknown static keys
    /// belong to [`DEFAULT_ACCOUNT`].
    pub(crate) fn account_of(
        &self,
        access_key: &str,
        session_token: Option<&str>,
        now_ms: i64,
    ) -> Result<String, CredentialProblem> {
        if let Some(issued) = self.issued.get(access_key) {
            if session_token != Some(issued.session_token.as_str()) {
                return Err(CredentialProblem::BadSessionToken);
            }
            if now_ms >= issued.expires_ms {
                return Err(CredentialProblem::Expired);
            }
            return Ok(issued.account.clone());
        }
        Ok(self
            .keys
            .get(access_key)
            .cloned()
            .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned()))
    }

    /// Issues credentials for a session `session` of `role_arn` (a role of `account`) valid
    /// until `expires_ms`.
    pub(crate) fn issue(
        &mut self,
        account: &str,
        role_arn: &str,
        session: &str,
        expires_ms: i64,
    ) -> IssuedKeys {
        let access_key = format!("ASIA{}", alnum(rand::random(), 16));
        let secret = format!("{}{}", alnum(rand::random(), 20), alnum(rand::random(), 20));
        let session_token = format!(
            "FwoGZXIvYXdzE{}",
            uuid_like(rand::random()).replace('-', "")
        );
        let partition = role_arn.split(':').nth(1).unwrap_or("aws");
        let role_name = role_arn_account(role_arn).map_or(role_arn, |(_, name)| name);
        let arn = format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session}");
        // A role's id is stable (`AROA` + 17 characters); the session is appended.
        let user_id = format!("AROA{}:{session}", alnum(stable_hash(role_arn), 17));
        self.issued.insert(
            access_key.clone(),
            Issued {
                account: account.to_owned(),
                session_token: session_token.clone(),
                expires_ms,
                arn: arn.clone(),
                user_id: user_id.clone(),
            },
        );
        IssuedKeys {
            access_key,
            secret,
            session_token,
            arn,
            user_id,
        }
    }

    /// Who the caller signing with `access_key` is: the role session for credentials issued
    /// by `AssumeRole`, else the IAM user `simulated` of the key's account (`account`, as
    /// [`Identity::account_of`] found it) with a user id stable per access key.
    pub(crate) fn principal_of(&self, access_key: &str, account: &str) -> Principal {
        match self.issued.get(access_key) {
            Some(issued) => Principal {
                arn: issued.arn.clone(),
                user_id: issued.user_id.clone(),
                account: issued.account.clone(),
            },
            None => Principal {
                arn: format!("arn:aws:iam::{account}:user/simulated"),
                user_id: format!("AIDA{}", alnum(stable_hash(access_key), 17)),
                account: account.to_owned(),
            },
        }
    }
}

/// `n` (at most 24) upper-case letters and digits from random bits.
fn alnum(mut bits: u128, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..n.min(24))
        .map(|_| {
            let c = ALPHABET[(bits % 32) as usize] as char;
            bits /= 32;
            c
        })
        .collect()
}

/// The account id of `arn:aws:iam::111111111111:role/name` (any partition), if well formed.
pub(crate) fn role_arn_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (arn_word, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?;
    let well_formed = arn_word == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty();
    // The role's name is the last path segment (`role/path/name`).
    well_formed.then(|| (account, name.rsplit('/').next().unwrap_or(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scopes_parse() {
        let scope = parse_credential_scope(
            "AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/ssm/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        );
        assert_eq!(scope.access_key, "AKID");
        assert_eq!(scope.region.as_deref(), Some("eu-west-1"));
        assert_eq!(scope.service.as_deref(), Some("ssm"));
        let short = parse_credential_scope("AWS4-HMAC-SHA256 Credential=x");
        assert_eq!((short.access_key.as_str(), short.region), ("x", None));
        assert_eq!(
            parse_credential_scope("Basic abc"),
            CredentialScope::default()
        );
    }

    #[test]
    fn issued_credentials_expire_and_need_their_token() {
        let mut identity = Identity::default();
        identity.add_key("AKIDOTHER".into(), "222222222222".into());
        assert_eq!(
            identity.account_of("whatever", None, 0).unwrap(),
            DEFAULT_ACCOUNT
        );
        assert_eq!(
            identity.account_of("AKIDOTHER", None, 0).unwrap(),
            "222222222222"
        );
        let keys = identity.issue(
            "111111111111",
            "arn:aws:iam::111111111111:role/path/reader",
            "s1",
            1_000,
        );
        let (key, token) = (keys.access_key, keys.session_token);
        assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
        assert_eq!(keys.arn, "arn:aws:sts::111111111111:assumed-role/reader/s1");
        assert!(keys.user_id.starts_with("AROA") && keys.user_id.ends_with(":s1"));
        let principal = identity.principal_of(&key, "ignored");
        assert_eq!(
            (principal.arn, principal.user_id, principal.account),
            (keys.arn, keys.user_id, "111111111111".to_owned())
        );
        let user = identity.principal_of("AKIDOTHER", "222222222222");
        assert_eq!(user.arn, "arn:aws:iam::222222222222:user/simulated");
        assert!(user.user_id.starts_with("AIDA") && user.user_id.len() == 21);
        assert_eq!(user, identity.principal_of("AKIDOTHER", "222222222222"));
        assert_ne!(user.user_id, identity.principal_of("AKIDX", "2").user_id);
        assert_eq!(
            identity.account_of(&key, Some(&token), 999).unwrap(),
            "111111111111"
        );
        assert_eq!(
            identity.account_of(&key, Some(&token), 1_000),
            Err(CredentialProblem::Expired)
        );
        assert_eq!(
            identity.account_of(&key, None, 0),
            Err(CredentialProblem::BadSessionToken)
        );
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            role_arn_account("arn:aws:iam::111111111111:role/exporter"),
            Some(("111111111111", "exporter"))
        );
        assert_eq!(
            role_arn_account("arn:aws-cn:iam::111111111111:role/path/x"),
            Some(("111111111111", "x"))
        );
        for bad in [
            "arn:aws:iam::11111111111:role/x",
            "arn:aws:iam::111111111111:user/x",
            "arn:aws:sts::111111111111:role/x",
            "111111111111",
            "arn:aws:iam::111111111111:role/",
        ] {
            assert_eq!(role_arn_account(bad), None, "{bad}");
        }
    }
}
