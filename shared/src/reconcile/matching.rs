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

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::money::{self, AmountOverflow};

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

/// Canonical line order, total over every field so that equal keys mean identical lines.
fn line_order(a: &StatementLine, b: &StatementLine) -> Ordering {
    (a.booked, &a.external_id, a.id, a.amount, a.amount.scale())
        .cmp(&(b.booked, &b.external_id, b.id, b.amount, b.amount.scale()))
        .then_with(|| (&a.currency, &a.reference).cmp(&(&b.currency, &b.reference)))
}

/// Canonical posting order, total over every field.
fn item_order(a: &LedgerItem, b: &LedgerItem) -> Ordering {
    (a.booked, a.transaction_id, a.amount, a.amount.scale())
        .cmp(&(b.booked, b.transaction_id, b.amount, b.amount.scale()))
        .then_with(|| (&a.currency, &a.reference).cmp(&(&b.currency, &b.reference)))
}

/// An empty reference is no reference.
fn reference(reference: &Option<String>) -> Option<&str> {
    reference.as_deref().filter(|r| !r.is_empty())
}

/// Marks "in no group" in the group-id vectors.
const NO_GROUP: u32 = u32::MAX;

/// Members of numbered groups, laid out contiguously.
struct Groups {
    start: Vec<usize>,
    members: Vec<usize>,
}

impl Groups {
    /// `group_of[k]` is the group of `values[k]` (or `NO_GROUP`). Each group's members are sorted
    /// by `order`, so that what follows never depends on the order of the input.
    fn build(
        group_of: &[u32],
        values: &[usize],
        count: usize,
        order: impl Fn(usize, usize) -> Ordering,
    ) -> Self {
        let mut start = vec![0usize; count + 1];
        for &group in group_of.iter().filter(|&&g| g != NO_GROUP) {
            start[group as usize + 1] += 1;
        }
        for g in 0..count {
            start[g + 1] += start[g];
        }
        let mut next = start.clone();
        let mut members = vec![0usize; start[count]];
        for (&group, &value) in group_of.iter().zip(values) {
            if group != NO_GROUP {
                members[next[group as usize]] = value;
                next[group as usize] += 1;
            }
        }
        for g in 0..count {
            let group = &mut members[start[g]..start[g + 1]];
            if group.len() > 1 {
                group.sort_unstable_by(|&a, &b| order(a, b));
            }
        }
        Self { start, members }
    }

    fn get(&self, group: usize) -> &[usize] {
        &self.members[self.start[group]..self.start[group + 1]]
    }
}

/// The working state of one matching run. Lines and postings are addressed by their index in the
/// input; every group of competitors is put in canonical order before it is settled, and the
/// groups are disjoint, so the outcome does not depend on the input order. (A global sort would do
/// the same, at the price of a million string comparisons.)
struct Run<'a> {
    lines: &'a [StatementLine],
    items: &'a [LedgerItem],
    line_day: Vec<i32>,
    item_day: Vec<i32>,
    line_used: Vec<bool>,
    item_used: Vec<bool>,
    matches: Vec<Match>,
    /// The line of each match.
    match_line: Vec<usize>,
    discrepancies: Vec<Discrepancy>,
}

impl<'a> Run<'a> {
    fn new(lines: &'a [StatementLine], items: &'a [LedgerItem]) -> Self {
        Self {
            line_day: lines.iter().map(|l| l.booked.num_days_from_ce()).collect(),
            item_day: items.iter().map(|i| i.booked.num_days_from_ce()).collect(),
            line_used: vec![false; lines.len()],
            item_used: vec![false; items.len()],
            lines,
            items,
            matches: Vec::with_capacity(lines.len().min(items.len())),
            match_line: Vec::with_capacity(lines.len().min(items.len())),
            discrepancies: Vec::new(),
        }
    }

