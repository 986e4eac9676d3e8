//! Holds as clients read them (state and events), and the sweep that expires them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgPool, StoreError, account_locks};
use crate::ledger::{HoldState, HoldStatus};

/// A hold and what happened to it: its state as posting decides against it, and what a client
/// reads besides.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldRecord {
    pub id: Uuid,
    pub idempotency_key: String,
    pub state: HoldState,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// In time order: the hold, its captures and void, its expiry (only `get` reads them).
    pub events: Vec<HoldEvent>,
}

impl HoldRecord {
    /// The hold as a client sees it at `now`: an ACTIVE hold past its expiry is EXPIRED (closed at
    /// its expiry, with its EXPIRY event) even before the sweep records it, as posting treats it.
    pub fn seen_at(mut self, now: DateTime<Utc>) -> Self {
        if self.state.expired_at(now) {
            let released = self.state.remaining();
            self.state.status = HoldStatus::Expired;
            self.closed_at = Some(self.state.expires_at);
            if !self.events.is_empty() {
                self.events
                    .push(expiry_event(released, self.state.expires_at));
            }
        }
        self
    }
}

fn expiry_event(amount: Decimal, at: DateTime<Utc>) -> HoldEvent {
    HoldEvent {
        kind: HoldEventKind::Expiry,
        transaction_id: None,
        idempotency_key: None,
        amount,
        at,
    }
}

/// The columns `hold_state` reads, for a query on `holds`.
pub(super) const HOLD_STATE_COLUMNS: &str = "client_id, source_account_id, destination_account_id, \
     currency::text AS currency, amount, captured, status, expires_at";

/// A hold's state from a row with `HOLD_STATE_COLUMNS`.
pub(super) fn hold_state(r: &Row) -> Result<HoldState, StoreError> {
    Ok(HoldState {
        client_id: r.try_get("client_id")?,
        source_account_id: r.try_get("source_account_id")?,
        destination_account_id: r.try_get("destination_account_id")?,
        currency: r.try_get("currency")?,
        amount: r.try_get("amount")?,
        captured: r.try_get("captured")?,
        status: super::decode_enum(r, "hold", "status", HoldStatus::parse)?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// The columns `hold_record` reads.
const HOLD_RECORD_COLUMNS: &str = "id, idempotency_key, created_at, closed_at";

/// A hold without its events from a row with `HOLD_RECORD_COLUMNS` and `HOLD_STATE_COLUMNS`.
fn hold_record(r: &Row) -> Result<HoldRecord, StoreError> {
    Ok(HoldRecord {
        id: r.try_get("id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: hold_state(r)?,
        created_at: r.try_get("created_at")?,
        closed_at: r.try_get("closed_at")?,
        events: Vec::new(),
    })
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
        .prepare_cached(&format!(
            "SELECT {HOLD_RECORD_COLUMNS}, {HOLD_STATE_COLUMNS}
             FROM holds WHERE id = $1 AND client_id = $2"
        ))
        .await?;
    let Some(r) = conn.query_opt(&stmt, &[&id, &client_id]).await? else {
        return Ok(None);
    };
    let mut hold = hold_record(&r)?;
    hold.events.push(HoldEvent {
        kind: HoldEventKind::Hold,
        transaction_id: Some(id),
        idempotency_key: Some(hold.idempotency_key.clone()),
        amount: hold.state.amount,
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
    if hold.state.status == HoldStatus::Expired {
        let released = hold.state.amount - hold.state.captured;
        let at = hold.closed_at.unwrap_or(hold.state.expires_at);
        hold.events.push(expiry_event(released, at));
    }
    Ok(Some(hold))
}

/// Expires the ACTIVE holds past their expiry of up to `limit` source accounts, as a posting batch
/// of those accounts would (the same plan: the holds become EXPIRED, closed at their expiry, the
/// accounts' pending debits drop by what they still reserved, `hold.expired` events and monitor
/// changes are written in the same transaction). An account another transaction holds (a posting
/// batch, which expires its holds itself) is skipped, never waited for. Due means by the
/// database's clock, as posting decides. Returns how many holds it expired; call again while it
/// returns any.
pub async fn expire_due(pool: &PgPool, limit: i64) -> Result<u64, StoreError> {
    let conn = pool.get().await?;
    conn.batch_execute("BEGIN").await?;
    let result = async {
        let due: Vec<String> = conn
            .query(
                "SELECT DISTINCT source_account_id FROM holds
                 WHERE status = 'ACTIVE' AND expires_at <= statement_timestamp()
                 ORDER BY 1 LIMIT $1",
                &[&limit],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let keys: Vec<i64> = due.iter().map(|id| account_locks::key(id)).collect();
        let free: Vec<String> = if due.is_empty() {
            Vec::new()
        } else {
            conn.query(account_locks::TRY_LOCK, &[&due, &keys])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        if free.is_empty() {
            conn.batch_execute("COMMIT").await?;
            return Ok(0);
        }
        let ids: Vec<&str> = free.iter().map(String::as_str).collect();
        super::posting::expire_in_transaction(&conn, &ids).await
    }
    .await;
    if result.is_err() {
        let _ = conn.batch_execute("ROLLBACK").await;
    }
    Ok(result? as u64)
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
        .prepare_cached(&format!(
            "SELECT {HOLD_RECORD_COLUMNS}, {HOLD_STATE_COLUMNS}
             FROM holds
             WHERE source_account_id = $1 AND client_id = $2
               AND ($3::text IS NULL
                    OR ($3 = 'ACTIVE' AND status = 'ACTIVE' AND expires_at > $4)
                    OR ($3 = 'EXPIRED' AND (status = 'EXPIRED' OR (status = 'ACTIVE' AND expires_at <= $4)))
                    OR ($3 IN ('CAPTURED', 'VOIDED') AND status = $3))
               AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
             ORDER BY created_at DESC, id DESC
             LIMIT $7"
        ))
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
        .map(hold_record)
        .collect::<Result<Vec<_>, StoreError>>()?;
    let next = super::cut_page(&mut holds, limit, |h| HoldCursor {
        created_at: h.created_at,
        id: h.id,
    });
    Ok((holds, next))
}
