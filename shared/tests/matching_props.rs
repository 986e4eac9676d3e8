//! Properties of the matching engine on generated statements and ledgers: the outcome does not
//! depend on input order, every line and posting is accounted for exactly once, and on data with
//! planted problems the engine reports exactly the planted ones.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use rust_decimal::Decimal;
use shared::reconcile::{
    Discrepancy, DiscrepancyKind, LedgerItem, Match, MatchConfig, MatchOutcome, MatchRule,
    StatementLine, match_statement_lines, summarize,
};
use uuid::Uuid;

fn day(n: i64) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    if n >= 0 {
        start + Days::new(n as u64)
    } else {
        start - Days::new(n.unsigned_abs())
    }
}

/// A deterministic shuffle (splitmix64 driving Fisher-Yates), so a failing case replays.
fn shuffle<T>(values: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..values.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        values.swap(i, j);
    }
}

fn reference(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|r| !r.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Dense random data: few amounts, few days, few references, so ties and collisions are common.

fn small_amount() -> impl Strategy<Value = Decimal> {
    // Multiples of 5 (so batches form by chance), written at scale 0 or 2: "5" and "5.00" are equal.
    (-3i64..=4, any::<bool>()).prop_map(|(units, cents)| {
        if cents {
            Decimal::new(units * 500, 2)
        } else {
            Decimal::new(units * 5, 0)
        }
    })
}

fn small_currency() -> impl Strategy<Value = String> {
    prop_oneof![6 => Just("USD".to_string()), 1 => Just("EUR".to_string())]
}

fn small_reference() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(String::new())),
        4 => (0u8..5).prop_map(|r| Some(format!("R{r}"))),
    ]
}

fn dense_lines() -> impl Strategy<Value = Vec<StatementLine>> {
    prop::collection::vec(
        (
            0u8..30,
            small_amount(),
            small_currency(),
            0i64..8,
            small_reference(),
        ),
        0..40,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(
                |(i, (external, amount, currency, booked, reference))| StatementLine {
                    id: 100 + i as i64,
                    // External ids may repeat: re-imports and sloppy banks exist.
                    external_id: format!("E{external:02}"),
                    amount,
                    currency,
                    booked: day(booked),
                    reference,
                },
            )
            .collect()
    })
}

fn dense_items() -> impl Strategy<Value = Vec<LedgerItem>> {
    prop::collection::vec(
        (
            any::<u16>(),
            small_amount(),
            small_currency(),
            0i64..8,
            small_reference(),
        ),
        0..40,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(
                |(i, (high, amount, currency, booked, reference))| LedgerItem {
                    transaction_id: Uuid::from_u128((u128::from(high) << 64) | i as u128),
                    amount,
                    currency,
                    booked: day(booked),
                    reference,
                },
            )
            .collect()
    })
}

fn small_config() -> impl Strategy<Value = MatchConfig> {
    (0u32..4, 0u32..5, 0i64..10).prop_map(|(drift, grace, end)| MatchConfig {
        date_drift_days: drift,
        grace_days: grace,
        window_end: day(end),
    })
}

