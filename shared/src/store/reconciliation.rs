//! Reconciliation statements: importing statement lines, loading both sides of a window (binary
//! COPY, so a million rows load in about a second), saving runs, matches and discrepancies, and the
//! discrepancy workflow.

use std::collections::HashMap;
use std::pin::pin;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_postgres::binary_copy::{BinaryCopyOutRow, BinaryCopyOutStream};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::reconcile::discrepancies::{
    AdjustmentStart, DiscrepancyFilter, HistoryEntry, MatchedPair, RunRecord, Scope, StatusChange,
    StoredDiscrepancy, StoredRun,
};
use crate::reconcile::findings::{Finding, FindingKind, Owners};
use crate::reconcile::report::DiscrepancyChanges;
use crate::reconcile::statements::{ParsedLine, StatementFormat};
use crate::reconcile::workflow::DiscrepancyStatus;
use crate::reconcile::{LedgerItem, Match, MatchRule, StatementLine};
use crate::transfers::{IdempotencyKey, adjustment_key};

/// A SQL string literal (COPY takes no bind parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Statements

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedStatement {
    pub statement_id: i64,
    /// External ids of the lines stored now (the others were already imported).
    pub imported: Vec<String>,
}

/// Stores a statement and its lines; lines whose external id the account already has are skipped.
#[allow(clippy::too_many_arguments)]
pub async fn import_statement(
    pool: &PgPool,
    client_id: &str,
    account_id: &str,
    format: StatementFormat,
    content_sha256: &str,
    source_account: Option<&str>,
    lines: &[ParsedLine],
    rejected: usize,
) -> Result<ImportedStatement, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let statement_id: i64 = tx
        .query_one(
            "INSERT INTO statements (client_id, account_id, format, content_sha256, source_account,
                 lines_imported, lines_duplicate, lines_rejected)
             VALUES ($1, $2, $3, $4, $5, 0, 0, $6) RETURNING id",
            &[
                &client_id,
                &account_id,
                &format.as_str(),
                &content_sha256,
                &source_account,
                &(rejected as i32),
            ],
        )
        .await?
        .get(0);
    let ids: Vec<&str> = lines.iter().map(|l| l.external_id.as_str()).collect();
    let booked: Vec<NaiveDate> = lines.iter().map(|l| l.booked).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let currencies: Vec<&str> = lines.iter().map(|l| l.currency.code()).collect();
    let references: Vec<Option<&str>> = lines.iter().map(|l| l.reference.as_deref()).collect();
    let descriptions: Vec<Option<&str>> = lines.iter().map(|l| l.description.as_deref()).collect();
    let rows = tx
        .query(
            "INSERT INTO statement_lines (statement_id, account_id, external_id, booked_on, amount,
                 currency, reference, description)
             SELECT $1, $2, u.* FROM unnest($3::text[], $4::date[], $5::numeric[], $6::text[],
                                             $7::text[], $8::text[]) AS u
             ON CONFLICT (account_id, external_id) DO NOTHING
             RETURNING external_id",
            &[
                &statement_id,
                &account_id,
                &ids,
                &booked,
                &amounts,
                &currencies,
                &references,
                &descriptions,
            ],
        )
        .await?;
    let imported: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    tx.execute(
        "UPDATE statements SET lines_imported = $2, lines_duplicate = $3 WHERE id = $1",
        &[
            &statement_id,
            &(imported.len() as i32),
            &((lines.len() - imported.len()) as i32),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(ImportedStatement {
        statement_id,
        imported,
    })
}

// ---------------------------------------------------------------------------------------------
// Loading a window

/// Statement lines of an account booked in `[from, to]`.
pub async fn load_statement_lines(
    pool: &PgPool,
    account_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StatementLine>, StoreError> {
    let conn = pool.get().await?;
    let sql = format!(
        "COPY (SELECT id, external_id, amount, currency::text, booked_on, reference
               FROM statement_lines
               WHERE account_id = {} AND booked_on BETWEEN {} AND {})
         TO STDOUT (FORMAT binary)",
        literal(account_id),
        literal(&from.to_string()),
        literal(&to.to_string())
    );
    copy_out_rows(
        &conn,
        &sql,
        &[
            Type::INT8,
            Type::TEXT,
            Type::NUMERIC,
            Type::TEXT,
            Type::DATE,
            Type::TEXT,
        ],
        |r| {
            Ok(StatementLine {
                id: r.try_get(0)?,
                external_id: r.try_get(1)?,
                amount: r.try_get(2)?,
                currency: r.try_get(3)?,
                booked: r.try_get(4)?,
                reference: r.try_get(5)?,
            })
        },
    )
    .await
}

/// Postings on an account whose (UTC) posting date is in `[from, to]`, with the transfer's
/// reference. Adjusting transfers made by the reconciliation itself (marked by
/// `transactions.adjusts_discrepancy_id`, whatever their key) are left out: they answer a
/// discrepancy, they are not something the bank will book.
pub async fn load_ledger_items(
    pool: &PgPool,
    account_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<LedgerItem>, StoreError> {
    let conn = pool.get().await?;
    // The day after `to` is computed by PostgreSQL: for 9999-12-31 it is a year chrono would
    // write as `+10000`, which PostgreSQL does not read.
    let sql = format!(
        "COPY (SELECT e.transaction_id, e.amount, e.currency::text,
                      (e.posted_at AT TIME ZONE 'UTC')::date, t.reference
               FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
               WHERE e.account_id = {}
                 AND e.posted_at >= ({}::date)::timestamp AT TIME ZONE 'UTC'
                 AND e.posted_at < ({}::date + 1)::timestamp AT TIME ZONE 'UTC'
                 AND t.adjusts_discrepancy_id IS NULL)
         TO STDOUT (FORMAT binary)",
        literal(account_id),
        literal(&from.format("%Y-%m-%d").to_string()),
        literal(&to.format("%Y-%m-%d").to_string())
    );
    copy_out_rows(
        &conn,
        &sql,
        &[
            Type::UUID,
            Type::NUMERIC,
            Type::TEXT,
            Type::DATE,
            Type::TEXT,
        ],
        |r| {
            Ok(LedgerItem {
                transaction_id: r.try_get(0)?,
                amount: r.try_get(1)?,
                currency: r.try_get(2)?,
                booked: r.try_get(3)?,
                reference: r.try_get(4)?,
            })
        },
    )
    .await
}

/// Runs `COPY (query) TO STDOUT (FORMAT binary)` and maps each row.
async fn copy_out_rows<T>(
    conn: &deadpool_postgres::Object,
    sql: &str,
    types: &[Type],
    row: impl Fn(&BinaryCopyOutRow) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, StoreError> {
    let stream = conn.copy_out(sql).await?;
    let rows = BinaryCopyOutStream::new(stream, types);
    let mut rows = pin!(rows);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push(row(&r)?);
    }
    Ok(out)
}

/// Accounts under reconciliation (a statement was ever imported for them), with their owners.
pub async fn accounts_with_statements(pool: &PgPool) -> Result<Vec<(String, String)>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT a.id, a.client_id FROM accounts a
             WHERE EXISTS (SELECT 1 FROM statements s WHERE s.account_id = a.id)
             ORDER BY a.id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Who owns the transactions and accounts an invariant check names (`InvariantReport::
/// transactions_named`, `accounts_named`).
pub async fn owners(
    pool: &PgPool,
    transactions: Vec<Uuid>,
    accounts: Vec<String>,
) -> Result<Owners, StoreError> {
    let mut owners = Owners::default();
    if transactions.is_empty() && accounts.is_empty() {
        return Ok(owners);
    }
    let conn = pool.get().await?;
    if !transactions.is_empty() {
        let rows = conn
            .query(
                "SELECT id, client_id, source_account_id FROM transactions WHERE id = ANY($1)",
                &[&transactions],
            )
            .await?;
        owners.transactions = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
    }
    if !accounts.is_empty() {
        let rows = conn
            .query(
                "SELECT id, client_id FROM accounts WHERE id = ANY($1)",
                &[&accounts],
            )
            .await?;
        owners.accounts = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    }
    Ok(owners)
}

// ---------------------------------------------------------------------------------------------
// Runs and discrepancies

pub const SYSTEM_ACTOR: &str = "reconciler";

/// Stores a run with its matches and findings in one transaction: new findings open discrepancies,
/// known ones are marked seen (an auto-cleared one that reappears is reopened), and open ones in
/// `scope` that this run no longer sees are closed as cleared by it.
pub async fn save_run(
    pool: &PgPool,
    run: &RunRecord,
    report: &Value,
    matches: &[Match],
    findings: &[Finding],
    scope: &Scope,
) -> Result<DiscrepancyChanges, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        "INSERT INTO reconciliation_runs (id, client_id, account_id, trigger, window_start, window_end,
             as_of, started_at, finished_at, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &run.id,
            &run.client_id,
            &run.account_id,
            &run.trigger.as_str(),
            &run.window_start,
            &run.window_end,
            &run.as_of,
            &run.started_at,
            &run.finished_at,
            report,
        ],
    )
    .await?;

    if !matches.is_empty() {
        let chunks = pack_matches(matches);
        let numbers: Vec<i32> = (0..chunks.len() as i32).collect();
        tx.execute(
            "INSERT INTO matches (run_id, chunk, pairs) SELECT $1, c.n, c.pairs FROM unnest($2::int4[], $3::bytea[]) AS c(n, pairs)",
            &[&run.id, &numbers, &chunks],
        )
        .await?;
    }

    let mut stats = DiscrepancyChanges::default();
    if !findings.is_empty() {
        let col = |f: fn(&Finding) -> Value| findings.iter().map(f).collect::<Vec<Value>>();
        let ids: Vec<Uuid> = findings.iter().map(|_| Uuid::now_v7()).collect();
        let rows = tx
            .query(
                "WITH input AS (
                     SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                          $7::date[], $8::int8[], $9::jsonb[], $10::numeric[],
                                          $11::numeric[], $12::text[], $13::text[], $14::jsonb[])
                         AS u(id, client_id, account_id, kind, fingerprint, booked_on, line_id, tx_ids,
                              expected, actual, currency, detail, data)
                 ), before AS (
                     SELECT d.id, d.client_id, d.fingerprint, d.status, d.cleared_by_run
                     FROM discrepancies d JOIN input i USING (client_id, fingerprint)
                 ), upserted AS (
                     INSERT INTO discrepancies (id, client_id, account_id, kind, fingerprint, booked_on,
                         statement_line_id, transaction_ids, expected, actual, currency, detail, data,
                         first_seen_run, last_seen_run)
                     SELECT id, client_id, account_id, kind, fingerprint, booked_on, line_id,
                            ARRAY(SELECT jsonb_array_elements_text(tx_ids))::uuid[],
                            expected, actual, currency, detail, data, $1, $1
                     FROM input
                     ON CONFLICT (client_id, fingerprint) DO UPDATE
                     SET last_seen_run = EXCLUDED.last_seen_run,
                         detail = EXCLUDED.detail,
                         updated_at = now(),
                         status = CASE WHEN discrepancies.cleared_by_run IS NOT NULL
                                            AND discrepancies.status = 'RESOLVED'
                                       THEN 'OPEN' ELSE discrepancies.status END,
                         cleared_by_run = CASE WHEN discrepancies.status = 'RESOLVED'
                                               THEN NULL ELSE discrepancies.cleared_by_run END
                     RETURNING id, client_id, fingerprint, status
                 )
                 SELECT u.id, u.status, b.id IS NULL AS new,
                        (b.cleared_by_run IS NOT NULL AND b.status = 'RESOLVED') AS reopened
                 FROM upserted u LEFT JOIN before b USING (client_id, fingerprint)",
                &[
                    &run.id,
                    &ids,
                    &findings.iter().map(|f| f.client_id.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.account_id.as_deref()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.fingerprint.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.booked_on).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.statement_line_id).collect::<Vec<_>>(),
                    &col(|f| json!(f.transaction_ids)),
                    &findings.iter().map(|f| f.expected).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.actual).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.currency.as_deref()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>(),
                    &col(|f| f.data.clone()),
                ],
            )
            .await?;
        let mut event_ids = Vec::new();
        let mut event_from: Vec<Option<&str>> = Vec::new();
        let mut event_note = Vec::new();
        let mut linked = Vec::new();
        for r in &rows {
            let id: Uuid = r.get(0);
            linked.push(id);
            if r.get::<_, bool>(2) {
                stats.new += 1;
                event_ids.push(id);
                event_from.push(None);
                event_note.push("found by the reconciliation");
            } else if r.get::<_, bool>(3) {
                stats.reopened += 1;
                event_ids.push(id);
                event_from.push(Some(DiscrepancyStatus::Resolved.as_str()));
                event_note.push("found again after being cleared");
            } else {
                stats.seen_again += 1;
            }
        }
        tx.execute(
            "INSERT INTO run_discrepancies (run_id, discrepancy_id) SELECT $1, unnest($2::uuid[])",
            &[&run.id, &linked],
        )
        .await?;
        if !event_ids.is_empty() {
            tx.execute(
                "INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
                 SELECT u.id, $2, u.from_status, 'OPEN', u.note, jsonb_build_object('run', $1::uuid)
                 FROM unnest($3::uuid[], $4::text[], $5::text[]) AS u(id, from_status, note)",
                &[&run.id, &SYSTEM_ACTOR, &event_ids, &event_from, &event_note],
            )
            .await?;
        }
    }

    // The open discrepancies of the scope this run did not see again are cleared by it.
    let (client, account, from, to, kinds) = match scope {
        Scope::AccountWindow {
            client_id,
            account_id,
            from,
            to,
            kinds,
        } => (
            Some(client_id),
            Some(account_id),
            Some(*from),
            Some(*to),
            kinds,
        ),
        Scope::Kinds(kinds) => (None, None, None, None, kinds),
    };
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let cleared = tx
        .query(
            "WITH cleared AS (
                 SELECT id, status FROM discrepancies
                 WHERE kind = ANY($6) AND status IN ('OPEN', 'INVESTIGATING') AND last_seen_run <> $1
                   AND ($2::text IS NULL OR client_id = $2)
                   AND ($3::text IS NULL OR account_id = $3)
                   AND ($4::date IS NULL OR booked_on IS NULL OR booked_on BETWEEN $4 AND $5)
                 FOR UPDATE
             ), updated AS (
                 UPDATE discrepancies d
                 SET status = 'RESOLVED', cleared_by_run = $1, updated_at = now(),
                     resolution = jsonb_build_object('clearedByRun', $1::uuid)
                 FROM cleared c WHERE d.id = c.id
             )
             INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
             SELECT id, $7, status, 'RESOLVED', 'no longer found: cleared by this run',
                    jsonb_build_object('clearedByRun', $1::uuid)
             FROM cleared RETURNING discrepancy_id",
            &[&run.id, &client, &account, &from, &to, &kinds, &SYSTEM_ACTOR],
        )
        .await?;
    stats.cleared = cleared.len();
    tx.commit().await?;
    Ok(stats)
}

