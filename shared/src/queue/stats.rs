//! Queue attributes for `/queue/stats` and the readiness probe.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use super::{Queue, QueueError};

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
