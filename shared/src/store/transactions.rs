//! Reading recorded transfers: the status route's source of truth.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::accounts::AccountId;
use crate::ledger::TransferStatus;
use crate::money::Currency;
use crate::transfers::{Leg, OriginalLeg, TransactionKind};

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

/// One entry of a recorded transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryRecord {
    pub leg: i16,
    pub account_id: String,
    pub currency: String,
    /// Signed: debit < 0 < credit.
    pub amount: Decimal,
    pub balance_after: Decimal,
}

/// One completed refund of a leg of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct RefundRecord {
    pub transaction_id: Uuid,
    pub idempotency_key: String,
    pub leg: i16,
    pub amount: Decimal,
    pub currency: String,
    pub posted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransactionRecord {
    pub id: Uuid,
    pub client_id: String,
    pub idempotency_key: String,
    pub kind: TransactionKind,
    /// The first leg (see `legs` for all of them).
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    pub currency: String,
    /// Every leg when there is more than one (as stored: `[{leg, source_account_id, ...}]`).
    pub legs: Option<Value>,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub metadata: Value,
    pub status: TransferStatus,
    pub failure_code: Option<String>,
    pub accepted_at: DateTime<Utc>,
    pub posted_at: DateTime<Utc>,
    /// The value date the client gave; `None`: when it posted.
    pub effective_at: Option<DateTime<Utc>>,
    /// The hold of a capture or void, the original of a refund.
    pub parent_id: Option<Uuid>,
    /// Debit before credit, leg by leg.
    pub entries: Vec<EntryRecord>,
    /// Completed refunds of this transaction's legs.
    pub refunds: Vec<RefundRecord>,
}

const RECORD_COLUMNS: &str = "t.id, t.client_id, t.idempotency_key, t.kind, t.source_account_id,
    t.destination_account_id, t.amount, t.currency::text AS currency, t.legs, t.reference,
    t.description, t.metadata, t.status, t.failure_code, t.accepted_at, t.posted_at,
    t.effective_at, t.parent_id,
    coalesce((SELECT jsonb_agg(jsonb_build_array(e.leg, e.account_id, e.amount::text, e.balance_after::text,
                                                 e.currency::text)
                               ORDER BY e.leg, e.amount)
              FROM ledger_entries e WHERE e.transaction_id = t.id), '[]') AS entries,
    coalesce((SELECT jsonb_agg(jsonb_build_array(r.refund_id, rt.idempotency_key, r.original_leg,
                                                 r.amount::text, rt.posted_at,
                                                 (SELECT e.currency::text FROM ledger_entries e
                                                  WHERE e.transaction_id = r.refund_id
                                                    AND e.leg = r.leg AND e.amount > 0))
                               ORDER BY rt.posted_at, r.refund_id, r.leg)
              FROM refunds r JOIN transactions rt ON rt.id = r.refund_id
              WHERE r.original_id = t.id), '[]') AS refunds";

/// The transaction a client recorded under `key`, with its entries and refunds, if the processor
/// has seen it.
pub async fn find_by_key(
    pool: &PgPool,
    client_id: &str,
    key: &str,
) -> Result<Option<TransactionRecord>, StoreError> {
    let conn = pool.get().await?;
    find_by_key_on(&conn, client_id, key).await
}

/// `find_by_key` on `conn`, inside the caller's transaction if it has one.
pub(super) async fn find_by_key_on(
    conn: &impl deadpool_postgres::GenericClient,
    client_id: &str,
    key: &str,
) -> Result<Option<TransactionRecord>, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM transactions t
             WHERE t.client_id = $1 AND t.idempotency_key = $2"
        ))
        .await?;
    conn.query_opt(&stmt, &[&client_id, &key])
        .await?
        .map(|r| record(&r))
        .transpose()
}

/// The transaction with this id, if the processor recorded it for `client_id`.
pub async fn find_by_id(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<TransactionRecord>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM transactions t WHERE t.id = $1 AND t.client_id = $2"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id, &client_id])
        .await?
        .map(|r| record(&r))
        .transpose()
}

