//! Token roles: operator routes answer 403 to client tokens, ledger-wide runs do not exist for
//! them, and a 401 carries the RFC 6750 challenge.

use chrono::Utc;
use http::StatusCode;
use serde_json::json;
use shared::services::reconciliation as run;
use shared::testkit::{DEMO_TOKEN, OPERATOR_TOKEN, OTHER_TOKEN};

use crate::helpers::TestApp;

const OPERATOR_ROUTES: [&str; 2] = ["/api/v1/queue/stats", "/api/v1/cache/stats"];

#[tokio::test]
async fn operator_routes_refuse_client_tokens_and_serve_operator_tokens() {
    let app = TestApp::spawn().await;
    for path in OPERATOR_ROUTES {
        for token in [DEMO_TOKEN, OTHER_TOKEN] {
            let res = app.api.with_token(Some(token)).get(path).await;
            let problem = res.assert_problem(StatusCode::FORBIDDEN, "forbidden");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains(path) && detail.contains("operator tokens"),
                "{detail}"
            );
        }
        app.api
            .as_operator()
            .get(path)
            .await
            .assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn operator_tokens_still_see_only_their_own_clients_data() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "0").await;
    app.api
        .as_operator()
        .get("/api/v1/accounts/alice")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "account_not_found");
}

#[tokio::test]
async fn ledger_wide_runs_exist_only_for_operators() {
    let app = TestApp::spawn().await;
    let clients = &app.env.clients;
    let today = Utc::now().date_naive();
    let internal = run::reconcile_internal(&clients.db, today, &[])
        .await
        .unwrap();
    let path = format!("/api/v1/reconciliations/{}", internal.run_id);

    for token in [DEMO_TOKEN, OTHER_TOKEN] {
        for uri in [path.clone(), format!("{path}?format=csv")] {
            let res = app.api.with_token(Some(token)).get(&uri).await;
            let problem = res.assert_problem(StatusCode::NOT_FOUND, "reconciliation_not_found");
            // Word for word what an id that never existed gets.
            assert_eq!(
                problem["detail"],
                format!("no reconciliation {}", internal.run_id)
            );
        }
    }
    let never = uuid::Uuid::now_v7();
    let res = app
        .api
        .get(&format!("/api/v1/reconciliations/{never}"))
        .await;
    let problem = res.assert_problem(StatusCode::NOT_FOUND, "reconciliation_not_found");
    assert_eq!(problem["detail"], format!("no reconciliation {never}"));

    let res = app.api.as_operator().get(&path).await;
    let body = res.assert_status(StatusCode::OK);
    assert_eq!(body["run"]["runId"], json!(internal.run_id));
    assert_eq!(body["run"]["accountId"], json!(null));
    assert!(body["run"]["internalChecks"].is_object());
    assert!(body["discrepancies"].is_array());
    let csv = app
        .api
        .as_operator()
        .get(&format!("{path}?format=csv"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
}

#[tokio::test]
async fn an_account_run_stays_its_clients_even_for_operators() {
    let app = TestApp::spawn().await;
    app.create_account("alice", "USD", "0").await;
    let today = Utc::now().date_naive().to_string();
    let res = app
        .api
        .post(
            "/api/v1/accounts/alice/reconcile",
            &json!({"startDate": today, "endDate": today}),
        )
        .await;
    let run_id = res.assert_status(StatusCode::CREATED)["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/reconciliations/{run_id}");
    app.api.get(&path).await.assert_status(StatusCode::OK);
    for token in [OTHER_TOKEN, OPERATOR_TOKEN] {
        app.api
            .with_token(Some(token))
            .get(&path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "reconciliation_not_found");
    }
}

#[tokio::test]
async fn unauthorized_answers_carry_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let res = app.api.anonymous().get("/api/v1/accounts/alice").await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        res.headers["www-authenticate"],
        "Bearer realm=\"payment-ledger\""
    );
    for token in ["wrong-token", ""] {
        let res = app
            .api
            .with_token(Some(token))
            .get("/api/v1/queue/stats")
            .await;
        res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(
            res.headers["www-authenticate"],
            "Bearer realm=\"payment-ledger\", error=\"invalid_token\""
        );
    }
    let res = app
        .api
        .with_token(Some("nope"))
        .post_raw("/api/v1/transactions", "application/json", "{}")
        .await;
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    // Other answers carry no challenge.
    let res = app.api.get("/api/v1/queue/stats").await;
    assert!(!res.headers.contains_key("www-authenticate"));
}