/// Checks that the outcome accounts for every input exactly once and that every match and
/// discrepancy obeys its rule.
fn check_accounting(
    lines: &[StatementLine],
    items: &[LedgerItem],
    config: &MatchConfig,
    outcome: &MatchOutcome,
) -> Result<(), TestCaseError> {
    let line_by_id: HashMap<i64, &StatementLine> = lines.iter().map(|l| (l.id, l)).collect();
    let item_by_id: HashMap<Uuid, &LedgerItem> =
        items.iter().map(|i| (i.transaction_id, i)).collect();
    let cutoff = config
        .window_end
        .checked_sub_days(Days::new(u64::from(config.grace_days)))
        .unwrap();

    let mut line_uses: HashMap<i64, usize> = HashMap::new();
    let mut item_uses: HashMap<Uuid, usize> = HashMap::new();
    for m in &outcome.matches {
        *line_uses.entry(m.line_id).or_default() += 1;
        for id in &m.transaction_ids {
            *item_uses.entry(*id).or_default() += 1;
        }
    }
    for d in &outcome.discrepancies {
        if let Some(id) = d.line_id {
            *line_uses.entry(id).or_default() += 1;
        }
        // A duplicate names the postings of the line it repeats; those are counted by that match.
        if d.kind != DiscrepancyKind::DuplicateInStatement {
            for id in &d.transaction_ids {
                *item_uses.entry(*id).or_default() += 1;
            }
        }
    }
    for id in &outcome.pending_ledger {
        *item_uses.entry(*id).or_default() += 1;
    }
    for line in lines {
        prop_assert_eq!(
            line_uses.get(&line.id).copied(),
            Some(1),
            "line {}",
            line.id
        );
    }
    for item in items {
        prop_assert_eq!(
            item_uses.get(&item.transaction_id).copied(),
            Some(1),
            "posting {}",
            item.transaction_id
        );
    }
    prop_assert_eq!(line_uses.len(), lines.len());
    prop_assert_eq!(item_uses.len(), items.len());

    for m in &outcome.matches {
        let line = line_by_id[&m.line_id];
        let matched: Vec<&LedgerItem> = m.transaction_ids.iter().map(|id| item_by_id[id]).collect();
        prop_assert!(m.transaction_ids.is_sorted());
        match m.rule {
            MatchRule::Reference => {
                prop_assert_eq!(matched.len(), 1);
                prop_assert!(reference(&line.reference).is_some());
                prop_assert_eq!(reference(&line.reference), reference(&matched[0].reference));
                prop_assert_eq!(line.amount, matched[0].amount);
                prop_assert_eq!(&line.currency, &matched[0].currency);
            }
            MatchRule::AmountAndDate => {
                prop_assert_eq!(matched.len(), 1);
                prop_assert_eq!(line.amount, matched[0].amount);
                prop_assert_eq!(&line.currency, &matched[0].currency);
                let distance = (line.booked - matched[0].booked).num_days().unsigned_abs();
                prop_assert!(distance <= u64::from(config.date_drift_days));
            }
            MatchRule::Batch => {
                prop_assert!(matched.len() >= 2);
                prop_assert!(reference(&line.reference).is_some());
                for item in &matched {
                    prop_assert_eq!(reference(&line.reference), reference(&item.reference));
                    prop_assert_eq!(&line.currency, &item.currency);
                }
                let sum: Decimal = matched.iter().map(|i| i.amount).sum();
                prop_assert_eq!(sum, line.amount);
            }
        }
    }

    let match_by_line: HashMap<i64, &Match> =
        outcome.matches.iter().map(|m| (m.line_id, m)).collect();
    let same_entry = |a: &StatementLine, b: &StatementLine| {
        a.currency == b.currency
            && a.amount == b.amount
            && a.booked == b.booked
            && reference(&a.reference) == reference(&b.reference)
            && a.external_id != b.external_id
    };
    for d in &outcome.discrepancies {
        let line = d.line_id.map(|id| line_by_id[&id]);
        match d.kind {
            DiscrepancyKind::MissingInLedger => {
                let line = line.unwrap();
                prop_assert!(d.transaction_ids.is_empty());
                prop_assert_eq!((d.expected, d.actual), (None, Some(line.amount)));
                // Not a repeat of a matched line, or it would be a duplicate.
                for m in &outcome.matches {
                    prop_assert!(!same_entry(line, line_by_id[&m.line_id]));
                }
            }
            DiscrepancyKind::MissingInStatement => {
                prop_assert!(line.is_none());
                prop_assert_eq!(d.transaction_ids.len(), 1);
                let item = item_by_id[&d.transaction_ids[0]];
                prop_assert!(item.booked < cutoff);
                prop_assert_eq!((d.expected, d.actual), (Some(item.amount), None));
                prop_assert_eq!(&d.currency, &item.currency);
            }
            DiscrepancyKind::AmountMismatch | DiscrepancyKind::CurrencyMismatch => {
                let line = line.unwrap();
                prop_assert_eq!(d.transaction_ids.len(), 1);
                let item = item_by_id[&d.transaction_ids[0]];
                prop_assert!(reference(&line.reference).is_some());
                prop_assert_eq!(reference(&line.reference), reference(&item.reference));
                prop_assert_eq!(
                    (d.expected, d.actual),
                    (Some(item.amount), Some(line.amount))
                );
                if d.kind == DiscrepancyKind::AmountMismatch {
                    prop_assert_eq!(&line.currency, &item.currency);
                    prop_assert_ne!(line.amount, item.amount);
                } else {
                    prop_assert_ne!(&line.currency, &item.currency);
                }
            }
            DiscrepancyKind::DuplicateInStatement => {
                let line = line.unwrap();
                let original = outcome.matches.iter().find(|m| {
                    m.transaction_ids == d.transaction_ids
                        && same_entry(line, line_by_id[&m.line_id])
                });
                prop_assert!(original.is_some(), "duplicate of nothing: {:?}", d);
                prop_assert!(!match_by_line.contains_key(&line.id));
            }
        }
    }
    for id in &outcome.pending_ledger {
        prop_assert!(item_by_id[id].booked >= cutoff);
    }

    // Nothing left that a pass would still have paired.
    let open_lines: Vec<&StatementLine> = outcome
        .discrepancies
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                DiscrepancyKind::MissingInLedger | DiscrepancyKind::DuplicateInStatement
            )
        })
        .map(|d| line_by_id[&d.line_id.unwrap()])
        .collect();
    let open_items: Vec<&LedgerItem> = outcome
        .discrepancies
        .iter()
        .filter(|d| d.kind == DiscrepancyKind::MissingInStatement)
        .flat_map(|d| &d.transaction_ids)
        .chain(&outcome.pending_ledger)
        .map(|id| item_by_id[id])
        .collect();
    for line in &open_lines {
        for item in &open_items {
            let distance = (line.booked - item.booked).num_days().unsigned_abs();
            prop_assert!(
                !(line.amount == item.amount
                    && line.currency == item.currency
                    && distance <= u64::from(config.date_drift_days)),
                "line {} and posting {} were left unpaired",
                line.id,
                item.transaction_id
            );
            prop_assert!(
                reference(&line.reference).is_none()
                    || reference(&line.reference) != reference(&item.reference),
                "line {} and posting {} share a reference but were left unpaired",
                line.id,
                item.transaction_id
            );
        }
    }

    // Sorted as documented.
    prop_assert!(outcome.matches.is_sorted_by_key(|m| m.line_id));
    prop_assert!(outcome.discrepancies.is_sorted_by_key(|d| (
        d.kind,
        d.line_id,
        d.transaction_ids.first().copied()
    )));
    prop_assert!(outcome.pending_ledger.is_sorted());

    let summary = summarize(outcome).unwrap();
    prop_assert_eq!(summary.matched_lines, outcome.matches.len());
    prop_assert_eq!(
        summary.matched_ledger_items,
        outcome
            .matches
            .iter()
            .map(|m| m.transaction_ids.len())
            .sum::<usize>()
    );
    prop_assert_eq!(
        summary.by_kind.iter().map(|k| k.count).sum::<usize>(),
        outcome.discrepancies.len()
    );
    Ok(())
}

