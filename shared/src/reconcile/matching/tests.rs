use chrono::Days;

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
