//! Reconciliation: proving that the ledger agrees with the outside world. `matching` is the pure
//! engine that pairs imported statement lines with ledger postings and names every disagreement;
//! loading lines and postings and storing runs and discrepancies belong to the adapters.

pub mod export;
pub mod import;
pub mod matching;
pub mod run;
pub mod statements;
pub mod workflow;

pub use matching::{
    CurrencyTotal, Discrepancy, DiscrepancyKind, KindSummary, LedgerItem, Match, MatchConfig,
    MatchOutcome, MatchRule, StatementLine, Summary, match_statement_lines, summarize,
};
