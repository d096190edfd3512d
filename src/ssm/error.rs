//! AWS error codes to the project's own failures: every SDK error becomes an [`ApiError`] with
//! the [`ErrorKind`] the exporter acts on.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

/// What kind of failure an SSM call ended with: what the exporter acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The API asked us to slow down (`ThrottlingException` and its relatives).
    Throttled,
    /// The credentials themselves do not work (expired, invalid, unknown, signature rejected,
    /// the credential provider failed): whatever the operation, the whole account and region.
    Credentials,
    /// The credentials work but are not allowed this call (`AccessDeniedException`,
    /// `AccessDenied`): an IAM policy, permission boundary or SCP denies it, possibly for some
    /// resources only. What it concerns depends on the operation: the scope for its listing
    /// and STS, one association for the calls that name one (decided by the call observer).
    AccessDenied,
    /// The `NextToken` sent is no longer valid (`InvalidNextToken`).
    InvalidToken,
    /// The association does not exist (deleted, or in another account or region).
    NotFound,
    /// Trying again soon may help: 5xx, timeouts, connection errors, unreadable responses.
    Transient,
    /// The request's signature was out of AWS's time window (the host clock is off). The SDK
    /// learns the skew from the rejection's `Date` header, so the next attempt is signed right.
    ClockSkew,
    /// Trying again will not help (validation, unknown client errors, ...).
    Permanent,
}

/// A failed SSM call, reduced to what the exporter acts on.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// The AWS error code (`ThrottlingException`, `AssociationDoesNotExist`, ...) or one of our
    /// own stable codes (`Timeout`, `ConnectionError`, `CredentialsError`, `ResponseError`,
    /// `ConstructionFailure`, `InvalidResponse`). Used as a metric label.
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Whether trying again soon may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::ClockSkew
        )
    }
}

/// A signature outside AWS's time window ("Signature expired: ... is now earlier than ...",
/// "Signature not yet current: ...") or the codes some services use for it.
fn is_clock_skew(code: &str, message: &str) -> bool {
    code == "RequestTimeTooSkewed"
        || (matches!(code, "InvalidSignatureException" | "SignatureDoesNotMatch")
            && (message.contains("Signature expired") || message.contains("not yet current")))
}

fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
    )
}

/// Error codes that mean SSM rejected the credentials themselves, whatever the operation.
const CREDENTIAL_CODES: &[&str] = &[
    "CredentialsError",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "IncompleteSignature",
];

/// Error codes that mean the caller may not make this call (on this resource).
const ACCESS_DENIED_CODES: &[&str] = &["AccessDeniedException", "AccessDenied"];

/// The kind of an AWS error `code` (HTTP `status`), whatever the operation: access denied is
/// [`ErrorKind::AccessDenied`] for every operation, and the call observer decides by the
/// operation whether it concerns the scope or one association.
fn kind_of(code: &str, message: &str, status: u16) -> ErrorKind {
    if is_clock_skew(code, message) {
        ErrorKind::ClockSkew
    } else if is_throttle(code) {
        ErrorKind::Throttled
    } else if CREDENTIAL_CODES.contains(&code) {
        ErrorKind::Credentials
    } else if ACCESS_DENIED_CODES.contains(&code) {
        ErrorKind::AccessDenied
    } else if code == "InvalidNextToken" {
        ErrorKind::InvalidToken
    } else if code == "AssociationDoesNotExist" {
        ErrorKind::NotFound
    } else if status >= 500
        || matches!(
            code,
            "InternalServerError" | "ServiceUnavailable" | "InternalFailure"
        )
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    }
}

/// Reduces an SDK error to a stable code (a metric label) and a kind.
pub fn map_error<E>(error: &SdkError<E, aws_sdk_ssm::config::http::HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = error_chain(error);
    let (code, kind) = match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let kind = kind_of(&code, &message, status);
            (code, kind)
        }
        SdkError::TimeoutError(_) => ("Timeout".to_string(), ErrorKind::Transient),
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                ("Timeout".to_string(), ErrorKind::Transient)
            } else if message.to_ascii_lowercase().contains("credential") {
                // The credential provider failed (expired SSO session, no role, ...).
                ("CredentialsError".to_string(), ErrorKind::Credentials)
            } else if failure.is_user() {
                ("DispatchFailure".to_string(), ErrorKind::Permanent)
            } else {
                // I/O errors and connections closed before a response (resets).
                ("ConnectionError".to_string(), ErrorKind::Transient)
            }
        }
        SdkError::ResponseError(_) => ("ResponseError".to_string(), ErrorKind::Transient),
        SdkError::ConstructionFailure(_) => {
            ("ConstructionFailure".to_string(), ErrorKind::Permanent)
        }
        _ => ("Unknown".to_string(), ErrorKind::Transient),
    };
    ApiError {
        kind,
        code,
        message,
    }
}

/// The error and its sources on one line (the SDK's top-level message alone is often just
/// "dispatch failure").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("Throttling", 400, ErrorKind::Throttled),
            // The credentials themselves: whatever the operation.
            ("ExpiredToken", 400, ErrorKind::Credentials),
            ("ExpiredTokenException", 400, ErrorKind::Credentials),
            ("UnrecognizedClientException", 403, ErrorKind::Credentials),
            ("InvalidClientTokenId", 403, ErrorKind::Credentials),
            ("SignatureDoesNotMatch", 403, ErrorKind::Credentials),
            ("InvalidSignatureException", 400, ErrorKind::Credentials),
            ("CredentialsError", 0, ErrorKind::Credentials),
            // Not allowed this call: SSM's code and STS's; the observer decides what it concerns.
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("AccessDenied", 403, ErrorKind::AccessDenied),
            ("InvalidNextToken", 400, ErrorKind::InvalidToken),
            ("AssociationDoesNotExist", 400, ErrorKind::NotFound),
            ("InternalServerError", 500, ErrorKind::Transient),
            ("HTTP503", 503, ErrorKind::Transient),
            ("ValidationException", 400, ErrorKind::Permanent),
        ];
        let skew = "Signature expired: 20261127T100000Z is now earlier than 20261127T100500Z";
        assert_eq!(
            kind_of("InvalidSignatureException", skew, 400),
            ErrorKind::ClockSkew
        );
        for (code, status, kind) in cases {
            assert_eq!(kind_of(code, "", status), kind, "{code}");
        }
    }
}
