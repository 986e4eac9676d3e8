//! Balance monitors: created against the account's balance under its lock, read, disabled.
//! Posting evaluates and updates them (`store::posting`), under the same lock.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgPool, StoreError, account_locks, outbox};
use crate::events::{EventType, NewEvent};
use crate::monitors::{
    Condition, MAX_MONITORS_PER_ACCOUNT, Monitor, MonitorField, MonitorState, MonitorStatus,
    initial_state,
};
use crate::views;

/// The columns `monitor` reads, for a query on `balance_monitors`.
pub(super) const MONITOR_COLUMNS: &str = "id, client_id, account_id, currency::text AS currency, \
     field, condition, threshold, hysteresis, description, status, state, value, evaluated_at, \
     triggered_count, last_triggered_at, last_cleared_at, created_at";

fn decode<T>(r: &Row, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    super::decode_enum(r, "monitor", column, parse)
}

/// A monitor from a row with `MONITOR_COLUMNS`.
pub(super) fn monitor(r: &Row) -> Result<Monitor, StoreError> {
    Ok(Monitor {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        account_id: r.try_get("account_id")?,
        currency: r.try_get("currency")?,
        field: decode(r, "field", MonitorField::parse)?,
        condition: decode(r, "condition", Condition::parse)?,
        threshold: r.try_get("threshold")?,
        hysteresis: r.try_get("hysteresis")?,
        description: r.try_get("description")?,
        status: decode(r, "status", MonitorStatus::parse)?,
        state: decode(r, "state", MonitorState::parse)?,
        value: r.try_get("value")?,
        evaluated_at: r.try_get("evaluated_at")?,
        triggered_count: r.try_get("triggered_count")?,
        last_triggered_at: r.try_get("last_triggered_at")?,
        last_cleared_at: r.try_get("last_cleared_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Posting: the active monitors of the accounts it locked.
pub(super) static LOAD_MONITORS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {MONITOR_COLUMNS} FROM balance_monitors
         WHERE account_id = ANY($1::text[]) AND status = 'ACTIVE'
         ORDER BY created_at, id"
    )
});

/// Posting: the monitors whose state changed.
pub(super) const UPDATE_MONITORS: &str = "UPDATE balance_monitors m
     SET state = u.state, value = u.value, evaluated_at = u.evaluated_at,
         triggered_count = u.triggered_count, last_triggered_at = u.last_triggered_at,
         last_cleared_at = u.last_cleared_at, updated_at = u.evaluated_at
     FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::timestamptz[], $5::int[],
                 $6::timestamptz[], $7::timestamptz[])
         AS u(id, state, value, evaluated_at, triggered_count, last_triggered_at, last_cleared_at)
     WHERE m.id = u.id AND m.status = 'ACTIVE'";

/// The monitors as the columns `UPDATE_MONITORS` unnests.
#[derive(Default)]
pub(super) struct MonitorRows {
    id: Vec<Uuid>,
    state: Vec<&'static str>,
    value: Vec<Decimal>,
    evaluated_at: Vec<DateTime<Utc>>,
    triggered_count: Vec<i32>,
    last_triggered_at: Vec<Option<DateTime<Utc>>>,
    last_cleared_at: Vec<Option<DateTime<Utc>>>,
}

impl MonitorRows {
    pub(super) fn of(monitors: &[Monitor]) -> Self {
        let mut rows = Self::default();
        for m in monitors {
            rows.id.push(m.id);
            rows.state.push(m.state.as_str());
            rows.value.push(m.value);
            rows.evaluated_at.push(m.evaluated_at);
            rows.triggered_count.push(m.triggered_count);
            rows.last_triggered_at.push(m.last_triggered_at);
            rows.last_cleared_at.push(m.last_cleared_at);
        }
        rows
    }

    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.id,
            &self.state,
            &self.value,
            &self.evaluated_at,
            &self.triggered_count,
            &self.last_triggered_at,
            &self.last_cleared_at,
        ]
    }
}

/// What a client asks to watch.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMonitor {
    pub client_id: String,
    pub account_id: String,
    pub field: MonitorField,
    pub condition: Condition,
    pub threshold: Decimal,
    pub hysteresis: Decimal,
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("account not found")]
    AccountNotFound,
    /// The account already has `MAX_MONITORS_PER_ACCOUNT` active monitors.
    #[error("too many monitors on the account")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for CreateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Creates a monitor in the state the account's balance puts it in, under the account's balance
