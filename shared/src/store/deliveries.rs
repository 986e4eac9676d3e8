//! Webhook deliveries: the fan-out of the outbox into one delivery per subscribed endpoint, the
//! claim of each endpoint's head delivery, the record of every attempt, the delivery log and
//! redelivery on request. See V9__events.sql for the design these statements follow.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::events::{EVENT_COLUMNS, EventRecord};
use super::{PgPool, StoreError};

/// The reader cursor the fan-out advances.
pub const WEBHOOKS_CURSOR: &str = "webhooks";

/// What one fan-out transaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    pub events: usize,
    pub deliveries: u64,
}

/// Reads up to `chunk` events past the 'webhooks' cursor, in (xid, seq) order and only from
/// transactions older than every one still running (so none can later appear behind the cursor),
/// creates one PENDING delivery per ENABLED endpoint of the event's client subscribed to its type,
/// in event order, and advances the cursor: one transaction, the cursor row locked throughout, so
/// two dispatchers never fan out the same event twice.
pub async fn fan_out(
    pool: &PgPool,
    chunk: i64,
    retry_period: Duration,
) -> Result<FanOut, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // The horizon first, in its own statement, before this transaction writes (or locks) anything.
    let horizon: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?
        .get(0);
    let cursor = tx
        .query_one(
            "SELECT xid::text, seq FROM event_cursors WHERE name = $1 FOR UPDATE",
            &[&WEBHOOKS_CURSOR],
        )
        .await?;
    let (cursor_xid, cursor_seq): (String, i64) = (cursor.get(0), cursor.get(1));
    let batch = tx
        .query(
            "SELECT seq, xid::text FROM events
             WHERE (xid, seq) > ($1::text::xid8, $2) AND xid < $3::text::xid8
             ORDER BY xid, seq LIMIT $4",
            &[&cursor_xid, &cursor_seq, &horizon, &chunk],
        )
        .await?;
    let Some(last) = batch.last() else {
        return Ok(FanOut::default());
    };
    let (last_xid, last_seq): (String, i64) = (last.get(1), last.get(0));
    let seqs: Vec<i64> = batch.iter().map(|r| r.get(0)).collect();
    // Ids follow the ORDER BY: per endpoint, delivery id order is event order.
    let deliveries = tx
        .execute(
            "INSERT INTO webhook_deliveries
                 (endpoint_id, client_id, event_seq, status, next_attempt_at, give_up_at)
             SELECT w.id, e.client_id, e.seq, 'PENDING', now(), now() + $2::float8 * interval '1 second'
             FROM unnest($1::bigint[]) WITH ORDINALITY AS b(seq, ord)
             JOIN events e ON e.seq = b.seq
             JOIN webhook_endpoints w ON w.client_id = e.client_id AND w.status = 'ENABLED'
                  AND w.event_types && ARRAY[e.type, '*']
             ORDER BY b.ord, w.id",
            &[&seqs, &retry_period.as_secs_f64()],
        )
        .await?;
    tx.execute(
        "UPDATE event_cursors SET xid = $2::text::xid8, seq = $3, updated_at = now()
         WHERE name = $1",
        &[&WEBHOOKS_CURSOR, &last_xid, &last_seq],
    )
    .await?;
    tx.commit().await?;
    Ok(FanOut {
        events: seqs.len(),
        deliveries,
    })
}

/// A delivery a dispatcher has claimed: what to send, where, and how to sign it.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub delivery_id: i64,
    /// Attempts recorded before this one.
    pub attempts: i32,
    pub endpoint_id: Uuid,
    pub url: String,
    pub secret: String,
    /// The previous secret, while its overlap window lasts.
    pub previous_secret: Option<String>,
    pub event: EventRecord,
}

