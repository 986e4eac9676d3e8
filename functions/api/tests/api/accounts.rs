use http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn opening_an_account_is_idempotent_and_conflicts_are_explicit() {
    let app = TestApp::spawn().await;
    let body = json!({"id": "world-usd", "currency": "USD", "overdraftLimit": "unlimited", "metadata": {"kind": "funding"}});

    let created = app.api.post("/api/v1/accounts", &body).await;
    let account = created.assert_status(StatusCode::CREATED);
    assert_eq!(created.headers["location"], "/api/v1/accounts/world-usd");
    assert_eq!(account["id"], "world-usd");
    assert_eq!(account["currency"], "USD");
    assert_eq!(account["overdraftLimit"], "unlimited");
    assert_eq!(account["balance"], "0.00");
    assert_eq!(account["metadata"], json!({"kind": "funding"}));

    // Same request again: 200 with the same account.
    let again = app.api.post("/api/v1/accounts", &body).await;
    assert_eq!(
        again.assert_status(StatusCode::OK)["createdAt"],
        account["createdAt"]
    );

    // Same id, other attributes: 409 showing what exists.
    let other = json!({"id": "world-usd", "currency": "EUR"});
    let conflict = app.api.post("/api/v1/accounts", &other).await;
    conflict.assert_problem(StatusCode::CONFLICT, "account_exists");
    assert_eq!(conflict.body["account"]["currency"], "USD");

    // Another client cannot take the id, nor see anything about the account.
    let taken = app
        .api
        .as_other()
        .post_raw("/api/v1/accounts", "application/json", body.to_string())
        .await;
    let problem = taken.assert_problem(StatusCode::CONFLICT, "account_id_taken");
    assert!(problem.get("account").is_none());
    for path in [
        "/api/v1/accounts/world-usd",
        "/api/v1/accounts/world-usd/balance",
        "/api/v1/accounts/world-usd/ledger",
    ] {
        app.api
            .as_other()
            .get(path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "account_not_found");
    }
}

#[tokio::test]
async fn default_overdraft_is_zero_and_limits_respect_currency_scale() {
    let app = TestApp::spawn().await;
    let a = app
        .api
        .post(
            "/api/v1/accounts",
            &json!({"id": "alice", "currency": "USD"}),
        )
        .await;
    assert_eq!(
        a.assert_status(StatusCode::CREATED)["overdraftLimit"],
        "0.00"
    );
    let b = app
        .api
        .post(
            "/api/v1/accounts",
            &json!({"id": "bob", "currency": "JPY", "overdraftLimit": "500"}),
        )
        .await;
    assert_eq!(
        b.assert_status(StatusCode::CREATED)["overdraftLimit"],
        "500"
    );
    let k = app
        .api
        .post(
            "/api/v1/accounts",
            &json!({"id": "k", "currency": "KWD", "overdraftLimit": 1.5}),
        )
        .await;
    assert_eq!(
        k.assert_status(StatusCode::CREATED)["overdraftLimit"],
        "1.500"
    );

    let got = app.api.get("/api/v1/accounts/alice").await;
    assert_eq!(got.assert_status(StatusCode::OK)["id"], "alice");
    let balance = app.api.get("/api/v1/accounts/bob/balance").await;
    let balance = balance.assert_status(StatusCode::OK);
    assert_eq!(balance["accountId"], "bob");
    assert_eq!(balance["currency"], "JPY");
    assert_eq!(balance["balance"], "0");
    assert!(balance["asOf"].is_string());
}

#[tokio::test]
async fn account_validation_names_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"id": "bad id", "currency": "USD"}),
            "invalid_account_id",
            "id",
        ),
        (
            json!({"id": "", "currency": "USD"}),
            "invalid_account_id",
            "id",
        ),
        (
            json!({"id": "a", "currency": "usd"}),
            "unknown_currency",
            "currency",
        ),
        (
            json!({"id": "a", "currency": "XAU"}),
            "unknown_currency",
            "currency",
        ),
        (
            json!({"id": "a", "currency": "USD", "overdraftLimit": "-1"}),
            "invalid_amount",
            "overdraftLimit",
        ),
        (
            json!({"id": "a", "currency": "USD", "overdraftLimit": "0.001"}),
            "amount_scale_exceeded",
            "overdraftLimit",
        ),
        (
            json!({"id": "a", "currency": "USD", "overdraftLimit": "lots"}),
            "invalid_amount",
            "overdraftLimit",
        ),
        (
            json!({"id": "a", "currency": "USD", "metadata": [1]}),
            "invalid_field",
            "metadata",
        ),
        (
            json!({"id": "a", "currency": "USD", "colour": "red"}),
            "unknown_field",
            "colour",
        ),
        (json!({"id": "a"}), "missing_field", "currency"),
        (
            json!({"id": "a", "currency": 840}),
            "invalid_field",
            "currency",
        ),
    ];
    for (body, code, field) in cases {
        let res = app.api.post("/api/v1/accounts", &body).await;
        let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(problem["field"], field, "{body}");
    }
    let unknown = app.api.get("/api/v1/accounts/nobody").await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "account_not_found");
    let invalid = app.api.get("/api/v1/accounts/has%20space").await;
    invalid.assert_problem(StatusCode::NOT_FOUND, "account_not_found");
}

#[tokio::test]
async fn balance_and_ledger_query_parameters_are_checked() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "0").await;
    app.api
        .get("/api/v1/accounts/alice/balance?asOf=yesterday")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_as_of");
    app.api
        .get("/api/v1/accounts/alice/balance?at=2026-01-01T00:00:00Z")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "unknown_parameter");
    let past = app
        .api
        .get("/api/v1/accounts/alice/balance?asOf=2020-01-01T00:00:00Z")
        .await;
    let past = past.assert_status(StatusCode::OK);
    assert_eq!(past["balance"], "0.00");
    assert_eq!(past["asOf"], "2020-01-01T00:00:00Z");
    for bad in ["limit=0", "limit=501", "limit=ten"] {
        app.api
            .get(&format!("/api/v1/accounts/alice/ledger?{bad}"))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_limit");
    }
    app.api
        .get("/api/v1/accounts/alice/ledger?cursor=nonsense")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let empty = app.api.get("/api/v1/accounts/alice/ledger").await;
    assert_eq!(
        empty.assert_status(StatusCode::OK),
        &json!({"entries": [], "nextCursor": null})
    );
}
