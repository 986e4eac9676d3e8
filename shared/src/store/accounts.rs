//! Account statements: open, read, balance (now or as of a time), ledger pages.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::accounts::{NewAccount, OverdraftLimit};

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: String,
    pub client_id: String,
    pub currency: String,
    pub overdraft_limit: OverdraftLimit,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub balance: Decimal,
    /// What the account's active holds reserve (`available = balance - pending`).
    pub pending: Decimal,
    pub balance_updated_at: DateTime<Utc>,
}

impl Account {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            client_id: row.get("client_id"),
            currency: row.get("currency"),
            overdraft_limit: OverdraftLimit::from_column(row.get("overdraft_limit")),
            metadata: row.get("metadata"),
            created_at: row.get("created_at"),
            balance: row.get("balance"),
            pending: row.get("pending"),
            balance_updated_at: row.get("updated_at"),
        }
    }

    /// Whether an existing account has exactly the attributes of a create request.
    pub fn matches(&self, new: &NewAccount) -> bool {
        self.currency == new.currency.code()
            && self.overdraft_limit == new.overdraft_limit
            && self.metadata == new.metadata
    }
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(Account),
    /// The same client already opened this account with the same attributes.
    AlreadyExists(Account),
    /// The same client opened this id with other attributes.
    Conflicts(Account),
    /// Another client owns this id.
    Taken,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.client_id, a.currency::text AS currency, a.overdraft_limit, \
     a.metadata, a.created_at, b.balance, b.pending, b.updated_at";

/// Opens an account (with a zero balance and an audit record) unless the id exists.
pub async fn create(
    pool: &PgPool,
    client_id: &str,
    new: &NewAccount,
) -> Result<CreateOutcome, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "WITH ins AS (
                 INSERT INTO accounts (id, client_id, currency, overdraft_limit, metadata)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING *
             ), bal AS (
                 INSERT INTO account_balances (account_id, updated_at)
                 SELECT id, created_at FROM ins
                 RETURNING account_id, balance, pending, updated_at
             ), audit AS (
                 INSERT INTO audit_log (client_id, action, entity, entity_id, after)
                 SELECT $2, 'account.created', 'account', id, to_jsonb(ins) FROM ins
             )
             SELECT a.id, a.client_id, a.currency::text AS currency, a.overdraft_limit, a.metadata,
                    a.created_at, b.balance, b.pending, b.updated_at
             FROM ins a JOIN bal b ON b.account_id = a.id",
        )
        .await?;
    let rows = conn
        .query(
            &stmt,
            &[
                &new.id.as_str(),
                &client_id,
                &new.currency.code(),
                &new.overdraft_limit.as_column(),
                &new.metadata,
            ],
        )
        .await?;
    if let Some(row) = rows.first() {
        return Ok(CreateOutcome::Created(Account::from_row(row)));
    }
    let existing = find_any(&conn, new.id.as_str()).await?.ok_or_else(|| {
        StoreError::Conflict(format!("account {} vanished during creation", new.id))
    })?;
    Ok(if existing.client_id != client_id {
        CreateOutcome::Taken
    } else if existing.matches(new) {
        CreateOutcome::AlreadyExists(existing)
    } else {
        CreateOutcome::Conflicts(existing)
    })
}

async fn find_any(
    conn: &deadpool_postgres::Object,
    id: &str,
) -> Result<Option<Account>, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN account_balances b ON b.account_id = a.id WHERE a.id = $1"
        ))
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&id])
        .await?
        .map(|r| Account::from_row(&r)))
}

/// The account if it exists and belongs to `client_id` (other clients' accounts read as absent).
pub async fn get(pool: &PgPool, client_id: &str, id: &str) -> Result<Option<Account>, StoreError> {
    let conn = pool.get().await?;
    Ok(find_any(&conn, id)
        .await?
        .filter(|a| a.client_id == client_id))
}