/// Claims up to `limit` deliveries, each the head (lowest PENDING id) of an ENABLED endpoint, due
/// and not leased, and leases them for `lease`. Fair between clients: a client never has more
/// than `per_client` deliveries in flight (leased, across every dispatcher), and the heads are
/// taken in turns (each client's oldest due head first, then each client's second, ...), so one
/// client's slow or backlogged endpoints never take every sending slot. The UPDATE re-checks status and lease on the row it
/// locks (READ COMMITTED re-evaluates its WHERE on a row another dispatcher changed), so two
/// dispatchers never claim the same delivery while its lease lasts.
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    per_client: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "WITH in_flight AS (
                     SELECT client_id, count(*) AS n FROM webhook_deliveries
                     WHERE status = 'PENDING' AND leased_until > now()
                     GROUP BY client_id),
                 due AS (
                     SELECT h.id, w.client_id, h.next_attempt_at,
                            row_number() OVER (PARTITION BY w.client_id
                                               ORDER BY h.next_attempt_at, h.id) AS turn
                     FROM webhook_endpoints w
                     CROSS JOIN LATERAL (
                         SELECT d.id, d.next_attempt_at, d.leased_until FROM webhook_deliveries d
                         WHERE d.endpoint_id = w.id AND d.status = 'PENDING'
                         ORDER BY d.id LIMIT 1) h
                     WHERE w.status = 'ENABLED' AND h.next_attempt_at <= now()
                       AND (h.leased_until IS NULL OR h.leased_until <= now())),
                 heads AS (
                     SELECT due.id FROM due
                     LEFT JOIN in_flight f ON f.client_id = due.client_id
                     WHERE due.turn + coalesce(f.n, 0) <= $3
                     ORDER BY due.turn, due.next_attempt_at LIMIT $1),
                 claimed AS (
                     UPDATE webhook_deliveries d
                     SET leased_until = now() + $2::float8 * interval '1 second'
                     FROM heads
                     WHERE d.id = heads.id AND d.status = 'PENDING'
                       AND (d.leased_until IS NULL OR d.leased_until <= now())
                     RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq)
                 SELECT c.id, c.attempts, w.id, w.url, w.secret,
                        CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END,
                        {EVENT_COLUMNS}
                 FROM claimed c
                 JOIN webhook_endpoints w ON w.id = c.endpoint_id
                 JOIN events e ON e.seq = c.event_seq
                 ORDER BY c.id"
            ),
            &[&limit, &lease.as_secs_f64(), &per_client],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            delivery_id: r.get(0),
            attempts: r.get(1),
            endpoint_id: r.get(2),
            url: r.get(3),
            secret: r.get(4),
            previous_secret: r.get(5),
            event: EventRecord::from_row(r, 6),
        })
        .collect())
}

/// One attempt's result, to record.
pub struct AttemptResult<'a> {
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i32,
    pub succeeded: bool,
    /// The delay before the next attempt if this one failed.
    pub retry_in: Duration,
}

/// Records an attempt of a claimed delivery and settles it: SUCCEEDED, FAILED (the next attempt
/// would come after its `give_up_at`) or PENDING again, due after `retry_in`; the lease is released.
/// Returns the new status, or `None` when the delivery is no longer as claimed (another dispatcher
/// took it over after the lease ran out and recorded first): nothing is recorded then.
pub async fn record_attempt(
    pool: &PgPool,
    claimed: &Claimed,
    result: &AttemptResult<'_>,
) -> Result<Option<String>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "WITH d AS (
                 UPDATE webhook_deliveries SET
                     attempts = attempts + 1,
                     last_attempt_at = $3, last_status_code = $4, last_error = $5,
                     leased_until = NULL,
                     status = CASE WHEN $6 THEN 'SUCCEEDED'
                                   WHEN now() + $7::float8 * interval '1 second' > give_up_at THEN 'FAILED'
                                   ELSE 'PENDING' END,
                     next_attempt_at = CASE WHEN $6 THEN next_attempt_at
                                            ELSE now() + $7::float8 * interval '1 second' END,
                     completed_at = CASE WHEN $6 OR now() + $7::float8 * interval '1 second' > give_up_at
                                         THEN now() END
                 WHERE id = $1 AND attempts = $2 AND status = 'PENDING'
                 RETURNING id, attempts, status),
             a AS (
                 INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms)
                 SELECT id, attempts, $3, $4, $5, $8 FROM d)
             SELECT status FROM d",
            &[
                &claimed.delivery_id,
                &claimed.attempts,
                &result.at,
                &result.status_code,
                &result.error,
                &result.succeeded,
                &result.retry_in.as_secs_f64(),
                &result.duration_ms,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// One delivery as the delivery log shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub give_up_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub redelivery: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, e.id, e.type, d.status, d.attempts,
    d.next_attempt_at, d.give_up_at, d.last_attempt_at, d.last_status_code, d.last_error,
    d.redelivery, d.created_at, d.completed_at";

impl DeliveryRecord {
    fn from_row(r: &Row) -> Self {
        Self {
            id: r.get(0),
            endpoint_id: r.get(1),
            event_id: r.get(2),
            event_type: r.get(3),
            status: r.get(4),
            attempts: r.get(5),
            next_attempt_at: r.get(6),
            give_up_at: r.get(7),
            last_attempt_at: r.get(8),
            last_status_code: r.get(9),
            last_error: r.get(10),
            redelivery: r.get(11),
            created_at: r.get(12),
            completed_at: r.get(13),
        }
    }
}

/// One attempt of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// An endpoint's deliveries, newest first, optionally in one status, with ids below `before`.
pub async fn list(
    pool: &PgPool,
    client_id: &str,
    endpoint_id: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 JOIN events e ON e.seq = d.event_seq
                 WHERE d.endpoint_id = $1 AND d.client_id = $2
                   AND ($3::text IS NULL OR d.status = $3)
                   AND ($4::bigint IS NULL OR d.id < $4)
                 ORDER BY d.id DESC LIMIT $5"
            ),
            &[&endpoint_id, &client_id, &status, &before, &limit],
        )
        .await?;
    Ok(rows.iter().map(DeliveryRecord::from_row).collect())
}