    fn line_order(&self) -> impl Fn(usize, usize) -> Ordering + 'a {
        let lines = self.lines;
        move |a, b| line_order(&lines[a], &lines[b])
    }

    fn item_order(&self) -> impl Fn(usize, usize) -> Ordering + 'a {
        let items = self.items;
        move |a, b| item_order(&items[a], &items[b])
    }

    fn same_money(&self, line: usize, item: usize) -> bool {
        let (line, item) = (&self.lines[line], &self.items[item]);
        line.amount == item.amount && line.currency == item.currency
    }

    fn record_match(&mut self, line: usize, items: &[usize], rule: MatchRule) {
        self.line_used[line] = true;
        let mut transaction_ids = Vec::with_capacity(items.len());
        for &item in items {
            self.item_used[item] = true;
            transaction_ids.push(self.items[item].transaction_id);
        }
        transaction_ids.sort_unstable();
        self.matches.push(Match {
            line_id: self.lines[line].id,
            transaction_ids,
            rule,
        });
        self.match_line.push(line);
    }

    fn reference_pass(&mut self) {
        let mut group_ids: HashMap<&'a str, u32> = HashMap::new();
        let item_group: Vec<u32> = self
            .items
            .iter()
            .map(|item| match reference(&item.reference) {
                Some(r) => {
                    let next = group_ids.len() as u32;
                    *group_ids.entry(r).or_insert(next)
                }
                None => NO_GROUP,
            })
            .collect();
        let line_group: Vec<u32> = self
            .lines
            .iter()
            .map(|line| {
                reference(&line.reference)
                    .and_then(|r| group_ids.get(r).copied())
                    .unwrap_or(NO_GROUP)
            })
            .collect();
        let count = group_ids.len();
        drop(group_ids);
        let all_lines: Vec<usize> = (0..self.lines.len()).collect();
        let all_items: Vec<usize> = (0..self.items.len()).collect();
        let line_groups = Groups::build(&line_group, &all_lines, count, self.line_order());
        let item_groups = Groups::build(&item_group, &all_items, count, self.item_order());
        let mut pairs = Vec::new();
        for group in 0..count {
            let lines = line_groups.get(group);
            if !lines.is_empty() {
                self.settle_reference_group(lines, item_groups.get(group), &mut pairs);
            }
        }
    }

    /// Lines and postings sharing one reference, each in canonical order.
    fn settle_reference_group(
        &mut self,
        lines: &[usize],
        items: &[usize],
        pairs: &mut Vec<(usize, usize)>,
    ) {
        if let (&[line], &[item]) = (lines, items) {
            if self.same_money(line, item) {
                self.record_match(line, &[item], MatchRule::Reference);
            } else {
                self.record_mismatch(line, item);
            }
            return;
        }

        // (a) exact pairs, any date.
        pairs.clear();
        self.pair_same_amounts(lines, items, None, pairs);
        for &(line, item) in pairs.iter() {
            self.record_match(line, &[item], MatchRule::Reference);
        }

        // (b) a payout batch: all the open postings of the line's currency, two or more, sum to it.
        let open_items: Vec<usize> = items
            .iter()
            .copied()
            .filter(|&i| !self.item_used[i])
            .collect();
        if open_items.len() >= 2 {
            let mut by_currency: HashMap<&'a str, (Option<Decimal>, Vec<usize>)> = HashMap::new();
            for &i in &open_items {
                let item = &self.items[i];
                let (sum, members) = by_currency
                    .entry(item.currency.as_str())
                    .or_insert((Some(Decimal::ZERO), Vec::new()));
                *sum = sum.and_then(|s| s.checked_add(item.amount));
                members.push(i);
            }
            let open_lines: Vec<usize> = lines
                .iter()
                .copied()
                .filter(|&l| !self.line_used[l])
                .collect();
            for line in open_lines {
                let candidate = &self.lines[line];
                let Some((sum, members)) = by_currency.get(candidate.currency.as_str()) else {
                    continue;
                };
                if members.len() >= 2 && *sum == Some(candidate.amount) {
                    let members = by_currency
                        .remove(candidate.currency.as_str())
                        .map(|(_, members)| members)
                        .unwrap_or_default();
                    self.record_match(line, &members, MatchRule::Batch);
                }
            }
        }

        // (c) the rest disagree about the same payments: closest dates pair first.
        let open_lines: Vec<usize> = lines
            .iter()
            .copied()
            .filter(|&l| !self.line_used[l])
            .collect();
        let open_items: Vec<usize> = items
            .iter()
            .copied()
            .filter(|&i| !self.item_used[i])
            .collect();
        pairs.clear();
        pair_closest(
            &open_lines,
            &open_items,
            &self.line_day,
            &self.item_day,
            None,
            pairs,
        );
        for &(line, item) in pairs.iter() {
            self.record_mismatch(line, item);
        }
    }

    fn record_mismatch(&mut self, line_index: usize, item_index: usize) {
        self.line_used[line_index] = true;
        self.item_used[item_index] = true;
        let line = &self.lines[line_index];
        let item = &self.items[item_index];
        let kind = if line.currency == item.currency {
            DiscrepancyKind::AmountMismatch
        } else {
            DiscrepancyKind::CurrencyMismatch
        };
        let detail = format!(
            "statement line {} shows {} {}; ledger transaction {} with the same reference ({}) has {} {}",
            line.external_id,
            line.amount,
            line.currency,
            item.transaction_id,
            reference(&item.reference).unwrap_or_default(),
            item.amount,
            item.currency
        );
        self.discrepancies.push(Discrepancy {
            kind,
            line_id: Some(line.id),
            transaction_ids: vec![item.transaction_id],
            expected: Some(item.amount),
            actual: Some(line.amount),
            currency: item.currency.clone(),
            detail,
        });
    }

    fn amount_and_date_pass(&mut self, drift_days: u32) {
        let open_lines: Vec<usize> = (0..self.lines.len())
            .filter(|&l| !self.line_used[l])
            .collect();
        let open_items: Vec<usize> = (0..self.items.len())
            .filter(|&i| !self.item_used[i])
            .collect();
        let mut pairs = Vec::new();
        self.pair_same_amounts(&open_lines, &open_items, Some(drift_days), &mut pairs);
        for (line, item) in pairs {
            self.record_match(line, &[item], MatchRule::AmountAndDate);
        }
    }

    /// Pairs lines with postings of the same currency and amount (by value: 10.5 == 10.50), closest
    /// dates first, at most `max_distance` days apart when given.
    fn pair_same_amounts(
        &self,
        lines: &[usize],
        items: &[usize],
        max_distance: Option<u32>,
        pairs: &mut Vec<(usize, usize)>,
    ) {
        match (lines, items) {
            ([], _) | (_, []) => return,
            (&[line], &[item]) => {
                if self.same_money(line, item) {
                    pair_closest(
                        &[line],
                        &[item],
                        &self.line_day,
                        &self.item_day,
                        max_distance,
                        pairs,
                    );
                }
                return;
            }
            _ => {}
        }
        let mut group_ids: HashMap<(&str, Decimal), u32> = HashMap::with_capacity(items.len());
        let item_group: Vec<u32> = items
            .iter()
            .map(|&i| {
                let item = &self.items[i];
                let next = group_ids.len() as u32;
                *group_ids
                    .entry((item.currency.as_str(), item.amount))
                    .or_insert(next)
            })
            .collect();
        let line_group: Vec<u32> = lines
            .iter()
            .map(|&l| {
                let line = &self.lines[l];
                group_ids
                    .get(&(line.currency.as_str(), line.amount))
                    .copied()
                    .unwrap_or(NO_GROUP)
            })
            .collect();
        let count = group_ids.len();
        drop(group_ids);
        let line_groups = Groups::build(&line_group, lines, count, self.line_order());
        let item_groups = Groups::build(&item_group, items, count, self.item_order());
        for group in 0..count {
            pair_closest(
                line_groups.get(group),
                item_groups.get(group),
                &self.line_day,
                &self.item_day,
                max_distance,
                pairs,
            );
        }
    }

    fn finish(mut self, config: &MatchConfig) -> MatchOutcome {
        self.report_unmatched_lines();
        let pending_ledger = self.report_unmatched_items(config);
        let mut matches = self.matches;
        matches.sort_unstable_by(|a, b| {
            (a.line_id, &a.transaction_ids, a.rule).cmp(&(b.line_id, &b.transaction_ids, b.rule))
        });
        let mut discrepancies = self.discrepancies;
        discrepancies.sort_by(discrepancy_order);
        MatchOutcome {
            matches,
            discrepancies,
            pending_ledger,
        }
    }

    /// An unmatched line that repeats a matched one (same currency, amount, booked date and
    /// reference, another external id) is a duplicate of the first such line in canonical order;
    /// any other is missing in the ledger.
    fn report_unmatched_lines(&mut self) {
        type RepeatKey<'k> = (&'k str, Decimal, i32, Option<&'k str>);
        let lines = self.lines;
        let key = |index: usize, day: i32| -> RepeatKey<'a> {
            let line = &lines[index];
            (
                line.currency.as_str(),
                line.amount,
                day,
                reference(&line.reference),
            )
        };
        let unmatched: Vec<usize> = (0..lines.len()).filter(|&l| !self.line_used[l]).collect();
        if unmatched.is_empty() {
            return;
        }
        // Per key that an unmatched line has: the first matched line with that key, and the first
        // one whose external id differs from that first one's (the original of a repeat that
        // shares the first one's external id).
        let mut originals: HashMap<RepeatKey<'a>, (Option<usize>, Option<usize>)> = unmatched
            .iter()
            .map(|&l| (key(l, self.line_day[l]), (None, None)))
            .collect();
        let matched_line = |m: usize| &lines[self.match_line[m]];
        for (m, &line) in self.match_line.iter().enumerate() {
            let Some((first, other)) = originals.get_mut(&key(line, self.line_day[line])) else {
                continue;
            };
            let Some(current) = *first else {
                *first = Some(m);
                continue;
            };
            let distinct = matched_line(m).external_id != matched_line(current).external_id;
            if line_order(matched_line(m), matched_line(current)).is_lt() {
                if distinct {
                    *other = Some(current);
                }
                *first = Some(m);
            } else if distinct
                && other.is_none_or(|o| line_order(matched_line(m), matched_line(o)).is_lt())
            {
                *other = Some(m);
            }
        }
        for index in unmatched {
            let line = &lines[index];
            let (first, other) = originals[&key(index, self.line_day[index])];
            let original = match first {
                Some(m) if matched_line(m).external_id == line.external_id => other,
                first => first,
            };
            let discrepancy = match original {
                Some(m) => Discrepancy {
                    kind: DiscrepancyKind::DuplicateInStatement,
                    line_id: Some(line.id),
                    transaction_ids: self.matches[m].transaction_ids.clone(),
                    expected: None,
                    actual: Some(line.amount),
                    currency: line.currency.clone(),
                    detail: format!(
                        "statement line {} repeats line {} ({} {} booked {}), which is already matched",
                        line.external_id,
                        lines[self.match_line[m]].external_id,
                        line.amount,
                        line.currency,
                        line.booked
                    ),
                },
                None => Discrepancy {
                    kind: DiscrepancyKind::MissingInLedger,
                    line_id: Some(line.id),
                    transaction_ids: Vec::new(),
                    expected: None,
                    actual: Some(line.amount),
                    currency: line.currency.clone(),
                    detail: format!(
                        "statement line {} ({} {} booked {}) has no ledger posting",
                        line.external_id, line.amount, line.currency, line.booked
                    ),
                },
            };
            self.discrepancies.push(discrepancy);
        }
    }

    /// An unmatched posting booked before `window_end - grace_days` is missing in the statement;
    /// a younger one may still reach it and is returned as pending.
    fn report_unmatched_items(&mut self, config: &MatchConfig) -> Vec<Uuid> {
        let cutoff = config
            .window_end
            .checked_sub_days(Days::new(u64::from(config.grace_days)));
        let mut pending = Vec::new();
        for item in (0..self.items.len())
            .filter(|&i| !self.item_used[i])
            .map(|i| &self.items[i])
        {
            if cutoff.is_some_and(|cutoff| item.booked < cutoff) {
                self.discrepancies.push(Discrepancy {
                    kind: DiscrepancyKind::MissingInStatement,
                    line_id: None,
                    transaction_ids: vec![item.transaction_id],
                    expected: Some(item.amount),
                    actual: None,
                    currency: item.currency.clone(),
                    detail: format!(
                        "ledger transaction {} ({} {} booked {}) is not on the statement after {} grace days",
                        item.transaction_id,
                        item.amount,
                        item.currency,
                        item.booked,
                        config.grace_days
                    ),
                });
            } else {
                pending.push(item.transaction_id);
            }
        }
        pending.sort_unstable();
        pending
    }
}

