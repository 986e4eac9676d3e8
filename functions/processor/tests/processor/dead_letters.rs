//! The dead-letters function: batches from the dead-letter queue recorded in PostgreSQL (under the
//! app role), idempotently, whatever the bodies hold.

use shared::dead_letters::{self as letters, LetterStatus};
use shared::store::dead_letters;
use shared::testkit::TestEnv;

use crate::helpers::{bodies, event, message};

fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    let conn = env.clients.db.get().await.unwrap();
    conn.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn every_letter_of_one_message_group_is_recorded_once() {
    let env = TestEnv::new().await;
    // Five letters of one group (the helper's records all carry MessageGroupId "g").
    let batch: Vec<_> = (0..5)
        .map(|i| message(&format!("dl-{i}"), "world", "alice", "1.00", "USD"))
        .collect();
    let letters = event(&bodies(&batch));
    let response = processor::dead_letters::handle(&env.clients, letters.clone()).await;
    assert!(failures(&response).is_empty());
    assert_eq!(count(&env, "SELECT count(*) FROM dead_letters").await, 5);
    // SQS delivers the same messages again (the delete was lost): nothing new.
    let response = processor::dead_letters::handle(&env.clients, letters).await;
    assert!(failures(&response).is_empty());
    assert_eq!(count(&env, "SELECT count(*) FROM dead_letters").await, 5);

    let letter = dead_letters::get(&env.clients.db, "m3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.status, LetterStatus::Recorded);
    assert_eq!(letter.group_id.as_deref(), Some("g"));
    assert_eq!(letter.receive_count, Some(1));
    assert_eq!(letter.idempotency_key.as_deref(), Some("dl-3"));
    assert_eq!(letter.transaction_id, Some(batch[3].transaction_id));
    assert_eq!(letter.body, serde_json::to_string(&batch[3]).unwrap());
    assert_eq!(letter.transfer().unwrap(), batch[3]);
}

#[tokio::test]
async fn malformed_bodies_and_bodies_postgres_cannot_store_are_recorded_as_received() {
    let env = TestEnv::new().await;
    let weird = [
        "{not a transfer".to_string(),
        r#"{"v":1,"clientId":"demo","surprise":true}"#.to_string(),
        "nul \0 inside, and a \\0 that was already there".to_string(),
        // Valid JSON whose client id decodes to a NUL: not storable as a client id.
        serde_json::to_string(&message("nul-client", "world", "alice", "1.00", "USD"))
            .unwrap()
            .replace(r#""clientId":"demo""#, r#""clientId":"de\u0000mo""#),
        String::new(),
    ];
    let response = processor::dead_letters::handle(&env.clients, event(&weird)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM dead_letters WHERE client_id IS NULL"
        )
        .await,
        5
    );
    let nul = dead_letters::get(&env.clients.db, "m2")
        .await
        .unwrap()
        .unwrap();
    assert!(nul.body_escaped);
    assert_eq!(letters::decode_body(&nul.body, true), weird[2]);
    assert_eq!(nul.transfer(), None);
    let plain = dead_letters::get(&env.clients.db, "m0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (plain.body.as_str(), plain.body_escaped),
        (weird[0].as_str(), false)
    );
}

#[tokio::test]
async fn a_database_outage_reports_the_batch_for_redelivery() {
    let env = TestEnv::new().await;
    let mut clients = env.clients.clone();
    clients.db = shared::store::pool("postgres://postgres@127.0.0.1:9/nowhere", 1).unwrap();
    let batch = [
        message("o1", "world", "alice", "1.00", "USD"),
        message("o2", "world", "alice", "2.00", "USD"),
    ];
    let letters = event(&bodies(&batch));
    let response = processor::dead_letters::handle(&clients, letters.clone()).await;
    assert_eq!(failures(&response), ["m0", "m1"]);
    // Delivered again once the database is back: recorded.
    let response = processor::dead_letters::handle(&env.clients, letters).await;
    assert!(failures(&response).is_empty());
    assert_eq!(count(&env, "SELECT count(*) FROM dead_letters").await, 2);
}

#[tokio::test]
async fn the_app_role_cannot_delete_a_record() {
    let env = TestEnv::new().await;
    let response = processor::dead_letters::handle(
        &env.clients,
        event(&bodies(&[message("keep", "world", "alice", "1.00", "USD")])),
    )
    .await;
    assert!(failures(&response).is_empty());
    for (pool, sql) in [
        (&env.clients.db, "DELETE FROM dead_letters"),
        (&env.admin_db, "DELETE FROM dead_letters"),
        (&env.clients.db, "UPDATE dead_letters SET body = 'changed'"),
    ] {
        let conn = pool.get().await.unwrap();
        let err = conn.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{sql}: {err}");
    }
    assert_eq!(count(&env, "SELECT count(*) FROM dead_letters").await, 1);
}
