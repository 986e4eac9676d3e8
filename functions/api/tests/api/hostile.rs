//! Hostile and extreme input: every answer is a 4xx problem+json naming the field, never a 5xx,
//! and nothing the database cannot store reaches the queue.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, transfer};

#[tokio::test]
async fn nul_characters_are_refused_everywhere_with_the_field() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "100").await;
    app.create_account("bob", "USD", "0").await;

    let mut t = transfer("k-nul", "alice", "bob", "1.00");
    t["transaction"]["metadata"] = json!({"order": {"note": "a\u{0}b"}});
    let res = app.api.post("/api/v1/transactions", &t).await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "nul_character");
    assert_eq!(body["field"], "transaction.metadata.order.note");

    let mut t = transfer("k-nul-2", "alice", "bob", "1.00");
    t["transaction"]["reference"] = json!("ref\u{0}");
    app.api
        .post("/api/v1/transactions", &t)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "nul_character");
    let mut t = transfer("k-nul-3", "alice", "bob", "1.00");
    t["transaction"]["metadata"] = json!({"key\u{0}": 1});
    app.api
        .post("/api/v1/transactions", &t)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "nul_character");
    // A number PostgreSQL's jsonb would write back in 309 digits, which no JSON reader takes.
    let mut t = transfer("k-huge-number", "alice", "bob", "1.00");
    t["transaction"]["metadata"] = json!({"n": -1.7976931348623157e308});
    let res = app.api.post("/api/v1/transactions", &t).await;
    assert_eq!(
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"],
        "transaction.metadata.n"
    );
    assert_eq!(app.queue_depth().await, 0, "nothing was enqueued");

    let res = app
        .api
        .post(
            "/api/v1/accounts",
            &json!({"id": "carol", "currency": "USD", "metadata": {"x": ["\u{0}"]}}),
        )
        .await;
    assert_eq!(
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "nul_character")["field"],
        "metadata.x[0]"
    );

    // Query parameters and path segments.
    app.api
        .get("/api/v1/discrepancies?accountId=a%00b")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "nul_character");
    let res = app.api.get("/api/v1/transactions/status/key%00").await;
    assert!(res.status.is_client_error(), "{:?}", res);
    assert_eq!(res.headers["content-type"], "application/problem+json");

    // Statements: a line whose text holds NUL is a rejected line, not a database error.
    let res = app
        .api.post("/api/v1/statements", &json!({"accountId": "alice", "lines": [
                {"id": "l1", "bookedDate": "2026-01-02", "amount": "5.00", "currency": "USD", "description": "x\u{0}"}
            ]}))
        .await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "nul_character");
    assert_eq!(body["field"], "lines[0].description");
}

#[tokio::test]
async fn paths_bodies_dates_and_cursors_are_the_clients_errors() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "0").await;

    // Invalid UTF-8 in a path segment: problem+json naming the parameter.
    let res = app.api.get("/api/v1/accounts/%FF%FE").await;
    assert_eq!(
        res.assert_problem(StatusCode::BAD_REQUEST, "invalid_path")["field"],
        "id"
    );

    // `.` and `..` are not account ids or keys.
    for id in [".", ".."] {
        let res = app
            .api
            .post("/api/v1/accounts", &json!({"id": id, "currency": "USD"}))
            .await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_account_id");
        let res = app
            .api
            .post(
                "/api/v1/transactions",
                &transfer(id, "alice", "alice", "1.00"),
            )
            .await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_idempotency_key");
    }

    // A body that is not an object names the body.
    for body in ["[]", "1", "\"text\"", "null"] {
        let res = app
            .api
            .post_raw("/api/v1/accounts", "application/json", body)
            .await;
        let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(problem["field"], "body", "{body}");
    }

    // Dates PostgreSQL would refuse, or that no payment has.
    for as_of in [
        "0000-01-01T00:00:00Z",
        "-5000-01-01T00:00:00Z",
        "+200000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        let uri = format!(
            "/api/v1/accounts/alice/balance?asOf={}",
            percent_encoding::utf8_percent_encode(as_of, percent_encoding::NON_ALPHANUMERIC)
        );
        let res = app.api.get(&uri).await;
        assert!(res.status.is_client_error(), "{as_of}: {:?}", res);
        assert_eq!(res.body["field"], "asOf");
    }
    for (start, end) in [("0000-01-01", "0000-01-02"), ("1969-12-31", "1970-01-01")] {
        let res = app
            .api
            .post(
                "/api/v1/accounts/alice/reconcile",
                &json!({"startDate": start, "endDate": end}),
            )
            .await;
        let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "date_out_of_range");
        assert_eq!(problem["field"], "startDate");
    }
    let res = app
        .api
        .post(
            "/api/v1/statements",
            &json!({"accountId": "alice", "lines": [
                {"id": "l1", "bookedDate": "0000-01-02", "amount": "5.00", "currency": "USD"}
            ]}),
        )
        .await;
    let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "statement_rejected");
    assert_eq!(
        problem["lines"][0]["code"], "date_out_of_range",
        "{problem:#}"
    );

    // Tampered cursors: far future, far past, garbage.
    for cursor in [
        URL_SAFE_NO_PAD.encode(format!("{}.1", i64::MAX / 2)),
        URL_SAFE_NO_PAD.encode("-62167219200000000.1"),
        "%%%".to_string(),
    ] {
        for route in ["/api/v1/accounts/alice/ledger", "/api/v1/discrepancies"] {
            let res = app.api.get(&format!("{route}?cursor={cursor}")).await;
            assert!(res.status.is_client_error(), "{route} {cursor}: {:?}", res);
            assert_eq!(res.body["field"], "cursor");
        }
    }
}

#[tokio::test]
async fn amounts_beyond_the_ledger_ceiling_are_refused_never_truncated() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "0").await;
    let res = app
        .api
        .post(
            "/api/v1/accounts",
            &json!({"id": "big", "currency": "USD", "overdraftLimit": "1000000000000000.01"}),
        )
        .await;
    assert_eq!(
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large")["field"],
        "overdraftLimit"
    );
    let res = app
        .api.post("/api/v1/statements", &json!({"accountId": "alice", "lines": [
                {"id": "huge", "bookedDate": "2026-01-02", "amount": "79228162514264337593543950335", "currency": "USD"},
                {"id": "huge-jpy", "bookedDate": "2026-01-02", "amount": "-7922816251426433759354395033", "currency": "JPY"}
            ]}))
        .await;
    let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "statement_rejected");
    for line in problem["lines"].as_array().unwrap() {
        assert_eq!(line["code"], "amount_too_large", "{problem:#}");
    }

    // CSV the same way.
    let csv = "id,booked_date,amount,currency\nx1,2026-01-02,1000000000000000.01,USD\n";
    let res = app
        .api
        .post_raw("/api/v1/statements?accountId=alice", "text/csv", csv)
        .await;
    let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "statement_rejected");
    assert_eq!(
        problem["lines"][0]["code"], "amount_too_large",
        "{problem:#}"
    );
}
