//! Operational routes: health, readiness, and (operator tokens only) queue and cache statistics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::store;

use crate::AppState;
use crate::extract::Operator;
use crate::problem::{ApiResult, Problem};

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<E: std::fmt::Display>(
    fut: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
    }
}

/// Probes PostgreSQL, Redis and SQS in parallel, each with a short timeout.
pub async fn ready(State(state): State<AppState>) -> Response {
    let (pg, redis, sqs) = tokio::join!(
        probe(store::ping(&state.db)),
        probe(state.cache.ping()),
        probe(state.queue.ping())
    );
    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    for (name, result) in [("postgres", pg), ("redis", redis), ("sqs", sqs)] {
        match result {
            Ok(()) => {
                checks.insert(name.into(), json!("ok"));
            }
            Err(e) => {
                tracing::warn!(component = name, error = %e, "readiness probe failed");
                checks.insert(name.into(), json!("unavailable"));
                failing.push(name);
            }
        }
    }
    if failing.is_empty() {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        format!("unavailable: {}", failing.join(", ")),
    )
    .retry_after(5)
    .with("component", json!(failing[0]))
    .with("checks", Value::Object(checks))
    .into_response()
}

/// Operator only.
pub async fn queue_stats(_: Operator, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let stats = state
        .queue
        .stats()
        .await
        .map_err(|e| Problem::unavailable("sqs", &e))?;
    Ok(Json(json!(stats)))
}

/// Operator only. A constant number of Redis commands per call, whatever the keyspace holds.
pub async fn cache_stats(_: Operator, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let stats = state
        .cache
        .stats()
        .await
        .map_err(|e| Problem::unavailable("redis", &e))?;
    Ok(Json(json!(stats)))
}
