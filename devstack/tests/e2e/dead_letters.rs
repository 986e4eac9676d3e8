//! Dead letters end to end: the dead-letter queue's poller feeding the dead-letters function, the
//! record in PostgreSQL, the scheduled run's DEAD_LETTERED discrepancies from that record, and the
//! redrive from it.

use http::StatusCode;
use serde_json::json;
use shared::services::reconciliation as run;
use shared::transfers::TransferMessage;

use crate::helpers::Stack;
use crate::reconciliation::{open, post, today, transfer};

/// Puts a body on the dead-letter queue, as the redrive policy does after maxReceiveCount.
async fn dead_letter(s: &Stack, body: &str, group: &str, dedup: &str) {
    s.env
        .clients
        .queue
        .for_url(&s.env.dlq_url)
        .send_message(body, group, dedup)
        .await
        .unwrap();
}

async fn dead_letter_transfer(s: &Stack, m: &TransferMessage, group: &str) {
    let body = serde_json::to_string(m).unwrap();
    dead_letter(s, &body, group, &m.deduplication_id()).await;
}

/// The DEAD_LETTERED discrepancy of a transfer key: (id, status, cleared by a run).
async fn discrepancy(s: &Stack, key: &str) -> (String, String, bool) {
    let conn = s.env.clients.db.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT id::text, status, cleared_by_run IS NOT NULL FROM discrepancies
             WHERE kind = 'DEAD_LETTERED' AND data->>'idempotencyKey' = $1",
            &[&key],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn open_dead_lettered(s: &Stack) -> i64 {
    s.count("SELECT count(*) FROM discrepancies WHERE kind = 'DEAD_LETTERED' AND status = 'OPEN'")
        .await
}

async fn postings(s: &Stack, key: &str) -> i64 {
    let conn = s.env.clients.db.get().await.unwrap();
    conn.query_one(
        "SELECT count(*) FROM transactions WHERE idempotency_key = $1",
        &[&key],
    )
    .await
    .unwrap()
    .get(0)
}

async fn redrive(s: &Stack, id: &str) -> (StatusCode, serde_json::Value) {
    s.api
        .post(
            &format!("/api/v1/discrepancies/{id}/resolve"),
            &json!({"status": "RESOLVED", "action": "redrive"}),
        )
        .await
        .parts()
}

#[tokio::test]
async fn dead_letters_are_recorded_reported_and_cleared_only_when_posted_or_redriven() {
    let s = Stack::start().await;
    open(&s, &["world", "customer"]).await;
    let stuck: Vec<TransferMessage> = (1..=4)
        .map(|i| transfer(&format!("dl-{i}"), "world", "customer", "1.00", None))
        .collect();
    // Four letters of ONE message group (a FIFO queue hands out a group's messages in order, so a
    // scan of the queue could not see past its head); the dead-letters function records them all.
    for m in &stuck {
        dead_letter_transfer(&s, m, "world").await;
    }
    assert_eq!(s.drain_dead_letters().await, 4);
    assert_eq!(s.count("SELECT count(*) FROM dead_letters").await, 4);
    let first = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(first.report["internalChecks"]["deadLettered"], 4);
    assert_eq!(first.report["deadLetterScanError"], serde_json::Value::Null);
    assert_eq!(first.stats.new, 4);
    assert_eq!(open_dead_lettered(&s).await, 4);

    // A fifth letter is in the queue but not recorded yet (its group's head in flight somewhere):
    // the run cannot see it, and it clears nothing because of that.
    let fifth = transfer("dl-5", "world", "customer", "1.00", None);
    dead_letter_transfer(&s, &fifth, "world").await;
    let second = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(
        (second.stats.seen_again, second.stats.cleared),
        (4, 0),
        "{:#}",
        second.report
    );
    assert_eq!(s.drain_dead_letters().await, 1);
    let third = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!((third.stats.new, third.stats.cleared), (1, 0));
    assert_eq!(open_dead_lettered(&s).await, 5);

    // dl-2 reaches the ledger another way (the client retried after FIFO's dedup window): its
    // letter is POSTED and its discrepancy cleared by the next run; the others stay open.
    post(&s.env, &[stuck[1].clone()]).await;
    let fourth = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(fourth.stats.cleared, 1);
    assert_eq!(fourth.report["internalChecks"]["deadLettered"], 4);
    let (_, status, cleared) = discrepancy(&s, "dl-2").await;
    assert_eq!((status.as_str(), cleared), ("RESOLVED", true));
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE status = 'POSTED'")
            .await,
        1
    );
    // Redrive dl-1 from the record: it posts once.
    let (id, _, _) = discrepancy(&s, "dl-1").await;
    let (status, body) = redrive(&s, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "RESOLVED");
    assert_eq!(body["resolution"]["action"], "redrive");
    assert!(body["resolution"]["queuedMessageId"].is_string(), "{body}");
    assert_eq!(s.drain().await, 1);
    assert_eq!(s.status_of("dl-1").await["status"], "COMPLETED");
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE status = 'REDRIVEN'")
            .await,
        1
    );

    // The redrive went out but its status change was lost (the API died in between): the
    // discrepancy is still OPEN, and redriving again is refused: the letter was redriven.
    s.env
        .admin_db
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE discrepancies SET status = 'OPEN', resolution = NULL WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let (status, body) = redrive(&s, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "dead_letter_gone");
    assert_eq!(s.drain().await, 0);
    // A copy sent after FIFO's window (another deduplication id) posts nothing either.
    s.env
        .clients
        .queue
        .resend(
            &serde_json::to_string(&stuck[0]).unwrap(),
            "world",
            "late-copy",
        )
        .await
        .unwrap();
    assert_eq!(s.drain().await, 1);
    assert_eq!(postings(&s, "dl-1").await, 1);
    assert_eq!(
        s.balance("customer").await,
        "2.00",
        "dl-1 and dl-2, once each"
    );

    // The next run clears the reopened dl-1 (its letter was redriven); dl-3, dl-4, dl-5 stay.
    let fifth_run = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(fifth_run.stats.cleared, 1);
    let (_, status, cleared) = discrepancy(&s, "dl-1").await;
    assert_eq!((status.as_str(), cleared), ("RESOLVED", true));
    assert_eq!(open_dead_lettered(&s).await, 3);
    assert_eq!(fifth_run.report["internalChecks"]["deadLettered"], 3);
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn a_malformed_dead_letter_is_recorded_reported_and_not_redrivable() {
    let s = Stack::start().await;
    dead_letter(
        &s,
        r#"{"v":1,"clientId":"demo","surprise":true}"#,
        "g",
        "malformed-1",
    )
    .await;
    assert_eq!(s.drain_dead_letters().await, 1);
    let run = run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(run.stats.new, 1);
    let conn = s.env.clients.db.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT id::text, data FROM discrepancies WHERE kind = 'DEAD_LETTERED' AND client_id = 'demo'",
            &[],
        )
        .await
        .unwrap();
    let (id, data): (String, serde_json::Value) = (row.get(0), row.get(1));
    assert_eq!(data["redrivable"], false);
    assert_eq!(data["body"], r#"{"v":1,"clientId":"demo","surprise":true}"#);
    let (status, body) = redrive(&s, &id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "not_redrivable");
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE status = 'RECORDED'")
            .await,
        1
    );
    // Ignoring it is the way out; the next run leaves it ignored.
    let (status, body) = s
        .api
        .post(
            &format!("/api/v1/discrepancies/{id}/resolve"),
            &json!({"status": "IGNORED", "note": "garbage"}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{body}");
    run::reconcile_internal(&s.env.clients.db, today(), &[])
        .await
        .unwrap();
    assert_eq!(
        s.count(
            "SELECT count(*) FROM discrepancies WHERE kind = 'DEAD_LETTERED' AND status = 'IGNORED'"
        )
        .await,
        1
    );
}
