//! Adjusting transfers: the batch that decides one settles its discrepancy in the same database
//! transaction (posted: RESOLVED; rejected: OPEN again with the code), and the ledger marks it by
//! its column, whatever its key.

use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::reconcile::discrepancies::AdjustmentStart;
use shared::store::discrepancies as store;
use shared::testkit::{DEMO_CLIENT, TestEnv};
use shared::transfers::{IdempotencyKey, TransferInput, TransferMessage};
use uuid::Uuid;

use crate::helpers::*;

async fn env() -> TestEnv {
    let env = TestEnv::new().await;
    open(&env, DEMO_CLIENT, "world", "USD", None).await;
    open(&env, DEMO_CLIENT, "bank", "USD", None).await;
    open(&env, DEMO_CLIENT, "suspense-demo", "USD", None).await;
    // A suspense account that may not go below zero: an adjustment out of it is rejected.
    open(&env, DEMO_CLIENT, "suspense-empty", "USD", Some(0)).await;
    env
}

/// A MISSING_IN_LEDGER discrepancy on `bank`, as a run would have stored it.
async fn discrepancy(env: &TestEnv, amount: &str) -> Uuid {
    let id = Uuid::now_v7();
    let conn = env.admin_db.get().await.unwrap();
    conn.execute(
        "INSERT INTO discrepancies (id, client_id, account_id, kind, fingerprint, actual, currency,
             detail, first_seen_run, last_seen_run)
         VALUES ($1, $2, 'bank', 'MISSING_IN_LEDGER', $4, $3::text::numeric, 'USD',
                 'the bank booked a line the ledger does not have', $1, $1)",
        &[&id, &DEMO_CLIENT, &amount, &id.to_string()],
    )
    .await
    .unwrap();
    id
}

/// Moves the discrepancy to ADJUSTING as the API does; returns the adjusting transfer's message.
async fn begin(env: &TestEnv, id: Uuid, source: &str, amount: &str) -> TransferMessage {
    let plan = json!({"suspenseAccountId": source, "transfer": {"amount": amount}});
    let start = store::begin_adjustment(&env.clients.db, DEMO_CLIENT, id, Some("post it"), &plan)
        .await
        .unwrap();
    let AdjustmentStart::Started { key, .. } = start else {
        panic!("{start:?}");
    };
    let input: TransferInput = serde_json::from_value(json!({
        "source_account_id": source, "destination_account_id": "bank", "amount": amount,
        "currency": "USD", "metadata": {"discrepancyId": id},
    }))
    .unwrap();
    let transfer = input
        .validate(None, Decimal::from(1_000_000))
        .unwrap()
        .adjusting(id);
    TransferMessage::new(DEMO_CLIENT, &key, transfer)
}

async fn status_and_history(env: &TestEnv, id: Uuid) -> (String, Value, Vec<(String, String)>) {
    let (d, events) = store::get_discrepancy(&env.clients.db, DEMO_CLIENT, id)
        .await
        .unwrap()
        .unwrap();
    let history = events
        .iter()
        .map(|e| {
            (
                format!("{:?}->{}", e.from_status.map(|s| s.as_str()), e.to_status),
                e.note.clone().unwrap_or_default(),
            )
        })
        .collect();
    (
        d.status.to_string(),
        d.resolution.unwrap_or(Value::Null),
        history,
    )
}

