//! The query string of `GET /transactions` and `GET /transactions/export`, checked before any SQL:
//! each filter parsed once, every error a 400 problem naming the parameter.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use shared::accounts::{AccountId, MAX_METADATA_BYTES};
use shared::ledger::TransferStatus;
use shared::store::search::{Position, SearchFilter, SearchKind};
use shared::transfers::MAX_REFERENCE_CHARS;

use crate::extract::{page, query_params_matching};
use crate::problem::{ApiResult, Problem, bad_parameter};

/// The filters both routes take (and `metadata[<key>]`).
pub const FILTERS: [&str; 11] = [
    "accountId",
    "status",
    "reference",
    "referencePrefix",
    "amountMin",
    "amountMax",
    "effectiveFrom",
    "effectiveTo",
    "postedFrom",
    "postedTo",
    "kind",
];

/// At most this many `metadata[<key>]` parameters in one query.
pub const MAX_METADATA_KEYS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `limit` and `cursor`.
    Search,
    /// `format` (required) and `cursor`.
    Export,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

#[derive(Debug, PartialEq)]
pub struct SearchQuery {
    pub filter: SearchFilter,
    pub limit: usize,
    pub cursor: Option<Position>,
    /// Always set for `Route::Export`.
    pub format: Option<ExportFormat>,
}

/// The key of a `metadata[<key>]` parameter name.
fn metadata_key(name: &str) -> Option<&str> {
    name.strip_prefix("metadata[")?.strip_suffix(']')
}

pub fn parse(query: Option<&str>, route: Route) -> ApiResult<SearchQuery> {
    let own: &[&str] = match route {
        Route::Search => &["limit", "cursor"],
        Route::Export => &["format", "cursor"],
    };
    let allowed: Vec<&str> = FILTERS.iter().chain(own).copied().collect();
    let params = query_params_matching(query, &allowed, |k| metadata_key(k).is_some())?;
    let mut seen = std::collections::HashSet::new();
    let mut q = SearchQuery {
        filter: SearchFilter::default(),
        limit: page::DEFAULT_PAGE,
        cursor: None,
        format: None,
    };
    let mut metadata = Map::new();
    for (name, value) in params {
        if !seen.insert(name.clone()) {
            return Err(bad_parameter(
                &name,
                format!("{name} is given more than once"),
            ));
        }
        if let Some(key) = metadata_key(&name) {
            metadata_pair(&mut metadata, &name, key, value)?;
            continue;
        }
        let f = &mut q.filter;
        match name.as_str() {
            "accountId" => {
                let id = AccountId::parse(&value, "accountId").map_err(|_| {
                    bad_parameter("accountId", "accountId is 1-64 of A-Z a-z 0-9 . _ : -")
                })?;
                f.account_id = Some(id.as_str().to_string());
            }
            "status" => {
                f.status = Some(
                    TransferStatus::parse(&value)
                        .ok_or_else(|| bad_parameter("status", "status is COMPLETED or FAILED"))?,
                );
            }
            "reference" => f.reference = Some(reference(&name, value)?),
            "referencePrefix" => f.reference_prefix = Some(reference(&name, value)?),
            "amountMin" => f.amount_min = Some(amount(&name, &value)?),
            "amountMax" => f.amount_max = Some(amount(&name, &value)?),
            "effectiveFrom" => f.effective_from = Some(timestamp(&name, &value)?),
            "effectiveTo" => f.effective_to = Some(timestamp(&name, &value)?),
            "postedFrom" => f.posted_from = Some(timestamp(&name, &value)?),
            "postedTo" => f.posted_to = Some(timestamp(&name, &value)?),
            "kind" => {
                f.kind = Some(SearchKind::parse(&value).ok_or_else(|| {
                    let all: Vec<&str> = SearchKind::ALL.iter().map(|k| k.as_str()).collect();
                    bad_parameter("kind", format!("kind is one of {}", all.join(", ")))
                })?);
            }
            "limit" => q.limit = page::limit(&value)?,
            "cursor" => {
                let (posted_at, id) = page::cursor(&value)?;
                q.cursor = Some(Position { posted_at, id });
            }
            _ => {
                q.format = Some(match value.as_str() {
                    "csv" => ExportFormat::Csv,
                    "jsonl" => ExportFormat::JsonLines,
                    _ => return Err(bad_parameter("format", "format is csv or jsonl")),
                });
            }
        }
    }
    if route == Route::Export && q.format.is_none() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "missing_parameter",
            "format is required: csv or jsonl",
        )
        .field("format"));
    }
    if !metadata.is_empty() {
        let metadata = Value::Object(metadata);
        if metadata.to_string().len() > MAX_METADATA_BYTES {
            return Err(bad_parameter(
                "metadata",
                format!("the metadata filter is limited to {MAX_METADATA_BYTES} bytes"),
            ));
        }
        q.filter.metadata = Some(metadata);
    }
    check_ranges(&q.filter)?;
    Ok(q)
}

fn metadata_pair(
    metadata: &mut Map<String, Value>,
    name: &str,
    key: &str,
    value: String,
) -> ApiResult<()> {
    if key.is_empty() {
        return Err(bad_parameter(name, "metadata[<key>] needs a key"));
    }
    if metadata.len() == MAX_METADATA_KEYS {
        return Err(bad_parameter(
            name,
            format!("at most {MAX_METADATA_KEYS} metadata[<key>] filters"),
        ));
    }
    metadata.insert(key.to_string(), Value::String(value));
    Ok(())
}

fn reference(name: &str, value: String) -> ApiResult<String> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_REFERENCE_CHARS {
        return Err(bad_parameter(
            name,
            format!("{name} is 1 to {MAX_REFERENCE_CHARS} characters"),
        ));
    }
    Ok(value)
}

