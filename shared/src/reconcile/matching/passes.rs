//! The passes of one matching run over its working state: reference (exact pairs, payout
//! batches, mismatches), amount and date, and the leftovers (duplicates, missing on either side).

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{Datelike, Days};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::assignment::pair_closest;
use super::{
    Discrepancy, DiscrepancyKind, LedgerItem, Match, MatchConfig, MatchOutcome, MatchRule,
    StatementLine,
};

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
pub(super) struct Run<'a> {
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
    pub(super) fn new(lines: &'a [StatementLine], items: &'a [LedgerItem]) -> Self {
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

    pub(super) fn reference_pass(&mut self) {
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

    pub(super) fn amount_and_date_pass(&mut self, drift_days: u32) {
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

    pub(super) fn finish(mut self, config: &MatchConfig) -> MatchOutcome {
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
