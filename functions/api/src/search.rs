//! `GET /transactions` (search the caller's transactions, newest first, keyset pages) and
//! `GET /transactions/export` (the same filters as CSV or JSON lines, streamed from PostgreSQL and
//! bounded by `EXPORT_MAX_ROWS`; `X-Next-Cursor` and `Link: rel="next"` name the rest).

mod params;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use shared::money::format_amount;
use shared::reconcile::export::neutralise_csv_cell;
use shared::store::search::{self as store, Position};
use shared::store::transactions::TransactionRecord;

use crate::AppState;
use crate::extract::{ClientId, page};
use crate::problem::ApiResult;
use params::{ExportFormat, Route};
use shared::views::transaction_json as record_json;

/// The header naming where the next export starts (the `cursor` to send).
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

fn cursor_of(p: Position) -> String {
    page::encode_cursor(p.posted_at, p.id)
}

pub async fn list(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = params::parse(query.as_deref(), Route::Search)?;
    let (items, next) = store::search(&state.db, &client, &q.filter, q.limit, q.cursor).await?;
    Ok(Json(json!({
        "transactions": items.iter().map(record_json).collect::<Vec<_>>(),
        "nextCursor": next.map(cursor_of),
    })))
}

pub async fn export(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let q = params::parse(query.as_deref(), Route::Export)?;
    let format = q.format.unwrap_or(ExportFormat::Csv);
    let max_rows = state.config.export_max_rows;
    let export = store::export(&state.db, &client, &q.filter, max_rows, q.cursor).await?;
    let rows = export.rows.map(move |r| {
        r.map(|record| match format {
            ExportFormat::Csv => csv_row(&csv_cells(&record)),
            ExportFormat::JsonLines => json_line(&record),
        })
        .inspect_err(|e| tracing::error!(error = %e, "transaction export stopped"))
    });
    let (content_type, extension, body) = match format {
        ExportFormat::Csv => {
            let header = stream::once(async { Ok(csv_row(&CSV_COLUMNS)) });
            (
                "text/csv; charset=utf-8",
                "csv",
                Body::from_stream(header.chain(rows)),
            )
        }
        ExportFormat::JsonLines => ("application/x-ndjson", "jsonl", Body::from_stream(rows)),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"transactions.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(next) = export.next {
        let cursor = cursor_of(next);
        let link = format!(
            "<{}>; rel=\"next\"",
            next_uri(uri.path(), query.as_deref(), &cursor)
        );
        for (name, value) in [(NEXT_CURSOR_HEADER, cursor), ("link", link)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    Ok(response)
}

/// The same request with `cursor` set to where the next export starts.
fn next_uri(path: &str, query: Option<&str>, cursor: &str) -> String {
    let mut pairs: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("cursor"))
        .collect();
    let cursor = format!("cursor={cursor}");
    pairs.push(&cursor);
    format!("{path}?{}", pairs.join("&"))
}

/// The columns of a CSV export, one row per transaction (amounts are the first leg's; `legs` is
/// every leg as JSON when there is more than one).
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "kind",
    "status",
    "failureCode",
    "idempotencyKey",
    "postedAt",
    "effectiveAt",
    "acceptedAt",
    "source_account_id",
    "destination_account_id",
    "amount",
    "currency",
    "legs",
    "reference",
    "description",
    "metadata",
    "parentId",
    "refunded",
];

fn csv_cells(r: &TransactionRecord) -> Vec<String> {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let refunded = r
        .refunds
        .iter()
        .filter(|x| x.currency == r.currency)
        .map(|x| x.amount)
        .sum();
    vec![
        r.id.to_string(),
        r.kind.as_str().to_string(),
        r.status.as_str().to_string(),
        r.failure_code.clone().unwrap_or_default(),
        r.idempotency_key.clone(),
        time(r.posted_at),
        time(r.effective_at.unwrap_or(r.posted_at)),
        time(r.accepted_at),
        r.source_account_id.clone(),
        r.destination_account_id.clone(),
        format_amount(r.amount, &r.currency),
        r.currency.clone(),
        r.legs.as_ref().map(Value::to_string).unwrap_or_default(),
        r.reference.clone().unwrap_or_default(),
        r.description.clone().unwrap_or_default(),
        r.metadata.to_string(),
        r.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        format_amount(refunded, &r.currency),
    ]
}

/// One CSV record, every cell neutralised against formula injection (OWASP).
fn csv_row<S: AsRef<str>>(cells: &[S]) -> Bytes {
    let mut out = csv::Writer::from_writer(Vec::new());
    let written = out.write_record(
        cells
            .iter()
            .map(|c| neutralise_csv_cell(c.as_ref()).into_owned()),
    );
    // Writing to memory cannot fail; an empty record would say so in the file.
    debug_assert!(written.is_ok());
    Bytes::from(out.into_inner().unwrap_or_default())
}

/// One JSON line: the object `GET /transactions/{id}` answers.
fn json_line(r: &TransactionRecord) -> Bytes {
    let mut line = serde_json::to_vec(&record_json(r)).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_neutralised_and_quoted() {
        let row = csv_row(&["=HYPERLINK(\"x\")", "-12.50", "a,b", "@x"]);
        assert_eq!(
            std::str::from_utf8(&row).unwrap(),
            "\"'=HYPERLINK(\"\"x\"\")\",-12.50,\"a,b\",'@x\n"
        );
    }

    #[test]
    fn the_next_uri_replaces_the_cursor() {
        assert_eq!(
            next_uri(
                "/api/v1/transactions/export",
                Some("format=csv&cursor=old&kind=hold"),
                "new"
            ),
            "/api/v1/transactions/export?format=csv&kind=hold&cursor=new"
        );
        assert_eq!(next_uri("/p", None, "c"), "/p?cursor=c");
    }
}
