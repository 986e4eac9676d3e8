//! Resolving discrepancies: by hand (a status change with a note), with an adjusting transfer
//! against a suspense account, or by redriving a dead-lettered transfer. Sequences the workflow
//! rules (`reconcile::workflow`), the store and intake; the HTTP API validates the request and
//! answers what this returns.

use serde_json::{Value, json};
use uuid::Uuid;

use super::intake::{self, Intake, IntakeError};
use crate::clients::Clients;
use crate::dead_letters::{RedriveCheck, redrive_deduplication_id};
use crate::money::{Currency, format_amount};
use crate::queue::QueueError;
use crate::reconcile::discrepancies::{AdjustmentStart, StatusChange, StoredDiscrepancy};
use crate::reconcile::findings::FindingKind;
use crate::reconcile::workflow::{self, AdjustedAccount, DiscrepancyStatus};
use crate::store::{self, StoreError};
use crate::transfers::{IdempotencyKey, Transfer, TransferDraft};

/// What a resolution does besides changing the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the client says what happened in the note.
    None,
    /// Post an adjusting transfer against a suspense account (the client's default when `None`).
    Adjust { suspense_account_id: Option<String> },
    /// Re-send a dead-lettered transfer from its record.
    Redrive,
}

/// Something sent before the failure that followed it: the answer must not claim nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The adjusting transfer was queued.
    Adjustment,
    /// The dead letter was redriven.
    Redrive,
}

/// Why a resolution did not (fully) happen. Each says whether anything changed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The client has no such discrepancy.
    #[error("no discrepancy {0}")]
    NotFound(Uuid),
    /// The workflow does not allow the change from `from`.
    #[error("a discrepancy that is {from} cannot become {to}")]
    Refused {
        from: DiscrepancyStatus,
        to: DiscrepancyStatus,
    },
    /// No adjusting transfer can answer it (`reason`: the transfer rule it would break).
    #[error("{detail}")]
    NotAdjustable {
        detail: String,
        reason: Option<&'static str>,
    },
    /// The discrepancy's account is not the client's (any more).
    #[error("no account {0}")]
    AccountNotFound(String),
    /// The suspense account is missing or in another currency.
    #[error("{0}")]
    SuspenseUnusable(String),
    /// An adjusting transfer against another suspense account is waiting for its outcome.
    #[error("an adjusting transfer against {0} is waiting to post for this discrepancy")]
    AdjustmentInProgress(String),
    /// Only a dead-lettered, well-formed transfer can be redriven.
    #[error("only a dead-lettered, well-formed transfer can be redriven")]
    NotRedrivable,
    /// The letter was redriven already, its transfer posted, or it is not recorded.
    #[error("{0}")]
    DeadLetterGone(String),
    /// PostgreSQL failed before anything changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Intake refused or could not tell the adjusting transfer's fate.
    #[error(transparent)]
    Intake(IntakeError),
    /// The queue refused the redrive (nothing sent) or did not answer (it may have been sent).
    #[error(transparent)]
    Redrive(QueueError),
    /// Sent, but recording it failed: resolving again with the same request resumes it safely.
    #[error("{sent:?} sent, but recording it failed: {error}")]
    NotRecorded { sent: Sent, error: StoreError },
}

/// Resolves `d` (as the client loaded it) to `to` with `action`. An adjustment leaves it
/// ADJUSTING (RESOLVED once its transfer posts); otherwise it is `to` when this returns.
pub async fn resolve(
    clients: &Clients,
    client: &str,
    d: &StoredDiscrepancy,
    to: DiscrepancyStatus,
    action: Action,
    note: Option<&str>,
) -> Result<(), ResolveError> {
    let redriven = match action {
        Action::Adjust {
            suspense_account_id,
        } => return adjust(clients, client, d, suspense_account_id, note).await,
        Action::None => None,
        Action::Redrive => {
            if !to.reachable_from(d.status) {
                return Err(ResolveError::Refused { from: d.status, to });
            }
            Some(redrive(clients, d).await?)
        }
    };
    change_status(clients, client, d.id, to, note, redriven.as_ref()).await
}

