//! Holds, captures, voids and refunds at intake: read what the request acts on, check it with the
//! pure rules (so a client hears 404 / 409 at once), build the transaction and accept it through
//! the one intake path. Posting decides again under its locks: these checks only answer early.
//! Also the sweep that expires holds.

use chrono::Utc;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::intake::{self, Intake, IntakeError};
use crate::accounts::AccountId;
use crate::clients::Clients;
use crate::ledger::FailureCode;
use crate::money::{Currency, Money};
use crate::store::holds::{self, HoldRecord};
use crate::store::{StoreError, intake as intake_store, transactions as tx_store};
use crate::transfers::{
    IdempotencyKey, Operation, RefundRefusal, RefundRequest, Transfer, TransferDraft, refund_legs,
};
use crate::validation::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum MovementError {
    /// No such hold for this client (or it is still queued, or was refused).
    #[error("hold not found")]
    HoldNotFound,
    /// No such recorded transaction for this client (or it is still queued).
    #[error("transaction not found")]
    TransactionNotFound,
    /// The hold or original does not allow it now (409, the code says why).
    #[error("{}", .0.as_str())]
    Conflict(FailureCode),
    /// The request itself is wrong (422).
    #[error(transparent)]
    Invalid(ValidationError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ValidationError> for MovementError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

/// Extra fields a refund carries like a transfer.
#[derive(Clone, Debug, Default)]
pub struct Texts {
    pub reference: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Captures `amount` (`None`: what remains) of the client's hold.
pub async fn capture(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    hold_id: Uuid,
    amount: Option<Decimal>,
) -> Result<Intake, MovementError> {
    let hold = find_hold(clients, client_id, hold_id).await?;
    let currency = stored_currency(&hold.state.currency)?;
    let max = clients.config.max_transfer_amount;
    let amount = amount
        .map(|a| Money::positive(a, currency, max, "amount").map(|m| m.amount()))
        .transpose()?;
    if key_is_new(clients, client_id, key).await? {
        hold.state
            .capture_at(amount, Utc::now())
            .map_err(MovementError::Conflict)?;
    }
    let transfer = hold_transfer(&hold, amount.unwrap_or(hold.state.amount), currency, max)?
        .with_operation(Operation::Capture {
            hold_id,
            remaining: amount.is_none(),
        });
    Ok(intake::accept(clients, client_id, key, transfer).await?)
}

/// Voids the client's hold: what remains of it is released.
pub async fn void(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    hold_id: Uuid,
) -> Result<Intake, MovementError> {
    let hold = find_hold(clients, client_id, hold_id).await?;
    let currency = stored_currency(&hold.state.currency)?;
    if key_is_new(clients, client_id, key).await? {
        hold.state
            .open_at(Utc::now())
            .map_err(MovementError::Conflict)?;
    }
    let max = clients.config.max_transfer_amount;
    let transfer = hold_transfer(&hold, hold.state.amount, currency, max)?
        .with_operation(Operation::Void { hold_id });
    Ok(intake::accept(clients, client_id, key, transfer).await?)
}

/// Refunds (part of) the client's posted transaction `of`.
pub async fn refund(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    of: Uuid,
    request: &RefundRequest,
    texts: Texts,
) -> Result<Intake, MovementError> {
    let mut originals = tx_store::refundable_legs(&clients.db, client_id, of).await?;
    if originals.is_empty()
        && tx_store::find_by_id(&clients.db, client_id, of)
            .await?
            .is_none()
    {
        return Err(MovementError::TransactionNotFound);
    }
    if !key_is_new(clients, client_id, key).await? {
        // A retry: build the same request whatever was refunded since (intake then replays it,
        // or answers that the key was used for another request).
        for o in &mut originals {
            o.refunded = Decimal::ZERO;
        }
    }
    let max = clients.config.max_transfer_amount;
    let (legs, operation) = refund_legs(of, &originals, request, max).map_err(|r| match r {
        RefundRefusal::Invalid(e) => MovementError::Invalid(e),
        RefundRefusal::Conflict(code) => MovementError::Conflict(code),
    })?;
    let mut legs = legs.into_iter();
    let first = legs.next().expect("a refund has a leg");
    let transfer = TransferDraft {
        source_account_id: first.source_account_id.into_string(),
        destination_account_id: first.destination_account_id.into_string(),
        amount: first.amount,
        currency: first.currency,
        reference: texts.reference,
        description: texts.description,
        metadata: texts.metadata,
    }
    .validate(max)?
    .with_more_legs(legs.collect())
    .with_operation(operation);
    Ok(intake::accept(clients, client_id, key, transfer).await?)
}

/// Places a hold (the transfer already carries `Operation::Hold`).
pub async fn hold(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
    transfer: Transfer,
) -> Result<Intake, MovementError> {
    Ok(intake::accept(clients, client_id, key, transfer).await?)
}

/// Expires every hold past its expiry (the scheduled sweep; posting also expires the holds of the
/// accounts it touches). Returns how many holds it expired.
pub async fn expire_holds(clients: &Clients) -> Result<u64, StoreError> {
    let mut total = 0;
    // Bounded: 1,000 rounds of 50 accounts (one short transaction each) per invocation; the next
    // minute takes the rest.
    for _ in 0..1_000 {
        let n = holds::expire_due(&clients.db, 50).await?;
        total += n;
        if n == 0 {
            break;
        }
    }
    Ok(total)
}

async fn find_hold(
    clients: &Clients,
    client_id: &str,
    id: Uuid,
) -> Result<HoldRecord, MovementError> {
    holds::get(&clients.db, client_id, id)
        .await?
        .ok_or(MovementError::HoldNotFound)
}

/// A capture or void: the hold's leg with `amount`.
fn hold_transfer(
    hold: &HoldRecord,
    amount: Decimal,
    currency: Currency,
    max: Decimal,
) -> Result<Transfer, MovementError> {
    Ok(TransferDraft {
        source_account_id: hold.state.source_account_id.clone(),
        destination_account_id: hold.state.destination_account_id.clone(),
        amount,
        currency,
        reference: None,
        description: None,
        metadata: None,
    }
    .validate(max)?)
}

fn stored_currency(code: &str) -> Result<Currency, MovementError> {
    Currency::parse(code).map_err(|e| MovementError::Store(StoreError::Decode(e.detail)))
}

/// Whether no request was ever accepted under this key (then the early checks apply; a retry is
/// answered by intake whatever the hold or original has become since).
async fn key_is_new(
    clients: &Clients,
    client_id: &str,
    key: &IdempotencyKey,
) -> Result<bool, MovementError> {
    Ok(!intake_store::key_in_use(&clients.db, client_id, key.as_str()).await?)
}

/// The funding account of a refund request, as an account id.
pub fn funding_account(id: Option<&str>) -> Result<Option<AccountId>, ValidationError> {
    id.map(|id| AccountId::parse(id, "fundingAccountId"))
        .transpose()
}