/// The order in which competing pairs are taken: date distance, then the line (booked, external
/// id, id), then the posting (booked, transaction id).
type PairKey<'a> = (u64, NaiveDate, &'a str, i64, NaiveDate, Uuid);

fn pair_key<'a>(line: &'a StatementLine, item: &LedgerItem) -> PairKey<'a> {
    (
        (line.booked - item.booked).num_days().unsigned_abs(),
        line.booked,
        &line.external_id,
        line.id,
        item.booked,
        item.transaction_id,
    )
}

/// `chosen` must be what taking the candidate pairs greedily in `pair_key` order gives. That result
/// is the only one-to-one choice of candidates in which every candidate left out shares its line or
/// its posting with a chosen pair that comes earlier, which is what this checks.
fn check_greedy(
    step: &str,
    lines: &[&StatementLine],
    items: &[&LedgerItem],
    candidate: impl Fn(&StatementLine, &LedgerItem) -> bool,
    chosen: &[(i64, Uuid)],
) -> Result<(), TestCaseError> {
    let line_by_id: HashMap<i64, &StatementLine> = lines.iter().map(|l| (l.id, *l)).collect();
    let item_by_id: HashMap<Uuid, &LedgerItem> =
        items.iter().map(|i| (i.transaction_id, *i)).collect();
    let mut by_line = HashMap::new();
    let mut by_item = HashMap::new();
    for &(line_id, tid) in chosen {
        let (line, item) = (line_by_id[&line_id], item_by_id[&tid]);
        prop_assert!(candidate(line, item), "{}: chose a non-candidate", step);
        prop_assert!(by_line.insert(line_id, pair_key(line, item)).is_none());
        prop_assert!(by_item.insert(tid, pair_key(line, item)).is_none());
    }
    for line in lines {
        for item in items {
            if !candidate(line, item) || chosen.contains(&(line.id, item.transaction_id)) {
                continue;
            }
            let key = pair_key(line, item);
            let beaten = by_line.get(&line.id).is_some_and(|k| *k < key)
                || by_item.get(&item.transaction_id).is_some_and(|k| *k < key);
            prop_assert!(
                beaten,
                "{}: line {} and posting {} should have paired",
                step,
                line.id,
                item.transaction_id
            );
        }
    }
    Ok(())
}