/// Kind, line id, first transaction id; the remaining fields only separate malformed inputs (a line
/// id or transaction id given twice).
fn discrepancy_order(a: &Discrepancy, b: &Discrepancy) -> Ordering {
    (a.kind, a.line_id, a.transaction_ids.first())
        .cmp(&(b.kind, b.line_id, b.transaction_ids.first()))
        .then_with(|| {
            (
                &a.transaction_ids,
                a.expected,
                a.actual,
                &a.currency,
                &a.detail,
            )
                .cmp(&(
                    &b.transaction_ids,
                    b.expected,
                    b.actual,
                    &b.currency,
                    &b.detail,
                ))
        })
}

/// Pairs `lines` with `items` one to one, greedily by (date distance, line index, posting index)
/// over every candidate pair, skipping pairs further apart than `max_distance`. Both slices are
/// ascending indices, and posting indices ascend with the booked date.
///
/// Postings are bucketed by day. Each open line keeps one entry in a min-heap: the nearest day
/// that still has an open posting. Buckets only empty over time, so an entry never promises more
/// than the line can have; a popped entry whose bucket is still open is therefore the best pair
/// left anywhere, and one whose bucket has emptied is recomputed and pushed again.
fn pair_closest(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max_distance: Option<u32>,
    pairs: &mut Vec<(usize, usize)>,
) {
    let within = |distance: u32| max_distance.is_none_or(|max| distance <= max);
    match (lines, items) {
        ([], _) | (_, []) => return,
        (&[line], &[item]) => {
            if within(line_day[line].abs_diff(item_day[item])) {
                pairs.push((line, item));
            }
            return;
        }
        _ => {}
    }
    let start = pairs.len();
    pair_closest_greedy(lines, items, line_day, item_day, max_distance, pairs);
    if let Some(max) = max_distance {
        augment(lines, items, line_day, item_day, max, pairs, start);
    }
}

