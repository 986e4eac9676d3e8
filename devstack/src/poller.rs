//! An SQS poller that behaves like Lambda's event source mapping for a FIFO queue: long polls for
//! up to 10 messages, hands them to a function's own handler as an `SqsEvent`, deletes the ones
//! that succeeded and leaves reported failures to reappear after their visibility timeout. Two
//! targets, as in the template: the transfers queue feeds the processor (failures reach the
//! dead-letter queue after maxReceiveCount), the dead-letter queue feeds the `dead-letters`
//! function (which records each letter in PostgreSQL).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use shared::clients::Clients;

/// Which function a poller feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The transfers queue -> `processor::handle_batch`.
    Transfers,
    /// The dead-letter queue -> `processor::dead_letters::handle`.
    DeadLetters,
}

#[derive(Clone)]
pub struct Poller {
    clients: Clients,
    queue_url: String,
    queue_arn: String,
    wait: Duration,
    target: Target,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

impl Poller {
    /// The transfers queue's poller (the processor's event source mapping).
    pub async fn new(clients: Clients, wait: Duration) -> anyhow::Result<Self> {
        let queue_url = clients.queue.url().to_string();
        Self::for_queue(clients, queue_url, wait, Target::Transfers).await
    }

    /// The dead-letter queue's poller (the `dead-letters` function's event source mapping).
    pub async fn dead_letters(clients: Clients, wait: Duration) -> anyhow::Result<Self> {
        let queue_url = clients
            .queue
            .dlq_url()
            .context("SQS_DLQ_URL is not set")?
            .to_string();
        Self::for_queue(clients, queue_url, wait, Target::DeadLetters).await
    }

    async fn for_queue(
        clients: Clients,
        queue_url: String,
        wait: Duration,
        target: Target,
    ) -> anyhow::Result<Self> {
        let queue_arn = clients
            .queue
            .client()
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap_or_default();
        Ok(Self {
            clients,
            queue_url,
            queue_arn,
            wait,
            target,
        })
    }

    /// One receive -> invoke -> delete cycle.
    pub async fn poll_once(&self) -> anyhow::Result<PollStats> {
        let sqs = self.clients.queue.client();
        let out = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(PollStats::default());
        }
        let receipts: HashMap<String, String> = messages
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .collect();
        let event = to_sqs_event(messages, &self.queue_arn);
        let ids: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        let response = match self.target {
            Target::Transfers => processor::handle_batch(&self.clients, event).await,
            Target::DeadLetters => processor::dead_letters::handle(&self.clients, event).await,
        };
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = ids
            .iter()
            .filter(|id| !failed.contains(&id.as_str()))
            .enumerate()
            .filter_map(|(i, id)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(receipts.get(id)?)
                    .build()
                    .ok()
            })
            .collect();
        let deleted = entries.len();
        if !entries.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok(PollStats {
            received: ids.len(),
            deleted,
            failed: failed.len(),
        })
    }

    /// Polls until `shutdown` resolves. Errors are logged and retried after a pause, as the event
    /// source mapping would.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                result = self.poll_once() => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "poll failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// Builds the event Lambda would deliver for these messages.
pub fn to_sqs_event(messages: Vec<aws_sdk_sqs::types::Message>, queue_arn: &str) -> SqsEvent {
    let region = queue_arn
        .split(':')
        .nth(3)
        .unwrap_or("us-east-1")
        .to_string();
    let records = messages
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.md5_of_body = m.md5_of_body;
            record.md5_of_message_attributes = m.md5_of_message_attributes;
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_string());
            record.aws_region = Some(region.clone());
            record
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}
