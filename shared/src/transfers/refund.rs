//! Refunds: which legs a refund reverses and for how much, from the original's posted legs and
//! what earlier refunds gave back. Pure; posting checks the same bound again under its locks.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Leg, Operation};
use crate::accounts::AccountId;
use crate::ledger::FailureCode;
use crate::money::Money;
use crate::validation::ValidationError;

/// A posted leg of the original, and what earlier refunds gave back of it.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginalLeg {
    pub leg: u16,
    pub posted: Leg,
    pub refunded: Decimal,
}

impl OriginalLeg {
    pub fn remaining(&self) -> Decimal {
        self.posted.amount - self.refunded
    }
}

/// What a client asks to refund.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefundRequest {
    /// `None`: whatever remains (of every leg, or of `leg`).
    pub amount: Option<Decimal>,
    pub leg: Option<u16>,
    /// The account that pays the refund instead of the leg's destination (e.g. the platform
    /// covering a merchant who no longer has the money). Its own limit applies.
    pub funding_account: Option<AccountId>,
}

/// Why a refund cannot be accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum RefundRefusal {
    /// The request itself is wrong (422).
    Invalid(ValidationError),
    /// The original does not allow it (409).
    Conflict(FailureCode),
}

/// The refund's legs (each reversing one original leg: from its destination, or the funding
/// account, back to its source) and its operation. An empty `originals` means the transaction is
/// not a posted transfer or capture of this client.
pub fn refund_legs(
    of: Uuid,
    originals: &[OriginalLeg],
    request: &RefundRequest,
    max_amount: Decimal,
) -> Result<(Vec<Leg>, Operation), RefundRefusal> {
    if originals.is_empty() {
        return Err(RefundRefusal::Conflict(
            FailureCode::TransactionNotRefundable,
        ));
    }
    let selected: Vec<&OriginalLeg> = match request.leg {
        Some(i) => vec![originals.iter().find(|o| o.leg == i).ok_or_else(|| {
            RefundRefusal::Invalid(ValidationError::new(
                "invalid_leg",
                "leg",
                format!("the transaction has legs 0 to {}", originals.len() - 1),
            ))
        })?],
        None => originals.iter().collect(),
    };
    if let Some(funding) = &request.funding_account
        && selected
            .iter()
            .any(|o| &o.posted.source_account_id == funding)
    {
        return Err(RefundRefusal::Invalid(ValidationError::new(
            "invalid_field",
            "fundingAccountId",
            "the funding account is the source of a refunded leg: the refund would pay itself",
        )));
    }
    let reverse = |o: &OriginalLeg, amount: Decimal| Leg {
        source_account_id: request
            .funding_account
            .clone()
            .unwrap_or_else(|| o.posted.destination_account_id.clone()),
        destination_account_id: o.posted.source_account_id.clone(),
        amount,
        currency: o.posted.currency,
    };
    let (legs, remaining) = match request.amount {
        Some(amount) => {
            let [one] = selected[..] else {
                return Err(RefundRefusal::Invalid(ValidationError::new(
                    "leg_required",
                    "leg",
                    "the transaction has several legs: say which one a partial refund reverses",
                )));
            };
            let amount = Money::positive(amount, one.posted.currency, max_amount, "amount")
                .map_err(RefundRefusal::Invalid)?
                .amount();
            if amount > one.remaining() {
                return Err(RefundRefusal::Conflict(FailureCode::RefundExceedsRemaining));
            }
            (vec![(one, reverse(one, amount))], false)
        }
        None => {
            if selected.iter().all(|o| o.remaining() <= Decimal::ZERO) {
                return Err(RefundRefusal::Conflict(FailureCode::RefundExceedsRemaining));
            }
            // Each leg at its posted amount: posting refunds what remains of it then (so a retry
            // of this request hashes the same whatever was refunded meanwhile).
            let legs = selected
                .iter()
                .map(|o| (*o, reverse(o, o.posted.amount)))
                .collect();
            (legs, true)
        }
    };
    let of_legs = legs.iter().map(|(o, _)| o.leg).collect();
    let operation = Operation::Refund {
        of,
        of_legs,
        remaining,
    };
    Ok((legs.into_iter().map(|(_, l)| l).collect(), operation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn leg(i: u16, src: &str, dst: &str, amount: &str, refunded: &str) -> OriginalLeg {
        OriginalLeg {
            leg: i,
            posted: Leg {
                source_account_id: AccountId::parse(src, "s").unwrap(),
                destination_account_id: AccountId::parse(dst, "d").unwrap(),
                amount: amount.parse().unwrap(),
                currency: Currency::parse("USD").unwrap(),
            },
            refunded: refunded.parse().unwrap(),
        }
    }

    const MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

    #[test]
    fn a_partial_refund_reverses_one_leg_within_what_remains() {
        let of = Uuid::from_u128(1);
        let card = [
            leg(0, "customer", "merchant", "97.00", "10.00"),
            leg(1, "customer", "fees", "3.00", "0"),
        ];
        let request = |amount: &str, leg: Option<u16>| RefundRequest {
            amount: Some(amount.parse().unwrap()),
            leg,
            funding_account: None,
        };
        let (legs, op) = refund_legs(of, &card, &request("87", Some(0)), MAX).unwrap();
        assert_eq!(
            (
                legs[0].source_account_id.as_str(),
                legs[0].destination_account_id.as_str()
            ),
            ("merchant", "customer")
        );
        assert_eq!(legs[0].amount.to_string(), "87.00");
        assert_eq!(
            op,
            Operation::Refund {
                of,
                of_legs: vec![0],
                remaining: false
            }
        );
        let refused = |r: &RefundRequest| refund_legs(of, &card, r, MAX).unwrap_err();
        assert_eq!(
            refused(&request("87.01", Some(0))),
            RefundRefusal::Conflict(FailureCode::RefundExceedsRemaining)
        );
        assert!(
            matches!(refused(&request("1", None)), RefundRefusal::Invalid(e) if e.code == "leg_required")
        );
        assert!(
            matches!(refused(&request("1", Some(2))), RefundRefusal::Invalid(e) if e.code == "invalid_leg")
        );
        assert!(
            matches!(refused(&request("0.001", Some(1))), RefundRefusal::Invalid(e) if e.code == "amount_scale_exceeded")
        );
        assert_eq!(
            refund_legs(of, &[], &RefundRequest::default(), MAX).unwrap_err(),
            RefundRefusal::Conflict(FailureCode::TransactionNotRefundable)
        );
    }

    #[test]
    fn a_full_refund_names_every_leg_at_its_posted_amount() {
        let of = Uuid::from_u128(1);
        let card = [
            leg(0, "customer", "merchant", "97.00", "97.00"),
            leg(1, "customer", "fees", "3.00", "1.00"),
        ];
        let platform = RefundRequest {
            funding_account: Some(AccountId::parse("platform", "f").unwrap()),
            ..Default::default()
        };
        let (legs, op) = refund_legs(of, &card, &platform, MAX).unwrap();
        assert_eq!(legs.len(), 2);
        assert!(
            legs.iter()
                .all(|l| l.source_account_id.as_str() == "platform")
        );
        assert_eq!(legs[1].amount.to_string(), "3.00");
        assert_eq!(
            op,
            Operation::Refund {
                of,
                of_legs: vec![0, 1],
                remaining: true
            }
        );
        let itself = RefundRequest {
            funding_account: Some(AccountId::parse("customer", "f").unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            refund_legs(of, &card, &itself, MAX).unwrap_err(),
            RefundRefusal::Invalid(e) if e.field == "fundingAccountId"
        ));
        let done = [leg(0, "customer", "merchant", "97.00", "97.00")];
        assert_eq!(
            refund_legs(of, &done, &RefundRequest::default(), MAX).unwrap_err(),
            RefundRefusal::Conflict(FailureCode::RefundExceedsRemaining)
        );
    }
}
