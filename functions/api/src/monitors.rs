//! `/monitors`: balance monitors. A client watches an account's posted or available balance
//! against a threshold; posting evaluates the monitor after every transaction that changes the
//! account and sends `monitor.triggered` / `monitor.cleared` through the webhooks.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::accounts::AccountId;
use shared::money::{Currency, at_currency_scale};
use shared::monitors::{Condition, MAX_MONITORS_PER_ACCOUNT, MonitorField};
use shared::services::monitors as services;
use shared::store::monitors::{self, CreateError, MonitorCursor, NewMonitor};
use shared::transfers::parse_amount_json;
use shared::views;
use uuid::Uuid;

use crate::AppState;
use crate::accounts::visible_account;
use crate::extract::{ClientId, JsonBody, PathParam, page, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};

const MAX_DESCRIPTION: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(rename = "accountId")]
    account_id: String,
    #[serde(default)]
    field: Option<String>,
    condition: String,
    threshold: Box<RawValue>,
    #[serde(default)]
    hysteresis: Option<Box<RawValue>>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn invalid(code: &'static str, field: &str, detail: impl Into<String>) -> Problem {
    Problem::unprocessable(code, field, detail)
}

fn monitor_not_found(id: &str) -> Problem {
    Problem::not_found("monitor_not_found", format!("no monitor {id}"))
}

fn monitor_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| monitor_not_found(id))
}

/// `POST /monitors`: 201 with the monitor in the state the account's balance puts it in (a BELOW
/// or ABOVE monitor whose condition already holds is TRIGGERED and fires at once).
pub async fn create(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let field = match body.field.as_deref() {
        None => MonitorField::Available,
        Some(f) => MonitorField::parse(f).ok_or_else(|| {
            invalid(
                "invalid_monitor_field",
                "field",
                "field is POSTED or AVAILABLE",
            )
        })?,
    };
    let condition = Condition::parse(&body.condition).ok_or_else(|| {
        invalid(
            "invalid_condition",
            "condition",
            "condition is BELOW, ABOVE or CROSSING",
        )
    })?;
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(invalid(
            "invalid_description",
            "description",
            format!("description is at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let account = visible_account(&state, &client, &body.account_id, Some("accountId")).await?;
    let currency = Currency::parse(&account.currency)?;
    if let Some(asked) = &body.currency
        && asked != currency.code()
    {
        return Err(invalid(
            "currency_mismatch",
            "currency",
            format!(
                "account {} holds {}, not {asked}",
                account.id,
                currency.code()
            ),
        ));
    }
    let threshold = parse_amount_json(&body.threshold, "threshold")?;
    let threshold = at_currency_scale(threshold, currency, "threshold")?;
    let hysteresis = match &body.hysteresis {
        None => rust_decimal::Decimal::ZERO,
        Some(raw) => {
            let h = parse_amount_json(raw, "hysteresis")?;
            if h.is_sign_negative() && !h.is_zero() {
                return Err(invalid(
                    "invalid_amount",
                    "hysteresis",
                    "hysteresis must not be negative",
                ));
            }
            at_currency_scale(h, currency, "hysteresis")?
        }
    };
    let new = NewMonitor {
        client_id: client,
        account_id: account.id,
        field,
        condition,
        threshold,
        hysteresis,
        description: body.description,
    };
    let monitor = match services::create(&state, new).await {
        Ok(m) => m,
        Err(CreateError::AccountNotFound) => {
            return Err(Problem::not_found(
                "account_not_found",
                format!("no account {}", body.account_id),
            )
            .field("accountId"));
        }
        Err(CreateError::TooMany) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "too_many_monitors",
                format!(
                    "account {} already has {MAX_MONITORS_PER_ACCOUNT} active monitors; disable one first",
                    body.account_id
                ),
            )
            .field("accountId"));
        }
        Err(CreateError::Store(e)) => return Err(e.into()),
    };
    let location = format!("/api/v1/monitors/{}", monitor.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::monitor_json(&monitor)),
    )
        .into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let monitor = monitors::get(&state.db, &client, monitor_id(&id)?)
        .await?
        .ok_or_else(|| monitor_not_found(&id))?;
    Ok(Json(views::monitor_json(&monitor)))
}

/// `GET /monitors[?accountId=&limit=&cursor=]`: the client's monitors, oldest first.
pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["accountId", "limit", "cursor"])?;
    let mut limit = page::DEFAULT_PAGE;
    let mut cursor = None;
    let mut account = None;
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = page::limit(&v)?,
            "cursor" => {
                let (created_at, id) = page::cursor(&v)?;
                cursor = Some(MonitorCursor { created_at, id });
            }
            _ => {
                AccountId::parse(&v, "accountId")
                    .map_err(|_| bad_parameter("accountId", "accountId is not an account id"))?;
                account = Some(v);
            }
        }
    }
    let (items, next) =
        monitors::list(&state.db, &client, account.as_deref(), limit, cursor).await?;
    Ok(Json(json!({
        "monitors": items.iter().map(views::monitor_json).collect::<Vec<_>>(),
        "nextCursor": next.map(|c| page::encode_cursor(c.created_at, c.id)),
    })))
}

/// `POST /monitors/{id}/disable`: never evaluated again; disabling twice answers the same.
pub async fn disable(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let monitor = services::disable(&state, &client, monitor_id(&id)?)
        .await?
        .ok_or_else(|| monitor_not_found(&id))?;
    Ok(Json(views::monitor_json(&monitor)))
}
