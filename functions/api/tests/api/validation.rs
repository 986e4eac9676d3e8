use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, transfer};

fn with(field: &str, value: Value) -> Value {
    let mut body = transfer("k-validation", "alice", "bob", "10.00");
    body["transaction"][field] = value;
    body
}

#[tokio::test]
async fn invalid_transfers_get_a_problem_naming_the_field_and_enqueue_nothing() {
    let app = TestApp::spawn().await;
    let mut missing_amount = transfer("k", "alice", "bob", "1");
    missing_amount["transaction"]
        .as_object_mut()
        .unwrap()
        .remove("amount");
    let mut unknown_top = transfer("k", "alice", "bob", "1");
    unknown_top["priority"] = json!("high");
    let mut no_key = transfer("k", "alice", "bob", "1");
    no_key.as_object_mut().unwrap().remove("idempotencyKey");

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with("amount", json!("10.001")),
            "amount_scale_exceeded",
            "transaction.amount",
        ),
        (
            with("amount", json!("0")),
            "amount_not_positive",
            "transaction.amount",
        ),
        (
            with("amount", json!("0.00")),
            "amount_not_positive",
            "transaction.amount",
        ),
        (
            with("amount", json!("-5.00")),
            "amount_not_positive",
            "transaction.amount",
        ),
        (
            with("amount", json!("1000000000.01")),
            "amount_too_large",
            "transaction.amount",
        ),
        (
            with("amount", json!("99999999999999999999999999999999999")),
            "amount_too_large",
            "transaction.amount",
        ),
        (
            with("amount", json!("ten")),
            "invalid_amount",
            "transaction.amount",
        ),
        (
            with("amount", json!("1e3")),
            "invalid_amount",
            "transaction.amount",
        ),
        (
            with("amount", json!(true)),
            "invalid_field",
            "transaction.amount",
        ),
        (
            with("amount", json!(null)),
            "invalid_field",
            "transaction.amount",
        ),
        (
            with("currency", json!("ZZZ")),
            "unknown_currency",
            "transaction.currency",
        ),
        (
            with("source_account_id", json!("no spaces")),
            "invalid_account_id",
            "transaction.source_account_id",
        ),
        (
            with("source_account_id", json!(42)),
            "invalid_field",
            "transaction.source_account_id",
        ),
        (
            with("destination_account_id", json!(["b"])),
            "invalid_field",
            "transaction.destination_account_id",
        ),
        (
            with("reference", json!("r".repeat(141))),
            "field_too_long",
            "transaction.reference",
        ),
        (
            with("metadata", json!("not an object")),
            "invalid_field",
            "transaction.metadata",
        ),
        (
            with("memo", json!("hi")),
            "unknown_field",
            "transaction.memo",
        ),
        (missing_amount, "missing_field", "transaction.amount"),
        (unknown_top, "unknown_field", "priority"),
        (no_key, "missing_idempotency_key", "idempotencyKey"),
        (
            json!({"idempotencyKey": "k"}),
            "missing_field",
            "transaction",
        ),
        (
            transfer(&"k".repeat(256), "alice", "bob", "1"),
            "invalid_idempotency_key",
            "idempotencyKey",
        ),
        (
            transfer("has space", "alice", "bob", "1"),
            "invalid_idempotency_key",
            "idempotencyKey",
        ),
    ];
    for (body, code, field) in cases {
        let res = app.api.post("/api/v1/transactions", &body).await;
        let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(problem["field"], field, "{body}");
    }

    // A float artefact sent as a JSON number is read from its text, not rounded to 0.30.
    let float = r#"{"transaction":{"source_account_id":"alice","destination_account_id":"bob","amount":0.30000000000000004,"currency":"USD"},"idempotencyKey":"k-float"}"#;
    let res = app
        .api
        .post_raw("/api/v1/transactions", "application/json", float)
        .await;
    assert_eq!(
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "amount_scale_exceeded")["field"],
        "transaction.amount"
    );

    for raw in ["not json", "{\"transaction\": ", "", "{} {}", "[1,2]"] {
        let res = app
            .api
            .post_raw("/api/v1/transactions", "application/json", raw)
            .await;
        assert!(
            res.status == StatusCode::BAD_REQUEST || res.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{raw:?}: {res:?}"
        );
        assert_eq!(res.headers["content-type"], "application/problem+json");
    }
    app.api
        .post_raw("/api/v1/transactions", "application/json", "not json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");

    let huge = json!({"transaction": {"source_account_id": "a", "destination_account_id": "b", "amount": "1",
        "currency": "USD", "description": "x".repeat(20_000)}, "idempotencyKey": "k-huge"});
    app.api
        .post("/api/v1/transactions", &huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let plain = transfer("k", "a", "b", "1").to_string();
    app.api
        .post_raw("/api/v1/transactions", "text/plain", plain)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    assert_eq!(
        app.queue_depth().await,
        0,
        "no invalid request may reach the queue"
    );
    let cache = app.env.clients.cache.stats().await.unwrap();
    assert_eq!(
        cache.reservations, 0,
        "no invalid request may reserve a key"
    );
}

#[tokio::test]
async fn currency_defaults_to_the_source_accounts() {
    let app = TestApp::spawn().await;
    app.create_account("yen-src", "JPY", "unlimited").await;
    let mut body = transfer("k-jpy", "yen-src", "yen-dst", "1500");
    body["transaction"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    app.api
        .post("/api/v1/transactions", &body)
        .await
        .assert_status(StatusCode::ACCEPTED);
    // JPY has no minor units: the scale rule uses the account's currency.
    let mut body = transfer("k-jpy-2", "yen-src", "yen-dst", "1.5");
    body["transaction"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    app.api
        .post("/api/v1/transactions", &body)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "amount_scale_exceeded");
    // Unknown source and no currency: nothing to infer it from.
    let mut body = transfer("k-unknown", "nobody", "yen-dst", "1");
    body["transaction"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    let res = app.api.post("/api/v1/transactions", &body).await;
    assert_eq!(
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing_field")["field"],
        "transaction.currency"
    );
}
