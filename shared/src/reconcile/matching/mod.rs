//! The matching engine: pairs the lines of an imported statement with the ledger postings of the
//! reconciled account and names every disagreement. Pure and deterministic: no I/O, and the same
//! lines and postings give the same outcome whatever order they arrive in.
//!
//! Passes, in order; a line and a posting each take part in at most one match or discrepancy.
//! 1. Reference. Lines and postings that carry the same non-empty reference settle among themselves:
//!    (a) exact pairs (same currency and amount, any date); (b) a payout batch: one line whose
//!    amount is the sum of all the (two or more) postings of its currency still open under that
//!    reference; (c) what is left on both sides pairs up as amount or currency mismatches. A line
//!    that finds no open posting under its reference goes on to pass 2, and so does a posting that
//!    no line claimed.
//! 2. Amount and date. Same currency and amount, booked at most `date_drift_days` apart, one to one.
//! 3. Leftovers. A line is `DUPLICATE_IN_STATEMENT` when it repeats a matched line (same currency,
//!    amount, booked date and reference, another external id), else `MISSING_IN_LEDGER`. A posting
//!    booked before `window_end - grace_days` is `MISSING_IN_STATEMENT`; a younger one is pending.
//!
//! Whenever several pairs compete (passes 1a, 1c and 2), the closest booked dates pair first, over
//! the whole group at once, and ties go to the line first in (booked, external id, id) order, then
//! to the posting first in (booked, transaction id) order.
//!
//! Cost: lines and postings are grouped with hash tables (by reference, then by currency and
//! amount), only the members of a group are sorted, and a group is settled with a heap over date
//! buckets, so the work is O(n log n) whatever the data and never a scan of every pair. A million
//! lines against a million postings with mostly distinct amounts take under a second in a release
//! build.

mod assignment;
mod passes;
mod summary;
#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use self::passes::Run;
use crate::money::AmountOverflow;

pub(crate) use self::summary::tally_by_kind;
pub use self::summary::{CurrencyTotal, KindSummary, Summary, summarize};

/// One ledger posting on the reconciled account (a ledger entry joined with its transaction). The
/// amount is signed from the account's point of view: credit > 0, debit < 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerItem {
    pub transaction_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub booked: NaiveDate,
    pub reference: Option<String>,
}

/// One imported statement line. The amount is signed: money into the account > 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementLine {
    pub id: i64,
    pub external_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub booked: NaiveDate,
    pub reference: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchConfig {
    /// How many days a statement line may be booked before or after its posting in the
    /// amount-and-date pass (the reference pass ignores dates).
    pub date_drift_days: u32,
    /// How long a posting may be missing from the statement before it is a discrepancy.
    pub grace_days: u32,
    /// Last day of the reconciled window.
    pub window_end: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchRule {
    Reference,
    AmountAndDate,
    Batch,
}

impl MatchRule {
    pub const ALL: [Self; 3] = [Self::Reference, Self::AmountAndDate, Self::Batch];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reference => "REFERENCE",
            Self::AmountAndDate => "AMOUNT_AND_DATE",
            Self::Batch => "BATCH",
        }
    }

    /// The rule whose `as_str` is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    pub line_id: i64,
    /// Ascending; one id except for a payout batch.
    pub transaction_ids: Vec<Uuid>,
    pub rule: MatchRule,
}

/// The kinds the matching engine reports, in the order reports list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscrepancyKind {
    MissingInLedger,
    MissingInStatement,
    AmountMismatch,
    CurrencyMismatch,
    DuplicateInStatement,
}

impl DiscrepancyKind {
    pub const ALL: [Self; 5] = [
        Self::MissingInLedger,
        Self::MissingInStatement,
        Self::AmountMismatch,
        Self::CurrencyMismatch,
        Self::DuplicateInStatement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingInLedger => "MISSING_IN_LEDGER",
            Self::MissingInStatement => "MISSING_IN_STATEMENT",
            Self::AmountMismatch => "AMOUNT_MISMATCH",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::DuplicateInStatement => "DUPLICATE_IN_STATEMENT",
        }
    }

    /// The kind whose `as_str` is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One disagreement between the statement and the ledger.
///
/// | kind | `line_id` | `transaction_ids` | `expected` | `actual` | `currency` |
/// | --- | --- | --- | --- | --- | --- |
/// | `MissingInLedger` | the line | none | none | line amount | line's |
/// | `MissingInStatement` | none | the posting | posting amount | none | posting's |
/// | `AmountMismatch` | the line | the posting | posting amount | line amount | both's |
/// | `CurrencyMismatch` | the line | the posting | posting amount | line amount | posting's (the line's is in `detail`) |
/// | `DuplicateInStatement` | the repeat | the postings the first line matched | none | line amount | line's |
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub line_id: Option<i64>,
    pub transaction_ids: Vec<Uuid>,
    /// The ledger side's amount.
    pub expected: Option<Decimal>,
    /// The statement side's amount.
    pub actual: Option<Decimal>,
    pub currency: String,
    pub detail: String,
}

impl Discrepancy {
    /// The money the discrepancy puts in doubt, in `currency`: the unmatched amount for the missing
    /// and duplicate kinds, statement minus ledger for an amount mismatch, the ledger amount for a
    /// currency mismatch.
    pub fn amount_at_stake(&self) -> Result<Decimal, AmountOverflow> {
        let expected = self.expected.unwrap_or_default();
        let actual = self.actual.unwrap_or_default();
        Ok(match self.kind {
            DiscrepancyKind::MissingInLedger | DiscrepancyKind::DuplicateInStatement => actual,
            DiscrepancyKind::MissingInStatement | DiscrepancyKind::CurrencyMismatch => expected,
            DiscrepancyKind::AmountMismatch => actual
                .checked_sub(expected)
                .ok_or_else(|| AmountOverflow(format!("amount mismatch: {actual} - {expected}")))?,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchOutcome {
    /// Sorted by line id.
    pub matches: Vec<Match>,
    /// Sorted by kind, line id, first transaction id.
    pub discrepancies: Vec<Discrepancy>,
    /// Unmatched postings still inside the grace period, ascending.
    pub pending_ledger: Vec<Uuid>,
}

/// Pairs statement lines with ledger postings; see the module documentation for the rules.
pub fn match_statement_lines(
    lines: &[StatementLine],
    ledger: &[LedgerItem],
    config: &MatchConfig,
) -> MatchOutcome {
    let mut run = Run::new(lines, ledger);
    run.reference_pass();
    run.amount_and_date_pass(config.date_drift_days);
    run.finish(config)
}
