//! A run's report, typed: what an account's window holds once matched (`scope_to_window`: both
//! sides are loaded `drift` days beyond the window, only what is booked inside it is reported), the
//! counts and totals the report shows, and the report itself for an account's run and for the
//! scheduled ledger-wide run. Pure; the service stores the report and answers it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::findings::{Finding, statement_finding};
use super::matching::{self, Discrepancy, LedgerItem, Match, MatchOutcome, StatementLine};
use crate::ledger::InvariantReport;
use crate::money::{AmountOverflow, format_amount};

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunTrigger {
    /// `POST /accounts/{id}/reconcile` (answered at once, or queued and run by the reconciler).
    Api,
    /// The daily scheduled run.
    Schedule,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
        }
    }
}

/// One account's window: the days reported, and the day the grace period is measured from.
#[derive(Clone, Debug)]
pub struct AccountWindow {
    pub client_id: String,
    pub account_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The day the grace period is measured from (today, for a live run).
    pub as_of: NaiveDate,
    pub trigger: RunTrigger,
}

impl AccountWindow {
    fn holds(&self, day: NaiveDate) -> bool {
        day >= self.start && day <= self.end
    }
}

/// A matched window, scoped to the days it reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowOutcome {
    /// Matches with a line or a posting booked inside the window.
    pub matches: Vec<Match>,
    /// The discrepancies booked inside the window, as findings of the window's account.
    pub findings: Vec<Finding>,
    /// Their count and money at stake per kind (before they became findings).
    pub totals: KindTotals,
    pub counts: RunCounts,
    pub matches_by_rule: BTreeMap<&'static str, usize>,
}

/// Keeps what `outcome` found for the lines and postings booked inside the window (a match
/// counts when either side is inside), and counts both sides. A discrepancy is booked on its
/// line's day, else its first posting's.
pub fn scope_to_window(
    w: &AccountWindow,
    lines: &[StatementLine],
    items: &[LedgerItem],
    outcome: MatchOutcome,
) -> Result<WindowOutcome, AmountOverflow> {
    let line_date: HashMap<i64, NaiveDate> = lines.iter().map(|l| (l.id, l.booked)).collect();
    let item_date: HashMap<Uuid, NaiveDate> =
        items.iter().map(|i| (i.transaction_id, i.booked)).collect();
    let line_inside = |id: &i64| line_date.get(id).is_some_and(|d| w.holds(*d));
    let item_inside = |id: &Uuid| item_date.get(id).is_some_and(|d| w.holds(*d));
    let MatchOutcome {
        matches,
        discrepancies,
        pending_ledger,
    } = outcome;
    let matches: Vec<Match> = matches
        .into_iter()
        .filter(|m| line_inside(&m.line_id) || m.transaction_ids.iter().any(item_inside))
        .collect();
    let day_of = |d: &Discrepancy| match (d.line_id, d.transaction_ids.first()) {
        (Some(line), _) => line_date.get(&line).copied(),
        (None, Some(tx)) => item_date.get(tx).copied(),
        (None, None) => None,
    };
    let booked: Vec<(Discrepancy, NaiveDate)> = discrepancies
        .into_iter()
        .filter_map(|d| day_of(&d).filter(|day| w.holds(*day)).map(|day| (d, day)))
        .collect();
    let totals = kind_totals(booked.iter().map(|(d, _)| d))?;
    let findings = booked
        .into_iter()
        .map(|(d, day)| statement_finding(d, &w.client_id, &w.account_id, Some(day)))
        .collect();

    let statement_lines = lines.iter().filter(|l| w.holds(l.booked)).count();
    let ledger_items = items.iter().filter(|i| w.holds(i.booked)).count();
    let matched_lines = matches.iter().filter(|m| line_inside(&m.line_id)).count();
    let matched_ledger_items = matches
        .iter()
        .flat_map(|m| &m.transaction_ids)
        .filter(|t| item_inside(t))
        .count();
    let mut matches_by_rule = BTreeMap::new();
    for m in &matches {
        *matches_by_rule.entry(m.rule.as_str()).or_default() += 1;
    }
    Ok(WindowOutcome {
        counts: RunCounts {
            statement_lines,
            ledger_items,
            matched_lines,
            matched_ledger_items,
            unmatched_lines: statement_lines - matched_lines,
            unmatched_ledger_items: ledger_items - matched_ledger_items,
            pending_ledger_items: pending_ledger.iter().filter(|t| item_inside(t)).count(),
        },
        matches,
        findings,
        totals,
        matches_by_rule,
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCounts {
    pub statement_lines: usize,
    pub ledger_items: usize,
    pub matched_lines: usize,
    pub matched_ledger_items: usize,
    pub unmatched_lines: usize,
    pub unmatched_ledger_items: usize,
    pub pending_ledger_items: usize,
}

/// One kind's count and net money at stake per currency (at the currency's scale).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindTotal {
    pub count: usize,
    pub totals: BTreeMap<String, String>,
}

/// The kinds present, by name.
pub type KindTotals = BTreeMap<&'static str, KindTotal>;

/// Count and money at stake (`Discrepancy::amount_at_stake`) per kind and currency, for reports:
/// the kinds present, by name, with net totals at their currency's scale. The rule is
/// `matching::tally_by_kind`, the one `summarize` uses.
pub fn kind_totals<'a>(
    discrepancies: impl Iterator<Item = &'a Discrepancy>,
) -> Result<KindTotals, AmountOverflow> {
    Ok(matching::tally_by_kind(discrepancies)?
        .into_iter()
        .filter(|tally| tally.count > 0)
        .map(|tally| {
            let totals = tally
                .totals
                .into_iter()
                .map(|t| {
                    let formatted = format_amount(t.net, &t.currency);
                    (t.currency, formatted)
                })
                .collect();
            (
                tally.kind.as_str(),
                KindTotal {
                    count: tally.count,
                    totals,
                },
            )
        })
        .collect())
}

/// What the ledger's own checks found, by count. An account's run checks its account (the first
/// three); the scheduled run checks the whole ledger and the dead letters (all six).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalChecks {
    pub unbalanced_transactions: usize,
    pub balance_drift: usize,
    pub missing_ledger_entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_imbalance: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdrawn_accounts: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<i64>,
}

