//! Money rules: amounts are `rust_decimal::Decimal` bound to an ISO 4217 currency whose minor units cap
//! the scale (USD 2, JPY 0, KWD 3). Nothing here ever goes through a float.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::validation::ValidationError;

/// An ISO 4217 currency that has minor units (so not XAU, XDR, XXX and the like).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an upper-case ISO 4217 alphabetic code.
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        let unknown = || {
            ValidationError::new(
                "unknown_currency",
                "currency",
                format!(
                    "`{code}` is not an ISO 4217 currency code with minor units (e.g. USD, EUR, JPY)"
                ),
            )
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let currency = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        if currency.exponent().is_none() || currency.is_superseded().is_some() {
            return Err(unknown());
        }
        Ok(Self(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Number of decimal places the currency allows.
    pub fn minor_units(self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The largest amount, in major units, anything in this ledger may carry: a transfer (whose configured
/// `MAX_TRANSFER_AMOUNT` cannot exceed it), a statement line, an overdraft limit. 10^15 leaves room
/// for every currency's minor units inside `Decimal`'s 96-bit mantissa and for sums of millions of
/// such amounts, which are still checked.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// A sum or difference of amounts that does not fit in a `Decimal`. Only data that predates the
/// bounds (or a bug) can cause it; it is reported as an error, never saturated or wrapped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("amount overflow: {0}")]
pub struct AmountOverflow(pub String);

/// `a + b`, or the overflow naming what was being added.
pub fn checked_add(a: Decimal, b: Decimal, what: &str) -> Result<Decimal, AmountOverflow> {
    a.checked_add(b)
        .ok_or_else(|| AmountOverflow(format!("{what}: {a} + {b}")))
}

/// Parses a decimal written as a plain string: optional `-`, digits, optional fraction. No exponent,
/// no `+`, no spaces, no thousands separators: what a client sends is exactly what gets posted.
pub fn parse_decimal_str(text: &str, field: &str) -> Result<Decimal, ValidationError> {
    let invalid = || {
        ValidationError::new(
            "invalid_amount",
            field,
            format!("`{text}` is not a decimal amount; write it like \"100.25\""),
        )
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(invalid());
    }
    // Trailing zeros are not precision (`1.000` is 1): drop them before the 28-decimal limit of
    // `Decimal` decides. More decimals than that is more than any currency has.
    let frac = frac.map(|f| f.trim_end_matches('0'));
    if frac.is_some_and(|f| f.len() > 28) {
        return Err(ValidationError::new(
            "amount_scale_exceeded",
            field,
            format!("`{text}` has more decimal places than any currency allows"),
        ));
    }
    let sign = if text.starts_with('-') { "-" } else { "" };
    let normalized = match frac {
        Some(f) if !f.is_empty() => format!("{sign}{int}.{f}"),
        _ => format!("{sign}{int}"),
    };
    Decimal::from_str_exact(&normalized).map_err(|_| too_large(field, text))
}

/// Parses the literal text of a JSON number (which may carry an exponent) without going through f64.
pub fn parse_decimal_json_number(text: &str, field: &str) -> Result<Decimal, ValidationError> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).map_err(|_| {
            ValidationError::new(
                "invalid_amount",
                field,
                format!("`{text}` cannot be represented exactly as a decimal amount"),
            )
        })
    } else {
        parse_decimal_str(text, field)
    }
}

fn too_large(field: &str, text: &str) -> ValidationError {
    ValidationError::new(
        "amount_too_large",
        field,
        format!("`{text}` is larger than any amount this ledger accepts"),
    )
}

/// A positive amount of a currency, already checked against the currency's scale and the configured
/// maximum, and held at exactly the currency's scale (`10.1` USD is stored as `10.10`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Validates a transfer amount: `> 0`, `<= max`, no more decimals than the currency allows.
    /// Trailing zeros are not extra precision (`10.100` USD is `10.10`); `10.001` USD is rejected.
    pub fn positive(
        amount: Decimal,
        currency: Currency,
        max: Decimal,
        field: &str,
    ) -> Result<Self, ValidationError> {
        if amount <= Decimal::ZERO {
            return Err(ValidationError::new(
                "amount_not_positive",
                field,
                format!("amount must be greater than zero, got {amount}"),
            ));
        }
        let amount = at_currency_scale(amount, currency, field)?;
        if amount > max {
            return Err(ValidationError::new(
                "amount_too_large",
                field,
                format!("amount {amount} exceeds the maximum of {max} {currency} per transfer"),
            ));
        }
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

/// Checks a signed amount against the currency's minor units and rescales it to exactly that scale.
pub fn at_currency_scale(
    amount: Decimal,
    currency: Currency,
    field: &str,
) -> Result<Decimal, ValidationError> {
    let minor = currency.minor_units();
    if amount.normalize().scale() > minor {
        return Err(ValidationError::new(
            "amount_scale_exceeded",
            field,
            format!("{currency} allows {minor} decimal places; {amount} has more"),
        ));
    }
    if amount.abs() > MAX_AMOUNT {
        return Err(ValidationError::new(
            "amount_too_large",
            field,
            format!("{amount} exceeds the largest amount this ledger accepts ({MAX_AMOUNT})"),
        ));
    }
    let mut scaled = amount;
    scaled.rescale(minor);
    // `rescale` keeps fewer decimals when the value cannot carry them: never store that.
    if scaled.scale() != minor {
        return Err(too_large(field, &amount.to_string()));
    }
    Ok(scaled)
}

/// Parses a non-negative limit such as an overdraft (`"0"`, `"250.00"`) in a currency's scale.
pub fn parse_non_negative(
    text: &str,
    currency: Currency,
    field: &str,
) -> Result<Decimal, ValidationError> {
    let value = parse_decimal_str(text, field)?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(ValidationError::new(
            "invalid_amount",
            field,
            format!("{field} must not be negative"),
        ));
    }
    at_currency_scale(value.abs(), currency, field)
}

/// Formats an amount at its currency's scale (`10` USD is `"10.00"`); amounts in a code this build
/// does not know keep their own scale.
pub fn format_amount(amount: Decimal, currency: &str) -> String {
    let mut a = amount;
    if let Ok(c) = Currency::parse(currency)
        && (a.scale() < c.minor_units() || a.normalize().scale() <= c.minor_units())
    {
        a.rescale(c.minor_units());
    }
    a.to_string()
}

impl FromStr for Currency {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }
    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }
    const MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

    #[test]
    fn currencies_know_their_minor_units() {
        assert_eq!(usd().minor_units(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_units(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_units(), 3);
        for bad in ["usd", "US", "USDX", "XAU", "XXX", "ABC", ""] {
            assert_eq!(
                Currency::parse(bad).unwrap_err().code,
                "unknown_currency",
                "{bad}"
            );
        }
    }

    #[test]
    fn amounts_respect_currency_scale_without_rounding() {
        let m = Money::positive(dec("10.1"), usd(), MAX, "amount").unwrap();
        assert_eq!(m.amount().to_string(), "10.10");
        assert_eq!(
            Money::positive(dec("10.100"), usd(), MAX, "amount")
                .unwrap()
                .amount()
                .to_string(),
            "10.10"
        );
        let err = Money::positive(dec("10.001"), usd(), MAX, "amount").unwrap_err();
        assert_eq!(err.code, "amount_scale_exceeded");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            Money::positive(dec("1.5"), jpy, MAX, "a").unwrap_err().code,
            "amount_scale_exceeded"
        );
        assert_eq!(
            Money::positive(dec("1500"), jpy, MAX, "a")
                .unwrap()
                .amount()
                .to_string(),
            "1500"
        );
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(
            Money::positive(dec("1.234"), kwd, MAX, "a")
                .unwrap()
                .amount()
                .to_string(),
            "1.234"
        );
    }

    #[test]
    fn zero_negative_and_huge_amounts_are_rejected() {
        assert_eq!(
            Money::positive(dec("0"), usd(), MAX, "a").unwrap_err().code,
            "amount_not_positive"
        );
        assert_eq!(
            Money::positive(dec("-1"), usd(), MAX, "a")
                .unwrap_err()
                .code,
            "amount_not_positive"
        );
        assert_eq!(
            Money::positive(dec("1000000000.01"), usd(), MAX, "a")
                .unwrap_err()
                .code,
            "amount_too_large"
        );
        assert_eq!(
            parse_decimal_str("99999999999999999999999999999999", "a")
                .unwrap_err()
                .code,
            "amount_too_large"
        );
    }

    #[test]
    fn strict_decimal_strings() {
        assert_eq!(parse_decimal_str("100.25", "a").unwrap(), dec("100.25"));
        assert_eq!(parse_decimal_str("-3.5", "a").unwrap(), dec("-3.5"));
        for bad in [
            "", "1.", ".5", "+1", "1e3", " 1", "1,000.00", "NaN", "--1", "0x10", "1.2.3",
        ] {
            assert_eq!(
                parse_decimal_str(bad, "a").unwrap_err().code,
                "invalid_amount",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn trailing_zeros_beyond_decimals_range_are_not_precision() {
        let long = format!("1.{}", "0".repeat(40));
        assert_eq!(parse_decimal_str(&long, "a").unwrap(), dec("1"));
        let precise = format!("1.{}1", "0".repeat(40));
        assert_eq!(
            parse_decimal_str(&precise, "a").unwrap_err().code,
            "amount_scale_exceeded"
        );
        assert_eq!(parse_decimal_str("-0.50", "a").unwrap(), dec("-0.5"));
    }

    #[test]
    fn json_numbers_keep_their_exact_text() {
        // 0.1 + 0.2 computed in a client's float arithmetic: seventeen decimals, not 0.3.
        let d = parse_decimal_json_number("0.30000000000000004", "a").unwrap();
        assert_eq!(d.to_string(), "0.30000000000000004");
        assert_eq!(
            Money::positive(d, usd(), MAX, "a").unwrap_err().code,
            "amount_scale_exceeded"
        );
        assert_eq!(parse_decimal_json_number("1.5e2", "a").unwrap(), dec("150"));
    }

    #[test]
    fn amounts_format_at_currency_scale() {
        assert_eq!(format_amount(dec("10"), "USD"), "10.00");
        assert_eq!(format_amount(dec("-3.5000"), "USD"), "-3.50");
        assert_eq!(format_amount(dec("1500"), "JPY"), "1500");
        assert_eq!(format_amount(dec("0"), "KWD"), "0.000");
    }

    #[test]
    fn the_ceiling_is_ten_to_the_fifteenth_and_scale_is_never_dropped() {
        assert_eq!(MAX_AMOUNT, dec("1000000000000000"));
        assert_eq!(
            at_currency_scale(MAX_AMOUNT, usd(), "a")
                .unwrap()
                .to_string(),
            "1000000000000000.00"
        );
        let huge = dec("79228162514264337593543950335");
        assert_eq!(
            at_currency_scale(huge, usd(), "a").unwrap_err().code,
            "amount_too_large"
        );
        assert_eq!(
            at_currency_scale(-huge, Currency::parse("JPY").unwrap(), "a")
                .unwrap_err()
                .code,
            "amount_too_large"
        );
        assert_eq!(
            parse_non_negative("1000000000000000.01", usd(), "o")
                .unwrap_err()
                .code,
            "amount_too_large"
        );
    }

    #[test]
    fn overdraft_limits() {
        assert_eq!(
            parse_non_negative("250", usd(), "o").unwrap().to_string(),
            "250.00"
        );
        assert_eq!(
            parse_non_negative("-1", usd(), "o").unwrap_err().code,
            "invalid_amount"
        );
        assert_eq!(
            parse_non_negative("0.001", usd(), "o").unwrap_err().code,
            "amount_scale_exceeded"
        );
    }
}
