//! Accounts: ids, overdraft limits and the attributes a client sets when opening one.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::money::{self, Currency};
use crate::validation::ValidationError;

/// 1-64 characters of `[A-Za-z0-9._:-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(id: &str, field: &str) -> Result<Self, ValidationError> {
        // `.` and `..` are path segments a URL normalises away: /accounts/.. is not an account.
        let ok = (1..=64).contains(&id.len())
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(ValidationError::new(
                "invalid_account_id",
                field,
                "account ids are 1-64 characters of letters, digits, '.', '_', ':' and '-', and not `.` or `..`",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far below zero an account may go. `Unlimited` is an external funding account (Formance's
/// `world`): it can be debited without bound and is how money enters the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverdraftLimit {
    Limited(Decimal),
    Unlimited,
}

impl OverdraftLimit {
    pub fn parse(text: &str, currency: Currency, field: &str) -> Result<Self, ValidationError> {
        if text == "unlimited" {
            return Ok(Self::Unlimited);
        }
        money::parse_non_negative(text, currency, field).map(Self::Limited)
    }

    /// The database form: `NULL` means unlimited.
    pub fn as_column(self) -> Option<Decimal> {
        match self {
            Self::Limited(d) => Some(d),
            Self::Unlimited => None,
        }
    }

    pub fn from_column(value: Option<Decimal>) -> Self {
        value.map_or(Self::Unlimited, Self::Limited)
    }

    /// Whether a balance may go down to `balance`.
    pub fn allows(self, balance: Decimal) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Limited(limit) => balance >= -limit,
        }
    }
}

impl fmt::Display for OverdraftLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unlimited => f.write_str("unlimited"),
            Self::Limited(d) => write!(f, "{d}"),
        }
    }
}

/// A validated request to open an account.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAccount {
    pub id: AccountId,
    pub currency: Currency,
    pub overdraft_limit: OverdraftLimit,
    pub metadata: Value,
}

/// Largest metadata object accepted on accounts and transfers, serialized.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Metadata is a JSON object of bounded size (or absent, stored as `{}`).
pub fn parse_metadata(value: Option<Value>, field: &str) -> Result<Value, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => {
            crate::validation::reject_nul_json(&v, field)?;
            reject_unsafe_numbers(&v, field)?;
            if v.to_string().len() > MAX_METADATA_BYTES {
                Err(ValidationError::new(
                    "metadata_too_large",
                    field,
                    format!("metadata must serialize to at most {MAX_METADATA_BYTES} bytes"),
                ))
            } else {
                Ok(v)
            }
        }
        Some(_) => Err(ValidationError::new(
            "invalid_field",
            field,
            "metadata must be a JSON object",
        )),
    }
}

/// The largest magnitude a metadata number may have: 2^53, the integers every JSON reader holds
/// exactly (I-JSON, RFC 7493). Larger ones do not survive the round trip through PostgreSQL's
/// `jsonb` (which writes them out in full digits) and back; send them as strings.
pub const MAX_METADATA_NUMBER: f64 = 9_007_199_254_740_992.0;

fn reject_unsafe_numbers(value: &Value, path: &str) -> Result<(), ValidationError> {
    match value {
        Value::Number(n) if n.as_f64().is_none_or(|x| x.abs() > MAX_METADATA_NUMBER) => {
            Err(ValidationError::new(
                "invalid_field",
                path,
                "metadata numbers are limited to -2^53..2^53 (I-JSON); send larger values as strings",
            ))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| reject_unsafe_numbers(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| reject_unsafe_numbers(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        AccountId::parse(&s, "account_id").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        for ok in [
            "a",
            "acct_1",
            "world:usd",
            "merchant-42.main",
            &"x".repeat(64),
        ] {
            AccountId::parse(ok, "id").unwrap();
        }
        for bad in [
            "",
            "has space",
            "slash/no",
            "ünï",
            &"x".repeat(65),
            ".",
            "..",
            "a\0",
        ] {
            assert_eq!(
                AccountId::parse(bad, "id").unwrap_err().code,
                "invalid_account_id"
            );
        }
    }

    #[test]
    fn overdraft_limits() {
        let usd = Currency::parse("USD").unwrap();
        let limit = OverdraftLimit::parse("100", usd, "o").unwrap();
        assert!(limit.allows(Decimal::new(-10000, 2)));
        assert!(!limit.allows(Decimal::new(-10001, 2)));
        assert!(
            OverdraftLimit::parse("unlimited", usd, "o")
                .unwrap()
                .allows(Decimal::MIN)
        );
        assert_eq!(OverdraftLimit::Limited(Decimal::ZERO).to_string(), "0");
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert_eq!(parse_metadata(None, "m").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_metadata(Some(serde_json::json!([1])), "m")
                .unwrap_err()
                .code,
            "invalid_field"
        );
        assert_eq!(
            parse_metadata(Some(serde_json::json!({"a": ["\0"]})), "m")
                .unwrap_err()
                .field,
            "m.a[0]"
        );
        for huge in [
            serde_json::json!({"n": -1.7976931348623157e308}),
            serde_json::json!({"a": [1, {"b": 1e20}]}),
            serde_json::json!({"u": u64::MAX}),
        ] {
            assert_eq!(
                parse_metadata(Some(huge.clone()), "m").unwrap_err().code,
                "invalid_field",
                "{huge}"
            );
        }
        assert_eq!(
            parse_metadata(Some(serde_json::json!({"a": [1, {"b": 1e20}]})), "m")
                .unwrap_err()
                .field,
            "m.a[1].b"
        );
        parse_metadata(
            Some(serde_json::json!({"ok": [9007199254740992i64, -2.5e-300, 0.1]})),
            "m",
        )
        .unwrap();
        let big = serde_json::json!({ "k": "x".repeat(MAX_METADATA_BYTES) });
        assert_eq!(
            parse_metadata(Some(big), "m").unwrap_err().code,
            "metadata_too_large"
        );
    }
}
