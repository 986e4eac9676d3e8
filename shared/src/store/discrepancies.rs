//! The discrepancy workflow's statements: list and read (with history), status changes by hand,
//! and an adjustment's start, acceptance and abandonment, each recorded in the history and the
//! audit log.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{PgPool, StoreError, outbox};
use crate::events::{EventType, NewEvent};
use crate::reconcile::discrepancies::{
    AdjustmentStart, DiscrepancyFilter, HistoryEntry, StatusChange, StoredDiscrepancy,
};
use crate::reconcile::findings::FindingKind;
use crate::reconcile::workflow::DiscrepancyStatus;
use crate::transfers::{IdempotencyKey, adjustment_key};
use crate::views;

const DISCREPANCY_COLUMNS: &str = "d.id, d.client_id, d.account_id, d.kind, d.status, d.booked_on,
    d.statement_line_id, l.external_id, d.transaction_ids, d.expected, d.actual, d.currency, d.detail,
    d.data, d.first_seen_run, d.last_seen_run, d.cleared_by_run, d.resolution, d.created_at, d.updated_at";

fn discrepancy_row(r: &tokio_postgres::Row) -> Result<StoredDiscrepancy, StoreError> {
    Ok(StoredDiscrepancy {
        id: r.get(0),
        client_id: r.get(1),
        account_id: r.get(2),
        kind: kind(r.get(3))?,
        status: status(r.get(4))?,
        booked_on: r.get(5),
        statement_line_id: r.get(6),
        external_id: r.get(7),
        transaction_ids: r.get(8),
        expected: r.get(9),
        actual: r.get(10),
        currency: r.get(11),
        detail: r.get(12),
        data: r.get(13),
        first_seen_run: r.get(14),
        last_seen_run: r.get(15),
        cleared_by_run: r.get(16),
        resolution: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
    })
}

fn kind(stored: &str) -> Result<FindingKind, StoreError> {
    FindingKind::parse(stored)
        .ok_or_else(|| StoreError::Decode(format!("unknown discrepancy kind {stored:?}")))
}

fn status(stored: &str) -> Result<DiscrepancyStatus, StoreError> {
    DiscrepancyStatus::parse(stored)
        .ok_or_else(|| StoreError::Decode(format!("unknown discrepancy status {stored:?}")))
}

pub async fn run_discrepancies(
    pool: &PgPool,
    run_id: Uuid,
) -> Result<Vec<StoredDiscrepancy>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM run_discrepancies rd
                 JOIN discrepancies d ON d.id = rd.discrepancy_id
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE rd.run_id = $1 ORDER BY d.kind, d.created_at, d.id"
            ),
            &[&run_id],
        )
        .await?;
    rows.iter().map(discrepancy_row).collect()
}

/// A page of the client's discrepancies, oldest first, keyset on (created_at, id).
pub async fn list_discrepancies(
    pool: &PgPool,
    client_id: &str,
    filter: &DiscrepancyFilter,
    limit: usize,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<(Vec<StoredDiscrepancy>, Option<(DateTime<Utc>, Uuid)>), StoreError> {
    let conn = pool.get().await?;
    let (after_at, after_id) = after.map_or((None, Uuid::nil()), |(a, i)| (Some(a), i));
    let rows = conn
        .query(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM discrepancies d
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE d.client_id = $1
                   AND ($2::text IS NULL OR d.status = $2)
                   AND ($3::text IS NULL OR d.account_id = $3)
                   AND ($4::text IS NULL OR d.kind = $4)
                   AND ($5::timestamptz IS NULL OR (d.created_at, d.id) > ($5, $6))
                 ORDER BY d.created_at, d.id LIMIT $7"
            ),
            &[
                &client_id,
                &filter.status.map(DiscrepancyStatus::as_str),
                &filter.account_id,
                &filter.kind.map(FindingKind::as_str),
                &after_at,
                &after_id,
                &((limit + 1) as i64),
            ],
        )
        .await?;
    let mut items = rows
        .iter()
        .map(discrepancy_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = super::cut_page(&mut items, limit, |d| (d.created_at, d.id));
    Ok((items, next))
}

/// One of the client's discrepancies with its history.
pub async fn get_discrepancy(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<(StoredDiscrepancy, Vec<HistoryEntry>)>, StoreError> {
    let conn = pool.get().await?;
    let Some(row) = conn
        .query_opt(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM discrepancies d
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE d.id = $1 AND d.client_id = $2"
            ),
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let events = conn
        .query(
            "SELECT at, actor, from_status, to_status, note, action FROM discrepancy_events
             WHERE discrepancy_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                at: r.get(0),
                actor: r.get(1),
                from_status: r.get::<_, Option<&str>>(2).map(status).transpose()?,
                to_status: status(r.get(3))?,
                note: r.get(4),
                action: r.get(5),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((discrepancy_row(&row)?, events)))
}

/// Moves a discrepancy to `to` if the workflow allows it from its current status
/// (`DiscrepancyStatus::reachable_from`), recording who, when, why and what was done (in its
/// history and the audit log).
#[allow(clippy::too_many_arguments)]
pub async fn set_status(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    to: DiscrepancyStatus,
    note: Option<&str>,
    action: Option<&Value>,
    resolution: Option<&Value>,
) -> Result<StatusChange, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT status, to_jsonb(d) FROM discrepancies d WHERE id = $1 AND client_id = $2 FOR UPDATE",
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(StatusChange::NotFound);
    };
    let from = status(row.get(0))?;
    let before: Value = row.get(1);
    if from == to {
        return Ok(StatusChange::Unchanged);
    }
    if !to.reachable_from(from) {
        return Ok(StatusChange::Refused { from });
    }
    let after: Value = tx
        .query_one(
            "UPDATE discrepancies d SET status = $2, updated_at = now(),
                 resolution = COALESCE($3, d.resolution)
             WHERE id = $1 RETURNING to_jsonb(d)",
            &[&id, &to.as_str(), &resolution],
        )
        .await?
        .get(0);
    let change = StatusEvent {
        id,
        actor: client_id,
        from,
        to,
        note,
        action,
    };
    record_status_change(&tx, &change, &before, &after).await?;
    write_events(&tx, &[(id, Some(from), to)]).await?;
    tx.commit().await?;
    Ok(StatusChange::Changed { from })
}

