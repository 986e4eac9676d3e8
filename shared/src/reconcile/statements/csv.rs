//! CSV statements (see the module documentation of `statements` for the columns).

use super::{
    Candidate, ColumnMapping, LineResult, MAX_EXTERNAL_ID_CHARS, MAX_TEXT_CHARS, ParseOptions,
    StatementError, bounded, from_validation, line_amount, line_error, non_empty, parse_currency,
    parse_date, parse_unsigned, required,
};
use crate::money::{self, Currency};

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

pub(super) fn csv_lines(
    text: &str,
    options: &ParseOptions,
) -> Result<Vec<LineResult>, StatementError> {
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
