//! The outbox: events written in the transaction of the change they describe (see
//! V9__events.sql). Posting renders the events its plan names from the rows it writes, so an
//! event's object is what the API would answer right after the commit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use super::holds::HoldRecord;
use super::transactions::{EntryRecord, TransactionRecord};
use crate::events::NewEvent;
use crate::ledger::{BatchPlan, EventSubject, HoldStatus, PlannedEvent};
use crate::views;

pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (client_id, type, subject_id, data)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::json[])";

/// The events as the columns `INSERT_EVENTS` unnests.
#[derive(Default)]
pub(super) struct EventRows<'a> {
    client: Vec<&'a str>,
    kind: Vec<&'static str>,
    subject: Vec<&'a str>,
    data: Vec<&'a serde_json::Value>,
}

impl<'a> EventRows<'a> {
    pub(super) fn of(events: &'a [NewEvent]) -> Self {
        let mut rows = Self::default();
        for e in events {
            rows.client.push(&e.client_id);
            rows.kind.push(e.event_type.as_str());
            rows.subject.push(&e.subject_id);
            rows.data.push(&e.data);
        }
        rows
    }

    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 4] {
        [&self.client, &self.kind, &self.subject, &self.data]
    }
}

/// Writes `events` on `conn`, inside the caller's transaction.
pub(super) async fn write(
    conn: &impl deadpool_postgres::GenericClient,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = EventRows::of(events);
    conn.execute(INSERT_EVENTS, &rows.params()).await?;
    Ok(())
}

/// What posting knows of a hold it did not place: its key and when it was placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HoldOrigin {
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
}

/// The plan's events with their objects, as of `now` (the batch's time: what its rows record as
/// posted, placed and closed).
pub(super) fn render(
    plan: &BatchPlan<'_>,
    origins: &HashMap<Uuid, HoldOrigin>,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    plan.events
        .iter()
        .filter_map(|e| render_one(plan, origins, now, e))
        .collect()
}

fn render_one(
    plan: &BatchPlan<'_>,
    origins: &HashMap<Uuid, HoldOrigin>,
    now: DateTime<Utc>,
    e: &PlannedEvent,
) -> Option<NewEvent> {
    let (subject_id, data) = match &e.subject {
        EventSubject::Transaction(id) => {
            let record = transaction_record(plan, *id, now)?;
            (id.to_string(), views::transaction_json(&record))
        }
        EventSubject::Hold { id, state } => {
            let origin = match plan.new_holds.iter().find(|h| h.id == *id) {
                Some(h) => HoldOrigin {
                    idempotency_key: h.idempotency_key.clone(),
                    created_at: now,
                },
                None => origins.get(id)?.clone(),
            };
            let closed_at = match state.status {
                HoldStatus::Active => None,
                HoldStatus::Expired => Some(state.expires_at),
                HoldStatus::Captured | HoldStatus::Voided => Some(now),
            };
            let record = HoldRecord {
                id: *id,
                idempotency_key: origin.idempotency_key,
                state: state.clone(),
                created_at: origin.created_at,
                closed_at,
                events: Vec::new(),
            };
            (id.to_string(), views::hold_json(&record))
        }
        EventSubject::Monitor(m) => (m.id.to_string(), views::monitor_json(m)),
    };
    Some(NewEvent {
        client_id: e.client_id.clone(),
        event_type: e.event_type,
        subject_id,
        data,
    })
}

/// A transaction of the plan as the ledger records it: posted at `now`, no refunds yet.
fn transaction_record(
    plan: &BatchPlan<'_>,
    id: Uuid,
    now: DateTime<Utc>,
) -> Option<TransactionRecord> {
    let row = plan
        .transactions
        .iter()
        .find(|t| t.message.transaction_id == id)?;
    let (m, t) = (row.message, &row.message.transfer);
    let entries = plan
        .entries
        .iter()
        .filter(|e| e.transaction_id == id)
        .map(|e| EntryRecord {
            leg: e.leg,
            account_id: e.account_id.clone(),
            currency: e.currency.clone(),
            amount: e.amount,
            balance_after: e.balance_after,
        })
        .collect();
    Some(TransactionRecord {
        id,
        client_id: m.client_id.clone(),
        idempotency_key: m.idempotency_key.clone(),
        kind: t.operation.kind(),
        source_account_id: row.source_account_id.clone(),
        destination_account_id: row.destination_account_id.clone(),
        amount: row.amount,
        currency: t.currency.code().to_string(),
        legs: row.legs.clone(),
        reference: t.reference.clone(),
        description: t.description.clone(),
        metadata: t.metadata.clone(),
        status: row.status,
        failure_code: row.failure_code.map(|c| c.as_str().to_string()),
        // As PostgreSQL stores it (tokio-postgres sends whole microseconds).
        accepted_at: DateTime::from_timestamp_micros(m.accepted_at.timestamp_micros())
            .unwrap_or(m.accepted_at),
        posted_at: now,
        effective_at: t.effective_at,
        parent_id: t.operation.parent(),
        entries,
        refunds: Vec::new(),
    })
}