/// Moves a discrepancy to ADJUSTING before its adjusting transfer is queued (so the processor,
/// which settles only an ADJUSTING discrepancy, always finds it there), recording the transfer
/// `plan` (a JSON object) and its key in the resolution and the history. The key's attempt number
/// is 1 + the adjusting transfers of this discrepancy the ledger rejected: the same attempt (and
/// key) until one is rejected, so a retry never posts twice, and a fresh key after a rejection.
pub async fn begin_adjustment(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    note: Option<&str>,
    plan: &Value,
) -> Result<AdjustmentStart, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT status, to_jsonb(d), resolution, (SELECT count(*) FROM discrepancy_events e
                 WHERE e.discrepancy_id = d.id AND e.action ->> 'outcome' = 'rejected')
             FROM discrepancies d WHERE id = $1 AND client_id = $2 FOR UPDATE",
            &[&id, &client_id],
        )
        .await?
    else {
        return Ok(AdjustmentStart::NotFound);
    };
    let from = status(row.get(0))?;
    if from == DiscrepancyStatus::Adjusting {
        return Ok(AdjustmentStart::InFlight {
            resolution: row.get::<_, Option<Value>>(2).unwrap_or(Value::Null),
        });
    }
    if !DiscrepancyStatus::Adjusting.reachable_from(from) {
        return Ok(AdjustmentStart::Refused { from });
    }
    let before: Value = row.get(1);
    let rejected: i64 = row.get(3);
    let attempt = u32::try_from(rejected + 1).unwrap_or(u32::MAX);
    let key = adjustment_key(id, attempt);
    let mut resolution =
        json!({"action": "adjust", "attempt": attempt, "idempotencyKey": key.as_str()});
    if let (Some(r), Some(p)) = (resolution.as_object_mut(), plan.as_object()) {
        for (k, v) in p {
            r.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let after: Value = tx
        .query_one(
            "UPDATE discrepancies d SET status = $2, updated_at = now(), resolution = $3
             WHERE id = $1 RETURNING to_jsonb(d)",
            &[&id, &DiscrepancyStatus::Adjusting.as_str(), &resolution],
        )
        .await?
        .get(0);
    let change = StatusEvent {
        id,
        actor: client_id,
        from,
        to: DiscrepancyStatus::Adjusting,
        note,
        action: Some(&resolution),
    };
    record_status_change(&tx, &change, &before, &after).await?;
    tx.commit().await?;
    Ok(AdjustmentStart::Started {
        from,
        key,
        resolution,
    })
}

/// Records what intake answered for the adjusting transfer under `key` (its transaction id and
/// queue message id) in the discrepancy's resolution, whatever its status by now.
pub async fn record_adjustment_accepted(
    pool: &PgPool,
    id: Uuid,
    key: &IdempotencyKey,
    accepted: &Value,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE discrepancies SET updated_at = now(),
             resolution = jsonb_set(resolution, '{transfer}',
                                    coalesce(resolution -> 'transfer', '{}'::jsonb) || $3::jsonb)
         WHERE id = $1 AND resolution ->> 'idempotencyKey' = $2",
        &[&id, &key.as_str(), accepted],
    )
    .await?;
    Ok(())
}

