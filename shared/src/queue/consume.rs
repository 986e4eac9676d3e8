//! Reading a queue as Lambda's SQS event source mapping does: receiving a batch with its
//! attributes, deleting what was handled, changing a message's visibility. In AWS the mapping does
//! this for the functions; locally devstack's poller and the tests do it through these.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use super::{Queue, QueueError};

/// A received message: the fields the SQS event Lambda delivers carries over from SQS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
    pub md5_of_body: Option<String>,
    pub md5_of_message_attributes: Option<String>,
    /// System attributes by name (`MessageGroupId`, `ApproximateReceiveCount`, ...).
    pub attributes: HashMap<String, String>,
}

impl From<aws_sdk_sqs::types::Message> for ReceivedMessage {
    fn from(m: aws_sdk_sqs::types::Message) -> Self {
        Self {
            message_id: m.message_id,
            receipt_handle: m.receipt_handle,
            body: m.body,
            md5_of_body: m.md5_of_body,
            md5_of_message_attributes: m.md5_of_message_attributes,
            attributes: m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect(),
        }
    }
}

impl Queue {
    /// The same client on another queue (the dead-letter queue, a queue that does not exist),
    /// without a dead-letter queue of its own and without recreation.
    pub fn for_url(&self, url: impl Into<String>) -> Queue {
        Queue::new(self.client.clone(), url.into(), None)
    }

    /// The queue's ARN, if SQS reports one.
    pub async fn arn(&self) -> Result<Option<String>, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        Ok(out
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned()))
    }

    /// Receives up to `max_messages` (at most 10) with every system and message attribute, long
    /// polling for up to `wait` (whole seconds).
    pub async fn receive(
        &self,
        max_messages: u8,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::from(max_messages))
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(i32::MAX))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(ReceivedMessage::from)
            .collect())
    }

    /// Deletes these messages by receipt handle, 10 per request. Returns how many SQS reported
    /// it could not delete (they reappear after their visibility timeout).
    pub async fn delete_batch(&self, receipt_handles: &[&str]) -> Result<usize, QueueError> {
        let mut failed = 0;
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(*receipt)
                        .build()
                        .map_err(|e| QueueError::new(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::from_sdk)?;
            failed += out.failed.len();
        }
        Ok(failed)
    }

    /// Makes a received message visible again after `timeout` (zero: at once).
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        Ok(())
    }
}
