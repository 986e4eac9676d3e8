//! What a batch holds locked, as the posting rules read and change it: the accounts (balance and
//! pending), the holds its captures and voids name (and the expired holds of its accounts), and the
//! legs its refunds reverse. Loaded by the store after the locks are taken.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::monitors::Monitor;

use super::FailureCode;
use crate::accounts::OverdraftLimit;

/// An account as locked for a batch: its owner, currency, limit, posted balance and pending
/// debits (what its active holds reserve). `available = balance - pending`.
#[derive(Clone, Debug, PartialEq)]
pub struct LockedAccount {
    pub owner_client_id: String,
    pub currency: String,
    pub overdraft_limit: OverdraftLimit,
    pub balance: Decimal,
    pub pending: Decimal,
}

impl LockedAccount {
    /// `balance - pending`, or `None` if it does not fit.
    pub fn available(&self) -> Option<Decimal> {
        self.balance.checked_sub(self.pending)
    }
}

/// A hold's state (the `holds.status` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    Active,
    /// Captured in full.
    Captured,
    Voided,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Captured => "CAPTURED",
            Self::Voided => "VOIDED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => Self::Active,
            "CAPTURED" => Self::Captured,
            "VOIDED" => Self::Voided,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

/// A hold as the batch holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldState {
    pub client_id: String,
    pub source_account_id: String,
    pub destination_account_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub captured: Decimal,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
}

impl HoldState {
    /// What the hold still reserves: nothing once it is closed.
    pub fn remaining(&self) -> Decimal {
        match self.status {
            HoldStatus::Active => self.amount - self.captured,
            _ => Decimal::ZERO,
        }
    }

    /// Whether an ACTIVE hold has passed its expiry at `now` (it is then released, whether or not
    /// the sweep has run).
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.status == HoldStatus::Active && self.expires_at <= now
    }

    /// Whether the hold is still open at `now`: what it still reserves, or why not.
    pub fn open_at(&self, now: DateTime<Utc>) -> Result<Decimal, FailureCode> {
        match self.status {
            HoldStatus::Captured => Err(FailureCode::HoldCaptured),
            HoldStatus::Voided => Err(FailureCode::HoldVoided),
            HoldStatus::Expired => Err(FailureCode::HoldExpired),
            HoldStatus::Active if self.expired_at(now) => Err(FailureCode::HoldExpired),
            HoldStatus::Active => Ok(self.remaining()),
        }
    }

    /// What a capture of `amount` (`None`: what remains) takes at `now`, or why it cannot.
    pub fn capture_at(
        &self,
        amount: Option<Decimal>,
        now: DateTime<Utc>,
    ) -> Result<Decimal, FailureCode> {
        let left = self.open_at(now)?;
        match amount {
            None => Ok(left),
            Some(a) if a > left => Err(FailureCode::CaptureExceedsHold),
            Some(a) => Ok(a),
        }
    }
}

/// One leg of a posted transfer or capture that a refund may reverse.
#[derive(Clone, Debug, PartialEq)]
pub struct RefundableLeg {
    pub client_id: String,
    /// The leg's source: a refund credits it.
    pub source_account_id: String,
    pub amount: Decimal,
    pub currency: String,
    /// Completed refunds of this leg so far.
    pub refunded: Decimal,
}

/// Everything a batch decides against, and changes as it decides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Book {
    pub accounts: HashMap<String, LockedAccount>,
    pub holds: HashMap<Uuid, HoldState>,
    /// By (original transaction, leg).
    pub refundable: HashMap<(Uuid, u16), RefundableLeg>,
    /// The active balance monitors of the locked accounts, by account.
    pub monitors: HashMap<String, Vec<Monitor>>,
    /// The batch's time: holds expire at or before it.
    pub now: DateTime<Utc>,
}

impl Book {
    /// A book of accounts only (no holds, no refunds), at `now`.
    pub fn of_accounts(accounts: HashMap<String, LockedAccount>, now: DateTime<Utc>) -> Self {
        Self {
            accounts,
            holds: HashMap::new(),
            refundable: HashMap::new(),
            monitors: HashMap::new(),
            now,
        }
    }
}