/// lock (so no posting changes the balance between the reading and the insert), and, when its
/// condition already holds, its `monitor.triggered` event in the same transaction.
pub async fn create(pool: &PgPool, new: NewMonitor) -> Result<Monitor, CreateError> {
    let mut conn = pool.get().await.map_err(StoreError::from)?;
    let tx = conn.transaction().await?;
    // The account's lock first, as every writer of it takes it (see `account_locks`).
    let keys = account_locks::keys([new.account_id.as_str()]);
    tx.query_one(account_locks::LOCK, &[&keys]).await?;
    let Some(row) = tx
        .query_opt(
            "SELECT a.currency::text, b.balance, b.pending, statement_timestamp()
             FROM account_balances b JOIN accounts a ON a.id = b.account_id
             WHERE b.account_id = $1 AND a.client_id = $2
             FOR UPDATE OF b",
            &[&new.account_id, &new.client_id],
        )
        .await?
    else {
        return Err(CreateError::AccountNotFound);
    };
    let (currency, posted, pending, now): (String, Decimal, Decimal, DateTime<Utc>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let active: i64 = tx
        .query_one(
            "SELECT count(*) FROM balance_monitors WHERE account_id = $1 AND status = 'ACTIVE'",
            &[&new.account_id],
        )
        .await?
        .get(0);
    if active >= MAX_MONITORS_PER_ACCOUNT {
        return Err(CreateError::TooMany);
    }
    let mut monitor = Monitor {
        id: Uuid::now_v7(),
        client_id: new.client_id,
        account_id: new.account_id,
        currency,
        field: new.field,
        condition: new.condition,
        threshold: new.threshold,
        hysteresis: new.hysteresis,
        description: new.description,
        status: MonitorStatus::Active,
        state: MonitorState::Clear,
        value: Decimal::ZERO,
        evaluated_at: now,
        triggered_count: 0,
        last_triggered_at: None,
        last_cleared_at: None,
        created_at: now,
    };
    monitor.value = monitor.watched(posted, pending);
    let (state, fires) = initial_state(monitor.condition, monitor.threshold, monitor.value);
    monitor.state = state;
    if fires {
        monitor.triggered_count = 1;
        monitor.last_triggered_at = Some(now);
    }
    tx.execute(
        "INSERT INTO balance_monitors (id, client_id, account_id, currency, field, condition,
             threshold, hysteresis, description, status, state, value, evaluated_at,
             triggered_count, last_triggered_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $13, $13)",
        &[
            &monitor.id,
            &monitor.client_id,
            &monitor.account_id,
            &monitor.currency,
            &monitor.field.as_str(),
            &monitor.condition.as_str(),
            &monitor.threshold,
            &monitor.hysteresis,
            &monitor.description,
            &monitor.status.as_str(),
            &monitor.state.as_str(),
            &monitor.value,
            &now,
            &monitor.triggered_count,
            &monitor.last_triggered_at,
        ],
    )
    .await?;
    if fires {
        let event = NewEvent {
            client_id: monitor.client_id.clone(),
            event_type: EventType::MonitorTriggered,
            subject_id: monitor.id.to_string(),
            data: views::monitor_json(&monitor),
        };
        outbox::write(&tx, std::slice::from_ref(&event)).await?;
    }
    tx.commit().await?;
    Ok(monitor)
}

/// The client's monitor `id`.
pub async fn get(pool: &PgPool, client_id: &str, id: Uuid) -> Result<Option<Monitor>, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE id = $1 AND client_id = $2"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id, &client_id])
        .await?
        .map(|r| monitor(&r))
        .transpose()
}

/// Keyset position in a client's monitors (oldest first): monitors after this come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of the client's monitors, oldest first, optionally of one account; and the cursor of
/// the next page if any.
pub async fn list(
    pool: &PgPool,
    client_id: &str,
    account_id: Option<&str>,
    limit: usize,
    after: Option<MonitorCursor>,
) -> Result<(Vec<Monitor>, Option<MonitorCursor>), StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {MONITOR_COLUMNS} FROM balance_monitors
             WHERE client_id = $1 AND ($2::text IS NULL OR account_id = $2)
               AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4))
             ORDER BY created_at, id
             LIMIT $5"
        ))
        .await?;
    let (at, id) = after.map_or((None, Uuid::nil()), |c| (Some(c.created_at), c.id));
    let rows = conn
        .query(
            &stmt,
            &[&client_id, &account_id, &at, &id, &((limit + 1) as i64)],
        )
        .await?;
    let mut monitors = rows.iter().map(monitor).collect::<Result<Vec<_>, _>>()?;
    let next = super::cut_page(&mut monitors, limit, |m| MonitorCursor {
        created_at: m.created_at,
        id: m.id,
    });
    Ok((monitors, next))
}

/// Disables the client's monitor `id` (it is never evaluated again); returns it as it is now,
/// or `None` if the client has no such monitor. Disabling a disabled monitor changes nothing.
/// Under its account's lock: a posting batch that read the monitor as active finishes (and
/// writes its state and events) before the monitor is disabled.
pub async fn disable(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<Monitor>, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT account_id FROM balance_monitors WHERE id = $1 AND client_id = $2",
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let keys = account_locks::keys([row.get::<_, &str>(0)]);
    tx.query_one(account_locks::LOCK, &[&keys]).await?;
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE balance_monitors SET status = 'DISABLED', updated_at = now()
             WHERE id = $1 AND client_id = $2
             RETURNING {MONITOR_COLUMNS}"
        ))
        .await?;
    let monitor = tx
        .query_opt(&stmt, &[&id, &client_id])
        .await?
        .map(|r| monitor(&r))
        .transpose()?;
    tx.commit().await?;
    Ok(monitor)
}