/// Replays the passes' choices from the outcome: exact reference pairs, payout batches and reference
/// mismatches must each be exactly the greedy choice among the lines and postings that reached that
/// step; amount-and-date pairs must be a maximum matching.
fn check_pass_choices(
    lines: &[StatementLine],
    items: &[LedgerItem],
    config: &MatchConfig,
    outcome: &MatchOutcome,
) -> Result<(), TestCaseError> {
    let rule_of: HashMap<i64, MatchRule> = outcome
        .matches
        .iter()
        .map(|m| (m.line_id, m.rule))
        .collect();
    let mut item_rule: HashMap<Uuid, MatchRule> = HashMap::new();
    for m in &outcome.matches {
        for id in &m.transaction_ids {
            item_rule.insert(*id, m.rule);
        }
    }
    let pairs_of = |rule: MatchRule| -> Vec<(i64, Uuid)> {
        outcome
            .matches
            .iter()
            .filter(|m| m.rule == rule)
            .map(|m| (m.line_id, m.transaction_ids[0]))
            .collect()
    };
    let carried: HashSet<&str> = items
        .iter()
        .filter_map(|i| reference(&i.reference))
        .collect();
    let same_reference = |l: &StatementLine, i: &LedgerItem| {
        reference(&l.reference).is_some() && reference(&l.reference) == reference(&i.reference)
    };
    let same_money =
        |l: &StatementLine, i: &LedgerItem| l.amount == i.amount && l.currency == i.currency;

    // (1a) every line and posting under a shared reference competes for exact pairs.
    let referenced_lines: Vec<&StatementLine> = lines
        .iter()
        .filter(|l| reference(&l.reference).is_some_and(|r| carried.contains(r)))
        .collect();
    let referenced_items: Vec<&LedgerItem> = items
        .iter()
        .filter(|i| reference(&i.reference).is_some())
        .collect();
    check_greedy(
        "reference",
        &referenced_lines,
        &referenced_items,
        |l, i| same_reference(l, i) && same_money(l, i),
        &pairs_of(MatchRule::Reference),
    )?;

    // (1b) a batch takes every open posting of its reference and currency, and the first line
    // (by booked, external id, id) whose amount is their sum gets them.
    let after_exact_lines: Vec<&StatementLine> = referenced_lines
        .iter()
        .copied()
        .filter(|l| rule_of.get(&l.id) != Some(&MatchRule::Reference))
        .collect();
    let after_exact_items: Vec<&LedgerItem> = referenced_items
        .iter()
        .copied()
        .filter(|i| item_rule.get(&i.transaction_id) != Some(&MatchRule::Reference))
        .collect();
    let mut pools: HashMap<(&str, &str), Vec<&LedgerItem>> = HashMap::new();
    for item in &after_exact_items {
        pools
            .entry((reference(&item.reference).unwrap(), item.currency.as_str()))
            .or_default()
            .push(item);
    }
    let mut expected_batches: Vec<(i64, Vec<Uuid>)> = Vec::new();
    for ((r, currency), pool) in &pools {
        let sum: Decimal = pool.iter().map(|i| i.amount).sum();
        let first = after_exact_lines
            .iter()
            .filter(|l| reference(&l.reference) == Some(*r) && l.currency == *currency)
            .filter(|l| l.amount == sum)
            .min_by_key(|l| (l.booked, &l.external_id, l.id));
        if let Some(line) = first.filter(|_| pool.len() >= 2) {
            let mut ids: Vec<Uuid> = pool.iter().map(|i| i.transaction_id).collect();
            ids.sort();
            expected_batches.push((line.id, ids));
        }
    }
    expected_batches.sort();
    let batches: Vec<(i64, Vec<Uuid>)> = outcome
        .matches
        .iter()
        .filter(|m| m.rule == MatchRule::Batch)
        .map(|m| (m.line_id, m.transaction_ids.clone()))
        .collect();
    prop_assert_eq!(batches, expected_batches);

    // (1c) what is left under each reference pairs up as mismatches, closest first, any amount.
    let settled = |rule: Option<&MatchRule>| {
        matches!(rule, Some(MatchRule::Reference) | Some(MatchRule::Batch))
    };
    let mismatch_lines: Vec<&StatementLine> = referenced_lines
        .iter()
        .copied()
        .filter(|l| !settled(rule_of.get(&l.id)))
        .collect();
    let mismatch_items: Vec<&LedgerItem> = referenced_items
        .iter()
        .copied()
        .filter(|i| !settled(item_rule.get(&i.transaction_id)))
        .collect();
    let mismatches: Vec<(i64, Uuid)> = outcome
        .discrepancies
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                DiscrepancyKind::AmountMismatch | DiscrepancyKind::CurrencyMismatch
            )
        })
        .map(|d| (d.line_id.unwrap(), d.transaction_ids[0]))
        .collect();
    check_greedy(
        "mismatch",
        &mismatch_lines,
        &mismatch_items,
        same_reference,
        &mismatches,
    )?;

    // (2) everything the reference pass left competes on amount, currency and date.
    let mismatched_lines: HashSet<i64> = mismatches.iter().map(|m| m.0).collect();
    let mismatched_items: HashSet<Uuid> = mismatches.iter().map(|m| m.1).collect();
    let open_lines: Vec<&StatementLine> = lines
        .iter()
        .filter(|l| !settled(rule_of.get(&l.id)) && !mismatched_lines.contains(&l.id))
        .collect();
    let open_items: Vec<&LedgerItem> = items
        .iter()
        .filter(|i| {
            !settled(item_rule.get(&i.transaction_id))
                && !mismatched_items.contains(&i.transaction_id)
        })
        .collect();
    let drift = u64::from(config.date_drift_days);
    check_maximum(
        "amount and date",
        &open_lines,
        &open_items,
        |l, i| same_money(l, i) && (l.booked - i.booked).num_days().unsigned_abs() <= drift,
        &pairs_of(MatchRule::AmountAndDate),
    )?;
    Ok(())
}

