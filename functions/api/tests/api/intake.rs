use std::collections::HashSet;

use futures::future::join_all;
use http::StatusCode;
use serde_json::json;
use shared::clients::Clients;
use shared::idempotency::IdempotencyStore;
use shared::queue::{self, Queue};

use crate::helpers::{TestApp, transfer};

#[tokio::test]
async fn accepted_transfers_replay_and_reused_keys_are_refused() {
    let app = TestApp::spawn().await;
    let body = transfer("order-1001", "alice", "bob", "25.50");

    let first = app.api.post("/api/v1/transactions", &body).await;
    let accepted = first.assert_status(StatusCode::ACCEPTED).clone();
    assert_eq!(accepted["status"], "ACCEPTED");
    assert_eq!(accepted["idempotencyKey"], "order-1001");
    assert_eq!(
        accepted["pollUrl"],
        "/api/v1/transactions/status/order-1001"
    );
    assert_eq!(
        first.headers["location"],
        "/api/v1/transactions/status/order-1001"
    );
    assert!(
        accepted["messageId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        accepted["transactionId"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    assert!(accepted["expiresAt"].is_string());
    assert!(first.headers.get("idempotent-replayed").is_none());

    // Same key, same request (even with keys reordered and the amount written differently).
    let same = json!({"idempotencyKey": "order-1001", "transaction": {"currency": "USD", "amount": 25.5,
        "destination_account_id": "bob", "source_account_id": "alice"}});
    let replay = app.api.post("/api/v1/transactions", &same).await;
    assert_eq!(replay.assert_status(StatusCode::ACCEPTED), &accepted);
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    // Same key, different amount.
    let reused = app
        .api
        .post(
            "/api/v1/transactions",
            &transfer("order-1001", "alice", "bob", "25.51"),
        )
        .await;
    reused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");

    // Keys are per client: another client may use the same key for its own transfer.
    let other = app
        .api
        .as_other()
        .post_raw(
            "/api/v1/transactions",
            "application/json",
            transfer("order-1001", "x", "y", "1").to_string(),
        )
        .await;
    assert_ne!(
        other.assert_status(StatusCode::ACCEPTED)["messageId"],
        accepted["messageId"]
    );

    assert_eq!(app.queue_depth().await, 2);

    // Until the processor runs, the status is PENDING with the message id; other clients see nothing.
    let status = app.api.get("/api/v1/transactions/status/order-1001").await;
    let status = status.assert_status(StatusCode::OK);
    assert_eq!(status["status"], "PENDING");
    assert_eq!(status["messageId"], accepted["messageId"]);
    let other_view = app.api.get("/api/v1/transactions/status/unknown-key").await;
    other_view.assert_problem(StatusCode::NOT_FOUND, "transaction_not_found");
}

#[tokio::test]
async fn the_idempotency_key_may_come_from_the_header() {
    let app = TestApp::spawn().await;
    let mut body = transfer("unused", "alice", "bob", "1.00");
    body.as_object_mut().unwrap().remove("idempotencyKey");
    let res = app
        .api
        .request("POST", "/api/v1/transactions")
        .header("idempotency-key", "hdr-1")
        .json(&body)
        .send()
        .await;
    assert_eq!(
        res.assert_status(StatusCode::ACCEPTED)["idempotencyKey"],
        "hdr-1"
    );

    app.api
        .request("POST", "/api/v1/transactions")
        .header("idempotency-key", "header-key")
        .json(&transfer("body-key", "a", "b", "1"))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_mismatch");
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_enqueue_one_message() {
    let app = TestApp::spawn().await;
    let body = transfer("burst-1", "alice", "bob", "5.00");
    let responses = join_all((0..50).map(|_| app.api.post("/api/v1/transactions", &body))).await;
    let mut message_ids = HashSet::new();
    for res in &responses {
        match res.status {
            StatusCode::ACCEPTED => {
                message_ids.insert(res.body["messageId"].as_str().unwrap().to_string());
            }
            StatusCode::CONFLICT => {
                res.assert_problem(StatusCode::CONFLICT, "request_in_progress");
                assert_eq!(res.headers["retry-after"], "1");
            }
            other => panic!("unexpected {other}: {:#}", res.body),
        }
    }
    assert_eq!(message_ids.len(), 1, "every 202 carries the one message id");
    assert_eq!(app.queue_depth().await, 1, "exactly one message enqueued");
}

#[tokio::test]
async fn sqs_unreachable_is_503_outcome_unknown_and_the_same_key_settles_it() {
    let app = TestApp::spawn().await;
    let c = &app.env.clients;
    let broken_sqs = queue::local_client("http://127.0.0.1:9").await;
    let broken = Clients {
        queue: Queue::new(broken_sqs, c.queue.url().to_string(), None),
        ..c.clone()
    };
    let api = app.api_with(broken);
    let body = transfer("sqs-down-1", "alice", "bob", "7.00").to_string();
    let res = api
        .post_raw("/api/v1/transactions", "application/json", body.clone())
        .await;
    // A failed connection cannot prove the request never reached SQS: the outcome is unknown.
    let problem = res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown");
    assert_eq!(problem["component"], "sqs");
    let promised = problem["transactionId"].clone();
    assert!(res.headers.contains_key("retry-after"));

    // Another body under the key is refused; the same one goes through once SQS is back, under
    // the promised transaction id.
    let other = transfer("sqs-down-1", "alice", "bob", "8.00").to_string();
    app.api
        .post_raw("/api/v1/transactions", "application/json", other)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let retry = app
        .api
        .post_raw("/api/v1/transactions", "application/json", body)
        .await;
    assert_eq!(
        retry.assert_status(StatusCode::ACCEPTED)["transactionId"],
        promised
    );
    assert_eq!(app.queue_depth().await, 1);
}

#[tokio::test]
async fn a_queue_that_refuses_is_503_and_frees_the_key() {
    let app = TestApp::spawn().await;
    let c = &app.env.clients;
    let missing = format!("{}-gone", c.queue.url().trim_end_matches(".fifo"));
    let broken = Clients {
        queue: c.queue.for_url(format!("{missing}.fifo")),
        ..c.clone()
    };
    let api = app.api_with(broken);
    let body = transfer("sqs-refused-1", "alice", "bob", "7.00").to_string();
    let res = api
        .post_raw("/api/v1/transactions", "application/json", body)
        .await;
    let problem = res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert_eq!(problem["component"], "sqs");
    // Nothing is on the queue, so the key is free for another body.
    let other = transfer("sqs-refused-1", "alice", "bob", "9.00").to_string();
    let retry = app
        .api
        .post_raw("/api/v1/transactions", "application/json", other)
        .await;
    retry.assert_status(StatusCode::ACCEPTED);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.queue_depth().await, 1);
}

#[tokio::test]
async fn redis_unavailable_is_503_and_nothing_is_enqueued() {
    let app = TestApp::spawn().await;
    let c = &app.env.clients;
    let broken = Clients {
        cache: IdempotencyStore::new("redis://127.0.0.1:9", "test:broken", c.cache.ttl()).unwrap(),
        ..c.clone()
    };
    let api = app.api_with(broken);
    let body = transfer("redis-down-1", "alice", "bob", "7.00").to_string();
    let res = api
        .post_raw("/api/v1/transactions", "application/json", body)
        .await;
    assert_eq!(
        res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")["component"],
        "redis"
    );
    assert_eq!(app.queue_depth().await, 0);
}

#[tokio::test]
async fn bulk_items_survive_an_unreachable_queue_and_a_refusing_one() {
    let app = TestApp::spawn().await;
    let c = &app.env.clients;
    let items = json!({"items": [
        transfer("bulk-down-1", "alice", "bob", "1.00"),
        transfer("bulk-down-2", "alice", "bob", "2.00"),
    ]});
    // Unreachable: each item's outcome is unknown, its reservation and record are kept.
    let broken = Clients {
        queue: Queue::new(
            queue::local_client("http://127.0.0.1:9").await,
            c.queue.url().to_string(),
            None,
        ),
        ..c.clone()
    };
    let res = app
        .api_with(broken)
        .post("/api/v1/transactions/bulk", &items)
        .await;
    let body = res.assert_status(StatusCode::ACCEPTED);
    let codes: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["outcome_unknown", "outcome_unknown"]);
    // The same request once SQS is back: both accepted (a retry of the same requests), once each.
    let retry = app.api.post("/api/v1/transactions/bulk", &items).await;
    let body = retry.assert_status(StatusCode::ACCEPTED);
    assert_eq!(body["rejected"], 0, "{body}");
    assert_eq!(app.queue_depth().await, 2);

    // A queue that refuses outright: nothing is queued and the keys are free again.
    let missing = format!("{}-gone.fifo", c.queue.url().trim_end_matches(".fifo"));
    let refusing = Clients {
        queue: c.queue.for_url(missing),
        ..c.clone()
    };
    let fresh = json!({"items": [transfer("bulk-refused", "alice", "bob", "3.00")]});
    let res = app
        .api_with(refusing)
        .post("/api/v1/transactions/bulk", &fresh)
        .await;
    let body = res.assert_status(StatusCode::ACCEPTED);
    assert_eq!(body["results"][0]["code"], "service_unavailable");
    let again = app.api.post("/api/v1/transactions/bulk", &fresh).await;
    assert_eq!(again.assert_status(StatusCode::ACCEPTED)["accepted"], 1);
    assert_eq!(app.queue_depth().await, 3);
}
