//! The outbox as its readers see it: a client's events (newest first, `GET /events`), one event,
//! and the positions (`xid`, `seq`) readers move along. Writing events is posting's business.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use super::{PgPool, StoreError};

/// One stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    /// The writing transaction's id (`xid8`), as text.
    pub xid: String,
    /// The public id (`evt_` + position in hex), which sorts in delivery order.
    pub id: String,
    pub client_id: String,
    pub event_type: String,
    pub subject_id: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

impl EventRecord {
    /// What endpoints receive, EventBridge carries and `GET /events/{id}` answers.
    pub fn envelope(&self) -> Value {
        crate::events::envelope(
            &self.id,
            &self.event_type,
            self.created_at,
            &self.client_id,
            &self.data,
        )
    }
}

/// The columns [`EventRecord::from_row`] reads, for `e` = events.
pub const EVENT_COLUMNS: &str =
    "e.seq, e.xid::text, e.id, e.client_id, e.type, e.subject_id, e.data, e.created_at";

impl EventRecord {
    /// Reads [`EVENT_COLUMNS`] starting at column `at`.
    pub fn from_row(row: &Row, at: usize) -> Self {
        Self {
            seq: row.get(at),
            xid: row.get(at + 1),
            id: row.get(at + 2),
            client_id: row.get(at + 3),
            event_type: row.get(at + 4),
            subject_id: row.get(at + 5),
            data: row.get(at + 6),
            created_at: row.get(at + 7),
        }
    }
}

/// A position in the outbox: (transaction id as decimal text, seq). Read from an event id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub xid: String,
    pub seq: i64,
}

impl Position {
    /// The position an event id spells (`evt_` + 16 hex digits of xid + 16 of seq), if it is one.
    pub fn from_event_id(id: &str) -> Option<Self> {
        let hex = id.strip_prefix("evt_")?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let xid = u64::from_str_radix(&hex[..16], 16).ok()?;
        let seq = i64::from_str_radix(&hex[16..], 16).ok()?;
        // The id's xid is PostgreSQL's xid8 as a bigint: never negative.
        (xid <= i64::MAX as u64).then(|| Self {
            xid: xid.to_string(),
            seq,
        })
    }
}

/// A client's events newest first, optionally of one type, strictly before `before`.
pub async fn list(
    pool: &PgPool,
    client_id: &str,
    event_type: Option<&str>,
    before: Option<&Position>,
    limit: i64,
) -> Result<Vec<EventRecord>, StoreError> {
    let conn = pool.get().await?;
    let (xid, seq) = before.map_or((None, None), |p| (Some(p.xid.as_str()), Some(p.seq)));
    let rows = conn
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e
                 WHERE e.client_id = $1 AND ($2::text IS NULL OR e.type = $2)
                   AND ($3::text IS NULL OR (e.xid, e.seq) < ($3::text::xid8, $4::bigint))
                   -- Only events no running transaction can still precede (as the fan-out
                   -- reads them), so a client that polls until the last id it saw misses none.
                   AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY e.xid DESC, e.seq DESC LIMIT $5"
            ),
            &[&client_id, &event_type, &xid, &seq, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| EventRecord::from_row(r, 0)).collect())
}

/// One of the client's events by its public id.
pub async fn get(
    pool: &PgPool,
    client_id: &str,
    id: &str,
) -> Result<Option<EventRecord>, StoreError> {
    let Some(position) = Position::from_event_id(id) else {
        return Ok(None);
    };
    let conn = pool.get().await?;
    // By the primary key the id spells; the whole id must match too.
    let row = conn
        .query_opt(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e
                 WHERE e.seq = $1 AND e.id = $2 AND e.client_id = $3"
            ),
            &[&position.seq, &id, &client_id],
        )
        .await?;
    Ok(row.map(|r| EventRecord::from_row(&r, 0)))
}

/// The reader cursor the optional EventBridge bus advances.
pub const EVENTBRIDGE_CURSOR: &str = "eventbridge";

/// A reader's locked look at the outbox: up to `limit` events past its cursor, in (xid, seq) order,
/// only from transactions older than every one still running (as the webhook fan-out reads). The
/// cursor row stays locked until [`CursorRead::advance`], so two readers never publish the same
/// events concurrently.
pub struct CursorRead<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    cursor: &'static str,
    pub events: Vec<EventRecord>,
}

/// Opens a [`CursorRead`]; `None` when another reader holds the cursor (it is at work: skip).
pub async fn read_past_cursor<'a>(
    conn: &'a mut deadpool_postgres::Object,
    cursor: &'static str,
    limit: i64,
) -> Result<Option<CursorRead<'a>>, StoreError> {
    let tx = conn.transaction().await?;
    // The horizon first, in its own statement, before this transaction locks anything.
    let horizon: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?
        .get(0);
    let Some(at) = tx
        .query_opt(
            "SELECT xid::text, seq FROM event_cursors WHERE name = $1 FOR UPDATE SKIP LOCKED",
            &[&cursor],
        )
        .await?
    else {
        return Ok(None);
    };
    let (xid, seq): (String, i64) = (at.get(0), at.get(1));
    let rows = tx
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e
                 WHERE (e.xid, e.seq) > ($1::text::xid8, $2) AND e.xid < $3::text::xid8
                 ORDER BY e.xid, e.seq LIMIT $4"
            ),
            &[&xid, &seq, &horizon, &limit],
        )
        .await?;
    Ok(Some(CursorRead {
        tx,
        cursor,
        events: rows.iter().map(|r| EventRecord::from_row(r, 0)).collect(),
    }))
}

impl CursorRead<'_> {
    /// Moves the cursor just past `last` (nothing when `None`) and releases it.
    pub async fn advance(self, last: Option<&EventRecord>) -> Result<(), StoreError> {
        if let Some(e) = last {
            self.tx
                .execute(
                    "UPDATE event_cursors SET xid = $2::text::xid8, seq = $3, updated_at = now()
                     WHERE name = $1",
                    &[&self.cursor, &e.xid, &e.seq],
                )
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

/// How old the oldest event past reader `cursor` is, in seconds (0 when it has read everything).
pub async fn lag_seconds(pool: &PgPool, cursor: &str) -> Result<f64, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT coalesce(extract(epoch FROM now() - (
                 SELECT e.created_at FROM events e, event_cursors c
                 WHERE c.name = $1 AND (e.xid, e.seq) > (c.xid, c.seq)
                 ORDER BY e.xid, e.seq LIMIT 1)), 0)::float8",
            &[&cursor],
        )
        .await?;
    Ok(row.get::<_, f64>(0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_spell_positions() {
        let p = Position::from_event_id("evt_00000000000002f1000000000000000a").unwrap();
        assert_eq!(
            p,
            Position {
                xid: "753".into(),
                seq: 10
            }
        );
        for bad in [
            "evt_1",
            "evt_zz000000000002f1000000000000000a",
            "xyz_00000000000002f1000000000000000a",
            "evt_ffffffffffffffff000000000000000a",
            "",
        ] {
            assert_eq!(Position::from_event_id(bad), None, "{bad}");
        }
    }
}
