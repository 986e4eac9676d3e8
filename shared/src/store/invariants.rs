//! The ledger's invariants, checked in SQL over the whole database. Tests run this after every
//! posting scenario; the reconciler reports what it finds as internal discrepancies.

use super::{PgPool, StoreError};
use crate::ledger::InvariantReport;

pub async fn check(pool: &PgPool) -> Result<InvariantReport, StoreError> {
    let conn = pool.get().await?;
    let (unbalanced, missing, drift, currency, overdrawn, pending) = tokio::try_join!(
        conn.query(
            "SELECT DISTINCT e.transaction_id FROM ledger_entries e
             LEFT JOIN transactions t ON t.id = e.transaction_id
             GROUP BY e.transaction_id, e.leg
             HAVING sum(e.amount) <> 0 OR count(*) <> 2 OR count(*) FILTER (WHERE e.amount < 0) <> 1
                 OR bool_or(t.id IS NULL)
             ORDER BY e.transaction_id",
            &[],
        ),
        conn.query(
            "SELECT t.id FROM transactions t
             WHERE (t.status = 'COMPLETED' AND t.kind NOT IN ('HOLD', 'VOID'))
                   <> EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)
             ORDER BY t.id",
            &[],
        ),
        conn.query(
            "SELECT b.account_id, b.balance, coalesce(s.total, 0), coalesce(l.balance_after, 0)
             FROM account_balances b
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) s
               ON s.account_id = b.account_id
             LEFT JOIN LATERAL (SELECT balance_after FROM ledger_entries e WHERE e.account_id = b.account_id
                                ORDER BY e.posted_at DESC, e.id DESC LIMIT 1) l ON true
             WHERE b.balance <> coalesce(s.total, 0) OR b.balance <> coalesce(l.balance_after, 0)
             ORDER BY b.account_id",
            &[],
        ),
        conn.query(
            "SELECT a.currency::text, sum(b.balance) FROM account_balances b JOIN accounts a ON a.id = b.account_id
             GROUP BY a.currency HAVING sum(b.balance) <> 0 ORDER BY 1",
            &[],
        ),
        conn.query(
            "SELECT a.id FROM accounts a JOIN account_balances b ON b.account_id = a.id
             WHERE a.overdraft_limit IS NOT NULL AND b.balance - b.pending < -a.overdraft_limit
             ORDER BY 1",
            &[],
        ),
        conn.query(
            "SELECT b.account_id, b.pending, coalesce(h.held, 0) FROM account_balances b
             LEFT JOIN (SELECT source_account_id, sum(amount - captured) AS held FROM holds
                        WHERE status = 'ACTIVE' GROUP BY 1) h ON h.source_account_id = b.account_id
             WHERE b.pending <> coalesce(h.held, 0) ORDER BY 1",
            &[],
        ),
    )?;
    Ok(InvariantReport {
        unbalanced_transactions: unbalanced.iter().map(|r| r.get(0)).collect(),
        missing_ledger_entries: missing.iter().map(|r| r.get(0)).collect(),
        balance_drift: drift
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
        currency_imbalance: currency.iter().map(|r| (r.get(0), r.get(1))).collect(),
        overdrawn_accounts: overdrawn.iter().map(|r| r.get(0)).collect(),
        pending_drift: pending
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    })
}

/// The internal checks restricted to one account: its balance against its entries, and the
/// transactions that touch it.
pub async fn check_account(pool: &PgPool, account_id: &str) -> Result<InvariantReport, StoreError> {
    let conn = pool.get().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&account_id];
    let (unbalanced, missing, drift) = tokio::try_join!(
        conn.query(
            "SELECT DISTINCT e.transaction_id FROM ledger_entries e
             WHERE e.transaction_id IN (SELECT transaction_id FROM ledger_entries WHERE account_id = $1)
             GROUP BY e.transaction_id, e.leg
             HAVING sum(e.amount) <> 0 OR count(*) <> 2 OR count(*) FILTER (WHERE e.amount < 0) <> 1
             ORDER BY 1",
            &params,
        ),
        conn.query(
            "SELECT t.id FROM transactions t
             WHERE (t.source_account_id = $1 OR t.destination_account_id = $1)
               AND (t.status = 'COMPLETED' AND t.kind NOT IN ('HOLD', 'VOID'))
                   <> EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)
             ORDER BY t.id",
            &params,
        ),
        conn.query(
            "SELECT b.account_id, b.balance, coalesce(s.total, 0), coalesce(l.balance_after, 0)
             FROM account_balances b
             LEFT JOIN LATERAL (SELECT sum(amount) AS total FROM ledger_entries WHERE account_id = b.account_id) s ON true
             LEFT JOIN LATERAL (SELECT balance_after FROM ledger_entries e WHERE e.account_id = b.account_id
                                ORDER BY e.posted_at DESC, e.id DESC LIMIT 1) l ON true
             WHERE b.account_id = $1
               AND (b.balance <> coalesce(s.total, 0) OR b.balance <> coalesce(l.balance_after, 0))",
            &params,
        ),
    )?;
    Ok(InvariantReport {
        unbalanced_transactions: unbalanced.iter().map(|r| r.get(0)).collect(),
        missing_ledger_entries: missing.iter().map(|r| r.get(0)).collect(),
        balance_drift: drift
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
        ..Default::default()
    })
}
