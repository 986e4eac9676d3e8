//! The ledger's invariants, as a check reports them: per leg of a transaction, one debit and one
//! credit that sum to zero; a transaction has entries exactly when it COMPLETED and moves money
//! (a hold and a void post none); every account's pending equals what its active holds reserve; every balance equals the
//! sum of its entries and its last `balance_after`; per currency, balances sum to zero; no account
//! is below its overdraft limit. `store::invariants` runs the check in SQL; the reconciliation turns
//! what it finds into discrepancies (`reconcile::findings`).

use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvariantReport {
    /// Transactions whose entries do not sum to zero or are not exactly one debit and one credit,
    /// and entries whose transaction does not exist.
    pub unbalanced_transactions: Vec<Uuid>,
    /// COMPLETED transactions without entries, or FAILED ones with entries.
    pub missing_ledger_entries: Vec<Uuid>,
    /// (account, stored balance, sum of entries, last balance_after) where those disagree.
    pub balance_drift: Vec<(String, Decimal, Decimal, Decimal)>,
    /// (currency, sum of all balances) where it is not zero.
    pub currency_imbalance: Vec<(String, Decimal)>,
    /// Accounts whose available balance (posted less pending) is below their overdraft limit.
    pub overdrawn_accounts: Vec<String>,
    /// (account, stored pending, what its active holds still reserve) where those disagree.
    pub pending_drift: Vec<(String, Decimal, Decimal)>,
}

impl InvariantReport {
    pub fn holds(&self) -> bool {
        *self == Self::default()
    }
}