/// Closest-first can strand a pair: lines on days 12 and 15, postings on days 10 and 13, drift 2:
/// (12, 13) is closest, and then 15 and 10 are too far apart, although (12, 10) and (15, 13) would
/// match both. This looks for augmenting paths from each stranded line (Kuhn's algorithm over the
/// lines and postings within the drift, closest candidates first), so the pass matches as many as
/// can match, keeping closest-first pairs wherever that costs nothing. Bounded work per group.
fn augment(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max: u32,
    pairs: &mut Vec<(usize, usize)>,
    start: usize,
) {
    const NONE: usize = usize::MAX;
    if pairs.len() - start == lines.len().min(items.len()) {
        return;
    }
    let line_pos: HashMap<usize, usize> = lines.iter().enumerate().map(|(p, &l)| (l, p)).collect();
    let item_pos: HashMap<usize, usize> = items.iter().enumerate().map(|(q, &i)| (i, q)).collect();
    let mut state = Augment {
        days: items.iter().map(|&i| item_day[i]).collect(),
        line_days: lines.iter().map(|&l| line_day[l]).collect(),
        max: max as i32,
        match_line: vec![NONE; lines.len()],
        match_item: vec![NONE; items.len()],
        visited: vec![0; items.len()],
        round: 0,
        budget: 64 * (lines.len() + items.len()),
    };
    for &(l, i) in &pairs[start..] {
        let (p, q) = (line_pos[&l], item_pos[&i]);
        state.match_line[p] = q;
        state.match_item[q] = p;
    }
    for p in 0..lines.len() {
        if state.match_line[p] == NONE && state.budget > 0 {
            state.round += 1;
            state.try_line(p, 0);
        }
    }
    pairs.truncate(start);
    for (p, &q) in state.match_line.iter().enumerate() {
        if q != NONE {
            pairs.push((lines[p], items[q]));
        }
    }
}

struct Augment {
    /// Posting days, ascending.
    days: Vec<i32>,
    line_days: Vec<i32>,
    max: i32,
    match_line: Vec<usize>,
    match_item: Vec<usize>,
    visited: Vec<u32>,
    round: u32,
    budget: usize,
}

impl Augment {
    const MAX_DEPTH: usize = 256;

    fn try_line(&mut self, p: usize, depth: usize) -> bool {
        if depth > Self::MAX_DEPTH {
            return false;
        }
        let day = self.line_days[p];
        let lo = self.days.partition_point(|&d| d < day - self.max);
        let hi = self.days.partition_point(|&d| d <= day + self.max);
        let mut candidates: Vec<usize> = (lo..hi).collect();
        candidates.sort_by_key(|&q| (self.days[q].abs_diff(day), q));
        for q in candidates {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            if self.visited[q] == self.round {
                continue;
            }
            self.visited[q] = self.round;
            let holder = self.match_item[q];
            if holder == usize::MAX || self.try_line(holder, depth + 1) {
                self.match_line[p] = q;
                self.match_item[q] = p;
                return true;
            }
        }
        false
    }
}

/// The greedy closest-first pairing of [`pair_closest`].
fn pair_closest_greedy(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max_distance: Option<u32>,
    pairs: &mut Vec<(usize, usize)>,
) {
    let within = |distance: u32| max_distance.is_none_or(|max| distance <= max);

    let mut buckets: Vec<Bucket> = Vec::new();
    for (position, &item) in items.iter().enumerate() {
        match buckets.last_mut() {
            Some(bucket) if bucket.day == item_day[item] => bucket.end = position + 1,
            _ => buckets.push(Bucket {
                day: item_day[item],
                next: position,
                end: position + 1,
            }),
        }
    }
    let mut open = OpenBuckets::new(buckets.len());

    let nearest = |open: &mut OpenBuckets, buckets: &[Bucket], day: i32| -> Option<(u32, usize)> {
        let split = buckets.partition_point(|b| b.day < day);
        let before = split
            .checked_sub(1)
            .and_then(|b| open.at_or_before(b))
            .map(|b| (day.abs_diff(buckets[b].day), b));
        let after = open
            .at_or_after(split)
            .map(|b| (day.abs_diff(buckets[b].day), b));
        // On equal distance the earlier day wins: its bucket index is smaller.
        [before, after]
            .into_iter()
            .flatten()
            .min()
            .filter(|&(distance, _)| within(distance))
    };

    let mut heap = BinaryHeap::with_capacity(lines.len());
    for (rank, &line) in lines.iter().enumerate() {
        if let Some((distance, bucket)) = nearest(&mut open, &buckets, line_day[line]) {
            heap.push(Reverse((distance, rank, bucket)));
        }
    }
    let mut left = items.len();
    while let Some(Reverse((_, rank, bucket))) = heap.pop() {
        let b = &mut buckets[bucket];
        if b.next < b.end {
            pairs.push((lines[rank], items[b.next]));
            b.next += 1;
            if b.next == b.end {
                open.close(bucket);
            }
            left -= 1;
            if left == 0 {
                break;
            }
        } else if let Some((distance, bucket)) = nearest(&mut open, &buckets, line_day[lines[rank]])
        {
            heap.push(Reverse((distance, rank, bucket)));
        }
    }
}