async fn adjusts_column(env: &TestEnv, key: &str) -> Option<Uuid> {
    let conn = env.clients.db.get().await.unwrap();
    conn.query_one(
        "SELECT adjusts_discrepancy_id FROM transactions WHERE client_id = $1 AND idempotency_key = $2",
        &[&DEMO_CLIENT, &key],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_posted_adjustment_resolves_its_discrepancy_in_the_posting_transaction() {
    let env = env().await;
    let id = discrepancy(&env, "25.00").await;
    let adjusting = begin(&env, id, "suspense-demo", "25.00").await;
    assert_eq!(status_and_history(&env, id).await.0, "ADJUSTING");

    // In one batch with ordinary transfers, one of them under a key that looks like the old prefix.
    let plain = message(&format!("adjust-{id}"), "world", "bank", "5.00", "USD");
    let batch = [
        message("before", "world", "bank", "1.00", "USD"),
        adjusting.clone(),
        plain.clone(),
    ];
    let response = run(&env, &batch).await;
    assert!(failures(&response).is_empty());
    assert_eq!(balance(&env, "bank").await, "31.00");

    let (status, resolution, history) = status_and_history(&env, id).await;
    assert_eq!(status, "RESOLVED");
    assert_eq!(resolution["outcome"], "posted");
    assert_eq!(
        resolution["transfer"]["transactionId"],
        json!(adjusting.transaction_id)
    );
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].0, "Some(\"OPEN\")->ADJUSTING");
    assert_eq!(history[1].0, "Some(\"ADJUSTING\")->RESOLVED");
    assert_eq!(
        history[1].1,
        format!("adjusting transfer {} posted", adjusting.transaction_id)
    );
    let conn = env.clients.db.get().await.unwrap();
    let actor: String = conn
        .query_one(
            "SELECT actor FROM discrepancy_events WHERE discrepancy_id = $1 ORDER BY id DESC LIMIT 1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, DEMO_CLIENT);

    // The ledger marks the adjusting transfer by its column, and only it.
    assert_eq!(
        adjusts_column(&env, &adjusting.idempotency_key).await,
        Some(id)
    );
    assert_eq!(adjusts_column(&env, &plain.idempotency_key).await, None);
    assert_eq!(adjusts_column(&env, "before").await, None);

    // A redelivery posts nothing and records nothing more.
    let response = run(&env, std::slice::from_ref(&adjusting)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(balance(&env, "bank").await, "31.00");
    assert_eq!(status_and_history(&env, id).await.2.len(), 2);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_rejected_adjustment_reopens_its_discrepancy_with_the_reason_and_a_retry_gets_a_new_key()
{
    let env = env().await;
    let id = discrepancy(&env, "40.00").await;
    let first = begin(&env, id, "suspense-empty", "40.00").await;
    let response = run(&env, std::slice::from_ref(&first)).await;
    assert!(failures(&response).is_empty());

    let (status, resolution, history) = status_and_history(&env, id).await;
    assert_eq!(status, "OPEN");
    assert_eq!(
        (
            resolution["outcome"].as_str(),
            resolution["failureCode"].as_str()
        ),
        (Some("rejected"), Some("insufficient_funds"))
    );
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1].0, "Some(\"ADJUSTING\")->OPEN");
    assert_eq!(
        history[1].1,
        format!(
            "adjusting transfer {} rejected: insufficient_funds",
            first.transaction_id
        )
    );
    assert_eq!(adjusts_column(&env, &first.idempotency_key).await, Some(id));
    assert_eq!(balance(&env, "bank").await, "0.00");

    // Adjusting again is a new attempt under a new key (the first one is FAILED in the ledger).
    let second = begin(&env, id, "suspense-demo", "40.00").await;
    assert_ne!(second.idempotency_key, first.idempotency_key);
    assert_eq!(second.idempotency_key, format!("adjust {id} 2"));
    let response = run(&env, std::slice::from_ref(&second)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(status_and_history(&env, id).await.0, "RESOLVED");
    assert_eq!(balance(&env, "bank").await, "40.00");
    env.assert_invariants().await;
}

#[tokio::test]
async fn an_adjustment_whose_discrepancy_was_closed_meanwhile_posts_and_leaves_the_status() {
    let env = env().await;
    let id = discrepancy(&env, "12.00").await;
    let adjusting = begin(&env, id, "suspense-demo", "12.00").await;
    // Closed by other means while the transfer was queued (e.g. an operator, by SQL).
    let conn = env.admin_db.get().await.unwrap();
    conn.execute(
        "UPDATE discrepancies SET status = 'IGNORED' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let response = run(&env, std::slice::from_ref(&adjusting)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(balance(&env, "bank").await, "12.00");
    let (status, _, history) = status_and_history(&env, id).await;
    assert_eq!(status, "IGNORED");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].0, "Some(\"IGNORED\")->IGNORED");
    assert!(
        history[1]
            .1
            .ends_with("posted (the discrepancy was IGNORED and stays so)")
    );
    env.assert_invariants().await;
}

#[tokio::test]
async fn an_adjustment_refused_by_the_database_reopens_its_discrepancy() {
    let env = env().await;
    let id = discrepancy(&env, "3.00").await;
    let adjusting = begin(&env, id, "suspense-demo", "3.00").await;
    let outcome = shared::store::posting::record_refused(&env.clients.db, &adjusting)
        .await
        .unwrap();
    assert_eq!(outcome.status(), ("FAILED", Some("refused_by_database")));
    let (status, _, history) = status_and_history(&env, id).await;
    assert_eq!(status, "OPEN");
    assert!(history[1].1.ends_with("rejected: refused_by_database"));
    assert_eq!(
        adjusts_column(&env, &adjusting.idempotency_key).await,
        Some(id)
    );
}

#[tokio::test]
async fn messages_whose_key_and_discrepancy_disagree_are_malformed() {
    let env = env().await;
    let id = discrepancy(&env, "1.00").await;
    let adjusting = begin(&env, id, "suspense-demo", "1.00").await;
    // A client key carrying `adjusts`: never produced by intake, refused by the processor.
    let mut forged = adjusting.clone();
    forged.idempotency_key = IdempotencyKey::parse("mine", "k").unwrap().as_str().into();
    let response = run(&env, &[forged]).await;
    assert_eq!(failures(&response), ["m0"]);
    assert_eq!(status_and_history(&env, id).await.0, "ADJUSTING");
}
