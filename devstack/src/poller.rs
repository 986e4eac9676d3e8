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
use shared::clients::Clients;
use shared::queue::{Queue, ReceivedMessage};

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
    /// The queue this poller reads (the transfers queue or the dead-letter queue).
    queue: Queue,
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
        let queue = clients.queue.for_url(queue_url);
        let queue_arn = queue.arn().await?.unwrap_or_default();
        Ok(Self {
            clients,
            queue,
            queue_arn,
            wait,
            target,
        })
    }

    /// One receive -> invoke -> delete cycle.
    pub async fn poll_once(&self) -> anyhow::Result<PollStats> {
        let messages = self.queue.receive(10, self.wait).await?;
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
        let handled: Vec<&str> = ids
            .iter()
            .filter(|id| !failed.contains(&id.as_str()))
            .filter_map(|id| receipts.get(id).map(String::as_str))
            .collect();
        let deleted = handled.len();
        if !handled.is_empty() {
            // As before: a message SQS could not delete reappears after its visibility timeout.
            self.queue.delete_batch(&handled).await?;
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
pub fn to_sqs_event(messages: Vec<ReceivedMessage>, queue_arn: &str) -> SqsEvent {
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
            record.attributes = m.attributes;
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
