//! The discrepancies a client works through, as they are stored and read back: the run that found
//! them, their history, the filter a list takes, and what a status change or the start of an
//! adjustment did. Pure values; `store::reconciliation` reads and writes them.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::findings::{FindingKind, InternalKind};
use super::matching::{DiscrepancyKind, MatchRule};
use super::report::{AccountWindow, RunTrigger};
use super::workflow::DiscrepancyStatus;
use crate::transfers::IdempotencyKey;

/// Which open discrepancies a run speaks for: those it did not see again are cleared by it.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// One account's statement window: its external kinds booked in the window, and its balance.
    AccountWindow {
        client_id: String,
        account_id: String,
        from: NaiveDate,
        to: NaiveDate,
        kinds: Vec<FindingKind>,
    },
    /// The ledger-wide internal checks of the scheduled run.
    Kinds(Vec<FindingKind>),
}

impl Scope {
    /// An account's run speaks for the statement kinds booked in its window, and for its balance.
    pub fn account_window(w: &AccountWindow) -> Self {
        let kinds = DiscrepancyKind::ALL
            .into_iter()
            .map(FindingKind::Statement)
            .chain([FindingKind::BALANCE_DRIFT])
            .collect();
        Self::AccountWindow {
            client_id: w.client_id.clone(),
            account_id: w.account_id.clone(),
            from: w.start,
            to: w.end,
            kinds,
        }
    }

    /// The scheduled run speaks for the ledger's own kinds; for DEAD_LETTERED only when it read
    /// every waiting letter (otherwise it clears none).
    pub fn ledger(read_every_dead_letter: bool) -> Self {
        Self::Kinds(
            InternalKind::ALL
                .into_iter()
                .filter(|k| read_every_dead_letter || *k != InternalKind::DeadLettered)
                .map(FindingKind::Internal)
                .collect(),
        )
    }
}

/// A run as stored: who ran it, on what, when.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Option<String>,
    pub trigger: RunTrigger,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// A stored run with its report.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRun {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Option<String>,
    pub report: Value,
}

/// One matched pair of a run, with the line's details, for exports.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchedPair {
    pub statement_line_id: i64,
    pub external_id: String,
    pub booked_on: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub transaction_id: Uuid,
    pub rule: MatchRule,
}

/// A discrepancy as stored, with its statement line's external id.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDiscrepancy {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: Option<String>,
    pub kind: FindingKind,
    pub status: DiscrepancyStatus,
    pub booked_on: Option<NaiveDate>,
    pub statement_line_id: Option<i64>,
    pub external_id: Option<String>,
    pub transaction_ids: Vec<Uuid>,
    pub expected: Option<Decimal>,
    pub actual: Option<Decimal>,
    pub currency: Option<String>,
    pub detail: String,
    pub data: Value,
    pub first_seen_run: Uuid,
    pub last_seen_run: Uuid,
    pub cleared_by_run: Option<Uuid>,
    pub resolution: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `GET /discrepancies` filters on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiscrepancyFilter {
    pub status: Option<DiscrepancyStatus>,
    pub account_id: Option<String>,
    pub kind: Option<FindingKind>,
}

/// One step of a discrepancy's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub from_status: Option<DiscrepancyStatus>,
    pub to_status: DiscrepancyStatus,
    pub note: Option<String>,
    pub action: Option<Value>,
}

/// What a status change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    NotFound,
    /// It already had that status: nothing recorded.
    Unchanged,
    Changed {
        from: DiscrepancyStatus,
    },
    /// The workflow does not allow moving from `from` to the requested status.
    Refused {
        from: DiscrepancyStatus,
    },
}

/// What `begin_adjustment` did.
#[derive(Clone, Debug, PartialEq)]
pub enum AdjustmentStart {
    NotFound,
    /// The workflow does not allow an adjustment from `from`.
    Refused {
        from: DiscrepancyStatus,
    },
    /// An adjusting transfer is already waiting for its outcome: its resolution (the same
    /// transfer, the same key).
    InFlight {
        resolution: Value,
    },
    /// Moved from `from` to ADJUSTING; the transfer goes under `key`, recorded in `resolution`.
    Started {
        from: DiscrepancyStatus,
        key: IdempotencyKey,
        resolution: Value,
    },
}
