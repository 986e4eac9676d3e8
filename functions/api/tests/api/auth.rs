use http::StatusCode;
use serde_json::json;
use shared::testkit::{DEMO_TOKEN, OPERATOR_TOKEN};

use crate::helpers::{TestApp, post_request};

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
            app.get(path, token)
                .await
                .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        for path in ["/api/v1/accounts", "/api/v1/transactions"] {
            let res = app.send(post_request(path, token, "{}")).await;
            res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // Other schemes are not bearer tokens.
    let req = http::Request::builder()
        .uri("/api/v1/queue/stats")
        .header("authorization", format!("Basic {DEMO_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(req)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // A valid token works, in any case of the scheme name.
    let req = http::Request::builder()
        .uri("/api/v1/queue/stats")
        .header("authorization", format!("bearer {OPERATOR_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(req).await.assert_status(StatusCode::OK);

    assert_eq!(
        app.get("/api/v1/health", None)
            .await
            .assert_status(StatusCode::OK),
        &json!({"status": "ok"})
    );
    app.get("/api/v1/ready", None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nope", Some(DEMO_TOKEN))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "route_not_found");
    app.get("/", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "route_not_found");
    let res = app.send(post_request("/api/v1/health", None, "{}")).await;
    res.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}
