//! Posting rules: given the locked state of the accounts a batch touches, decide each transfer in
//! message order ([`decide`], the leaf) and plan the whole batch ([`plan_batch`]: rows to write and
//! one outcome per message). Pure; the store writes the plan in one database transaction.

mod batch;
mod invariants;

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::accounts::OverdraftLimit;
use crate::transfers::TransferMessage;

pub use batch::{
    BalanceUpdate, BatchPlan, EntryRow, Outcome, Recorded, RecordedKeys, Settlement,
    TransactionRow, plan_batch,
};
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

/// An account as locked for a batch: its owner, currency, limit and current balance.
#[derive(Clone, Debug, PartialEq)]
pub struct LockedAccount {
    pub owner_client_id: String,
    pub currency: String,
    pub overdraft_limit: OverdraftLimit,
    pub balance: Decimal,
}

/// The two balances after a posted transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    pub source_balance_after: Decimal,
    pub destination_balance_after: Decimal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Post(Posting),
    Reject(FailureCode),
}

/// Decides one transfer against the running balances and applies it to them when it posts.
/// Accounts a client did not create are invisible to it: they read as `account_not_found`.
pub fn decide(msg: &TransferMessage, accounts: &mut HashMap<String, LockedAccount>) -> Decision {
    let t = &msg.transfer;
    let (src, dst) = (
        t.source_account_id.as_str(),
        t.destination_account_id.as_str(),
    );
    if src == dst {
        return Decision::Reject(FailureCode::SameAccount);
    }
    let visible = |id: &str| {
        accounts
            .get(id)
            .filter(|a| a.owner_client_id == msg.client_id)
            .cloned()
    };
    let (Some(source), Some(destination)) = (visible(src), visible(dst)) else {
        return Decision::Reject(FailureCode::AccountNotFound);
    };
    let currency = t.currency.code();
    if source.currency != currency || destination.currency != currency {
        return Decision::Reject(FailureCode::CurrencyMismatch);
    }
    let (Some(source_balance_after), Some(destination_balance_after)) = (
        source.balance.checked_sub(t.amount),
        destination.balance.checked_add(t.amount),
    ) else {
        return Decision::Reject(FailureCode::BalanceOverflow);
    };
    if !source.overdraft_limit.allows(source_balance_after) {
        return Decision::Reject(FailureCode::InsufficientFunds);
    }
    accounts.get_mut(src).expect("checked above").balance = source_balance_after;
    accounts.get_mut(dst).expect("checked above").balance = destination_balance_after;
    Decision::Post(Posting {
        source_balance_after,
        destination_balance_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfers::{IdempotencyKey, TransferInput};

    fn msg(client: &str, src: &str, dst: &str, amount: &str, currency: &str) -> TransferMessage {
        let json = format!(
            r#"{{"source_account_id":"{src}","destination_account_id":"{dst}","amount":"{amount}","currency":"{currency}"}}"#
        );
        let input: TransferInput = serde_json::from_str(&json).unwrap();
        let t = input.validate(None, Decimal::from(1_000_000)).unwrap();
        TransferMessage::new(client, &IdempotencyKey::parse("k", "k").unwrap(), t)
    }

    fn accounts() -> HashMap<String, LockedAccount> {
        let acct = |currency: &str, limit: OverdraftLimit, balance: i64| LockedAccount {
            owner_client_id: "c1".into(),
            currency: currency.into(),
            overdraft_limit: limit,
            balance: Decimal::from(balance),
        };
        HashMap::from([
            ("world".into(), acct("USD", OverdraftLimit::Unlimited, 0)),
            (
                "alice".into(),
                acct("USD", OverdraftLimit::Limited(Decimal::ZERO), 100),
            ),
            (
                "bob".into(),
                acct("USD", OverdraftLimit::Limited(Decimal::from(50)), 0),
            ),
            (
                "yen".into(),
                acct("JPY", OverdraftLimit::Limited(Decimal::ZERO), 0),
            ),
        ])
    }

    #[test]
    fn posts_and_carries_running_balances() {
        let mut a = accounts();
        let d1 = decide(&msg("c1", "alice", "bob", "60", "USD"), &mut a);
        assert_eq!(
            d1,
            Decision::Post(Posting {
                source_balance_after: Decimal::from(40),
                destination_balance_after: Decimal::from(60)
            })
        );
        // Second transfer sees the first one's effect.
        assert_eq!(
            decide(&msg("c1", "alice", "bob", "40.01", "USD"), &mut a),
            Decision::Reject(FailureCode::InsufficientFunds)
        );
        // bob may go to -50 but not below.
        assert!(matches!(
            decide(&msg("c1", "bob", "alice", "110", "USD"), &mut a),
            Decision::Post(_)
        ));
        assert_eq!(a["bob"].balance, Decimal::from(-50));
        assert_eq!(
            decide(&msg("c1", "bob", "alice", "0.01", "USD"), &mut a),
            Decision::Reject(FailureCode::InsufficientFunds)
        );
        assert!(matches!(
            decide(&msg("c1", "world", "alice", "1000000", "USD"), &mut a),
            Decision::Post(_)
        ));
    }

    #[test]
    fn business_rejections() {
        let mut a = accounts();
        let cases = [
            (
                msg("c1", "alice", "alice", "1", "USD"),
                FailureCode::SameAccount,
            ),
            (
                msg("c1", "alice", "nobody", "1", "USD"),
                FailureCode::AccountNotFound,
            ),
            (
                msg("c2", "alice", "bob", "1", "USD"),
                FailureCode::AccountNotFound,
            ),
            (
                msg("c1", "alice", "yen", "1", "USD"),
                FailureCode::CurrencyMismatch,
            ),
            (
                msg("c1", "alice", "bob", "1", "EUR"),
                FailureCode::CurrencyMismatch,
            ),
        ];
        for (m, code) in cases {
            assert_eq!(decide(&m, &mut a), Decision::Reject(code));
        }
        assert_eq!(a, accounts(), "rejections leave balances untouched");
    }

    #[test]
    fn a_balance_that_would_overflow_is_refused_not_wrapped() {
        let mut a = accounts();
        a.get_mut("alice").unwrap().balance = Decimal::MAX;
        assert_eq!(
            decide(&msg("c1", "world", "alice", "1", "USD"), &mut a),
            Decision::Reject(FailureCode::BalanceOverflow)
        );
        a.get_mut("world").unwrap().balance = Decimal::MIN;
        a.get_mut("alice").unwrap().balance = Decimal::ZERO;
        assert_eq!(
            decide(&msg("c1", "world", "alice", "1", "USD"), &mut a),
            Decision::Reject(FailureCode::BalanceOverflow)
        );
        assert_eq!(a["alice"].balance, Decimal::ZERO);
    }
}
