//! Exactly once at the edges: what the API answers while Redis loses keys or stalls and while the
//! SQS server loses replies, stalls or forgets its queues, and what the ledger then holds. SQS
//! faults come from a TCP proxy in front of the real SQS server; Redis loss is a real delete of the
//! test's keys.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use http::StatusCode;
use serde_json::{Value, json};
use shared::auth::Authenticator;
use shared::clients::Clients;
use shared::queue;
use shared::testkit::client::TestClient;
use shared::testkit::proxy::{Fault, FaultProxy};
use shared::testkit::{DEMO_CLIENT, DEMO_TOKEN, TestOptions, sqs_endpoint};
use shared::transfers::TransferInput;

use crate::helpers::Stack;

/// The stack's clients with SQS reached through a fault proxy.
async fn through_proxy(s: &Stack) -> (FaultProxy, TestClient) {
    let upstream = sqs_endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = FaultProxy::start(&upstream).await.unwrap();
    let sqs = queue::local_client(&proxy.url()).await;
    let auth = Authenticator::default().with_client(DEMO_CLIENT, DEMO_TOKEN);
    let clients = Clients::build_with((*s.env.clients.config).clone(), auth, sqs).unwrap();
    (proxy, s.api.on(api::router(clients)))
}

fn transfer(key: &str, amount: &str) -> Value {
    json!({"transaction": {"source_account_id": "world", "destination_account_id": "alice",
        "amount": amount, "currency": "USD"}, "idempotencyKey": key})
}

/// Deletes every Redis key of this test (what a Redis restart does to them).
async fn lose_redis(s: &Stack) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}:*", s.env.clients.config.redis_key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn postings_for(s: &Stack, key: &str) -> i64 {
    s.count(&format!(
        "SELECT count(*) FROM transactions WHERE idempotency_key = '{key}' AND status = 'COMPLETED'"
    ))
    .await
}

async fn funded() -> Stack {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s
}

#[tokio::test]
async fn a_lost_send_reply_is_outcome_unknown_and_the_same_key_settles_it_exactly_once() {
    let s = funded().await;
    let (proxy, api) = through_proxy(&s).await;

    proxy.set(Fault::LoseReplies);
    let (status, problem) = api
        .post("/api/v1/transactions", &transfer("lost-1", "10.00"))
        .await
        .parts();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "outcome_unknown", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("retry with the same idempotency key")
    );
    let promised = problem["transactionId"].clone();
    assert!(promised.is_string());
    // It did reach the queue: the client was right not to believe "nothing happened".
    let stats = s.env.clients.queue.stats().await.unwrap();
    assert_eq!(stats.queue.visible + stats.queue.in_flight, 1);
    // The status route does not pretend to know either.
    let unknown = s.status_of("lost-1").await;
    assert_eq!(unknown["status"], "UNKNOWN", "{unknown}");
    assert_eq!(unknown["transactionId"], promised);

    proxy.set(Fault::None);
    // Correcting the amount under the same key is refused: the first may be on the queue.
    let (status, body) = api
        .post("/api/v1/transactions", &transfer("lost-1", "12.00"))
        .await
        .parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");
    // The same request again: accepted, under the promised transaction id.
    let (status, body) = api
        .post("/api/v1/transactions", &transfer("lost-1", "10.00"))
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["transactionId"], promised);

    s.drain().await;
    assert_eq!(postings_for(&s, "lost-1").await, 1);
    assert_eq!(s.balance("alice").await, "10.00");
    let done = s.status_of("lost-1").await;
    assert_eq!(
        (done["status"].clone(), done["transaction"]["id"].clone()),
        (json!("COMPLETED"), promised)
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn a_stalled_queue_answers_within_seconds_not_never() {
    let s = funded().await;
    let (proxy, api) = through_proxy(&s).await;
    proxy.set(Fault::Stall);
    let started = Instant::now();
    let (status, problem) = tokio::time::timeout(
        Duration::from_secs(30),
        api.post("/api/v1/transactions", &transfer("stall-1", "1.00")),
    )
    .await
    .expect("the local SQS client has timeouts")
    .parts();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "outcome_unknown");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Nothing reached the queue; the retry posts it once.
    proxy.set(Fault::None);
    let (status, _) = api
        .post("/api/v1/transactions", &transfer("stall-1", "1.00"))
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED);
    s.drain().await;
    assert_eq!(postings_for(&s, "stall-1").await, 1);
}

#[tokio::test]
async fn after_redis_loses_a_key_the_ledger_decides() {
    let s = funded().await;
    let (status, first) = s.submit("k-loss", "world", "alice", "5.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    s.drain().await;
    lose_redis(&s).await;

    // Another body under the key: refused, not silently dropped.
    let (status, body) = s.submit("k-loss", "world", "alice", "6.00").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");
    // The same body: the original transfer, not a new id that never exists.
    let (status, again) = s.submit("k-loss", "world", "alice", "5.00").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["transactionId"], first["transactionId"]);
    s.drain().await;
    assert_eq!(postings_for(&s, "k-loss").await, 1);
    assert_eq!(s.balance("alice").await, "5.00");
}

