//! Dead letters (migration V5): every message that reaches the transfers queue's FIFO dead-letter
//! queue, recorded by the `dead-letters` function as it arrives, read by the scheduled run
//! (DEAD_LETTERED discrepancies) and redriven from the record.

use chrono::Utc;

use super::{PgPool, StoreError};
use crate::dead_letters::{DeadLetter, LetterStatus, NewDeadLetter, RedriveCheck};

/// Records letters in one statement; a message id already recorded (SQS delivered the same DLQ
/// message again) is left as it is. Returns how many were new.
pub async fn record(pool: &PgPool, letters: &[NewDeadLetter]) -> Result<u64, StoreError> {
    if letters.is_empty() {
        return Ok(0);
    }
    let conn = pool.get().await?;
    let texts = |f: fn(&NewDeadLetter) -> Option<&str>| letters.iter().map(f).collect::<Vec<_>>();
    let inserted = conn
        .execute(
            "INSERT INTO dead_letters (message_id, body, body_escaped, group_id, deduplication_id,
                 receive_count, sent_at, client_id, idempotency_key, transaction_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[],
                                  $6::int4[], $7::timestamptz[], $8::text[], $9::text[], $10::uuid[])
             ON CONFLICT (message_id) DO NOTHING",
            &[
                &texts(|l| Some(l.message_id.as_str())),
                &texts(|l| Some(l.body.as_str())),
                &letters.iter().map(|l| l.body_escaped).collect::<Vec<_>>(),
                &texts(|l| l.group_id.as_deref()),
                &texts(|l| l.deduplication_id.as_deref()),
                &letters.iter().map(|l| l.receive_count).collect::<Vec<_>>(),
                &letters.iter().map(|l| l.sent_at).collect::<Vec<_>>(),
                &texts(|l| l.client_id.as_deref()),
                &texts(|l| l.idempotency_key.as_deref()),
                &letters.iter().map(|l| l.transaction_id).collect::<Vec<_>>(),
            ],
        )
        .await?;
    Ok(inserted)
}

const COLUMNS: &str = "d.message_id, d.body, d.body_escaped, d.group_id, d.deduplication_id,
    d.receive_count, d.sent_at, d.client_id, d.idempotency_key, d.transaction_id, d.received_at,
    d.status, d.redriven_at, d.redrive_deduplication_id";

fn from_row(r: &tokio_postgres::Row) -> DeadLetter {
    DeadLetter {
        message_id: r.get(0),
        body: r.get(1),
        body_escaped: r.get(2),
        group_id: r.get(3),
        deduplication_id: r.get(4),
        receive_count: r.get(5),
        sent_at: r.get(6),
        client_id: r.get(7),
        idempotency_key: r.get(8),
        transaction_id: r.get(9),
        received_at: r.get(10),
        status: LetterStatus::parse(r.get(11)),
        redriven_at: r.get(12),
        redrive_deduplication_id: r.get(13),
    }
}

/// Whether the letter's transfer is in the ledger (posted or recorded as FAILED).
const IN_LEDGER: &str = "EXISTS (SELECT 1 FROM transactions t
    WHERE t.client_id = d.client_id AND t.idempotency_key = d.idempotency_key)";

/// The letters still waiting, oldest first, at most `limit`, and how many there are in all.
/// Letters whose transfer reached the ledger meanwhile are marked POSTED first (they are not
/// waiting any more).
pub async fn waiting(pool: &PgPool, limit: i64) -> Result<(Vec<DeadLetter>, i64), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        &format!(
            "UPDATE dead_letters d SET status = 'POSTED', posted_at = now()
             WHERE d.status = 'RECORDED' AND d.client_id IS NOT NULL AND {IN_LEDGER}"
        ),
        &[],
    )
    .await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS}, count(*) OVER () FROM dead_letters d
                 WHERE d.status = 'RECORDED' AND NOT {IN_LEDGER}
                 ORDER BY d.received_at, d.message_id LIMIT $1"
            ),
            &[&limit],
        )
        .await?;
    let total = rows.first().map_or(0, |r| r.get::<_, i64>(14));
    Ok((rows.iter().map(from_row).collect(), total))
}

/// One letter by message id.
pub async fn get(pool: &PgPool, message_id: &str) -> Result<Option<DeadLetter>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM dead_letters d WHERE d.message_id = $1"),
            &[&message_id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Locks the letter for a redrive inside `tx` (a concurrent redrive of the same letter waits, then
/// finds it REDRIVEN).
pub async fn lock_for_redrive(
    tx: &tokio_postgres::Transaction<'_>,
    message_id: &str,
) -> Result<RedriveCheck, StoreError> {
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, {IN_LEDGER} FROM dead_letters d
                 WHERE d.message_id = $1 FOR UPDATE OF d"
            ),
            &[&message_id],
        )
        .await?
    else {
        return Ok(RedriveCheck::NotRecorded);
    };
    let letter = from_row(&row);
    let in_ledger: bool = row.get(14);
    Ok(match letter.status {
        LetterStatus::Redriven => {
            RedriveCheck::AlreadyRedriven(letter.redriven_at.unwrap_or_else(Utc::now))
        }
        LetterStatus::Posted => RedriveCheck::AlreadyPosted,
        LetterStatus::Recorded if in_ledger => {
            tx.execute(
                "UPDATE dead_letters SET status = 'POSTED', posted_at = now()
                 WHERE message_id = $1 AND status = 'RECORDED'",
                &[&message_id],
            )
            .await?;
            RedriveCheck::AlreadyPosted
        }
        LetterStatus::Recorded => RedriveCheck::Ready(Box::new(letter)),
    })
}

/// Marks a locked letter REDRIVEN with the deduplication id its redrive was sent with.
pub async fn mark_redriven(
    tx: &tokio_postgres::Transaction<'_>,
    message_id: &str,
    deduplication_id: &str,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE dead_letters SET status = 'REDRIVEN', redriven_at = now(),
                 redrive_deduplication_id = $2
             WHERE message_id = $1 AND status = 'RECORDED'",
            &[&message_id, &deduplication_id],
        )
        .await?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "dead letter {message_id} is no longer RECORDED"
        )))
    }
}
