//! The objects as the API returns them: one JSON shape for each, used by the HTTP routes and by
//! the events that carry them (`shared::events`), so a webhook's object is what a GET answers.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::money::format_amount;
use crate::monitors::Monitor;
use crate::reconcile::discrepancies::StoredDiscrepancy;
use crate::store::holds::HoldRecord;
use crate::store::transactions::TransactionRecord;

/// A recorded transaction, as `GET /transactions/{id}` answers it.
pub fn transaction_json(r: &TransactionRecord) -> Value {
    let money = |d| format_amount(d, &r.currency);
    let legs = r.legs.clone().unwrap_or_else(|| {
        json!([{
            "leg": 0,
            "source_account_id": r.source_account_id,
            "destination_account_id": r.destination_account_id,
            "amount": money(r.amount),
            "currency": r.currency,
        }])
    });
    let refunds: Vec<Value> = r
        .refunds
        .iter()
        .map(|x| {
            json!({
                "transactionId": x.transaction_id,
                "idempotencyKey": x.idempotency_key,
                "leg": x.leg,
                "amount": format_amount(x.amount, &x.currency),
                "postedAt": x.posted_at,
            })
        })
        .collect();
    // In the transaction's currency (its first leg's); a refund of a leg in another currency
    // is in `refunds` with its own amount.
    let refunded: Decimal = r
        .refunds
        .iter()
        .filter(|x| x.currency == r.currency)
        .map(|x| x.amount)
        .sum();
    let mut body = json!({
        "idempotencyKey": r.idempotency_key,
        "status": r.status,
        "transactionId": r.id,
        "transaction": {
            "id": r.id,
            "kind": r.kind.as_str(),
            "source_account_id": r.source_account_id,
            "destination_account_id": r.destination_account_id,
            "amount": money(r.amount),
            "currency": r.currency,
            "legs": legs,
            "reference": r.reference,
            "description": r.description,
            "metadata": r.metadata,
            "acceptedAt": r.accepted_at,
            "postedAt": r.posted_at,
            "effectiveAt": r.effective_at.unwrap_or(r.posted_at),
            "parentId": r.parent_id,
            "refunds": refunds,
            "refunded": money(refunded),
        },
    });
    if let Some(code) = &r.failure_code {
        body["failureCode"] = json!(code);
    } else {
        let entries: Vec<Value> = r
            .entries
            .iter()
            .map(|e| {
                json!({
                    "accountId": e.account_id,
                    "amount": format_amount(e.amount, &e.currency),
                    "balanceAfter": format_amount(e.balance_after, &e.currency),
                    "leg": e.leg,
                })
            })
            .collect();
        body["result"] = json!({ "entries": entries });
    }
    body
}

/// A hold, as `GET /holds/{id}` answers it (with its events) and as a list or an event carries
/// it (a record read without its events has no `events` field).
pub fn hold_json(h: &HoldRecord) -> Value {
    let money = |d| format_amount(d, &h.state.currency);
    let events: Vec<Value> = h
        .events
        .iter()
        .map(|e| {
            json!({
                "type": e.kind.as_str(),
                "transactionId": e.transaction_id,
                "idempotencyKey": e.idempotency_key,
                "amount": money(e.amount),
                "at": e.at,
            })
        })
        .collect();
    let mut body = json!({
        "id": h.id,
        "status": h.state.status.as_str(),
        "idempotencyKey": h.idempotency_key,
        "source_account_id": h.state.source_account_id,
        "destination_account_id": h.state.destination_account_id,
        "currency": h.state.currency,
        "amount": money(h.state.amount),
        "captured": money(h.state.captured),
        "remaining": money(h.state.remaining()),
        "expiresAt": h.state.expires_at,
        "createdAt": h.created_at,
        "closedAt": h.closed_at,
    });
    if !events.is_empty() {
        body["events"] = json!(events);
    }
    body
}

/// A balance monitor and its state, as `GET /monitors/{id}` answers it.
pub fn monitor_json(m: &Monitor) -> Value {
    let money = |d| format_amount(d, &m.currency);
    json!({
        "id": m.id,
        "accountId": m.account_id,
        "currency": m.currency,
        "field": m.field.as_str(),
        "condition": m.condition.as_str(),
        "threshold": money(m.threshold),
        "hysteresis": money(m.hysteresis),
        "description": m.description,
        "status": m.status.as_str(),
        "state": m.state.as_str(),
        "value": money(m.value),
        "evaluatedAt": m.evaluated_at,
        "triggeredCount": m.triggered_count,
        "lastTriggeredAt": m.last_triggered_at,
        "lastClearedAt": m.last_cleared_at,
        "createdAt": m.created_at,
    })
}

fn amount(value: Option<Decimal>, currency: Option<&str>) -> Value {
    match value {
        Some(v) => json!(format_amount(v, currency.unwrap_or(""))),
        None => Value::Null,
    }
}

/// A discrepancy, as `GET /discrepancies/{id}` answers it (without its history).
pub fn discrepancy_json(d: &StoredDiscrepancy) -> Value {
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