/// The amount-and-date step matches as many pairs as can be matched (closest first wherever that
/// costs no match): its pairs are candidates, one to one, and as many as a maximum matching has
/// (computed here independently, by Kuhn's algorithm over every candidate pair).
fn check_maximum(
    step: &str,
    lines: &[&StatementLine],
    items: &[&LedgerItem],
    candidate: impl Fn(&StatementLine, &LedgerItem) -> bool,
    chosen: &[(i64, Uuid)],
) -> Result<(), TestCaseError> {
    let line_ids: HashSet<i64> = lines.iter().map(|l| l.id).collect();
    let item_ids: HashSet<Uuid> = items.iter().map(|i| i.transaction_id).collect();
    let mut seen_lines = HashSet::new();
    let mut seen_items = HashSet::new();
    for (line_id, tid) in chosen {
        prop_assert!(
            line_ids.contains(line_id) && item_ids.contains(tid),
            "{}: chose outside the step",
            step
        );
        let line = lines.iter().find(|l| l.id == *line_id).unwrap();
        let item = items.iter().find(|i| i.transaction_id == *tid).unwrap();
        prop_assert!(candidate(line, item), "{}: chose a non-candidate", step);
        prop_assert!(
            seen_lines.insert(*line_id) && seen_items.insert(*tid),
            "{}: not one to one",
            step
        );
    }
    let edges: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| {
            (0..items.len())
                .filter(|&q| candidate(l, items[q]))
                .collect()
        })
        .collect();
    fn kuhn(
        p: usize,
        edges: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &q in &edges[p] {
            if !seen[q] {
                seen[q] = true;
                if owner[q].is_none_or(|o| kuhn(o, edges, seen, owner)) {
                    owner[q] = Some(p);
                    return true;
                }
            }
        }
        false
    }
    let mut owner = vec![None; items.len()];
    let mut maximum = 0;
    for p in 0..lines.len() {
        let mut seen = vec![false; items.len()];
        if kuhn(p, &edges, &mut seen, &mut owner) {
            maximum += 1;
        }
    }
    prop_assert_eq!(
        chosen.len(),
        maximum,
        "{}: fewer pairs than a maximum matching",
        step
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn permuting_the_inputs_gives_the_identical_outcome(
        lines in dense_lines(),
        items in dense_items(),
        config in small_config(),
        seeds in any::<(u64, u64)>(),
    ) {
        let outcome = match_statement_lines(&lines, &items, &config);
        let (mut lines, mut items) = (lines, items);
        shuffle(&mut lines, seeds.0);
        shuffle(&mut items, seeds.1);
        prop_assert_eq!(&match_statement_lines(&lines, &items, &config), &outcome);
        lines.reverse();
        items.reverse();
        prop_assert_eq!(&match_statement_lines(&lines, &items, &config), &outcome);
    }

    #[test]
    fn every_line_and_posting_is_accounted_for_exactly_once(
        lines in dense_lines(),
        items in dense_items(),
        config in small_config(),
    ) {
        let outcome = match_statement_lines(&lines, &items, &config);
        check_accounting(&lines, &items, &config, &outcome)?;
    }

    #[test]
    fn every_step_makes_the_greedy_choice(
        lines in dense_lines(),
        items in dense_items(),
        config in small_config(),
    ) {
        let outcome = match_statement_lines(&lines, &items, &config);
        check_pass_choices(&lines, &items, &config, &outcome)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Clean data with planted problems. Every posting amount has its own magnitude (a distinct
// million-cent band per posting), so no two unrelated amounts can coincide; the near misses are
// planted on purpose and their pairing is known.

/// What happens to one ordinary transfer's statement line.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Clean,
    /// No line: the posting is missing in the statement (or pending inside the grace period).
    Dropped,
    /// Line under the posting's reference with another amount.
    AmountChanged,
    /// Line under the posting's reference in another currency.
    CurrencyChanged,
    /// The line appears twice under two external ids.
    Duplicated,
}

#[derive(Clone, Debug)]
struct TransferSpec {
    band_offset: u32,
    negative: bool,
    booked: i64,
    tid_high: u64,
    item_has_reference: bool,
    /// 0: the posting's reference (if any), 1: none, 2: a bank reference nobody carries.
    line_reference: u8,
    shift: i64,
    fate: Fate,
    amount_delta: i64,
}

fn transfer_spec() -> impl Strategy<Value = TransferSpec> {
    let fate = prop_oneof![
        8 => Just(Fate::Clean),
        2 => Just(Fate::Dropped),
        1 => Just(Fate::AmountChanged),
        1 => Just(Fate::CurrencyChanged),
        1 => Just(Fate::Duplicated),
    ];
    (
        (0u32..1_000_000, any::<bool>(), 0i64..=40, any::<u64>()),
        (any::<bool>(), 0u8..3, -10i64..=10, fate),
        prop_oneof![-1000i64..=-1, 1i64..=1000],
    )
        .prop_map(
            |(
                (band_offset, negative, booked, tid_high),
                (item_has_reference, line_reference, shift, fate),
                amount_delta,
            )| TransferSpec {
                band_offset,
                negative,
                booked,
                tid_high,
                item_has_reference,
                line_reference,
                shift,
                fate,
                amount_delta,
            },
        )
}

#[derive(Clone, Debug)]
struct BatchSpec {
    /// (band offset, booked day, tid high bits) per member
    members: Vec<(u32, i64, u64)>,
    negative: bool,
    line_delay: i64,
    /// Off by one cent: an amount mismatch with the closest member, the others unmatched.
    broken: bool,
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        prop::collection::vec((0u32..1_000_000, 0i64..=40, any::<u64>()), 2..=4),
        any::<bool>(),
        0i64..=3,
        prop::bool::weighted(0.3),
    )
        .prop_map(|(members, negative, line_delay, broken)| BatchSpec {
            members,
            negative,
            line_delay,
            broken,
        })
}

/// A planted near miss: two postings and two lines of one amount, same day (twins) or adjacent days.
#[derive(Clone, Debug)]
struct PairSpec {
    band_offset: u32,
    negative: bool,
    booked: i64,
    adjacent: bool,
    tid_highs: (u64, u64),
}

fn pair_spec() -> impl Strategy<Value = PairSpec> {
    (
        0u32..1_000_000,
        any::<bool>(),
        0i64..=39,
        any::<bool>(),
        any::<(u64, u64)>(),
    )
        .prop_map(
            |(band_offset, negative, booked, adjacent, tid_highs)| PairSpec {
                band_offset,
                negative,
                booked,
                adjacent,
                tid_highs,
            },
        )
}

#[derive(Clone, Debug)]
struct Scenario {
    transfers: Vec<TransferSpec>,
    batches: Vec<BatchSpec>,
    pairs: Vec<PairSpec>,
    /// (band offset, negative, booked, with a bank reference)
    extra_lines: Vec<(u32, bool, i64, bool)>,
    drift: u32,
    grace: u32,
    seeds: (u64, u64),
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(transfer_spec(), 0..60),
        prop::collection::vec(batch_spec(), 0..4),
        prop::collection::vec(pair_spec(), 0..4),
        prop::collection::vec(
            (0u32..1_000_000, any::<bool>(), 0i64..=40, any::<bool>()),
            0..6,
        ),
        (1u32..=4, 0u32..=6, any::<(u64, u64)>()),
    )
        .prop_map(
            |(transfers, batches, pairs, extra_lines, (drift, grace, seeds))| Scenario {
                transfers,
                batches,
                pairs,
                extra_lines,
                drift,
                grace,
                seeds,
            },
        )
}