/// The client's own run, or the ledger-wide run (no account); the caller decides who may read the
/// latter (operator tokens only, in the API).
pub async fn get_run(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<StoredRun>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT id, client_id, account_id, report FROM reconciliation_runs
             WHERE id = $1 AND (client_id = $2 OR account_id IS NULL)",
            &[&id, &client_id],
        )
        .await?;
    Ok(row.map(|r| StoredRun {
        id: r.get(0),
        client_id: r.get(1),
        account_id: r.get(2),
        report: r.get(3),
    }))
}

/// A run's matched pairs with their lines' details.
pub async fn run_matches(pool: &PgPool, run_id: Uuid) -> Result<Vec<MatchedPair>, StoreError> {
    let conn = pool.get().await?;
    let chunks = conn
        .query(
            "SELECT pairs FROM matches WHERE run_id = $1 ORDER BY chunk",
            &[&run_id],
        )
        .await?;
    let pairs: Vec<(i64, Uuid, MatchRule)> = chunks
        .iter()
        .flat_map(|r| unpack_matches(r.get::<_, &[u8]>(0)))
        .collect();
    let ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let lines: HashMap<i64, (String, NaiveDate, Decimal, String)> = conn
        .query(
            "SELECT id, external_id, booked_on, amount, currency::text FROM statement_lines WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect();
    Ok(pairs
        .into_iter()
        .filter_map(|(line, transaction_id, rule)| {
            let (external_id, booked_on, amount, currency) = lines.get(&line)?.clone();
            Some(MatchedPair {
                statement_line_id: line,
                external_id,
                booked_on,
                amount,
                currency,
                transaction_id,
                rule,
            })
        })
        .collect())
}

const PAIR_BYTES: usize = 25;
const PAIRS_PER_CHUNK: usize = 50_000;

fn rule_code(rule: MatchRule) -> u8 {
    match rule {
        MatchRule::Reference => 1,
        MatchRule::AmountAndDate => 2,
        MatchRule::Batch => 3,
    }
}

/// A run's (line, transaction, rule) pairs in chunks of the packed format `matches` stores.
pub fn pack_matches(matches: &[Match]) -> Vec<Vec<u8>> {
    let pairs = matches.iter().flat_map(|m| {
        m.transaction_ids
            .iter()
            .map(move |t| (m.line_id, *t, m.rule))
    });
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for (n, (line, transaction, rule)) in pairs.enumerate() {
        if n % PAIRS_PER_CHUNK == 0 {
            chunks.push(Vec::with_capacity(PAIRS_PER_CHUNK * PAIR_BYTES));
        }
        let chunk = chunks.last_mut().expect("pushed above");
        chunk.extend_from_slice(&line.to_be_bytes());
        chunk.extend_from_slice(transaction.as_bytes());
        chunk.push(rule_code(rule));
    }
    chunks
}

pub fn unpack_matches(chunk: &[u8]) -> impl Iterator<Item = (i64, Uuid, MatchRule)> + '_ {
    chunk.chunks_exact(PAIR_BYTES).filter_map(|p| {
        let line = i64::from_be_bytes(p[..8].try_into().ok()?);
        let transaction = Uuid::from_slice(&p[8..24]).ok()?;
        let rule = match p[24] {
            1 => MatchRule::Reference,
            2 => MatchRule::AmountAndDate,
            3 => MatchRule::Batch,
            _ => return None,
        };
        Some((line, transaction, rule))
    })
}

