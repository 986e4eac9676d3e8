//! Dead letters (migration V5): every message that reaches the transfers queue's FIFO dead-letter
//! queue, recorded by the `dead-letters` function as it arrives, read by the scheduled run
//! (DEAD_LETTERED discrepancies) and redriven from the record.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::transfers::TransferMessage;

/// Where a recorded dead letter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LetterStatus {
    /// Waiting: a DEAD_LETTERED discrepancy while its transfer is not in the ledger.
    Recorded,
    /// Re-sent to the transfers queue.
    Redriven,
    /// Its transfer reached the ledger without a redrive (another copy posted it).
    Posted,
}

impl LetterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recorded => "RECORDED",
            Self::Redriven => "REDRIVEN",
            Self::Posted => "POSTED",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "REDRIVEN" => Self::Redriven,
            "POSTED" => Self::Posted,
            _ => Self::Recorded,
        }
    }
}

/// A message as it arrived from the dead-letter queue, made storable: nothing in it can be refused
/// by PostgreSQL (see `encode_body`), so recording it can only fail for an outage.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDeadLetter {
    pub message_id: String,
    /// The body, escaped when `body_escaped` (it held NUL).
    pub body: String,
    pub body_escaped: bool,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
    pub receive_count: Option<i32>,
    pub sent_at: Option<DateTime<Utc>>,
    /// From the body when it is a valid transfer message.
    pub client_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub transaction_id: Option<Uuid>,
}

/// A body for a text column: unchanged unless it holds NUL, which PostgreSQL text cannot store;
/// then every backslash is doubled and every NUL becomes backslash-zero, and the flag says so.
pub fn encode_body(body: &str) -> (String, bool) {
    if !body.contains('\0') {
        return (body.to_string(), false);
    }
    (body.replace('\\', "\\\\").replace('\0', "\\0"), true)
}

/// The body as received, from what `encode_body` stored.
pub fn decode_body(stored: &str, escaped: bool) -> String {
    if !escaped {
        return stored.to_string();
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Metadata texts (ids from the event) with any NUL replaced, so they always store.
fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// The `MessageDeduplicationId` of a letter's redrive: derived from its message id, so retrying
/// one redrive inside FIFO's 5-minute window sends one message, and never equal to the original
/// send's id (a hash of client and key), which the window could otherwise swallow.
pub fn redrive_deduplication_id(message_id: &str) -> String {
    format!(
        "redrive-{}",
        hex::encode(Sha256::digest(message_id.as_bytes()))
    )
}

impl NewDeadLetter {
    /// From one SQS record (`messageId`, `body`, `attributes`). Never fails: a missing body is
    /// recorded empty, a missing message id is replaced by one derived from the body.
    pub fn from_sqs(
        message_id: Option<&str>,
        body: Option<&str>,
        attributes: &HashMap<String, String>,
    ) -> Self {
        let raw = body.unwrap_or("");
        let (stored, escaped) = encode_body(raw);
        let message_id = match message_id {
            Some(id) if !id.is_empty() => clean(id),
            _ => format!(
                "no-message-id-{}",
                hex::encode(Sha256::digest(raw.as_bytes()))
            ),
        };
        let attr = |k: &str| attributes.get(k).map(|v| clean(v));
        let sent_at = attributes
            .get("SentTimestamp")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .filter(|t| (1970..=9999).contains(&t.year()));
        let parsed = TransferMessage::parse(raw)
            .ok()
            .filter(|m| !m.client_id.contains('\0') && !m.idempotency_key.contains('\0'));
        Self {
            message_id,
            body: stored,
            body_escaped: escaped,
            group_id: attr("MessageGroupId"),
            deduplication_id: attr("MessageDeduplicationId"),
            receive_count: attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok()),
            sent_at,
            client_id: parsed.as_ref().map(|m| m.client_id.clone()),
            idempotency_key: parsed.as_ref().map(|m| m.idempotency_key.clone()),
            transaction_id: parsed.as_ref().map(|m| m.transaction_id),
        }
    }
}

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

/// A recorded dead letter.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    /// As stored: escaped when `body_escaped` (`decode_body` gives the original).
    pub body: String,
    pub body_escaped: bool,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
    pub receive_count: Option<i32>,
    pub sent_at: Option<DateTime<Utc>>,
    pub client_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub transaction_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
    pub status: LetterStatus,
    pub redriven_at: Option<DateTime<Utc>>,
    pub redrive_deduplication_id: Option<String>,
}

impl DeadLetter {
    /// The transfer message it carries, if the body is one (an escaped body never is).
    pub fn transfer(&self) -> Option<TransferMessage> {
        if self.body_escaped {
            return None;
        }
        TransferMessage::parse(&self.body).ok()
    }
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

/// What a redrive finds when it locks the letter.
#[derive(Clone, Debug, PartialEq)]
pub enum RedriveCheck {
    /// No letter with this message id was recorded.
    NotRecorded,
    /// Redriven already (at this time).
    AlreadyRedriven(DateTime<Utc>),
    /// Its transfer is in the ledger already (marked POSTED now if it was still RECORDED).
    AlreadyPosted,
    /// RECORDED and its transfer not in the ledger: locked until the transaction ends.
    Ready(Box<DeadLetter>),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_with_nul_are_escaped_reversibly_and_others_kept_as_they_are() {
        for body in [
            "{\"v\":1}",
            "",
            "back\\slash \\0 literal",
            "nul\0here",
            "\0",
            "\\\0\\0\0\\",
            "trailing\\",
        ] {
            let (stored, escaped) = encode_body(body);
            assert_eq!(escaped, body.contains('\0'), "{body:?}");
            assert!(!stored.contains('\0'));
            if !escaped {
                assert_eq!(stored, body);
            }
            assert_eq!(decode_body(&stored, escaped), body, "{body:?}");
        }
    }

    #[test]
    fn a_record_is_always_storable() {
        let mut attrs = HashMap::new();
        attrs.insert("MessageGroupId".to_string(), "g\0".to_string());
        attrs.insert(
            "ApproximateReceiveCount".to_string(),
            "99999999999".to_string(),
        );
        attrs.insert("SentTimestamp".to_string(), "-999999999999999".to_string());
        let l = NewDeadLetter::from_sqs(Some("m\0"), Some("x\0y"), &attrs);
        assert_eq!(l.message_id, "m\u{FFFD}");
        assert_eq!(l.group_id.as_deref(), Some("g\u{FFFD}"));
        assert_eq!((l.body.as_str(), l.body_escaped), ("x\\0y", true));
        assert_eq!((l.receive_count, l.sent_at), (None, None));
        assert_eq!(l.client_id, None);
        let none = NewDeadLetter::from_sqs(None, None, &HashMap::new());
        assert!(none.message_id.starts_with("no-message-id-"));
        assert_eq!(none.body, "");
    }

    #[test]
    fn a_redrive_never_reuses_the_original_deduplication_id() {
        let id = redrive_deduplication_id("6c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
        assert_eq!(
            id,
            redrive_deduplication_id("6c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
        );
        assert_ne!(id, redrive_deduplication_id("another"));
        assert!(id.len() <= 128);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
        );
        assert_ne!(id, crate::transfers::deduplication_id("demo", "key"));
    }
}