impl InternalChecks {
    /// An account's checks.
    pub fn account(report: &InvariantReport) -> Self {
        Self {
            unbalanced_transactions: report.unbalanced_transactions.len(),
            balance_drift: report.balance_drift.len() + report.pending_drift.len(),
            missing_ledger_entries: report.missing_ledger_entries.len(),
            currency_imbalance: None,
            overdrawn_accounts: None,
            dead_lettered: None,
        }
    }

    /// The whole ledger's checks, with the dead letters waiting.
    pub fn ledger(report: &InvariantReport, dead_lettered: i64) -> Self {
        Self {
            currency_imbalance: Some(report.currency_imbalance.len()),
            overdrawn_accounts: Some(report.overdrawn_accounts.len()),
            dead_lettered: Some(dead_lettered),
            ..Self::account(report)
        }
    }
}

/// What storing the run did to the discrepancies it speaks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscrepancyChanges {
    pub new: usize,
    pub seen_again: usize,
    pub reopened: usize,
    pub cleared: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedWindow {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchSettings {
    pub date_drift_days: u32,
    pub grace_days: u32,
}

/// The report of one account's run. Stored without `discrepancyChanges` (known only once the run
/// is stored); answered with them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRunReport {
    pub run_id: Uuid,
    pub account_id: String,
    pub trigger: RunTrigger,
    pub window: ReportedWindow,
    pub as_of: NaiveDate,
    pub settings: MatchSettings,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub counts: RunCounts,
    pub matches_by_rule: BTreeMap<&'static str, usize>,
    pub discrepancies: KindTotals,
    pub internal_checks: InternalChecks,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrepancy_changes: Option<DiscrepancyChanges>,
}

/// An account that the scheduled run could not reconcile, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFailure {
    pub client_id: String,
    pub account_id: String,
    pub error: String,
}

