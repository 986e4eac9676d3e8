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