#[tokio::test]
async fn an_accepted_transfer_never_reads_as_unknown_after_redis_loss() {
    let s = funded().await;
    let (status, accepted) = s.submit("k-queued", "world", "alice", "3.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    lose_redis(&s).await;
    let pending = s.status_of("k-queued").await;
    assert_eq!(pending["status"], "PENDING", "{pending}");
    assert_eq!(pending["transactionId"], accepted["transactionId"]);
    s.drain().await;
    assert_eq!(s.status_of("k-queued").await["status"], "COMPLETED");
}

#[tokio::test]
async fn a_reservation_whose_reply_was_lost_is_the_same_request_on_retry() {
    let s = funded().await;
    // Redis took the reservation, but the intake that asked never heard back (a stall): the
    // reservation is there, nothing was sent.
    let input: TransferInput =
        serde_json::from_value(transfer("k-stall", "7.00")["transaction"].clone()).unwrap();
    let hash = input
        .validate(None, rust_decimal::Decimal::from(1_000_000))
        .unwrap()
        .request_hash();
    let taken = s
        .env
        .clients
        .cache
        .reserve(DEMO_CLIENT, "k-stall", &hash)
        .await
        .unwrap();
    assert!(matches!(
        taken,
        shared::idempotency::Reservation::Reserved(_)
    ));

    // Just after, it may still be in flight: retry shortly. (Before, that 409 lasted the whole
    // in-progress TTL, 30 s.)
    let (status, body) = s.submit("k-stall", "world", "alice", "7.00").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "request_in_progress");
    // Once it is older than RESUME_AFTER, the retry is recognised as the same request.
    tokio::time::sleep(shared::idempotency::RESUME_AFTER + Duration::from_millis(200)).await;
    let (status, body) = s.submit("k-stall", "world", "alice", "7.00").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Another body while that reservation stands is not accepted.
    let (status, body) = s.submit("k-stall", "world", "alice", "8.00").await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::CONFLICT,
        "{body}"
    );
    s.drain().await;
    assert_eq!(postings_for(&s, "k-stall").await, 1);
    assert_eq!(s.balance("alice").await, "7.00");
}

#[tokio::test]
async fn a_queue_the_local_server_forgot_is_recreated_and_otherwise_named_in_the_503() {
    let s = funded().await;
    s.env.clients.queue.delete_queue().await.unwrap();

    // Production clients (no recreation): the 503 says what is wrong.
    let (status, problem) = s.submit("k-gone", "world", "alice", "1.00").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("refused") && detail.to_lowercase().contains("queue"),
        "{detail}"
    );

    // devstack's clients recreate it.
    let name = s.env.queue_url.rsplit('/').next().unwrap().to_string();
    let mut clients = s.env.clients.clone();
    clients.queue = clients.queue.recreating(queue::RecreateQueues {
        name,
        max_receive_count: TestOptions::default().max_receive_count,
        visibility_timeout_secs: TestOptions::default().visibility_timeout_secs,
    });
    let api = s.api.on(api::router(clients));
    let (status, body) = api
        .post("/api/v1/transactions", &transfer("k-gone", "1.00"))
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.drain().await;
    assert_eq!(postings_for(&s, "k-gone").await, 1);
}

#[tokio::test]
async fn a_database_outage_delays_the_retry_instead_of_spending_receives() {
    let s = Stack::start_with(TestOptions {
        visibility_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    let (status, _) = s.submit("k-outage", "world", "alice", "2.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Receive it as the event source mapping would, and fail the batch on a dead database.
    let queue = &s.env.clients.queue;
    let received = queue.receive(10, Duration::from_secs(2)).await.unwrap();
    let records: Vec<SqsMessage> = received
        .into_iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id;
            r.receipt_handle = m.receipt_handle;
            r.body = m.body;
            r.attributes = m.attributes;
            r
        })
        .collect();
    assert_eq!(records.len(), 1);
    let mut broken = s.env.clients.clone();
    broken.db = shared::store::pool("postgres://postgres@127.0.0.1:9/nowhere", 1).unwrap();
    let mut config = (*broken.config).clone();
    config.retry_backoff = shared::retry::Backoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(60),
    };
    broken.config = std::sync::Arc::new(config);
    let mut event = SqsEvent::default();
    event.records = records;
    let response = processor::handle_batch(&broken, event).await;
    assert_eq!(response.batch_item_failures.len(), 1);

    // The queue's own visibility timeout is 1 s; the message now waits 30 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert!(again.is_empty(), "the retry waits out its backoff");
}