fn amount(name: &str, value: &str) -> ApiResult<Decimal> {
    shared::money::parse_decimal_str(value, name)
        .ok()
        .filter(|d| !d.is_sign_negative())
        .ok_or_else(|| {
            bad_parameter(
                name,
                format!("{name} is a non-negative decimal string such as 10.00"),
            )
        })
}

fn timestamp(name: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    shared::transfers::parse_timestamp(value, name)
        .ok()
        .filter(|d| shared::validation::date_in_range(d.date_naive()))
        .ok_or_else(|| {
            bad_parameter(
                name,
                format!(
                    "{name} is an RFC 3339 timestamp such as 2026-01-31T00:00:00Z, between 1970 and 9999"
                ),
            )
        })
}

/// A range whose lower end is above its upper end is a mistake, not an empty answer.
fn check_ranges(f: &SearchFilter) -> ApiResult<()> {
    let invalid = |to: &str, from: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            format!("{from} must not be after {to}"),
        )
        .field(to)
    };
    if let (Some(min), Some(max)) = (f.amount_min, f.amount_max)
        && min > max
    {
        return Err(invalid("amountMax", "amountMin"));
    }
    if let (Some(from), Some(to)) = (f.effective_from, f.effective_to)
        && from > to
    {
        return Err(invalid("effectiveTo", "effectiveFrom"));
    }
    if let (Some(from), Some(to)) = (f.posted_from, f.posted_to)
        && from > to
    {
        return Err(invalid("postedTo", "postedFrom"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(q: &str) -> ApiResult<SearchQuery> {
        parse(Some(q), Route::Search)
    }

    fn field_of(q: &str) -> (String, String) {
        let p = search(q).unwrap_err();
        (p.code.to_string(), p.field.unwrap_or_default())
    }

    #[test]
    fn every_filter_parses() {
        let q = search(
            "accountId=alice&status=FAILED&reference=inv-1&referencePrefix=inv-&amountMin=1.5\
             &amountMax=10&effectiveFrom=2026-01-01T00:00:00Z&effectiveTo=2026-02-01T00:00:00%2B01:00\
             &postedFrom=2026-01-01T00:00:00Z&postedTo=2026-01-01T00:00:00Z&kind=adjustment\
             &metadata%5Border%5D=o-1&metadata[shop]=a%20b&limit=7",
        )
        .unwrap();
        let f = &q.filter;
        assert_eq!(f.account_id.as_deref(), Some("alice"));
        assert_eq!(f.status, Some(TransferStatus::Failed));
        assert_eq!(f.reference_prefix.as_deref(), Some("inv-"));
        assert_eq!(f.amount_min, Some(Decimal::new(15, 1)));
        assert_eq!(
            f.effective_to.unwrap().to_rfc3339(),
            "2026-01-31T23:00:00+00:00"
        );
        assert_eq!(f.kind, Some(SearchKind::Adjustment));
        assert_eq!(f.metadata, Some(json!({"order": "o-1", "shop": "a b"})));
        assert_eq!(q.limit, 7);
        assert_eq!(q.format, None);
        assert_eq!(search("").unwrap().limit, 50);
    }

    #[test]
    fn bad_inputs_name_their_parameter() {
        for (query, code, field) in [
            ("amountMin=1,5", "invalid_parameter", "amountMin"),
            ("amountMax=-1", "invalid_parameter", "amountMax"),
            ("amountMin=1e3", "invalid_parameter", "amountMin"),
            ("amountMin=5&amountMax=4", "invalid_range", "amountMax"),
            ("postedFrom=yesterday", "invalid_parameter", "postedFrom"),
            ("effectiveTo=2026-01-01", "invalid_parameter", "effectiveTo"),
            (
                "postedFrom=2026-02-01T00:00:00Z&postedTo=2026-01-01T00:00:00Z",
                "invalid_range",
                "postedTo",
            ),
            ("kind=TRANSFER", "invalid_parameter", "kind"),
            ("status=PENDING", "invalid_parameter", "status"),
            ("accountId=a%20b", "invalid_parameter", "accountId"),
            ("reference=", "invalid_parameter", "reference"),
            ("cursor=zzz", "invalid_cursor", "cursor"),
            ("limit=0", "invalid_limit", "limit"),
            ("colour=red", "unknown_parameter", "colour"),
            ("metadata=x", "unknown_parameter", "metadata"),
            ("metadata[]=x", "invalid_parameter", "metadata[]"),
            (
                "status=FAILED&status=COMPLETED",
                "invalid_parameter",
                "status",
            ),
            ("format=csv", "unknown_parameter", "format"),
        ] {
            assert_eq!(
                field_of(query),
                (code.to_string(), field.to_string()),
                "{query}"
            );
        }
        let many: Vec<String> = (0..=MAX_METADATA_KEYS)
            .map(|i| format!("metadata[k{i}]=v"))
            .collect();
        assert_eq!(field_of(&many.join("&")).1, "metadata[k20]");
    }

    #[test]
    fn exports_need_a_format_and_take_no_limit() {
        let q = parse(Some("format=jsonl&kind=hold"), Route::Export).unwrap();
        assert_eq!(q.format, Some(ExportFormat::JsonLines));
        let p = parse(Some("kind=hold"), Route::Export).unwrap_err();
        assert_eq!(p.code, "missing_parameter");
        let p = parse(Some("format=xlsx"), Route::Export).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("format"));
        let p = parse(Some("format=csv&limit=5"), Route::Export).unwrap_err();
        assert_eq!(p.code, "unknown_parameter");
    }
}
