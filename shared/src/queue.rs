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

/// A message sitting in the dead-letter queue.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
    pub receive_count: Option<u32>,
}

impl Queue {
    /// Reads every message in the dead-letter queue without consuming it: each is received once
    /// (hidden while the scan goes on), then made visible again. At most `max` messages.
    pub async fn scan_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let Some(dlq) = &self.dlq_url else {
            return Ok(Vec::new());
        };
        let (letters, receipts) = self.receive_all(dlq, max).await?;
        self.release(dlq, receipts).await?;
        Ok(letters)
    }

    /// Moves one dead-lettered message (by message id) back onto the main queue, with a fresh
    /// deduplication id so FIFO's 5-minute window does not swallow it. `Ok(false)` if it is not there.
    pub async fn redrive(&self, message_id: &str, redrive_id: &str) -> Result<bool, QueueError> {
        let Some(dlq) = self.dlq_url.clone() else {
            return Ok(false);
        };
        let (letters, mut receipts) = self.receive_all(&dlq, 10_000).await?;
        let found = letters.iter().position(|l| l.message_id == message_id);
        if let Some(i) = found {
            let letter = &letters[i];
            let dedup = format!(
                "{}-{}",
                letter
                    .deduplication_id
                    .as_deref()
                    .unwrap_or(&letter.message_id),
                redrive_id
            );
            let dedup: String = dedup.chars().take(128).collect();
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(&letter.body)
                .message_group_id(letter.group_id.as_deref().unwrap_or("redrive"))
                .message_deduplication_id(dedup)
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
            let receipt = receipts.remove(i);
            self.client
                .delete_message()
                .queue_url(&dlq)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
        }
        self.release(&dlq, receipts).await?;
        Ok(found.is_some())
    }

    async fn receive_all(
        &self,
        url: &str,
        max: usize,
    ) -> Result<(Vec<DeadLetter>, Vec<String>), QueueError> {
        use aws_sdk_sqs::types::MessageSystemAttributeName as A;
        let mut letters = Vec::new();
        let mut receipts = Vec::new();
        while letters.len() < max {
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(0)
                .message_system_attribute_names(A::All)
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let attrs = m.attributes.clone().unwrap_or_default();
                let attr = |k: A| attrs.get(&k).cloned();
                if let Some(receipt) = m.receipt_handle.clone() {
                    receipts.push(receipt);
                    letters.push(DeadLetter {
                        message_id: m.message_id.clone().unwrap_or_default(),
                        body: m.body.clone().unwrap_or_default(),
                        group_id: attr(A::MessageGroupId),
                        deduplication_id: attr(A::MessageDeduplicationId),
                        receive_count: attr(A::ApproximateReceiveCount)
                            .and_then(|c| c.parse().ok()),
                    });
                }
            }
        }
        Ok((letters, receipts))
    }

    /// Makes received messages visible again.
    async fn release(&self, url: &str, receipts: Vec<String>) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        for chunk in receipts.chunks(10) {
            let entries: Vec<Entry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    Entry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
        }
        Ok(())
    }
}
