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
use crate::store::intake::{self as intake_store, NewRequest, Recorded};
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
    match prepare(clients, client_id, key.clone(), transfer).await? {
        Prepared::Done(intake) => Ok(intake),
        Prepared::Ready(ready) => {
            let sent = clients.queue.send_transfer(&ready.message).await;
            finish(clients, *ready, sent).await
        }
    }
}

/// How many items of one bulk call are reserved in Redis (and answered) at once.
const BULK_CONCURRENCY: usize = 64;

/// Accepts many transfers for `client_id`, each under its own key, with the same guarantees as
/// [`accept`] item by item: the Redis reservations first (pipelined), then the durable records in
/// one statement, then SQS batch sends (ten messages a call), then each item's answer. One result per item, in order. The caller
/// makes sure no two items share a key.
pub async fn accept_many(
    clients: &Clients,
    client_id: &str,
    items: Vec<(IdempotencyKey, Transfer)>,
) -> Vec<Result<Intake, IntakeError>> {
    // 1. Reservations in Redis, a wave at a time (pipelined on one connection).
    let mut reserved = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let wave: Vec<_> = items
            .by_ref()
            .take(BULK_CONCURRENCY)
            .map(|(key, transfer)| reserve(clients, client_id, key, transfer))
            .collect();
        reserved.extend(futures::future::join_all(wave).await);
    }
    // 2. The durable records of the reserved ones, in one statement.
    let requests: Vec<NewRequest> = reserved
        .iter()
        .filter_map(|r| match r {
            Ok(Reserved::Ready(ready)) => Some((
                ready.1.as_str(),
                ready.0.request_hash.as_str(),
                ready.0.transaction_id,
                ready.0.accepted_at,
            )),
            _ => None,
        })
        .collect();
    let records = intake_store::record_many(&clients.db, client_id, &requests).await;
    let mut records = match records {
        Ok(r) => r.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => {
            let detail = e.to_string();
            requests
                .iter()
                .map(|_| Err(StoreError::Conflict(detail.clone())))
                .collect()
        }
    }
    .into_iter();
    let mut prepared = Vec::with_capacity(reserved.len());
    for r in reserved {
        prepared.push(match r {
            Err(e) => Err(e),
            Ok(Reserved::Done(intake)) => Ok(Prepared::Done(intake)),
            Ok(Reserved::Ready(ready)) => {
                let (message, key, token) = *ready;
                let recorded = records
                    .next()
                    .unwrap_or_else(|| Err(StoreError::Conflict("no record answer".into())));
                bind(clients, message, key, token, recorded).await
            }
        });
    }
    let to_send: Vec<&TransferMessage> = prepared
        .iter()
        .filter_map(|p| match p {
            Ok(Prepared::Ready(r)) => Some(&r.message),
            _ => None,
        })
        .collect();
    let mut sent = clients.queue.send_transfers(&to_send).await.into_iter();
    let mut pending = Vec::with_capacity(prepared.len());
    for p in prepared {
        // In order: the n-th ready item takes the n-th send result.
        let send = match &p {
            Ok(Prepared::Ready(_)) => {
                Some(sent.next().unwrap_or_else(|| Err(QueueError::unanswered())))
            }
            _ => None,
        };
        pending.push((p, send));
    }
    let mut results = Vec::with_capacity(pending.len());
    let mut pending = pending.into_iter().peekable();
    while pending.peek().is_some() {
        let wave: Vec<_> = pending
            .by_ref()
            .take(BULK_CONCURRENCY)
            .map(|(p, send)| settle(clients, p, send))
            .collect();
        results.extend(futures::future::join_all(wave).await);
    }
    results
}

/// One bulk item's answer once its send (if any) is known.
async fn settle(
    clients: &Clients,
    prepared: Result<Prepared, IntakeError>,
    sent: Option<Result<String, QueueError>>,
) -> Result<Intake, IntakeError> {
    match (prepared?, sent) {
        (Prepared::Done(intake), _) => Ok(intake),
        (Prepared::Ready(ready), sent) => {
            let sent = sent.unwrap_or_else(|| Err(QueueError::unanswered()));
            finish(clients, *ready, sent).await
        }
    }
}

/// A request reserved in Redis and recorded durably, ready to be sent.
#[derive(Debug)]
struct Ready {
    message: TransferMessage,
    key: IdempotencyKey,
    token: ReservationToken,
    /// Whether this request is new (not an earlier acceptance sent again).
    first_time: bool,
}

#[derive(Debug)]
enum Prepared {
    /// Answered already: Redis replayed the original response.
    Done(Intake),
    Ready(Box<Ready>),
}

/// Reserves the key in Redis and records the request in PostgreSQL.
async fn prepare(
    clients: &Clients,
    client_id: &str,
    key: IdempotencyKey,
    transfer: Transfer,
) -> Result<Prepared, IntakeError> {
    match reserve(clients, client_id, key, transfer).await? {
        Reserved::Done(intake) => Ok(Prepared::Done(intake)),
        Reserved::Ready(ready) => {
            let (message, key, token) = *ready;
            let recorded = intake_store::record(
                &clients.db,
                client_id,
                key.as_str(),
                &message.request_hash,
                message.transaction_id,
                message.accepted_at,
            )
            .await;
            bind(clients, message, key, token, recorded).await
        }
    }
}

/// What reserving a key in Redis found.
enum Reserved {
    /// Answered already: Redis replayed the original response.
    Done(Intake),
    /// The key is ours (or resumed): record it, then send.
    Ready(Box<(TransferMessage, IdempotencyKey, ReservationToken)>),
}

async fn reserve(
    clients: &Clients,
    client_id: &str,
    key: IdempotencyKey,
    transfer: Transfer,
) -> Result<Reserved, IntakeError> {
    let message = TransferMessage::new(client_id, &key, transfer);
    match clients
        .cache
        .reserve(client_id, key.as_str(), &message.request_hash)
        .await?
    {
        Reservation::Reserved(token) | Reservation::Resume(token) => {
            Ok(Reserved::Ready(Box::new((message, key, token))))
        }
        Reservation::Replay(accepted) => {
            tracing::info!(idempotency_key = key.as_str(), "replayed accepted transfer");
            Ok(Reserved::Done(Intake::Replayed(accepted)))
        }
        Reservation::InProgress => Err(IntakeError::InProgress),
        Reservation::KeyReused => Err(IntakeError::KeyReused),
    }
}

/// Binds a reserved request to what the durable record found: Redis may have lost an earlier
/// acceptance of this key.
async fn bind(
    clients: &Clients,
    mut message: TransferMessage,
    key: IdempotencyKey,
    token: ReservationToken,
    recorded: Result<Recorded, StoreError>,
) -> Result<Prepared, IntakeError> {
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
    Ok(Prepared::Ready(Box::new(Ready {
        message,
        key,
        token,
        first_time,
    })))
}

/// Settles a prepared request after its send: confirmed and answered, kept (outcome unknown), or
/// released (refused).
async fn finish(
    clients: &Clients,
    ready: Ready,
    sent: Result<String, QueueError>,
) -> Result<Intake, IntakeError> {
    let Ready {
        message,
        key,
        token,
        first_time,
    } = ready;
    let client_id = message.client_id.as_str();
    let key = &key;
    let message_id = match sent {
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
