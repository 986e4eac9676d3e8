//! Events out (DESIGN.md section 13): what a client is told, and in what shape. Every change a
//! client may care about writes a [`NewEvent`] into the outbox (`events` table) in the same
//! database transaction as the change; the dispatcher delivers the [`envelope`] of each to the
//! client's subscribed webhook endpoints. Pure: no I/O here.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What happened. Spelled `<object>.<verb>` like Stripe's event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A transfer (one or more legs, an adjustment) posted.
    TransferCompleted,
    /// A transfer, hold, capture, void or refund was rejected by a posting rule: the object is the
    /// transaction with its `failureCode`.
    TransferFailed,
    HoldCreated,
    /// A capture posted (part or all of the hold): the object is the hold after it.
    HoldCaptured,
    HoldVoided,
    HoldExpired,
    RefundPosted,
    DiscrepancyOpened,
    DiscrepancyResolved,
    ReconciliationFinished,
    MonitorTriggered,
    MonitorCleared,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        Self::TransferCompleted,
        Self::TransferFailed,
        Self::HoldCreated,
        Self::HoldCaptured,
        Self::HoldVoided,
        Self::HoldExpired,
        Self::RefundPosted,
        Self::DiscrepancyOpened,
        Self::DiscrepancyResolved,
        Self::ReconciliationFinished,
        Self::MonitorTriggered,
        Self::MonitorCleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransferCompleted => "transfer.completed",
            Self::TransferFailed => "transfer.failed",
            Self::HoldCreated => "hold.created",
            Self::HoldCaptured => "hold.captured",
            Self::HoldVoided => "hold.voided",
            Self::HoldExpired => "hold.expired",
            Self::RefundPosted => "refund.posted",
            Self::DiscrepancyOpened => "discrepancy.opened",
            Self::DiscrepancyResolved => "discrepancy.resolved",
            Self::ReconciliationFinished => "reconciliation.finished",
            Self::MonitorTriggered => "monitor.triggered",
            Self::MonitorCleared => "monitor.cleared",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event to write into the outbox, in the transaction of the change it describes. Its id,
/// position and time are the database's (see V9__events.sql).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub client_id: String,
    pub event_type: EventType,
    /// The id of the object the event is about.
    pub subject_id: String,
    /// The object as the API returns it, as the change left it.
    pub data: Value,
}

/// What a webhook endpoint receives, what EventBridge carries as `detail` and what `GET
/// /events/{id}` answers: one shape everywhere.
pub fn envelope(
    id: &str,
    event_type: &str,
    created_at: DateTime<Utc>,
    client_id: &str,
    data: &Value,
) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "createdAt": created_at,
        "clientId": client_id,
        "data": { "object": data },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_is_distinct() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("transfer.posted"), None);
    }

    #[test]
    fn the_envelope_nests_the_object() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = envelope("evt_1", "hold.created", at, "demo", &json!({"id": "h1"}));
        assert_eq!(e["data"]["object"]["id"], "h1");
        assert_eq!(e["createdAt"], "2026-12-05T10:00:00Z");
        assert_eq!(e["clientId"], "demo");
    }
}
