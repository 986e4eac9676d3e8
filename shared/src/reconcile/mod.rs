//! Reconciliation: proving that the ledger agrees with the outside world. Pure: `statements` parses
//! what the bank sends, `matching` pairs statement lines with ledger postings and names every
//! disagreement, `report` scopes a matched window and reports it, `findings` makes what a run found
//! storable (kinds, fingerprints, the ledger's own problems), `workflow` and `discrepancies` are the
//! exception workflow, `export` renders a run as CSV. Loading and saving belong to `store`; the
//! runs are sequenced by `services::reconciliation`.

pub mod discrepancies;
pub mod export;
pub mod findings;
pub mod matching;
pub mod report;
pub mod statements;
pub mod workflow;

pub use matching::{
    CurrencyTotal, Discrepancy, DiscrepancyKind, KindSummary, LedgerItem, Match, MatchConfig,
    MatchOutcome, MatchRule, StatementLine, Summary, match_statement_lines, summarize,
};
