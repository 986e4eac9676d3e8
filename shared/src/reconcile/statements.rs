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

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use quick_xml::events::Event;
use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::money::{self, Currency};
use crate::transfers::parse_amount_json;
use crate::validation::ValidationError;

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

/// Parses a compact column mapping such as
/// `externalId=Ref,bookedDate=Date,amount=Amount,currency=Ccy,reference=Memo,description=Text`
/// (or `debit=Out,credit=In` instead of `amount`). Fields are matched ignoring case, `_` and `-`
/// (`booked_date` works too; `id` is `externalId`); spaces around names are trimmed, so a header name
/// may contain spaces but not `,` or `=`. An empty spec is the default mapping.
pub fn parse_column_mapping(spec: &str) -> Result<ColumnMapping, String> {
    let mut mapping = ColumnMapping::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((field, header)) = part.split_once('=') else {
            return Err(format!("`{part}` is not of the form field=Header"));
        };
        let (field, header) = (field.trim(), header.trim());
        let key: String = field
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let slot = match key.as_str() {
            "externalid" | "id" => &mut mapping.external_id,
            "bookeddate" => &mut mapping.booked_date,
            "amount" => &mut mapping.amount,
            "debit" => &mut mapping.debit,
            "credit" => &mut mapping.credit,
            "currency" => &mut mapping.currency,
            "reference" => &mut mapping.reference,
            "description" => &mut mapping.description,
            _ => {
                return Err(format!(
                    "unknown field `{field}`; expected externalId, bookedDate, amount, debit, \
                     credit, currency, reference or description"
                ));
            }
        };
        if header.is_empty() {
            return Err(format!("`{field}` is mapped to an empty header name"));
        }
        if slot.is_some() {
            return Err(format!("`{field}` is mapped twice"));
        }
        *slot = Some(header.to_string());
    }
    if mapping.amount.is_some() && (mapping.debit.is_some() || mapping.credit.is_some()) {
        return Err("map either amount, or debit and credit, not both".into());
    }
    if mapping.debit.is_some() != mapping.credit.is_some() {
        return Err("debit and credit are mapped together".into());
    }
    Ok(mapping)
}

/// The IBAN of the first statement's account (`Stmt/Acct/Id/IBAN`) of a camt.053 document, if the
/// document is readable and names one.
pub fn camt053_account(bytes: &[u8]) -> Option<String> {
    let text = utf8_text(bytes).ok()?;
    let mut iban = None;
    walk_camt(text, &mut |captured: Captured| {
        if let Captured::Account(acct) = captured
            && iban.is_none()
        {
            // Kept only when storable: an IBAN is at most 34 characters, and never holds NUL.
            iban = acct
                .find_all(&["Id", "IBAN"])
                .map(|n| n.text().replace(' ', ""))
                .find(|s| !s.is_empty() && s.chars().count() <= 34 && !s.contains('\0'));
        }
    })
    .ok()?;
    iban
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

// ---------------------------------------------------------------------------------------------
// CSV

enum AmountColumns {
    Signed(usize),
    DebitCredit { debit: usize, credit: usize },
}

struct CsvColumns {
    external_id: Option<usize>,
    booked: usize,
    amount: AmountColumns,
    currency: Option<usize>,
    reference: Option<usize>,
    description: Option<usize>,
}

fn csv_lines(text: &str, options: &ParseOptions) -> Result<Vec<LineResult>, StatementError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.delimiter.unwrap_or(b','))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let malformed = |e: csv::Error| {
        let at = e
            .position()
            .map(|p| format!(" at line {}", p.line()))
            .unwrap_or_default();
        StatementError::Malformed {
            detail: format!("CSV{at}: {e}"),
        }
    };
    let blank = |r: &csv::StringRecord| r.iter().all(|f| f.trim().is_empty());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => return Err(StatementError::Empty),
            Some(Err(e)) => return Err(malformed(e)),
            Some(Ok(r)) if blank(&r) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let columns = csv_columns(&names, options)?;
    let date_format = options.date_format.as_deref();
    let mut lines = Vec::new();
    let (mut line_no, mut counted_to) = (1, 0);
    for record in records {
        let record = record.map_err(malformed)?;
        if blank(&record) {
            continue;
        }
        // csv's own line count leaves out blank lines, and its byte position is where it started
        // reading, before any blank lines: count newlines up to the record's first byte instead.
        let mut start = record
            .position()
            .map_or(counted_to, |p| {
                usize::try_from(p.byte()).unwrap_or(usize::MAX)
            })
            .clamp(counted_to, text.len());
        while matches!(text.as_bytes().get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        line_no += text.as_bytes()[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = start;
        if record.len() != names.len() {
            lines.push(Err(line_error(
                line_no,
                "malformed_line",
                format!(
                    "the row has {} fields, the header has {}",
                    record.len(),
                    names.len()
                ),
            )));
            continue;
        }
        lines.push(csv_line(
            line_no,
            &record,
            &names,
            &columns,
            date_format,
            options.default_currency,
        ));
    }
    Ok(lines)
}

/// Resolves the columns the options ask for against the header. A column the mapping names is
/// required; so are `booked_date`, the amount column(s) and, without a default currency, `currency`.
fn csv_columns(names: &[&str], options: &ParseOptions) -> Result<CsvColumns, StatementError> {
    let mapping = &options.mapping;
    let mut missing = Vec::new();
    let mut column = |mapped: &Option<String>, default: &str, required: bool| {
        let name = mapped.as_deref().unwrap_or(default);
        let found = find_column(names, name)?;
        if found.is_none() && (required || mapped.is_some()) {
            missing.push(name.to_string());
        }
        Ok::<_, StatementError>(found)
    };
    let external_id = column(&mapping.external_id, "id", false)?;
    let booked = column(&mapping.booked_date, "booked_date", true)?;
    let debit_credit = mapping.amount.is_none()
        && (mapping.debit.is_some()
            || mapping.credit.is_some()
            || (find_column(names, "amount")?.is_none()
                && (find_column(names, "debit")?.is_some()
                    || find_column(names, "credit")?.is_some())));
    let amount = if debit_credit {
        let debit = column(&mapping.debit, "debit", true)?;
        let credit = column(&mapping.credit, "credit", true)?;
        debit
            .zip(credit)
            .map(|(debit, credit)| AmountColumns::DebitCredit { debit, credit })
    } else {
        column(&mapping.amount, "amount", true)?.map(AmountColumns::Signed)
    };
    let currency = column(
        &mapping.currency,
        "currency",
        options.default_currency.is_none(),
    )?;
    let reference = column(&mapping.reference, "reference", false)?;
    let description = column(&mapping.description, "description", false)?;
    match (booked, amount) {
        (Some(booked), Some(amount)) if missing.is_empty() => Ok(CsvColumns {
            external_id,
            booked,
            amount,
            currency,
            reference,
            description,
        }),
        _ => Err(StatementError::MissingColumns { missing }),
    }
}

/// Index of the header column named `wanted` (case-insensitive, trimmed); naming it twice is an error.
fn find_column(names: &[&str], wanted: &str) -> Result<Option<usize>, StatementError> {
    let wanted = wanted.trim();
    let mut hits = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.eq_ignore_ascii_case(wanted))
        .map(|(i, _)| i);
    match (hits.next(), hits.next()) {
        (Some(first), Some(second)) => Err(StatementError::Malformed {
            detail: format!(
                "the CSV header names column `{wanted}` twice (columns {} and {})",
                first + 1,
                second + 1
            ),
        }),
        (first, _) => Ok(first),
    }
}

