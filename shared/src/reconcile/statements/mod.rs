//! Statement import: turns the bytes of a bank or processor statement (CSV, JSON or ISO 20022
//! camt.053) into signed statement lines. Pure: nothing here reads a file or a socket.
//!
//! Two levels of failure. A [`StatementError`] means the file as a whole cannot be read (not UTF-8,
//! broken structure, a CSV header without the columns we need, no lines at all) and nothing is
//! imported. Otherwise every line comes back as either a [`ParsedLine`] or a [`LineError`] with a
//! stable code, in file order, so a caller can import the good lines and report the bad ones.
//!
//! Every line gets an external id. A line that carries none (no `id` column or field, no
//! `AcctSvcrRef`/`NtryRef`) is given `h:` + 32 hex digits of a hash of its content and of how many
//! identical lines came before it in the file, so importing the same file twice yields the same ids
//! (the import is idempotent) while two identical lines of one file stay two lines.
//!
//! # CSV
//! The first non-blank row is the header. Header names are matched case-insensitively after trimming;
//! extra columns and blank rows are ignored. Documented default columns:
//!
//! | column        | required                       | content                                   |
//! |---------------|--------------------------------|-------------------------------------------|
//! | `id`          | no                             | external id                               |
//! | `booked_date` | yes                            | date, `%Y-%m-%d` unless `date_format`      |
//! | `amount`      | yes, or `debit` and `credit`   | signed decimal, money in > 0              |
//! | `debit`       | with `credit`, instead of `amount` | unsigned decimal, money out           |
//! | `credit`      | with `debit`, instead of `amount`  | unsigned decimal, money in            |
//! | `currency`    | unless `default_currency`      | ISO 4217 code                              |
//! | `reference`   | no                             | text, at most 500 characters               |
//! | `description` | no                             | text, at most 500 characters               |
//!
//! A [`ColumnMapping`] renames any of them (see [`parse_column_mapping`]); a column the mapping names
//! must exist. With `debit`/`credit`, exactly one of the two is filled in per row and the line amount
//! is `credit - debit`. Amounts are plain decimals with a `.` separator (`-1234.56`): no thousands
//! separators, no exponent. A line's number is its physical line in the file (a header on the first
//! line is line 1).
//!
//! # JSON
//! `{"lines": [ ... ]}` (other top-level keys are ignored) or a bare array of line objects with the
//! fields `id`, `bookedDate`, `amount` (a decimal string, or a JSON number read from its literal text),
//! `currency`, `reference`, `description`. Any other field is a line error. A line's number is its
//! 1-based index in the array.
//!
//! # camt.053
//! Every `BkToCstmrStmt/Stmt/Ntry` of any `camt.053.001.xx` version (names are matched without their
//! namespace) is a line; a line's number is the entry's 1-based index in the document.
//! - amount: `Amt` (unsigned) in its `Ccy`; `CdtDbtInd` `CRDT` is money in, `DBIT` money out.
//!   `RvslInd` does not change the sign: ISO 20022's usage rule for it reads "if the
//!   CreditDebitIndicator is CRDT and ReversalIndicator is Yes, the original operation was a debit
//!   entry", so `CdtDbtInd` already is the direction of the reversing entry itself (and only so do
//!   the entries add up from the opening to the closing balance);
//! - status: an entry whose `Sts` (or `Sts/Cd`) is present and not `BOOK` is refused;
//! - booked: `BookgDt/Dt`, or the date part of `BookgDt/DtTm`;
//! - external id: `AcctSvcrRef`, else `NtryRef`;
//! - reference: the first `NtryDtls/TxDtls/Refs/EndToEndId` other than `NOTPROVIDED`, else the
//!   `RmtInf/Ustrd` lines of the first transaction carrying any, else
//!   `RmtInf/Strd/CdtrRefInf/Ref`;
//! - description: `AddtlNtryInf`, else `RmtInf/Ustrd`.
//!
//! # Line error codes
//! `invalid_amount` (not a plain decimal, zero, a negative debit/credit/camt amount, both debit and
//! credit filled in), `amount_too_large`, `amount_scale_exceeded`, `unknown_currency`,
//! `invalid_date`, `missing_field`, `field_too_long`, `invalid_field` (a JSON value of the wrong
//! type, a camt `CdtDbtInd` other than CRDT/DBIT), `unknown_field` (JSON), `malformed_line` (a CSV
//! row whose field count differs from the header's, a JSON line that is not an object or repeats a
//! field), `entry_not_booked` (camt), `duplicate_external_id`.

