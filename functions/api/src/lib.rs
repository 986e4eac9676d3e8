//! The HTTP API: one axum `Router` is the whole surface. In Lambda `lambda_http::run` serves it;
//! devstack serves the same Router on a port.

mod accounts;
mod bulk;
mod discrepancies;
mod events;
pub mod extract;
mod holds;
mod monitors;
mod operations;
pub mod problem;
mod refunds;
mod runs;
mod search;
mod statements;
mod transactions;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use shared::clients::Clients;

use crate::extract::{Caller, ClientId};
use crate::problem::Problem;

/// Everything a handler needs, built once per container.
pub type AppState = Clients;

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let max_statement = state.config.reconcile.max_statement_bytes;
    let max_bulk = state.config.max_bulk_body_bytes;
    let authenticated = Router::new()
        .route("/accounts", post(accounts::create))
        .route("/accounts/{id}", get(accounts::get))
        .route("/accounts/{id}/balance", get(accounts::balance))
        .route("/accounts/{id}/ledger", get(accounts::ledger))
        .route("/accounts/{id}/holds", get(holds::list))
        .route(
            "/transactions",
            post(transactions::submit).get(search::list),
        )
        .route("/transactions/export", get(search::export))
        .route(
            "/transactions/bulk",
            post(bulk::submit).layer(DefaultBodyLimit::max(max_bulk)),
        )
        .route("/transactions/status/{key}", get(transactions::status))
        .route("/transactions/{id}", get(transactions::get))
        .route("/transactions/{id}/refunds", post(refunds::create))
        .route("/holds", post(holds::create))
        .route("/holds/{id}", get(holds::get))
        .route("/holds/{id}/capture", post(holds::capture))
        .route("/holds/{id}/void", post(holds::void))
        .route("/monitors", post(monitors::create).get(monitors::list))
        .route("/monitors/{id}", get(monitors::get))
        .route("/monitors/{id}/disable", post(monitors::disable))
        .route(
            "/statements",
            post(statements::import).layer(DefaultBodyLimit::max(max_statement)),
        )
        .route("/accounts/{id}/reconcile", post(runs::reconcile))
        .route("/reconciliations/{id}", get(runs::get))
        .route("/discrepancies", get(discrepancies::list))
        .route("/discrepancies/resolve", post(discrepancies::resolve_many))
        .route("/discrepancies/{id}", get(discrepancies::get))
        .route("/discrepancies/{id}/resolve", post(discrepancies::resolve))
        // Events out (issue 12): webhook endpoints, their delivery log, the events and redelivery.
        .route(
            "/webhook-endpoints",
            post(webhooks::create).get(webhooks::list),
        )
        .route("/webhook-endpoints/{id}", get(webhooks::get))
        .route("/webhook-endpoints/{id}/disable", post(webhooks::disable))
        .route("/webhook-endpoints/{id}/enable", post(webhooks::enable))
        .route(
            "/webhook-endpoints/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/webhook-endpoints/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/webhook-deliveries/{id}", get(webhooks::delivery))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/events/{id}/redeliver", post(events::redeliver))
        .route("/queue/stats", get(operations::queue_stats))
        .route("/cache/stats", get(operations::cache_stats))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let public = Router::new()
        .route("/health", get(operations::health))
        .route("/ready", get(operations::ready));
    Router::new()
        .nest("/api/v1", authenticated.merge(public))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Resolves the bearer token to a client id and role (`ClientId` and `Caller` in the request's
/// extensions), or answers 401 with a `WWW-Authenticate` challenge. The token is never logged.
async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, Problem> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(Problem::unauthorized)?;
    let (client, role) = state
        .auth
        .authenticate(token)
        .ok_or_else(Problem::invalid_token)?;
    req.extensions_mut().insert(ClientId(client.to_string()));
    req.extensions_mut().insert(Caller {
        client_id: client.to_string(),
        role,
    });
    Ok(next.run(req).await)
}

async fn route_not_found(req: Request) -> Problem {
    Problem::not_found(
        "route_not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    )
}
