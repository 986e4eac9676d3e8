//! `/webhook-endpoints` and `/webhook-deliveries`: a client's endpoints (created with a secret shown
//! once, listed, enabled, disabled, their secret rotated with an overlap window) and the delivery
//! log (each delivery's status and attempts).

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::events::EventType;
use shared::services::webhooks as services;
use shared::store::cut_page;
use shared::store::deliveries::{self, AttemptRecord, DeliveryRecord};
use shared::store::webhooks::{self, EndpointRecord};
use shared::webhooks::ALL_TYPES;
use shared::webhooks::address::validate_url;
use uuid::Uuid;

use crate::AppState;
use crate::extract::{
    ClientId, JsonBody, PathParam, RawBody, media_type, page, parse_json, query_params,
};
use crate::problem::{ApiResult, Problem, bad_parameter};

/// The longest description an endpoint may carry.
const MAX_DESCRIPTION: usize = 256;
/// Default and longest overlap of a secret rotation (1 and 7 days).
const DEFAULT_OVERLAP_SECS: u64 = 86_400;
const MAX_OVERLAP_SECS: u64 = 604_800;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

pub fn endpoint_not_found() -> Problem {
    Problem::not_found(
        "webhook_endpoint_not_found",
        "no webhook endpoint with this id (for this client)",
    )
}

fn delivery_not_found() -> Problem {
    Problem::not_found(
        "webhook_delivery_not_found",
        "no webhook delivery with this id (for this client)",
    )
}

pub fn endpoint_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| endpoint_not_found())
}