type Finding = (
    DiscrepancyKind,
    Option<i64>,
    Vec<Uuid>,
    Option<Decimal>,
    Option<Decimal>,
    String,
);

fn finding(d: &Discrepancy) -> Finding {
    (
        d.kind,
        d.line_id,
        d.transaction_ids.clone(),
        d.expected,
        d.actual,
        d.currency.clone(),
    )
}

/// The data of a scenario and the outcome it must produce.
struct Planted {
    lines: Vec<StatementLine>,
    items: Vec<LedgerItem>,
    config: MatchConfig,
    matches: Vec<Match>,
    findings: Vec<Finding>,
    pending: Vec<Uuid>,
}

struct Builder {
    planted: Planted,
    next_band: u64,
    next_line: i64,
    cutoff: NaiveDate,
}

impl Builder {
    /// An amount in a million-cent band of its own (so never equal to another band's amount).
    fn amount(&mut self, offset: u32, negative: bool) -> Decimal {
        self.next_band += 1;
        let cents = (self.next_band * 1_000_000 + u64::from(offset)) as i64;
        Decimal::new(if negative { -cents } else { cents }, 2)
    }

    fn tid(&self, high: u64) -> Uuid {
        Uuid::from_u128((u128::from(high) << 64) | u128::from(self.next_band))
    }

    fn item(&mut self, tid: Uuid, amount: Decimal, booked: i64, reference: Option<String>) {
        self.planted.items.push(LedgerItem {
            transaction_id: tid,
            amount,
            currency: "USD".into(),
            booked: day(booked),
            reference,
        });
    }

    fn line(&mut self, amount: Decimal, booked: i64, reference: Option<String>) -> i64 {
        self.next_line += 1;
        let id = self.next_line;
        self.planted.lines.push(StatementLine {
            id,
            external_id: format!("S{id:06}"),
            amount,
            currency: "USD".into(),
            booked: day(booked),
            reference,
        });
        id
    }

    fn expect_match(&mut self, line_id: i64, mut tids: Vec<Uuid>, rule: MatchRule) {
        tids.sort();
        self.planted.matches.push(Match {
            line_id,
            transaction_ids: tids,
            rule,
        });
    }

    /// A posting nobody claims: missing once past the grace period, pending before.
    fn expect_unclaimed(&mut self, tid: Uuid, amount: Decimal, booked: i64) {
        if day(booked) < self.cutoff {
            self.planted.findings.push((
                DiscrepancyKind::MissingInStatement,
                None,
                vec![tid],
                Some(amount),
                None,
                "USD".into(),
            ));
        } else {
            self.planted.pending.push(tid);
        }
    }
}