fn decimal(v: &Value) -> Result<Decimal, StoreError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Decode(format!("decimal {v}")))
}

fn record(r: &tokio_postgres::Row) -> Result<TransactionRecord, StoreError> {
    let kind: String = r.get("kind");
    let entries: Value = r.get("entries");
    let refunds: Value = r.get("refunds");
    let bad = |what: &str| StoreError::Decode(format!("transaction {what}"));
    let entries = entries
        .as_array()
        .ok_or_else(|| bad("entries"))?
        .iter()
        .map(|e| {
            Ok(EntryRecord {
                leg: e[0].as_i64().ok_or_else(|| bad("entry leg"))? as i16,
                account_id: e[1]
                    .as_str()
                    .ok_or_else(|| bad("entry account"))?
                    .to_string(),
                amount: decimal(&e[2])?,
                balance_after: decimal(&e[3])?,
                currency: e[4]
                    .as_str()
                    .ok_or_else(|| bad("entry currency"))?
                    .to_string(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let refunds = refunds
        .as_array()
        .ok_or_else(|| bad("refunds"))?
        .iter()
        .map(|x| {
            Ok(RefundRecord {
                transaction_id: x[0]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| bad("refund id"))?,
                idempotency_key: x[1].as_str().ok_or_else(|| bad("refund key"))?.to_string(),
                leg: x[2].as_i64().ok_or_else(|| bad("refund leg"))? as i16,
                amount: decimal(&x[3])?,
                posted_at: serde_json::from_value(x[4].clone()).map_err(|_| bad("refund time"))?,
                currency: x[5]
                    .as_str()
                    .ok_or_else(|| bad("refund currency"))?
                    .to_string(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(TransactionRecord {
        id: r.get("id"),
        client_id: r.get("client_id"),
        idempotency_key: r.get("idempotency_key"),
        kind: TransactionKind::parse(&kind).ok_or_else(|| bad(&format!("kind {kind:?}")))?,
        source_account_id: r.get("source_account_id"),
        destination_account_id: r.get("destination_account_id"),
        amount: r.get("amount"),
        currency: r.get("currency"),
        legs: r.get("legs"),
        reference: r.get("reference"),
        description: r.get("description"),
        metadata: r.try_get("metadata")?,
        status: r.try_get("status")?,
        failure_code: r.get("failure_code"),
        accepted_at: r.get("accepted_at"),
        posted_at: r.get("posted_at"),
        effective_at: r.get("effective_at"),
        parent_id: r.get("parent_id"),
        entries,
        refunds,
    })
}

/// The legs of a client's COMPLETED transfer or capture, with their refunded amounts (for the
/// refund route's checks; posting decides again under its locks).
pub async fn refundable_legs(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Vec<OriginalLeg>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT c.leg, d.account_id, c.account_id, c.amount, c.currency::text,
                    coalesce((SELECT sum(r.amount) FROM refunds r
                              WHERE r.original_id = c.transaction_id AND r.original_leg = c.leg), 0)
             FROM transactions t
             JOIN ledger_entries c ON c.transaction_id = t.id AND c.amount > 0
             JOIN ledger_entries d ON d.transaction_id = t.id AND d.leg = c.leg AND d.amount < 0
             WHERE t.id = $1 AND t.client_id = $2 AND t.status = 'COMPLETED'
               AND t.kind IN ('TRANSFER', 'CAPTURE')
             ORDER BY c.leg",
        )
        .await?;
    let decode = |e: crate::validation::ValidationError| StoreError::Decode(e.detail);
    conn.query(&stmt, &[&id, &client_id])
        .await?
        .iter()
        .map(|r| {
            Ok(OriginalLeg {
                leg: r.get::<_, i16>(0) as u16,
                posted: Leg {
                    source_account_id: AccountId::parse(r.get(1), "source").map_err(decode)?,
                    destination_account_id: AccountId::parse(r.get(2), "destination")
                        .map_err(decode)?,
                    amount: r.get(3),
                    currency: Currency::parse(r.get(4)).map_err(decode)?,
                },
                refunded: r.get(5),
            })
        })
        .collect()
}
