//! Accepting a transfer: reserve the client's key in Redis, put the message on the FIFO queue,
//! record the accepted response. The one path every transfer takes into the ledger (client
//! requests and the reconciliation's adjusting transfers alike).

use chrono::Utc;

use crate::clients::Clients;
use crate::idempotency::{Accepted, CacheError, Reservation};
use crate::queue::QueueError;
use crate::transfers::{IdempotencyKey, Transfer, TransferMessage};

#[derive(Debug)]
pub enum Intake {
    /// Queued now.
    Accepted(Accepted),
    /// The same request was accepted before: its original response.
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
    /// SQS refused the message: the reservation was released, nothing was enqueued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Accepts `transfer` for `client_id` under `key`, exactly once per (client, key, request).
pub async fn accept(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    transfer: Transfer,
) -> Result<Intake, IntakeError> {
    let message = TransferMessage::new(client_id, key, transfer);
    let token = match clients
        .cache
        .reserve(client_id, key.as_str(), &message.request_hash)
        .await?
    {
        Reservation::Reserved(token) => token,
        Reservation::Replay(accepted) => {
            tracing::info!(idempotency_key = key.as_str(), "replayed accepted transfer");
            return Ok(Intake::Replayed(accepted));
        }
        Reservation::InProgress => return Err(IntakeError::InProgress),
        Reservation::KeyReused => return Err(IntakeError::KeyReused),
    };
    let message_id = match clients.queue.send_transfer(&message).await {
        Ok(id) => id,
        Err(e) => {
            if let Err(release) = clients.cache.release(token).await {
                tracing::warn!(error = %release, "could not release reservation after a failed send");
            }
            return Err(e.into());
        }
    };
    let accepted = Accepted {
        idempotency_key: key.as_str().to_string(),
        transaction_id: message.transaction_id,
        message_id,
        accepted_at: message.accepted_at,
        expires_at: Utc::now() + clients.cache.ttl(),
    };
    if let Err(e) = clients.cache.confirm(token, &accepted).await {
        // The message is queued and will post once; only a replay's messageId is at risk.
        tracing::warn!(error = %e, "could not record the accepted response");
    }
    tracing::info!(
        idempotency_key = key.as_str(),
        message_id = %accepted.message_id,
        transaction_id = %accepted.transaction_id,
        "transfer accepted"
    );
    Ok(Intake::Accepted(accepted))
}
