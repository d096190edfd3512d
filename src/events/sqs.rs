//! The SQS client of one `events:` queue: set-up (region and account from the URL, the role
//! to assume, a timeout above the long poll's wait), `ReceiveMessage` with long polling and
//! `DeleteMessageBatch`. The only file that knows `aws_sdk_sqs`.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::Region;

use crate::config::QueueConfig;
use crate::ssm::{self, ApiError, ErrorKind};

/// `WaitTimeSeconds` of every receive: SQS's longest long poll, so an idle queue costs three
/// requests a minute and a message is returned as soon as it arrives.
pub const WAIT_SECONDS: i32 = 20;
/// `MaxNumberOfMessages`: SQS's largest batch.
pub const BATCH: i32 = 10;

/// One received message.
#[derive(Clone, Debug)]
pub struct Received {
    pub message_id: String,
    /// The handle of this receive: a delete needs the newest one.
    pub receipt_handle: String,
    pub body: String,
}

/// The client of one queue.
#[derive(Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    /// The client of `queue`: `base` (the exporter's AWS configuration, endpoint override
    /// included) in the queue's region, with the credentials of its role if it names one, and
    /// an attempt timeout of the long poll's wait plus `request_timeout`.
    pub async fn new(
        base: &aws_config::SdkConfig,
        queue: &QueueConfig,
        request_timeout: Duration,
    ) -> Queue {
        let region = Region::new(queue.region.clone());
        let wait = Duration::from_secs(WAIT_SECONDS as u64);
        let mut config = aws_sdk_sqs::config::Builder::from(base)
            .region(region.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(request_timeout.min(Duration::from_secs(5)))
                    .read_timeout(wait + request_timeout)
                    .operation_attempt_timeout(wait + request_timeout)
                    .build(),
            );
        if let Some(role) = &queue.role_arn {
            let provider =
                ssm::assume_role(base, role, queue.external_id.as_deref(), Some(region)).await;
            config = config.credentials_provider(provider);
        }
        Queue {
            client: aws_sdk_sqs::Client::from_conf(config.build()),
            url: queue.url.clone(),
        }
    }

    /// One long poll: up to [`BATCH`] messages, waiting up to [`WAIT_SECONDS`] for the first.
    /// Messages without a receipt handle (never sent by SQS) are left out.
    pub async fn receive(&self) -> Result<Vec<Received>, ApiError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .wait_time_seconds(WAIT_SECONDS)
            .max_number_of_messages(BATCH)
            .send()
            .await
            .map_err(|e| ssm::map_error(&e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(Received {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Deletes up to [`BATCH`] messages by their receipt handles in one `DeleteMessageBatch`;
    /// the entries SQS did not delete (its `Failed` list, even on HTTP 200) are returned as
    /// errors, by error code.
    pub async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<ApiError>, ApiError> {
        if receipt_handles.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self.client.delete_message_batch().queue_url(&self.url);
        for (n, handle) in receipt_handles.iter().enumerate() {
            let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| ApiError {
                    kind: ErrorKind::Permanent,
                    code: "ConstructionFailure".into(),
                    message: e.to_string(),
                })?;
            request = request.entries(entry);
        }
        let output = request.send().await.map_err(|e| ssm::map_error(&e))?;
        Ok(output
            .failed
            .into_iter()
            .map(|f| ApiError {
                kind: if f.sender_fault {
                    ErrorKind::Permanent
                } else {
                    ErrorKind::Transient
                },
                code: f.code,
                message: f.message.unwrap_or_default(),
            })
            .collect())
    }
}
