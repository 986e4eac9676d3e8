//! Posting a batch of transfer messages: the whole batch in one database transaction (the pure
//! `ledger::plan_batch` decides, `store::posting` writes), message by message when PostgreSQL
//! refuses one message's content, then the statuses into the Redis cache (best effort). The
//! processor function parses the SQS records and answers partial batch failures around this.

use crate::clients::Clients;
use crate::idempotency::CachedStatus;
use crate::ledger::Outcome;
use crate::metrics::Metrics;
use crate::store::posting;
use crate::transfers::TransferMessage;

/// Posts `messages` in order and caches their statuses. Returns the outcomes of the messages that
/// were settled, and the index of the first one that was not (every one from there must be
/// retried: the database failed, not the messages).
pub async fn post_and_cache(
    clients: &Clients,
    messages: &[TransferMessage],
    metrics: &mut Metrics,
) -> (Vec<Outcome>, usize) {
    let (outcomes, settled) = post_messages(clients, messages, metrics).await;
    let mut statuses = Vec::with_capacity(outcomes.len());
    for (m, outcome) in messages.iter().zip(&outcomes) {
        record_outcome(m, outcome, metrics);
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
    (outcomes, settled)
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
