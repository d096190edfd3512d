//! What the wire and the operation handlers share: the SSM and SQS operation names, the AWS
//! error answer ([`ApiError`]) and request validation common to several operations.

use hyper::StatusCode;

use crate::model::is_uuid_shaped;

// SSM operation names, as in `X-Amz-Target: AmazonSSM.<Operation>` and fault rules.
pub(crate) const OP_DESCRIBE_EXECUTIONS: &str = "DescribeAssociationExecutions";
pub(crate) const OP_DESCRIBE_ASSOCIATION: &str = "DescribeAssociation";
pub(crate) const OP_LIST_ASSOCIATIONS: &str = "ListAssociations";
pub(crate) const OP_LIST_TAGS: &str = "ListTagsForResource";
pub(crate) const OP_DESCRIBE_TARGETS: &str = "DescribeAssociationExecutionTargets";
/// The SSM operations the simulator answers.
pub(crate) const SSM_OPERATIONS: &[&str] = &[
    OP_DESCRIBE_EXECUTIONS,
    OP_DESCRIBE_TARGETS,
    OP_DESCRIBE_ASSOCIATION,
    OP_LIST_ASSOCIATIONS,
    OP_LIST_TAGS,
];

// SQS operation names, as in `X-Amz-Target: AmazonSQS.<Operation>`.
pub(crate) const OP_RECEIVE_MESSAGE: &str = "ReceiveMessage";
pub(crate) const OP_DELETE_MESSAGE: &str = "DeleteMessage";
pub(crate) const OP_DELETE_MESSAGE_BATCH: &str = "DeleteMessageBatch";
pub(crate) const OP_GET_QUEUE_ATTRIBUTES: &str = "GetQueueAttributes";
/// The SQS operations the simulator answers.
pub(crate) const SQS_OPERATIONS: &[&str] = &[
    OP_RECEIVE_MESSAGE,
    OP_DELETE_MESSAGE,
    OP_DELETE_MESSAGE_BATCH,
    OP_GET_QUEUE_ATTRIBUTES,
];

/// An AWS error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// `__type` (SSM) or `Code` (STS).
    pub(crate) code: &'static str,
    /// `message` (SSM) or `Message` (STS).
    pub(crate) message: String,
    /// SQS only: the query-protocol code sent in the `x-amzn-query-error` header
    /// (`AWS.SimpleQueueService.NonExistentQueue`), which the SDK matches on when present.
    pub(crate) query_code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            query_code: None,
        }
    }

    /// An SQS error: `__type` `code`, `x-amzn-query-error: <query_code>;Sender` (`;Receiver`
    /// for 5xx).
    pub(crate) fn sqs(
        status: StatusCode,
        code: &'static str,
        query_code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            query_code: Some(query_code),
            ..ApiError::new(status, code, message)
        }
    }

    pub(crate) fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        ApiError::client("ValidationException", message)
    }

    pub(crate) fn no_association(id: &str) -> Self {
        ApiError::client(
            "AssociationDoesNotExist",
            format!("Association {id} does not exist"),
        )
    }

    pub(crate) fn throttled() -> Self {
        ApiError::client("ThrottlingException", "Rate exceeded")
    }
}

/// The `AssociationId` of a request, present and shaped as the service model requires.
pub(crate) fn validate_association_id(id: Option<&str>) -> Result<&str, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'associationId' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    if is_uuid_shaped(id) {
        Ok(id)
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at 'associationId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}"
        )))
    }
}
