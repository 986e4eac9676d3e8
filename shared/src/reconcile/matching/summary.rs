//! Counts and money at stake of a matching outcome.

use rust_decimal::Decimal;
use serde::Serialize;

use super::{DiscrepancyKind, MatchOutcome};
use crate::money::{self, AmountOverflow};

/// Counts and money of one matching outcome, for run reports and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub matched_lines: usize,
    pub matched_ledger_items: usize,
    pub pending_ledger_items: usize,
    pub discrepancies: usize,
    /// Every kind, in `DiscrepancyKind::ALL` order, with a zero count when absent.
    pub by_kind: Vec<KindSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindSummary {
    pub kind: DiscrepancyKind,
    pub count: usize,
    /// One per currency, by currency code.
    pub totals: Vec<CurrencyTotal>,
}

/// Sums of `Discrepancy::amount_at_stake` in one currency: `net` adds the signed amounts, `gross`
/// their absolute values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyTotal {
    pub currency: String,
    pub net: Decimal,
    pub gross: Decimal,
}

pub fn summarize(outcome: &MatchOutcome) -> Result<Summary, AmountOverflow> {
    let by_kind = DiscrepancyKind::ALL
        .into_iter()
        .map(|kind| -> Result<KindSummary, AmountOverflow> {
            let mut totals: Vec<CurrencyTotal> = Vec::new();
            let mut count = 0;
            for discrepancy in outcome.discrepancies.iter().filter(|d| d.kind == kind) {
                count += 1;
                let amount = discrepancy.amount_at_stake()?;
                let total = match totals
                    .binary_search_by(|t| t.currency.as_str().cmp(&discrepancy.currency))
                {
                    Ok(at) => &mut totals[at],
                    Err(at) => {
                        totals.insert(
                            at,
                            CurrencyTotal {
                                currency: discrepancy.currency.clone(),
                                net: Decimal::ZERO,
                                gross: Decimal::ZERO,
                            },
                        );
                        &mut totals[at]
                    }
                };
                total.net = money::checked_add(total.net, amount, "net total")?;
                total.gross = money::checked_add(total.gross, amount.abs(), "gross total")?;
            }
            Ok(KindSummary {
                kind,
                count,
                totals,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Summary {
        matched_lines: outcome.matches.len(),
        matched_ledger_items: outcome
            .matches
            .iter()
            .map(|m| m.transaction_ids.len())
            .sum(),
        pending_ledger_items: outcome.pending_ledger.len(),
        discrepancies: outcome.discrepancies.len(),
        by_kind,
    })
}
