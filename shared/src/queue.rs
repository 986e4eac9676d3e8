//! SQS adapter: sending transfers to the FIFO queue and reading its attributes.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::transfers::TransferMessage;

#[derive(Debug, thiserror::Error)]
#[error("sqs: {0}")]
pub struct QueueError(String);

impl QueueError {
    fn from_sdk<E: std::error::Error + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> Self {
        Self(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    }
}

#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq_url: Option<String>,
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
        }
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
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(msg.group_id())
            .message_deduplication_id(msg.deduplication_id())
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        out.message_id
            .ok_or_else(|| QueueError("SendMessage returned no MessageId".into()))
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
            .ok_or_else(|| QueueError("CreateQueue returned no QueueUrl".into()))
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
        .ok_or_else(|| QueueError("dead-letter queue has no ARN".into()))?;
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
            .ok_or_else(|| QueueError("SendMessage returned no MessageId".into()))
    }
}
