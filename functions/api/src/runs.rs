//! Reconciliation runs: `POST /accounts/{id}/reconcile` (run now, or queue it for the reconciler)
//! and `GET /reconciliations/{id}` (the run's report as JSON or CSV, or the queued request).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::reconcile::discrepancies::StoredDiscrepancy;
use shared::reconcile::export;
use shared::reconcile::report::{AccountWindow, RunTrigger};
use shared::services::reconciliation;
use shared::store::reconcile_requests as requests;
use shared::store::{discrepancies, runs};
use uuid::Uuid;

use crate::AppState;
use crate::accounts::visible_account;
use crate::discrepancies::parse_uuid;
use crate::extract::{Caller, ClientId, JsonBody, PathParam, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};
use shared::views::discrepancy_json;

/// The body for a reconciliation that is queued, running, or failed (202 from the reconcile route,
/// 200 from `GET /reconciliations/{id}` until the run exists).
fn queued_json(
    run_id: Uuid,
    account_id: &str,
    start: NaiveDate,
    end: NaiveDate,
    status: &str,
    error: Option<&str>,
    location: &str,
) -> Value {
    json!({
        "runId": run_id,
        "accountId": account_id,
        "status": status,
        "window": {"startDate": start, "endDate": end},
        "error": error,
        "pollUrl": location,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReconcileBody {
    start_date: String,
    end_date: String,
}

fn date(value: &str, field: &str) -> ApiResult<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        Problem::unprocessable(
            "invalid_date",
            field,
            format!("{field} is a date like 2026-01-31"),
        )
    })?;
    Ok(shared::validation::check_date(parsed, field)?)
}

pub const MAX_WINDOW_DAYS: i64 = 366;

pub async fn reconcile(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<ReconcileBody>,
) -> ApiResult<Response> {
    let start = date(&body.start_date, "startDate")?;
    let end = date(&body.end_date, "endDate")?;
    if end < start {
        return Err(Problem::unprocessable(
            "invalid_window",
            "endDate",
            "endDate is before startDate",
        ));
    }
    if (end - start).num_days() >= MAX_WINDOW_DAYS {
        return Err(Problem::unprocessable(
            "invalid_window",
            "endDate",
            format!("a reconciliation window is at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    let account = visible_account(&state, &client, &id, Some("id")).await?;
    let window = AccountWindow {
        client_id: client,
        account_id: account.id,
        start,
        end,
        as_of: Utc::now().date_naive(),
        trigger: RunTrigger::Api,
    };
    let settings = &state.config.reconcile;
    if !reconciliation::fits_synchronously(&state.db, settings, &window.account_id, start, end)
        .await?
    {
        // Too large to finish within the HTTP API's time limit: the reconciler runs it.
        let run_id = reconciliation::queue_reconciliation(&state.db, &window).await?;
        tracing::info!(%run_id, account_id = %window.account_id, "reconciliation queued");
        let location = format!("/api/v1/reconciliations/{run_id}");
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location.clone())],
            Json(queued_json(
                run_id,
                &window.account_id,
                start,
                end,
                "QUEUED",
                None,
                &location,
            )),
        )
            .into_response());
    }
    let result = reconciliation::reconcile_account(&state.db, settings, &window).await?;
    tracing::info!(run_id = %result.run_id, account_id = %window.account_id, "reconciliation run");
    let location = format!("/api/v1/reconciliations/{}", result.run_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(result.report),
    )
        .into_response())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let client = caller.client_id.clone();
    let params = query_params(query.as_deref(), &["format"])?;
    let csv = match params
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
    {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(bad_parameter("format", "format is json or csv")),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let run_id = parse_uuid(&id, "reconciliation_not_found", "reconciliation")?;
    let Some(run) = runs::get_run(&state.db, &client, run_id).await? else {
        // Not run yet (or it failed): a queued request of this client's, or nothing.
        let request = requests::get(&state.db, &client, run_id)
            .await?
            .ok_or_else(|| {
                Problem::not_found(
                    "reconciliation_not_found",
                    format!("no reconciliation {id}"),
                )
            })?;
        let location = format!("/api/v1/reconciliations/{run_id}");
        return Ok(Json(queued_json(
            run_id,
            &request.account_id,
            request.window_start,
            request.window_end,
            request.status.as_str(),
            request.error.as_deref(),
            &location,
        ))
        .into_response());
    };
    // The ledger-wide run (no account) is operations data: an operator reads it whole, with every
    // discrepancy it found; to a client token it does not exist.
    let ledger_wide = run.account_id.is_none();
    if ledger_wide && !caller.is_operator() {
        return Err(Problem::not_found(
            "reconciliation_not_found",
            format!("no reconciliation {id}"),
        ));
    }
    let discrepancies: Vec<StoredDiscrepancy> = discrepancies::run_discrepancies(&state.db, run_id)
        .await?
        .into_iter()
        .filter(|d| ledger_wide || d.client_id == client)
        .collect();
    if !csv {
        let items: Vec<Value> = discrepancies.iter().map(discrepancy_json).collect();
        return Ok(Json(json!({"run": run.report, "discrepancies": items})).into_response());
    }
    let matches = if run.client_id == client {
        runs::run_matches(&state.db, run_id).await?
    } else {
        Vec::new()
    };
    let bytes = export::run_csv(&matches, &discrepancies).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"reconciliation-{run_id}.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
