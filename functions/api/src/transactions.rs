//! `/transactions`: intake (Redis reservation, then SQS FIFO) and status lookups.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::accounts::AccountId;
use shared::idempotency::Accepted;
use shared::money::Currency;
use shared::services::intake::{self, Intake};
use shared::store::{accounts as account_store, intake as intake_store, transactions as tx_store};
use shared::transfers::{IdempotencyKey, TransferInput, adjustment_of, status_path};
use shared::views;

use crate::AppState;
use crate::extract::{ClientId, JsonBody, PathParam};
use crate::problem::{ApiResult, Problem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    pub transaction: TransferInput,
    #[serde(default, rename = "idempotencyKey")]
    pub idempotency_key: Option<String>,
}

pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub(crate) fn accepted_response(accepted: &Accepted, replayed: bool) -> Response {
    accepted_response_with(accepted, replayed, json!({}))
}

/// The 202 with `extra` fields added to the body.
pub(crate) fn accepted_response_with(
    accepted: &Accepted,
    replayed: bool,
    extra: Value,
) -> Response {
    let poll = status_path(&accepted.idempotency_key);
    let mut body = json!({
        "status": "ACCEPTED",
        "idempotencyKey": accepted.idempotency_key,
        "transactionId": accepted.transaction_id,
        "messageId": accepted.message_id,
        "pollUrl": poll,
        "acceptedAt": accepted.accepted_at,
        "expiresAt": accepted.expires_at,
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&poll) {
        headers.insert(header::LOCATION, v);
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// The key from the body or the `Idempotency-Key` header (both may be sent if they agree).
pub(crate) fn idempotency_key(
    body_key: Option<String>,
    headers: &HeaderMap,
) -> ApiResult<IdempotencyKey> {
    let header_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map(str::to_string).map_err(|_| {
            Problem::unprocessable(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "idempotency keys are 1-255 visible ASCII characters without spaces",
            )
        })?),
    };
    match (body_key, header_key) {
        (Some(b), Some(h)) if b != h => Err(Problem::unprocessable(
            "idempotency_key_mismatch",
            "idempotencyKey",
            "the body's idempotencyKey and the Idempotency-Key header differ",
        )),
        (Some(k), _) => Ok(IdempotencyKey::parse(&k, "idempotencyKey")?),
        (None, Some(k)) => Ok(IdempotencyKey::parse(&k, "Idempotency-Key")?),
        (None, None) => Ok(IdempotencyKey::parse("", "idempotencyKey")?),
    }
}

pub async fn submit(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, &headers)?;
    let input = body.transaction;
    let account_currency = source_currency(&state, &client, &input).await?;
    let transfer = input
        .validate_with(account_currency, &state.config.intake_rules(), Utc::now())
        .map_err(|e| Problem::from(e.under("transaction")))?;
    intake_response(intake::accept(&state, &client, &key, transfer).await)
}

/// The 202 of an accepted (or replayed) request, or the problem.
pub(crate) fn intake_response<E: Into<Problem>>(result: Result<Intake, E>) -> ApiResult<Response> {
    match result {
        Ok(Intake::Accepted(accepted)) => Ok(accepted_response(&accepted, false)),
        Ok(Intake::Replayed(accepted)) => Ok(accepted_response(&accepted, true)),
        Err(e) => Err(e.into()),
    }
}

/// Without a currency, a single transfer is in its source account's currency (one lookup).
pub(crate) async fn source_currency(
    state: &AppState,
    client: &str,
    input: &TransferInput,
) -> ApiResult<Option<Currency>> {
    let source = match (&input.currency, &input.legs, &input.source_account_id) {
        (None, None, Some(source)) => source,
        _ => return Ok(None),
    };
    let Ok(source) = AccountId::parse(source, "") else {
        return Ok(None);
    };
    Ok(account_store::get(&state.db, client, source.as_str())
        .await?
        .and_then(|a| Currency::parse(&a.currency).ok()))
}

/// A recorded transaction by its id.
pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    match tx_store::find_by_id(&state.db, &client, transaction_id(&id)?).await? {
        Some(record) => Ok(Json(views::transaction_json(&record))),
        None => Err(Problem::transaction_not_found()),
    }
}

/// A transaction id from the path (not a UUID: no such transaction).
pub(crate) fn transaction_id(id: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| Problem::transaction_not_found())
}

/// Postgres first (the truth); then Redis for transfers still queued. If Postgres is down, the
/// processor's status cache in Redis answers, marked as such.
pub async fn status(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(key): PathParam,
) -> ApiResult<Json<Value>> {
    let not_found = || {
        Problem::not_found(
            "transaction_not_found",
            "no transfer with this idempotency key (for this client)",
        )
    };
    // A client's key, or the reserved key of one of its adjusting transfers.
    if IdempotencyKey::parse(&key, "key").is_err() && adjustment_of(&key).is_none() {
        return Err(not_found());
    }
    match tx_store::find_by_key(&state.db, &client, &key).await {
        Ok(Some(record)) => return Ok(Json(views::transaction_json(&record))),
        Ok(None) => {}
        Err(db_error) => {
            let cached = state
                .cache
                .cached_status(&client, &key)
                .await
                .ok()
                .flatten();
            return match cached {
                Some(c) => Ok(Json(json!({
                    "idempotencyKey": key,
                    "status": c.status,
                    "transactionId": c.transaction_id,
                    "failureCode": c.failure_code,
                    "source": "cache",
                }))),
                None => Err(Problem::unavailable("postgres", &db_error)),
            };
        }
    }
    // Accepted but not yet posted: the durable intake record says so even when Redis lost the key.
    let accepted = intake_store::find(&state.db, &client, &key).await?;
    // Redis adds the messageId and expiry when it still has them (best effort).
    let cached = state
        .cache
        .pending(&client, &key)
        .await
        .ok()
        .flatten()
        .flatten();
    if accepted.is_none() && cached.is_none() {
        return Err(not_found());
    }
    let mut body = json!({ "idempotencyKey": key, "status": "PENDING" });
    if let Some(a) = &accepted {
        body["transactionId"] = json!(a.transaction_id);
        body["acceptedAt"] = json!(a.accepted_at);
        if a.outcome_unknown && cached.is_none() {
            // The last send timed out: it may or may not be on the queue.
            body["status"] = json!("UNKNOWN");
            body["detail"] = json!(
                "the queue did not answer when this transfer was sent, so it may or may not be \
                 queued; send the same request again (same key and body) to settle it: it then \
                 posts exactly once, under this transactionId"
            );
        }
    }
    if let Some(a) = cached {
        body["transactionId"] = json!(a.transaction_id);
        body["messageId"] = json!(a.message_id);
        body["acceptedAt"] = json!(a.accepted_at);
        body["expiresAt"] = json!(a.expires_at);
    }
    Ok(Json(body))
}
