//! `POST /statements`: import a bank statement (CSV, JSON lines or camt.053) for one account.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use shared::money::Currency;
use shared::reconcile::statements::{self, ParseOptions, StatementFormat};
use shared::services::statements as statement_import;

use crate::AppState;
use crate::accounts::visible_account;
use crate::extract::{ClientId, RawBody, media_type, parse_json, query_params};
use crate::problem::{ApiResult, Problem, bad_parameter};

/// The JSON form of an import: JSON lines inline, or a CSV / camt.053 file as text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatementEnvelope {
    account_id: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    lines: Option<Box<RawValue>>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    mapping: Option<String>,
    #[serde(default)]
    date_format: Option<String>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    best_effort: Option<bool>,
}

struct ImportRequest {
    account_id: String,
    format: StatementFormat,
    bytes: Vec<u8>,
    options: ParseOptions,
    best_effort: bool,
}

fn parse_options(
    mapping: Option<&str>,
    date_format: Option<String>,
    delimiter: Option<&str>,
    currency: Option<&str>,
) -> ApiResult<ParseOptions> {
    let mut options = ParseOptions {
        date_format,
        ..Default::default()
    };
    if let Some(spec) = mapping {
        options.mapping = statements::parse_column_mapping(spec)
            .map_err(|e| Problem::unprocessable("invalid_mapping", "mapping", e))?;
    }
    if let Some(d) = delimiter {
        let d = match d {
            "tab" | "\\t" => "\t",
            other => other,
        };
        if d.len() != 1 {
            return Err(Problem::unprocessable(
                "invalid_field",
                "delimiter",
                "the delimiter is one ASCII character (or `tab`)",
            ));
        }
        options.delimiter = Some(d.as_bytes()[0]);
    }
    if let Some(c) = currency {
        options.default_currency =
            Some(Currency::parse(c).map_err(|e| Problem::from(e.under("")).field("currency"))?);
    }
    Ok(options)
}

fn import_request(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> ApiResult<ImportRequest> {
    let media = media_type(headers).unwrap_or_default();
    if media == "application/json" {
        if query.is_some_and(|q| !q.is_empty()) {
            query_params(query, &[])?;
        }
        let env: StatementEnvelope = parse_json(body)?;
        let format = match env.format.as_deref() {
            None => StatementFormat::Json,
            Some(f) => StatementFormat::parse(f).ok_or_else(|| {
                Problem::unprocessable(
                    "invalid_field",
                    "format",
                    "format is `json`, `csv` or `camt053`",
                )
            })?,
        };
        let bytes = match (format, env.lines, env.content) {
            (StatementFormat::Json, Some(lines), None) => lines.get().as_bytes().to_vec(),
            (StatementFormat::Json, None, Some(content)) => content.into_bytes(),
            (StatementFormat::Csv | StatementFormat::Camt053, None, Some(content)) => {
                content.into_bytes()
            }
            (StatementFormat::Json, _, _) => {
                return Err(Problem::unprocessable(
                    "missing_field",
                    "lines",
                    "send the lines as `lines` (an array)",
                ));
            }
            _ => {
                return Err(Problem::unprocessable(
                    "missing_field",
                    "content",
                    "send a CSV or camt.053 file's text as `content` (or upload it with Content-Type text/csv or application/xml)",
                ));
            }
        };
        return Ok(ImportRequest {
            account_id: env.account_id,
            format,
            bytes,
            options: parse_options(
                env.mapping.as_deref(),
                env.date_format,
                env.delimiter.as_deref(),
                env.currency.as_deref(),
            )?,
            best_effort: env.best_effort.unwrap_or(false),
        });
    }
    let format = match media.as_str() {
        "text/csv" => StatementFormat::Csv,
        "application/xml" | "text/xml" => StatementFormat::Camt053,
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "upload a statement as text/csv, application/xml (camt.053) or application/json",
            ));
        }
    };
    let params = query_params(
        query,
        &[
            "accountId",
            "mapping",
            "dateFormat",
            "delimiter",
            "currency",
            "bestEffort",
        ],
    )?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let account_id =
        get("accountId").ok_or_else(|| bad_parameter("accountId", "accountId is required"))?;
    let best_effort = match get("bestEffort").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_parameter("bestEffort", "bestEffort is true or false")),
    };
    Ok(ImportRequest {
        account_id,
        format,
        bytes: body.to_vec(),
        options: parse_options(
            get("mapping").as_deref(),
            get("dateFormat"),
            get("delimiter").as_deref(),
            get("currency").as_deref(),
        )?,
        best_effort,
    })
}

pub async fn import(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let req = import_request(&headers, query.as_deref(), &body)?;
    let account = visible_account(&state, &client, &req.account_id, Some("accountId")).await?;
    let result = statement_import::import_statement(
        &state.db,
        &client,
        &account.id,
        &req.bytes,
        req.format,
        &req.options,
        req.best_effort,
    )
    .await;
    match result {
        Ok(report) => {
            tracing::info!(account_id = %account.id, imported = report.imported, duplicates = report.duplicates, "statement imported");
            let status = if report.imported > 0 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(json!(report))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
