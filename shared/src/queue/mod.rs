//! SQS adapter: sending transfers to the FIFO queue (and a dead letter back to it), delaying the
//! retry of messages that failed on an outage, and the typed errors that say whether a send may
//! have reached SQS. Queue attributes for `/queue/stats` live in `stats`, receiving and deleting as
//! the event source mapping does (devstack's poller, tests) in `consume`, the local stack's queue
//! creation and client in `local`. The SDK client itself stays inside this module.

mod consume;
mod local;
mod stats;

pub use consume::ReceivedMessage;
pub use local::{RecreateQueues, ensure_fifo_queue, local_client};
pub use stats::{QueueDepth, QueueStats};

use crate::transfers::TransferMessage;

#[derive(Clone, Debug, thiserror::Error)]
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

    /// A batch send that answered nothing for this message (SQS answers every entry; this is the
    /// safe reading if it ever does not: the message may be on the queue).
    pub fn unanswered() -> Self {
        Self {
            detail: "SendMessageBatch answered nothing for this message".into(),
            outcome_unknown: true,
            missing_queue: false,
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

/// Splits messages into calls of at most `per_call` and the calls into waves of at most `per_wave`
/// that run at once, in order, so that no two calls of a wave share a message group: a group's
/// messages are then queued in the order given (SQS keeps the order within one call).
fn send_waves<'m>(
    msgs: &'m [&'m TransferMessage],
    per_call: usize,
    per_wave: usize,
) -> Vec<Vec<&'m [&'m TransferMessage]>> {
    let mut waves: Vec<Vec<&[&TransferMessage]>> = Vec::new();
    let mut groups = std::collections::HashSet::new();
    for call in msgs.chunks(per_call) {
        let call_groups: std::collections::HashSet<String> =
            call.iter().map(|m| m.group_id()).collect();
        let fits =
            waves.last().is_some_and(|w| w.len() < per_wave) && groups.is_disjoint(&call_groups);
        if !fits {
            waves.push(Vec::new());
            groups.clear();
        }
        groups.extend(call_groups);
        waves.last_mut().expect("pushed above").push(call);
    }
    waves
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

#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq_url: Option<String>,
    recreate: Option<RecreateQueues>,
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

    /// Sends transfer messages with `SendMessageBatch`, ten a call, several calls at once; one
    /// result per message, in order. Two calls that share a message group never run at once (a
    /// call waits for every earlier one of its groups), so a group's messages are queued in the
    /// order given: one payer's items keep their order. A call that fails as a whole fails each of
    /// its messages the same way (outcome unknown on a timeout or 5xx); an entry SQS reports failed
    /// was not sent.
    #[tracing::instrument(name = "sqs.send_batch", level = "debug", skip_all)]
    pub async fn send_transfers(
        &self,
        msgs: &[&TransferMessage],
    ) -> Vec<Result<String, QueueError>> {
        let mut results = Vec::with_capacity(msgs.len());
        for wave in send_waves(msgs, 10, 8) {
            let calls: Vec<_> = wave.iter().map(|c| self.send_chunk(c)).collect();
            results.extend(futures::future::join_all(calls).await.into_iter().flatten());
        }
        results
    }

    async fn send_chunk(&self, chunk: &[&TransferMessage]) -> Vec<Result<String, QueueError>> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(serde_json::to_string(m).expect("a message always serializes"))
                    .message_group_id(m.group_id())
                    .message_deduplication_id(m.deduplication_id())
                    .build()
            })
            .collect();
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                return chunk
                    .iter()
                    .map(|_| Err(QueueError::new(format!("batch entry: {e}"))))
                    .collect();
            }
        };
        // One attempt, as for a single send: the client's retry is the retry.
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let e = QueueError::from_sdk(e);
                return chunk.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let mut results: Vec<Result<String, QueueError>> = chunk
            .iter()
            .map(|_| Err(QueueError::unanswered()))
            .collect();
        for ok in out.successful() {
            if let Ok(i) = ok.id().parse::<usize>()
                && i < results.len()
            {
                results[i] = Ok(ok.message_id().to_string());
            }
        }
        for failed in out.failed() {
            if let Ok(i) = failed.id().parse::<usize>()
                && i < results.len()
            {
                results[i] = Err(QueueError::new(format!(
                    "SendMessageBatch refused the message: {} {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        results
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
        self.send_message(body, group_id, deduplication_id).await
    }

    /// Sends a body as it is with its message group and deduplication id (with the SDK's
    /// retries). Returns the message id.
    pub async fn send_message(
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

    /// Deletes the queue (what a local SQS server that restarted empty did to it). Tests only.
    #[cfg(feature = "testkit")]
    pub async fn delete_queue(&self) -> Result<(), QueueError> {
        self.client
            .delete_queue()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(QueueError::from_sdk)?;
        Ok(())
    }
}

#[cfg(test)]
mod send_order_tests {
    use super::*;
    use crate::transfers::{IdempotencyKey, TransferInput};

    fn msg(key: usize, source: &str) -> TransferMessage {
        let input: TransferInput = serde_json::from_value(serde_json::json!({
            "source_account_id": source, "destination_account_id": "x", "amount": "1", "currency": "USD"
        }))
        .unwrap();
        let t = input
            .validate(None, rust_decimal::Decimal::from(10))
            .unwrap();
        TransferMessage::new(
            "c",
            &IdempotencyKey::parse(&format!("k{key}"), "k").unwrap(),
            t,
        )
    }

    #[test]
    fn calls_sharing_a_group_never_run_at_once() {
        // 30 messages from one payer: three calls, one after another.
        let one: Vec<TransferMessage> = (0..30).map(|i| msg(i, "payer")).collect();
        let refs: Vec<&TransferMessage> = one.iter().collect();
        let waves = send_waves(&refs, 10, 8);
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
        // 100 messages from 100 payers: ten calls, eight at once, then two.
        let many: Vec<TransferMessage> = (0..100).map(|i| msg(i, &format!("p{i}"))).collect();
        let refs: Vec<&TransferMessage> = many.iter().collect();
        let waves = send_waves(&refs, 10, 8);
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [8, 2]);
        // Order is kept: flattening the waves gives the messages as given.
        let flat: Vec<&TransferMessage> = waves.into_iter().flatten().flatten().copied().collect();
        assert!(flat.iter().zip(&refs).all(|(a, b)| std::ptr::eq(*a, *b)));
    }
}
