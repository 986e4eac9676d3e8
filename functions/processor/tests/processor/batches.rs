use shared::store::transactions::find_by_key;
use shared::testkit::{DEMO_CLIENT, OTHER_CLIENT, TestEnv};

use crate::helpers::*;

async fn funded_env() -> TestEnv {
    let env = TestEnv::new().await;
    open(&env, DEMO_CLIENT, "world", "USD", None).await;
    open(&env, DEMO_CLIENT, "alice", "USD", Some(0)).await;
    open(&env, DEMO_CLIENT, "bob", "USD", Some(50)).await;
    open(&env, DEMO_CLIENT, "yen", "JPY", Some(0)).await;
    open(&env, OTHER_CLIENT, "mallory", "USD", None).await;
    env
}

#[tokio::test]
async fn a_batch_posts_in_message_order_with_running_balances() {
    let env = funded_env().await;
    let batch = [
        message("t1", "world", "alice", "100.00", "USD"),
        message("t2", "alice", "bob", "60.00", "USD"),
        // alice has 40.00 left: this one must fail, and it only can if t2 was applied first.
        message("t3", "alice", "bob", "40.01", "USD"),
        message("t4", "bob", "alice", "110.00", "USD"), // bob may go to -50.00
    ];
    let response = run(&env, &batch).await;
    assert!(failures(&response).is_empty());
    assert_eq!(balance(&env, "alice").await, "150.00");
    assert_eq!(balance(&env, "bob").await, "-50.00");
    assert_eq!(balance(&env, "world").await, "-100.00");

    let t3 = find_by_key(&env.clients.db, DEMO_CLIENT, "t3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t3.status.as_str(), t3.failure_code.as_deref()),
        ("FAILED", Some("insufficient_funds"))
    );
    assert!(t3.entries.is_empty());
    let t4 = find_by_key(&env.clients.db, DEMO_CLIENT, "t4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t4.status, "COMPLETED");
    assert_eq!(t4.entries.len(), 2);
    assert_eq!(t4.entries[0].account_id, "bob");
    assert_eq!(t4.entries[0].balance_after.to_string(), "-50.00");
    assert_eq!(count(&env, "SELECT count(*) FROM ledger_entries").await, 6);
    env.assert_invariants().await;
}

#[tokio::test]
async fn business_rejections_are_recorded_as_failed_and_acked() {
    let env = funded_env().await;
    let cases = [
        (
            message("r1", "alice", "alice", "1.00", "USD"),
            "same_account",
        ),
        (
            message("r2", "alice", "nobody", "1.00", "USD"),
            "account_not_found",
        ),
        (
            message("r3", "nobody", "alice", "1.00", "USD"),
            "account_not_found",
        ),
        (
            message("r4", "world", "mallory", "1.00", "USD"),
            "account_not_found",
        ), // another client's
        (
            message("r5", "world", "yen", "1.00", "USD"),
            "currency_mismatch",
        ),
        (
            message("r6", "world", "alice", "1.00", "EUR"),
            "currency_mismatch",
        ),
        (
            message("r7", "alice", "bob", "0.01", "USD"),
            "insufficient_funds",
        ),
        (
            message("r8", "bob", "alice", "50.01", "USD"),
            "insufficient_funds",
        ),
    ];
    let batch: Vec<_> = cases.iter().map(|(m, _)| m.clone()).collect();
    let response = run(&env, &batch).await;
    assert!(
        failures(&response).is_empty(),
        "business rejections are never retried"
    );
    for (m, code) in &cases {
        let t = find_by_key(&env.clients.db, DEMO_CLIENT, &m.idempotency_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.status, "FAILED");
        assert_eq!(
            t.failure_code.as_deref(),
            Some(*code),
            "{}",
            m.idempotency_key
        );
    }
    assert_eq!(count(&env, "SELECT count(*) FROM ledger_entries").await, 0);
    assert_eq!(balance(&env, "alice").await, "0.00");
    // Another client's messages cannot touch this client's accounts either.
    let intruder = message_for(OTHER_CLIENT, "steal", "alice", "mallory", "1.00", "USD");
    assert!(failures(&run(&env, &[intruder]).await).is_empty());
    let t = find_by_key(&env.clients.db, OTHER_CLIENT, "steal")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.failure_code.as_deref(), Some("account_not_found"));
    env.assert_invariants().await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_posts_once() {
    let env = funded_env().await;
    let m = message("dup-1", "world", "alice", "10.00", "USD");
    // Twice in one batch, then again in a later batch (a redelivery after a lost ack).
    assert!(failures(&run(&env, &[m.clone(), m.clone()]).await).is_empty());
    assert!(failures(&run(&env, std::slice::from_ref(&m)).await).is_empty());
    assert_eq!(balance(&env, "alice").await, "10.00");
    assert_eq!(count(&env, "SELECT count(*) FROM transactions").await, 1);
    assert_eq!(count(&env, "SELECT count(*) FROM ledger_entries").await, 2);

    // The same key with another body (Redis lost the key, the client changed the request): the
    // ledger keeps the first and posts nothing more.
    let changed = message("dup-1", "world", "alice", "99.00", "USD");
    assert!(failures(&run(&env, &[changed]).await).is_empty());
    assert_eq!(balance(&env, "alice").await, "10.00");

    // A failed transfer redelivered stays failed, even if it would now succeed.
    let poor = message("dup-2", "alice", "bob", "20.00", "USD");
    run(&env, std::slice::from_ref(&poor)).await;
    run(
        &env,
        &[message("top-up", "world", "alice", "100.00", "USD")],
    )
    .await;
    run(&env, &[poor]).await;
    let t = find_by_key(&env.clients.db, DEMO_CLIENT, "dup-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.failure_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(balance(&env, "bob").await, "0.00");
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_malformed_message_fails_with_everything_after_it() {
    let env = funded_env().await;
    let mut bodies = bodies(&[
        message("ok-1", "world", "alice", "1.00", "USD"),
        message("ok-2", "world", "alice", "2.00", "USD"),
        message("after-1", "world", "alice", "4.00", "USD"),
    ]);
    bodies.insert(2, r#"{"v":1,"surprise":true}"#.to_string());
    let response = processor::handle_batch(&env.clients, event(&bodies)).await;
    assert_eq!(failures(&response), ["m2", "m3"]);
    assert_eq!(balance(&env, "alice").await, "3.00");
    assert!(
        find_by_key(&env.clients.db, DEMO_CLIENT, "after-1")
            .await
            .unwrap()
            .is_none()
    );

    let response =
        processor::handle_batch(&env.clients, event(&["not json at all".to_string()])).await;
    assert_eq!(failures(&response), ["m0"]);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_database_outage_fails_the_whole_batch_for_retry() {
    let env = funded_env().await;
    let mut clients = env.clients.clone();
    clients.db = shared::store::pool("postgres://postgres@127.0.0.1:9/nowhere", 1).unwrap();
    let batch = [
        message("o1", "world", "alice", "1.00", "USD"),
        message("o2", "world", "alice", "2.00", "USD"),
    ];
    let response = processor::handle_batch(&clients, event(&bodies(&batch))).await;
    assert_eq!(failures(&response), ["m0", "m1"]);
    // The retry, once the database is back, posts them.
    assert!(failures(&run(&env, &batch).await).is_empty());
    assert_eq!(balance(&env, "alice").await, "3.00");
    env.assert_invariants().await;
}

#[tokio::test]
async fn statuses_are_cached_after_commit() {
    let env = funded_env().await;
    run(
        &env,
        &[
            message("c1", "world", "alice", "1.00", "USD"),
            message("c2", "alice", "bob", "9.00", "USD"),
        ],
    )
    .await;
    let c1 = env
        .clients
        .cache
        .cached_status(DEMO_CLIENT, "c1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c1.status, "COMPLETED");
    let c2 = env
        .clients
        .cache
        .cached_status(DEMO_CLIENT, "c2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c2.status.as_str(), c2.failure_code.as_deref()),
        ("FAILED", Some("insufficient_funds"))
    );
}

#[tokio::test]
async fn a_message_the_database_refuses_fails_alone_and_the_rest_of_the_batch_posts() {
    let env = funded_env().await;
    let batch = [
        message("p1", "world", "alice", "10.00", "USD"),
        message("p2", "world", "alice", "20.00", "USD"),
        message("p3", "world", "bob", "30.00", "USD"),
    ];
    // p2 carries what PostgreSQL cannot store (intake refuses it; an older API or a hand-made
    // message may still send it): a NUL inside metadata.
    let mut raw = bodies(&batch);
    let mut poisoned: serde_json::Value = serde_json::from_str(&raw[1]).unwrap();
    poisoned["transfer"]["metadata"] = serde_json::json!({"note": "bad\u{0}byte"});
    poisoned["transfer"]["description"] = serde_json::json!("also kept out");
    raw[1] = serde_json::to_string(&poisoned).unwrap();

    let response = processor::handle_batch(&env.clients, event(&raw)).await;
    assert!(
        failures(&response).is_empty(),
        "nothing is retried: {:?}",
        failures(&response)
    );
    assert_eq!(balance(&env, "alice").await, "10.00");
    assert_eq!(balance(&env, "bob").await, "30.00");
    let p2 = find_by_key(&env.clients.db, DEMO_CLIENT, "p2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p2.status.as_str(), p2.failure_code.as_deref()),
        ("FAILED", Some("refused_by_database"))
    );
    assert!(p2.entries.is_empty());
    // Each message has its event, the refused one as recorded (its free-form content left out).
    let conn = env.clients.db.get().await.unwrap();
    let events: Vec<(String, serde_json::Value)> = conn
        .query(
            "SELECT type, data FROM events WHERE type LIKE 'transfer.%' ORDER BY xid, seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Posted one by one after the batch was refused: p1, p2 (recorded FAILED), p3.
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transfer.completed",
            "transfer.failed",
            "transfer.completed"
        ]
    );
    let refused = &events[1].1;
    assert_eq!(refused["idempotencyKey"], "p2");
    assert_eq!(refused["failureCode"], "refused_by_database");
    assert_eq!(
        refused["transaction"]["description"],
        serde_json::Value::Null
    );

    // A redelivery of the same batch changes nothing, and announces nothing again.
    let again = processor::handle_batch(&env.clients, event(&raw)).await;
    assert!(failures(&again).is_empty());
    assert_eq!(balance(&env, "alice").await, "10.00");
    assert_eq!(count(&env, "SELECT count(*) FROM transactions").await, 3);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM events WHERE type LIKE 'transfer.%'"
        )
        .await,
        events.len() as i64
    );
    env.assert_invariants().await;
}

#[tokio::test]
async fn sessions_carry_statement_lock_and_idle_timeouts() {
    let env = TestEnv::new().await;
    let conn = env.clients.db.get().await.unwrap();
    let show = |name: &'static str| {
        let conn = &conn;
        async move {
            conn.query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(show("statement_timeout").await, "30s");
    assert_eq!(show("lock_timeout").await, "5s");
    assert_eq!(show("idle_in_transaction_session_timeout").await, "30s");
}
