//! The one mapping from errors to `application/problem+json` (RFC 9457). Every error a client can
//! cause has a stable `code`; `field` names the offending input when there is one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::ledger::FailureCode;
use shared::reconcile::workflow::DiscrepancyStatus;
use shared::services::discrepancies::{ResolveError, Sent};
use shared::services::intake::IntakeError;
use shared::services::movement::MovementError;
use shared::services::reconciliation::RunError;
use shared::services::statements::ImportError;
use shared::store::StoreError;
use shared::validation::ValidationError;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u32>,
    pub extra: Map<String, Value>,
    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 section 3).
    pub www_authenticate: Option<&'static str>,
}

/// The challenge for a request without a bearer token.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"payment-ledger\"";
/// The challenge for a bearer token this API does not know.
pub const INVALID_TOKEN_CHALLENGE: &str =
    "Bearer realm=\"payment-ledger\", error=\"invalid_token\"";

pub type ApiResult<T> = Result<T, Problem>;

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after_secs: None,
            extra: Map::new(),
            www_authenticate: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into()).filter(|f| !f.is_empty());
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// 401 for a request without a bearer token, with the RFC 6750 challenge.
    pub fn unauthorized() -> Self {
        Self::challenge(
            "send a valid API token as `Authorization: Bearer <token>`",
            BEARER_CHALLENGE,
        )
    }

    /// 401 for a bearer token this API does not know (RFC 6750 `error="invalid_token"`).
    pub fn invalid_token() -> Self {
        Self::challenge(
            "the bearer token is not valid here; send a valid API token as `Authorization: Bearer <token>`",
            INVALID_TOKEN_CHALLENGE,
        )
    }

    fn challenge(detail: &str, www_authenticate: &'static str) -> Self {
        Self {
            www_authenticate: Some(www_authenticate),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        }
    }

    /// 403: the token is valid but its role may not call this route.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 404 for a hold id this client has no hold under (or not a UUID).
    pub fn hold_not_found() -> Self {
        Self::not_found(
            "hold_not_found",
            "no hold with this id (for this client); a hold still queued is not found until it posts",
        )
    }

    /// 404 for a transaction id this client has no recorded transaction under (or not a UUID).
    pub fn transaction_not_found() -> Self {
        Self::not_found(
            "transaction_not_found",
            "no recorded transaction with this id (for this client); one still queued is not found until it posts",
        )
    }

    pub fn unprocessable(code: &'static str, field: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail).field(field)
    }

    /// A dependency is down, with a detail that says what the client should do.
    pub fn unavailable_because(
        component: &str,
        err: &dyn std::fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        tracing::error!(component, error = %err, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            detail,
        )
        .retry_after(1)
        .with("component", json!(component))
    }

    /// A dependency is down: retryable, nothing was done.
    pub fn unavailable(component: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(component, error = %err, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("{component} is unavailable; nothing was changed, retry later"),
        )
        .retry_after(1)
        .with("component", json!(component))
    }
}

/// 400 for a query parameter that is not one this route understands.
pub(crate) fn bad_parameter(name: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_parameter", detail).field(name)
}

impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.detail).field(e.field)
    }
}

/// A PostgreSQL failure: retryable, nothing was changed.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self::unavailable("postgres", &e)
    }
}

/// An intake failure (a client's transfer, or a discrepancy's adjusting transfer).
impl From<IntakeError> for Problem {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::InProgress => Problem::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this idempotency key is still being accepted; retry shortly",
            )
            .field("idempotencyKey")
            .retry_after(1),
            IntakeError::KeyReused => Problem::unprocessable(
                "idempotency_key_reused",
                "idempotencyKey",
                "this idempotency key was already used for a different request",
            ),
            IntakeError::Cache(e) => Problem::unavailable_because(
                "redis",
                &e,
                "redis is unavailable; nothing was enqueued: retry with the same idempotency key",
            ),
            IntakeError::Store(e) => Problem::unavailable_because(
                "postgres",
                &e,
                "postgres is unavailable; nothing was enqueued: retry with the same idempotency key",
            ),
            IntakeError::Queue(e) => Problem::unavailable_because(
                "sqs",
                &e,
                format!(
                    "the queue refused the transfer, so nothing was enqueued ({e}); retry later"
                ),
            ),
            IntakeError::OutcomeUnknown {
                transaction_id,
                error,
            } => {
                tracing::error!(component = "sqs", %error, %transaction_id, "send outcome unknown");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "outcome_unknown",
                    "outcome unknown: the queue did not answer in time, so the transfer may or may not \
                     have been accepted; retry with the same idempotency key and the same body (it then \
                     posts exactly once, under this transactionId); a new key could pay twice",
                )
                .retry_after(1)
                .with("component", json!("sqs"))
                .with("transactionId", json!(transaction_id))
            }
        }
    }
}