mod camt053;
mod csv;
mod json;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use self::camt053::camt_lines;
use self::csv::csv_lines;
use self::json::json_lines;
use crate::money::{self, Currency};
use crate::validation::ValidationError;

pub use self::camt053::camt053_account;
pub use self::csv::parse_column_mapping;

/// Longest reference or description a line may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest external id a line may carry, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementFormat {
    Csv,
    Json,
    Camt053,
}

impl StatementFormat {
    /// `csv`, `json` or `camt053` (also `camt.053`), in any case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "camt053" | "camt.053" => Some(Self::Camt053),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Camt053 => "camt053",
        }
    }
}

impl fmt::Display for StatementFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One statement line, ready to be stored and matched.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    pub line_no: usize,
    pub external_id: String,
    pub booked: NaiveDate,
    /// Signed from the account's point of view (money into the account > 0), never zero, at exactly
    /// the currency's scale.
    pub amount: Decimal,
    pub currency: Currency,
    pub reference: Option<String>,
    pub description: Option<String>,
}

/// Why one line could not be imported. `code` is part of the public contract.
#[derive(Clone, Debug, PartialEq)]
pub struct LineError {
    pub line_no: usize,
    pub code: &'static str,
    pub reason: String,
}

/// Header names for the CSV fields; `None` keeps the documented default name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ColumnMapping {
    pub external_id: Option<String>,
    pub booked_date: Option<String>,
    /// Takes precedence over `debit`/`credit` when both are given.
    pub amount: Option<String>,
    pub debit: Option<String>,
    pub credit: Option<String>,
    pub currency: Option<String>,
    pub reference: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParseOptions {
    /// CSV only; empty means the documented default headers.
    pub mapping: ColumnMapping,
    /// chrono strftime format of booked dates in CSV and JSON. Default: ISO `%Y-%m-%d`, where a full
    /// ISO timestamp (`2024-03-04T10:15:00+01:00`) also gives its date as written.
    pub date_format: Option<String>,
    /// Currency of lines that have no currency column or field (or leave it empty).
    pub default_currency: Option<Currency>,
    /// CSV field delimiter; default `,`.
    pub delimiter: Option<u8>,
}

/// A problem with the file as a whole: nothing in it can be imported.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatementError {
    #[error("the statement is not UTF-8 text: {detail}")]
    InvalidEncoding { detail: String },
    #[error("the statement is malformed: {detail}")]
    Malformed { detail: String },
    #[error("the CSV header lacks required column(s): {}", .missing.join(", "))]
    MissingColumns { missing: Vec<String> },
    #[error("the statement contains no lines")]
    Empty,
}

impl StatementError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEncoding { .. } => "invalid_encoding",
            Self::Malformed { .. } => "malformed_statement",
            Self::MissingColumns { .. } => "missing_columns",
            Self::Empty => "empty_statement",
        }
    }
}

/// Parses a statement into its lines, in file order.
pub fn parse_statement(
    bytes: &[u8],
    format: StatementFormat,
    options: &ParseOptions,
) -> Result<Vec<Result<ParsedLine, LineError>>, StatementError> {
    let text = utf8_text(bytes)?;
    let candidates = match format {
        StatementFormat::Csv => csv_lines(text, options)?,
        StatementFormat::Json => json_lines(text, options)?,
        StatementFormat::Camt053 => camt_lines(text)?,
    };
    if candidates.is_empty() {
        return Err(StatementError::Empty);
    }
    Ok(assign_external_ids(candidates))
}

// ---------------------------------------------------------------------------------------------
// Common line rules

/// A line that passed every rule but the external id ones.
struct Candidate {
    line_no: usize,
    external_id: Option<String>,
    booked: NaiveDate,
    amount: Decimal,
    currency: Currency,
    reference: Option<String>,
    description: Option<String>,
}

type LineResult = Result<Candidate, LineError>;

fn line_error(line_no: usize, code: &'static str, reason: impl Into<String>) -> LineError {
    LineError {
        line_no,
        code,
        reason: reason.into(),
    }
}

fn from_validation(line_no: usize, field: &str, e: ValidationError) -> LineError {
    line_error(line_no, e.code, format!("{field}: {}", e.detail))
}