/// The report of the scheduled ledger-wide run: internal checks, dead letters, and the accounts
/// the scheduled run could not reconcile. Stored without `discrepancyChanges`; answered with them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRunReport {
    pub run_id: Uuid,
    /// Always null: the run is about no one account.
    pub account_id: Option<String>,
    pub trigger: RunTrigger,
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub internal_checks: InternalChecks,
    /// Why the dead letters were not all reported (then no DEAD_LETTERED discrepancy is cleared).
    pub dead_letter_scan_error: Option<String>,
    pub failed_accounts: Vec<AccountFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrepancy_changes: Option<DiscrepancyChanges>,
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::reconcile::matching::{DiscrepancyKind, MatchRule};

    fn missing(amount: Decimal) -> Discrepancy {
        Discrepancy {
            kind: DiscrepancyKind::MissingInLedger,
            line_id: Some(1),
            transaction_ids: vec![],
            expected: None,
            actual: Some(amount),
            currency: "USD".into(),
            detail: String::new(),
        }
    }

    fn totals_json(found: &[Discrepancy]) -> Result<serde_json::Value, AmountOverflow> {
        Ok(serde_json::to_value(kind_totals(found.iter())?).unwrap())
    }

    #[test]
    fn report_totals_add_exactly_or_refuse_to_overflow() {
        let ok =
            totals_json(&[missing(Decimal::new(150, 2)), missing(Decimal::new(-50, 2))]).unwrap();
        assert_eq!(ok["MISSING_IN_LEDGER"]["totals"]["USD"], "1.00");
        assert_eq!(ok["MISSING_IN_LEDGER"]["count"], 2);
        // Two lines stored before amounts were bounded: the sum does not fit, and says so.
        let err = totals_json(&[missing(Decimal::MAX), missing(Decimal::MAX)]).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
        let mismatch = Discrepancy {
            kind: DiscrepancyKind::AmountMismatch,
            expected: Some(Decimal::MIN),
            actual: Some(Decimal::MAX),
            ..missing(Decimal::ONE)
        };
        assert!(totals_json(&[mismatch]).is_err());
    }

    #[test]
    fn a_gross_sum_that_cannot_fit_refuses_summarize_but_not_the_report() {
        let both = [missing(Decimal::MAX), missing(-Decimal::MAX)];
        let report = totals_json(&both).unwrap();
        assert_eq!(report["MISSING_IN_LEDGER"]["totals"]["USD"], "0.00");
        let outcome = MatchOutcome {
            discrepancies: both.to_vec(),
            ..MatchOutcome::default()
        };
        let err = matching::summarize(&outcome).unwrap_err();
        assert!(err.to_string().contains("gross total"), "{err}");
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn only_what_is_booked_inside_the_window_is_reported() {
        let w = AccountWindow {
            client_id: "demo".into(),
            account_id: "bank".into(),
            start: day(10),
            end: day(20),
            as_of: day(25),
            trigger: RunTrigger::Api,
        };
        let line = |id: i64, booked| StatementLine {
            id,
            external_id: format!("l{id}"),
            amount: Decimal::ONE,
            currency: "USD".into(),
            booked,
            reference: None,
        };
        let t = Uuid::from_u128;
        let item = |n: u128, booked| LedgerItem {
            transaction_id: t(n),
            amount: Decimal::ONE,
            currency: "USD".into(),
            booked,
            reference: None,
        };
        // Line 1 (inside) matches posting 1 (just before the window); line 2 and posting 2 are
        // outside and match each other; line 3 inside is missing in the ledger, line 4 outside.
        let lines = [
            line(1, day(10)),
            line(2, day(21)),
            line(3, day(15)),
            line(4, day(9)),
        ];
        let items = [item(1, day(9)), item(2, day(22)), item(3, day(20))];
        let matched = |l, n| Match {
            line_id: l,
            transaction_ids: vec![t(n)],
            rule: MatchRule::AmountAndDate,
        };
        let outcome = MatchOutcome {
            matches: vec![matched(1, 1), matched(2, 2)],
            discrepancies: vec![
                missing(Decimal::ONE),
                Discrepancy {
                    line_id: Some(3),
                    ..missing(Decimal::TWO)
                },
                Discrepancy {
                    line_id: Some(4),
                    ..missing(Decimal::TEN)
                },
            ],
            pending_ledger: vec![t(3)],
        };
        let scoped = scope_to_window(&w, &lines, &items, outcome).unwrap();
        assert_eq!(scoped.matches, [matched(1, 1)]);
        assert_eq!(
            serde_json::to_value(scoped.counts).unwrap(),
            json!({"statementLines": 2, "ledgerItems": 1, "matchedLines": 1,
                   "matchedLedgerItems": 0, "unmatchedLines": 1, "unmatchedLedgerItems": 1,
                   "pendingLedgerItems": 1})
        );
        let booked: Vec<_> = scoped
            .findings
            .iter()
            .map(|f| (f.statement_line_id, f.booked_on, f.client_id.as_str()))
            .collect();
        assert_eq!(
            booked,
            [
                (Some(1), Some(day(10)), "demo"),
                (Some(3), Some(day(15)), "demo")
            ]
        );
        assert_eq!(scoped.totals["MISSING_IN_LEDGER"].count, 2);
        assert_eq!(
            scoped.matches_by_rule,
            BTreeMap::from([("AMOUNT_AND_DATE", 1)])
        );
    }

    #[test]
    fn ledger_checks_show_six_counts_and_an_account_three() {
        let report = InvariantReport::default();
        assert_eq!(
            serde_json::to_value(InternalChecks::account(&report)).unwrap(),
            json!({"unbalancedTransactions": 0, "balanceDrift": 0, "missingLedgerEntries": 0})
        );
        assert_eq!(
            serde_json::to_value(InternalChecks::ledger(&report, 4)).unwrap(),
            json!({"unbalancedTransactions": 0, "balanceDrift": 0, "missingLedgerEntries": 0,
                   "currencyImbalance": 0, "overdrawnAccounts": 0, "deadLettered": 4})
        );
    }
}
