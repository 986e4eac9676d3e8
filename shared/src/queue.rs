//! SQS adapter: sending transfers to the FIFO queue and reading its attributes.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::transfers::TransferMessage;

#[derive(Debug, thiserror::Error)]
#[error("sqs: {detail}")]
pub struct QueueError {
    detail: String,
    /// The request may have reached SQS (a timeout, a lost connection or reply, a 5xx): a message
    /// may or may not be on the queue.
    outcome_unknown: bool,
    /// SQS answered that the queue does not exist.
    missing_queue: bool,
}

impl QueueError {
    fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            outcome_unknown: false,
            missing_queue: false,
        }
    }

    fn from_sdk<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> Self
    where
        E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + HttpStatus + 'static,
    {
        use aws_sdk_sqs::error::SdkError;
        let (outcome_unknown, missing_queue) = match &e {
            // Never sent.
            SdkError::ConstructionFailure(_) => (false, false),
            // SQS answered: a 4xx refused the request; a 5xx may have acted on it.
            SdkError::ServiceError(s) => (
                s.raw().status_code() >= 500,
                s.err().code().is_some_and(|c| {
                    c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist")
                }),
            ),
            // A timeout, a connection that failed mid-request, a reply that could not be read.
            _ => (true, false),
        };
        Self {
            detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            outcome_unknown,
            missing_queue,
        }
    }

    /// Whether the message may be on the queue although the send failed.
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// Whether SQS said the queue does not exist.
    pub fn missing_queue(&self) -> bool {
        self.missing_queue
    }
}

/// The status code of a raw SDK response, for telling a refusal (4xx) from a failure (5xx).
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_sqs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The timeouts every SQS client uses, deployed or local: a stalled SQS server costs a request
/// seconds, never the whole Lambda timeout.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(10))
        .build()
}

/// How a local stack recreates its queues when the local SQS server restarted empty (production
/// queues come from the template and never vanish).
#[derive(Clone, Debug)]
pub struct RecreateQueues {
    pub name: String,
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
}

#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq_url: Option<String>,
    recreate: Option<RecreateQueues>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    pub url: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication_scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fifo_throughput_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: QueueDepth,
    pub dead_letter_queue: Option<QueueDepth>,
}

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: String, dlq_url: Option<String>) -> Self {
        Self {
            client,
            url,
            dlq_url,
            recreate: None,
        }
    }

    /// A local stack's queue: recreated (once per failed send) when the SQS server lost it.
    pub fn recreating(mut self, spec: RecreateQueues) -> Self {
        self.recreate = Some(spec);
        self
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> Option<&str> {
        self.dlq_url.as_deref()
    }

    /// Sends a transfer with its FIFO group (source account) and deduplication id (client + key).
    /// Returns the SQS message id.
    #[tracing::instrument(name = "sqs.send", level = "debug", skip_all)]
    pub async fn send_transfer(&self, msg: &TransferMessage) -> Result<String, QueueError> {
        let body = serde_json::to_string(msg).expect("a message always serializes");
        match self.send_body(msg, &body).await {
            Err(e) if e.missing_queue() && self.recreate.is_some() => {
                let spec = self.recreate.as_ref().expect("checked");
                tracing::warn!(queue = %spec.name, "the local SQS server lost the queue; recreating it");
                ensure_fifo_queue(
                    &self.client,
                    &spec.name,
                    spec.max_receive_count,
                    spec.visibility_timeout_secs,
                )
                .await?;
                self.send_body(msg, &body).await
            }
            other => other,
        }
    }

    async fn send_body(&self, msg: &TransferMessage, body: &str) -> Result<String, QueueError> {
        // One attempt: after an SDK retry the last attempt's error says nothing about the earlier
        // ones (a timed-out first attempt may have been stored, then a 4xx would look like a clean
        // refusal). The client's own retry, under the same key, is the retry.
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(msg.group_id())
            .message_deduplication_id(msg.deduplication_id())
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        out.message_id
            .ok_or_else(|| QueueError::new("SendMessage returned no MessageId"))
    }

    /// Keeps messages that failed for a reason outside them (a database outage) invisible for
    /// `delay` each, so that a retry waits instead of spending one of the queue's receives.
    /// `entries` are (message id, receipt handle, delay); at most 10 per call (one SQS batch).
    pub async fn delay_retries(
        &self,
        entries: &[(String, String, std::time::Duration)],
    ) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        for chunk in entries.chunks(10) {
            let batch = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, receipt, delay))| {
                    Entry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(receipt)
                        .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
                        .build()
                        .map_err(|e| QueueError::new(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(batch))
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
            if let Some(failed) = out.failed.first() {
                return Err(QueueError::new(format!(
                    "ChangeMessageVisibility failed for {} message(s): {}",
                    out.failed.len(),
                    failed.message.as_deref().unwrap_or("")
                )));
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        Ok(())
    }

    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let queue = self.depth(&self.url).await?;
        let dead_letter_queue = match &self.dlq_url {
            Some(url) => Some(self.depth(url).await?),
            None => None,
        };
        Ok(QueueStats {
            queue,
            dead_letter_queue,
        })
    }

    async fn depth(&self, url: &str) -> Result<QueueDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        let attrs: HashMap<String, String> = out
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect();
        let num = |k: &str| attrs.get(k).and_then(|v| v.parse().ok());
        let max_receive_count = attrs
            .get("RedrivePolicy")
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| match &p["maxReceiveCount"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            });
        Ok(QueueDepth {
            url: url.to_string(),
            visible: num("ApproximateNumberOfMessages").unwrap_or(0),
            in_flight: num("ApproximateNumberOfMessagesNotVisible").unwrap_or(0),
            delayed: num("ApproximateNumberOfMessagesDelayed").unwrap_or(0),
            fifo: attrs.get("FifoQueue").is_some_and(|v| v == "true"),
            content_based_deduplication: attrs
                .get("ContentBasedDeduplication")
                .is_some_and(|v| v == "true"),
            deduplication_scope: attrs.get("DeduplicationScope").cloned(),
            fifo_throughput_limit: attrs.get("FifoThroughputLimit").cloned(),
            max_receive_count,
            visibility_timeout_seconds: num("VisibilityTimeout"),
        })
    }
}