const DISCREPANCY_COLUMNS: &str = "d.id, d.client_id, d.account_id, d.kind, d.status, d.booked_on,
    d.statement_line_id, l.external_id, d.transaction_ids, d.expected, d.actual, d.currency, d.detail,
    d.data, d.first_seen_run, d.last_seen_run, d.cleared_by_run, d.resolution, d.created_at, d.updated_at";

fn discrepancy_row(r: &tokio_postgres::Row) -> Result<StoredDiscrepancy, StoreError> {
    Ok(StoredDiscrepancy {
        id: r.get(0),
        client_id: r.get(1),
        account_id: r.get(2),
        kind: kind(r.get(3))?,
        status: status(r.get(4))?,
        booked_on: r.get(5),
        statement_line_id: r.get(6),
        external_id: r.get(7),
        transaction_ids: r.get(8),
        expected: r.get(9),
        actual: r.get(10),
        currency: r.get(11),
        detail: r.get(12),
        data: r.get(13),
        first_seen_run: r.get(14),
        last_seen_run: r.get(15),
        cleared_by_run: r.get(16),
        resolution: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
    })
}

fn kind(stored: &str) -> Result<FindingKind, StoreError> {
    FindingKind::parse(stored)
        .ok_or_else(|| StoreError::Decode(format!("unknown discrepancy kind {stored:?}")))
}

