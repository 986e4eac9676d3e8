//! No input reaches a panic: parsers, money rules, matching, report totals, adjustments and posting
//! rules on extreme values (the largest and smallest decimals, every scale, out-of-range dates,
//! NUL and control characters). With `panic = "abort"` a panic would kill the whole container, so
//! these properties only ever call the code and check what it answers.

use std::collections::HashMap;

use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;
use shared::accounts::OverdraftLimit;
use shared::ledger::{self, Decision, LockedAccount};
use shared::money::{self, Currency, MAX_AMOUNT};
use shared::reconcile::findings::FindingKind;
use shared::reconcile::statements::{self, ParseOptions, StatementFormat};
use shared::reconcile::workflow;
use shared::reconcile::{LedgerItem, MatchConfig, StatementLine, match_statement_lines, summarize};
use shared::transfers::{IdempotencyKey, TransferDraft, TransferMessage};
use uuid::Uuid;

/// Any decimal, weighted towards the edges: MAX, MIN, the ceiling, every scale, tiny values.
fn extreme_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(MAX_AMOUNT),
        Just(-MAX_AMOUNT),
        Just(Decimal::ZERO),
        Just(Decimal::new(1, 28)),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            0u32..=28
        )
            .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
        (any::<i64>(), 0u32..=10).prop_map(|(n, scale)| Decimal::new(n, scale)),
    ]
}

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "CLF", "BHD"])
        .prop_map(|c| Currency::parse(c).unwrap())
}

/// Text that looks like an amount, and text that does not.
fn amount_text() -> impl Strategy<Value = String> {
    prop_oneof![
        extreme_decimal().prop_map(|d| d.to_string()),
        "-?[0-9]{1,40}(\\.[0-9]{0,40})?",
        "[0-9eE+\\-.,]{0,20}",
        any::<String>(),
    ]
}

/// Dates as statements write them: valid, out of range, malformed.
fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (1900i32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        Just("0000-01-01".to_string()),
        Just("-5000-01-01".to_string()),
        Just("+200000-01-01".to_string()),
        Just("262143-12-31".to_string()),
        "[0-9+\\-T:Z]{0,24}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        Just("nul\u{0}inside".to_string()),
        Just("=HYPERLINK(\"x\")".to_string()),
        "\\PC{0,8}",
    ]
}

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(n as u64)
}

