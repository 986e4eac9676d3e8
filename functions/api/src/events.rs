//! `/events`: the client's events newest first, one event (the envelope its endpoints receive), and
//! redelivery of an event to its endpoints on request.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::events::EventType;
use shared::store::cut_page;
use shared::store::deliveries::Redelivery;
use shared::store::events::{self, Position};

use crate::AppState;
use crate::extract::{ClientId, PathParam, RawBody, page, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};
use crate::webhooks::{delivery_json, endpoint_id, endpoint_not_found, optional_json};

fn event_not_found() -> Problem {
    Problem::not_found("event_not_found", "no event with this id (for this client)")
}

/// `GET /events[?type=&limit=&cursor=]`: newest first; the cursor is the last event's position.
pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["type", "limit", "cursor"])?;
    let mut limit = page::DEFAULT_PAGE;
    let mut before = None;
    let mut event_type = None;
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = page::limit(&v)?,
            "cursor" => {
                let id = URL_SAFE_NO_PAD
                    .decode(&v)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(page::invalid_cursor)?;
                before = Some(Position::from_event_id(&id).ok_or_else(page::invalid_cursor)?);
            }
            _ => {
                let t = EventType::parse(&v).ok_or_else(|| {
                    bad_parameter(
                        "type",
                        "type is one of the event types (see the API reference)",
                    )
                })?;
                event_type = Some(t.as_str());
            }
        }
    }
    let mut rows = events::list(
        &state.db,
        &client,
        event_type,
        before.as_ref(),
        limit as i64 + 1,
    )
    .await?;
    let next = cut_page(&mut rows, limit, |e| URL_SAFE_NO_PAD.encode(&e.id));
    Ok(Json(json!({
        "events": rows.iter().map(|e| e.envelope()).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let event = events::get(&state.db, &client, &id)
        .await?
        .ok_or_else(event_not_found)?;
    Ok(Json(event.envelope()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedeliverBody {
    #[serde(default)]
    endpoint_id: Option<String>,
}

/// `POST /events/{id}/redeliver` `{endpointId?}`: a new delivery of the same event (same id in the
/// body) to that endpoint, or to every enabled endpoint subscribed to its type.
pub async fn redeliver(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> ApiResult<Response> {
    let body: RedeliverBody = optional_json(&headers, &raw)?;
    let endpoint = body
        .endpoint_id
        .as_deref()
        .map(|e| endpoint_id(e).map_err(|p| p.field("endpointId")))
        .transpose()?;
    let retry = state.config.webhooks.retry_period;
    match shared::services::webhooks::redeliver(&state.db, &client, &id, endpoint, retry).await? {
        Redelivery::EventNotFound => Err(event_not_found()),
        Redelivery::EndpointNotFound => Err(endpoint_not_found().field("endpointId")),
        Redelivery::EndpointDisabled => Err(Problem::new(
            StatusCode::CONFLICT,
            "webhook_endpoint_disabled",
            "this endpoint is disabled; enable it first",
        )
        .field("endpointId")),
        Redelivery::Created(created) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "eventId": id,
                "deliveries": created.iter().map(delivery_json).collect::<Vec<_>>(),
            })),
        )
            .into_response()),
    }
}
