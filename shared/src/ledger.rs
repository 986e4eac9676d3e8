//! Posting rules: given the locked state of what a batch touches (accounts, holds, refundable
//! legs: the [`Book`]), decide each transaction in message order ([`decide`], the leaf) and plan
//! the whole batch ([`plan_batch`]: rows to write and one outcome per message). Pure; the store
//! writes the plan in one database transaction.

mod batch;
mod book;
mod decide;
mod invariants;

pub use batch::{
    BalanceUpdate, BatchPlan, EntryRow, EventSubject, HoldUpdate, NewHold, Outcome, PlannedEvent,
    Recorded, RecordedKeys, RefundRow, Settlement, TransactionRow, plan_batch,
};
pub use book::{Book, HoldState, HoldStatus, LockedAccount, RefundableLeg};
pub use decide::{Decided, Decision, HoldChange, Posting, decide};
pub use invariants::InvariantReport;

/// Why a transfer was rejected. Recorded as FAILED with this code; never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureCode {
    InsufficientFunds,
    AccountNotFound,
    CurrencyMismatch,
    SameAccount,
    /// The resulting balance would not fit in a decimal: refused, never wrapped or saturated.
    BalanceOverflow,
    /// PostgreSQL refused the message's content (SQLSTATE class 22 or 23); recorded without it.
    RefusedByDatabase,
    /// A capture or void names no hold of this client.
    HoldNotFound,
    /// Nothing remains of the hold: it was captured in full.
    HoldCaptured,
    HoldVoided,
    HoldExpired,
    /// A capture asks for more than remains of the hold.
    CaptureExceedsHold,
    /// A refund asks for more than remains of the leg (its amount less earlier refunds).
    RefundExceedsRemaining,
    /// A refund names a transaction that is not a posted transfer or capture of this client.
    TransactionNotRefundable,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::AccountNotFound => "account_not_found",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::SameAccount => "same_account",
            Self::BalanceOverflow => "balance_overflow",
            Self::RefusedByDatabase => "refused_by_database",
            Self::HoldNotFound => "hold_not_found",
            Self::HoldCaptured => "hold_captured",
            Self::HoldVoided => "hold_voided",
            Self::HoldExpired => "hold_expired",
            Self::CaptureExceedsHold => "capture_exceeds_hold",
            Self::RefundExceedsRemaining => "refund_exceeds_remaining",
            Self::TransactionNotRefundable => "transaction_not_refundable",
        }
    }
}

/// A recorded transfer's status: posted (two entries written) or rejected by a posting rule. The
/// SQL column, the status route and the cache spell it `COMPLETED` / `FAILED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferStatus {
    Completed,
    Failed,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "COMPLETED" => Some(Self::Completed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl std::fmt::Display for TransferStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status compares with its spelling, so `record.status == "COMPLETED"` reads as the JSON does.
impl PartialEq<&str> for TransferStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for TransferStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
