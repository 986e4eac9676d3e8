//! JSON statements (see the module documentation of `statements` for the fields).

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    Candidate, LineError, LineResult, MAX_EXTERNAL_ID_CHARS, MAX_TEXT_CHARS, ParseOptions,
    StatementError, bounded, from_validation, line_amount, line_error, parse_currency, parse_date,
    required,
};
use crate::money::Currency;
use crate::transfers::parse_amount_json;

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

pub(super) fn json_lines(
    text: &str,
    options: &ParseOptions,
) -> Result<Vec<LineResult>, StatementError> {
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
