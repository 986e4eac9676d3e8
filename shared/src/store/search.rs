//! Searching a client's recorded transactions (GET /transactions) and exporting them
//! (GET /transactions/export): newest first by (posted_at, id), keyset pages, every filter ANDed,
//! every statement scoped to the client. The indexes are V10__transaction_search.sql.
//!
//! A search is two steps in one statement: the ids of the page (small rows, ordered by an index,
//! stopping after `limit + 1`), then the records of those ids with their entries and refunds
//! (each an index lookup by transaction id; one round trip for the page, no query per row).

use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::transactions::{RECORD_COLUMNS, TransactionRecord, record};
use super::{PgPool, StoreError};
use crate::ledger::TransferStatus;

/// What a client may search by. `None`: no condition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchFilter {
    /// On either side of any leg.
    pub account_id: Option<String>,
    pub status: Option<TransferStatus>,
    pub reference: Option<String>,
    pub reference_prefix: Option<String>,
    /// The `amount` column (the first leg's), inclusive.
    pub amount_min: Option<Decimal>,
    pub amount_max: Option<Decimal>,
    /// `coalesce(effective_at, posted_at)`: from inclusive, to exclusive.
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_to: Option<DateTime<Utc>>,
    pub posted_from: Option<DateTime<Utc>>,
    pub posted_to: Option<DateTime<Utc>>,
    /// Key = value pairs the metadata must contain (a JSON object of strings).
    pub metadata: Option<Value>,
    pub kind: Option<SearchKind>,
}

/// What a transaction is, as search tells them apart: an adjustment is a transfer that answers a
/// discrepancy (`adjusts_discrepancy_id`), and `Transfer` is every other transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKind {
    Transfer,
    Hold,
    Capture,
    Void,
    Refund,
    Adjustment,
}

impl SearchKind {
    pub const ALL: [SearchKind; 6] = [
        Self::Transfer,
        Self::Hold,
        Self::Capture,
        Self::Void,
        Self::Refund,
        Self::Adjustment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn condition(self) -> &'static str {
        match self {
            Self::Transfer => "t.kind = 'TRANSFER' AND t.adjusts_discrepancy_id IS NULL",
            Self::Adjustment => "t.kind = 'TRANSFER' AND t.adjusts_discrepancy_id IS NOT NULL",
            Self::Hold => "t.kind = 'HOLD'",
            Self::Capture => "t.kind = 'CAPTURE'",
            Self::Void => "t.kind = 'VOID'",
            Self::Refund => "t.kind = 'REFUND'",
        }
    }
}

/// A position in the search order: the last row of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub posted_at: DateTime<Utc>,
    pub id: Uuid,
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A statement under construction: its numbered parameters.
struct Sql {
    params: Vec<Param>,
}

