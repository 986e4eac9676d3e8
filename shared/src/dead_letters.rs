//! Dead letters: a message that reached the transfers queue's FIFO dead-letter queue, as the
//! `dead-letters` function records it (storable whatever it holds), the scheduled run reads it
//! (DEAD_LETTERED discrepancies) and a redrive re-sends it. Pure; `store::dead_letters` keeps them.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

    /// The status stored as `s` (RECORDED for anything unknown: it is still waiting).
    pub fn parse(s: &str) -> Self {
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
