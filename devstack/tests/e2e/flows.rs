use std::time::Duration;

use futures::future::join_all;
use http::StatusCode;
use serde_json::json;

use crate::helpers::Stack;

#[tokio::test]
async fn a_transfer_goes_from_intake_to_the_ledger() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("bob", "0").await;

    let (status, accepted) = s.submit("pay-1", "world", "alice", "100.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s.status_of("pay-1").await["status"], "PENDING");
    assert_eq!(s.drain().await, 1);

    let done = s.status_of("pay-1").await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(
        done["transactionId"], accepted["transactionId"],
        "the id given at intake is the ledger's"
    );
    assert_eq!(done["transaction"]["amount"], "100.00");
    assert_eq!(
        done["result"]["entries"][1],
        json!({"accountId": "alice", "amount": "100.00", "balanceAfter": "100.00", "leg": 0})
    );

    s.submit("pay-2", "alice", "bob", "30.25").await;
    s.submit("pay-3", "alice", "bob", "80.00").await; // only 69.75 left
    s.drain().await;
    assert_eq!(s.balance("alice").await, "69.75");
    assert_eq!(s.balance("bob").await, "30.25");
    let failed = s.status_of("pay-3").await;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("insufficient_funds"))
    );

    // Ledger pages, newest first, with a cursor.
    let page1 = s
        .api
        .get("/api/v1/accounts/alice/ledger?limit=1")
        .await
        .body;
    assert_eq!(page1["entries"][0]["amount"], "-30.25");
    assert_eq!(page1["entries"][0]["balanceAfter"], "69.75");
    assert_eq!(page1["entries"][0]["counterpartyAccountId"], "bob");
    let cursor = page1["nextCursor"].as_str().unwrap();
    let page2 = s
        .api
        .get(&format!(
            "/api/v1/accounts/alice/ledger?limit=1&cursor={cursor}"
        ))
        .await
        .body;
    assert_eq!(page2["entries"][0]["amount"], "100.00");
    assert_eq!(page2["nextCursor"], json!(null));

    // Balance as of a time between the two postings.
    let t1 = page2["entries"][0]["postedAt"].as_str().unwrap();
    let at_t1 = s
        .api
        .get(&format!("/api/v1/accounts/alice/balance?asOf={t1}"))
        .await
        .body;
    assert_eq!(at_t1["balance"], "100.00");

    // Replaying a completed transfer returns the original acceptance and posts nothing more.
    let (status, replay) = s.submit("pay-1", "world", "alice", "100.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(replay["messageId"], accepted["messageId"]);
    assert_eq!(s.drain().await, 0);
    assert_eq!(s.balance("alice").await, "69.75");
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_post_once() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    let results = join_all((0..50).map(|_| s.submit("same-key", "world", "alice", "12.34"))).await;
    assert!(
        results
            .iter()
            .all(|(st, _)| *st == StatusCode::ACCEPTED || *st == StatusCode::CONFLICT)
    );
    assert_eq!(s.drain().await, 1);
    assert_eq!(s.count("SELECT count(*) FROM transactions").await, 1);
    assert_eq!(s.balance("alice").await, "12.34");
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn losing_redis_does_not_post_twice() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.submit("flush-1", "world", "alice", "5.00").await;
    s.drain().await;

    // Redis loses every key of ours (it keeps nothing on disk): the retry is accepted again...
    flush_prefix(&s.env.clients.config.redis_key_prefix).await;
    let (status, _) = s.submit("flush-1", "world", "alice", "5.00").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    s.drain().await;
    // ...but the ledger's unique key keeps it to one posting.
    assert_eq!(s.count("SELECT count(*) FROM transactions").await, 1);
    assert_eq!(s.balance("alice").await, "5.00");
    assert_eq!(s.status_of("flush-1").await["status"], "COMPLETED");
    s.env.assert_invariants().await;
}

pub async fn flush_prefix(prefix: &str) {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_redelivered_sqs_message_posts_once() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.submit("redeliver-1", "world", "alice", "3.00").await;
    // Receive without deleting (a processor that crashed after commit), let it become visible
    // again, then let the poller process it normally.
    let queue = &s.env.clients.queue;
    let msgs = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(msgs.len(), 1);
    let event =
        devstack::poller::to_sqs_event(msgs.clone(), "arn:aws:sqs:us-east-1:123456789012:q.fifo");
    let response = processor::handle_batch(&s.env.clients, event).await;
    assert!(response.batch_item_failures.is_empty());
    queue
        .change_visibility(msgs[0].receipt_handle.as_deref().unwrap(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.drain().await, 1, "the message came back");
    assert_eq!(s.count("SELECT count(*) FROM transactions").await, 1);
    assert_eq!(s.balance("alice").await, "3.00");
    s.env.assert_invariants().await;
}
