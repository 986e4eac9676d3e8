//! Reading recorded transfers: the status route's source of truth.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::ledger::TransferStatus;

/// Reads the `status` column (CHECK: `COMPLETED` or `FAILED`); anything else is an error, not a
/// guess.
impl<'a> tokio_postgres::types::FromSql<'a> for TransferStatus {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        TransferStatus::parse(s).ok_or_else(|| format!("unknown transfer status {s:?}").into())
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransactionRecord {
    pub id: Uuid,
    pub client_id: String,
    pub idempotency_key: String,
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub metadata: Value,
    pub status: TransferStatus,
    pub failure_code: Option<String>,
    pub accepted_at: DateTime<Utc>,
    pub posted_at: DateTime<Utc>,
    /// (account, signed amount, balance after) for each entry, debit first.
    pub entries: Vec<(String, Decimal, Decimal)>,
}

/// The transfer a client recorded under `key`, with its entries, if the processor has seen it.
pub async fn find_by_key(
    pool: &PgPool,
    client_id: &str,
    key: &str,
) -> Result<Option<TransactionRecord>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT t.id, t.client_id, t.idempotency_key, t.source_account_id, t.destination_account_id,
                    t.amount, t.currency::text AS currency, t.reference, t.description, t.metadata,
                    t.status, t.failure_code, t.accepted_at, t.posted_at,
                    coalesce(array_agg(e.account_id ORDER BY e.amount) FILTER (WHERE e.id IS NOT NULL), '{}') AS e_account,
                    coalesce(array_agg(e.amount ORDER BY e.amount) FILTER (WHERE e.id IS NOT NULL), '{}') AS e_amount,
                    coalesce(array_agg(e.balance_after ORDER BY e.amount) FILTER (WHERE e.id IS NOT NULL), '{}') AS e_after
             FROM transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
             WHERE t.client_id = $1 AND t.idempotency_key = $2
             GROUP BY t.id",
        )
        .await?;
    let Some(r) = conn.query_opt(&stmt, &[&client_id, &key]).await? else {
        return Ok(None);
    };
    let accounts: Vec<String> = r.get("e_account");
    let amounts: Vec<Decimal> = r.get("e_amount");
    let afters: Vec<Decimal> = r.get("e_after");
    Ok(Some(TransactionRecord {
        id: r.get("id"),
        client_id: r.get("client_id"),
        idempotency_key: r.get("idempotency_key"),
        source_account_id: r.get("source_account_id"),
        destination_account_id: r.get("destination_account_id"),
        amount: r.get("amount"),
        currency: r.get("currency"),
        reference: r.get("reference"),
        description: r.get("description"),
        metadata: r.try_get("metadata")?,
        status: r.try_get("status")?,
        failure_code: r.get("failure_code"),
        accepted_at: r.get("accepted_at"),
        posted_at: r.get("posted_at"),
        entries: accounts
            .into_iter()
            .zip(amounts)
            .zip(afters)
            .map(|((a, m), b)| (a, m, b))
            .collect(),
    }))
}