/// Creates (or finds) a FIFO queue `name` with a FIFO dead-letter queue `<name>-dlq` after
/// `max_receive_count` receives. For local stacks and tests; in AWS the template creates them.
pub async fn ensure_fifo_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_secs: u32,
) -> Result<(String, String), QueueError> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let create = |queue: String, attrs: Vec<(QueueAttributeName, String)>| async move {
        let mut req = client
            .create_queue()
            .queue_name(queue)
            .attributes(QueueAttributeName::FifoQueue, "true");
        for (k, v) in attrs {
            req = req.attributes(k, v);
        }
        req.send()
            .await
            .map_err(QueueError::from_sdk)?
            .queue_url
            .ok_or_else(|| QueueError::new("CreateQueue returned no QueueUrl"))
    };
    let dlq_url = create(format!("{base}-dlq.fifo"), vec![]).await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(QueueError::from_sdk)?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| QueueError::new("dead-letter queue has no ARN"))?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count});
    let url = create(
        format!("{base}.fifo"),
        vec![
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            ),
            (
                QueueAttributeName::DeduplicationScope,
                "messageGroup".into(),
            ),
            (
                QueueAttributeName::FifoThroughputLimit,
                "perMessageGroupId".into(),
            ),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}

/// An SQS client for a local SQS-compatible server (moto), with static dummy credentials so that
/// nothing reaches for the EC2 metadata endpoint.
pub async fn local_client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{Credentials, Region};
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .endpoint_url(endpoint)
        .timeout_config(timeouts())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

impl Queue {
    /// Re-sends a recorded dead letter's body to the transfers queue with its message group and
    /// the given deduplication id (`store::dead_letters::redrive_deduplication_id`). Returns the
    /// new message id. The dead-letter queue itself is never read here: the `dead-letters` function
    /// consumes it and records every letter in PostgreSQL.
    #[tracing::instrument(name = "sqs.redrive", level = "debug", skip_all)]
    pub async fn resend(
        &self,
        body: &str,
        group_id: &str,
        deduplication_id: &str,
    ) -> Result<String, QueueError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group_id)
            .message_deduplication_id(deduplication_id)
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        out.message_id
            .ok_or_else(|| QueueError::new("SendMessage returned no MessageId"))
    }
}
