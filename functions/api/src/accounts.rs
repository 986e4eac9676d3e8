//! `/accounts`: open an account, read it, its balance (now or as of a time) and its ledger.
//!
//! Visibility: an account belongs to the client that opened it. Only that client can read it or
//! move money from or to it; to anyone else it does not exist (404 `account_not_found`, and a
//! transfer touching it fails `account_not_found`). Account ids are unique across clients, so
//! opening an id another client holds is 409 `account_id_taken`, which reveals nothing else.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::accounts::{self as domain, AccountId, NewAccount, OverdraftLimit};
use shared::money::{Currency, format_amount};
use shared::store::accounts::{self as store, Account, CreateOutcome, LedgerCursor};
use shared::transfers::parse_amount_json;
use shared::validation::ValidationError;

use crate::AppState;
use crate::extract::{ClientId, JsonBody, PathParam, page, query_params};
use crate::problem::{ApiResult, Problem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateAccountBody {
    id: String,
    currency: String,
    #[serde(default)]
    overdraft_limit: Option<Box<RawValue>>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl CreateAccountBody {
    fn validate(self) -> Result<NewAccount, ValidationError> {
        let id = AccountId::parse(&self.id, "id")?;
        let currency = Currency::parse(&self.currency)?;
        let overdraft_limit = match self.overdraft_limit {
            None => OverdraftLimit::Limited(shared::money::at_currency_scale(
                Default::default(),
                currency,
                "overdraftLimit",
            )?),
            Some(raw) if raw.get() == "\"unlimited\"" => OverdraftLimit::Unlimited,
            Some(raw) => {
                let value = parse_amount_json(&raw, "overdraftLimit").map_err(|mut e| {
                    e.detail = "overdraftLimit is a non-negative decimal string such as \"100.00\", or \"unlimited\"".into();
                    e
                })?;
                OverdraftLimit::parse(&value.to_string(), currency, "overdraftLimit")?
            }
        };
        let metadata = domain::parse_metadata(self.metadata, "metadata")?;
        Ok(NewAccount {
            id,
            currency,
            overdraft_limit,
            metadata,
        })
    }
}

pub fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "currency": a.currency,
        "overdraftLimit": match a.overdraft_limit {
            OverdraftLimit::Unlimited => "unlimited".to_string(),
            OverdraftLimit::Limited(d) => format_amount(d, &a.currency),
        },
        "metadata": a.metadata,
        "createdAt": a.created_at,
        "balance": format_amount(a.balance, &a.currency),
    })
}

pub async fn create(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    JsonBody(body): JsonBody<CreateAccountBody>,
) -> ApiResult<Response> {
    let new = body.validate()?;
    let outcome = store::create(&state.db, &client, &new).await?;
    Ok(match outcome {
        CreateOutcome::Created(a) => {
            tracing::info!(account_id = %a.id, client = %client, "account opened");
            let location = format!("/api/v1/accounts/{}", a.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(account_json(&a)),
            )
                .into_response()
        }
        CreateOutcome::AlreadyExists(a) => (StatusCode::OK, Json(account_json(&a))).into_response(),
        CreateOutcome::Conflicts(a) => Problem::new(
            StatusCode::CONFLICT,
            "account_exists",
            format!("account {} already exists with other attributes", a.id),
        )
        .field("id")
        .with("account", account_json(&a))
        .into_response(),
        CreateOutcome::Taken => Problem::new(
            StatusCode::CONFLICT,
            "account_id_taken",
            format!("account id {} is not available; choose another", new.id),
        )
        .field("id")
        .into_response(),
    })
}

/// The caller's account `id`, or 404 `account_not_found` (naming `field`, when given, as the
/// input that named it): another client's account does not exist for this caller.
pub(crate) async fn visible_account(
    state: &AppState,
    client: &str,
    id: &str,
    field: Option<&str>,
) -> ApiResult<Account> {
    let not_found = || {
        let problem = Problem::not_found("account_not_found", format!("no account {id}"));
        match field {
            Some(field) => problem.field(field),
            None => problem,
        }
    };
    if AccountId::parse(id, field.unwrap_or("id")).is_err() {
        return Err(not_found());
    }
    store::get(&state.db, client, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let account = visible_account(&state, &client, &id, None).await?;
    Ok(Json(account_json(&account)))
}

pub async fn balance(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["asOf"])?;
    let as_of = params
        .iter()
        .find(|(k, _)| k == "asOf")
        .map(|(_, v)| {
            DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|d| d.with_timezone(&Utc))
                .filter(|d| shared::validation::date_in_range(d.date_naive()))
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_as_of",
                        "asOf must be an RFC 3339 timestamp such as 2026-01-31T23:59:59Z, between 1970 and 9999",
                    )
                    .field("asOf")
                })
        })
        .transpose()?;
    let account = visible_account(&state, &client, &id, None).await?;
    let money = |d: Decimal| format_amount(d, &account.currency);
    Ok(Json(match as_of {
        // Now: posted, what holds reserve, and what is left to spend.
        None => json!({
            "accountId": account.id,
            "currency": account.currency,
            "balance": money(account.balance),
            "posted": money(account.balance),
            "pending": money(account.pending),
            "available": money(account.balance - account.pending),
            "asOf": account.balance_updated_at,
        }),
        // By value date: entries effective at or before `asOf`, whenever they posted.
        Some(t) => json!({
            "accountId": account.id,
            "currency": account.currency,
            "balance": money(store::balance_as_of(&state.db, &account.id, t).await?),
            "asOf": t,
            "basis": "effectiveAt",
        }),
    }))
}

pub async fn ledger(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["limit", "cursor"])?;
    let mut limit = page::DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in params {
        if k == "limit" {
            limit = page::limit(&v)?;
        } else {
            let (posted_at, id) = page::cursor(&v)?;
            cursor = Some(LedgerCursor { posted_at, id });
        }
    }
    let account = visible_account(&state, &client, &id, None).await?;
    let (entries, next) = store::ledger_page(&state.db, &account.id, limit, cursor).await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "transactionId": e.transaction_id,
                "accountId": e.account_id,
                "amount": format_amount(e.amount, &e.currency),
                "currency": e.currency,
                "balanceAfter": format_amount(e.balance_after, &e.currency),
                "counterpartyAccountId": e.counterparty_account_id,
                "reference": e.reference,
                "postedAt": e.posted_at,
                "effectiveAt": e.effective_at,
                "leg": e.leg,
                "kind": e.kind,
            })
        })
        .collect();
    Ok(Json(json!({
        "entries": entries,
        "nextCursor": next.map(|c| page::encode_cursor(c.posted_at, c.id)),
    })))
}