/// Strips a UTF-8 byte order mark and insists on UTF-8.
fn utf8_text(bytes: &[u8]) -> Result<&str, StatementError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(StatementError::InvalidEncoding {
            detail: "byte 0 starts a UTF-16 byte order mark; export the statement as UTF-8".into(),
        });
    }
    let (skipped, body) = match bytes.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, bytes),
    };
    std::str::from_utf8(body).map_err(|e| {
        let valid = e.valid_up_to();
        let line = body[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        StatementError::InvalidEncoding {
            detail: format!(
                "byte {} (line {line}, value 0x{:02X}) is not valid UTF-8; export the statement \
                 as UTF-8",
                skipped + valid,
                body[valid]
            ),
        }
    })
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Trims; an empty value is no value.
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn bounded(
    line_no: usize,
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, LineError> {
    if let Some(v) = value {
        crate::validation::reject_nul(v, field).map_err(|e| from_validation(line_no, field, e))?;
    }
    match non_empty(value) {
        Some(v) if v.chars().count() > max => Err(line_error(
            line_no,
            "field_too_long",
            format!("{field}: limited to {max} characters"),
        )),
        v => Ok(v.map(str::to_string)),
    }
}

fn required<'a>(line_no: usize, field: &str, value: Option<&'a str>) -> Result<&'a str, LineError> {
    non_empty(value)
        .ok_or_else(|| line_error(line_no, "missing_field", format!("{field}: no value")))
}

fn parse_currency(line_no: usize, field: &str, code: &str) -> Result<Currency, LineError> {
    Currency::parse(&code.trim().to_ascii_uppercase())
        .map_err(|e| from_validation(line_no, field, e))
}

fn parse_unsigned(line_no: usize, field: &str, text: &str) -> Result<Decimal, LineError> {
    let value =
        money::parse_decimal_str(text, field).map_err(|e| from_validation(line_no, field, e))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(line_error(
            line_no,
            "invalid_amount",
            format!("{field}: `{text}` must not be negative; the column says the direction"),
        ));
    }
    Ok(value)
}

/// Rejects zero and rescales to the currency's minor units, refusing to round.
fn line_amount(
    line_no: usize,
    field: &str,
    amount: Decimal,
    currency: Currency,
) -> Result<Decimal, LineError> {
    if amount.is_zero() {
        return Err(line_error(
            line_no,
            "invalid_amount",
            format!("{field}: a statement line cannot move zero"),
        ));
    }
    money::at_currency_scale(amount, currency, field)
        .map_err(|e| from_validation(line_no, field, e))
}

fn parse_date(
    line_no: usize,
    field: &str,
    text: &str,
    format: Option<&str>,
) -> Result<NaiveDate, LineError> {
    let parsed = match format {
        Some(f) => NaiveDate::parse_from_str(text, f)
            .or_else(|_| NaiveDateTime::parse_from_str(text, f).map(|d| d.date()))
            .ok(),
        None => iso_date(text),
    };
    let parsed = parsed.map(|d| {
        crate::validation::check_date(d, field).map_err(|e| from_validation(line_no, field, e))
    });
    parsed.transpose()?.ok_or_else(|| {
        line_error(
            line_no,
            "invalid_date",
            format!(
                "{field}: `{text}` is not a date in the format {}",
                format.unwrap_or("%Y-%m-%d")
            ),
        )
    })
}

/// An ISO date, or the date part (as written) of an ISO timestamp.
fn iso_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| d.date_naive())
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|d| d.date())
        })
}

/// Gives each valid line its final external id and rejects explicit ids seen before in the file.
fn assign_external_ids(lines: Vec<LineResult>) -> Vec<Result<ParsedLine, LineError>> {
    let mut seen_ids = HashSet::new();
    let mut occurrences: HashMap<String, usize> = HashMap::new();
    lines
        .into_iter()
        .map(|line| {
            let line = line?;
            let external_id = match line.external_id {
                Some(id) => id,
                None => {
                    let content = format!(
                        "{}|{}|{}|{}|{}",
                        line.booked,
                        line.amount,
                        line.currency,
                        line.reference.as_deref().unwrap_or(""),
                        line.description.as_deref().unwrap_or("")
                    );
                    let n = occurrences.entry(content.clone()).or_insert(0);
                    let digest = Sha256::digest(format!("{content}|{n}").as_bytes());
                    *n += 1;
                    format!("h:{}", &hex::encode(digest)[..32])
                }
            };
            if !seen_ids.insert(external_id.clone()) {
                return Err(line_error(
                    line.line_no,
                    "duplicate_external_id",
                    format!("external id `{external_id}` appears earlier in this statement"),
                ));
            }
            Ok(ParsedLine {
                line_no: line.line_no,
                external_id,
                booked: line.booked,
                amount: line.amount,
                currency: line.currency,
                reference: line.reference,
                description: line.description,
            })
        })
        .collect()
}
