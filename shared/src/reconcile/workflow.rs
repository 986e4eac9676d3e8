//! The exception workflow's rules: which status changes are allowed and what an adjusting transfer
//! for a discrepancy is. Pure.

use rust_decimal::Decimal;

pub const STATUSES: [&str; 4] = ["OPEN", "INVESTIGATING", "RESOLVED", "IGNORED"];

/// The statuses a discrepancy may move to `to` from. RESOLVED and IGNORED are final.
pub fn allowed_from(to: &str) -> &'static [&'static str] {
    match to {
        "INVESTIGATING" => &["OPEN"],
        "RESOLVED" | "IGNORED" => &["OPEN", "INVESTIGATING"],
        _ => &[],
    }
}

/// The internal kinds the scheduled run checks ledger-wide.
pub const INTERNAL_KINDS: [&str; 4] = [
    "UNBALANCED_TRANSACTION",
    "BALANCE_DRIFT",
    "MISSING_LEDGER_ENTRY",
    "DEAD_LETTERED",
];

/// How much an adjusting transfer must move into the account (negative: out of it) so the ledger
/// agrees with the statement, for the kinds an adjustment can answer (`None` also when the
/// difference does not fit in a decimal: no adjustment can carry it).
pub fn adjustment(
    kind: &str,
    expected: Option<Decimal>,
    actual: Option<Decimal>,
) -> Option<Decimal> {
    let amount = match kind {
        // The bank moved money the ledger does not know about (or moved it twice).
        "MISSING_IN_LEDGER" | "DUPLICATE_IN_STATEMENT" => actual?,
        // The ledger has a posting the bank never made.
        "MISSING_IN_STATEMENT" => -expected?,
        // Same payment, different amounts: post the difference.
        "AMOUNT_MISMATCH" => actual?.checked_sub(expected?)?,
        _ => return None,
    };
    (!amount.is_zero()).then_some(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Option<Decimal> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn transitions() {
        assert_eq!(allowed_from("INVESTIGATING"), ["OPEN"]);
        assert_eq!(allowed_from("RESOLVED"), ["OPEN", "INVESTIGATING"]);
        assert!(
            allowed_from("OPEN").is_empty(),
            "nothing goes back to OPEN by hand"
        );
        assert!(allowed_from("DONE").is_empty());
    }

    #[test]
    fn adjustments_bring_the_ledger_to_the_statement() {
        assert_eq!(
            adjustment("MISSING_IN_LEDGER", None, d("25.00")),
            d("25.00")
        );
        assert_eq!(
            adjustment("MISSING_IN_LEDGER", None, d("-4.10")),
            d("-4.10")
        );
        assert_eq!(
            adjustment("MISSING_IN_STATEMENT", d("30.00"), None),
            d("-30.00")
        );
        assert_eq!(
            adjustment("AMOUNT_MISMATCH", d("100.00"), d("99.50")),
            d("-0.50")
        );
        assert_eq!(
            adjustment("DUPLICATE_IN_STATEMENT", None, d("12.00")),
            d("12.00")
        );
        assert_eq!(adjustment("CURRENCY_MISMATCH", d("1"), d("1")), None);
        assert_eq!(adjustment("BALANCE_DRIFT", None, None), None);
        assert_eq!(adjustment("AMOUNT_MISMATCH", d("1"), d("1.00")), None);
    }
}
