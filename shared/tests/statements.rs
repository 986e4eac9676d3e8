//! Statement import against real-shaped files in `tests/fixtures/statements/`: every line of each
//! fixture, with its id, booked date, signed amount and reference, and the errors broken files give.

use std::path::PathBuf;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use shared::money::Currency;
use shared::reconcile::statements::{
    LineError, ParseOptions, ParsedLine, StatementError, StatementFormat, camt053_account,
    parse_column_mapping, parse_statement,
};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/fixtures/statements",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(
    name: &str,
    format: StatementFormat,
    options: &ParseOptions,
) -> Result<Vec<Result<ParsedLine, LineError>>, StatementError> {
    parse_statement(&fixture(name), format, options)
}

/// One line per statement line: `line_no id booked amount currency | reference | description`, or
/// `line_no ! code` for a line error.
fn summary(lines: &[Result<ParsedLine, LineError>]) -> Vec<String> {
    lines
        .iter()
        .map(|line| match line {
            Ok(l) => format!(
                "{} {} {} {} {} | {} | {}",
                l.line_no,
                l.external_id,
                l.booked,
                l.amount,
                l.currency,
                l.reference.as_deref().unwrap_or("-"),
                l.description.as_deref().unwrap_or("-")
            ),
            Err(e) => format!("{} ! {}", e.line_no, e.code),
        })
        .collect()
}

fn derived_id(content: &str) -> String {
    format!(
        "h:{}",
        &hex::encode(Sha256::digest(content.as_bytes()))[..32]
    )
}

#[test]
fn camt053_sample_gives_every_entry_signed_with_its_reference() {
    let lines = parse(
        "camt053_sample.xml",
        StatementFormat::Camt053,
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(
        summary(&lines),
        [
            "1 2024030400001 2024-03-04 1250.00 EUR | INV-2024-0042 | SEPA Credit Transfer",
            "2 2024030400002 2024-03-04 -89.90 EUR | Hosting March 2024 contract 7781 | SEPA Direct Debit",
            "3 h:d9a9badbed2c1d9038a235ef59a1cca2 2024-03-04 400.00 EUR | Payout batch PB-5531 | Payout batch PB-5531",
            "4 NR-0004 2024-03-05 -3200.00 EUR | RF18539007547034 | Rent March 2024",
            "5 2024030500001 2024-03-05 89.90 EUR | Return Hosting March 2024 contract 7781 AC04 account closed | SEPA Direct Debit return",
            "6 2024030500002 2024-03-05 -12.50 EUR | - | Account maintenance fee 02/2024",
            "7 2024030500003 2024-03-05 560.25 EUR | E2E-77812-A | Order 77812 settlement",
        ]
    );
    assert_eq!(
        lines[2].as_ref().unwrap().external_id,
        derived_id("2024-03-04|400.00|EUR|Payout batch PB-5531|Payout batch PB-5531|0")
    );
    // The entries carry the statement from its opening to its closing balance (OPBD 15000.00,
    // CLBD 13997.75): the reversal in entry 5 is a credit, as its CdtDbtInd says.
    let net: Decimal = lines.iter().map(|l| l.as_ref().unwrap().amount).sum();
    let (opening, closing) = (Decimal::new(1_500_000, 2), Decimal::new(1_399_775, 2));
    assert_eq!(opening + net, closing);
    assert_eq!(
        camt053_account(&fixture("camt053_sample.xml")).as_deref(),
        Some("DE89370400440532013000")
    );
}

#[test]
fn reimporting_a_statement_gives_the_same_ids() {
    for (name, format) in [
        ("camt053_sample.xml", StatementFormat::Camt053),
        ("default_layout.csv", StatementFormat::Csv),
        ("lines.json", StatementFormat::Json),
    ] {
        let first = parse(name, format, &ParseOptions::default()).unwrap();
        let again = parse(name, format, &ParseOptions::default()).unwrap();
        assert_eq!(first, again, "{name}");
    }
}

#[test]
fn truncated_camt053_is_malformed_with_its_position() {
    let err = parse(
        "broken.xml",
        StatementFormat::Camt053,
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "malformed_statement");
    let StatementError::Malformed { detail } = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("line 1"), "{detail}");
    assert_eq!(camt053_account(&fixture("broken.xml")), None);
}

