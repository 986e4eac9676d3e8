//! SQS FIFO batch -> ledger. One invocation posts its batch in one database transaction and reports
//! partial batch failures with the FIFO rule: once a message fails, it and every later message of
//! the batch are reported, so SQS redelivers them in order.

pub mod dead_letters;

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::clients::Clients;
use shared::idempotency::CachedStatus;
use shared::ledger::Outcome;
use shared::metrics::Metrics;
use shared::store::posting;
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

    let (outcomes, posted_until) = post_messages(clients, &messages, &mut metrics).await;
    if posted_until < messages.len() {
        // The database failed, not the messages: wait before the next delivery instead of spending
        // the queue's receives (a short outage must dead-letter nothing).
        delay_retries(clients, &records[posted_until..], &mut metrics).await;
    }
    fail_from = fail_from.min(posted_until);
    let mut statuses = Vec::with_capacity(outcomes.len());
    for (m, outcome) in messages.iter().zip(&outcomes) {
        record_outcome(m, outcome, &mut metrics);
        let (status, failure_code) = outcome.status();
        statuses.push((
            m.client_id.as_str(),
            m.idempotency_key.as_str(),
            CachedStatus {
                status: status.to_string(),
                transaction_id: outcome.transaction_id(),
                failure_code: failure_code.map(str::to_string),
            },
        ));
    }
    // Best effort: PostgreSQL is the truth; the cache only serves status reads when it is down.
    if !statuses.is_empty()
        && let Err(e) = clients.cache.cache_statuses(&statuses).await
    {
        tracing::warn!(error = %e, "could not cache transfer statuses");
    }

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

/// Posts the batch in one transaction. When PostgreSQL refuses a message's content (SQLSTATE class
/// 22 or 23: one client's bad data, not an outage), the batch is posted again message by message in
/// order, and each refused message is recorded FAILED `refused_by_database` on its own, so one
/// client's message never holds up the others. Returns the outcomes of the messages that were
/// settled, and the index of the first one that was not (every one from there is retried).
async fn post_messages(
    clients: &Clients,
    messages: &[TransferMessage],
    metrics: &mut Metrics,
) -> (Vec<Outcome>, usize) {
    let e = match posting::post_batch(&clients.db, messages).await {
        Ok(outcomes) => return (outcomes, messages.len()),
        Err(e) => e,
    };
    if !e.is_refused_content() {
        tracing::error!(error = %e, messages = messages.len(), "batch not posted; every message will be retried");
        metrics.count("BatchErrors", 1);
        return (Vec::new(), 0);
    }
    tracing::warn!(error = %e, messages = messages.len(), "the database refused a message's content; posting the batch one message at a time");
    metrics.count("RefusedBatches", 1);
    let mut outcomes = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let single = std::slice::from_ref(m);
        let outcome = match posting::post_batch(&clients.db, single).await {
            Ok(mut o) => Ok(o.remove(0)),
            Err(e) if e.is_refused_content() => {
                tracing::warn!(idempotency_key = m.idempotency_key.as_str(), error = %e, "content refused by the database; recording the transfer as FAILED");
                posting::record_refused(&clients.db, m).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                tracing::error!(idempotency_key = m.idempotency_key.as_str(), error = %e, "message not settled; it and the ones after it will be retried");
                metrics.count("BatchErrors", 1);
                return (outcomes, i);
            }
        }
    }
    (outcomes, messages.len())
}

fn record_outcome(m: &TransferMessage, outcome: &Outcome, metrics: &mut Metrics) {
    let key = m.idempotency_key.as_str();
    match outcome {
        Outcome::Posted { transaction_id } => {
            metrics.count("Posted", 1);
            tracing::info!(idempotency_key = key, %transaction_id, "posted");
        }
        Outcome::Rejected {
            transaction_id,
            code,
        } => {
            metrics.count_by("Failed", "Code", code.as_str(), 1);
            tracing::info!(idempotency_key = key, %transaction_id, failure_code = code.as_str(), "rejected");
        }
        Outcome::AlreadyRecorded {
            transaction_id,
            request_matches,
            ..
        } => {
            metrics.count("AlreadyRecorded", 1);
            if *request_matches {
                tracing::info!(idempotency_key = key, %transaction_id, "already recorded; not posted again");
            } else {
                tracing::warn!(idempotency_key = key, %transaction_id, "key already recorded for a different request; ignored");
            }
        }
    }
}
