//! Money movement beyond one transfer: the legs of a transaction, what a transaction does (transfer,
//! hold, capture, void, refund), its value date, and the rules a request must meet. Pure.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::accounts::AccountId;
use crate::money::{Currency, Money};
use crate::validation::ValidationError;

/// The most legs one transaction may carry.
pub const MAX_LEGS: usize = 25;

/// One leg: `amount` of `currency` moves from `source` to `destination`. A transaction's legs post
/// together or not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leg {
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

/// A leg as a client writes it inside `transaction.legs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegInput {
    pub source_account_id: String,
    pub destination_account_id: String,
    #[serde(deserialize_with = "super::raw_amount")]
    pub amount: Option<Box<RawValue>>,
    #[serde(default)]
    pub currency: Option<String>,
}

impl LegInput {
    /// Validates one leg; `default_currency` is the transaction's `currency`, used when the leg
    /// names none. Field paths are relative to the leg (`amount`, `currency`, ...).
    pub fn validate(
        self,
        default_currency: Option<Currency>,
        max_amount: Decimal,
    ) -> Result<Leg, ValidationError> {
        let source = AccountId::parse(&self.source_account_id, "source_account_id")?;
        let destination = AccountId::parse(&self.destination_account_id, "destination_account_id")?;
        let currency = currency_or(
            self.currency.as_deref(),
            default_currency,
            "a leg needs a currency: give the leg's `currency` or the transaction's",
        )?;
        let raw = self.amount.ok_or_else(|| super::missing("amount"))?;
        let amount = super::parse_amount_json(&raw, "amount")?;
        let money = Money::positive(amount, currency, max_amount, "amount")?;
        Ok(Leg {
            source_account_id: source,
            destination_account_id: destination,
            amount: money.amount(),
            currency,
        })
    }
}

/// The currency a request names, else `default`; `missing` says why one is needed.
pub(super) fn currency_or(
    code: Option<&str>,
    default: Option<Currency>,
    missing: &str,
) -> Result<Currency, ValidationError> {
    match (code, default) {
        (Some(code), _) => Currency::parse(code),
        (None, Some(c)) => Ok(c),
        (None, None) => Err(ValidationError::new("missing_field", "currency", missing)),
    }
}

/// What a transaction does. The queue message carries it; `Transfer` is the default and is left
/// out of the canonical JSON, so a plain transfer's message and request hash are what they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Post every leg.
    #[default]
    Transfer,
    /// Reserve the (one) leg's amount against its source until `expires_at`; post nothing.
    Hold { expires_at: DateTime<Utc> },
    /// Post part or all of a hold. The leg is the hold's (source, destination, currency) with the
    /// amount to capture; `remaining` means "whatever remains when it posts" (the leg's amount is
    /// then the hold's amount, and only bounds it).
    Capture { hold_id: Uuid, remaining: bool },
    /// Release what remains of a hold. The leg is the hold's, with its amount.
    Void { hold_id: Uuid },
    /// Give back (part of) a posted transaction: leg `i` reverses the original's leg `of_legs[i]`.
    /// `remaining` means "whatever remains of each leg when it posts" (the legs' amounts are then
    /// the original legs' amounts, and only bound it).
    Refund {
        of: Uuid,
        of_legs: Vec<u16>,
        remaining: bool,
    },
}

impl Operation {
    pub fn is_transfer(&self) -> bool {
        matches!(self, Self::Transfer)
    }

    pub fn kind(&self) -> TransactionKind {
        match self {
            Self::Transfer => TransactionKind::Transfer,
            Self::Hold { .. } => TransactionKind::Hold,
            Self::Capture { .. } => TransactionKind::Capture,
            Self::Void { .. } => TransactionKind::Void,
            Self::Refund { .. } => TransactionKind::Refund,
        }
    }

    /// The hold a capture or void acts on, the original a refund reverses.
    pub fn parent(&self) -> Option<Uuid> {
        match self {
            Self::Capture { hold_id, .. } | Self::Void { hold_id } => Some(*hold_id),
            Self::Refund { of, .. } => Some(*of),
            Self::Transfer | Self::Hold { .. } => None,
        }
    }
}

/// The `kind` column and the API's `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    Transfer,
    Hold,
    Capture,
    Void,
    Refund,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "TRANSFER",
            Self::Hold => "HOLD",
            Self::Capture => "CAPTURE",
            Self::Void => "VOID",
            Self::Refund => "REFUND",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "TRANSFER" => Self::Transfer,
            "HOLD" => Self::Hold,
            "CAPTURE" => Self::Capture,
            "VOID" => Self::Void,
            "REFUND" => Self::Refund,
            _ => return None,
        })
    }

    /// Whether a COMPLETED transaction of this kind wrote entries (a hold reserves, a void
    /// releases: neither moves posted money).
    pub fn posts_entries(self) -> bool {
        !matches!(self, Self::Hold | Self::Void)
    }
}

