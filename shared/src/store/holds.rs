//! Holds as clients read them (state and events), and the sweep that expires them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::ledger::HoldStatus;

/// A hold and what happened to it.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldRecord {
    pub id: Uuid,
    pub idempotency_key: String,
    pub status: HoldStatus,
    pub source_account_id: String,
    pub destination_account_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub captured: Decimal,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// In time order: the hold, its captures and void, its expiry.
    pub events: Vec<HoldEvent>,
}

impl HoldRecord {
    /// What the hold still reserves (nothing once it is closed).
    pub fn remaining(&self) -> Decimal {
        if self.status == HoldStatus::Active {
            self.amount - self.captured
        } else {
            Decimal::ZERO
        }
    }

    /// The hold as a client sees it at `now`: an ACTIVE hold past its expiry is EXPIRED (closed at
    /// its expiry, with its EXPIRY event) even before the sweep records it, as posting treats it.
    pub fn seen_at(mut self, now: DateTime<Utc>) -> Self {
        if self.status == HoldStatus::Active && self.expires_at <= now {
            self.status = HoldStatus::Expired;
            self.closed_at = Some(self.expires_at);
            if !self.events.is_empty() {
                self.events.push(HoldEvent {
                    kind: HoldEventKind::Expiry,
                    transaction_id: None,
                    idempotency_key: None,
                    amount: self.amount - self.captured,
                    at: self.expires_at,
                });
            }
        }
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldEventKind {
    Hold,
    Capture,
    Void,
    Expiry,
}

impl HoldEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "HOLD",
            Self::Capture => "CAPTURE",
            Self::Void => "VOID",
            Self::Expiry => "EXPIRY",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HoldEvent {
    pub kind: HoldEventKind,
    /// The transaction of the hold, capture or void (none for an expiry).
    pub transaction_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub amount: Decimal,
    pub at: DateTime<Utc>,
}

/// The client's hold `id` with its events, if posting placed it.
pub async fn get(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<HoldRecord>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT h.idempotency_key, h.status, h.source_account_id, h.destination_account_id,
                    h.currency::text, h.amount, h.captured, h.expires_at, h.created_at, h.closed_at
             FROM holds h WHERE h.id = $1 AND h.client_id = $2",
        )
        .await?;
    let Some(r) = conn.query_opt(&stmt, &[&id, &client_id]).await? else {
        return Ok(None);
    };
    let status: &str = r.get(1);
    let mut hold = HoldRecord {
        id,
        idempotency_key: r.get(0),
        status: HoldStatus::parse(status)
            .ok_or_else(|| StoreError::Decode(format!("hold status {status:?}")))?,
        source_account_id: r.get(2),
        destination_account_id: r.get(3),
        currency: r.get(4),
        amount: r.get(5),
        captured: r.get(6),
        expires_at: r.get(7),
        created_at: r.get(8),
        closed_at: r.get(9),
        events: Vec::new(),
    };
    hold.events.push(HoldEvent {
        kind: HoldEventKind::Hold,
        transaction_id: Some(id),
        idempotency_key: Some(hold.idempotency_key.clone()),
        amount: hold.amount,
        at: hold.created_at,
    });
    let stmt = conn
        .prepare_cached(
            "SELECT kind, id, idempotency_key, amount, posted_at FROM transactions
             WHERE parent_id = $1 AND client_id = $2 AND status = 'COMPLETED'
             ORDER BY posted_at, id",
        )
        .await?;
    for e in conn.query(&stmt, &[&id, &client_id]).await? {
        let kind = match e.get::<_, &str>(0) {
            "CAPTURE" => HoldEventKind::Capture,
            "VOID" => HoldEventKind::Void,
            other => {
                return Err(StoreError::Decode(format!(
                    "a hold's event of kind {other}"
                )));
            }
        };
        hold.events.push(HoldEvent {
            kind,
            transaction_id: Some(e.get(1)),
            idempotency_key: Some(e.get(2)),
            amount: e.get(3),
            at: e.get(4),
        });
    }
    if hold.status == HoldStatus::Expired {
        hold.events.push(HoldEvent {
            kind: HoldEventKind::Expiry,
            transaction_id: None,
            idempotency_key: None,
            amount: hold.amount - hold.captured,
            at: hold.closed_at.unwrap_or(hold.expires_at),
        });
    }
    Ok(Some(hold))
}

/// Expires the ACTIVE holds past their expiry at `now` of up to `limit` source accounts: under
/// the lock of each hold's source account (in account order, as posting takes them), the hold
/// becomes EXPIRED (closed at its expiry) and the account's pending debits drop by what it still
/// reserved. An account another transaction holds (a posting batch, which expires its holds
/// itself) is skipped, never waited for. Returns on how many accounts it released holds; call
/// again while it returns any.
pub async fn expire_due(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let accounts: Vec<String> = tx
        .query(
            "SELECT b.account_id FROM account_balances b
             WHERE b.account_id IN (SELECT source_account_id FROM holds
                                    WHERE status = 'ACTIVE' AND expires_at <= $1)
             ORDER BY b.account_id
             LIMIT $2
             FOR UPDATE OF b SKIP LOCKED",
            &[&now, &limit],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if accounts.is_empty() {
        return Ok(0);
    }
    let expired = tx
        .execute(
            "WITH due AS (
                 SELECT id, source_account_id, amount - captured AS released FROM holds
                 WHERE source_account_id = ANY($1) AND status = 'ACTIVE' AND expires_at <= $2
                 ORDER BY id FOR UPDATE
             ), closed AS (
                 UPDATE holds h SET status = 'EXPIRED', closed_at = h.expires_at
                 FROM due WHERE h.id = due.id
             ), released AS (
                 SELECT source_account_id, sum(released) AS total FROM due GROUP BY 1
             )
             UPDATE account_balances b
             SET pending = b.pending - r.total, updated_at = statement_timestamp()
             FROM released r WHERE b.account_id = r.source_account_id",
            &[&accounts, &now],
        )
        .await?;
    tx.commit().await?;
    Ok(expired)
}

/// Keyset position in an account's holds: holds strictly older than this come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of the holds placed on `account_id` (the client's), newest first, optionally only
/// those in `status` as a client sees it at `now` (an ACTIVE hold past its expiry is EXPIRED),
/// without their events; and the cursor of the next page if any.
pub async fn list_for_account(
    pool: &PgPool,
    client_id: &str,
    account_id: &str,
    status: Option<HoldStatus>,
    now: DateTime<Utc>,
    limit: usize,
    after: Option<HoldCursor>,
) -> Result<(Vec<HoldRecord>, Option<HoldCursor>), StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT id, idempotency_key, status, source_account_id, destination_account_id,
                    currency::text, amount, captured, expires_at, created_at, closed_at
             FROM holds
             WHERE source_account_id = $1 AND client_id = $2
               AND ($3::text IS NULL
                    OR ($3 = 'ACTIVE' AND status = 'ACTIVE' AND expires_at > $4)
                    OR ($3 = 'EXPIRED' AND (status = 'EXPIRED' OR (status = 'ACTIVE' AND expires_at <= $4)))
                    OR ($3 IN ('CAPTURED', 'VOIDED') AND status = $3))
               AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
             ORDER BY created_at DESC, id DESC
             LIMIT $7",
        )
        .await?;
    let (at, id) = after.map_or((None, Uuid::nil()), |c| (Some(c.created_at), c.id));
    let rows = conn
        .query(
            &stmt,
            &[
                &account_id,
                &client_id,
                &status.map(HoldStatus::as_str),
                &now,
                &at,
                &id,
                &((limit + 1) as i64),
            ],
        )
        .await?;
    let mut holds = rows
        .iter()
        .map(|r| {
            let status: &str = r.get(2);
            Ok(HoldRecord {
                id: r.get(0),
                idempotency_key: r.get(1),
                status: HoldStatus::parse(status)
                    .ok_or_else(|| StoreError::Decode(format!("hold status {status:?}")))?,
                source_account_id: r.get(3),
                destination_account_id: r.get(4),
                currency: r.get(5),
                amount: r.get(6),
                captured: r.get(7),
                expires_at: r.get(8),
                created_at: r.get(9),
                closed_at: r.get(10),
                events: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let next = if holds.len() > limit {
        holds.truncate(limit);
        holds.last().map(|h| HoldCursor {
            created_at: h.created_at,
            id: h.id,
        })
    } else {
        None
    };
    Ok((holds, next))
}
