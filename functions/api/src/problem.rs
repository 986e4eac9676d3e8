//! The one mapping from errors to `application/problem+json` (RFC 9457). Every error a client can
//! cause has a stable `code`; `field` names the offending input when there is one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
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

/// A PostgreSQL failure: retryable, nothing was changed.
pub(crate) fn db(e: impl std::fmt::Display) -> Problem {
    Problem::unavailable("postgres", &e)
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