fn plant(scenario: &Scenario) -> Planted {
    let window_end = day(40);
    let config = MatchConfig {
        date_drift_days: scenario.drift,
        grace_days: scenario.grace,
        window_end,
    };
    let mut b = Builder {
        planted: Planted {
            lines: Vec::new(),
            items: Vec::new(),
            config,
            matches: Vec::new(),
            findings: Vec::new(),
            pending: Vec::new(),
        },
        next_band: 0,
        next_line: 0,
        cutoff: window_end - Days::new(u64::from(scenario.grace)),
    };
    let drift = i64::from(scenario.drift);

    for (k, spec) in scenario.transfers.iter().enumerate() {
        let amount = b.amount(spec.band_offset, spec.negative);
        let tid = b.tid(spec.tid_high);
        let fate = spec.fate;
        let needs_reference = matches!(fate, Fate::AmountChanged | Fate::CurrencyChanged);
        let item_reference = (spec.item_has_reference || needs_reference).then(|| format!("T{k}"));
        b.item(tid, amount, spec.booked, item_reference.clone());
        if let Fate::Dropped = fate {
            b.expect_unclaimed(tid, amount, spec.booked);
            continue;
        }
        let next_id = b.next_line + 1;
        let line_reference = match (spec.line_reference, &item_reference) {
            _ if needs_reference => item_reference.clone(),
            (0, Some(_)) => item_reference.clone(),
            (2, _) => Some(format!("BANK-{next_id}")),
            _ => None,
        };
        let by_reference = line_reference.is_some() && line_reference == item_reference;
        // Matched by reference, any date will do; by amount, stay within the drift.
        let shift = if by_reference {
            spec.shift
        } else {
            spec.shift % (drift + 1)
        };
        let booked = spec.booked + shift;
        match fate {
            Fate::AmountChanged => {
                let changed = amount + Decimal::new(spec.amount_delta, 2);
                let id = b.line(changed, booked, line_reference);
                b.planted.findings.push((
                    DiscrepancyKind::AmountMismatch,
                    Some(id),
                    vec![tid],
                    Some(amount),
                    Some(changed),
                    "USD".into(),
                ));
            }
            Fate::CurrencyChanged => {
                let id = b.line(amount, booked, line_reference);
                b.planted.lines.last_mut().unwrap().currency = "EUR".into();
                b.planted.findings.push((
                    DiscrepancyKind::CurrencyMismatch,
                    Some(id),
                    vec![tid],
                    Some(amount),
                    Some(amount),
                    "USD".into(),
                ));
            }
            Fate::Clean | Fate::Duplicated => {
                let rule = if by_reference {
                    MatchRule::Reference
                } else {
                    MatchRule::AmountAndDate
                };
                let id = b.line(amount, booked, line_reference.clone());
                b.expect_match(id, vec![tid], rule);
                if let Fate::Duplicated = fate {
                    let repeat = b.line(amount, booked, line_reference);
                    // Sorts after the original ("S000007" < "S000007-dup"), so the original matches.
                    let original = format!("S{id:06}");
                    b.planted.lines.last_mut().unwrap().external_id = format!("{original}-dup");
                    b.planted.findings.push((
                        DiscrepancyKind::DuplicateInStatement,
                        Some(repeat),
                        vec![tid],
                        None,
                        Some(amount),
                        "USD".into(),
                    ));
                }
            }
            Fate::Dropped => unreachable!(),
        }
    }

    for (n, batch) in scenario.batches.iter().enumerate() {
        let reference = format!("PAYOUT-{n}");
        let mut members = Vec::new();
        for &(offset, booked, high) in &batch.members {
            let amount = b.amount(offset, batch.negative);
            let tid = b.tid(high);
            b.item(tid, amount, booked, Some(reference.clone()));
            members.push((tid, amount, booked));
        }
        let sum: Decimal = members.iter().map(|m| m.1).sum();
        let last = members.iter().map(|m| m.2).max().unwrap();
        let booked = last + batch.line_delay;
        if batch.broken {
            let off = sum + Decimal::new(1, 2);
            let id = b.line(off, booked, Some(reference));
            // Closest day, then the earlier day, then the smaller transaction id.
            let closest = *members
                .iter()
                .min_by_key(|m| ((booked - m.2).abs(), m.2, m.0))
                .unwrap();
            b.planted.findings.push((
                DiscrepancyKind::AmountMismatch,
                Some(id),
                vec![closest.0],
                Some(closest.1),
                Some(off),
                "USD".into(),
            ));
            for &(tid, amount, booked) in members.iter().filter(|m| m.0 != closest.0) {
                b.expect_unclaimed(tid, amount, booked);
            }
        } else {
            let id = b.line(sum, booked, Some(reference));
            b.expect_match(id, members.iter().map(|m| m.0).collect(), MatchRule::Batch);
        }
    }

    for pair in &scenario.pairs {
        let amount = b.amount(pair.band_offset, pair.negative);
        let first = b.tid(pair.tid_highs.0);
        // The same band with a flag bit set: distinct from every other transaction id.
        let second = Uuid::from_u128(
            (u128::from(pair.tid_highs.1) << 64) | u128::from(b.next_band) | (1 << 62),
        );
        let second_day = pair.booked + i64::from(pair.adjacent);
        b.item(first, amount, pair.booked, None);
        b.item(second, amount, second_day, None);
        // Lines listed in the opposite order to the postings.
        let later = b.line(amount, second_day, None);
        let earlier = b.line(amount, pair.booked, None);
        if pair.adjacent {
            // Each line takes the posting of its own day.
            b.expect_match(earlier, vec![first], MatchRule::AmountAndDate);
            b.expect_match(later, vec![second], MatchRule::AmountAndDate);
        } else {
            // Same day: the line first by external id takes the smaller transaction id.
            let (low, high) = (first.min(second), first.max(second));
            b.expect_match(later.min(earlier), vec![low], MatchRule::AmountAndDate);
            b.expect_match(later.max(earlier), vec![high], MatchRule::AmountAndDate);
        }
    }

    for (j, &(offset, negative, booked, with_reference)) in scenario.extra_lines.iter().enumerate()
    {
        // Bands far above every posting's.
        let cents = ((1_000_000 + j as i64) * 1_000_000) + i64::from(offset);
        let amount = Decimal::new(if negative { -cents } else { cents }, 2);
        let id = b.line(amount, booked, with_reference.then(|| format!("BANK-X{j}")));
        b.planted.findings.push((
            DiscrepancyKind::MissingInLedger,
            Some(id),
            vec![],
            None,
            Some(amount),
            "USD".into(),
        ));
    }

    let mut planted = b.planted;
    planted.matches.sort_by_key(|m| m.line_id);
    planted.findings.sort();
    planted.pending.sort();
    shuffle(&mut planted.lines, scenario.seeds.0);
    shuffle(&mut planted.items, scenario.seeds.1);
    planted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn planted_discrepancies_are_found_exactly(scenario in scenario()) {
        let planted = plant(&scenario);
        let outcome = match_statement_lines(&planted.lines, &planted.items, &planted.config);

        let mut findings: Vec<Finding> = outcome.discrepancies.iter().map(finding).collect();
        findings.sort();
        prop_assert_eq!(&findings, &planted.findings, "discrepancies");
        prop_assert_eq!(&outcome.matches, &planted.matches, "matches");
        prop_assert_eq!(&outcome.pending_ledger, &planted.pending, "pending");
        check_accounting(&planted.lines, &planted.items, &planted.config, &outcome)?;
        check_pass_choices(&planted.lines, &planted.items, &planted.config, &outcome)?;

        let counted: BTreeMap<DiscrepancyKind, usize> = summarize(&outcome)
            .unwrap()
            .by_kind
            .iter()
            .map(|k| (k.kind, k.count))
            .collect();
        for kind in DiscrepancyKind::ALL {
            let planted_count = planted.findings.iter().filter(|f| f.0 == kind).count();
            prop_assert_eq!(counted[&kind], planted_count);
        }
    }
}