/// A hold, capture, void or refund refused at intake.
impl From<MovementError> for Problem {
    fn from(e: MovementError) -> Self {
        match e {
            MovementError::HoldNotFound => Problem::hold_not_found(),
            MovementError::TransactionNotFound => Problem::transaction_not_found(),
            MovementError::Conflict(code) => {
                let detail = match code {
                    FailureCode::HoldCaptured => "the hold was captured in full: nothing remains",
                    FailureCode::HoldVoided => "the hold was voided",
                    FailureCode::HoldExpired => "the hold expired: what it reserved was released",
                    FailureCode::CaptureExceedsHold => {
                        "the amount is more than remains of the hold"
                    }
                    FailureCode::RefundExceedsRemaining => {
                        "the amount is more than remains to refund (the leg's amount less earlier refunds)"
                    }
                    _ => {
                        "the transaction is not a posted transfer or capture: it cannot be refunded"
                    }
                };
                let p = Problem::new(StatusCode::CONFLICT, code.as_str(), detail);
                match code {
                    FailureCode::CaptureExceedsHold | FailureCode::RefundExceedsRemaining => {
                        p.field("amount")
                    }
                    _ => p,
                }
            }
            MovementError::Invalid(e) => e.into(),
            MovementError::Intake(e) => e.into(),
            MovementError::Store(e) => e.into(),
        }
    }
}

/// A statement import refused (unparseable, or invalid lines without bestEffort) or failed.
impl From<ImportError> for Problem {
    fn from(e: ImportError) -> Self {
        match e {
        ImportError::Statement(e) => Problem::unprocessable(e.code(), "", e.to_string()),
        ImportError::Rejected { rejected, lines } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "statement_rejected",
            format!("{rejected} line(s) are invalid, so nothing was imported; fix them, or send bestEffort=true to import the valid lines"),
        )
        .with("lines", json!(lines)),
        ImportError::Store(e) => e.into(),
        }
    }
}

/// A reconciliation run that did not finish.
impl From<RunError> for Problem {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => e.into(),
            RunError::Overflow(e) => Problem::unprocessable(
                "amount_overflow",
                "accountId",
                format!(
                    "the window's totals do not fit in a decimal ({e}); reconcile a smaller window"
                ),
            ),
        }
    }
}

/// A workflow change the discrepancy's status does not allow.
fn invalid_transition(from: DiscrepancyStatus, to: DiscrepancyStatus) -> Problem {
    let detail = if from == DiscrepancyStatus::Adjusting {
        format!(
            "a discrepancy that is ADJUSTING cannot become {to} by hand: its adjusting transfer decides (posted: RESOLVED; rejected: OPEN)"
        )
    } else {
        format!(
            "a discrepancy that is {from} cannot become {to} (OPEN -> INVESTIGATING -> RESOLVED | IGNORED; action adjust: ADJUSTING until its transfer posts)"
        )
    };
    Problem::new(StatusCode::CONFLICT, "invalid_transition", detail).field("status")
}

/// A resolution refused, or one that sent something and then failed (the detail says so).
impl From<ResolveError> for Problem {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound(id) => {
                Problem::not_found("discrepancy_not_found", format!("no discrepancy {id}"))
            }
            ResolveError::Refused { from, to } => invalid_transition(from, to),
            ResolveError::NotAdjustable { detail, reason } => {
                let problem = Problem::unprocessable("not_adjustable", "action", detail);
                match reason {
                    Some(code) => problem.with("reason", json!(code)),
                    None => problem,
                }
            }
            ResolveError::AccountNotFound(id) => {
                Problem::not_found("account_not_found", format!("no account {id}")).field("accountId")
            }
            ResolveError::SuspenseUnusable(detail) => {
                Problem::unprocessable("suspense_account_unusable", "suspenseAccountId", detail)
            }
            ResolveError::AdjustmentInProgress(recorded) => Problem::new(
                StatusCode::CONFLICT,
                "adjustment_in_progress",
                format!("an adjusting transfer against {recorded} is waiting to post for this discrepancy; it becomes RESOLVED when it posts (OPEN again if it is rejected)"),
            )
            .field("suspenseAccountId"),
            ResolveError::NotRedrivable => Problem::unprocessable(
                "not_redrivable",
                "action",
                "only a dead-lettered, well-formed transfer can be redriven (a malformed one would fail again: ignore it)",
            ),
            ResolveError::DeadLetterGone(detail) => {
                Problem::new(StatusCode::CONFLICT, "dead_letter_gone", detail)
            }
            ResolveError::Store(e) => e.into(),
            ResolveError::Intake(e) => e.into(),
            ResolveError::Redrive(e) => {
                let detail = if e.outcome_unknown() {
                    "the queue did not answer: the transfer may have been redriven; resolve again with \
                     the same request (the same deduplication id, and the ledger posts a key once)"
                } else {
                    "the queue refused the redrive, so nothing was sent; retry later"
                };
                Problem::unavailable_because("sqs", &e, detail)
            }
            ResolveError::NotRecorded {
                sent: Sent::Adjustment,
                error,
            } => Problem::unavailable_because(
                "postgres",
                &error,
                "the adjusting transfer was queued, but recording it failed; resolve again with the same \
                 request: it resumes the same transfer",
            ),
            ResolveError::NotRecorded {
                sent: Sent::Redrive,
                error,
            } => Problem::unavailable_because(
                "postgres",
                &error,
                "the transfer was redriven, but recording it failed; resolving again with the same \
                 request is safe (the same deduplication id, and the ledger posts a key once)",
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:payment-ledger:problem:{}", self.code)),
        );
        body.insert(
            "title".into(),
            json!(self.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("code".into(), json!(self.code));
        body.insert("detail".into(), json!(self.detail));
        if let Some(field) = self.field {
            body.insert("field".into(), json!(field));
        }
        body.extend(self.extra);
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