fn status(stored: &str) -> Result<DiscrepancyStatus, StoreError> {
    DiscrepancyStatus::parse(stored)
        .ok_or_else(|| StoreError::Decode(format!("unknown discrepancy status {stored:?}")))
}

pub async fn run_discrepancies(
    pool: &PgPool,
    run_id: Uuid,
) -> Result<Vec<StoredDiscrepancy>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM run_discrepancies rd
                 JOIN discrepancies d ON d.id = rd.discrepancy_id
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE rd.run_id = $1 ORDER BY d.kind, d.created_at, d.id"
            ),
            &[&run_id],
        )
        .await?;
    rows.iter().map(discrepancy_row).collect()
}

/// A page of the client's discrepancies, oldest first, keyset on (created_at, id).
pub async fn list_discrepancies(
    pool: &PgPool,
    client_id: &str,
    filter: &DiscrepancyFilter,
    limit: usize,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<(Vec<StoredDiscrepancy>, Option<(DateTime<Utc>, Uuid)>), StoreError> {
    let conn = pool.get().await?;
    let (after_at, after_id) = after.map_or((None, Uuid::nil()), |(a, i)| (Some(a), i));
    let rows = conn
        .query(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM discrepancies d
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE d.client_id = $1
                   AND ($2::text IS NULL OR d.status = $2)
                   AND ($3::text IS NULL OR d.account_id = $3)
                   AND ($4::text IS NULL OR d.kind = $4)
                   AND ($5::timestamptz IS NULL OR (d.created_at, d.id) > ($5, $6))
                 ORDER BY d.created_at, d.id LIMIT $7"
            ),
            &[
                &client_id,
                &filter.status.map(DiscrepancyStatus::as_str),
                &filter.account_id,
                &filter.kind.map(FindingKind::as_str),
                &after_at,
                &after_id,
                &((limit + 1) as i64),
            ],
        )
        .await?;
    let mut items = rows
        .iter()
        .map(discrepancy_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|d| (d.created_at, d.id))
    } else {
        None
    };
    Ok((items, next))
}