/// Every kind is planted somewhere in one fixed scenario, so the property above cannot pass by
/// generating only easy cases.
#[test]
fn a_fixed_scenario_plants_every_kind() {
    let transfer = |fate, item_has_reference, line_reference, booked| TransferSpec {
        band_offset: 4242,
        negative: false,
        booked,
        tid_high: 7,
        item_has_reference,
        line_reference,
        shift: 1,
        fate,
        amount_delta: 5,
    };
    let scenario = Scenario {
        transfers: vec![
            transfer(Fate::Clean, true, 0, 3),
            transfer(Fate::Clean, true, 1, 4),
            transfer(Fate::Clean, false, 2, 5),
            transfer(Fate::Dropped, false, 1, 6),
            transfer(Fate::Dropped, false, 1, 39),
            transfer(Fate::AmountChanged, true, 0, 7),
            transfer(Fate::CurrencyChanged, true, 0, 8),
            transfer(Fate::Duplicated, false, 1, 9),
            transfer(Fate::Duplicated, true, 0, 10),
        ],
        batches: vec![
            BatchSpec {
                members: vec![(1, 2, 3), (4, 5, 6), (7, 8, 9)],
                negative: false,
                line_delay: 2,
                broken: false,
            },
            BatchSpec {
                members: vec![(1, 2, 3), (4, 5, 6)],
                negative: true,
                line_delay: 1,
                broken: true,
            },
        ],
        pairs: vec![
            PairSpec {
                band_offset: 10,
                negative: false,
                booked: 12,
                adjacent: true,
                tid_highs: (1, 2),
            },
            PairSpec {
                band_offset: 11,
                negative: true,
                booked: 13,
                adjacent: false,
                tid_highs: (3, 4),
            },
        ],
        extra_lines: vec![(5, false, 14, true), (6, true, 15, false)],
        drift: 2,
        grace: 3,
        seeds: (1, 2),
    };
    let planted = plant(&scenario);
    for kind in DiscrepancyKind::ALL {
        assert!(
            planted.findings.iter().any(|f| f.0 == kind),
            "{kind:?} not planted"
        );
    }
    assert_eq!(planted.pending.len(), 1);
    for rule in MatchRule::ALL {
        assert!(planted.matches.iter().any(|m| m.rule == rule), "{rule:?}");
    }
    let outcome = match_statement_lines(&planted.lines, &planted.items, &planted.config);
    let mut findings: Vec<Finding> = outcome.discrepancies.iter().map(finding).collect();
    findings.sort();
    assert_eq!(findings, planted.findings);
    assert_eq!(outcome.matches, planted.matches);
    assert_eq!(outcome.pending_ledger, planted.pending);
}