/// Moves the discrepancy to `to` by hand (no action), as bulk resolution does: what happened is
/// the answer, per discrepancy.
pub async fn set_status(
    clients: &Clients,
    client: &str,
    id: Uuid,
    to: DiscrepancyStatus,
    note: Option<&str>,
) -> Result<StatusChange, StoreError> {
    store::discrepancies::set_status(&clients.db, client, id, to, note, None, None).await
}

/// Moves the discrepancy to `to`, recording `resolution` (what was done) with it.
async fn change_status(
    clients: &Clients,
    client: &str,
    id: Uuid,
    to: DiscrepancyStatus,
    note: Option<&str>,
    resolution: Option<&Value>,
) -> Result<(), ResolveError> {
    let change =
        store::discrepancies::set_status(&clients.db, client, id, to, note, resolution, resolution)
            .await?;
    match change {
        StatusChange::Changed { .. } | StatusChange::Unchanged => Ok(()),
        StatusChange::NotFound => Err(ResolveError::NotFound(id)),
        StatusChange::Refused { from } => Err(ResolveError::Refused { from, to }),
    }
}

/// `action: adjust`: moves the discrepancy to ADJUSTING, then queues its adjusting transfer through
/// the normal intake path under a key no client can send (`transfers::adjustment_key`). The
/// processor makes it RESOLVED when the transfer posts, or OPEN again if it is rejected. While it
/// is ADJUSTING, adjusting again re-sends the same transfer under the same key (posted once).
async fn adjust(
    clients: &Clients,
    client: &str,
    d: &StoredDiscrepancy,
    suspense: Option<String>,
    note: Option<&str>,
) -> Result<(), ResolveError> {
    let adjusting = DiscrepancyStatus::Adjusting;
    if d.status != adjusting && !adjusting.reachable_from(d.status) {
        return Err(ResolveError::Refused {
            from: d.status,
            to: DiscrepancyStatus::Resolved,
        });
    }
    let in_flight_suspense = workflow::in_flight_suspense(d.status, d.resolution.as_ref());
    if let (Some(recorded), Some(asked)) = (&in_flight_suspense, &suspense)
        && recorded != asked
    {
        return Err(ResolveError::AdjustmentInProgress(recorded.clone()));
    }
    let (transfer, plan) =
        plan_adjustment(clients, client, d, in_flight_suspense.or(suspense)).await?;
    let start =
        store::discrepancies::begin_adjustment(&clients.db, client, d.id, note, &plan).await?;
    let (key, from) = match start {
        AdjustmentStart::NotFound => return Err(ResolveError::NotFound(d.id)),
        AdjustmentStart::Refused { from } => {
            return Err(ResolveError::Refused {
                from,
                to: DiscrepancyStatus::Resolved,
            });
        }
        AdjustmentStart::InFlight { resolution } => {
            let recorded = resolution.get("suspenseAccountId").and_then(Value::as_str);
            if recorded != plan["suspenseAccountId"].as_str() {
                return Err(ResolveError::AdjustmentInProgress(
                    recorded.unwrap_or("another account").to_string(),
                ));
            }
            let key = workflow::in_flight_key(&resolution, d.id).ok_or_else(|| {
                StoreError::Decode("the in-flight adjustment's resolution names no key".into())
            })?;
            (key, None)
        }
        AdjustmentStart::Started { from, key, .. } => (key, Some(from)),
    };
    let accepted = match intake::accept(clients, client, &key, transfer).await {
        Ok(Intake::Accepted(a) | Intake::Replayed(a)) => a,
        Err(e @ IntakeError::OutcomeUnknown { .. }) => {
            // The transfer may be on the queue: the discrepancy stays ADJUSTING (the processor
            // settles it when the transfer is decided; resolving again resumes the same key).
            return Err(ResolveError::Intake(e));
        }
        Err(e) => {
            // Nothing (known to be) queued: the discrepancy goes back where it was, with the reason.
            abandon(clients, client, d.id, &key, from, &e).await;
            return Err(match e {
                IntakeError::KeyReused => {
                    ResolveError::AdjustmentInProgress("another suspense account".into())
                }
                other => ResolveError::Intake(other),
            });
        }
    };
    let queued = json!({
        "idempotencyKey": accepted.idempotency_key,
        "transactionId": accepted.transaction_id,
        "messageId": accepted.message_id,
        "pollUrl": crate::transfers::status_path(&accepted.idempotency_key),
    });
    // From here the transfer is queued: a failure must not claim that nothing changed.
    let not_recorded = |error| ResolveError::NotRecorded {
        sent: Sent::Adjustment,
        error,
    };
    store::discrepancies::record_adjustment_accepted(&clients.db, d.id, &key, &queued)
        .await
        .map_err(not_recorded)?;
    // Already decided by the ledger (a retry after a send whose outcome was unknown)? Settle now.
    store::posting::settle_recorded_adjustment(&clients.db, client, key.as_str(), d.id)
        .await
        .map_err(not_recorded)?;
    Ok(())
}

