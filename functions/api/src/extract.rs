//! Request extraction that answers in problem+json: JSON bodies (with the offending field's path),
//! query strings, and the authenticated client.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use shared::auth::Role;

use crate::problem::Problem;

/// The request's media type, lower case, without parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// A body of any type, with the size limit answered in problem+json.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_problem)
    }
}

fn body_problem(rejection: axum::extract::rejection::BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this API accepts",
        )
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            rejection.body_text(),
        )
    }
}

/// A JSON body deserialized strictly: unknown fields, missing fields and wrong types are 422 with
/// the field's path; non-JSON is 400; over the size limit is 413; not `application/json` is 415.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = media_type(req.headers()).is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The `field` of a problem about the body as a whole (not an object, wrong type at the root).
pub const BODY_FIELD: &str = "body";

/// Strict JSON parsing with the path of the first offending field. A NUL character (`\u0000`)
/// anywhere in a string or key is refused with `nul_character`: PostgreSQL cannot store it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if shared::validation::json_has_nul_escape(bytes) {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| json_problem(e, ""))?;
        shared::validation::reject_nul_json(&value, "")?;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        json_problem(err.into_inner(), &path)
    })?;
    de.end().map_err(|e| json_problem(e, ""))?;
    Ok(value)
}

fn json_problem(err: serde_json::Error, path: &str) -> Problem {
    let field = if path == "." || path.is_empty() {
        String::new()
    } else {
        path.to_string()
    };
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {err}"),
        ),
        Category::Data => {
            let message = strip_position(&err.to_string());
            // For an unknown field the path already ends with it; for a missing one it is the parent.
            let (code, field) = if message.starts_with("unknown field `") {
                ("unknown_field", field)
            } else if let Some(rest) = message.strip_prefix("missing field `") {
                (
                    "missing_field",
                    join(&field, rest.split('`').next().unwrap_or("")),
                )
            } else if field.is_empty() {
                ("invalid_field", BODY_FIELD.to_string())
            } else {
                ("invalid_field", field)
            };
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn strip_position(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(m, _)| m)
        .to_string()
}

/// The one path parameter of a route (`{id}`, `{key}`), percent-decoded. A segment that does not
/// decode to UTF-8 (or holds NUL) is a 400 problem naming the parameter, not axum's plain text.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::Path;
        let name = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|p| {
                let path = p.as_str();
                let start = path.rfind('{')?;
                Some(path[start + 1..path[start..].find('}')? + start].to_string())
            })
            .unwrap_or_else(|| "id".into());
        let invalid = |detail: String| {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_path", detail).field(name.clone())
        };
        let Path(value) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                invalid(format!(
                    "the path parameter `{name}` is not valid: {}",
                    e.body_text()
                ))
            })?;
        if value.contains('\0') {
            return Err(invalid(format!(
                "the path parameter `{name}` must not contain NUL"
            )));
        }
        Ok(PathParam(value))
    }
}

/// The client the bearer token belongs to, put into request extensions by the auth middleware.
#[derive(Clone, Debug)]
pub struct ClientId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientId>()
            .cloned()
            .ok_or_else(Problem::unauthorized)
    }
}

/// The authenticated caller: its client id and its token's role (put into request extensions by
/// the auth middleware, next to `ClientId`).
#[derive(Clone, Debug)]
pub struct Caller {
    pub client_id: String,
    pub role: Role,
}

impl Caller {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(Problem::unauthorized)
    }
}

/// Proof that the caller holds an operator token; any other caller gets 403 `forbidden`. Put it
/// first in an operator-only handler's arguments.
#[derive(Clone, Debug)]
pub struct Operator(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.is_operator() {
            // Inside `nest`, `parts.uri` has lost the `/api/v1` prefix; name the route as called.
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or(parts.uri.path(), |u| u.0.path());
            return Err(Problem::forbidden(format!(
                "{path} is for operator tokens; this token's role is {}",
                caller.role.as_str()
            )));
        }
        Ok(Operator(caller))
    }
}

/// Query parameters as a list; unknown names are rejected so a typo does not silently do nothing.
pub fn query_params(
    parts: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, Problem> {
    query_params_matching(parts, allowed, |_| false)
}

/// `query_params`, also taking the names `also` accepts (a family such as `metadata[key]`).
pub fn query_params_matching(
    parts: Option<&str>,
    allowed: &[&str],
    also: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, Problem> {
    let mut out = Vec::new();
    for pair in parts.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        "query parameters must be UTF-8",
                    )
                })
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if k.contains('\0') || v.contains('\0') {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                shared::validation::NUL_CHARACTER,
                "query parameters must not contain the NUL character",
            )
            .field(k.replace('\0', "")));
        }
        if !allowed.contains(&k.as_str()) && !also(&k) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "unknown_parameter",
                format!(
                    "unknown query parameter `{k}`; this route takes: {}",
                    allowed.join(", ")
                ),
            )
            .field(k));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Keyset pagination: `limit` (1 to `MAX_PAGE`, default `DEFAULT_PAGE`) and an opaque `cursor`, a
/// position (timestamp, id) encoded as base64url.
pub mod page {
    use std::fmt::Display;
    use std::str::FromStr;

    use axum::http::StatusCode;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::{DateTime, Utc};

    use crate::problem::Problem;

    pub const DEFAULT_PAGE: usize = 50;
    pub const MAX_PAGE: usize = 500;

    pub fn encode_cursor(at: DateTime<Utc>, id: impl Display) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{id}", at.timestamp_micros()))
    }

    pub fn decode_cursor<T: FromStr>(s: &str) -> Option<(DateTime<Utc>, T)> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (micros, id) = raw.split_once('.')?;
        // A tampered position outside the dates we accept is not a cursor we handed out.
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)
            .filter(|at| shared::validation::date_in_range(at.date_naive()))?;
        Some((at, id.parse().ok()?))
    }

    pub fn limit(value: &str) -> Result<usize, Problem> {
        value
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
                .field("limit")
            })
    }

    pub fn cursor<T: FromStr>(value: &str) -> Result<(DateTime<Utc>, T), Problem> {
        decode_cursor(value).ok_or_else(invalid_cursor)
    }

    /// 400 `invalid_cursor`: anything but a `nextCursor` the route handed out.
    pub fn invalid_cursor() -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "cursor must be a nextCursor value returned by this route",
        )
        .field("cursor")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cursors_round_trip_and_reject_garbage() {
            let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
            assert_eq!(decode_cursor::<i64>(&encode_cursor(at, 42)), Some((at, 42)));
            let id = uuid::Uuid::now_v7();
            assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
            assert_eq!(decode_cursor::<i64>("not-a-cursor"), None);
            assert_eq!(decode_cursor::<i64>(""), None);
            let far = URL_SAFE_NO_PAD.encode(format!("{}.1", i64::MAX / 2));
            assert_eq!(decode_cursor::<i64>(&far), None);
            let early = URL_SAFE_NO_PAD.encode("-62167219200000000.1");
            assert_eq!(decode_cursor::<i64>(&early), None);
            assert!(limit("0").is_err() && limit("501").is_err() && limit("ten").is_err());
            assert_eq!(limit("500").unwrap(), 500);
        }
    }
}
