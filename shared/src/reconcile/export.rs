//! Report exports. A CSV cell that a spreadsheet would read as a formula is neutralised (OWASP
//! "CSV injection"): statement lines carry text the account holder's bank, or anyone who can get a
//! payment reference onto a statement, chose.

use std::borrow::Cow;

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
