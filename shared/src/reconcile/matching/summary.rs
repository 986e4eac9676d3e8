//! Counts and money at stake of a matching outcome.

use rust_decimal::Decimal;
use serde::Serialize;

use super::{Discrepancy, DiscrepancyKind, MatchOutcome};
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
    let by_kind = tally_by_kind(&outcome.discrepancies)?
        .into_iter()
        .map(|tally| -> Result<KindSummary, AmountOverflow> {
            let totals = tally
                .totals
                .into_iter()
                .map(|t| -> Result<CurrencyTotal, AmountOverflow> {
                    Ok(CurrencyTotal {
                        currency: t.currency,
                        net: t.net,
                        gross: t.gross?,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(KindSummary {
                kind: tally.kind,
                count: tally.count,
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

/// Count and money at stake of one kind, per currency (by code).
pub(crate) struct KindTally {
    pub(crate) kind: DiscrepancyKind,
    pub(crate) count: usize,
    pub(crate) totals: Vec<CurrencyTally>,
}

pub(crate) struct CurrencyTally {
    pub(crate) currency: String,
    pub(crate) net: Decimal,
    /// Kept apart from the net total's error: a gross sum that does not fit refuses a
    /// [`summarize`], never a run report, which shows net totals only.
    pub(crate) gross: Result<Decimal, AmountOverflow>,
}

/// Count and money at stake (`Discrepancy::amount_at_stake`) per kind and currency, in one pass in
/// the given order: the one rule behind [`summarize`] and the run report's per-kind totals
/// (`reconcile::report`). Every kind, in `DiscrepancyKind::ALL` order, with a zero count when absent.
/// Sums are exact: a net total that does not fit is an `AmountOverflow` naming the kind, never a
/// wrapped or saturated sum.
pub(crate) fn tally_by_kind<'a>(
    discrepancies: impl IntoIterator<Item = &'a Discrepancy>,
) -> Result<Vec<KindTally>, AmountOverflow> {
    let mut by_kind: Vec<KindTally> = DiscrepancyKind::ALL
        .into_iter()
        .map(|kind| KindTally {
            kind,
            count: 0,
            totals: Vec::new(),
        })
        .collect();
    for discrepancy in discrepancies {
        let tally = by_kind
            .iter_mut()
            .find(|t| t.kind == discrepancy.kind)
            .expect("DiscrepancyKind::ALL holds every kind");
        tally.count += 1;
        let amount = discrepancy.amount_at_stake()?;
        let total = match tally
            .totals
            .binary_search_by(|t| t.currency.as_str().cmp(&discrepancy.currency))
        {
            Ok(at) => &mut tally.totals[at],
            Err(at) => {
                tally.totals.insert(
                    at,
                    CurrencyTally {
                        currency: discrepancy.currency.clone(),
                        net: Decimal::ZERO,
                        gross: Ok(Decimal::ZERO),
                    },
                );
                &mut tally.totals[at]
            }
        };
        total.net = money::checked_add(total.net, amount, discrepancy.kind.as_str())?;
        if let Ok(gross) = total.gross {
            total.gross = money::checked_add(gross, amount.abs(), "gross total");
        }
    }
    Ok(by_kind)
}