fn csv_line(
    line_no: usize,
    record: &csv::StringRecord,
    names: &[&str],
    columns: &CsvColumns,
    date_format: Option<&str>,
    default_currency: Option<Currency>,
) -> LineResult {
    let cell = |i: usize| non_empty(record.get(i));
    let label = |i: usize| format!("column `{}`", names[i]);

    let external_id = match columns.external_id {
        Some(i) => bounded(line_no, &label(i), cell(i), MAX_EXTERNAL_ID_CHARS)?,
        None => None,
    };
    let booked_text = required(line_no, &label(columns.booked), cell(columns.booked))?;
    let booked = parse_date(line_no, &label(columns.booked), booked_text, date_format)?;
    let currency = match (
        columns.currency.and_then(|i| cell(i).map(|c| (i, c))),
        default_currency,
    ) {
        (Some((i, code)), _) => parse_currency(line_no, &label(i), code)?,
        (None, Some(c)) => c,
        (None, None) => {
            let field = columns.currency.map_or("currency".to_string(), label);
            return Err(line_error(
                line_no,
                "missing_field",
                format!("{field}: no value"),
            ));
        }
    };
    let (amount, amount_label) = match columns.amount {
        AmountColumns::Signed(i) => {
            let text = required(line_no, &label(i), cell(i))?;
            let value = money::parse_decimal_str(text, &label(i))
                .map_err(|e| from_validation(line_no, &label(i), e))?;
            (value, label(i))
        }
        AmountColumns::DebitCredit { debit, credit } => match (cell(debit), cell(credit)) {
            (Some(d), None) => (-parse_unsigned(line_no, &label(debit), d)?, label(debit)),
            (None, Some(c)) => (parse_unsigned(line_no, &label(credit), c)?, label(credit)),
            (None, None) => {
                return Err(line_error(
                    line_no,
                    "missing_field",
                    format!(
                        "{} and {}: one of them needs a value",
                        label(debit),
                        label(credit)
                    ),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(line_error(
                    line_no,
                    "invalid_amount",
                    format!(
                        "{} and {}: exactly one of them may have a value",
                        label(debit),
                        label(credit)
                    ),
                ));
            }
        },
    };
    let amount = line_amount(line_no, &amount_label, amount, currency)?;
    let reference = match columns.reference {
        Some(i) => bounded(line_no, &label(i), cell(i), MAX_TEXT_CHARS)?,
        None => None,
    };
    let description = match columns.description {
        Some(i) => bounded(line_no, &label(i), cell(i), MAX_TEXT_CHARS)?,
        None => None,
    };
    Ok(Candidate {
        line_no,
        external_id,
        booked,
        amount,
        currency,
        reference,
        description,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON

const JSON_FIELDS: [&str; 6] = [
    "id",
    "bookedDate",
    "amount",
    "currency",
    "reference",
    "description",
];

#[derive(serde::Deserialize)]
struct JsonEnvelope<'a> {
    #[serde(borrow, default)]
    lines: Option<Vec<&'a RawValue>>,
}

fn json_lines(text: &str, options: &ParseOptions) -> Result<Vec<LineResult>, StatementError> {
    let malformed = |e: serde_json::Error| StatementError::Malformed {
        detail: format!("JSON: {e}"),
    };
    let raw_lines: Vec<&RawValue> = match text.trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(text).map_err(malformed)?,
        Some(b'{') => serde_json::from_str::<JsonEnvelope>(text)
            .map_err(malformed)?
            .lines
            .ok_or_else(|| StatementError::Malformed {
                detail: "JSON: the object has no `lines` array".into(),
            })?,
        Some(_) => {
            return Err(StatementError::Malformed {
                detail: "JSON: expected an object with a `lines` array, or an array of lines"
                    .into(),
            });
        }
        None => return Err(StatementError::Empty),
    };
    let date_format = options.date_format.as_deref();
    Ok(raw_lines
        .into_iter()
        .enumerate()
        .map(|(i, raw)| json_line(i + 1, raw, date_format, options.default_currency))
        .collect())
}

/// A JSON object's members in document order, duplicates kept (so they can be refused).
struct JsonMembers<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for JsonMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = JsonMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(JsonMembers(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

fn json_line(
    line_no: usize,
    raw: &RawValue,
    date_format: Option<&str>,
    default_currency: Option<Currency>,
) -> LineResult {
    let members = serde_json::from_str::<JsonMembers>(raw.get())
        .map_err(|_| line_error(line_no, "malformed_line", "a line must be a JSON object"))?
        .0;
    let mut fields: HashMap<&str, &RawValue> = HashMap::new();
    for (name, value) in &members {
        if !JSON_FIELDS.contains(&name.as_str()) {
            return Err(line_error(
                line_no,
                "unknown_field",
                format!(
                    "unknown field `{name}`; a line has {}",
                    JSON_FIELDS.join(", ")
                ),
            ));
        }
        if fields.insert(name.as_str(), value).is_some() {
            return Err(line_error(
                line_no,
                "malformed_line",
                format!("field `{name}` appears twice"),
            ));
        }
    }
    // Absent and `null` are the same; anything but a string is refused.
    let string = |name: &str| -> Result<Option<String>, LineError> {
        match fields.get(name).map(|v| v.get()) {
            None | Some("null") => Ok(None),
            Some(text) => serde_json::from_str::<String>(text).map(Some).map_err(|_| {
                line_error(
                    line_no,
                    "invalid_field",
                    format!("`{name}`: must be a string"),
                )
            }),
        }
    };

    let external_id = bounded(
        line_no,
        "`id`",
        string("id")?.as_deref(),
        MAX_EXTERNAL_ID_CHARS,
    )?;
    let booked_text = string("bookedDate")?;
    let booked_text = required(line_no, "`bookedDate`", booked_text.as_deref())?;
    let booked = parse_date(line_no, "`bookedDate`", booked_text, date_format)?;
    let currency = match (string("currency")?, default_currency) {
        (Some(code), _) => parse_currency(line_no, "`currency`", &code)?,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(line_error(line_no, "missing_field", "`currency`: no value"));
        }
    };
    let amount = match fields.get("amount") {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            parse_amount_json(raw, "amount")
                .map_err(|e| from_validation(line_no, "`amount`", e))?,
        ),
    };
    let amount =
        amount.ok_or_else(|| line_error(line_no, "missing_field", "`amount`: no value"))?;
    let amount = line_amount(line_no, "`amount`", amount, currency)?;
    let reference = bounded(
        line_no,
        "`reference`",
        string("reference")?.as_deref(),
        MAX_TEXT_CHARS,
    )?;
    let description = bounded(
        line_no,
        "`description`",
        string("description")?.as_deref(),
        MAX_TEXT_CHARS,
    )?;
    Ok(Candidate {
        line_no,
        external_id,
        booked,
        amount,
        currency,
        reference,
        description,
    })
}

// ---------------------------------------------------------------------------------------------
// camt.053

/// Deeper nesting than any camt.053 needs is refused (it also bounds recursion over the tree).
const MAX_XML_DEPTH: usize = 64;

/// An element below an entry or account, names without namespace prefixes.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Text with XML layout whitespace (indentation, wrapped lines) collapsed to single spaces.
    fn text(&self) -> String {
        self.text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Every descendant reached by following `path` of child names, in document order.
    fn find_all<'a>(&'a self, path: &'a [&'a str]) -> Box<dyn Iterator<Item = &'a Node> + 'a> {
        match path.split_first() {
            None => Box::new(std::iter::once(self)),
            Some((first, rest)) => Box::new(
                self.children
                    .iter()
                    .filter(move |c| c.name == *first)
                    .flat_map(move |c| c.find_all(rest)),
            ),
        }
    }

    fn first_text(&self, path: &[&str]) -> Option<String> {
        self.find_all(path).map(Node::text).find(|t| !t.is_empty())
    }
}

enum Captured {
    Entry(Node),
    Account(Node),
}

fn camt_lines(text: &str) -> Result<Vec<LineResult>, StatementError> {
    let mut lines = Vec::new();
    walk_camt(text, &mut |captured: Captured| {
        if let Captured::Entry(entry) = captured {
            lines.push(entry_to_line(lines.len() + 1, &entry));
        }
    })?;
    Ok(lines)
}

/// Streams a camt.053 document, handing over each `BkToCstmrStmt/Stmt/Ntry` and `Stmt/Acct` as a
/// small tree, so memory stays bounded by the largest entry rather than the file.
fn walk_camt(text: &str, on: &mut dyn FnMut(Captured)) -> Result<(), StatementError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let malformed = |offset: u64, what: String| {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        StatementError::Malformed {
            detail: format!(
                "XML at byte {offset} (line {}): {what}",
                line_of(text, offset)
            ),
        }
    };
    let mut path: Vec<String> = Vec::new();
    // Open elements of the entry or account being captured; empty when not capturing.
    let mut open: Vec<Node> = Vec::new();
    let mut statements = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(reader.error_position(), e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = e.local_name().into_inner().to_string();
                let in_statement = path.len() >= 2
                    && path[path.len() - 2] == "BkToCstmrStmt"
                    && path[path.len() - 1] == "Stmt";
                if name == "Stmt" && path.last().is_some_and(|p| p == "BkToCstmrStmt") {
                    statements += 1;
                }
                if !open.is_empty() || (in_statement && (name == "Ntry" || name == "Acct")) {
                    let mut attributes = Vec::new();
                    for attribute in e.attributes() {
                        let attribute = attribute
                            .map_err(|err| malformed(reader.buffer_position(), err.to_string()))?;
                        let value = attribute
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|err| malformed(reader.buffer_position(), err.to_string()))?;
                        attributes.push((
                            attribute.key.local_name().into_inner().to_string(),
                            value.into_owned(),
                        ));
                    }
                    open.push(Node {
                        name: name.clone(),
                        attributes,
                        ..Node::default()
                    });
                }
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                    if path.len() > MAX_XML_DEPTH {
                        return Err(malformed(
                            reader.buffer_position(),
                            format!("elements nest deeper than {MAX_XML_DEPTH} levels"),
                        ));
                    }
                } else {
                    close_node(&mut open, on);
                }
            }
            Event::End(_) => {
                path.pop();
                close_node(&mut open, on);
            }
            Event::Text(t) => {
                if let Some(node) = open.last_mut() {
                    node.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(node) = open.last_mut() {
                    node.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| malformed(reader.buffer_position(), e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| {
                            malformed(
                                reader.buffer_position(),
                                format!("unknown entity `&{};`", &*r),
                            )
                        })?
                        .to_string(),
                };
                if let Some(node) = open.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(inner) = path.last() {
        return Err(malformed(
            reader.buffer_position(),
            format!("the document ends inside <{inner}>; the file looks truncated"),
        ));
    }
    if statements == 0 {
        return Err(StatementError::Malformed {
            detail: "XML: no BkToCstmrStmt/Stmt element; this is not a camt.053 statement".into(),
        });
    }
    Ok(())
}

/// Closes the innermost captured element: attaches it to its parent, or hands over a finished entry
/// or account.
fn close_node(open: &mut Vec<Node>, on: &mut dyn FnMut(Captured)) {
    let Some(node) = open.pop() else { return };
    match open.last_mut() {
        Some(parent) => parent.children.push(node),
        None if node.name == "Ntry" => on(Captured::Entry(node)),
        None => on(Captured::Account(node)),
    }
}

/// Reads one `Ntry` as the module documentation describes.
fn entry_to_line(line_no: usize, entry: &Node) -> LineResult {
    let status = entry
        .first_text(&["Sts", "Cd"])
        .or_else(|| entry.first_text(&["Sts"]));
    if let Some(status) = status
        && status != "BOOK"
    {
        return Err(line_error(
            line_no,
            "entry_not_booked",
            format!("Sts: the entry is `{status}`, not BOOK; only booked entries are imported"),
        ));
    }
    let external_id = entry
        .first_text(&["AcctSvcrRef"])
        .or_else(|| entry.first_text(&["NtryRef"]));
    let external_id = bounded(
        line_no,
        "AcctSvcrRef/NtryRef",
        external_id.as_deref(),
        MAX_EXTERNAL_ID_CHARS,
    )?;

    let booked = match (
        entry.first_text(&["BookgDt", "Dt"]),
        entry.first_text(&["BookgDt", "DtTm"]),
    ) {
        (Some(day), _) => parse_date(line_no, "BookgDt/Dt", &day, None)?,
        (None, Some(stamp)) => parse_date(line_no, "BookgDt/DtTm", &stamp, None)?,
        (None, None) => {
            return Err(line_error(
                line_no,
                "missing_field",
                "BookgDt: no booking date",
            ));
        }
    };

    let amt = entry
        .child("Amt")
        .ok_or_else(|| line_error(line_no, "missing_field", "Amt: the entry has no amount"))?;
    let code = amt
        .attribute("Ccy")
        .ok_or_else(|| line_error(line_no, "missing_field", "Amt/@Ccy: no currency"))?;
    let currency = parse_currency(line_no, "Amt/@Ccy", code)?;
    let amount_text = amt.text();
    let amount = parse_unsigned(
        line_no,
        "Amt",
        required(line_no, "Amt", Some(&amount_text))?,
    )?;
    let direction = entry.first_text(&["CdtDbtInd"]);
    let amount = match direction.as_deref() {
        Some("CRDT") => amount,
        Some("DBIT") => -amount,
        Some(other) => {
            return Err(line_error(
                line_no,
                "invalid_field",
                format!("CdtDbtInd: `{other}` is neither CRDT nor DBIT"),
            ));
        }
        None => return Err(line_error(line_no, "missing_field", "CdtDbtInd: no value")),
    };
    let amount = line_amount(line_no, "Amt", amount, currency)?;

    let unstructured = entry
        .find_all(&["NtryDtls", "TxDtls"])
        .map(|tx| {
            tx.find_all(&["RmtInf", "Ustrd"])
                .map(Node::text)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .find(|t| !t.is_empty());
    let reference = entry
        .find_all(&["NtryDtls", "TxDtls", "Refs", "EndToEndId"])
        .map(Node::text)
        .find(|t| !t.is_empty() && t != "NOTPROVIDED")
        .or_else(|| unstructured.clone())
        .or_else(|| {
            entry.first_text(&["NtryDtls", "TxDtls", "RmtInf", "Strd", "CdtrRefInf", "Ref"])
        });
    let reference = bounded(line_no, "reference", reference.as_deref(), MAX_TEXT_CHARS)?;
    let description = entry.first_text(&["AddtlNtryInf"]).or(unstructured);
    let description = bounded(
        line_no,
        "description",
        description.as_deref(),
        MAX_TEXT_CHARS,
    )?;

    Ok(Candidate {
        line_no,
        external_id,
        booked,
        amount,
        currency,
        reference,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }
    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }
    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn csv(text: &str) -> Vec<Result<ParsedLine, LineError>> {
        parse_statement(
            text.as_bytes(),
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap()
    }
    fn json(text: &str) -> Vec<Result<ParsedLine, LineError>> {
        parse_statement(
            text.as_bytes(),
            StatementFormat::Json,
            &ParseOptions::default(),
        )
        .unwrap()
    }
    fn camt_doc(entries: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId></GrpHdr>
    <Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{entries}</Stmt>
  </BkToCstmrStmt>
</Document>"#
        )
    }
    fn camt(entries: &str) -> Vec<Result<ParsedLine, LineError>> {
        parse_statement(
            camt_doc(entries).as_bytes(),
            StatementFormat::Camt053,
            &ParseOptions::default(),
        )
        .unwrap()
    }
    fn entry(inner: &str) -> String {
        format!("<Ntry>{inner}</Ntry>")
    }
    const BASIC: &str = r#"<Amt Ccy="EUR">10.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#;
    fn code(line: &Result<ParsedLine, LineError>) -> &'static str {
        line.as_ref().unwrap_err().code
    }
    fn ok(line: &Result<ParsedLine, LineError>) -> &ParsedLine {
        line.as_ref().unwrap()
    }

    #[test]
    fn formats_parse_and_print() {
        for f in [
            StatementFormat::Csv,
            StatementFormat::Json,
            StatementFormat::Camt053,
        ] {
            assert_eq!(StatementFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(
            StatementFormat::parse("CAMT.053"),
            Some(StatementFormat::Camt053)
        );
        assert_eq!(StatementFormat::parse("xlsx"), None);
    }

    #[test]
    fn csv_default_headers_give_signed_lines_at_currency_scale() {
        let lines = csv(" ID , Booked_Date ,Amount,Currency,Reference,Description\n\
             tx-1,2024-03-04,10.5,USD,INV-1,Card payment\n\
             tx-2,2024-03-05,-3,usd,,\n");
        assert_eq!(
            lines[0],
            Ok(ParsedLine {
                line_no: 2,
                external_id: "tx-1".into(),
                booked: date("2024-03-04"),
                amount: dec("10.50"),
                currency: usd(),
                reference: Some("INV-1".into()),
                description: Some("Card payment".into()),
            })
        );
        let second = ok(&lines[1]);
        assert_eq!(second.amount.to_string(), "-3.00");
        assert_eq!((second.reference.as_deref(), second.line_no), (None, 3));
    }

    #[test]
    fn csv_line_numbers_are_physical_lines() {
        let lines = csv(
            "booked_date,amount,currency,description\n\n2024-03-04,1,USD,\"two\nlines\"\n2024-03-04,2,USD,x\n",
        );
        assert_eq!(ok(&lines[0]).line_no, 3);
        assert_eq!(ok(&lines[0]).description.as_deref(), Some("two\nlines"));
        assert_eq!(ok(&lines[1]).line_no, 5);
    }

    #[test]
    fn csv_debit_and_credit_columns() {
        let lines = csv("booked_date,debit,credit,currency\n\
             2024-03-04,25.00,,EUR\n\
             2024-03-04,,40,EUR\n\
             2024-03-04,,,EUR\n\
             2024-03-04,1,2,EUR\n\
             2024-03-04,-1,,EUR\n");
        assert_eq!(ok(&lines[0]).amount, dec("-25.00"));
        assert_eq!(ok(&lines[1]).amount.to_string(), "40.00");
        assert_eq!(code(&lines[2]), "missing_field");
        assert_eq!(code(&lines[3]), "invalid_amount");
        assert_eq!(code(&lines[4]), "invalid_amount");
    }

    #[test]
    fn csv_mapping_delimiter_date_format_and_default_currency() {
        let options = ParseOptions {
            mapping: parse_column_mapping(
                "externalId=Transaction ID, bookedDate=Value Date, amount=Amount, reference=Memo",
            )
            .unwrap(),
            date_format: Some("%d/%m/%Y".into()),
            default_currency: Some(Currency::parse("GBP").unwrap()),
            delimiter: Some(b';'),
        };
        let text = "Transaction ID;Value Date;Amount;Memo\nA1;31/01/2024;-12.5;Rent\n";
        let lines = parse_statement(text.as_bytes(), StatementFormat::Csv, &options).unwrap();
        let line = ok(&lines[0]);
        assert_eq!(line.external_id, "A1");
        assert_eq!(line.booked, date("2024-01-31"));
        assert_eq!(line.amount.to_string(), "-12.50");
        assert_eq!(line.currency.code(), "GBP");
        assert_eq!(line.reference.as_deref(), Some("Rent"));
    }

    #[test]
    fn csv_missing_columns_are_named() {
        let err = parse_statement(
            b"id,amount\n1,2\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            StatementError::MissingColumns {
                missing: vec!["booked_date".into(), "currency".into()]
            }
        );
        assert_eq!(err.code(), "missing_columns");
        let err = parse_statement(
            b"booked_date,debit,currency\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            StatementError::MissingColumns {
                missing: vec!["credit".into()]
            }
        );
        let err = parse_statement(
            b"booked_date,currency\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            StatementError::MissingColumns {
                missing: vec!["amount".into()]
            }
        );
        // A mapped optional column must exist.
        let options = ParseOptions {
            mapping: parse_column_mapping("reference=Memo").unwrap(),
            ..ParseOptions::default()
        };
        let err = parse_statement(
            b"booked_date,amount,currency\n",
            StatementFormat::Csv,
            &options,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StatementError::MissingColumns {
                missing: vec!["Memo".into()]
            }
        );
    }

    #[test]
    fn csv_duplicate_header_and_ragged_rows() {
        let err = parse_statement(
            b"booked_date,amount,Amount,currency\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "malformed_statement");
        let lines = csv("booked_date,amount,currency\n2024-03-04,1,USD,extra\n2024-03-04,1,USD\n");
        assert_eq!(code(&lines[0]), "malformed_line");
        assert!(lines[1].is_ok());
    }

    #[test]
    fn csv_without_rows_is_empty() {
        for text in [
            "",
            "\n\n",
            "booked_date,amount,currency\n",
            "booked_date,amount,currency\n,,\n",
        ] {
            assert_eq!(
                parse_statement(
                    text.as_bytes(),
                    StatementFormat::Csv,
                    &ParseOptions::default()
                ),
                Err(StatementError::Empty),
                "{text:?}"
            );
        }
    }

    #[test]
    fn amount_rules() {
        let lines = csv("booked_date,amount,currency\n\
             2024-03-04,abc,USD\n\
             2024-03-04,10.001,USD\n\
             2024-03-04,0.00,USD\n\
             2024-03-04,1.5,JPY\n\
             2024-03-04,1.234,KWD\n\
             2024-03-04,\"1,000.00\",USD\n\
             2024-03-04,,USD\n\
             2024-03-04,10.100,USD\n");
        let codes: Vec<_> = lines
            .iter()
            .map(|l| l.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(
            codes,
            [
                Some("invalid_amount"),
                Some("amount_scale_exceeded"),
                Some("invalid_amount"),
                Some("amount_scale_exceeded"),
                None,
                Some("invalid_amount"),
                Some("missing_field"),
                None,
            ]
        );
        assert_eq!(ok(&lines[4]).amount.to_string(), "1.234");
        assert_eq!(ok(&lines[7]).amount.to_string(), "10.10");
        let err = lines[1].as_ref().unwrap_err();
        assert_eq!(err.line_no, 3);
        assert!(err.reason.contains("`amount`"), "{}", err.reason);
    }

    #[test]
    fn currency_date_and_text_rules() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let just = "é".repeat(MAX_TEXT_CHARS);
        let lines = csv(&format!(
            "booked_date,amount,currency,reference,description\n\
             2024-03-04,1,XYZ,,\n\
             2024-02-30,1,USD,,\n\
             04/03/2024,1,USD,,\n\
             ,1,USD,,\n\
             2024-03-04,1,,,\n\
             2024-03-04,1,USD,{long},\n\
             2024-03-04,1,USD,,{long}\n\
             2024-03-04,1,USD,{just},{just}\n"
        ));
        let codes: Vec<_> = lines
            .iter()
            .map(|l| l.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(
            codes,
            [
                Some("unknown_currency"),
                Some("invalid_date"),
                Some("invalid_date"),
                Some("missing_field"),
                Some("missing_field"),
                Some("field_too_long"),
                Some("field_too_long"),
                None,
            ]
        );
    }

    #[test]
    fn derived_ids_are_stable_and_keep_identical_lines_apart() {
        let text = "booked_date,amount,currency,reference\n\
                    2024-03-04,5,USD,R\n\
                    2024-03-04,5,USD,R\n\
                    2024-03-04,5.00,USD,R\n\
                    2024-03-04,5,USD,S\n";
        let first = csv(text);
        let ids: Vec<_> = first.iter().map(|l| ok(l).external_id.clone()).collect();
        assert!(ids.iter().all(|id| id.starts_with("h:") && id.len() == 34));
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4);
        let again: Vec<_> = csv(text)
            .iter()
            .map(|l| ok(l).external_id.clone())
            .collect();
        assert_eq!(ids, again);
        // The id covers the content, not the line number or the format.
        let digest = Sha256::digest(b"2024-03-04|5.00|USD|R||0");
        assert_eq!(ids[0], format!("h:{}", &hex::encode(digest)[..32]));
        let shifted = csv(&text.replace('\n', "\n\n"));
        assert_eq!(ok(&shifted[0]).external_id, ids[0]);
        let as_json =
            json(r#"[{"bookedDate":"2024-03-04","amount":"5","currency":"USD","reference":"R"}]"#);
        assert_eq!(ok(&as_json[0]).external_id, ids[0]);
    }

    #[test]
    fn a_repeated_explicit_id_is_a_duplicate() {
        let lines = csv("id,booked_date,amount,currency\n\
             A,2024-03-04,1,USD\n\
             B,2024-03-04,1,USD\n\
             A,2024-03-05,2,USD\n");
        assert!(lines[0].is_ok() && lines[1].is_ok());
        let err = lines[2].as_ref().unwrap_err();
        assert_eq!((err.code, err.line_no), ("duplicate_external_id", 4));
    }

    #[test]
    fn json_envelope_or_bare_array() {
        let line = r#"{"id":"p1","bookedDate":"2024-03-04","amount":"12.3","currency":"EUR",
                       "reference":"R-1","description":null}"#;
        for text in [
            format!(r#"{{"account":"x","lines":[{line}]}}"#),
            format!("[{line}]"),
        ] {
            let lines = json(&text);
            assert_eq!(
                lines,
                [Ok(ParsedLine {
                    line_no: 1,
                    external_id: "p1".into(),
                    booked: date("2024-03-04"),
                    amount: dec("12.30"),
                    currency: Currency::parse("EUR").unwrap(),
                    reference: Some("R-1".into()),
                    description: None,
                })]
            );
        }
    }

    #[test]
    fn json_numbers_are_read_from_their_text() {
        let lines = json(
            r#"[{"bookedDate":"2024-03-04","amount":0.30000000000000004,"currency":"USD"},
                {"bookedDate":"2024-03-04","amount":-7.25,"currency":"USD"},
                {"bookedDate":"2024-03-04","amount":"10.001","currency":"USD"},
                {"bookedDate":"2024-03-04","amount":1e2,"currency":"USD"},
                {"bookedDate":"2024-03-04","amount":true,"currency":"USD"},
                {"bookedDate":"2024-03-04","amount":null,"currency":"USD"},
                {"bookedDate":"2024-03-04","amount":0,"currency":"USD"}]"#,
        );
        assert_eq!(code(&lines[0]), "amount_scale_exceeded");
        assert_eq!(ok(&lines[1]).amount.to_string(), "-7.25");
        assert_eq!(code(&lines[2]), "amount_scale_exceeded");
        assert_eq!(ok(&lines[3]).amount.to_string(), "100.00");
        assert_eq!(code(&lines[4]), "invalid_field");
        assert_eq!(code(&lines[5]), "missing_field");
        assert_eq!(code(&lines[6]), "invalid_amount");
        assert_eq!(lines[6].as_ref().unwrap_err().line_no, 7);
    }

    #[test]
    fn json_line_shape_rules() {
        let lines = json(
            r#"[{"bookedDate":"2024-03-04","amount":"1","currency":"USD","memo":"x"},
                "not an object",
                {"bookedDate":"2024-03-04","amount":"1","amount":"2","currency":"USD"},
                {"bookedDate":20240304,"amount":"1","currency":"USD"},
                {"amount":"1","currency":"USD"},
                {"bookedDate":"2024-03-04T23:30:00-05:00","amount":"1","currency":"USD"}]"#,
        );
        assert_eq!(code(&lines[0]), "unknown_field");
        assert!(lines[0].as_ref().unwrap_err().reason.contains("`memo`"));
        assert_eq!(code(&lines[1]), "malformed_line");
        assert_eq!(code(&lines[2]), "malformed_line");
        assert_eq!(code(&lines[3]), "invalid_field");
        assert_eq!(code(&lines[4]), "missing_field");
        assert_eq!(ok(&lines[5]).booked, date("2024-03-04"));
    }

    #[test]
    fn json_uses_the_date_format_and_default_currency() {
        let options = ParseOptions {
            date_format: Some("%d.%m.%Y".into()),
            default_currency: Some(Currency::parse("CHF").unwrap()),
            ..ParseOptions::default()
        };
        let text = r#"[{"bookedDate":"04.03.2024","amount":"-2.5"},
                       {"bookedDate":"2024-03-04","amount":"1"}]"#;
        let lines = parse_statement(text.as_bytes(), StatementFormat::Json, &options).unwrap();
        assert_eq!(ok(&lines[0]).booked, date("2024-03-04"));
        assert_eq!(ok(&lines[0]).amount.to_string(), "-2.50");
        assert_eq!(ok(&lines[0]).currency.code(), "CHF");
        assert_eq!(code(&lines[1]), "invalid_date");
    }

    #[test]
    fn json_file_errors() {
        let parse = |t: &str| {
            parse_statement(
                t.as_bytes(),
                StatementFormat::Json,
                &ParseOptions::default(),
            )
        };
        let err = parse("{\"lines\": [ {\"amount\": \"1\"}, ").unwrap_err();
        assert_eq!(err.code(), "malformed_statement");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert_eq!(
            parse(r#"{"items":[]}"#).unwrap_err().code(),
            "malformed_statement"
        );
        assert_eq!(parse("42").unwrap_err().code(), "malformed_statement");
        assert_eq!(parse(r#"{"lines":[]}"#), Err(StatementError::Empty));
        assert_eq!(parse("  "), Err(StatementError::Empty));
    }

    #[test]
    fn encoding_is_checked_and_a_bom_is_dropped() {
        let err = parse_statement(
            b"booked_date,amount,currency,description\n2024-03-04,1,EUR,Caf\xe9\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_encoding");
        assert!(err.to_string().contains("byte 60 (line 2"), "{err}");
        let lines = parse_statement(
            b"\xEF\xBB\xBFbooked_date,amount,currency\n2024-03-04,1,EUR\n",
            StatementFormat::Csv,
            &ParseOptions::default(),
        )
        .unwrap();
        assert!(lines[0].is_ok());
        let utf16 = parse_statement(
            b"\xFF\xFEb\0",
            StatementFormat::Csv,
            &ParseOptions::default(),
        );
        assert_eq!(utf16.unwrap_err().code(), "invalid_encoding");
    }

    #[test]
    fn column_mapping_spec() {
        let m = parse_column_mapping(
            "externalId=Ref,bookedDate=Date,amount=Amount,currency=Ccy,reference=Memo,description=Text",
        )
        .unwrap();
        assert_eq!(m.external_id.as_deref(), Some("Ref"));
        assert_eq!(m.booked_date.as_deref(), Some("Date"));
        assert_eq!(m.amount.as_deref(), Some("Amount"));
        assert_eq!(m.currency.as_deref(), Some("Ccy"));
        assert_eq!(m.reference.as_deref(), Some("Memo"));
        assert_eq!(m.description.as_deref(), Some("Text"));
        let m = parse_column_mapping(" booked_date = Value Date , debit=Out,credit=In,").unwrap();
        assert_eq!(m.booked_date.as_deref(), Some("Value Date"));
        assert_eq!(
            (m.debit.as_deref(), m.credit.as_deref()),
            (Some("Out"), Some("In"))
        );
        assert_eq!(parse_column_mapping(""), Ok(ColumnMapping::default()));
        for bad in [
            "amount",
            "amount=",
            "colour=Red",
            "amount=A,amount=B",
            "amount=A,debit=D,credit=C",
            "debit=D",
        ] {
            assert!(parse_column_mapping(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn camt_entry_sign_ids_and_reversals() {
        let lines = camt(&[
            entry(&format!("{BASIC}<AcctSvcrRef>BANK-1</AcctSvcrRef><NtryRef>N1</NtryRef>")),
            entry(
                r#"<NtryRef>N2</NtryRef><Amt Ccy="EUR">4</Amt><CdtDbtInd>DBIT</CdtDbtInd><BookgDt><DtTm>2024-03-05T08:00:00+01:00</DtTm></BookgDt>"#,
            ),
            entry(&format!("{BASIC}<RvslInd>true</RvslInd>")),
            entry(
                r#"<Amt Ccy="EUR">4</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>1</RvslInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#,
            ),
        ]
        .concat());
        assert_eq!(ok(&lines[0]).external_id, "BANK-1");
        assert_eq!(ok(&lines[0]).amount.to_string(), "10.50");
        assert_eq!(ok(&lines[1]).external_id, "N2");
        assert_eq!(ok(&lines[1]).amount.to_string(), "-4.00");
        assert_eq!(ok(&lines[1]).booked, date("2024-03-05"));
        // A reversal keeps the sign of its CdtDbtInd: CRDT + RvslInd undoes an earlier debit.
        assert_eq!(ok(&lines[2]).amount.to_string(), "10.50");
        assert!(ok(&lines[2]).external_id.starts_with("h:"));
        assert_eq!(ok(&lines[3]).amount.to_string(), "-4.00");
        assert_eq!(ok(&lines[3]).line_no, 4);
    }

    #[test]
    fn camt_reference_and_description_sources() {
        let tx = |inner: &str| format!("<NtryDtls><TxDtls>{inner}</TxDtls></NtryDtls>");
        let lines = camt(&[
            entry(&format!(
                "{BASIC}{}<AddtlNtryInf>SEPA credit</AddtlNtryInf>",
                tx("<Refs><EndToEndId>E2E-1</EndToEndId></Refs><RmtInf><Ustrd>Invoice 7</Ustrd></RmtInf>")
            )),
            entry(&format!(
                "{BASIC}{}",
                tx("<Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><RmtInf><Ustrd>Invoice\n   8</Ustrd><Ustrd>part 2</Ustrd></RmtInf>")
            )),
            entry(&format!(
                "{BASIC}{}",
                tx("<RmtInf><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf>")
            )),
            entry(&format!("{BASIC}{}", tx("<Refs><EndToEndId>A &amp; B&#x21;</EndToEndId></Refs>"))),
        ]
        .concat());
        assert_eq!(ok(&lines[0]).reference.as_deref(), Some("E2E-1"));
        assert_eq!(ok(&lines[0]).description.as_deref(), Some("SEPA credit"));
        assert_eq!(ok(&lines[1]).reference.as_deref(), Some("Invoice 8 part 2"));
        assert_eq!(
            ok(&lines[1]).description.as_deref(),
            Some("Invoice 8 part 2")
        );
        assert_eq!(ok(&lines[2]).reference.as_deref(), Some("RF18539007547034"));
        assert_eq!(ok(&lines[2]).description, None);
        assert_eq!(ok(&lines[3]).reference.as_deref(), Some("A & B!"));
    }

    #[test]
    fn camt_entry_errors() {
        let lines = camt(&[
            entry(r#"<CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt>1</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">1</Amt><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">1</Amt><CdtDbtInd>CRDT</CdtDbtInd>"#),
            entry(r#"<Amt Ccy="EUR">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-13-01</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">1.001</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">0</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">-1</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="ZZZ">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(r#"<Amt Ccy="EUR">1</Amt><CdtDbtInd>UP</CdtDbtInd><BookgDt><Dt>2024-03-04</Dt></BookgDt>"#),
            entry(&format!("{BASIC}<Sts><Cd>PDNG</Cd></Sts>")),
            entry(&format!("{BASIC}<Sts>BOOK</Sts><AcctSvcrRef>Z</AcctSvcrRef>")),
            entry(&format!("{BASIC}<AcctSvcrRef>Z</AcctSvcrRef>")),
        ]
        .concat());
        let codes: Vec<_> = lines
            .iter()
            .map(|l| l.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(
            codes,
            [
                Some("missing_field"),
                Some("missing_field"),
                Some("missing_field"),
                Some("missing_field"),
                Some("invalid_date"),
                Some("amount_scale_exceeded"),
                Some("invalid_amount"),
                Some("invalid_amount"),
                Some("unknown_currency"),
                Some("invalid_field"),
                Some("entry_not_booked"),
                None,
                Some("duplicate_external_id"),
            ]
        );
    }

    #[test]
    fn camt_file_errors_and_account() {
        let parse = |t: &str| {
            parse_statement(
                t.as_bytes(),
                StatementFormat::Camt053,
                &ParseOptions::default(),
            )
        };
        let doc = camt_doc(&entry(BASIC));
        let truncated = &doc[..doc.find("</Ntry>").unwrap()];
        let err = parse(truncated).unwrap_err();
        assert_eq!(err.code(), "malformed_statement");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(
            parse(&doc.replace("</Dt>", "</Date>")).unwrap_err().code(),
            "malformed_statement"
        );
        assert_eq!(
            parse(&doc.replace("10.50", "&euro;10")).unwrap_err().code(),
            "malformed_statement"
        );
        assert_eq!(
            parse("<Document/>").unwrap_err().code(),
            "malformed_statement"
        );
        assert_eq!(parse(&camt_doc("")), Err(StatementError::Empty));
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(parse(&deep).unwrap_err().code(), "malformed_statement");
        assert_eq!(
            camt053_account(doc.as_bytes()).as_deref(),
            Some("DE89370400440532013000")
        );
        assert_eq!(camt053_account(truncated.as_bytes()), None);
    }

    #[test]
    fn camt_names_match_without_namespace_prefixes() {
        let doc = r#"<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.13">
  <c:BkToCstmrStmt><c:Stmt><c:Ntry><c:Amt Ccy="CHF">7</c:Amt><c:CdtDbtInd>DBIT</c:CdtDbtInd>
  <c:BookgDt><c:Dt>2024-03-04</c:Dt></c:BookgDt></c:Ntry></c:Stmt></c:BkToCstmrStmt>
</c:Document>"#;
        let lines = parse_statement(
            doc.as_bytes(),
            StatementFormat::Camt053,
            &ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(ok(&lines[0]).amount.to_string(), "-7.00");
        assert_eq!(ok(&lines[0]).currency.code(), "CHF");
    }
}