/// One of the client's discrepancies with its history.
pub async fn get_discrepancy(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<(StoredDiscrepancy, Vec<HistoryEntry>)>, StoreError> {
    let conn = pool.get().await?;
    let Some(row) = conn
        .query_opt(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM discrepancies d
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE d.id = $1 AND d.client_id = $2"
            ),
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let events = conn
        .query(
            "SELECT at, actor, from_status, to_status, note, action FROM discrepancy_events
             WHERE discrepancy_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                at: r.get(0),
                actor: r.get(1),
                from_status: r.get::<_, Option<&str>>(2).map(status).transpose()?,
                to_status: status(r.get(3))?,
                note: r.get(4),
                action: r.get(5),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((discrepancy_row(&row)?, events)))
}

/// Moves a discrepancy to `to` if the workflow allows it from its current status
/// (`DiscrepancyStatus::reachable_from`), recording who, when, why and what was done (in its
/// history and the audit log).
#[allow(clippy::too_many_arguments)]
pub async fn set_status(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    to: DiscrepancyStatus,
    note: Option<&str>,
    action: Option<&Value>,
    resolution: Option<&Value>,
) -> Result<StatusChange, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT status, to_jsonb(d) FROM discrepancies d WHERE id = $1 AND client_id = $2 FOR UPDATE",
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(StatusChange::NotFound);
    };
    let from = status(row.get(0))?;
    let before: Value = row.get(1);
    if from == to {
        return Ok(StatusChange::Unchanged);
    }
    if !to.reachable_from(from) {
        return Ok(StatusChange::Refused { from });
    }
    let after: Value = tx
        .query_one(
            "UPDATE discrepancies d SET status = $2, updated_at = now(),
                 resolution = COALESCE($3, d.resolution)
             WHERE id = $1 RETURNING to_jsonb(d)",
            &[&id, &to.as_str(), &resolution],
        )
        .await?
        .get(0);
    let change = StatusEvent {
        id,
        actor: client_id,
        from,
        to,
        note,
        action,
    };
    record_status_change(&tx, &change, &before, &after).await?;
    tx.commit().await?;
    Ok(StatusChange::Changed { from })
}