/// Returns an adjustment's discrepancy to `from` (where it was) when its transfer was not queued.
/// Best effort: if this fails, the discrepancy stays ADJUSTING and resolving again resumes.
async fn abandon(
    clients: &Clients,
    client: &str,
    id: Uuid,
    key: &IdempotencyKey,
    from: Option<DiscrepancyStatus>,
    why: &IntakeError,
) {
    let Some(from) = from else { return };
    if let Err(revert) = store::discrepancies::abandon_adjustment(
        &clients.db,
        client,
        id,
        key,
        from,
        &why.to_string(),
    )
    .await
    {
        tracing::error!(discrepancy_id = %id, error = %revert, "could not return an unqueued adjustment's discrepancy to its status");
    }
}

/// The adjusting transfer for a discrepancy against the suspense account (validated like a
/// client's transfer and marked as adjusting it), and its plan as the resolution records it.
async fn plan_adjustment(
    clients: &Clients,
    client: &str,
    d: &StoredDiscrepancy,
    suspense: Option<String>,
) -> Result<(Transfer, Value), ResolveError> {
    let not_adjustable = |detail: String| ResolveError::NotAdjustable {
        detail,
        reason: None,
    };
    let delta = workflow::adjustment(d.kind, d.expected, d.actual).ok_or_else(|| {
        not_adjustable(format!(
            "an adjusting transfer cannot answer a {} discrepancy",
            d.kind
        ))
    })?;
    let account_id = d
        .account_id
        .clone()
        .ok_or_else(|| not_adjustable("this discrepancy is not about one account".into()))?;
    let suspense_id =
        suspense.unwrap_or_else(|| clients.config.reconcile.suspense_account_for(client));
    let account = store::accounts::get(&clients.db, client, &account_id)
        .await?
        .ok_or_else(|| ResolveError::AccountNotFound(account_id.clone()))?;
    let suspense = store::accounts::get(&clients.db, client, &suspense_id)
        .await?
        .ok_or_else(|| {
            ResolveError::SuspenseUnusable(format!(
                "suspense account {suspense_id} does not exist; open it (overdraftLimit \"unlimited\") or name another in suspenseAccountId"
            ))
        })?;
    let legs = workflow::adjustment_legs(
        delta,
        AdjustedAccount {
            id: &account.id,
            currency: &account.currency,
        },
        AdjustedAccount {
            id: &suspense.id,
            currency: &suspense.currency,
        },
        d.currency.as_deref(),
    )
    .map_err(|currency| {
        ResolveError::SuspenseUnusable(format!(
            "the suspense account {suspense_id} is not in {currency}"
        ))
    })?;
    // The same rules as a client's transfer (maximum, scale, texts): one way into intake.
    let currency = Currency::parse(&legs.currency).map_err(|e| ResolveError::NotAdjustable {
        detail: format!(
            "the adjusting transfer would break a transfer rule: {}",
            e.detail
        ),
        reason: Some(e.code),
    })?;
    let transfer = TransferDraft {
        source_account_id: legs.source_account_id.clone(),
        destination_account_id: legs.destination_account_id.clone(),
        amount: legs.amount,
        currency,
        reference: Some(format!("discrepancy:{}", d.id)),
        description: Some(format!("Reconciliation adjustment for {}", d.kind)),
        metadata: Some(json!({"discrepancyId": d.id, "kind": d.kind})),
    }
    .validate(clients.config.max_transfer_amount)
    .map_err(|e| ResolveError::NotAdjustable {
        detail: format!(
            "the adjusting transfer would break a transfer rule: {}",
            e.detail
        ),
        reason: Some(e.code),
    })?
    .adjusting(d.id);
    let plan = json!({
        "suspenseAccountId": suspense.id,
        "transfer": {
            "source_account_id": legs.source_account_id,
            "destination_account_id": legs.destination_account_id,
            "amount": format_amount(legs.amount, &legs.currency),
            "currency": legs.currency,
        },
    });
    Ok((transfer, plan))
}

