//! The exception workflow's rules: which status changes are allowed and what an adjusting transfer
//! for a discrepancy is. Pure.

use rust_decimal::Decimal;

pub const STATUSES: [&str; 5] = ["OPEN", "INVESTIGATING", "ADJUSTING", "RESOLVED", "IGNORED"];

/// Resolving with an adjusting transfer: the discrepancy waits here until the processor has
/// decided the transfer (posted: RESOLVED; rejected: OPEN again, with the failure in its history).
pub const ADJUSTING: &str = "ADJUSTING";

/// The statuses a discrepancy may move to `to` from. RESOLVED and IGNORED are final. ADJUSTING is
/// reached only with `action: adjust` and left only by the adjusting transfer's outcome
/// (`adjustment_outcome`): nothing moves a discrepancy out of it by hand.
pub fn allowed_from(to: &str) -> &'static [&'static str] {
    match to {
        "INVESTIGATING" => &["OPEN"],
        "ADJUSTING" | "RESOLVED" | "IGNORED" => &["OPEN", "INVESTIGATING"],
        _ => &[],
    }
}

/// Where an ADJUSTING discrepancy goes once its adjusting transfer is decided (`failure_code`:
/// the rejection's code). A discrepancy in any other status keeps it (the transfer was accepted,
/// so its money moves, and its history records that).
pub fn adjustment_outcome<'a>(status: &'a str, failure_code: Option<&str>) -> &'a str {
    match (status, failure_code) {
        (ADJUSTING, None) => "RESOLVED",
        (ADJUSTING, Some(_)) => "OPEN",
        (other, _) => other,
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
        assert_eq!(allowed_from(ADJUSTING), ["OPEN", "INVESTIGATING"]);
        for to in STATUSES {
            assert!(
                !allowed_from(to).contains(&ADJUSTING),
                "nothing leaves ADJUSTING by hand ({to})"
            );
        }
        assert_eq!(adjustment_outcome(ADJUSTING, None), "RESOLVED");
        assert_eq!(
            adjustment_outcome(ADJUSTING, Some("insufficient_funds")),
            "OPEN"
        );
        assert_eq!(adjustment_outcome("IGNORED", None), "IGNORED");
        assert_eq!(adjustment_outcome("RESOLVED", Some("x")), "RESOLVED");
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
