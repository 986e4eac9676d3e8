//! The exception workflow's rules: which status changes are allowed and what an adjusting transfer
//! for a discrepancy is. Pure.

use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::transfers::{IdempotencyKey, adjustment_key, adjustment_of};

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

/// An account as the adjust rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct AdjustedAccount<'a> {
    pub id: &'a str,
    pub currency: &'a str,
}

/// Which way an adjusting transfer moves its money, and how much, in which currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentLegs {
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    pub currency: String,
}

/// The legs of the adjusting transfer that moves `delta` (`adjustment`) into `account` (negative:
/// out of it) against `suspense`, in the discrepancy's currency (the account's when it names none).
/// `Err(currency)` when the suspense account or the account is not in that currency.
pub fn adjustment_legs(
    delta: Decimal,
    account: AdjustedAccount<'_>,
    suspense: AdjustedAccount<'_>,
    discrepancy_currency: Option<&str>,
) -> Result<AdjustmentLegs, String> {
    let currency = discrepancy_currency.unwrap_or(account.currency);
    if suspense.currency != currency || account.currency != currency {
        return Err(currency.to_string());
    }
    let (source, destination) = if delta > Decimal::ZERO {
        (suspense.id, account.id)
    } else {
        (account.id, suspense.id)
    };
    Ok(AdjustmentLegs {
        source_account_id: source.to_string(),
        destination_account_id: destination.to_string(),
        amount: delta.abs(),
        currency: currency.to_string(),
    })
}

/// The suspense account an ADJUSTING discrepancy's in-flight transfer is against (its resolution
/// records it); `None` for any other status.
pub fn in_flight_suspense(status: &str, resolution: Option<&Value>) -> Option<String> {
    (status == ADJUSTING)
        .then(|| resolution?.get("suspenseAccountId")?.as_str())
        .flatten()
        .map(str::to_string)
}

/// The key an in-flight adjustment was queued under, from its resolution: resuming sends the same
/// key again, so the transfer posts once. `None` unless it is a canonical adjustment key of this
/// discrepancy.
pub fn in_flight_key(resolution: &Value, discrepancy_id: Uuid) -> Option<IdempotencyKey> {
    resolution
        .get("idempotencyKey")
        .and_then(Value::as_str)
        .and_then(adjustment_of)
        .filter(|(id, _)| *id == discrepancy_id)
        .map(|(id, attempt)| adjustment_key(id, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: AdjustedAccount = AdjustedAccount {
        id: "acc",
        currency: "EUR",
    };
    const SUSPENSE: AdjustedAccount = AdjustedAccount {
        id: "suspense",
        currency: "EUR",
    };

    #[test]
    fn money_into_the_account_comes_from_suspense_and_out_goes_to_it() {
        let into = adjustment_legs("25.00".parse().unwrap(), ACCOUNT, SUSPENSE, None).unwrap();
        assert_eq!(
            (
                into.source_account_id.as_str(),
                into.destination_account_id.as_str()
            ),
            ("suspense", "acc")
        );
        assert_eq!(into.amount, "25.00".parse::<Decimal>().unwrap());
        assert_eq!(into.currency, "EUR");
        let out =
            adjustment_legs("-0.50".parse().unwrap(), ACCOUNT, SUSPENSE, Some("EUR")).unwrap();
        assert_eq!(
            (
                out.source_account_id.as_str(),
                out.destination_account_id.as_str()
            ),
            ("acc", "suspense")
        );
        assert_eq!(out.amount, "0.50".parse::<Decimal>().unwrap());
    }

    #[test]
    fn every_leg_is_in_the_discrepancy_currency() {
        let usd = AdjustedAccount {
            id: "suspense-usd",
            currency: "USD",
        };
        let one = Decimal::ONE;
        assert_eq!(adjustment_legs(one, ACCOUNT, usd, None), Err("EUR".into()));
        assert_eq!(
            adjustment_legs(one, ACCOUNT, SUSPENSE, Some("USD")),
            Err("USD".into())
        );
        assert_eq!(
            adjustment_legs(one, usd, usd, Some("USD")).map(|l| l.currency),
            Ok("USD".into())
        );
    }

    #[test]
    fn an_in_flight_adjustment_resumes_its_own_key_and_suspense() {
        let id = Uuid::from_u128(1);
        let key = adjustment_key(id, 2);
        let resolution = json!({"suspenseAccountId": "suspense", "idempotencyKey": key.as_str()});
        assert_eq!(in_flight_key(&resolution, id), Some(key));
        assert_eq!(in_flight_key(&resolution, Uuid::from_u128(2)), None);
        assert_eq!(in_flight_key(&json!({"idempotencyKey": "k"}), id), None);
        assert_eq!(in_flight_key(&json!({}), id), None);
        assert_eq!(
            in_flight_suspense(ADJUSTING, Some(&resolution)).as_deref(),
            Some("suspense")
        );
        assert_eq!(in_flight_suspense("OPEN", Some(&resolution)), None);
        assert_eq!(in_flight_suspense(ADJUSTING, None), None);
    }

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
