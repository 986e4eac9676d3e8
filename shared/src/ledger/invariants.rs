//! The ledger's invariants, as a check reports them: per transaction, entries sum to zero (one
//! debit, one credit); a transaction has entries exactly when it COMPLETED; every balance equals the
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
    /// Accounts below their overdraft limit.
    pub overdrawn_accounts: Vec<String>,
}

impl InvariantReport {
    pub fn holds(&self) -> bool {
        *self == Self::default()
    }
}
