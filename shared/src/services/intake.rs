//! Accepting a transfer: reserve the client's key in Redis, record the request durably in
//! PostgreSQL, put the message on the FIFO queue, confirm the accepted response. The one path every
//! transfer takes into the ledger (client requests and the reconciliation's adjusting transfers).
//!
//! Every answer stays true under faults:
//! - Redis lost the key: the durable record decides (another body: `KeyReused`; the same body: the
//!   same transaction id, sent again).
//! - Redis took a reservation but its reply was lost, or an earlier attempt died mid-way: the same
//!   body resumes that reservation instead of waiting for it to expire.
//! - SQS's answer was lost (timeout, 5xx, dropped connection): the reservation and the record are
//!   kept and the client is told the outcome is unknown; a retry with the same key sends again with
//!   the same deduplication id and transaction id, so the transfer posts once either way.
//! - SQS refused the message outright: nothing is on the queue; the reservation and the record are
//!   released, so the key is free.

use chrono::Utc;

use crate::clients::Clients;
use crate::idempotency::{CacheError, Reservation, ReservationToken};
use crate::queue::QueueError;
use crate::store::StoreError;
use crate::store::intake::{self as intake_store, Recorded};
use crate::transfers::{Accepted, IdempotencyKey, Transfer, TransferMessage};

#[derive(Debug)]
pub enum Intake {
    /// Queued now.
    Accepted(Accepted),
    /// The same request was accepted before: its original response (or, when Redis no longer had
    /// it, the same transfer sent again under the same transaction id).
    Replayed(Accepted),
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Another request with this key is still being accepted (retryable).
    #[error("a request with this idempotency key is still being accepted")]
    InProgress,
    /// The key was used for a different request.
    #[error("this idempotency key was already used for a different request")]
    KeyReused,
    /// Redis is unreachable: nothing was enqueued.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// PostgreSQL is unreachable: nothing was enqueued.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQS refused the message: nothing was enqueued and the key is free.
    #[error(transparent)]
    Queue(QueueError),
    /// The send's outcome is unknown: the message may be on the queue. Retrying with the same key
    /// (and the same body) is safe and settles it.
    #[error("the send's outcome is unknown: {error}")]
    OutcomeUnknown {
        /// The transaction the retry will carry (the same one).
        transaction_id: uuid::Uuid,
        error: QueueError,
    },
}

/// Accepts `transfer` for `client_id` under `key`, exactly once per (client, key, request).
pub async fn accept(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    transfer: Transfer,
) -> Result<Intake, IntakeError> {
    let mut message = TransferMessage::new(client_id, key, transfer);
    let token = match clients
        .cache
        .reserve(client_id, key.as_str(), &message.request_hash)
        .await?
    {
        Reservation::Reserved(token) | Reservation::Resume(token) => token,
        Reservation::Replay(accepted) => {
            tracing::info!(idempotency_key = key.as_str(), "replayed accepted transfer");
            return Ok(Intake::Replayed(accepted));
        }
        Reservation::InProgress => return Err(IntakeError::InProgress),
        Reservation::KeyReused => return Err(IntakeError::KeyReused),
    };

    // The durable record: Redis may have lost an earlier acceptance of this key.
    let recorded = intake_store::record(
        &clients.db,
        client_id,
        key.as_str(),
        &message.request_hash,
        message.transaction_id,
        message.accepted_at,
    )
    .await;
    let first_time = match recorded {
        Ok(Recorded::New) => true,
        Ok(Recorded::Existing(prior)) if prior.request_hash == message.request_hash => {
            // The same request again: the same transaction, sent again (harmless: the same
            // deduplication id, and the ledger records a key once).
            message.transaction_id = prior.transaction_id;
            message.accepted_at = prior.accepted_at;
            false
        }
        Ok(Recorded::Existing(_)) => {
            release(clients, token).await;
            return Err(IntakeError::KeyReused);
        }
        Ok(Recorded::Concurrent) => {
            release(clients, token).await;
            return Err(IntakeError::InProgress);
        }
        Err(e) => {
            release(clients, token).await;
            return Err(e.into());
        }
    };

    let message_id = match clients.queue.send_transfer(&message).await {
        Ok(id) => id,
        Err(e) if e.outcome_unknown() => {
            // Keep the reservation and the record: a retry resumes them and sends again.
            mark_unknown(clients, client_id, key, true).await;
            if let Err(keep) = clients.cache.keep_unknown(token).await {
                tracing::warn!(error = %keep, "could not keep the reservation; the durable record still binds the key");
            }
            tracing::warn!(idempotency_key = key.as_str(), transaction_id = %message.transaction_id, error = %e, "send outcome unknown");
            return Err(IntakeError::OutcomeUnknown {
                transaction_id: message.transaction_id,
                error: e,
            });
        }
        Err(e) if !first_time => {
            // Refused now, but an earlier attempt of this request may be on the queue: still
            // unknown, and the reservation and the record stay.
            tracing::warn!(idempotency_key = key.as_str(), transaction_id = %message.transaction_id, error = %e, "resend refused; an earlier send's outcome is still unknown");
            return Err(IntakeError::OutcomeUnknown {
                transaction_id: message.transaction_id,
                error: e,
            });
        }
        Err(e) => {
            if let Err(forget) =
                intake_store::forget(&clients.db, client_id, key.as_str(), message.transaction_id)
                    .await
            {
                // The key stays bound to this body: a retry with it is still accepted.
                tracing::warn!(error = %forget, "could not forget a request SQS refused");
            }
            release(clients, token).await;
            return Err(IntakeError::Queue(e));
        }
    };
    if !first_time {
        // This send was answered: whatever an earlier one did, the transfer is on the queue.
        mark_unknown(clients, client_id, key, false).await;
    }
    let accepted = Accepted {
        idempotency_key: key.as_str().to_string(),
        transaction_id: message.transaction_id,
        message_id,
        accepted_at: message.accepted_at,
        expires_at: Utc::now() + clients.cache.ttl(),
    };
    if let Err(e) = clients.cache.confirm(token, &accepted).await {
        // The message is queued and will post once; the durable record answers retries.
        tracing::warn!(error = %e, "could not record the accepted response");
    }
    tracing::info!(
        idempotency_key = key.as_str(),
        message_id = %accepted.message_id,
        transaction_id = %accepted.transaction_id,
        first_time,
        "transfer accepted"
    );
    Ok(if first_time {
        Intake::Accepted(accepted)
    } else {
        Intake::Replayed(accepted)
    })
}

/// Best effort: the status route then says UNKNOWN (or PENDING again) for the key.
async fn mark_unknown(clients: &Clients, client_id: &str, key: &IdempotencyKey, unknown: bool) {
    if let Err(e) =
        intake_store::set_outcome_unknown(&clients.db, client_id, key.as_str(), unknown).await
    {
        tracing::warn!(error = %e, "could not record the send's outcome on the intake record");
    }
}

async fn release(clients: &Clients, token: ReservationToken) {
    if let Err(e) = clients.cache.release(token).await {
        tracing::warn!(error = %e, "could not release a reservation");
    }
}
