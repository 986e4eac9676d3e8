//! The discrepancy workflow: list, read, resolve one (by hand, with an adjusting transfer, or by
//! redriving a dead letter) and resolve many.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::intake::{self, Intake, IntakeError};
use shared::money::{Currency, format_amount};
use shared::reconcile::DiscrepancyKind;
use shared::reconcile::workflow::{self, AdjustedAccount, INTERNAL_KINDS, STATUSES};
use shared::store::dead_letters::{self as dead_letter_store, RedriveCheck};
use shared::store::posting;
use shared::store::reconciliation::{
    self as store, AdjustmentStart, DiscrepancyFilter, DiscrepancyRow, EventRow, StatusChange,
};
use shared::transfers::{Transfer, TransferDraft};
use uuid::Uuid;

use crate::AppState;
use crate::accounts::visible_account;
use crate::extract::{ClientId, JsonBody, PathParam, page, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter, db};
use crate::transactions::status_path;

fn amount(value: Option<Decimal>, currency: Option<&str>) -> Value {
    match value {
        Some(v) => json!(format_amount(v, currency.unwrap_or(""))),
        None => Value::Null,
    }
}

pub fn discrepancy_json(d: &DiscrepancyRow) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind,
        "status": d.status,
        "accountId": d.account_id,
        "bookedOn": d.booked_on,
        "statementLineId": d.statement_line_id,
        "externalId": d.external_id,
        "transactionIds": d.transaction_ids,
        "expected": amount(d.expected, d.currency.as_deref()),
        "actual": amount(d.actual, d.currency.as_deref()),
        "currency": d.currency,
        "detail": d.detail,
        "data": d.data,
        "firstSeenRun": d.first_seen_run,
        "lastSeenRun": d.last_seen_run,
        "clearedByRun": d.cleared_by_run,
        "resolution": d.resolution,
        "createdAt": d.created_at,
        "updatedAt": d.updated_at,
    })
}

fn event_json(e: &EventRow) -> Value {
    json!({
        "at": e.at,
        "actor": e.actor,
        "fromStatus": e.from_status,
        "toStatus": e.to_status,
        "note": e.note,
        "action": e.action,
    })
}

pub(crate) fn parse_uuid(id: &str, code: &'static str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(code, format!("no {what} {id}")))
}

fn known_kind(kind: &str) -> bool {
    DiscrepancyKind::parse(kind).is_some() || INTERNAL_KINDS.contains(&kind)
}

pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(
        query.as_deref(),
        &["status", "accountId", "kind", "limit", "cursor"],
    )?;
    let mut filter = DiscrepancyFilter::default();
    let mut limit = page::DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in params {
        match k.as_str() {
            "status" if STATUSES.contains(&v.as_str()) => filter.status = Some(v),
            "status" => {
                return Err(bad_parameter(
                    "status",
                    format!("status is one of {}", STATUSES.join(", ")),
                ));
            }
            "kind" if known_kind(&v) => filter.kind = Some(v),
            "kind" => {
                return Err(bad_parameter(
                    "kind",
                    format!("unknown discrepancy kind {v:?}"),
                ));
            }
            "accountId" => filter.account_id = Some(v),
            "limit" => limit = page::limit(&v)?,
            _ => cursor = Some(page::cursor(&v)?),
        }
    }
    let (items, next) =
        store::list_discrepancies(&state.db, &client, &filter, limit, cursor).await?;
    Ok(Json(json!({
        "discrepancies": items.iter().map(discrepancy_json).collect::<Vec<_>>(),
        "nextCursor": next.map(|(at, id)| page::encode_cursor(at, id)),
    })))
}

async fn load_discrepancy(
    state: &AppState,
    client: &str,
    id: &str,
) -> ApiResult<(DiscrepancyRow, Vec<EventRow>)> {
    let uuid = parse_uuid(id, "discrepancy_not_found", "discrepancy")?;
    store::get_discrepancy(&state.db, client, uuid)
        .await?
        .ok_or_else(|| Problem::not_found("discrepancy_not_found", format!("no discrepancy {id}")))
}