impl Sql {
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The exclusive upper bound of the strings starting with `prefix`, in byte (= code point) order:
/// the prefix with its last character incremented (U+10FFFF dropped first, surrogates skipped).
/// `None` when every string above the prefix starts with it.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The conditions every branch of the search shares (all but the account).
fn common_conditions(
    sql: &mut Sql,
    client_id: &str,
    f: &SearchFilter,
    after: Option<Position>,
    down_to: Option<Position>,
) -> Vec<String> {
    let mut c = vec![format!("t.client_id = {}", sql.bind(client_id.to_string()))];
    if let Some(s) = f.status {
        c.push(format!("t.status = {}", sql.bind(s.as_str())));
    }
    if let Some(r) = &f.reference {
        c.push(format!("t.reference = {}", sql.bind(r.clone())));
    }
    if let Some(p) = &f.reference_prefix {
        // text_pattern_ops operators: the range uses transactions_reference_idx.
        c.push(format!("t.reference ~>=~ {}", sql.bind(p.clone())));
        if let Some(upper) = prefix_upper_bound(p) {
            c.push(format!("t.reference ~<~ {}", sql.bind(upper)));
        }
    }
    if let Some(a) = f.amount_min {
        c.push(format!("t.amount >= {}", sql.bind(a)));
    }
    if let Some(a) = f.amount_max {
        c.push(format!("t.amount <= {}", sql.bind(a)));
    }
    let effective = "coalesce(t.effective_at, t.posted_at)";
    if let Some(d) = f.effective_from {
        c.push(format!("{effective} >= {}", sql.bind(d)));
    }
    if let Some(d) = f.effective_to {
        c.push(format!("{effective} < {}", sql.bind(d)));
    }
    if let Some(d) = f.posted_from {
        c.push(format!("t.posted_at >= {}", sql.bind(d)));
    }
    if let Some(d) = f.posted_to {
        c.push(format!("t.posted_at < {}", sql.bind(d)));
    }
    if let Some(m) = &f.metadata {
        // The second predicate is transactions_metadata_idx's (partial index) condition.
        c.push(format!(
            "t.metadata @> {} AND t.metadata <> '{{}}'::jsonb",
            sql.bind(m.clone())
        ));
    }
    if let Some(k) = f.kind {
        c.push(k.condition().to_string());
    }
    if let Some(p) = after {
        c.push(format!(
            "(t.posted_at, t.id) < ({}, {})",
            sql.bind(p.posted_at),
            sql.bind(p.id)
        ));
    }
    if let Some(p) = down_to {
        c.push(format!(
            "(t.posted_at, t.id) >= ({}, {})",
            sql.bind(p.posted_at),
            sql.bind(p.id)
        ));
    }
    c
}

const ORDER: &str = "ORDER BY posted_at DESC, id DESC";

/// `SELECT id, posted_at` of the matching transactions in search order (at most `limit`).
///
/// With an account, one branch per place the account can be (first leg's source, its destination,
/// any leg of a multi-leg transaction), each read in order from its own index and cut at `limit`,
/// then merged: a page of a busy account costs `limit` rows per branch, not the account's history.
fn matching_ids(
    sql: &mut Sql,
    client_id: &str,
    f: &SearchFilter,
    after: Option<Position>,
    down_to: Option<Position>,
    limit: Option<i64>,
) -> String {
    let common = common_conditions(sql, client_id, f, after, down_to).join(" AND ");
    let limit = limit.map_or(String::new(), |n| format!("LIMIT {}", sql.bind(n)));
    let branch = |place: String| {
        format!(
            "(SELECT t.id, t.posted_at FROM transactions t WHERE {place} AND {common}
              ORDER BY t.posted_at DESC, t.id DESC {limit})"
        )
    };
    let Some(account) = &f.account_id else {
        return branch("TRUE".into());
    };
    let a = sql.bind(account.clone());
    let as_source = sql.bind(json!([{ "source_account_id": account }]));
    let as_destination = sql.bind(json!([{ "destination_account_id": account }]));
    let branches = [
        branch(format!("t.source_account_id = {a}")),
        branch(format!("t.destination_account_id = {a}")),
        branch(format!(
            "t.legs IS NOT NULL AND (t.legs @> {as_source} OR t.legs @> {as_destination})"
        )),
    ];
    format!(
        "(SELECT id, posted_at FROM ({}) u {ORDER} {limit})",
        branches.join(" UNION ")
    )
}

/// The records of the matching ids, in search order.
fn records_of(ids: &str) -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM {ids} m JOIN transactions t ON t.id = m.id
         ORDER BY t.posted_at DESC, t.id DESC"
    )
}

/// One page of the client's transactions matching `filter`, after `after`; and the position to
/// continue from when there are more.
pub async fn search(
    pool: &PgPool,
    client_id: &str,
    filter: &SearchFilter,
    limit: usize,
    after: Option<Position>,
) -> Result<(Vec<TransactionRecord>, Option<Position>), StoreError> {
    let mut sql = Sql { params: Vec::new() };
    let ids = matching_ids(
        &mut sql,
        client_id,
        filter,
        after,
        None,
        Some(limit as i64 + 1),
    );
    let conn = pool.get().await?;
    let rows = conn.query(&records_of(&ids), &sql.refs()).await?;
    let mut items = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    let next = super::cut_page(&mut items, limit, position);
    Ok((items, next))
}