/// Returns a discrepancy from ADJUSTING to `to` (where it came from) when its adjusting transfer
/// under `key` could not be queued, with the reason in its history. Nothing if it is no longer
/// waiting for that transfer.
pub async fn abandon_adjustment(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    key: &IdempotencyKey,
    to: DiscrepancyStatus,
    reason: &str,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "WITH reverted AS (
             UPDATE discrepancies SET status = $4, updated_at = now(),
                 resolution = resolution || jsonb_build_object('outcome', 'not_queued')
             WHERE id = $1 AND client_id = $2 AND status = $5
               AND resolution ->> 'idempotencyKey' = $3
             RETURNING id
         )
         INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
         SELECT id, $2, $5, $4, 'adjusting transfer not queued: ' || $6,
                jsonb_build_object('action', 'adjust', 'idempotencyKey', $3::text,
                                   'outcome', 'not_queued')
         FROM reverted",
        &[
            &id,
            &client_id,
            &key.as_str(),
            &to.as_str(),
            &DiscrepancyStatus::Adjusting.as_str(),
            &reason,
        ],
    )
    .await?;
    Ok(())
}

/// One status change of a discrepancy made through the workflow (by a client, not by a run).
struct StatusEvent<'a> {
    id: Uuid,
    actor: &'a str,
    from: DiscrepancyStatus,
    to: DiscrepancyStatus,
    note: Option<&'a str>,
    action: Option<&'a Value>,
}

/// Writes a workflow status change's history entry and its audit record (before and after the
/// row), in the change's transaction.
async fn record_status_change(
    tx: &deadpool_postgres::Transaction<'_>,
    change: &StatusEvent<'_>,
    before: &Value,
    after: &Value,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &change.id,
            &change.actor,
            &change.from.as_str(),
            &change.to.as_str(),
            &change.note,
            &change.action,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO audit_log (client_id, action, entity, entity_id, before, after)
         VALUES ($1, 'discrepancy.status', 'discrepancy', $2, $3, $4)",
        &[&change.actor, &change.id.to_string(), before, after],
    )
    .await?;
    Ok(())
}

/// The event a discrepancy's change from `from` (`None`: found now) to `to` is announced by:
/// opened when it needs attention anew (found, found again after it was closed, back to OPEN after
/// its adjusting transfer was rejected), resolved when it closes (RESOLVED or IGNORED); none for
/// the steps in between. An adjustment that could not even be queued (`abandon_adjustment`) is not
/// announced: nothing happened to the money, and the client that asked was answered the error.
pub fn status_event(from: Option<DiscrepancyStatus>, to: DiscrepancyStatus) -> Option<EventType> {
    use DiscrepancyStatus::*;
    let closed = |s: DiscrepancyStatus| matches!(s, Resolved | Ignored);
    match (from, to) {
        (None | Some(Resolved | Ignored | Adjusting), Open) => Some(EventType::DiscrepancyOpened),
        (from, to) if closed(to) && !from.is_some_and(closed) => {
            Some(EventType::DiscrepancyResolved)
        }
        _ => None,
    }
}

/// Writes the events of discrepancies whose status just changed, each with the discrepancy as it
/// is now in the caller's transaction, for the changes `status_event` announces.
pub(super) async fn write_events(
    conn: &impl deadpool_postgres::GenericClient,
    changed: &[(Uuid, Option<DiscrepancyStatus>, DiscrepancyStatus)],
) -> Result<(), StoreError> {
    let announced: Vec<(Uuid, EventType)> = changed
        .iter()
        .filter_map(|(id, from, to)| Some((*id, status_event(*from, *to)?)))
        .collect();
    if announced.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = announced.iter().map(|(id, _)| *id).collect();
    let rows = conn
        .query(
            &format!(
                "SELECT {DISCREPANCY_COLUMNS} FROM discrepancies d
                 LEFT JOIN statement_lines l ON l.id = d.statement_line_id
                 WHERE d.id = ANY($1)"
            ),
            &[&ids],
        )
        .await?;
    let mut found = std::collections::HashMap::new();
    for r in &rows {
        let d = discrepancy_row(r)?;
        found.insert(d.id, d);
    }
    let events: Vec<NewEvent> = announced
        .iter()
        .filter_map(|(id, event_type)| {
            let d = found.get(id)?;
            Some(NewEvent {
                client_id: d.client_id.clone(),
                event_type: *event_type,
                subject_id: id.to_string(),
                data: views::discrepancy_json(d),
            })
        })
        .collect();
    outbox::write(conn, &events).await
}