/// Moves a discrepancy to ADJUSTING before its adjusting transfer is queued (so the processor,
/// which settles only an ADJUSTING discrepancy, always finds it there), recording the transfer
/// `plan` (a JSON object) and its key in the resolution and the history. The key's attempt number
/// is 1 + the adjusting transfers of this discrepancy the ledger rejected: the same attempt (and
/// key) until one is rejected, so a retry never posts twice, and a fresh key after a rejection.
pub async fn begin_adjustment(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    note: Option<&str>,
    plan: &Value,
) -> Result<AdjustmentStart, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT status, to_jsonb(d), resolution, (SELECT count(*) FROM discrepancy_events e
                 WHERE e.discrepancy_id = d.id AND e.action ->> 'outcome' = 'rejected')
             FROM discrepancies d WHERE id = $1 AND client_id = $2 FOR UPDATE",
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(AdjustmentStart::NotFound);
    };
    let from = status(row.get(0))?;
    if from == DiscrepancyStatus::Adjusting {
        return Ok(AdjustmentStart::InFlight {
            resolution: row.get::<_, Option<Value>>(2).unwrap_or(Value::Null),
        });
    }
    if !DiscrepancyStatus::Adjusting.reachable_from(from) {
        return Ok(AdjustmentStart::Refused { from });
    }
    let before: Value = row.get(1);
    let rejected: i64 = row.get(3);
    let attempt = u32::try_from(rejected + 1).unwrap_or(u32::MAX);
    let key = adjustment_key(id, attempt);
    let mut resolution =
        json!({"action": "adjust", "attempt": attempt, "idempotencyKey": key.as_str()});
    if let (Some(r), Some(p)) = (resolution.as_object_mut(), plan.as_object()) {
        for (k, v) in p {
            r.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let after: Value = tx
        .query_one(
            "UPDATE discrepancies d SET status = $2, updated_at = now(), resolution = $3
             WHERE id = $1 RETURNING to_jsonb(d)",
            &[&id, &DiscrepancyStatus::Adjusting.as_str(), &resolution],
        )
        .await?
        .get(0);
    let change = StatusEvent {
        id,
        actor: client_id,
        from,
        to: DiscrepancyStatus::Adjusting,
        note,
        action: Some(&resolution),
    };
    record_status_change(&tx, &change, &before, &after).await?;
    tx.commit().await?;
    Ok(AdjustmentStart::Started {
        from,
        key,
        resolution,
    })
}

/// Records what intake answered for the adjusting transfer under `key` (its transaction id and
/// queue message id) in the discrepancy's resolution, whatever its status by now.
pub async fn record_adjustment_accepted(
    pool: &PgPool,
    id: Uuid,
    key: &IdempotencyKey,
    accepted: &Value,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE discrepancies SET updated_at = now(),
             resolution = jsonb_set(resolution, '{transfer}',
                                    coalesce(resolution -> 'transfer', '{}'::jsonb) || $3::jsonb)
         WHERE id = $1 AND resolution ->> 'idempotencyKey' = $2",
        &[&id, &key.as_str(), accepted],
    )
    .await?;
    Ok(())
}

