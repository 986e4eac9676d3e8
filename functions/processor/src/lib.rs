//! SQS FIFO batch -> ledger. One invocation parses its records, posts them in one database
//! transaction (`services::posting`) and reports partial batch failures with the FIFO rule: once a
//! message fails, it and every later message of the batch are reported, so SQS redelivers them in
//! order.

pub mod dead_letters;

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::clients::Clients;
use shared::metrics::Metrics;
use shared::services::posting;
use shared::transfers::TransferMessage;

/// Handles one batch as Lambda's SQS event source mapping delivers it.
pub async fn handle_batch(clients: &Clients, event: SqsEvent) -> SqsBatchResponse {
    let started = Instant::now();
    let mut metrics = Metrics::new("processor");
    let records = event.records;

    // Parse in order; the first malformed body ends the batch (it goes to the DLQ after
    // maxReceiveCount; the ones after it are retried behind it).
    let mut messages = Vec::with_capacity(records.len());
    let mut fail_from = records.len();
    for (i, record) in records.iter().enumerate() {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match record.body.as_deref().map(TransferMessage::parse) {
            Some(Ok(m)) => messages.push(m),
            Some(Err(reason)) => {
                tracing::error!(message_id, %reason, "malformed message; left for the dead-letter queue");
                metrics.count("Malformed", 1);
                fail_from = i;
                break;
            }
            None => {
                tracing::error!(
                    message_id,
                    "message without a body; left for the dead-letter queue"
                );
                metrics.count("Malformed", 1);
                fail_from = i;
                break;
            }
        }
    }

    let (_, posted_until) = posting::post_and_cache(clients, &messages, &mut metrics).await;
    if posted_until < messages.len() {
        // The database failed, not the messages: wait before the next delivery instead of spending
        // the queue's receives (a short outage must dead-letter nothing).
        delay_retries(clients, &records[posted_until..], &mut metrics).await;
    }
    fail_from = fail_from.min(posted_until);

    let mut response = SqsBatchResponse::default();
    for record in &records[fail_from..] {
        response.add_failure(record.message_id.clone().unwrap_or_default());
    }
    metrics.count("Retried", (records.len() - fail_from) as u64);
    metrics.millis("BatchLatency", started.elapsed().as_secs_f64() * 1000.0);
    metrics.flush();
    response
}

/// Raises the visibility of messages that failed on a transient error to the backoff for their
/// receive count (`RETRY_BACKOFF_*`). Best effort: if SQS refuses, the queue's own visibility
/// timeout applies.
async fn delay_retries(clients: &Clients, records: &[SqsMessage], metrics: &mut Metrics) {
    let backoff = clients.config.retry_backoff;
    let entries: Vec<(String, String, std::time::Duration)> = records
        .iter()
        .filter_map(|r| {
            let receives = r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            Some((
                r.message_id.clone()?,
                r.receipt_handle.clone()?,
                backoff.delay(receives),
            ))
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    match clients.queue.delay_retries(&entries).await {
        Ok(()) => {
            metrics.count("DelayedRetries", entries.len() as u64);
            tracing::info!(
                messages = entries.len(),
                delay_secs = entries[0].2.as_secs(),
                "retries delayed"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not delay retries; the queue's visibility timeout applies")
        }
    }
}
