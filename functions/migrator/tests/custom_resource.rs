//! The migrations custom resource against a real PostgreSQL and a local HTTP endpoint standing in
//! for CloudFormation's pre-signed response URL.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::put;
use migrator::Request;
use serde_json::Value;
use shared::store;
use shared::testkit::{admin_database_url, with_database};

type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn response_server() -> (String, Received) {
    let received: Received = Default::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/{*path}",
        put(move |headers: HeaderMap, body: Bytes| async move {
            sink.lock()
                .unwrap()
                .push((headers, serde_json::from_slice(&body).unwrap()));
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}/cfn-response?X-Amz-Signature=abc"),
        received,
    )
}

fn fixture(name: &str, response_url: &str) -> Request {
    let path = format!(
        "{}/../../events/cloudformation/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["ResponseURL"] = Value::String(response_url.to_string());
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn create_migrates_a_fresh_database_and_update_is_idempotent() {
    let db = format!("ledger_test_{}", uuid_like());
    store::ensure_database(&admin_database_url(), &db)
        .await
        .unwrap();
    let pool = store::pool(&with_database(&admin_database_url(), &db), 1).unwrap();
    let (url, received) = response_server().await;

    migrator::handle(&fixture("migrations-create", &url), store::migrate(&pool))
        .await
        .unwrap();
    migrator::handle(&fixture("migrations-update", &url), store::migrate(&pool))
        .await
        .unwrap();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (headers, create) = &got[0];
    assert_eq!(
        headers["content-type"], "",
        "S3 pre-signed URLs are signed for an empty content type"
    );
    assert_eq!(create["Status"], "SUCCESS");
    assert_eq!(create["PhysicalResourceId"], migrator::PHYSICAL_ID);
    assert_eq!(create["LogicalResourceId"], "DatabaseMigrations");
    assert_eq!(create["RequestId"], "7f4d5e6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a");
    let applied: Vec<&str> = create["Data"]["Applied"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    for m in ["V1__ledger", "V2__reconciliation", "V4__least_privilege"] {
        assert!(applied.contains(&m), "{applied:?}");
    }
    let (_, update) = &got[1];
    assert_eq!(update["Status"], "SUCCESS");
    assert_eq!(update["Data"]["AppliedCount"], "0", "nothing left to apply");
    let tables: i64 = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger_entries'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn failures_are_reported_and_delete_touches_nothing() {
    let (url, received) = response_server().await;
    let broken = store::pool("postgres://postgres@127.0.0.1:9/nowhere", 1).unwrap();
    migrator::handle(&fixture("migrations-create", &url), store::migrate(&broken))
        .await
        .unwrap();
    migrator::handle(&fixture("migrations-delete", &url), async {
        panic!("delete must not migrate")
    })
    .await
    .unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(got[0].1["Status"], "FAILED");
    assert!(
        got[0].1["Reason"].as_str().unwrap().contains("connect"),
        "{}",
        got[0].1
    );
    assert_eq!(got[1].1["Status"], "SUCCESS");
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