/// Returns a discrepancy from ADJUSTING to `to` (where it came from) when its adjusting transfer
/// under `key` could not be queued, with the reason in its history. Nothing if it is no longer
/// waiting for that transfer.
pub async fn abandon_adjustment(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    key: &IdempotencyKey,
    to: DiscrepancyStatus,
    reason: &str,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "WITH reverted AS (
             UPDATE discrepancies SET status = $4, updated_at = now(),
                 resolution = resolution || jsonb_build_object('outcome', 'not_queued')
             WHERE id = $1 AND client_id = $2 AND status = $5
               AND resolution ->> 'idempotencyKey' = $3
             RETURNING id
         )
         INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
         SELECT id, $2, $5, $4, 'adjusting transfer not queued: ' || $6,
                jsonb_build_object('action', 'adjust', 'idempotencyKey', $3::text,
                                   'outcome', 'not_queued')
         FROM reverted",
        &[
            &id,
            &client_id,
            &key.as_str(),
            &to.as_str(),
            &DiscrepancyStatus::Adjusting.as_str(),
            &reason,
        ],
    )
    .await?;
    Ok(())
}

/// One status change of a discrepancy made through the workflow (by a client, not by a run).
struct StatusEvent<'a> {
    id: Uuid,
    actor: &'a str,
    from: DiscrepancyStatus,
    to: DiscrepancyStatus,
    note: Option<&'a str>,
    action: Option<&'a Value>,
}

/// Writes a workflow status change's history entry and its audit record (before and after the
/// row), in the change's transaction.
async fn record_status_change(
    tx: &deadpool_postgres::Transaction<'_>,
    change: &StatusEvent<'_>,
    before: &Value,
    after: &Value,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &change.id,
            &change.actor,
            &change.from.as_str(),
            &change.to.as_str(),
            &change.note,
            &change.action,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO audit_log (client_id, action, entity, entity_id, before, after)
         VALUES ($1, 'discrepancy.status', 'discrepancy', $2, $3, $4)",
        &[&change.actor, &change.id.to_string(), before, after],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pack_and_unpack() {
        let t = |n: u128| Uuid::from_u128(n);
        let matches = vec![
            Match {
                line_id: 1,
                transaction_ids: vec![t(10)],
                rule: MatchRule::Reference,
            },
            Match {
                line_id: i64::MAX,
                transaction_ids: vec![t(11), t(12)],
                rule: MatchRule::Batch,
            },
            Match {
                line_id: 7,
                transaction_ids: vec![t(13)],
                rule: MatchRule::AmountAndDate,
            },
        ];
        let chunks = pack_matches(&matches);
        assert_eq!(chunks.len(), 1);
        let back: Vec<_> = chunks.iter().flat_map(|c| unpack_matches(c)).collect();
        assert_eq!(
            back,
            [
                (1, t(10), MatchRule::Reference),
                (i64::MAX, t(11), MatchRule::Batch),
                (i64::MAX, t(12), MatchRule::Batch),
                (7, t(13), MatchRule::AmountAndDate)
            ]
        );
        let many: Vec<Match> = (0..120_001)
            .map(|i| Match {
                line_id: i,
                transaction_ids: vec![t(i as u128)],
                rule: MatchRule::Reference,
            })
            .collect();
        let chunks = pack_matches(&many);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [50_000 * 25, 50_000 * 25, 20_001 * 25]
        );
    }
}