fn csv_cell(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn check_parsed(lines: &[Result<statements::ParsedLine, statements::LineError>]) {
    for line in lines.iter().flatten() {
        assert!(line.amount.abs() <= MAX_AMOUNT, "{line:?}");
        assert!(!line.amount.is_zero());
        assert_eq!(line.amount.scale(), line.currency.minor_units(), "{line:?}");
        assert!(shared::validation::date_in_range(line.booked), "{line:?}");
        for t in [&line.reference, &line.description].into_iter().flatten() {
            assert!(!t.contains('\0'));
        }
        assert!(!line.external_id.contains('\0'));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn money_rules_answer_every_decimal_without_losing_digits(d in extreme_decimal(), c in currency()) {
        match money::at_currency_scale(d, c, "amount") {
            Ok(scaled) => {
                prop_assert_eq!(scaled, d, "same value");
                prop_assert_eq!(scaled.scale(), c.minor_units());
                prop_assert!(scaled.abs() <= MAX_AMOUNT);
            }
            Err(e) => prop_assert!(
                ["amount_scale_exceeded", "amount_too_large"].contains(&e.code),
                "{}", e.code
            ),
        }
        let _ = money::Money::positive(d, c, MAX_AMOUNT, "amount");
        let _ = money::format_amount(d, c.code());
        let _ = OverdraftLimit::parse(&d.to_string(), c, "overdraftLimit");
    }

    #[test]
    fn amount_text_parses_or_is_refused(t in amount_text()) {
        let _ = money::parse_decimal_str(&t, "amount");
        let _ = money::parse_decimal_json_number(&t, "amount");
    }

    #[test]
    fn csv_statements_with_extreme_cells_never_panic(
        rows in prop::collection::vec((text(), date_text(), amount_text(), text(), text()), 0..8),
    ) {
        let mut csv = String::from("id,booked_date,amount,currency,reference,description\n");
        for (id, date, amount, reference, description) in &rows {
            csv.push_str(&format!(
                "{},{},{},USD,{},{}\n",
                csv_cell(id), csv_cell(date), csv_cell(amount), csv_cell(reference), csv_cell(description)
            ));
        }
        if let Ok(lines) = statements::parse_statement(csv.as_bytes(), StatementFormat::Csv, &ParseOptions::default()) {
            check_parsed(&lines);
        }
    }

    #[test]
    fn json_statements_with_extreme_values_never_panic(
        rows in prop::collection::vec((text(), date_text(), amount_text(), any::<bool>(), text()), 0..8),
    ) {
        let lines: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, date, amount, as_number, reference)| {
                let amount = if *as_number {
                    serde_json::from_str::<serde_json::Value>(amount).unwrap_or(serde_json::json!(amount))
                } else {
                    serde_json::json!(amount)
                };
                serde_json::json!({"id": id, "bookedDate": date, "amount": amount, "currency": "JPY", "reference": reference})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"lines": lines})).unwrap();
        if let Ok(parsed) = statements::parse_statement(&body, StatementFormat::Json, &ParseOptions::default()) {
            check_parsed(&parsed);
        }
    }

    #[test]
    fn camt_statements_with_extreme_amounts_never_panic(
        entries in prop::collection::vec((amount_text(), date_text(), any::<bool>(), text()), 0..5),
    ) {
        let mut xml = String::from(r#"<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt><Id>s</Id>"#);
        for (i, (amount, date, credit, reference)) in entries.iter().enumerate() {
            let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('\0', "");
            xml.push_str(&format!(
                r#"<Ntry><NtryRef>e{i}</NtryRef><Amt Ccy="KWD">{}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{}</Dt></BookgDt><NtryDtls><TxDtls><Refs><EndToEndId>{}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"#,
                esc(amount), if *credit { "CRDT" } else { "DBIT" }, esc(date), esc(reference)
            ));
        }
        xml.push_str("</Stmt></BkToCstmrStmt></Document>");
        if let Ok(parsed) = statements::parse_statement(xml.as_bytes(), StatementFormat::Camt053, &ParseOptions::default()) {
            check_parsed(&parsed);
        }
    }

    #[test]
    fn matching_and_report_totals_on_extreme_amounts_answer_or_report_overflow(
        lines in prop::collection::vec((extreme_decimal(), 0i64..5, prop::option::of("[AB]")), 0..10),
        items in prop::collection::vec((extreme_decimal(), 0i64..5, prop::option::of("[AB]")), 0..10),
        drift in 0u32..3,
    ) {
        let lines: Vec<StatementLine> = lines
            .iter()
            .enumerate()
            .filter(|(_, (a, _, _))| !a.is_zero())
            .map(|(i, (amount, d, r))| StatementLine {
                id: i as i64 + 1,
                external_id: format!("l{i}"),
                amount: *amount,
                currency: "USD".into(),
                booked: day(*d),
                reference: r.clone(),
            })
            .collect();
        let items: Vec<LedgerItem> = items
            .iter()
            .enumerate()
            .filter(|(_, (a, _, _))| !a.is_zero())
            .map(|(i, (amount, d, r))| LedgerItem {
                transaction_id: Uuid::from_u128(i as u128 + 1),
                amount: *amount,
                currency: "USD".into(),
                booked: day(*d),
                reference: r.clone(),
            })
            .collect();
        let config = MatchConfig { date_drift_days: drift, grace_days: 1, window_end: day(6) };
        let outcome = match_statement_lines(&lines, &items, &config);
        // Totals either add up exactly or say they overflowed; never a wrapped or saturated sum.
        if let Ok(summary) = summarize(&outcome) {
            for kind in &summary.by_kind {
                for total in &kind.totals {
                    prop_assert!(total.gross >= Decimal::ZERO);
                }
            }
        }
        for d in &outcome.discrepancies {
            let _ = d.amount_at_stake();
            let _ = workflow::adjustment(FindingKind::Statement(d.kind), d.expected, d.actual);
        }
    }

    #[test]
    fn posting_rules_on_extreme_balances_refuse_rather_than_overflow(
        source in extreme_decimal(),
        destination in extreme_decimal(),
        cents in 1i64..i64::MAX,
        unlimited in any::<bool>(),
    ) {
        let amount = Decimal::new(cents, 2).min(MAX_AMOUNT);
        let transfer = TransferDraft {
            source_account_id: "src".into(),
            destination_account_id: "dst".into(),
            amount,
            currency: Currency::parse("USD").unwrap(),
            reference: None,
            description: None,
            metadata: None,
        }
        .validate(MAX_AMOUNT);
        prop_assume!(transfer.is_ok());
        let msg = TransferMessage::new("c", &IdempotencyKey::parse("k", "k").unwrap(), transfer.unwrap());
        let account = |balance, limit| LockedAccount {
            owner_client_id: "c".into(),
            currency: "USD".into(),
            overdraft_limit: limit,
            balance,
            pending: Decimal::ZERO,
        };
        let limit = if unlimited { OverdraftLimit::Unlimited } else { OverdraftLimit::Limited(MAX_AMOUNT) };
        let accounts = HashMap::from([
            ("src".to_string(), account(source, limit)),
            ("dst".to_string(), account(destination, OverdraftLimit::Limited(Decimal::ZERO))),
        ]);
        let mut book = ledger::Book::of_accounts(accounts, chrono::Utc::now());
        match ledger::decide(&msg, &mut book) {
            Decision::Post(d) => {
                let p = &d.postings[0];
                prop_assert_eq!(p.source_balance_after, source - amount);
                prop_assert_eq!(p.destination_balance_after, destination + amount);
            }
            Decision::Reject(code) => prop_assert!(
                ["balance_overflow", "insufficient_funds"].contains(&code.as_str()),
                "{}", code.as_str()
            ),
        }
    }
}