/// The subscribed types: `["*"]` or known event types, without repeats.
fn event_types(given: Vec<String>) -> ApiResult<Vec<String>> {
    if given.is_empty() {
        return Err(Problem::unprocessable(
            "invalid_event_types",
            "eventTypes",
            "eventTypes must name at least one event type, or \"*\" for all",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, t) in given.into_iter().enumerate() {
        if t != ALL_TYPES && EventType::parse(&t).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(Problem::unprocessable(
                "unknown_event_type",
                &format!("eventTypes[{i}]"),
                format!(
                    "unknown event type; use \"*\" or one of: {}",
                    known.join(", ")
                ),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.iter().any(|t| t == ALL_TYPES) {
        return Ok(vec![ALL_TYPES.to_string()]);
    }
    Ok(out)
}

pub async fn create(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let settings = &state.config.webhooks;
    validate_url(&body.url, settings.allow_private_urls).map_err(|e| {
        Problem::unprocessable(
            "endpoint_url_not_allowed",
            "url",
            format!("this URL cannot receive webhooks: {e}"),
        )
    })?;
    let types = event_types(body.event_types)?;
    let description = body.description.filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(Problem::unprocessable(
            "invalid_description",
            "description",
            format!("description is at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let (endpoint, secret) = services::create_endpoint(
        &state.db,
        &client,
        &body.url,
        description.as_deref(),
        &types,
        settings.max_endpoints,
    )
    .await?
    .ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "webhook_endpoint_limit",
            format!(
                "a client may have at most {} webhook endpoints; disable and reuse one",
                settings.max_endpoints
            ),
        )
    })?;
    let mut body = endpoint_json(&endpoint);
    body["secret"] = json!(secret);
    let location = format!("/api/v1/webhook-endpoints/{}", endpoint.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    query_params(query.as_deref(), &[])?;
    let endpoints = webhooks::list(&state.db, &client).await?;
    Ok(Json(json!({
        "endpoints": endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
    })))
}

pub async fn get(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let endpoint = webhooks::get(&state.db, &client, endpoint_id(&id)?)
        .await?
        .ok_or_else(endpoint_not_found)?;
    Ok(Json(endpoint_json(&endpoint)))
}

pub async fn disable(
    state: State<AppState>,
    client: ClientId,
    id: PathParam,
) -> ApiResult<Json<Value>> {
    set_enabled(state, client, id, false).await
}

pub async fn enable(
    state: State<AppState>,
    client: ClientId,
    id: PathParam,
) -> ApiResult<Json<Value>> {
    set_enabled(state, client, id, true).await
}

async fn set_enabled(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    enabled: bool,
) -> ApiResult<Json<Value>> {
    let endpoint = services::set_enabled(&state.db, &client, endpoint_id(&id)?, enabled)
        .await?
        .ok_or_else(endpoint_not_found)?;
    Ok(Json(endpoint_json(&endpoint)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateBody {
    /// A JSON number: `3600` and `3600.0` are the same integer (JSON Schema agrees).
    #[serde(default)]
    overlap_seconds: Option<serde_json::Number>,
}

/// A body that may be left out: empty means `T::default()`; otherwise JSON as everywhere.
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = media_type(headers).is_some_and(|m| {
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    });
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`, or no body",
        ));
    }
    parse_json(body)
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&id)?;
    let body: RotateBody = optional_json(&headers, &raw)?;
    let whole = |n: &serde_json::Number| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=MAX_OVERLAP_SECS as f64).contains(f))
                .map(|f| f as u64)
        })
    };
    let overlap = match body.overlap_seconds.as_ref().map(whole) {
        None => DEFAULT_OVERLAP_SECS,
        Some(Some(s)) if s <= MAX_OVERLAP_SECS => s,
        Some(_) => {
            return Err(Problem::unprocessable(
                "invalid_overlap",
                "overlapSeconds",
                format!(
                    "overlapSeconds is from 0 (the old secret stops signing now) to {MAX_OVERLAP_SECS} (7 days)"
                ),
            ));
        }
    };
    let (endpoint, secret) =
        services::rotate_secret(&state.db, &client, id, Duration::from_secs(overlap))
            .await?
            .ok_or_else(endpoint_not_found)?;
    let mut body = endpoint_json(&endpoint);
    body["secret"] = json!(secret);
    Ok(Json(body))
}

/// `GET /webhook-endpoints/{id}/deliveries[?status=&limit=&cursor=]`: the delivery log, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query_params(query.as_deref(), &["status", "limit", "cursor"])?;
    let mut limit = page::DEFAULT_PAGE;
    let mut before = None;
    let mut status = None;
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = page::limit(&v)?,
            "cursor" => before = Some(page::cursor::<i64>(&v)?.1),
            _ => {
                if !["PENDING", "SUCCEEDED", "FAILED"].contains(&v.as_str()) {
                    return Err(bad_parameter(
                        "status",
                        "status is one of PENDING, SUCCEEDED, FAILED",
                    ));
                }
                status = Some(v);
            }
        }
    }
    let endpoint = webhooks::get(&state.db, &client, endpoint_id(&id)?)
        .await?
        .ok_or_else(endpoint_not_found)?;
    let mut rows = deliveries::list(
        &state.db,
        &client,
        endpoint.id,
        status.as_deref(),
        before,
        limit as i64 + 1,
    )
    .await?;
    let next = cut_page(&mut rows, limit, |d| {
        page::encode_cursor(d.created_at, d.id)
    });
    Ok(Json(json!({
        "deliveries": rows.iter().map(delivery_json).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

/// `GET /webhook-deliveries/{id}`: one delivery with its attempts.
pub async fn delivery(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
) -> ApiResult<Json<Value>> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(delivery_not_found)?;
    let (delivery, attempts) = deliveries::get(&state.db, &client, id)
        .await?
        .ok_or_else(delivery_not_found)?;
    let mut body = delivery_json(&delivery);
    body["attemptsLog"] = attempts.iter().map(attempt_json).collect();
    Ok(Json(body))
}

/// An endpoint as the API shows it: never its secret.
pub fn endpoint_json(e: &EndpointRecord) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "eventTypes": e.event_types,
        "status": e.status,
        "previousSecretExpiresAt": e.previous_secret_expires_at,
        "createdAt": e.created_at,
        "updatedAt": e.updated_at,
    })
}

pub fn delivery_json(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.id.to_string(),
        "endpointId": d.endpoint_id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": (d.status == "PENDING").then_some(d.next_attempt_at),
        "giveUpAt": d.give_up_at,
        "lastAttemptAt": d.last_attempt_at,
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "redelivery": d.redelivery,
        "createdAt": d.created_at,
        "completedAt": d.completed_at,
    })
}

fn attempt_json(a: &AttemptRecord) -> Value {
    json!({
        "attempt": a.attempt,
        "at": a.at,
        "statusCode": a.status_code,
        "error": a.error,
        "durationMs": a.duration_ms,
    })
}
