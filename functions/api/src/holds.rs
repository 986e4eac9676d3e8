//! `/holds`: place a hold (authorize), read it, capture it (in full or in parts), void it.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::money::format_amount;
use shared::services::movement;
use shared::store::holds::{self, HoldRecord};
use shared::transfers::{Operation, TransferInput, parse_amount_json};
use uuid::Uuid;

use crate::AppState;
use crate::extract::{ClientId, JsonBody, PathParam};
use crate::problem::{ApiResult, Problem};
use crate::transactions::{idempotency_key, intake_response, source_currency};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    hold: HoldInput,
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: Option<String>,
}

/// A hold: one transfer's fields and when it expires.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldInput {
    source_account_id: String,
    destination_account_id: String,
    amount: Box<RawValue>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(rename = "expiresAt")]
    expires_at: String,
}

pub async fn create(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, &headers)?;
    let h = body.hold;
    let rules = state.config.intake_rules();
    let now = Utc::now();
    let expires_at = rules
        .hold_expiry(&h.expires_at, now, "expiresAt")
        .map_err(|e| Problem::from(e.under("hold")))?;
    let input = TransferInput {
        source_account_id: Some(h.source_account_id),
        destination_account_id: Some(h.destination_account_id),
        amount: Some(h.amount),
        currency: h.currency,
        reference: h.reference,
        description: h.description,
        metadata: h.metadata,
        ..Default::default()
    };
    let currency = source_currency(&state, &client, &input).await?;
    let transfer = input
        .validate_with(currency, &rules, now)
        .map_err(|e| Problem::from(e.under("hold")))?
        .with_operation(Operation::Hold { expires_at });
    intake_response(movement::hold(&state, &client, &key, transfer).await)
}

fn hold_not_found() -> Problem {
    Problem::not_found(
        "hold_not_found",
        "no hold with this id (for this client); a hold still queued is not found until it posts",
    )
}

fn hold_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| hold_not_found())
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let hold = holds::get(&state.db, &client, hold_id(&id)?)
        .await?
        .ok_or_else(hold_not_found)?;
    Ok(Json(hold_json(&hold)))
}

fn hold_json(h: &HoldRecord) -> Value {
    let now = Utc::now();
    let money = |d| format_amount(d, &h.currency);
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
    json!({
        "id": h.id,
        "status": h.status_at(now).as_str(),
        "idempotencyKey": h.idempotency_key,
        "source_account_id": h.source_account_id,
        "destination_account_id": h.destination_account_id,
        "currency": h.currency,
        "amount": money(h.amount),
        "captured": money(h.captured),
        "remaining": money(h.remaining_at(now)),
        "expiresAt": h.expires_at,
        "createdAt": h.created_at,
        "closedAt": h.closed_at,
        "events": events,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureBody {
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: Option<String>,
    #[serde(default)]
    amount: Option<Box<RawValue>>,
}

pub async fn capture(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CaptureBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, &headers)?;
    let hold_id = hold_id(&id)?;
    let amount = body
        .amount
        .map(|raw| parse_amount_json(&raw, "amount"))
        .transpose()?;
    intake_response(movement::capture(&state, &client, &key, hold_id, amount).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: Option<String>,
}

pub async fn void(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody<VoidBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, &headers)?;
    let hold_id = hold_id(&id)?;
    intake_response(movement::void(&state, &client, &key, hold_id).await)
}
