//! `/holds`: place a hold (authorize), read it, capture it (in full or in parts), void it.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::ledger::HoldStatus;
use shared::services::movement;
use shared::store::holds::{self, HoldCursor};
use shared::transfers::{Operation, TransferInput, parse_amount_json};
use shared::views;
use uuid::Uuid;

use crate::AppState;
use crate::accounts::visible_account;
use crate::extract::{ClientId, JsonBody, PathParam, page, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};
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

fn hold_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| Problem::hold_not_found())
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let hold = holds::get(&state.db, &client, hold_id(&id)?)
        .await?
        .ok_or_else(Problem::hold_not_found)?;
    Ok(Json(views::hold_json(&hold.seen_at(Utc::now()))))
}

/// `GET /accounts/{id}/holds[?status=&limit=&cursor=]`: the holds placed on the account, newest
/// first, without their events.
pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["status", "limit", "cursor"])?;
    let mut limit = page::DEFAULT_PAGE;
    let mut cursor = None;
    let mut status = None;
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = page::limit(&v)?,
            "cursor" => {
                let (created_at, id) = page::cursor(&v)?;
                cursor = Some(HoldCursor { created_at, id });
            }
            _ => {
                status = Some(HoldStatus::parse(&v).ok_or_else(|| {
                    bad_parameter(
                        "status",
                        "status is one of ACTIVE, CAPTURED, VOIDED, EXPIRED",
                    )
                })?)
            }
        }
    }
    let account = visible_account(&state, &client, &id, None).await?;
    let now = Utc::now();
    let (holds, next) =
        holds::list_for_account(&state.db, &client, &account.id, status, now, limit, cursor)
            .await?;
    let holds: Vec<Value> = holds
        .into_iter()
        .map(|h| views::hold_json(&h.seen_at(now)))
        .collect();
    Ok(Json(json!({
        "holds": holds,
        "nextCursor": next.map(|c| page::encode_cursor(c.created_at, c.id)),
    })))
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