/// One of the client's deliveries with its attempts, oldest attempt first.
pub async fn get(
    pool: &PgPool,
    client_id: &str,
    id: i64,
) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>, StoreError> {
    let conn = pool.get().await?;
    let Some(row) = conn
        .query_opt(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 JOIN events e ON e.seq = d.event_seq
                 WHERE d.id = $1 AND d.client_id = $2"
            ),
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let attempts = conn
        .query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts
             WHERE delivery_id = $1 ORDER BY attempt LIMIT 1000",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| AttemptRecord {
            attempt: r.get(0),
            at: r.get(1),
            status_code: r.get(2),
            error: r.get(3),
            duration_ms: r.get(4),
        })
        .collect();
    Ok(Some((DeliveryRecord::from_row(&row), attempts)))
}

/// What a redelivery request found.
#[derive(Debug)]
pub enum Redelivery {
    EventNotFound,
    EndpointNotFound,
    EndpointDisabled,
    /// The new deliveries (none when no enabled endpoint subscribes to the event's type).
    Created(Vec<DeliveryRecord>),
}

/// Creates a new delivery (`redelivery = true`) of the client's event `event_id` to `endpoint`
/// (any of the client's enabled endpoints), or to every enabled endpoint subscribed to its type.
/// It queues behind the endpoint's pending deliveries.
pub async fn redeliver(
    pool: &PgPool,
    client_id: &str,
    event_id: &str,
    endpoint: Option<Uuid>,
    retry_period: Duration,
) -> Result<Redelivery, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let seq = super::events::Position::from_event_id(event_id).map_or(-1, |p| p.seq);
    let Some(event) = tx
        .query_opt(
            "SELECT seq, type FROM events WHERE seq = $1 AND id = $2 AND client_id = $3",
            &[&seq, &event_id, &client_id],
        )
        .await?
    else {
        return Ok(Redelivery::EventNotFound);
    };
    let (seq, event_type): (i64, String) = (event.get(0), event.get(1));
    if let Some(id) = endpoint {
        let status: Option<String> = tx
            .query_opt(
                "SELECT status FROM webhook_endpoints WHERE id = $1 AND client_id = $2",
                &[&id, &client_id],
            )
            .await?
            .map(|r| r.get(0));
        match status.as_deref() {
            None => return Ok(Redelivery::EndpointNotFound),
            Some("ENABLED") => {}
            Some(_) => return Ok(Redelivery::EndpointDisabled),
        }
    }
    let ids: Vec<i64> = tx
        .query(
            "INSERT INTO webhook_deliveries (endpoint_id, client_id, event_seq, status,
                 next_attempt_at, give_up_at, redelivery)
             SELECT w.id, w.client_id, $3, 'PENDING', now(), now() + $5::float8 * interval '1 second', true
             FROM webhook_endpoints w
             WHERE w.client_id = $1 AND w.status = 'ENABLED'
               AND CASE WHEN $2::uuid IS NULL THEN w.event_types && ARRAY[$4::text, '*']
                        ELSE w.id = $2 END
             ORDER BY w.id
             RETURNING id",
            &[
                &client_id,
                &endpoint,
                &seq,
                &event_type,
                &retry_period.as_secs_f64(),
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows = tx
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 JOIN events e ON e.seq = d.event_seq
                 WHERE d.id = ANY($1) ORDER BY d.id"
            ),
            &[&ids],
        )
        .await?;
    tx.commit().await?;
    Ok(Redelivery::Created(
        rows.iter().map(DeliveryRecord::from_row).collect(),
    ))
}
