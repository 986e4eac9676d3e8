//! `POST /transactions/bulk`: many transfers in one request. Not atomic (the default): each item
//! is accepted on its own under its own key, with one result per item in request order, and the
//! accepted ones go to SQS in batch sends. Atomic: the items are the legs of one transaction that
//! posts whole or not at all, under the request's key.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::services::intake::{self, Intake};
use shared::transfers::{IdempotencyKey, LegInput, MAX_LEGS, Transfer, TransferInput, status_path};

use crate::AppState;
use crate::extract::{ClientId, JsonBody, parse_json};
use crate::problem::{ApiResult, Problem};
use crate::transactions::{SubmitBody, accepted_response_with, idempotency_key};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    items: Vec<Box<RawValue>>,
    #[serde(default)]
    atomic: bool,
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

pub async fn submit(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BulkBody>,
) -> ApiResult<Response> {
    let max = state.config.bulk_max_items;
    if body.items.is_empty() {
        return Err(Problem::unprocessable(
            "invalid_field",
            "items",
            "a bulk request carries at least one item",
        ));
    }
    if body.items.len() > max {
        return Err(Problem::unprocessable(
            "too_many_items",
            "items",
            format!("a bulk request carries at most {max} items (BULK_MAX_ITEMS)"),
        ));
    }
    if body.atomic {
        return atomic(&state, &client, &headers, body).await;
    }
    for (present, field) in [
        (body.idempotency_key.is_some(), "idempotencyKey"),
        (headers.contains_key("idempotency-key"), "Idempotency-Key"),
        (body.reference.is_some(), "reference"),
        (body.description.is_some(), "description"),
        (body.metadata.is_some(), "metadata"),
    ] {
        if present {
            return Err(Problem::unprocessable(
                "invalid_field",
                field,
                "only an atomic bulk request has a key, reference, description or metadata of its own; each item carries its own",
            ));
        }
    }
    let results = each_on_its_own(&state, &client, body.items).await?;
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    let body = json!({
        "atomic": false,
        "accepted": count("ACCEPTED"),
        "replayed": count("REPLAYED"),
        "rejected": count("REJECTED"),
        "results": results,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The result of an item that did not get through, from the problem it would have been alone.
fn rejected(index: usize, key: Option<&str>, p: Problem) -> Value {
    let mut r = json!({
        "index": index,
        "status": "REJECTED",
        "idempotencyKey": key,
        "code": p.code,
        "detail": p.detail,
    });
    if let Some(field) = p.field {
        r["field"] = json!(field);
    }
    r
}

/// Parses and validates every item, then accepts the valid ones together.
async fn each_on_its_own(
    state: &AppState,
    client: &str,
    items: Vec<Box<RawValue>>,
) -> ApiResult<Vec<Value>> {
    let parsed: Vec<Result<SubmitBody, Problem>> = items
        .iter()
        .map(|raw| parse_json::<SubmitBody>(raw.get().as_bytes()))
        .collect();
    let currencies = source_currencies(state, client, &parsed).await?;
    let rules = state.config.intake_rules();
    let now = Utc::now();
    let mut results: Vec<Option<Value>> = vec![None; items.len()];
    let mut keys = HashSet::new();
    let mut valid: Vec<(usize, IdempotencyKey, Transfer)> = Vec::new();
    for (i, item) in parsed.into_iter().enumerate() {
        let item = match item {
            Ok(item) => item,
            Err(p) => {
                results[i] = Some(rejected(i, None, p));
                continue;
            }
        };
        let key_text = item.idempotency_key.clone();
        let key = match IdempotencyKey::parse(key_text.as_deref().unwrap_or(""), "idempotencyKey") {
            Ok(k) => k,
            Err(e) => {
                results[i] = Some(rejected(i, key_text.as_deref(), e.into()));
                continue;
            }
        };
        if !keys.insert(key.as_str().to_string()) {
            let p = Problem::unprocessable(
                "duplicate_item_key",
                "idempotencyKey",
                "another item of this request has the same idempotency key",
            );
            results[i] = Some(rejected(i, Some(key.as_str()), p));
            continue;
        }
        let currency = item
            .transaction
            .source_account_id
            .as_ref()
            .and_then(|s| currencies.get(s).copied());
        match item.transaction.validate_with(currency, &rules, now) {
            Ok(t) => valid.push((i, key, t)),
            Err(e) => {
                let p = Problem::from(e.under("transaction"));
                results[i] = Some(rejected(i, Some(key.as_str()), p));
            }
        }
    }
    let (indexes, requests): (Vec<usize>, Vec<(IdempotencyKey, Transfer)>) =
        valid.into_iter().map(|(i, k, t)| (i, (k, t))).unzip();
    let keys: Vec<String> = requests
        .iter()
        .map(|(k, _)| k.as_str().to_string())
        .collect();
    let outcomes = intake::accept_many(state, client, requests).await;
    for ((i, key), outcome) in indexes.into_iter().zip(keys).zip(outcomes) {
        results[i] = Some(match outcome {
            Ok(intake) => {
                let (status, a) = match intake {
                    Intake::Accepted(a) => ("ACCEPTED", a),
                    Intake::Replayed(a) => ("REPLAYED", a),
                };
                json!({
                    "index": i,
                    "status": status,
                    "idempotencyKey": a.idempotency_key,
                    "transactionId": a.transaction_id,
                    "messageId": a.message_id,
                    "pollUrl": status_path(&a.idempotency_key),
                })
            }
            Err(e) => rejected(i, Some(&key), e.into()),
        });
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("one result an item"))
        .collect())
}

/// The currencies of the source accounts of items that name no currency (one query).
async fn source_currencies(
    state: &AppState,
    client: &str,
    parsed: &[Result<SubmitBody, Problem>],
) -> ApiResult<HashMap<String, shared::money::Currency>> {
    let ids: Vec<&str> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .filter(|b| b.transaction.currency.is_none() && b.transaction.legs.is_none())
        .filter_map(|b| b.transaction.source_account_id.as_deref())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(shared::store::accounts::currencies(&state.db, client, &ids).await?)
}

/// The items as the legs of one transaction under the request's key.
async fn atomic(
    state: &AppState,
    client: &str,
    headers: &HeaderMap,
    body: BulkBody,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, headers)?;
    if body.items.len() > MAX_LEGS {
        return Err(Problem::unprocessable(
            "too_many_legs",
            "items",
            format!("an atomic bulk request is one transaction: at most {MAX_LEGS} items (legs)"),
        ));
    }
    let mut transfers = Vec::with_capacity(body.items.len());
    for (i, raw) in body.items.iter().enumerate() {
        let at = |field: &str| format!("items[{i}].{field}");
        let item: SubmitBody = parse_json(raw.get().as_bytes()).map_err(|mut p| {
            p.field = Some(
                at(p.field.as_deref().unwrap_or(""))
                    .trim_end_matches('.')
                    .to_string(),
            );
            p
        })?;
        let t = item.transaction;
        for (present, field) in [
            (item.idempotency_key.is_some(), "idempotencyKey"),
            (t.legs.is_some(), "transaction.legs"),
            (t.reference.is_some(), "transaction.reference"),
            (t.description.is_some(), "transaction.description"),
            (t.metadata.is_some(), "transaction.metadata"),
            (t.effective_at.is_some(), "transaction.effectiveAt"),
        ] {
            if present {
                return Err(Problem::unprocessable(
                    "invalid_field",
                    &at(field),
                    "an atomic bulk request's items are legs: source, destination, amount and currency only (the request carries the key, reference, description and metadata)",
                ));
            }
        }
        transfers.push(SubmitBody {
            transaction: t,
            idempotency_key: None,
        });
    }
    // Without a currency, a leg is in its source account's currency (one query for all).
    let parsed: Vec<Result<SubmitBody, Problem>> = transfers.into_iter().map(Ok).collect();
    let currencies = source_currencies(state, client, &parsed).await?;
    let mut legs = Vec::with_capacity(parsed.len());
    for (i, item) in parsed.into_iter().enumerate() {
        let t = item?.transaction;
        let currency = t.currency.clone().or_else(|| {
            let source = t.source_account_id.as_ref()?;
            currencies.get(source).map(|c| c.code().to_string())
        });
        legs.push(LegInput {
            source_account_id: required(t.source_account_id, i, "source_account_id")?,
            destination_account_id: required(
                t.destination_account_id,
                i,
                "destination_account_id",
            )?,
            amount: Some(required(t.amount, i, "amount")?),
            currency,
        });
    }
    let count = legs.len();
    let input = TransferInput {
        legs: Some(legs),
        reference: body.reference,
        description: body.description,
        metadata: body.metadata,
        ..Default::default()
    };
    let transfer = input
        .validate_with(None, &state.config.intake_rules(), Utc::now())
        .map_err(|e| {
            // `legs[i].amount` is the request's `items[i].transaction.amount`.
            let field = e
                .field
                .replacen("legs[", "items[", 1)
                .replacen("].", "].transaction.", 1);
            Problem::from(shared::validation::ValidationError { field, ..e })
        })?;
    let extra = json!({"atomic": true, "legs": count});
    match intake::accept(state, client, &key, transfer).await {
        Ok(Intake::Accepted(a)) => Ok(accepted_response_with(&a, false, extra)),
        Ok(Intake::Replayed(a)) => Ok(accepted_response_with(&a, true, extra)),
        Err(e) => Err(e.into()),
    }
}

/// An atomic item's required field, or 422 `missing_field` at its path in the request.
fn required<T>(value: Option<T>, item: usize, field: &str) -> ApiResult<T> {
    value.ok_or_else(|| {
        Problem::unprocessable(
            "missing_field",
            &format!("items[{item}].transaction.{field}"),
            format!("missing field `{field}`"),
        )
    })
}
