//! The exception workflow's rules: which status changes are allowed and what an adjusting transfer
//! for a discrepancy is. Pure.

use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::findings::FindingKind;
use super::matching::DiscrepancyKind;
use crate::transfers::{IdempotencyKey, adjustment_key, adjustment_of};

/// Where a discrepancy is in the exception workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscrepancyStatus {
    Open,
    Investigating,
    /// Resolving with an adjusting transfer: the discrepancy waits here until the processor has
    /// decided the transfer (posted: RESOLVED; rejected: OPEN again, with the failure in its
    /// history).
    Adjusting,
    Resolved,
    Ignored,
}

impl DiscrepancyStatus {
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Investigating,
        Self::Adjusting,
        Self::Resolved,
        Self::Ignored,
    ];

    /// The statuses a client may set by hand (`POST /discrepancies/{id}/resolve`).
    pub const SETTABLE: [Self; 3] = [Self::Investigating, Self::Resolved, Self::Ignored];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Investigating => "INVESTIGATING",
            Self::Adjusting => "ADJUSTING",
            Self::Resolved => "RESOLVED",
            Self::Ignored => "IGNORED",
        }
    }

    /// The status whose `as_str` is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The statuses a discrepancy may move to `self` from. RESOLVED and IGNORED are final.
    /// ADJUSTING is reached only with `action: adjust` and left only by the adjusting transfer's
    /// outcome (`adjustment_outcome`): nothing moves a discrepancy out of it by hand.
    pub fn allowed_from(self) -> &'static [Self] {
        match self {
            Self::Investigating => &[Self::Open],
            Self::Adjusting | Self::Resolved | Self::Ignored => &[Self::Open, Self::Investigating],
            Self::Open => &[],
        }
    }

    /// Whether the workflow allows moving from `from` to `self`.
    pub fn reachable_from(self, from: Self) -> bool {
        self.allowed_from().contains(&from)
    }

    /// Where a discrepancy in this status goes once its adjusting transfer is decided
    /// (`failure_code`: the rejection's code). A discrepancy in any status but ADJUSTING keeps it
    /// (the transfer was accepted, so its money moves, and its history records that). The
    /// processor applies this rule in SQL (`store::posting`), in the posting transaction.
    pub fn adjustment_outcome(self, failure_code: Option<&str>) -> Self {
        match (self, failure_code) {
            (Self::Adjusting, None) => Self::Resolved,
            (Self::Adjusting, Some(_)) => Self::Open,
            (other, _) => other,
        }
    }
}

impl std::fmt::Display for DiscrepancyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much an adjusting transfer must move into the account (negative: out of it) so the ledger
/// agrees with the statement, for the kinds an adjustment can answer (`None` also when the
/// difference does not fit in a decimal: no adjustment can carry it).
pub fn adjustment(
    kind: FindingKind,
    expected: Option<Decimal>,
    actual: Option<Decimal>,
) -> Option<Decimal> {
    let FindingKind::Statement(kind) = kind else {
        // The ledger's own problems are not answered by moving money.
        return None;
    };
    let amount = match kind {
        // The bank moved money the ledger does not know about (or moved it twice).
        DiscrepancyKind::MissingInLedger | DiscrepancyKind::DuplicateInStatement => actual?,
        // The ledger has a posting the bank never made.
        DiscrepancyKind::MissingInStatement => -expected?,
        // Same payment, different amounts: post the difference.
        DiscrepancyKind::AmountMismatch => actual?.checked_sub(expected?)?,
        DiscrepancyKind::CurrencyMismatch => return None,
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
pub fn in_flight_suspense(status: DiscrepancyStatus, resolution: Option<&Value>) -> Option<String> {
    (status == DiscrepancyStatus::Adjusting)
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
            in_flight_suspense(DiscrepancyStatus::Adjusting, Some(&resolution)).as_deref(),
            Some("suspense")
        );
        assert_eq!(
            in_flight_suspense(DiscrepancyStatus::Open, Some(&resolution)),
            None
        );
        assert_eq!(in_flight_suspense(DiscrepancyStatus::Adjusting, None), None);
    }

    fn kind(text: &str) -> FindingKind {
        FindingKind::parse(text).unwrap()
    }

    fn d(s: &str) -> Option<Decimal> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn transitions() {
        use DiscrepancyStatus::*;
        assert_eq!(Investigating.allowed_from(), [Open]);
        assert_eq!(Resolved.allowed_from(), [Open, Investigating]);
        assert!(
            Open.allowed_from().is_empty(),
            "nothing goes back to OPEN by hand"
        );
        assert_eq!(Adjusting.allowed_from(), [Open, Investigating]);
        for to in DiscrepancyStatus::ALL {
            assert!(
                !to.reachable_from(Adjusting),
                "nothing leaves ADJUSTING by hand ({to})"
            );
            assert_eq!(DiscrepancyStatus::parse(to.as_str()), Some(to));
        }
        assert_eq!(DiscrepancyStatus::parse("DONE"), None);
        assert_eq!(Adjusting.adjustment_outcome(None), Resolved);
        assert_eq!(
            Adjusting.adjustment_outcome(Some("insufficient_funds")),
            Open
        );
        assert_eq!(Ignored.adjustment_outcome(None), Ignored);
        assert_eq!(Resolved.adjustment_outcome(Some("x")), Resolved);
    }

    #[test]
    fn adjustments_bring_the_ledger_to_the_statement() {
        assert_eq!(
            adjustment(kind("MISSING_IN_LEDGER"), None, d("25.00")),
            d("25.00")
        );
        assert_eq!(
            adjustment(kind("MISSING_IN_LEDGER"), None, d("-4.10")),
            d("-4.10")
        );
        assert_eq!(
            adjustment(kind("MISSING_IN_STATEMENT"), d("30.00"), None),
            d("-30.00")
        );
        assert_eq!(
            adjustment(kind("AMOUNT_MISMATCH"), d("100.00"), d("99.50")),
            d("-0.50")
        );
        assert_eq!(
            adjustment(kind("DUPLICATE_IN_STATEMENT"), None, d("12.00")),
            d("12.00")
        );
        assert_eq!(adjustment(kind("CURRENCY_MISMATCH"), d("1"), d("1")), None);
        assert_eq!(adjustment(kind("BALANCE_DRIFT"), None, None), None);
        assert_eq!(adjustment(kind("AMOUNT_MISMATCH"), d("1"), d("1.00")), None);
    }
}