/// The postings of one day within a group: `items[next..end]` are still open.
struct Bucket {
    day: i32,
    next: usize,
    end: usize,
}

/// Finds the nearest bucket that still has open postings, in either direction (two path-compressed
/// "skip to the next open one" forests, one per direction; slot `len` is a sentinel).
struct OpenBuckets {
    forward: Vec<usize>,
    backward: Vec<usize>,
}

impl OpenBuckets {
    fn new(len: usize) -> Self {
        Self {
            forward: (0..=len).collect(),
            backward: (0..=len).collect(),
        }
    }

    fn len(&self) -> usize {
        self.forward.len() - 1
    }

    fn close(&mut self, bucket: usize) {
        let len = self.len();
        self.forward[bucket] = bucket + 1;
        self.backward[len - 1 - bucket] = len - bucket;
    }

    fn at_or_after(&mut self, bucket: usize) -> Option<usize> {
        let found = find_open(&mut self.forward, bucket);
        (found < self.len()).then_some(found)
    }

    fn at_or_before(&mut self, bucket: usize) -> Option<usize> {
        let len = self.len();
        let found = find_open(&mut self.backward, len - 1 - bucket);
        (found < len).then(|| len - 1 - found)
    }
}

fn find_open(next: &mut [usize], start: usize) -> usize {
    let mut root = start;
    while next[root] != root {
        root = next[root];
    }
    let mut at = start;
    while next[at] != root {
        let following = next[at];
        next[at] = root;
        at = following;
    }
    root
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap() + Days::new(n)
    }

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn tx(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn item(n: u128, amount: &str, booked: u64, reference: Option<&str>) -> LedgerItem {
        LedgerItem {
            transaction_id: tx(n),
            amount: dec(amount),
            currency: "USD".into(),
            booked: day(booked),
            reference: reference.map(Into::into),
        }
    }

    fn line(id: i64, amount: &str, booked: u64, reference: Option<&str>) -> StatementLine {
        StatementLine {
            id,
            external_id: format!("S{id}"),
            amount: dec(amount),
            currency: "USD".into(),
            booked: day(booked),
            reference: reference.map(Into::into),
        }
    }

    /// Drift 2 days, grace 3 days, window ending on day 30 (so postings before day 27 are overdue).
    fn config() -> MatchConfig {
        MatchConfig {
            date_drift_days: 2,
            grace_days: 3,
            window_end: day(30),
        }
    }

    fn run(lines: &[StatementLine], items: &[LedgerItem]) -> MatchOutcome {
        match_statement_lines(lines, items, &config())
    }

    fn matched(line_id: i64, ids: &[u128], rule: MatchRule) -> Match {
        Match {
            line_id,
            transaction_ids: ids.iter().map(|&n| tx(n)).collect(),
            rule,
        }
    }

    fn found(outcome: &MatchOutcome) -> Vec<(DiscrepancyKind, Option<i64>, Vec<Uuid>)> {
        outcome
            .discrepancies
            .iter()
            .map(|d| (d.kind, d.line_id, d.transaction_ids.clone()))
            .collect()
    }

    fn missing_in_ledger(line_id: i64) -> (DiscrepancyKind, Option<i64>, Vec<Uuid>) {
        (DiscrepancyKind::MissingInLedger, Some(line_id), vec![])
    }

    fn missing_in_statement(n: u128) -> (DiscrepancyKind, Option<i64>, Vec<Uuid>) {
        (DiscrepancyKind::MissingInStatement, None, vec![tx(n)])
    }

    #[test]
    fn reference_match_ignores_dates() {
        let outcome = run(
            &[line(1, "100.00", 20, Some("INV-1"))],
            &[
                item(1, "100.00", 1, Some("INV-1")),
                item(2, "100.00", 20, None),
            ],
        );
        assert_eq!(outcome.matches, [matched(1, &[1], MatchRule::Reference)]);
        assert_eq!(found(&outcome), [missing_in_statement(2)]);
    }

    #[test]
    fn reference_prefers_the_closest_day_then_the_earlier_day_then_the_smallest_id() {
        let items = [
            item(9, "50", 4, Some("R")),
            item(7, "50", 12, Some("R")),
            item(8, "50", 8, Some("R")),
            item(6, "50", 8, Some("R")),
        ];
        let outcome = run(&[line(1, "50", 10, Some("R"))], &items);
        assert_eq!(outcome.matches, [matched(1, &[6], MatchRule::Reference)]);

        let outcome = run(
            &[line(1, "50", 10, Some("R")), line(2, "50", 10, Some("R"))],
            &items,
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[6], MatchRule::Reference),
                matched(2, &[8], MatchRule::Reference)
            ]
        );
        assert_eq!(
            found(&outcome),
            [missing_in_statement(7), missing_in_statement(9)]
        );
    }

    #[test]
    fn amount_and_date_matches_without_reference() {
        let outcome = run(&[line(1, "-42.10", 3, None)], &[item(1, "-42.10", 2, None)]);
        assert_eq!(
            outcome.matches,
            [matched(1, &[1], MatchRule::AmountAndDate)]
        );
        assert!(outcome.discrepancies.is_empty());
        assert!(outcome.pending_ledger.is_empty());
    }

    #[test]
    fn payout_batch_of_three_transfers_matches_one_line() {
        let outcome = run(
            &[line(1, "60.75", 5, Some("PAYOUT-7"))],
            &[
                item(1, "10.00", 1, Some("PAYOUT-7")),
                item(2, "20.50", 2, Some("PAYOUT-7")),
                item(3, "30.25", 3, Some("PAYOUT-7")),
            ],
        );
        assert_eq!(outcome.matches, [matched(1, &[1, 2, 3], MatchRule::Batch)]);
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn batch_sums_only_the_postings_in_the_line_currency() {
        let mut euro = item(3, "5.00", 2, Some("PAYOUT-8"));
        euro.currency = "EUR".into();
        let outcome = run(
            &[line(1, "30.00", 5, Some("PAYOUT-8"))],
            &[
                item(1, "10.00", 1, Some("PAYOUT-8")),
                item(2, "20.00", 2, Some("PAYOUT-8")),
                euro,
            ],
        );
        assert_eq!(outcome.matches, [matched(1, &[1, 2], MatchRule::Batch)]);
        assert_eq!(found(&outcome), [missing_in_statement(3)]);
    }

    #[test]
    fn batch_off_by_a_cent_is_an_amount_mismatch_with_the_closest_transfer() {
        let outcome = run(
            &[
                line(1, "60.76", 4, Some("PAYOUT-7")),
                line(2, "20.50", 2, None),
            ],
            &[
                item(1, "10.00", 1, Some("PAYOUT-7")),
                item(2, "20.50", 2, Some("PAYOUT-7")),
                item(3, "30.25", 3, Some("PAYOUT-7")),
            ],
        );
        assert_eq!(
            outcome.matches,
            [matched(2, &[2], MatchRule::AmountAndDate)]
        );
        assert_eq!(
            found(&outcome),
            [
                missing_in_statement(1),
                (DiscrepancyKind::AmountMismatch, Some(1), vec![tx(3)])
            ]
        );
        let mismatch = &outcome.discrepancies[1];
        assert_eq!(mismatch.expected, Some(dec("30.25")));
        assert_eq!(mismatch.actual, Some(dec("60.76")));
    }

    #[test]
    fn amount_mismatch_on_a_shared_reference() {
        let outcome = run(
            &[line(1, "100.00", 9, Some("INV-2"))],
            &[item(1, "90.00", 2, Some("INV-2"))],
        );
        assert!(outcome.matches.is_empty());
        assert_eq!(
            outcome.discrepancies,
            [Discrepancy {
                kind: DiscrepancyKind::AmountMismatch,
                line_id: Some(1),
                transaction_ids: vec![tx(1)],
                expected: Some(dec("90.00")),
                actual: Some(dec("100.00")),
                currency: "USD".into(),
                detail: format!(
                    "statement line S1 shows 100.00 USD; ledger transaction {} with the same reference (INV-2) has 90.00 USD",
                    tx(1)
                ),
            }]
        );
    }

    #[test]
    fn currency_mismatch_on_a_shared_reference() {
        let mut euro = line(1, "100.00", 2, Some("INV-3"));
        euro.currency = "EUR".into();
        let outcome = run(&[euro], &[item(1, "100.00", 2, Some("INV-3"))]);
        assert!(outcome.matches.is_empty());
        assert_eq!(
            found(&outcome),
            [(DiscrepancyKind::CurrencyMismatch, Some(1), vec![tx(1)])]
        );
        let mismatch = &outcome.discrepancies[0];
        assert_eq!(mismatch.currency, "USD");
        assert_eq!(
            (mismatch.expected, mismatch.actual),
            (Some(dec("100.00")), Some(dec("100.00")))
        );
        assert!(
            mismatch.detail.contains("100.00 EUR"),
            "{}",
            mismatch.detail
        );
    }

    #[test]
    fn a_line_without_a_posting_is_missing_in_ledger() {
        let outcome = run(&[line(1, "12.34", 5, Some("WIRE-9"))], &[]);
        assert_eq!(found(&outcome), [missing_in_ledger(1)]);
        assert_eq!(outcome.discrepancies[0].actual, Some(dec("12.34")));
        assert_eq!(outcome.discrepancies[0].expected, None);
    }

    #[test]
    fn missing_in_statement_only_after_the_grace_period() {
        // Window ends on day 30 with 3 grace days: day 26 is overdue, day 27 and later are pending.
        let items = [
            item(1, "1.00", 26, None),
            item(2, "2.00", 27, None),
            item(3, "3.00", 30, None),
        ];
        let outcome = run(&[], &items);
        assert_eq!(found(&outcome), [missing_in_statement(1)]);
        assert_eq!(outcome.discrepancies[0].expected, Some(dec("1.00")));
        assert_eq!(outcome.pending_ledger, [tx(2), tx(3)]);

        let no_grace = MatchConfig {
            grace_days: 0,
            ..config()
        };
        let outcome = match_statement_lines(&[], &items, &no_grace);
        assert_eq!(
            found(&outcome),
            [missing_in_statement(1), missing_in_statement(2)]
        );
        assert_eq!(outcome.pending_ledger, [tx(3)]);
    }

    #[test]
    fn duplicate_in_statement() {
        for reference in [None, Some("INV-4")] {
            let outcome = run(
                &[
                    line(2, "75.00", 4, reference),
                    line(1, "75.00", 4, reference),
                ],
                &[item(1, "75.00", 3, reference)],
            );
            let rule = match reference {
                Some(_) => MatchRule::Reference,
                None => MatchRule::AmountAndDate,
            };
            assert_eq!(outcome.matches, [matched(1, &[1], rule)]);
            assert_eq!(
                found(&outcome),
                [(DiscrepancyKind::DuplicateInStatement, Some(2), vec![tx(1)])]
            );
            assert_eq!(outcome.discrepancies[0].actual, Some(dec("75.00")));
        }
    }

    #[test]
    fn duplicate_of_a_batch_line_names_the_batch() {
        let outcome = run(
            &[
                line(1, "30.00", 5, Some("PAYOUT-9")),
                line(2, "30.00", 5, Some("PAYOUT-9")),
            ],
            &[
                item(1, "10.00", 1, Some("PAYOUT-9")),
                item(2, "20.00", 2, Some("PAYOUT-9")),
            ],
        );
        assert_eq!(outcome.matches, [matched(1, &[1, 2], MatchRule::Batch)]);
        assert_eq!(
            found(&outcome),
            [(
                DiscrepancyKind::DuplicateInStatement,
                Some(2),
                vec![tx(1), tx(2)]
            )]
        );
    }

    #[test]
    fn two_genuine_identical_payments_are_not_duplicates() {
        let outcome = run(
            &[line(1, "75.00", 4, None), line(2, "75.00", 4, None)],
            &[item(1, "75.00", 4, None), item(2, "75.00", 4, None)],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[1], MatchRule::AmountAndDate),
                matched(2, &[2], MatchRule::AmountAndDate)
            ]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn a_repeat_on_another_day_or_with_the_same_external_id_is_missing_not_duplicate() {
        let mut same_external_id = line(3, "75.00", 4, None);
        same_external_id.external_id = "S1".into();
        let outcome = run(
            &[
                line(1, "75.00", 4, None),
                line(2, "75.00", 9, None),
                same_external_id,
            ],
            &[item(1, "75.00", 4, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[1], MatchRule::AmountAndDate)]
        );
        assert_eq!(
            found(&outcome),
            [missing_in_ledger(2), missing_in_ledger(3)]
        );
    }

    #[test]
    fn same_amount_on_adjacent_days_pairs_each_line_with_its_own_day() {
        let outcome = run(
            &[line(2, "19.99", 6, None), line(1, "19.99", 5, None)],
            &[item(1, "19.99", 6, None), item(2, "19.99", 5, None)],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[2], MatchRule::AmountAndDate),
                matched(2, &[1], MatchRule::AmountAndDate)
            ]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn closest_date_wins_over_every_candidate_pair() {
        // The line on day 2 takes the posting on day 2 rather than the one on day 1.
        let outcome = run(
            &[line(1, "8.00", 2, None)],
            &[item(1, "8.00", 1, None), item(2, "8.00", 2, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[2], MatchRule::AmountAndDate)]
        );
        assert_eq!(found(&outcome), [missing_in_statement(1)]);

        // The day-2 posting goes to the day-2 line even though the day-1 line comes first.
        let outcome = run(
            &[line(1, "8.00", 1, None), line(2, "8.00", 2, None)],
            &[item(1, "8.00", 2, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(2, &[1], MatchRule::AmountAndDate)]
        );
        assert_eq!(found(&outcome), [missing_in_ledger(1)]);
    }

    #[test]
    fn closest_first_never_strands_a_pair_that_could_match() {
        // Drift 2: closest first would take (day 12, day 13) and leave 15 and 10 too far apart;
        // matching 12 with 10 and 15 with 13 matches both.
        let outcome = run(
            &[line(1, "8.00", 12, None), line(2, "8.00", 15, None)],
            &[item(1, "8.00", 10, None), item(2, "8.00", 13, None)],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[1], MatchRule::AmountAndDate),
                matched(2, &[2], MatchRule::AmountAndDate)
            ]
        );
        assert!(found(&outcome).is_empty());

        // A longer chain: every line can match only by shifting its neighbours.
        let lines: Vec<_> = (0..6)
            .map(|k| line(k + 1, "8.00", 10 + 3 * k as u64, None))
            .collect();
        let items: Vec<_> = (0..6)
            .map(|k| item(k + 1, "8.00", 8 + 3 * k as u64, None))
            .collect();
        let outcome = run(&lines, &items);
        assert_eq!(outcome.matches.len(), 6);
        assert!(found(&outcome).is_empty());
    }

    #[test]
    fn equidistant_lines_the_earlier_booked_line_wins() {
        let outcome = run(
            &[line(1, "8.00", 3, None), line(2, "8.00", 1, None)],
            &[item(1, "8.00", 2, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(2, &[1], MatchRule::AmountAndDate)]
        );
        assert_eq!(found(&outcome), [missing_in_ledger(1)]);
    }

    #[test]
    fn two_identical_amounts_on_the_same_day_match_two_distinct_postings() {
        let outcome = run(
            &[line(1, "250.00", 7, None), line(2, "250.00", 7, None)],
            &[item(2, "250.00", 7, None), item(1, "250.00", 7, None)],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[1], MatchRule::AmountAndDate),
                matched(2, &[2], MatchRule::AmountAndDate)
            ]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn drift_boundary_exactly_drift_days_matches_one_more_does_not() {
        let outcome = run(
            &[line(1, "5.00", 5, None), line(2, "6.00", 10, None)],
            &[item(1, "5.00", 3, None), item(2, "6.00", 7, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[1], MatchRule::AmountAndDate)]
        );
        assert_eq!(
            found(&outcome),
            [missing_in_ledger(2), missing_in_statement(2)]
        );

        let exact_day = MatchConfig {
            date_drift_days: 0,
            ..config()
        };
        let outcome = match_statement_lines(
            &[line(1, "5.00", 5, None), line(2, "6.00", 10, None)],
            &[item(1, "5.00", 5, None), item(2, "6.00", 11, None)],
            &exact_day,
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[1], MatchRule::AmountAndDate)]
        );
        assert_eq!(
            found(&outcome),
            [missing_in_ledger(2), missing_in_statement(2)]
        );
    }

    #[test]
    fn amounts_compare_by_value() {
        let outcome = run(
            &[line(1, "10.5", 1, None), line(2, "10.5", 1, Some("B"))],
            &[
                item(1, "10.50", 1, None),
                item(2, "10.100", 1, Some("B")),
                item(3, "0.4", 1, Some("B")),
            ],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[1], MatchRule::AmountAndDate),
                matched(2, &[2, 3], MatchRule::Batch)
            ]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn opposite_signs_and_other_currencies_do_not_match_by_amount() {
        let mut euro = line(2, "100.00", 1, None);
        euro.currency = "EUR".into();
        let outcome = run(
            &[line(1, "100.00", 1, None), euro],
            &[item(1, "-100.00", 1, None), item(2, "100.00", 1, None)],
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[2], MatchRule::AmountAndDate)]
        );
        assert_eq!(
            found(&outcome),
            [missing_in_ledger(2), missing_in_statement(1)]
        );
    }

    #[test]
    fn a_reference_nobody_carries_falls_through_to_amount_and_date() {
        let outcome = run(
            &[line(1, "33.00", 2, Some("BANK-77"))],
            &[item(1, "33.00", 1, Some("INV-5"))],
        );
        assert_eq!(
            outcome.matches,
            [matched(1, &[1], MatchRule::AmountAndDate)]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn a_line_whose_reference_postings_are_taken_falls_through_to_amount_and_date() {
        let outcome = run(
            &[
                line(1, "33.00", 2, Some("R")),
                line(2, "34.00", 2, Some("R")),
            ],
            &[item(1, "33.00", 1, Some("R")), item(2, "34.00", 3, None)],
        );
        assert_eq!(
            outcome.matches,
            [
                matched(1, &[1], MatchRule::Reference),
                matched(2, &[2], MatchRule::AmountAndDate)
            ]
        );
        assert!(outcome.discrepancies.is_empty());
    }

    #[test]
    fn an_exact_reference_match_is_not_taken_by_a_mismatch() {
        let outcome = run(
            &[
                line(1, "90.00", 1, Some("R")),
                line(2, "100.00", 5, Some("R")),
            ],
            &[item(1, "100.00", 1, Some("R"))],
        );
        assert_eq!(outcome.matches, [matched(2, &[1], MatchRule::Reference)]);
        assert_eq!(found(&outcome), [missing_in_ledger(1)]);
    }

    #[test]
    fn an_empty_reference_is_no_reference() {
        let outcome = run(
            &[line(1, "1.00", 1, Some(""))],
            &[item(1, "2.00", 1, Some(""))],
        );
        assert!(outcome.matches.is_empty());
        assert_eq!(
            found(&outcome),
            [missing_in_ledger(1), missing_in_statement(1)]
        );
    }

    #[test]
    fn outcome_does_not_depend_on_input_order() {
        let mut lines = vec![
            line(1, "8.00", 1, None),
            line(2, "8.00", 2, None),
            line(3, "8.00", 2, None),
            line(4, "60.00", 5, Some("P")),
            line(5, "99.00", 5, Some("Q")),
            line(6, "1.00", 5, None),
        ];
        let mut items = vec![
            item(1, "8.00", 2, None),
            item(2, "8.00", 3, Some("X")),
            item(3, "20.00", 1, Some("P")),
            item(4, "40.00", 1, Some("P")),
            item(5, "98.00", 4, Some("Q")),
            item(6, "98.00", 6, Some("Q")),
            item(7, "8.00", 29, None),
        ];
        let expected = run(&lines, &items);
        for turn in 0..lines.len() * items.len() {
            if turn % 2 == 0 {
                lines.rotate_left(1);
            } else {
                items.rotate_left(1);
            }
            if turn % 5 == 0 {
                lines.reverse();
            }
            assert_eq!(run(&lines, &items), expected);
        }
        assert_eq!(expected.matches.len(), 3);
        assert_eq!(expected.pending_ledger, [tx(7)]);
    }

    #[test]
    fn summarize_counts_and_sums_per_kind() {
        let mut euro = line(4, "7.00", 1, None);
        euro.currency = "EUR".into();
        let outcome = run(
            &[
                line(1, "10.00", 1, Some("A")),
                line(2, "12.00", 1, Some("B")),
                line(3, "-5.00", 1, None),
                euro,
                line(5, "30.00", 1, Some("P")),
            ],
            &[
                item(1, "10.00", 1, Some("A")),
                item(2, "11.50", 1, Some("B")),
                item(3, "-4.00", 1, None),
                item(4, "3.00", 28, None),
                item(5, "10.00", 1, Some("P")),
                item(6, "20.00", 1, Some("P")),
            ],
        );
        let summary = summarize(&outcome).unwrap();
        assert_eq!(summary.matched_lines, 2);
        assert_eq!(summary.matched_ledger_items, 3);
        assert_eq!(summary.pending_ledger_items, 1);
        assert_eq!(summary.discrepancies, 4);
        let kinds: Vec<_> = summary.by_kind.iter().map(|k| (k.kind, k.count)).collect();
        assert_eq!(
            kinds,
            [
                (DiscrepancyKind::MissingInLedger, 2),
                (DiscrepancyKind::MissingInStatement, 1),
                (DiscrepancyKind::AmountMismatch, 1),
                (DiscrepancyKind::CurrencyMismatch, 0),
                (DiscrepancyKind::DuplicateInStatement, 0),
            ]
        );
        let total = |currency: &str, net: &str, gross: &str| CurrencyTotal {
            currency: currency.into(),
            net: dec(net),
            gross: dec(gross),
        };
        assert_eq!(
            summary.by_kind[0].totals,
            [total("EUR", "7.00", "7.00"), total("USD", "-5.00", "5.00")]
        );
        assert_eq!(summary.by_kind[1].totals, [total("USD", "-4.00", "4.00")]);
        assert_eq!(summary.by_kind[2].totals, [total("USD", "0.50", "0.50")]);
        assert!(summary.by_kind[3].totals.is_empty());
    }

    #[test]
    fn names_serialize_in_screaming_snake_case() {
        for rule in MatchRule::ALL {
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str());
            assert_eq!(MatchRule::parse(rule.as_str()), Some(rule));
        }
        for kind in DiscrepancyKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(DiscrepancyKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MatchRule::AmountAndDate.as_str(), "AMOUNT_AND_DATE");
        assert_eq!(
            DiscrepancyKind::DuplicateInStatement.as_str(),
            "DUPLICATE_IN_STATEMENT"
        );
        assert_eq!(DiscrepancyKind::parse("missing_in_ledger"), None);

        let outcome = run(&[line(1, "10.50", 1, None)], &[]);
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            json["discrepancies"][0]["kind"],
            serde_json::json!("MISSING_IN_LEDGER")
        );
        assert_eq!(json["discrepancies"][0]["lineId"], serde_json::json!(1));
        assert_eq!(
            json["discrepancies"][0]["actual"],
            serde_json::json!("10.50")
        );
        assert_eq!(json["pendingLedger"], serde_json::json!([]));
    }
}