/// PostgreSQL's plan of `search` with these arguments, as `EXPLAIN (ANALYZE, BUFFERS)` prints it
/// (it runs the query): how the indexes serve each filter (devstack's search plans test).
pub async fn explain_search(
    pool: &PgPool,
    client_id: &str,
    filter: &SearchFilter,
    limit: usize,
    after: Option<Position>,
) -> Result<String, StoreError> {
    let mut sql = Sql { params: Vec::new() };
    let ids = matching_ids(
        &mut sql,
        client_id,
        filter,
        after,
        None,
        Some(limit as i64 + 1),
    );
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS) {}", records_of(&ids)),
            &sql.refs(),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn position(r: &TransactionRecord) -> Position {
    Position {
        posted_at: r.posted_at,
        id: r.id,
    }
}

/// Records as they arrive from PostgreSQL.
pub type RecordStream = Pin<Box<dyn Stream<Item = Result<TransactionRecord, StoreError>> + Send>>;

/// An export: at most `max_rows` matching transactions (plus any posted while it starts), streamed
/// row by row from PostgreSQL, and where the next export continues when more match.
pub struct Export {
    /// The last row this export holds when more match (the `cursor` of the next export).
    pub next: Option<Position>,
    pub rows: RecordStream,
}

/// Starts an export. First finds the `max_rows`-th matching row (an index scan of ids only): if
/// there is a row after it, the export ends at it (inclusive) and `next` is its position. Rows
/// posted meanwhile are newer, so they are added at the top and never push a row out of the export.
pub async fn export(
    pool: &PgPool,
    client_id: &str,
    filter: &SearchFilter,
    max_rows: usize,
    after: Option<Position>,
) -> Result<Export, StoreError> {
    let conn = pool.get().await?;
    let mut sql = Sql { params: Vec::new() };
    let ids = matching_ids(
        &mut sql,
        client_id,
        filter,
        after,
        None,
        Some(max_rows as i64 + 1),
    );
    let offset = sql.bind(max_rows.max(1) as i64 - 1);
    let boundary = conn
        .query(
            &format!("SELECT id, posted_at FROM {ids} b {ORDER} OFFSET {offset} LIMIT 2"),
            &sql.refs(),
        )
        .await?;
    let next = (boundary.len() == 2).then(|| Position {
        id: boundary[0].get(0),
        posted_at: boundary[0].get(1),
    });
    let mut sql = Sql { params: Vec::new() };
    let ids = matching_ids(&mut sql, client_id, filter, after, next, None);
    let rows = conn.query_raw(&records_of(&ids), sql.refs()).await?;
    // The pooled connection stays with the stream until the last row is read (or the body dropped).
    let rows = rows.map(move |row| {
        let _held = &conn;
        record(&row?)
    });
    Ok(Export {
        next,
        rows: Box::pin(rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_are_exact() {
        assert_eq!(prefix_upper_bound("inv-"), Some("inv.".into()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_upper_bound("\u{D7FF}"), Some("\u{E000}".into()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
        let upper = prefix_upper_bound("ab").unwrap();
        for s in ["ab", "ab\u{10FFFF}\u{10FFFF}", "abz"] {
            assert!(s.as_bytes() >= "ab".as_bytes() && s.as_bytes() < upper.as_bytes());
        }
        assert!("ac".as_bytes() >= upper.as_bytes());
    }

    #[test]
    fn kinds_round_trip() {
        for k in SearchKind::ALL {
            assert_eq!(SearchKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SearchKind::parse("TRANSFER"), None);
    }

    #[test]
    fn an_account_search_has_one_ordered_branch_per_place() {
        let mut sql = Sql { params: Vec::new() };
        let filter = SearchFilter {
            account_id: Some("alice".into()),
            ..Default::default()
        };
        let ids = matching_ids(&mut sql, "demo", &filter, None, None, Some(51));
        assert_eq!(ids.matches("UNION").count(), 2);
        assert_eq!(ids.matches("LIMIT $2").count(), 4, "{ids}");
        assert!(ids.contains("t.client_id = $1"));
    }
}
