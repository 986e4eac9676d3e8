//! Report exports. A CSV cell that a spreadsheet would read as a formula is neutralised (OWASP
//! "CSV injection"): statement lines carry text the account holder's bank, or anyone who can get a
//! payment reference onto a statement, chose.

use std::borrow::Cow;

use uuid::Uuid;

use crate::money::format_amount;
use crate::reconcile::discrepancies::{MatchedPair, StoredDiscrepancy};

/// The characters OWASP lists as starting a formula (or, for tab and CR, hiding one behind
/// whitespace a spreadsheet strips).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell as it may go into a CSV export: a cell that starts with `=`, `+`, `-`, `@`, tab or CR
/// gets a leading `'`, so spreadsheets show it as text instead of evaluating it. A cell that is
/// entirely a decimal number (`-12.50`, `+3`) is left as it is: it cannot be a formula, and
/// negative amounts must stay numbers.
pub fn neutralise_csv_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) && !is_decimal_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The columns of a run's CSV export: one row per match, then one per discrepancy.
pub const RUN_CSV_COLUMNS: [&str; 12] = [
    "item",
    "rule_or_kind",
    "status",
    "statement_line_id",
    "external_id",
    "booked_on",
    "amount",
    "expected",
    "currency",
    "transaction_ids",
    "discrepancy_id",
    "detail",
];

/// A run's report as CSV (`RUN_CSV_COLUMNS`): its matches, then its discrepancies, every cell
/// neutralised against formula injection.
pub fn run_csv(
    matches: &[MatchedPair],
    discrepancies: &[StoredDiscrepancy],
) -> csv::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    write_row(&mut out, &RUN_CSV_COLUMNS)?;
    for m in matches {
        write_row(
            &mut out,
            &[
                "MATCH",
                m.rule.as_str(),
                "MATCHED",
                &m.statement_line_id.to_string(),
                &m.external_id,
                &m.booked_on.to_string(),
                &format_amount(m.amount, &m.currency),
                "",
                &m.currency,
                &m.transaction_id.to_string(),
                "",
                "",
            ],
        )?;
    }
    for d in discrepancies {
        let txs: Vec<String> = d.transaction_ids.iter().map(Uuid::to_string).collect();
        let cur = d.currency.as_deref().unwrap_or("");
        write_row(
            &mut out,
            &[
                "DISCREPANCY",
                d.kind.as_str(),
                d.status.as_str(),
                &d.statement_line_id
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                d.external_id.as_deref().unwrap_or(""),
                &d.booked_on.map(|b| b.to_string()).unwrap_or_default(),
                &d.actual.map(|a| format_amount(a, cur)).unwrap_or_default(),
                &d.expected
                    .map(|a| format_amount(a, cur))
                    .unwrap_or_default(),
                cur,
                &txs.join(" "),
                &d.id.to_string(),
                &d.detail,
            ],
        )?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// One CSV row, every cell neutralised.
fn write_row(out: &mut csv::Writer<Vec<u8>>, cells: &[&str]) -> csv::Result<()> {
    out.write_record(cells.iter().map(|c| neutralise_csv_cell(c).into_owned()))
}

/// `[+-]digits[.digits]`, ASCII only: nothing a spreadsheet can evaluate beyond the number itself.
fn is_decimal_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_csv_starts_with_its_columns() {
        let csv = run_csv(&[], &[]).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            format!("{}\n", RUN_CSV_COLUMNS.join(","))
        );
    }

    #[test]
    fn formula_starts_get_a_quote() {
        for cell in [
            "=HYPERLINK(\"http://evil.example\",\"click\")",
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1+1",
            "\r=1+1",
            "-",
            "+",
            "-.5",
            "-1.",
            "-1e5",
            "-1_000",
            "-١٢",
        ] {
            assert_eq!(neutralise_csv_cell(cell), format!("'{cell}"), "{cell:?}");
        }
    }

    #[test]
    fn numbers_and_plain_text_are_untouched() {
        for cell in [
            "-12.50",
            "+3",
            "-0",
            "1000",
            "12.50",
            "",
            "Payout batch 7",
            "a=b",
            " =1+1",
            "'=1+1",
            "2026-01-31",
            "MATCH",
        ] {
            assert!(
                matches!(neutralise_csv_cell(cell), Cow::Borrowed(c) if c == cell),
                "{cell:?}"
            );
        }
    }
}
