use http::StatusCode;
use shared::clients::Clients;
use shared::idempotency::{CachedStatus, IdempotencyStore};

use crate::helpers::{TestApp, transfer};

#[tokio::test]
async fn queue_and_cache_stats_describe_our_resources() {
    let app = TestApp::spawn().await;
    app.api
        .post("/api/v1/transactions", &transfer("stats-1", "a", "b", "1"))
        .await
        .assert_status(StatusCode::ACCEPTED);

    let q = app.api.as_operator().get("/api/v1/queue/stats").await;
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

    let c = app.api.as_operator().get("/api/v1/cache/stats").await;
    let c = c.assert_status(StatusCode::OK);
    assert_eq!(c["reservations"], 1);
    assert_eq!(c["cachedStatuses"], 0);
    assert_eq!(c["countWindowSeconds"], 600);
    assert_eq!(c["countBucketSeconds"], 25);
    assert!(c["databaseKeys"].as_u64().unwrap() >= 2);
    assert!(c["usedMemoryBytes"].as_u64().unwrap() > 0);
    assert!(c["keyPrefix"].as_str().unwrap().starts_with("test:"));
}

#[tokio::test]
async fn readiness_names_the_failing_component() {
    let app = TestApp::spawn().await;
    let ready = app.api.anonymous().get("/api/v1/ready").await;
    assert_eq!(ready.assert_status(StatusCode::OK)["checks"]["redis"], "ok");

    let c = &app.env.clients;
    let broken = Clients {
        cache: IdempotencyStore::new("redis://127.0.0.1:9", "test:broken", c.cache.ttl()).unwrap(),
        ..c.clone()
    };
    let res = app.api_with(broken).anonymous().get("/api/v1/ready").await;
    let problem = res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert_eq!(problem["component"], "redis");
    assert_eq!(problem["checks"]["postgres"], "ok");
    assert_eq!(problem["checks"]["redis"], "unavailable");
}

#[tokio::test]
async fn cache_stats_count_writes_instead_of_scanning() {
    let app = TestApp::spawn().await;
    let body = transfer("count-1", "a", "b", "1");
    for _ in 0..2 {
        app.api.post("/api/v1/transactions", &body).await;
    }
    let cache = &app.env.clients.cache;
    let status = CachedStatus {
        status: "COMPLETED".into(),
        transaction_id: uuid::Uuid::now_v7(),
        failure_code: None,
    };
    cache
        .cache_statuses(&[("demo", "k1", status.clone()), ("demo", "k2", status)])
        .await
        .unwrap();
    let stats = cache.stats().await.unwrap();
    assert_eq!(stats.reservations, 1, "a replay reserves nothing new");
    assert_eq!(stats.cached_statuses, 2);
}
