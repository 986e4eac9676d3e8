//! ISO 20022 camt.053 statements (see the module documentation of `statements` for the rules).

use quick_xml::events::Event;

use super::{
    Candidate, LineResult, MAX_EXTERNAL_ID_CHARS, MAX_TEXT_CHARS, StatementError, bounded,
    line_amount, line_error, line_of, parse_currency, parse_date, parse_unsigned, required,
    utf8_text,
};

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

pub(super) fn camt_lines(text: &str) -> Result<Vec<LineResult>, StatementError> {
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