/// The balance as of `as_of` by value date: the sum of the account's entries whose effective time
/// is at or before it (a backdated posting counts from its effective date, whenever it posted).
/// Computed as the running balance after the last entry posted by then, less the value-dated
/// entries posted by then that take effect later, plus those posted later that took effect by
/// then: three index lookups, whatever the account's history (`ledger_entries_dated_idx` holds the
/// value-dated entries only).
pub async fn balance_as_of(
    pool: &PgPool,
    account_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Decimal, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT coalesce((SELECT balance_after FROM ledger_entries
                              WHERE account_id = $1 AND posted_at <= $2
                              ORDER BY posted_at DESC, id DESC LIMIT 1), 0)
                  - coalesce((SELECT sum(amount) FROM ledger_entries
                              WHERE account_id = $1 AND effective_at <> posted_at
                                AND effective_at > $2 AND posted_at <= $2), 0)
                  + coalesce((SELECT sum(amount) FROM ledger_entries
                              WHERE account_id = $1 AND effective_at <> posted_at
                                AND effective_at <= $2 AND posted_at > $2), 0)",
        )
        .await?;
    Ok(conn.query_one(&stmt, &[&account_id, &as_of]).await?.get(0))
}

#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub id: i64,
    pub transaction_id: Uuid,
    pub account_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub balance_after: Decimal,
    pub posted_at: DateTime<Utc>,
    pub effective_at: DateTime<Utc>,
    pub leg: i16,
    pub kind: String,
    /// The other side of the entry's leg.
    pub counterparty_account_id: String,
    pub reference: Option<String>,
}

/// Keyset position in an account's ledger: entries strictly older than this come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerCursor {
    pub posted_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of an account's entries, newest first, and the cursor for the next page if any.
pub async fn ledger_page(
    pool: &PgPool,
    account_id: &str,
    limit: usize,
    after: Option<LedgerCursor>,
) -> Result<(Vec<LedgerEntry>, Option<LedgerCursor>), StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT e.id, e.transaction_id, e.account_id, e.amount, e.currency::text AS currency,
                    e.balance_after, e.posted_at, e.effective_at, e.leg, t.kind, t.reference,
                    o.account_id AS counterparty
             FROM ledger_entries e
             JOIN transactions t ON t.id = e.transaction_id
             JOIN ledger_entries o ON o.transaction_id = e.transaction_id AND o.leg = e.leg
                                  AND (o.amount > 0) <> (e.amount > 0)
             WHERE e.account_id = $1
               AND ($2::timestamptz IS NULL OR (e.posted_at, e.id) < ($2, $3))
             ORDER BY e.posted_at DESC, e.id DESC
             LIMIT $4",
        )
        .await?;
    let (at, id) = after.map_or((None, 0), |c| (Some(c.posted_at), c.id));
    let rows = conn
        .query(&stmt, &[&account_id, &at, &id, &((limit + 1) as i64)])
        .await?;
    let mut entries: Vec<LedgerEntry> = rows
        .iter()
        .map(|r| LedgerEntry {
            id: r.get("id"),
            transaction_id: r.get("transaction_id"),
            account_id: r.get("account_id"),
            amount: r.get("amount"),
            currency: r.get("currency"),
            balance_after: r.get("balance_after"),
            posted_at: r.get("posted_at"),
            effective_at: r.get("effective_at"),
            leg: r.get("leg"),
            kind: r.get("kind"),
            counterparty_account_id: r.get("counterparty"),
            reference: r.get("reference"),
        })
        .collect();
    let next = super::cut_page(&mut entries, limit, |e| LedgerCursor {
        posted_at: e.posted_at,
        id: e.id,
    });
    Ok((entries, next))
}

/// The currencies of the client's accounts among `ids` (others' and unknown ids are left out).
pub async fn currencies(
    pool: &PgPool,
    client_id: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, crate::money::Currency>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT id, currency::text FROM accounts WHERE id = ANY($1) AND client_id = $2",
        )
        .await?;
    Ok(conn
        .query(&stmt, &[&ids, &client_id])
        .await?
        .iter()
        .filter_map(|r| {
            let currency = crate::money::Currency::parse(r.get(1)).ok()?;
            Some((r.get(0), currency))
        })
        .collect())
}