fn with_history(d: &DiscrepancyRow, events: &[EventRow]) -> Value {
    let mut body = discrepancy_json(d);
    body["history"] = json!(events.iter().map(event_json).collect::<Vec<_>>());
    body
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let (d, events) = load_discrepancy(&state, &client, &id).await?;
    Ok(Json(with_history(&d, &events)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResolveBody {
    status: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    suspense_account_id: Option<String>,
}

const MAX_NOTE_CHARS: usize = 2000;

fn check_status_and_note(status: &str, note: Option<&str>) -> ApiResult<()> {
    if !["INVESTIGATING", "RESOLVED", "IGNORED"].contains(&status) {
        return Err(Problem::unprocessable(
            "invalid_field",
            "status",
            "status is INVESTIGATING, RESOLVED or IGNORED",
        ));
    }
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(Problem::unprocessable(
            "field_too_long",
            "note",
            format!("note is limited to {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(())
}

fn refused(from: &str, to: &str) -> Problem {
    let detail = if from == workflow::ADJUSTING {
        format!(
            "a discrepancy that is ADJUSTING cannot become {to} by hand: its adjusting transfer decides (posted: RESOLVED; rejected: OPEN)"
        )
    } else {
        format!(
            "a discrepancy that is {from} cannot become {to} (OPEN -> INVESTIGATING -> RESOLVED | IGNORED; action adjust: ADJUSTING until its transfer posts)"
        )
    };
    Problem::new(StatusCode::CONFLICT, "invalid_transition", detail).field("status")
}

/// The adjusting transfer for a discrepancy against the suspense account (validated like a
/// client's transfer and marked as adjusting it), and its plan as the resolution records it.
async fn plan_adjustment(
    state: &AppState,
    client: &str,
    d: &DiscrepancyRow,
    suspense: Option<String>,
) -> ApiResult<(Transfer, Value)> {
    let delta = workflow::adjustment(&d.kind, d.expected, d.actual).ok_or_else(|| {
        Problem::unprocessable(
            "not_adjustable",
            "action",
            format!(
                "an adjusting transfer cannot answer a {} discrepancy",
                d.kind
            ),
        )
    })?;
    let account_id = d.account_id.clone().ok_or_else(|| {
        Problem::unprocessable(
            "not_adjustable",
            "action",
            "this discrepancy is not about one account",
        )
    })?;
    let suspense_id =
        suspense.unwrap_or_else(|| state.config.reconcile.suspense_account_for(client));
    let account = visible_account(state, client, &account_id, Some("accountId")).await?;
    let unusable = |detail: String| {
        Problem::unprocessable("suspense_account_unusable", "suspenseAccountId", detail)
    };
    let suspense = match visible_account(state, client, &suspense_id, Some("suspenseAccountId"))
        .await
    {
        Ok(a) => a,
        Err(_) => {
            return Err(unusable(format!(
                "suspense account {suspense_id} does not exist; open it (overdraftLimit \"unlimited\") or name another in suspenseAccountId"
            )));
        }
    };
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
        unusable(format!(
            "the suspense account {suspense_id} is not in {currency}"
        ))
    })?;
    // The same rules as a client's transfer (maximum, scale, texts): one way into intake.
    let transfer = TransferDraft {
        source_account_id: legs.source_account_id.clone(),
        destination_account_id: legs.destination_account_id.clone(),
        amount: legs.amount,
        currency: Currency::parse(&legs.currency).map_err(Problem::from)?,
        reference: Some(format!("discrepancy:{}", d.id)),
        description: Some(format!("Reconciliation adjustment for {}", d.kind)),
        metadata: Some(json!({"discrepancyId": d.id, "kind": d.kind})),
    }
    .validate(state.config.max_transfer_amount)
    .map_err(|e| {
        Problem::unprocessable(
            "not_adjustable",
            "action",
            format!(
                "the adjusting transfer would break a transfer rule: {}",
                e.detail
            ),
        )
        .with("reason", json!(e.code))
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
/// `action: adjust`: moves the discrepancy to ADJUSTING, then queues its adjusting transfer through
/// the normal intake path under a key no client can send (`transfers::adjustment_key`). The
/// processor makes it RESOLVED when the transfer posts, or OPEN again if it is rejected. While it
/// is ADJUSTING, adjusting again re-sends the same transfer under the same key (posted once).
/// Answers the discrepancy with its history; its resolution carries the transfer (transactionId,
/// pollUrl).
async fn adjust(
    state: &AppState,
    client: &str,
    d: &DiscrepancyRow,
    suspense: Option<String>,
    note: Option<&str>,
) -> ApiResult<Value> {
    let allowed = workflow::allowed_from(workflow::ADJUSTING);
    if d.status != workflow::ADJUSTING && !allowed.contains(&d.status.as_str()) {
        return Err(refused(&d.status, "RESOLVED"));
    }
    let in_flight_suspense = workflow::in_flight_suspense(&d.status, d.resolution.as_ref());
    let in_progress = |recorded: &str| {
        Problem::new(
            StatusCode::CONFLICT,
            "adjustment_in_progress",
            format!("an adjusting transfer against {recorded} is waiting to post for this discrepancy; it becomes RESOLVED when it posts (OPEN again if it is rejected)"),
        )
        .field("suspenseAccountId")
    };
    if let (Some(recorded), Some(asked)) = (&in_flight_suspense, &suspense)
        && recorded != asked
    {
        return Err(in_progress(recorded));
    }
    let (transfer, plan) =
        plan_adjustment(state, client, d, in_flight_suspense.or(suspense)).await?;
    let start = store::begin_adjustment(&state.db, client, d.id, allowed, note, &plan).await?;
    let (key, from) = match start {
        AdjustmentStart::NotFound => {
            return Err(Problem::not_found(
                "discrepancy_not_found",
                format!("no discrepancy {}", d.id),
            ));
        }
        AdjustmentStart::Refused { from } => return Err(refused(&from, "RESOLVED")),
        AdjustmentStart::InFlight { resolution } => {
            let recorded = resolution.get("suspenseAccountId").and_then(Value::as_str);
            if recorded != plan["suspenseAccountId"].as_str() {
                return Err(in_progress(recorded.unwrap_or("another account")));
            }
            let key = workflow::in_flight_key(&resolution, d.id)
                .ok_or_else(|| db("the in-flight adjustment's resolution names no key"))?;
            (key, None)
        }
        AdjustmentStart::Started { from, key, .. } => (key, Some(from)),
    };
    let accepted = match intake::accept(state, client, &key, transfer).await {
        Ok(Intake::Accepted(a) | Intake::Replayed(a)) => a,
        Err(e @ IntakeError::OutcomeUnknown { .. }) => {
            // The transfer may be on the queue: the discrepancy stays ADJUSTING (the processor
            // settles it when the transfer is decided; resolving again resumes the same key).
            return Err(e.into());
        }
        Err(e) => {
            // Nothing (known to be) queued: the discrepancy goes back where it was, with the reason.
            if let Some(from) = &from
                && let Err(revert) =
                    store::abandon_adjustment(&state.db, client, d.id, &key, from, &e.to_string())
                        .await
            {
                tracing::error!(discrepancy_id = %d.id, error = %revert, "could not return an unqueued adjustment's discrepancy to its status");
            }
            return Err(match e {
                IntakeError::KeyReused => in_progress("another suspense account"),
                other => other.into(),
            });
        }
    };
    let queued = json!({
        "idempotencyKey": accepted.idempotency_key,
        "transactionId": accepted.transaction_id,
        "messageId": accepted.message_id,
        "pollUrl": status_path(&accepted.idempotency_key),
    });
    // From here the transfer is queued: a failure must not claim that nothing changed.
    let after_queued = |e: shared::store::StoreError| {
        Problem::unavailable_because(
            "postgres",
            &e,
            "the adjusting transfer was queued, but recording it failed; resolve again with the same \
             request: it resumes the same transfer",
        )
    };
    store::record_adjustment_accepted(&state.db, d.id, &key, &queued)
        .await
        .map_err(after_queued)?;
    // Already decided by the ledger (a retry after a send whose outcome was unknown)? Settle now.
    posting::settle_recorded_adjustment(&state.db, client, key.as_str(), d.id)
        .await
        .map_err(after_queued)?;
    let (d, events) = load_discrepancy(state, client, &d.id.to_string()).await?;
    Ok(with_history(&d, &events))
}

/// Re-sends a dead-lettered transfer to the queue from its record (`dead_letters`, written by the
/// `dead-letters` function), with its message group and a deduplication id derived from the letter
/// (a retry inside FIFO's 5-minute window is one message; never the original send's id), and marks
/// the letter REDRIVEN. The letter stays locked while it is sent, so two redrives of one letter
/// send once; the ledger's unique (client, key) makes any later copy post nothing.
async fn redrive(state: &AppState, d: &DiscrepancyRow) -> ApiResult<Value> {
    let not_redrivable = || {
        Problem::unprocessable(
            "not_redrivable",
            "action",
            "only a dead-lettered, well-formed transfer can be redriven (a malformed one would fail again: ignore it)",
        )
    };
    let redrivable = d.kind == "DEAD_LETTERED"
        && d.data.get("redrivable").and_then(Value::as_bool) == Some(true);
    let message_id = d
        .data
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|_| redrivable)
        .ok_or_else(not_redrivable)?;
    let gone = |detail: String| Problem::new(StatusCode::CONFLICT, "dead_letter_gone", detail);
    let mut conn = state.db.get().await.map_err(db)?;
    let tx = conn.transaction().await.map_err(db)?;
    let letter = match dead_letter_store::lock_for_redrive(&tx, message_id).await? {
        RedriveCheck::Ready(letter) => letter,
        RedriveCheck::AlreadyRedriven(at) => {
            return Err(gone(format!(
                "the dead letter was redriven already, at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        RedriveCheck::AlreadyPosted => {
            tx.commit().await.map_err(db)?;
            return Err(gone(
                "the dead-lettered transfer is in the ledger already: nothing to redrive".into(),
            ));
        }
        RedriveCheck::NotRecorded => {
            return Err(gone(
                "no dead letter with this message id is recorded".into(),
            ));
        }
    };
    let message = letter.transfer().ok_or_else(not_redrivable)?;
    let group_id = letter
        .group_id
        .clone()
        .unwrap_or_else(|| message.group_id());
    let dedup = dead_letter_store::redrive_deduplication_id(&letter.message_id);
    let queued = state
        .queue
        .resend(&letter.body, &group_id, &dedup)
        .await
        .map_err(|e| {
            let detail = if e.outcome_unknown() {
                "the queue did not answer: the transfer may have been redriven; resolve again with \
                 the same request (the same deduplication id, and the ledger posts a key once)"
            } else {
                "the queue refused the redrive, so nothing was sent; retry later"
            };
            Problem::unavailable_because("sqs", &e, detail)
        })?;
    // Sent: a failure from here must not claim that nothing changed.
    let after_sent = |e: &dyn std::fmt::Display| {
        Problem::unavailable_because(
            "postgres",
            e,
            "the transfer was redriven, but recording it failed; resolving again with the same \
             request is safe (the same deduplication id, and the ledger posts a key once)",
        )
    };
    dead_letter_store::mark_redriven(&tx, &letter.message_id, &dedup)
        .await
        .map_err(|e| after_sent(&e))?;
    tx.commit().await.map_err(|e| after_sent(&e))?;
    Ok(json!({"action": "redrive", "messageId": message_id, "queuedMessageId": queued}))
}

pub async fn resolve(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<ResolveBody>,
) -> ApiResult<Json<Value>> {
    check_status_and_note(&body.status, body.note.as_deref())?;
    if body.action.is_some() && body.status != "RESOLVED" {
        return Err(Problem::unprocessable(
            "invalid_field",
            "action",
            "an action resolves: send status RESOLVED with it",
        ));
    }
    if let Some(other) = body
        .action
        .as_deref()
        .filter(|a| !["adjust", "redrive"].contains(a))
    {
        return Err(Problem::unprocessable(
            "invalid_field",
            "action",
            format!("unknown action {other:?}: use adjust or redrive"),
        ));
    }
    if body.suspense_account_id.is_some() && body.action.as_deref() != Some("adjust") {
        return Err(Problem::unprocessable(
            "invalid_field",
            "suspenseAccountId",
            "suspenseAccountId goes with action adjust",
        ));
    }
    let (d, events) = load_discrepancy(&state, &client, &id).await?;
    if d.status == body.status {
        return Ok(Json(with_history(&d, &events)));
    }
    if body.action.as_deref() == Some("adjust") {
        let note = body.note.as_deref();
        let suspense = body.suspense_account_id.clone();
        return Ok(Json(adjust(&state, &client, &d, suspense, note).await?));
    }
    let allowed = workflow::allowed_from(&body.status);
    if !allowed.contains(&d.status.as_str()) {
        return Err(refused(&d.status, &body.status));
    }
    let resolution = match body.action.as_deref() {
        // adjust is answered above: it resolves once its transfer posts.
        None | Some("adjust") => None,
        Some("redrive") => Some(redrive(&state, &d).await?),
        Some(other) => {
            return Err(Problem::unprocessable(
                "invalid_field",
                "action",
                format!("unknown action {other:?}: use adjust or redrive"),
            ));
        }
    };
    let change = store::set_status(
        &state.db,
        &client,
        d.id,
        &body.status,
        allowed,
        body.note.as_deref(),
        resolution.as_ref(),
        resolution.as_ref(),
    )
    .await?;
    if let StatusChange::Refused { from } = change {
        return Err(refused(&from, &body.status));
    }
    let (d, events) = load_discrepancy(&state, &client, &id).await?;
    Ok(Json(with_history(&d, &events)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkResolveBody {
    ids: Vec<String>,
    status: String,
    #[serde(default)]
    note: Option<String>,
}

pub const MAX_BULK: usize = 500;

pub async fn resolve_many(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    JsonBody(body): JsonBody<BulkResolveBody>,
) -> ApiResult<Json<Value>> {
    check_status_and_note(&body.status, body.note.as_deref())?;
    if body.ids.is_empty() || body.ids.len() > MAX_BULK {
        return Err(Problem::unprocessable(
            "invalid_field",
            "ids",
            format!("ids holds 1 to {MAX_BULK} discrepancy ids"),
        ));
    }
    let allowed = workflow::allowed_from(&body.status);
    let mut results = Vec::with_capacity(body.ids.len());
    let (mut changed, mut failed) = (0, 0);
    for id in &body.ids {
        let outcome = match Uuid::parse_str(id) {
            Err(_) => StatusChange::NotFound,
            Ok(uuid) => {
                store::set_status(
                    &state.db,
                    &client,
                    uuid,
                    &body.status,
                    allowed,
                    body.note.as_deref(),
                    None,
                    None,
                )
                .await?
            }
        };
        let (result, from) = match outcome {
            StatusChange::Changed { from } => {
                changed += 1;
                ("changed", Some(from))
            }
            StatusChange::Unchanged => ("unchanged", None),
            StatusChange::NotFound => {
                failed += 1;
                ("discrepancy_not_found", None)
            }
            StatusChange::Refused { from } => {
                failed += 1;
                ("invalid_transition", Some(from))
            }
        };
        results.push(json!({"id": id, "result": result, "fromStatus": from}));
    }
    Ok(Json(
        json!({"status": body.status, "changed": changed, "failed": failed, "results": results}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(known_kind("MISSING_IN_LEDGER"));
        assert!(known_kind("DEAD_LETTERED"));
        assert!(!known_kind("missing"));
        assert!(shared::reconcile::MatchRule::parse("BATCH").is_some());
    }
}
