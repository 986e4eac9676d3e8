//! The one error type every parsing constructor returns for input a user got wrong. The API maps it
//! onto a problem+json response; its `code` is part of the public contract and never changes meaning.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Stable machine-readable code, e.g. `amount_scale_exceeded`.
    pub code: &'static str,
    /// Dotted path of the offending field as the client sent it, e.g. `transaction.amount`.
    pub field: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl ValidationError {
    pub fn new(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// Re-roots the field path under `parent` (`amount` becomes `transaction.amount`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// PostgreSQL cannot store U+0000 in `text` or `jsonb`: such input is the client's error, refused
/// at the edge with this code, never sent to the database (where it would fail a whole batch).
pub const NUL_CHARACTER: &str = "nul_character";

/// Refuses a string holding U+0000.
pub fn reject_nul(text: &str, field: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        return Err(nul_error(field));
    }
    Ok(())
}

/// Refuses a JSON value with U+0000 in any string or object key, naming the first one's path
/// (`metadata.note`, `lines[3].reference`).
pub fn reject_nul_json(value: &serde_json::Value, field: &str) -> Result<(), ValidationError> {
    match nul_path(value, field) {
        Some(path) => Err(nul_error(&path)),
        None => Ok(()),
    }
}

fn nul_path(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::String(s) => s.contains('\0').then(|| path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_path(v, &join(k))
            }
        }),
        _ => None,
    }
}

fn nul_error(field: &str) -> ValidationError {
    ValidationError::new(
        NUL_CHARACTER,
        field,
        "text must not contain the NUL character (U+0000): the ledger cannot store it",
    )
}

/// Whether raw JSON text holds a `\u0000` escape inside a string (a raw NUL byte is not valid
/// JSON at all). Cheap enough to run on every body before it is deserialized.
pub fn json_has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(&b"0000"[..]) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The dates this ledger accepts anywhere (statement lines, reconciliation windows, `asOf`, cursor
/// positions): 1970-01-01 to 9999-12-31. PostgreSQL and chrono both reach further, but not to the
/// same places (year 0, negative years, year 200000), and no payment is booked outside this range.
pub const MIN_YEAR: i32 = 1970;
pub const MAX_YEAR: i32 = 9999;

/// Whether a date lies in the accepted range.
pub fn date_in_range(date: chrono::NaiveDate) -> bool {
    use chrono::Datelike;
    (MIN_YEAR..=MAX_YEAR).contains(&date.year())
}

/// Refuses a date outside 1970-01-01..=9999-12-31 with `date_out_of_range`.
pub fn check_date(
    date: chrono::NaiveDate,
    field: &str,
) -> Result<chrono::NaiveDate, ValidationError> {
    if date_in_range(date) {
        Ok(date)
    } else {
        Err(ValidationError::new(
            "date_out_of_range",
            field,
            format!("{field} must be between {MIN_YEAR}-01-01 and {MAX_YEAR}-12-31"),
        ))
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.field, self.detail)
    }
}

impl std::error::Error for ValidationError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_bounded() {
        let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert!(check_date(d(1970, 1, 1), "d").is_ok());
        assert!(check_date(d(9999, 12, 31), "d").is_ok());
        for bad in [
            d(1969, 12, 31),
            d(0, 1, 1),
            d(-5000, 1, 1),
            d(200_000, 1, 1),
        ] {
            assert_eq!(check_date(bad, "d").unwrap_err().code, "date_out_of_range");
        }
    }

    #[test]
    fn nul_is_found_in_strings_keys_and_escapes() {
        assert!(reject_nul("fine", "f").is_ok());
        assert_eq!(reject_nul("a\0b", "f").unwrap_err().code, NUL_CHARACTER);
        let v = json!({"a": {"b": ["x", "y\0"]}});
        assert_eq!(
            reject_nul_json(&v, "metadata").unwrap_err().field,
            "metadata.a.b[1]"
        );
        let v = json!({"k\0": 1});
        assert_eq!(reject_nul_json(&v, "").unwrap_err().code, NUL_CHARACTER);
        assert!(reject_nul_json(&json!({"a": [1, true, null, "ok"]}), "m").is_ok());
        assert!(json_has_nul_escape(br#"{"a":"\u0000"}"#));
        assert!(json_has_nul_escape(br#"{"a\u0000":1}"#));
        // An escaped backslash followed by the text u0000 is not a NUL.
        assert!(!json_has_nul_escape(br#"{"a":"\\u0000"}"#));
        assert!(json_has_nul_escape(br#"{"a":"\\\u0000"}"#));
    }
}