#[test]
fn default_layout_csv() {
    let lines = parse(
        "default_layout.csv",
        StatementFormat::Csv,
        &ParseOptions::default(),
    )
    .unwrap();
    let batch = "2024-03-05|400.00|USD|PB-5531|Payout batch";
    assert_eq!(
        summary(&lines),
        [
            "2 st_1001 2024-03-04 1250.00 USD | INV-2024-0042 | Payment from ACME, Inc."
                .to_string(),
            "3 st_1002 2024-03-04 -89.90 USD | - | Hosting".to_string(),
            format!(
                "4 {} 2024-03-05 400.00 USD | PB-5531 | Payout batch",
                derived_id(&format!("{batch}|0"))
            ),
            format!(
                "5 {} 2024-03-05 400.00 USD | PB-5531 | Payout batch",
                derived_id(&format!("{batch}|1"))
            ),
            "6 st_1005 2024-03-05 5000 JPY | - | Yen settlement".to_string(),
            "7 ! amount_scale_exceeded".to_string(),
            "8 st_1007 2024-03-06 12.345 KWD | KW-1 | -".to_string(),
            "9 ! duplicate_external_id".to_string(),
        ]
    );
    assert_eq!(
        derived_id(&format!("{batch}|0")),
        "h:e87df2b2feb89c0d9a58b21b6429e48c"
    );
}

#[test]
fn debit_and_credit_columns_csv() {
    let lines = parse(
        "debit_credit.csv",
        StatementFormat::Csv,
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(
        summary(&lines),
        [
            "2 dc-1 2024-03-04 1250.00 EUR | INV-2024-0042 | Customer payment",
            "3 dc-2 2024-03-04 -89.90 EUR | - | Direct debit hosting",
            "4 dc-3 2024-03-05 -12.50 EUR | - | Account fee",
            "5 ! invalid_amount",
            "6 ! missing_field",
        ]
    );
}

#[test]
fn bank_export_with_a_column_mapping() {
    let options = ParseOptions {
        mapping: parse_column_mapping(
            "externalId=Transaction ID,bookedDate=Value Date,amount=Amount,currency=Currency,reference=Memo",
        )
        .unwrap(),
        date_format: Some("%d/%m/%Y".into()),
        default_currency: None,
        delimiter: Some(b';'),
    };
    let lines = parse("bank_export_semicolon.csv", StatementFormat::Csv, &options).unwrap();
    assert_eq!(
        summary(&lines),
        [
            "2 TRX-880101 2024-03-01 2500.00 EUR | Invoice INV-2024-0040 | -",
            "3 TRX-880102 2024-03-01 -149.99 EUR | Card payment; Office Supplies GmbH | -",
            "4 TRX-880103 2024-03-04 -1200.00 EUR | Payroll March batch PB-5520 | -",
            "5 TRX-880104 2024-03-05 75.50 EUR | - | -",
            "6 ! invalid_date",
            "7 TRX-880106 2024-02-29 -3.20 EUR | Bank charges | -",
        ]
    );
    // Without the mapping the same file names what it lacks.
    let err = parse(
        "bank_export_semicolon.csv",
        StatementFormat::Csv,
        &ParseOptions {
            delimiter: Some(b';'),
            ..ParseOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        StatementError::MissingColumns {
            missing: vec!["booked_date".into()]
        }
    );
}

#[test]
fn json_lines() {
    let lines = parse(
        "lines.json",
        StatementFormat::Json,
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(
        summary(&lines),
        [
            "1 po_001 2024-03-04 1250.00 USD | INV-2024-0042 | Charge ch_3Ox1".to_string(),
            "2 po_002 2024-03-04 -36.55 USD | - | Processing fees".to_string(),
            format!(
                "3 {} 2024-03-05 400.00 EUR | PB-5531 | -",
                derived_id("2024-03-05|400.00|EUR|PB-5531||0")
            ),
            "4 ! amount_scale_exceeded".to_string(),
            "5 ! unknown_field".to_string(),
            "6 ! invalid_date".to_string(),
            "7 po_007 2024-03-05 19.99 USD | - | Lower-case currency code".to_string(),
        ]
    );
}

#[test]
fn latin1_csv_is_not_utf8() {
    let err = parse("latin1.csv", StatementFormat::Csv, &ParseOptions::default()).unwrap_err();
    assert_eq!(err.code(), "invalid_encoding");
    assert_eq!(
        err,
        StatementError::InvalidEncoding {
            detail:
                "byte 64 (line 2, value 0xE9) is not valid UTF-8; export the statement as UTF-8"
                    .into()
        }
    );
}

#[test]
fn missing_columns_csv_names_them() {
    let err = parse(
        "missing_columns.csv",
        StatementFormat::Csv,
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "missing_columns");
    assert_eq!(
        err,
        StatementError::MissingColumns {
            missing: vec!["amount".into(), "currency".into()]
        }
    );
    // With a default currency only the amount is missing.
    let err = parse(
        "missing_columns.csv",
        StatementFormat::Csv,
        &ParseOptions {
            default_currency: Some(Currency::parse("EUR").unwrap()),
            ..ParseOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the CSV header lacks required column(s): amount"
    );
}
