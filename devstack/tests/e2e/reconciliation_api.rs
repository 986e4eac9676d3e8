//! The reconciliation routes through the Router: statement import in every format, running a
//! reconciliation, reports in JSON and CSV, and the discrepancy workflow with its actions.

use http::StatusCode;
use serde_json::{Value, json};
use shared::testkit::client::TestResponse;

use crate::helpers::Stack;
use crate::reconciliation::{day, open, today};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/tests/fixtures/statements/"
);

async fn upload(s: &Stack, query: &str, content_type: &str, file: &str) -> TestResponse {
    let bytes = std::fs::read(format!("{FIXTURES}{file}")).unwrap();
    s.api
        .post_raw(&format!("/api/v1/statements?{query}"), content_type, bytes)
        .await
}

#[track_caller]
fn problem(r: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.body["code"], code, "{}", r.text);
}

#[tokio::test]
async fn statements_import_in_every_format_and_reimport_changes_nothing() {
    let s = Stack::start().await;
    s.api
        .post(
            "/api/v1/accounts",
            &json!({"id": "bank-eur", "currency": "EUR"}),
        )
        .await;

    // camt.053, real-shaped: every booked entry is a line, signed by CdtDbtInd.
    let camt = upload(
        &s,
        "accountId=bank-eur",
        "application/xml",
        "camt053_sample.xml",
    )
    .await;
    assert_eq!(camt.status, StatusCode::CREATED, "{}", camt.text);
    assert_eq!(camt.body["format"], "camt053");
    let imported = camt.body["imported"].as_u64().unwrap();
    assert!(imported >= 6, "{}", camt.text);
    assert_eq!(camt.body["rejected"], 0);
    let again = upload(
        &s,
        "accountId=bank-eur",
        "application/xml",
        "camt053_sample.xml",
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        (
            again.body["imported"].as_u64(),
            again.body["duplicates"].as_u64()
        ),
        (Some(0), Some(imported))
    );
    assert!(
        again.body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "duplicate")
    );

    // A bank export in its own layout, through a column mapping. One row has 31/02: without best
    // effort nothing is imported; with it, the other rows are.
    let query = "accountId=bank-eur&delimiter=%3B&dateFormat=%25d%2F%25m%2F%25Y&mapping=externalId%3DTransaction%20ID%2CbookedDate%3DValue%20Date%2Camount%3DAmount%2Ccurrency%3DCurrency%2Creference%3DMemo";
    let refused = upload(&s, query, "text/csv", "bank_export_semicolon.csv").await;
    problem(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "statement_rejected",
    );
    let bad: Vec<&Value> = refused.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "rejected")
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0]["line"].as_u64(), bad[0]["code"].as_str()),
        (Some(6), Some("invalid_date"))
    );
    let best = upload(
        &s,
        &format!("{query}&bestEffort=true"),
        "text/csv",
        "bank_export_semicolon.csv",
    )
    .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.text);
    assert_eq!(
        (
            best.body["imported"].as_u64(),
            best.body["rejected"].as_u64()
        ),
        (Some(5), Some(1))
    );

    // JSON lines in the JSON envelope: a float artefact is refused, not rounded.
    let json_lines = s.api.post("/api/v1/statements", &json!({"accountId": "bank-eur", "lines": [
        {"id": "j1", "bookedDate": "2026-01-05", "amount": "12.50", "currency": "EUR"},
        {"id": "j2", "bookedDate": "2026-01-05", "amount": 0.30000000000000004, "currency": "EUR"},
    ]}))
    .await;
    problem(
        &json_lines,
        StatusCode::UNPROCESSABLE_ENTITY,
        "statement_rejected",
    );
    assert_eq!(json_lines.body["lines"][1]["code"], "amount_scale_exceeded");
    // And CSV text inside the envelope, with debit/credit columns.
    let csv = std::fs::read_to_string(format!("{FIXTURES}debit_credit.csv")).unwrap();
    let enveloped = s
        .api
        .post(
            "/api/v1/statements",
            &json!({"accountId": "bank-eur", "format": "csv", "content": csv, "bestEffort": true}),
        )
        .await;
    assert!(enveloped.status.is_success(), "{}", enveloped.text);

    // Files that cannot be read at all.
    problem(
        &upload(&s, "accountId=bank-eur", "application/xml", "broken.xml").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed_statement",
    );
    problem(
        &upload(&s, "accountId=bank-eur", "text/csv", "latin1.csv").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_encoding",
    );
    problem(
        &upload(&s, "accountId=bank-eur", "text/csv", "missing_columns.csv").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_columns",
    );
    let empty = s
        .api
        .post_raw(
            "/api/v1/statements?accountId=bank-eur",
            "text/csv",
            b"id,booked_date,amount,currency\n".to_vec(),
        )
        .await;
    problem(&empty, StatusCode::UNPROCESSABLE_ENTITY, "empty_statement");
    problem(
        &upload(&s, "", "text/csv", "default_layout.csv").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    problem(
        &upload(
            &s,
            "accountId=bank-eur",
            "application/pdf",
            "default_layout.csv",
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    problem(
        &upload(&s, "accountId=nobody", "text/csv", "default_layout.csv").await,
        StatusCode::NOT_FOUND,
        "account_not_found",
    );
    let bytes = std::fs::read(format!("{FIXTURES}camt053_sample.xml")).unwrap();
    let foreign = s
        .api
        .as_other()
        .post_raw(
            "/api/v1/statements?accountId=bank-eur",
            "application/xml",
            bytes,
        )
        .await;
    problem(&foreign, StatusCode::NOT_FOUND, "account_not_found");
    let unknown = s
        .api
        .post(
            "/api/v1/statements",
            &json!({"accountId": "bank-eur", "lines": [], "colour": 1}),
        )
        .await;
    problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "unknown_field");
}

#[tokio::test]
async fn reconcile_report_and_the_discrepancy_workflow() {
    let s = Stack::start().await;
    open(&s, &["bank", "world", "suspense-demo"]).await;
    for (key, amount, reference) in [
        ("a", "100.00", "INV-1"),
        ("b", "50.00", "INV-2"),
        ("c", "20.00", "INV-3"),
    ] {
        let body = json!({"transaction": {"source_account_id": "world", "destination_account_id": "bank",
            "amount": amount, "currency": "USD", "reference": reference}, "idempotencyKey": key});
        s.api.post("/api/v1/transactions", &body).await;
    }
    s.drain().await;
    let t = today();
    let statement = format!(
        "id,booked_date,amount,currency,reference\nb1,{t},100.00,USD,INV-1\nb2,{t},49.00,USD,INV-2\nb3,{t},7.50,USD,\nb4,{t},20.00,EUR,INV-3\n"
    );
    let imported = s
        .api
        .post_raw(
            "/api/v1/statements?accountId=bank",
            "text/csv",
            statement.into_bytes(),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);

    // Window checks.
    problem(
        &s.api
            .post(
                "/api/v1/accounts/bank/reconcile",
                &json!({"startDate": t, "endDate": day(-1)}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_window",
    );
    problem(
        &s.api
            .post(
                "/api/v1/accounts/bank/reconcile",
                &json!({"startDate": "01/02/2026", "endDate": t}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_date",
    );
    problem(
        &s.api
            .post(
                "/api/v1/accounts/nobody/reconcile",
                &json!({"startDate": t, "endDate": t}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "account_not_found",
    );

    let run = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": t, "endDate": t}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.text);
    let run_id = run.body["runId"].as_str().unwrap().to_string();
    assert_eq!(run.body["counts"]["matchedLines"], 1);
    assert_eq!(run.body["discrepancies"]["AMOUNT_MISMATCH"]["count"], 1);
    assert_eq!(
        run.body["discrepancies"]["MISSING_IN_LEDGER"]["totals"]["USD"],
        "7.50"
    );
    assert_eq!(run.body["discrepancies"]["CURRENCY_MISMATCH"]["count"], 1);

    // The report, as JSON and as CSV of every item.
    let report = s
        .api
        .get(&format!("/api/v1/reconciliations/{run_id}"))
        .await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.body["run"]["runId"], run_id.as_str());
    assert_eq!(report.body["discrepancies"].as_array().unwrap().len(), 3);
    let csv = s
        .api
        .get(&format!("/api/v1/reconciliations/{run_id}?format=csv"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type().starts_with("text/csv"));
    let rows: Vec<&str> = csv.text.lines().collect();
    assert_eq!(rows.len(), 1 + 1 + 3, "{}", csv.text);
    assert!(rows[0].starts_with("item,rule_or_kind,status"));
    assert!(rows[1].starts_with("MATCH,REFERENCE,MATCHED"));
    problem(
        &s.api.get("/api/v1/reconciliations/not-a-uuid").await,
        StatusCode::NOT_FOUND,
        "reconciliation_not_found",
    );
    let foreign = s
        .api
        .as_other()
        .get(&format!("/api/v1/reconciliations/{run_id}"))
        .await;
    problem(&foreign, StatusCode::NOT_FOUND, "reconciliation_not_found");

    // Listing, filtering and paging.
    let all = s
        .api
        .get("/api/v1/discrepancies?status=OPEN&accountId=bank")
        .await;
    assert_eq!(all.body["discrepancies"].as_array().unwrap().len(), 3);
    let page = s.api.get("/api/v1/discrepancies?limit=2").await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_string();
    let rest = s
        .api
        .get(&format!("/api/v1/discrepancies?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest.body["discrepancies"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["nextCursor"], Value::Null);
    problem(
        &s.api.get("/api/v1/discrepancies?status=DONE").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    problem(
        &s.api.get("/api/v1/discrepancies?kind=nope").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    let by_kind = |kind: &str| {
        all.body["discrepancies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (mismatch, missing, currency) = (
        by_kind("AMOUNT_MISMATCH"),
        by_kind("MISSING_IN_LEDGER"),
        by_kind("CURRENCY_MISMATCH"),
    );
    let foreign = s
        .api
        .as_other()
        .get(&format!("/api/v1/discrepancies/{mismatch}"))
        .await;
    problem(&foreign, StatusCode::NOT_FOUND, "discrepancy_not_found");

    // OPEN -> INVESTIGATING -> RESOLVED with an adjusting transfer against the suspense account.
    let resolve = |id: &str| format!("/api/v1/discrepancies/{id}/resolve");
    let investigating = s
        .api
        .post(
            &resolve(&mismatch),
            &json!({"status": "INVESTIGATING", "note": "asked the bank"}),
        )
        .await;
    assert_eq!(
        investigating.body["status"], "INVESTIGATING",
        "{}",
        investigating.text
    );
    problem(
        &s.api
            .post(&resolve(&mismatch), &json!({"status": "OPEN"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    problem(
        &s.api
            .post(
                &resolve(&mismatch),
                &json!({"status": "INVESTIGATING", "action": "adjust"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    let adjusted = s
        .api
        .post(
            &resolve(&mismatch),
            &json!({"status": "RESOLVED", "action": "adjust", "note": "1.00 fee withheld"}),
        )
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    // ADJUSTING until the processor has posted the transfer.
    assert_eq!(adjusted.body["status"], "ADJUSTING", "{}", adjusted.text);
    let transfer = &adjusted.body["resolution"]["transfer"];
    assert_eq!(
        (
            transfer["amount"].as_str(),
            transfer["source_account_id"].as_str()
        ),
        (Some("1.00"), Some("bank"))
    );
    let transaction_id = transfer["transactionId"].as_str().unwrap().to_string();
    let poll_url = transfer["pollUrl"].as_str().unwrap().to_string();
    let key = adjusted.body["resolution"]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key, format!("adjust {mismatch} 1"));
    assert_eq!(transfer["idempotencyKey"], key.as_str());
    let history = adjusted.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(
        (
            history[2]["actor"].as_str(),
            history[2]["fromStatus"].as_str(),
            history[2]["toStatus"].as_str()
        ),
        (Some("demo"), Some("INVESTIGATING"), Some("ADJUSTING"))
    );
    assert_eq!(history[2]["note"], "1.00 fee withheld");
    let pending = s.api.get(&poll_url).await.body;
    assert_eq!(pending["status"], "PENDING", "{pending}");
    let listed = s.api.get("/api/v1/discrepancies?status=ADJUSTING").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["discrepancies"][0]["id"], mismatch.as_str());
    // Resolving again while it waits sends the same transfer (posted once) and records nothing.
    let again = s
        .api
        .post(
            &resolve(&mismatch),
            &json!({"status": "RESOLVED", "action": "adjust"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["status"], "ADJUSTING");
    assert_eq!(
        again.body["resolution"]["transfer"]["transactionId"],
        transaction_id.as_str()
    );
    assert_eq!(again.body["history"].as_array().unwrap().len(), 3);
    // Nothing moves it by hand meanwhile: its transfer decides.
    for status in ["IGNORED", "RESOLVED"] {
        problem(
            &s.api
                .post(&resolve(&mismatch), &json!({"status": status}))
                .await,
            StatusCode::CONFLICT,
            "invalid_transition",
        );
    }
    s.drain().await;
    assert_eq!(s.balance("bank").await, "169.00");
    let resolved = s
        .api
        .get(&format!("/api/v1/discrepancies/{mismatch}"))
        .await;
    assert_eq!(resolved.body["status"], "RESOLVED", "{}", resolved.text);
    let history = resolved.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(
        (
            history[3]["actor"].as_str(),
            history[3]["fromStatus"].as_str(),
            history[3]["toStatus"].as_str(),
            history[3]["note"].as_str()
        ),
        (
            Some("demo"),
            Some("ADJUSTING"),
            Some("RESOLVED"),
            Some(format!("adjusting transfer {transaction_id} posted").as_str())
        )
    );
    assert_eq!(history[3]["action"]["outcome"], "posted");
    let completed = s.api.get(&poll_url).await.body;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    assert_eq!(
        s.count("SELECT count(*) FROM transactions WHERE adjusts_discrepancy_id IS NOT NULL")
            .await,
        1
    );

    // Adjustments that cannot be made.
    problem(
        &s.api
            .post(
                &resolve(&currency),
                &json!({"status": "RESOLVED", "action": "adjust"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_adjustable",
    );
    problem(
        &s.api
            .post(
                &resolve(&missing),
                &json!({"status": "RESOLVED", "action": "adjust", "suspenseAccountId": "nope"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "suspense_account_unusable",
    );
    problem(
        &s.api
            .post(
                &resolve(&missing),
                &json!({"status": "RESOLVED", "action": "redrive"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_redrivable",
    );

    // Bulk: one changes, one is already final, one does not exist.
    let bulk = s.api.post("/api/v1/discrepancies/resolve", &json!({"ids": [currency, mismatch, "00000000-0000-0000-0000-000000000000"], "status": "IGNORED", "note": "accepted"})).await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text);
    let results: Vec<&str> = bulk.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["changed", "invalid_transition", "discrepancy_not_found"]
    );
    problem(
        &s.api
            .post(
                "/api/v1/discrepancies/resolve",
                &json!({"ids": [], "status": "IGNORED"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    // The re-run sees the resolved and ignored ones again but leaves them be, and the adjusting
    // transfer is not mistaken for a bank movement.
    let rerun = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": t, "endDate": t}),
        )
        .await;
    assert_eq!(
        rerun.body["discrepancyChanges"],
        json!({"new": 0, "seenAgain": 3, "reopened": 0, "cleared": 0})
    );
    assert_eq!(rerun.body["counts"]["ledgerItems"], 3);
    let open = s.api.get("/api/v1/discrepancies?status=OPEN").await;
    assert_eq!(open.body["discrepancies"].as_array().unwrap().len(), 1);
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn a_rejected_adjustment_reopens_and_client_keys_like_adjust_are_ordinary_transfers() {
    let s = Stack::start().await;
    open(&s, &["bank", "world"]).await;
    // The default suspense account may not go below zero: an adjustment paid out of it fails.
    s.open("suspense-demo", "0").await;
    // A client's own transfer under a key that starts with `adjust-`: an ordinary transfer.
    let body = json!({"transaction": {"source_account_id": "world", "destination_account_id": "bank",
        "amount": "30.00", "currency": "USD", "reference": "INV-9"}, "idempotencyKey": "adjust-anything"});
    let (status, _) = s.api.post("/api/v1/transactions", &body).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED);
    // The keys adjustments use are not a client's to send.
    let (status, refused) = s
        .submit(
            "adjust 0190aaaa-0000-7000-8000-000000000000 1",
            "world",
            "bank",
            "1.00",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    s.drain().await;
    let t = today();
    let statement = format!(
        "id,booked_date,amount,currency,reference\nb1,{t},30.00,USD,INV-9\nb2,{t},7.50,USD,\n"
    );
    let imported = s
        .api
        .post_raw(
            "/api/v1/statements?accountId=bank",
            "text/csv",
            statement.into_bytes(),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    let window = json!({"startDate": t, "endDate": t});
    let run = s
        .api
        .post("/api/v1/accounts/bank/reconcile", &window.clone())
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.text);
    assert_eq!(run.body["counts"]["ledgerItems"], 1, "{}", run.text);
    assert_eq!(run.body["counts"]["matchedLines"], 1, "{}", run.text);
    let open_now = s.api.get("/api/v1/discrepancies?status=OPEN").await;
    let found = open_now.body["discrepancies"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", open_now.text);
    assert_eq!(
        (found[0]["kind"].as_str(), found[0]["externalId"].as_str()),
        (Some("MISSING_IN_LEDGER"), Some("b2"))
    );
    let missing = found[0]["id"].as_str().unwrap().to_string();
    let resolve = format!("/api/v1/discrepancies/{missing}/resolve");

    let adjusted = s
        .api
        .post(&resolve, &json!({"status": "RESOLVED", "action": "adjust"}))
        .await;
    assert_eq!(adjusted.body["status"], "ADJUSTING", "{}", adjusted.text);
    let poll_url = adjusted.body["resolution"]["transfer"]["pollUrl"]
        .as_str()
        .unwrap()
        .to_string();
    s.drain().await;
    let reopened = s.api.get(&format!("/api/v1/discrepancies/{missing}")).await;
    assert_eq!(reopened.body["status"], "OPEN", "{}", reopened.text);
    assert_eq!(
        reopened.body["resolution"]["failureCode"],
        "insufficient_funds"
    );
    let last = reopened.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["fromStatus"].as_str(), last["toStatus"].as_str()),
        (Some("ADJUSTING"), Some("OPEN"))
    );
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .ends_with("rejected: insufficient_funds"),
        "{last}"
    );
    assert_eq!(last["action"]["failureCode"], "insufficient_funds");
    let failed = s.api.get(&poll_url).await.body;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("insufficient_funds")),
        "{failed}"
    );
    assert_eq!(s.balance("bank").await, "30.00");

    // Again, from an account that can pay: a new attempt under a new key.
    let retried = s
        .api
        .post(
            &resolve,
            &json!({"status": "RESOLVED", "action": "adjust", "suspenseAccountId": "world"}),
        )
        .await;
    assert_eq!(retried.body["status"], "ADJUSTING", "{}", retried.text);
    assert_eq!(
        retried.body["resolution"]["idempotencyKey"],
        format!("adjust {missing} 2").as_str()
    );
    // Bulk resolve follows the same rules: an ADJUSTING discrepancy waits for its transfer.
    let bulk = s
        .api
        .post(
            "/api/v1/discrepancies/resolve",
            &json!({"ids": [missing], "status": "IGNORED"}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text);
    assert_eq!(
        (
            bulk.body["results"][0]["result"].as_str(),
            bulk.body["results"][0]["fromStatus"].as_str()
        ),
        (Some("invalid_transition"), Some("ADJUSTING"))
    );
    s.drain().await;
    let resolved = s.api.get(&format!("/api/v1/discrepancies/{missing}")).await;
    assert_eq!(resolved.body["status"], "RESOLVED", "{}", resolved.text);
    assert_eq!(s.balance("bank").await, "37.50");

    // The re-run still matches the client's `adjust-anything` transfer to its line and leaves the
    // adjusting transfers out of the ledger side.
    let rerun = s.api.post("/api/v1/accounts/bank/reconcile", &window).await;
    assert_eq!(rerun.body["counts"]["ledgerItems"], 1, "{}", rerun.text);
    assert_eq!(rerun.body["counts"]["matchedLines"], 1, "{}", rerun.text);
    assert_eq!(
        rerun.body["discrepancyChanges"],
        json!({"new": 0, "seenAgain": 1, "reopened": 0, "cleared": 0})
    );
    assert_eq!(
        s.count("SELECT count(*) FROM transactions WHERE adjusts_discrepancy_id IS NOT NULL")
            .await,
        2
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn an_adjustment_meets_the_transfer_rules_like_any_transfer() {
    let s = Stack::start().await;
    open(&s, &["bank", "suspense-demo"]).await;
    let today = day(0);
    // A bank line larger than MAX_TRANSFER_AMOUNT (10^9): a valid statement amount (up to 10^15),
    // but no single transfer may carry it, so no adjustment may either.
    let imported = s
        .api
        .post(
            "/api/v1/statements",
            &json!({"accountId": "bank", "lines": [
                {"id": "huge", "bookedDate": today, "amount": "5000000000.00", "currency": "USD"}
            ]}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    let run = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": today, "endDate": today}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.text);
    let listed = s
        .api
        .get("/api/v1/discrepancies?kind=MISSING_IN_LEDGER")
        .await;
    let id = listed.body["discrepancies"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let adjusted = s
        .api
        .post(
            &format!("/api/v1/discrepancies/{id}/resolve"),
            &json!({"status": "RESOLVED", "action": "adjust"}),
        )
        .await;
    problem(
        &adjusted,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_adjustable",
    );
    assert_eq!(
        adjusted.body["reason"], "amount_too_large",
        "{}",
        adjusted.text
    );
    // Nothing was queued, and the discrepancy is where it was.
    let stats = s.env.clients.queue.stats().await.unwrap();
    assert_eq!(stats.queue.visible + stats.queue.in_flight, 0);
    let after = s.api.get(&format!("/api/v1/discrepancies/{id}")).await;
    assert_eq!(after.body["status"], "OPEN", "{}", after.text);
}
