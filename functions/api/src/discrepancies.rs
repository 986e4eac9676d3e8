//! The discrepancy workflow: list, read, resolve one (by hand, with an adjusting transfer, or by
//! redriving a dead letter: `services::discrepancies`) and resolve many.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::reconcile::discrepancies::{
    DiscrepancyFilter, HistoryEntry, StatusChange, StoredDiscrepancy,
};
use shared::reconcile::findings::FindingKind;
use shared::reconcile::workflow::DiscrepancyStatus;
use shared::services::discrepancies::{self, Action};
use shared::store::discrepancies as store;
use shared::views;
use uuid::Uuid;

use crate::AppState;
use crate::extract::{ClientId, JsonBody, PathParam, page, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};

fn event_json(e: &HistoryEntry) -> Value {
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
            "status" => {
                filter.status = Some(DiscrepancyStatus::parse(&v).ok_or_else(|| {
                    let all: Vec<&str> = DiscrepancyStatus::ALL.map(|s| s.as_str()).into();
                    bad_parameter("status", format!("status is one of {}", all.join(", ")))
                })?);
            }
            "kind" if FindingKind::parse(&v).is_some() => filter.kind = FindingKind::parse(&v),
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
        "discrepancies": items.iter().map(views::discrepancy_json).collect::<Vec<_>>(),
        "nextCursor": next.map(|(at, id)| page::encode_cursor(at, id)),
    })))
}

async fn load_discrepancy(
    state: &AppState,
    client: &str,
    id: &str,
) -> ApiResult<(StoredDiscrepancy, Vec<HistoryEntry>)> {
    let uuid = parse_uuid(id, "discrepancy_not_found", "discrepancy")?;
    store::get_discrepancy(&state.db, client, uuid)
        .await?
        .ok_or_else(|| Problem::not_found("discrepancy_not_found", format!("no discrepancy {id}")))
}

fn with_history(d: &StoredDiscrepancy, events: &[HistoryEntry]) -> Value {
    let mut body = views::discrepancy_json(d);
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

/// The status a client asks for (INVESTIGATING, RESOLVED or IGNORED), its note checked.
fn settable_status(status: &str, note: Option<&str>) -> ApiResult<DiscrepancyStatus> {
    let status = DiscrepancyStatus::parse(status)
        .filter(|s| DiscrepancyStatus::SETTABLE.contains(s))
        .ok_or_else(|| {
            Problem::unprocessable(
                "invalid_field",
                "status",
                "status is INVESTIGATING, RESOLVED or IGNORED",
            )
        })?;
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(Problem::unprocessable(
            "field_too_long",
            "note",
            format!("note is limited to {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(status)
}

/// The action a resolve request names, checked against its status and fields.
fn action(body: &ResolveBody, status: DiscrepancyStatus) -> ApiResult<Action> {
    if body.action.is_some() && status != DiscrepancyStatus::Resolved {
        return Err(Problem::unprocessable(
            "invalid_field",
            "action",
            "an action resolves: send status RESOLVED with it",
        ));
    }
    let action = match body.action.as_deref() {
        None => Action::None,
        Some("adjust") => Action::Adjust {
            suspense_account_id: body.suspense_account_id.clone(),
        },
        Some("redrive") => Action::Redrive,
        Some(other) => {
            return Err(Problem::unprocessable(
                "invalid_field",
                "action",
                format!("unknown action {other:?}: use adjust or redrive"),
            ));
        }
    };
    if body.suspense_account_id.is_some() && !matches!(action, Action::Adjust { .. }) {
        return Err(Problem::unprocessable(
            "invalid_field",
            "suspenseAccountId",
            "suspenseAccountId goes with action adjust",
        ));
    }
    Ok(action)
}

pub async fn resolve(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<ResolveBody>,
) -> ApiResult<Json<Value>> {
    let status = settable_status(&body.status, body.note.as_deref())?;
    let action = action(&body, status)?;
    let (d, events) = load_discrepancy(&state, &client, &id).await?;
    if d.status == status {
        return Ok(Json(with_history(&d, &events)));
    }
    discrepancies::resolve(&state, &client, &d, status, action, body.note.as_deref()).await?;
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
    let status = settable_status(&body.status, body.note.as_deref())?;
    if body.ids.is_empty() || body.ids.len() > MAX_BULK {
        return Err(Problem::unprocessable(
            "invalid_field",
            "ids",
            format!("ids holds 1 to {MAX_BULK} discrepancy ids"),
        ));
    }
    let mut results = Vec::with_capacity(body.ids.len());
    let (mut changed, mut failed) = (0, 0);
    for id in &body.ids {
        let outcome = match Uuid::parse_str(id) {
            Err(_) => StatusChange::NotFound,
            Ok(uuid) => {
                discrepancies::set_status(&state, &client, uuid, status, body.note.as_deref())
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
        results.push(json!({"id": id, "result": result, "fromStatus": from.map(|f| f.as_str())}));
    }
    Ok(Json(
        json!({"status": body.status, "changed": changed, "failed": failed, "results": results}),
    ))
}
