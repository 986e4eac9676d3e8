//! Loading a reconciliation window: both sides of an account's window (binary COPY, so a million
//! rows load in about a second), the accounts under reconciliation, and who owns what an invariant
//! check names.

use std::pin::pin;

use chrono::NaiveDate;
use futures::TryStreamExt;
use tokio_postgres::binary_copy::{BinaryCopyOutRow, BinaryCopyOutStream};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::reconcile::findings::Owners;
use crate::reconcile::{LedgerItem, StatementLine};

/// A SQL string literal (COPY takes no bind parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

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

/// What each transaction did to an account, booked on its (UTC) value date (`effectiveAt`, or
/// when it posted) in `[from, to]`, with the transaction's reference: one item per transaction and
/// currency, the net of its legs on the account. So a bank line matches what the account saw: the
/// payer's line the transaction's total (all the legs it paid), a payee's line its leg. A refund
/// is its own transaction, hence its own item (its `parentId` names the original). Adjusting transfers made by the reconciliation itself (marked by
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
        "COPY (SELECT e.transaction_id, sum(e.amount), min(e.currency::text),
                      (min(e.effective_at) AT TIME ZONE 'UTC')::date, min(t.reference)
               FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
               WHERE e.account_id = {account}
                 AND ((e.posted_at >= {from} AND e.posted_at < {to} AND e.effective_at = e.posted_at)
                      OR (e.effective_at <> e.posted_at
                          AND e.effective_at >= {from} AND e.effective_at < {to}))
                 AND t.adjusts_discrepancy_id IS NULL
               GROUP BY e.transaction_id, e.currency
               HAVING sum(e.amount) <> 0)
         TO STDOUT (FORMAT binary)",
        account = literal(account_id),
        from = format_args!(
            "({}::date)::timestamp AT TIME ZONE 'UTC'",
            literal(&from.format("%Y-%m-%d").to_string())
        ),
        to = format_args!(
            "({}::date + 1)::timestamp AT TIME ZONE 'UTC'",
            literal(&to.format("%Y-%m-%d").to_string())
        ),
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
