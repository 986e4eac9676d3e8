use http::StatusCode;
use serde_json::json;
use shared::testkit::{DEMO_TOKEN, OPERATOR_TOKEN};

use crate::helpers::TestApp;

const PROTECTED_GET: [&str; 6] = [
    "/api/v1/accounts/alice",
    "/api/v1/accounts/alice/balance",
    "/api/v1/accounts/alice/ledger",
    "/api/v1/transactions/status/k1",
    "/api/v1/queue/stats",
    "/api/v1/cache/stats",
];

#[tokio::test]
async fn every_route_but_health_and_ready_requires_a_valid_token() {
    let app = TestApp::spawn().await;
    for token in [None, Some("wrong-token"), Some("")] {
        for path in PROTECTED_GET {
            app.api
                .with_token(token)
                .get(path)
                .await
                .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        for path in ["/api/v1/accounts", "/api/v1/transactions"] {
            let res = app
                .api
                .with_token(token)
                .post_raw(path, "application/json", "{}")
                .await;
            res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // Other schemes are not bearer tokens.
    app.api
        .anonymous()
        .request("GET", "/api/v1/queue/stats")
        .header("authorization", format!("Basic {DEMO_TOKEN}"))
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // A valid token works, in any case of the scheme name.
    app.api
        .anonymous()
        .request("GET", "/api/v1/queue/stats")
        .header("authorization", format!("bearer {OPERATOR_TOKEN}"))
        .send()
        .await
        .assert_status(StatusCode::OK);

    assert_eq!(
        app.api
            .anonymous()
            .get("/api/v1/health")
            .await
            .assert_status(StatusCode::OK),
        &json!({"status": "ok"})
    );
    app.api
        .anonymous()
        .get("/api/v1/ready")
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.api
        .get("/api/v1/nope")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "route_not_found");
    app.api
        .anonymous()
        .get("/")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "route_not_found");
    let res = app
        .api
        .anonymous()
        .post_raw("/api/v1/health", "application/json", "{}")
        .await;
    res.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}