/// Re-sends a dead-lettered transfer to the queue from its record (`dead_letters`, written by the
/// `dead-letters` function), with its message group and a deduplication id derived from the letter
/// (a retry inside FIFO's 5-minute window is one message; never the original send's id), and marks
/// the letter REDRIVEN. The letter stays locked while it is sent, so two redrives of one letter
/// send once; the ledger's unique (client, key) makes any later copy post nothing. Returns what
/// the resolution records.
async fn redrive(clients: &Clients, d: &StoredDiscrepancy) -> Result<Value, ResolveError> {
    let redrivable = d.kind == FindingKind::DEAD_LETTERED
        && d.data.get("redrivable").and_then(Value::as_bool) == Some(true);
    let message_id = d
        .data
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|_| redrivable)
        .ok_or(ResolveError::NotRedrivable)?;
    let gone = |detail: &str| ResolveError::DeadLetterGone(detail.to_string());
    let mut conn = clients.db.get().await.map_err(StoreError::from)?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let letter = match store::dead_letters::lock_for_redrive(&tx, message_id).await? {
        RedriveCheck::Ready(letter) => letter,
        RedriveCheck::AlreadyRedriven(at) => {
            return Err(gone(&format!(
                "the dead letter was redriven already, at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        RedriveCheck::AlreadyPosted => {
            tx.commit().await.map_err(StoreError::from)?;
            return Err(gone(
                "the dead-lettered transfer is in the ledger already: nothing to redrive",
            ));
        }
        RedriveCheck::NotRecorded => {
            return Err(gone("no dead letter with this message id is recorded"));
        }
    };
    let message = letter.transfer().ok_or(ResolveError::NotRedrivable)?;
    let group_id = letter
        .group_id
        .clone()
        .unwrap_or_else(|| message.group_id());
    let dedup = redrive_deduplication_id(&letter.message_id);
    let queued = clients
        .queue
        .resend(&letter.body, &group_id, &dedup)
        .await
        .map_err(ResolveError::Redrive)?;
    // Sent: a failure from here must not claim that nothing changed.
    let not_recorded = |error| ResolveError::NotRecorded {
        sent: Sent::Redrive,
        error,
    };
    store::dead_letters::mark_redriven(&tx, &letter.message_id, &dedup)
        .await
        .map_err(not_recorded)?;
    tx.commit()
        .await
        .map_err(|e| not_recorded(StoreError::from(e)))?;
    Ok(json!({"action": "redrive", "messageId": message_id, "queuedMessageId": queued}))
}