/// The limits a request is checked against at intake (from `Config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntakeRules {
    /// `MAX_TRANSFER_AMOUNT`: the largest amount of one leg.
    pub max_amount: Decimal,
    /// `MAX_BACKDATE_DAYS`: how far before now a value date may be.
    pub max_backdate: Duration,
    /// How far after now a value date may be (clock skew between a client and us).
    pub future_skew: Duration,
    /// `MAX_HOLD_DAYS`: the longest a hold may last.
    pub max_hold: Duration,
}

/// Clock skew a value date may be ahead of ours.
pub const FUTURE_SKEW_SECONDS: i64 = 300;

impl IntakeRules {
    /// The default windows (90 days back, 5 minutes ahead, holds up to 30 days) with `max_amount`.
    pub fn with_max_amount(max_amount: Decimal) -> Self {
        Self {
            max_amount,
            max_backdate: Duration::days(90),
            future_skew: Duration::seconds(FUTURE_SKEW_SECONDS),
            max_hold: Duration::days(30),
        }
    }

    /// Reads `effectiveAt` and checks it lies in `[now - max_backdate, now + skew]`.
    pub fn value_date(
        &self,
        text: Option<&str>,
        now: DateTime<Utc>,
        field: &str,
    ) -> Result<Option<DateTime<Utc>>, ValidationError> {
        let Some(text) = text else { return Ok(None) };
        let at = parse_timestamp(text, field)?;
        if at < now - self.max_backdate {
            return Err(ValidationError::new(
                "effective_at_too_old",
                field,
                format!(
                    "effectiveAt may be at most {} days before now (MAX_BACKDATE_DAYS)",
                    self.max_backdate.num_days()
                ),
            ));
        }
        if at > now + self.future_skew {
            return Err(ValidationError::new(
                "effective_at_in_future",
                field,
                "effectiveAt may not be in the future (a few minutes of clock skew aside)",
            ));
        }
        Ok(Some(at))
    }

    /// Reads a hold's `expiresAt`: after now, at most `max_hold` ahead.
    pub fn hold_expiry(
        &self,
        text: &str,
        now: DateTime<Utc>,
        field: &str,
    ) -> Result<DateTime<Utc>, ValidationError> {
        let at = parse_timestamp(text, field)?;
        if at <= now || at > now + self.max_hold {
            return Err(ValidationError::new(
                "invalid_expires_at",
                field,
                format!(
                    "expiresAt must be in the future and at most {} days ahead (MAX_HOLD_DAYS)",
                    self.max_hold.num_days()
                ),
            ));
        }
        Ok(at)
    }
}

/// An RFC 3339 timestamp, in UTC, at microsecond precision (what PostgreSQL keeps), so the hash
/// of a request is the hash of what is stored.
pub fn parse_timestamp(text: &str, field: &str) -> Result<DateTime<Utc>, ValidationError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ValidationError::new(
                "invalid_field",
                field,
                format!("{field} must be an RFC 3339 timestamp such as 2026-12-01T10:00:00Z"),
            )
        })?
        .with_timezone(&Utc);
    let micros = at.timestamp_micros();
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        ValidationError::new("invalid_field", field, format!("{field} is out of range"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_dates_are_bounded() {
        let rules = IntakeRules::with_max_amount(Decimal::from(100));
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ok = rules
            .value_date(Some("2026-11-01T00:00:00.1234567Z"), now, "effectiveAt")
            .unwrap()
            .unwrap();
        assert_eq!(
            ok.timestamp_subsec_micros(),
            123_456,
            "kept at microseconds"
        );
        assert_eq!(rules.value_date(None, now, "f").unwrap(), None);
        for (text, code) in [
            ("2026-09-01T00:00:00Z", "effective_at_too_old"),
            ("2026-12-04T12:06:00Z", "effective_at_in_future"),
            ("yesterday", "invalid_field"),
        ] {
            assert_eq!(
                rules.value_date(Some(text), now, "f").unwrap_err().code,
                code
            );
        }
        rules
            .value_date(Some("2026-12-04T12:04:00+00:00"), now, "f")
            .unwrap();
    }

    #[test]
    fn hold_expiry_is_in_the_future_and_bounded() {
        let rules = IntakeRules::with_max_amount(Decimal::from(100));
        let now = Utc::now();
        let at = |d: Duration| (now + d).to_rfc3339();
        rules
            .hold_expiry(&at(Duration::hours(1)), now, "f")
            .unwrap();
        for bad in [at(Duration::seconds(-1)), at(Duration::days(31))] {
            assert_eq!(
                rules.hold_expiry(&bad, now, "f").unwrap_err().code,
                "invalid_expires_at"
            );
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            TransactionKind::Transfer,
            TransactionKind::Hold,
            TransactionKind::Capture,
            TransactionKind::Void,
            TransactionKind::Refund,
        ] {
            assert_eq!(TransactionKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TransactionKind::parse("transfer"), None);
        assert!(!TransactionKind::Hold.posts_entries());
        assert!(TransactionKind::Capture.posts_entries());
    }
}
