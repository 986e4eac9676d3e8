use http::StatusCode;
use shared::clients::Clients;
use shared::idempotency::IdempotencyStore;
use shared::testkit::DEMO_TOKEN;

use crate::helpers::{TestApp, send, transfer};

#[tokio::test]
async fn queue_and_cache_stats_describe_our_resources() {
    let app = TestApp::spawn().await;
    app.post("/api/v1/transactions", &transfer("stats-1", "a", "b", "1"))
        .await
        .assert_status(StatusCode::ACCEPTED);

    let q = app.get("/api/v1/queue/stats", Some(DEMO_TOKEN)).await;
    let q = q.assert_status(StatusCode::OK);
    assert_eq!(q["queue"]["fifo"], true);
    assert_eq!(q["queue"]["contentBasedDeduplication"], false);
    assert_eq!(
        q["queue"]["visible"].as_u64().unwrap() + q["queue"]["inFlight"].as_u64().unwrap(),
        1
    );
    assert_eq!(q["queue"]["maxReceiveCount"], 3);
    assert_eq!(q["deadLetterQueue"]["fifo"], true);
    assert_eq!(q["deadLetterQueue"]["visible"], 0);

    let c = app.get("/api/v1/cache/stats", Some(DEMO_TOKEN)).await;
    let c = c.assert_status(StatusCode::OK);
    assert_eq!(c["reservations"], 1);
    assert_eq!(c["keys"], 1);
    assert!(c["usedMemoryBytes"].as_u64().unwrap() > 0);
    assert!(c["keyPrefix"].as_str().unwrap().starts_with("test:"));
}

#[tokio::test]
async fn readiness_names_the_failing_component() {
    let app = TestApp::spawn().await;
    let ready = app.get("/api/v1/ready", None).await;
    assert_eq!(ready.assert_status(StatusCode::OK)["checks"]["redis"], "ok");

    let c = &app.env.clients;
    let broken = Clients {
        cache: IdempotencyStore::new("redis://127.0.0.1:9", "test:broken", c.cache.ttl()).unwrap(),
        ..c.clone()
    };
    let req = http::Request::builder()
        .uri("/api/v1/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = send(&app.router_with(broken), req).await;
    let problem = res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert_eq!(problem["component"], "redis");
    assert_eq!(problem["checks"]["postgres"], "ok");
    assert_eq!(problem["checks"]["redis"], "unavailable");
}
