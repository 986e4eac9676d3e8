//! Money movement end to end (issue 11): multi-leg transactions, holds, refunds, value dates and
//! bulk intake, through the API, the queue and the processor, with the ledger's invariants after
//! each scenario.

use std::time::Duration;

use chrono::Utc;
use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::Stack;

impl Stack {
    async fn problem(&self, path: &str, body: &Value) -> (StatusCode, String) {
        let (status, body) = self.api.post(path, body).await.parts();
        (status, body["code"].as_str().unwrap_or("").to_string())
    }

    async fn balances(&self, id: &str) -> Value {
        self.api
            .get(&format!("/api/v1/accounts/{id}/balance"))
            .await
            .body
    }
}

fn card_payment(key: &str, tax: &str) -> Value {
    json!({"transaction": {"currency": "USD", "reference": key, "legs": [
        {"source_account_id": "customer", "destination_account_id": "merchant", "amount": "97.00"},
        {"source_account_id": "customer", "destination_account_id": "fees", "amount": "2.50"},
        {"source_account_id": "customer", "destination_account_id": "tax", "amount": tax}]},
        "idempotencyKey": key})
}

#[tokio::test]
async fn a_multi_leg_payment_posts_every_leg_or_none() {
    let s = Stack::start().await;
    for (id, limit) in [
        ("world", "unlimited"),
        ("customer", "0"),
        ("merchant", "0"),
        ("fees", "0"),
        ("tax", "0"),
    ] {
        s.open(id, limit).await;
    }
    s.submit("fund", "world", "customer", "100.00").await;
    s.drain().await;

    let accepted = s
        .accepted("/api/v1/transactions", &card_payment("card-1", "0.50"))
        .await;
    // One cent more than the customer has left: the third leg fails, so none posts.
    s.accepted("/api/v1/transactions", &card_payment("card-2", "0.50"))
        .await;
    s.drain().await;

    let done = s.status_of("card-1").await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["transactionId"], accepted["transactionId"]);
    let legs = done["transaction"]["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 3);
    assert_eq!(legs[1]["destination_account_id"], "fees");
    assert_eq!(legs[1]["amount"], "2.50");
    let entries = done["result"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "one debit and one credit a leg");
    assert_eq!(
        entries[2],
        json!({"accountId": "customer", "amount": "-2.50", "balanceAfter": "0.50", "leg": 1})
    );
    let failed = s.status_of("card-2").await;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("insufficient_funds"))
    );
    for (id, balance) in [
        ("customer", "0.00"),
        ("merchant", "97.00"),
        ("fees", "2.50"),
        ("tax", "0.50"),
    ] {
        assert_eq!(s.balance(id).await, balance, "{id}");
    }
    // The payer's ledger shows each leg with its own counterparty.
    let ledger = s.api.get("/api/v1/accounts/customer/ledger").await.body;
    let counterparties: Vec<&str> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|e| e["counterpartyAccountId"].as_str().unwrap())
        .collect();
    assert_eq!(counterparties, ["tax", "fees", "merchant"]);
    // By id too.
    let by_id = s
        .api
        .get(&format!(
            "/api/v1/transactions/{}",
            accepted["transactionId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(by_id.body["transaction"]["kind"], "TRANSFER");
    assert_eq!(
        s.api
            .as_other()
            .get(&format!(
                "/api/v1/transactions/{}",
                accepted["transactionId"].as_str().unwrap()
            ))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Request errors are 422 with the leg's path.
    let mut bad = card_payment("card-3", "0.501");
    let (status, body) = s.api.post("/api/v1/transactions", &bad).await.parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (
            Some("amount_scale_exceeded"),
            Some("transaction.legs[2].amount")
        )
    );
    bad["transaction"]["source_account_id"] = json!("customer");
    assert_eq!(
        s.problem("/api/v1/transactions", &bad).await.1,
        "conflicting_fields"
    );
    bad["transaction"] = json!({"legs": []});
    assert_eq!(
        s.problem("/api/v1/transactions", &bad).await.1,
        "invalid_field"
    );
    let many: Vec<Value> = (0..26).map(|_| json!({"source_account_id": "world", "destination_account_id": "tax", "amount": "1"})).collect();
    bad["transaction"] = json!({"currency": "USD", "legs": many});
    assert_eq!(
        s.problem("/api/v1/transactions", &bad).await.1,
        "too_many_legs"
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn a_hold_reserves_then_captures_in_parts_and_voids_the_rest() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("shop", "0").await;
    s.submit("fund", "world", "alice", "100.00").await;
    s.drain().await;

    let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let hold = json!({"hold": {"source_account_id": "alice", "destination_account_id": "shop",
        "amount": "60.00", "expiresAt": expires}, "idempotencyKey": "h1"});
    let accepted = s.accepted("/api/v1/holds", &hold).await;
    let id = accepted["transactionId"].as_str().unwrap().to_string();
    s.drain().await;
    let b = s.balances("alice").await;
    assert_eq!(
        (
            b["posted"].as_str(),
            b["pending"].as_str(),
            b["available"].as_str()
        ),
        (Some("100.00"), Some("60.00"), Some("40.00"))
    );
    assert_eq!(s.status_of("h1").await["transaction"]["kind"], "HOLD");

    // Available, not posted, decides: 40.01 is refused.
    s.submit("t1", "alice", "shop", "40.01").await;
    s.drain().await;
    assert_eq!(s.status_of("t1").await["failureCode"], "insufficient_funds");

    let capture = |key: &str, amount: Option<&str>| {
        let mut body = json!({"idempotencyKey": key});
        if let Some(a) = amount {
            body["amount"] = json!(a);
        }
        body
    };
    let path = format!("/api/v1/holds/{id}/capture");
    s.accepted(&path, &capture("c1", Some("25.00"))).await;
    s.drain().await;
    assert_eq!(
        s.problem(&path, &capture("c2", Some("35.01"))).await,
        (StatusCode::CONFLICT, "capture_exceeds_hold".into())
    );
    s.accepted(&path, &capture("c3", Some("10.00"))).await;
    s.drain().await;
    let b = s.balances("alice").await;
    assert_eq!(
        (
            b["posted"].as_str(),
            b["pending"].as_str(),
            b["available"].as_str()
        ),
        (Some("65.00"), Some("25.00"), Some("40.00"))
    );
    assert_eq!(s.balance("shop").await, "35.00");
    // A capture retried with its key replays, whatever the hold became since.
    let (status, _) = s
        .api
        .post(&path, &capture("c1", Some("25.00")))
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        s.problem(&path, &capture("c1", Some("24.00"))).await.1,
        "idempotency_key_reused"
    );

    let void = format!("/api/v1/holds/{id}/void");
    s.accepted(&void, &json!({"idempotencyKey": "v1"})).await;
    s.drain().await;
    let b = s.balances("alice").await;
    assert_eq!(
        (b["pending"].as_str(), b["available"].as_str()),
        (Some("0.00"), Some("65.00"))
    );
    assert_eq!(
        s.problem(&path, &capture("c4", None)).await,
        (StatusCode::CONFLICT, "hold_voided".into())
    );
    assert_eq!(
        s.problem(&void, &json!({"idempotencyKey": "v2"})).await.1,
        "hold_voided"
    );

    let h = s.api.get(&format!("/api/v1/holds/{id}")).await.body;
    assert_eq!(h["status"], "VOIDED");
    assert_eq!(
        (h["captured"].as_str(), h["remaining"].as_str()),
        (Some("35.00"), Some("0.00"))
    );
    let events: Vec<(&str, &str)> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("HOLD", "60.00"),
            ("CAPTURE", "25.00"),
            ("CAPTURE", "10.00"),
            ("VOID", "25.00")
        ]
    );
    assert_eq!(
        s.api
            .as_other()
            .get(&format!("/api/v1/holds/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.api.get("/api/v1/holds/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );

    // A fully captured hold: void refused with hold_captured.
    let hold2 = json!({"hold": {"source_account_id": "alice", "destination_account_id": "shop",
        "amount": "5.00", "currency": "USD", "expiresAt": expires}, "idempotencyKey": "h2"});
    let id2 = s.accepted("/api/v1/holds", &hold2).await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    s.drain().await;
    s.accepted(
        &format!("/api/v1/holds/{id2}/capture"),
        &capture("c5", None),
    )
    .await;
    s.drain().await;
    assert_eq!(
        s.api.get(&format!("/api/v1/holds/{id2}")).await.body["status"],
        "CAPTURED"
    );
    assert_eq!(
        s.problem(
            &format!("/api/v1/holds/{id2}/void"),
            &json!({"idempotencyKey": "v3"})
        )
        .await,
        (StatusCode::CONFLICT, "hold_captured".into())
    );

    // expiresAt is required, in the future and within MAX_HOLD_DAYS.
    let mut bad = hold2.clone();
    bad["idempotencyKey"] = json!("h3");
    bad["hold"]["expiresAt"] = json!("2020-01-01T00:00:00Z");
    let (status, body) = s.api.post("/api/v1/holds", &bad).await.parts();
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_expires_at"),
            Some("hold.expiresAt")
        )
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn an_expired_hold_releases_at_the_next_posting_and_in_the_sweep() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("bob", "0").await;
    s.submit("fund", "world", "alice", "50.00").await;
    s.submit("fund-bob", "world", "bob", "50.00").await;
    s.drain().await;
    let soon = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    for (key, src) in [("ha", "alice"), ("hb", "bob")] {
        let hold = json!({"hold": {"source_account_id": src, "destination_account_id": "world",
            "amount": "50.00", "expiresAt": soon}, "idempotencyKey": key});
        s.accepted("/api/v1/holds", &hold).await;
    }
    s.drain().await;
    assert_eq!(s.balances("alice").await["available"], "0.00");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Past its expiry the hold reads EXPIRED and reserves nothing, sweep or not.
    let ha = s.status_of("ha").await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    let h = s.api.get(&format!("/api/v1/holds/{ha}")).await.body;
    assert_eq!(
        (h["status"].as_str(), h["remaining"].as_str()),
        (Some("EXPIRED"), Some("0.00"))
    );
    let listed = s
        .api
        .get("/api/v1/accounts/alice/holds?status=EXPIRED")
        .await
        .body;
    assert_eq!(
        (
            listed["holds"][0]["id"].as_str(),
            listed["holds"][0]["closedAt"].as_str()
        ),
        (Some(ha.as_str()), h["expiresAt"].as_str())
    );
    assert_eq!(
        s.api
            .get("/api/v1/accounts/alice/holds?status=ACTIVE")
            .await
            .body["holds"],
        json!([])
    );
    let events: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["HOLD", "EXPIRY"]);
    let capture = format!("/api/v1/holds/{ha}/capture");
    assert_eq!(
        s.problem(&capture, &json!({"idempotencyKey": "late"}))
            .await,
        (StatusCode::CONFLICT, "hold_expired".into())
    );
    // A posting out of alice releases her hold first, so all 50 is available to it.
    s.submit("spend", "alice", "world", "50.00").await;
    s.drain().await;
    assert_eq!(s.status_of("spend").await["status"], "COMPLETED");
    // bob's hold is released by the sweep (the every-minute scheduled task).
    assert_eq!(s.balances("bob").await["pending"], "50.00");
    let released = shared::services::movement::expire_holds(&s.env.clients)
        .await
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(s.balances("bob").await["pending"], "0.00");
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn refunds_are_bounded_linked_and_obey_the_payers_limit() {
    let s = Stack::start().await;
    for (id, limit) in [
        ("world", "unlimited"),
        ("customer", "0"),
        ("merchant", "0"),
        ("fees", "0"),
        ("tax", "0"),
        ("platform", "unlimited"),
    ] {
        s.open(id, limit).await;
    }
    s.submit("fund", "world", "customer", "100.00").await;
    s.drain().await;
    let card = s
        .accepted("/api/v1/transactions", &card_payment("card", "0.50"))
        .await;
    s.drain().await;
    let id = card["transactionId"].as_str().unwrap();
    let refunds = format!("/api/v1/transactions/{id}/refunds");

    s.accepted(
        &refunds,
        &json!({"idempotencyKey": "r1", "amount": "30.00", "leg": 0}),
    )
    .await;
    s.drain().await;
    assert_eq!(
        s.problem(
            &refunds,
            &json!({"idempotencyKey": "r2", "amount": "67.01", "leg": 0})
        )
        .await,
        (StatusCode::CONFLICT, "refund_exceeds_remaining".into())
    );
    assert_eq!(
        s.problem(&refunds, &json!({"idempotencyKey": "r2", "amount": "1.00"}))
            .await,
        (StatusCode::UNPROCESSABLE_ENTITY, "leg_required".into())
    );
    assert_eq!(
        s.problem(
            &refunds,
            &json!({"idempotencyKey": "r2", "amount": "1.00", "leg": 3})
        )
        .await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_leg".into())
    );
    assert_eq!(s.balance("merchant").await, "67.00");
    assert_eq!(s.balance("customer").await, "30.00");

    // The merchant spends what it has: refunding the rest of its leg fails insufficient_funds,
    // unless the platform pays for it.
    s.submit("payout", "merchant", "world", "67.00").await;
    s.drain().await;
    s.accepted(&refunds, &json!({"idempotencyKey": "r3", "leg": 0}))
        .await;
    s.drain().await;
    assert_eq!(s.status_of("r3").await["failureCode"], "insufficient_funds");
    s.accepted(
        &refunds,
        &json!({"idempotencyKey": "r4", "leg": 0, "fundingAccountId": "platform"}),
    )
    .await;
    s.drain().await;
    let r4 = s.status_of("r4").await;
    assert_eq!(r4["status"], "COMPLETED", "{r4}");
    assert_eq!(
        (
            r4["transaction"]["kind"].as_str(),
            r4["transaction"]["parentId"].as_str(),
            r4["transaction"]["amount"].as_str()
        ),
        (Some("REFUND"), Some(id), Some("67.00"))
    );
    // Everything of leg 0 is refunded now; the rest of the transaction (fee and tax legs) still can be.
    assert_eq!(
        s.problem(&refunds, &json!({"idempotencyKey": "r5", "leg": 0}))
            .await
            .1,
        "refund_exceeds_remaining"
    );
    s.accepted(&refunds, &json!({"idempotencyKey": "r6"})).await;
    s.drain().await;
    let r6 = s.status_of("r6").await;
    assert_eq!(
        r6["result"]["entries"].as_array().unwrap().len(),
        4,
        "fee and tax legs: {r6}"
    );
    assert_eq!(s.balance("customer").await, "100.00");

    // The original shows what was refunded.
    let original = s.status_of("card").await;
    let refunded: Vec<(i64, &str)> = original["transaction"]["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["leg"].as_i64().unwrap(), r["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refunded,
        [(0, "30.00"), (0, "67.00"), (1, "2.50"), (2, "0.50")]
    );
    assert_eq!(original["transaction"]["refunded"], "100.00");
    assert_eq!(
        s.problem(&refunds, &json!({"idempotencyKey": "r7"}))
            .await
            .1,
        "refund_exceeds_remaining"
    );
    // Refunding a refund, or another client's transaction, or nothing.
    let r4_id = r4["transactionId"].as_str().unwrap();
    assert_eq!(
        s.problem(
            &format!("/api/v1/transactions/{r4_id}/refunds"),
            &json!({"idempotencyKey": "r8"})
        )
        .await,
        (StatusCode::CONFLICT, "transaction_not_refundable".into())
    );
    let (status, body) = s
        .api
        .as_other()
        .post(&refunds, &json!({"idempotencyKey": "r9"}))
        .await
        .parts();
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("transaction_not_found"))
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn a_backdated_transfer_counts_from_its_value_date() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.submit("now", "world", "alice", "10.00").await;
    s.drain().await;
    let three_days_ago = Utc::now() - chrono::Duration::days(3);
    let body = json!({"transaction": {"source_account_id": "world", "destination_account_id": "alice",
        "amount": "5.00", "currency": "USD", "effectiveAt": three_days_ago.to_rfc3339()}, "idempotencyKey": "old"});
    s.accepted("/api/v1/transactions", &body).await;
    s.drain().await;
    let old = s.status_of("old").await;
    assert_ne!(
        old["transaction"]["effectiveAt"],
        old["transaction"]["postedAt"]
    );
    let as_of = |t: chrono::DateTime<Utc>| {
        format!(
            "/api/v1/accounts/alice/balance?asOf={}",
            t.format("%Y-%m-%dT%H:%M:%SZ")
        )
    };
    // Two days ago only the backdated 5.00 had taken effect, though it posted last.
    let b = s
        .api
        .get(&as_of(Utc::now() - chrono::Duration::days(2)))
        .await
        .body;
    assert_eq!(
        (b["balance"].as_str(), b["basis"].as_str()),
        (Some("5.00"), Some("effectiveAt"))
    );
    let b = s
        .api
        .get(&as_of(Utc::now() - chrono::Duration::days(4)))
        .await
        .body;
    assert_eq!(b["balance"], "0.00");
    assert_eq!(s.balance("alice").await, "15.00");
    // balanceAfter is the running balance in posting order.
    let ledger = s.api.get("/api/v1/accounts/alice/ledger").await.body;
    assert_eq!(ledger["entries"][0]["balanceAfter"], "15.00");
    assert_eq!(
        ledger["entries"][0]["effectiveAt"].as_str().unwrap()[..10],
        three_days_ago.to_rfc3339()[..10]
    );

    let mut bad = body.clone();
    bad["idempotencyKey"] = json!("older");
    bad["transaction"]["effectiveAt"] =
        json!((Utc::now() - chrono::Duration::days(91)).to_rfc3339());
    assert_eq!(
        s.problem("/api/v1/transactions", &bad).await.1,
        "effective_at_too_old"
    );
    bad["transaction"]["effectiveAt"] =
        json!((Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    assert_eq!(
        s.problem("/api/v1/transactions", &bad).await.1,
        "effective_at_in_future"
    );
    s.env.assert_invariants().await;
}

fn item(key: &str, src: &str, dst: &str, amount: &str) -> Value {
    json!({"transaction": {"source_account_id": src, "destination_account_id": dst, "amount": amount}, "idempotencyKey": key})
}

#[tokio::test]
async fn bulk_intake_answers_each_item_in_order() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("bob", "0").await;
    let items = json!({"items": [
        item("b1", "world", "alice", "10.00"),
        item("b2", "world", "bob", "1.001"),
        item("b1", "world", "bob", "1.00"),
        {"transaction": {"source_account_id": "world"}, "idempotencyKey": "b3"},
        item("b4", "alice", "bob", "4.00"),
    ]});
    let r = s.accepted("/api/v1/transactions/bulk", &items).await;
    let statuses: Vec<(&str, &str)> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["status"].as_str().unwrap(),
                x["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("ACCEPTED", ""),
            ("REJECTED", "amount_scale_exceeded"),
            ("REJECTED", "duplicate_item_key"),
            ("REJECTED", "missing_field"),
            ("ACCEPTED", "")
        ]
    );
    assert_eq!(r["results"][1]["field"], "transaction.amount");
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(3))
    );
    s.drain().await;
    assert_eq!(s.balance("alice").await, "6.00");
    assert_eq!(s.balance("bob").await, "4.00");
    // The same request again: the accepted items replay, nothing posts twice.
    let again = s.accepted("/api/v1/transactions/bulk", &items).await;
    assert_eq!(again["results"][0]["status"], "REPLAYED");
    assert_eq!(
        again["results"][0]["messageId"],
        r["results"][0]["messageId"]
    );
    assert_eq!(s.drain().await, 0);

    // Redis loses every key: the durable records still answer each item (the same body replays
    // under its transaction id, another body is refused), and nothing posts twice.
    crate::flows::flush_prefix(&s.env.clients.config.redis_key_prefix).await;
    let mut changed = items.clone();
    changed["items"][4] = item("b4", "alice", "bob", "4.50");
    let after_loss = s.accepted("/api/v1/transactions/bulk", &changed).await;
    assert_eq!(after_loss["results"][0]["status"], "REPLAYED");
    assert_eq!(
        after_loss["results"][0]["transactionId"],
        r["results"][0]["transactionId"]
    );
    assert_eq!(after_loss["results"][4]["code"], "idempotency_key_reused");
    s.drain().await;
    assert_eq!(s.balance("bob").await, "4.00");

    // Atomic: the items are legs of one transaction; the second leg fails, so neither posts.
    let atomic = json!({"atomic": true, "idempotencyKey": "atomic-1", "reference": "batch-7", "items": [
        {"transaction": {"source_account_id": "alice", "destination_account_id": "bob", "amount": "6.00"}},
        {"transaction": {"source_account_id": "alice", "destination_account_id": "bob", "amount": "0.01"}}]});
    let a = s.accepted("/api/v1/transactions/bulk", &atomic).await;
    assert_eq!(
        (a["atomic"].as_bool(), a["legs"].as_u64()),
        (Some(true), Some(2))
    );
    s.drain().await;
    assert_eq!(
        s.status_of("atomic-1").await["failureCode"],
        "insufficient_funds"
    );
    assert_eq!(s.balance("alice").await, "6.00");

    // Request-level errors.
    assert_eq!(
        s.problem("/api/v1/transactions/bulk", &json!({"items": []}))
            .await
            .1,
        "invalid_field"
    );
    let too_many: Vec<Value> = (0..501)
        .map(|i| item(&format!("k{i}"), "world", "bob", "1"))
        .collect();
    assert_eq!(
        s.problem("/api/v1/transactions/bulk", &json!({"items": too_many}))
            .await
            .1,
        "too_many_items"
    );
    assert_eq!(
        s.problem(
            "/api/v1/transactions/bulk",
            &json!({"atomic": true, "items": [item("x", "world", "bob", "1")]})
        )
        .await
        .1,
        "missing_idempotency_key"
    );
    assert_eq!(s.problem("/api/v1/transactions/bulk", &json!({"atomic": true, "idempotencyKey": "a2", "items": [item("x", "world", "bob", "1")]})).await.1, "invalid_field");
    assert_eq!(
        s.problem(
            "/api/v1/transactions/bulk",
            &json!({"idempotencyKey": "a3", "items": [item("y", "world", "bob", "1")]})
        )
        .await
        .1,
        "invalid_field"
    );
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn reconciliation_sees_legs_refunds_and_value_dates() {
    let s = Stack::start().await;
    for (id, limit) in [
        ("world", "unlimited"),
        ("customer", "0"),
        ("merchant", "0"),
        ("fees", "0"),
        ("tax", "0"),
    ] {
        s.open(id, limit).await;
    }
    s.submit("fund", "world", "customer", "100.00").await;
    let card = s
        .accepted("/api/v1/transactions", &card_payment("card-1", "0.50"))
        .await;
    // A sale the merchant made two days ago, recorded today with its value date.
    let two_days_ago = Utc::now() - chrono::Duration::days(2);
    s.accepted("/api/v1/transactions", &json!({"transaction": {"source_account_id": "world",
        "destination_account_id": "merchant", "amount": "5.00", "currency": "USD",
        "reference": "late-sale", "effectiveAt": two_days_ago.to_rfc3339()}, "idempotencyKey": "late"})).await;
    s.drain().await;
    let id = card["transactionId"].as_str().unwrap();
    s.accepted(&format!("/api/v1/transactions/{id}/refunds"),
        &json!({"idempotencyKey": "refund-1", "amount": "30.00", "leg": 0, "reference": "refund-1"})).await;
    s.drain().await;

    let today = Utc::now().date_naive().to_string();
    let earlier = two_days_ago.date_naive().to_string();
    let import = |account: &str, lines: Value| {
        let body = json!({"accountId": account, "lines": lines});
        let api = s.api.clone();
        async move {
            let (status, body) = api.post("/api/v1/statements", &body).await.parts();
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    };
    // The merchant's bank: its leg of the card payment, the late sale on its value date, and the
    // refund as its own line.
    import("merchant", json!([
        {"id": "m1", "bookedDate": today, "amount": "97.00", "currency": "USD", "reference": "card-1"},
        {"id": "m2", "bookedDate": earlier, "amount": "5.00", "currency": "USD", "reference": "late-sale"},
        {"id": "m3", "bookedDate": today, "amount": "-30.00", "currency": "USD", "reference": "refund-1"}])).await;
    // The customer's bank: one line for the whole payment (all three legs it paid), one for the refund.
    import("customer", json!([
        {"id": "c1", "bookedDate": today, "amount": "-100.00", "currency": "USD", "reference": "card-1"},
        {"id": "c2", "bookedDate": today, "amount": "30.00", "currency": "USD", "reference": "refund-1"}])).await;
    for account in ["merchant", "customer"] {
        let window = json!({"startDate": earlier, "endDate": today});
        let (status, report) = s
            .api
            .post(&format!("/api/v1/accounts/{account}/reconcile"), &window)
            .await
            .parts();
        assert_eq!(status, StatusCode::CREATED, "{report}");
        let lines = if account == "merchant" { 3 } else { 2 };
        assert_eq!(
            report["counts"]["matchedLines"], lines,
            "{account}: {report}"
        );
        assert_eq!(report["discrepancies"], json!({}), "{account}: {report}");
    }
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn racing_refunds_and_captures_are_decided_once_by_the_ledger() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("shop", "0").await;
    s.submit("fund", "world", "alice", "100.00").await;
    s.submit("sale", "alice", "shop", "40.00").await;
    s.drain().await;
    let sale = s.status_of("sale").await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    let refunds = format!("/api/v1/transactions/{sale}/refunds");
    // Both pass intake's early check (nothing refunded yet); the ledger decides them in order.
    s.accepted(
        &refunds,
        &json!({"idempotencyKey": "r1", "amount": "30.00"}),
    )
    .await;
    s.accepted(
        &refunds,
        &json!({"idempotencyKey": "r2", "amount": "30.00"}),
    )
    .await;
    // And a hold captured twice for more than it holds in total.
    let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let hold = s.accepted("/api/v1/holds", &json!({"hold": {"source_account_id": "alice",
        "destination_account_id": "shop", "amount": "50.00", "currency": "USD", "expiresAt": expires},
        "idempotencyKey": "h"})).await;
    s.drain().await;
    let capture = format!(
        "/api/v1/holds/{}/capture",
        hold["transactionId"].as_str().unwrap()
    );
    s.accepted(
        &capture,
        &json!({"idempotencyKey": "c1", "amount": "30.00"}),
    )
    .await;
    s.accepted(
        &capture,
        &json!({"idempotencyKey": "c2", "amount": "30.00"}),
    )
    .await;
    s.drain().await;
    let outcome = |v: Value| {
        (
            v["status"].as_str().unwrap().to_string(),
            v["failureCode"].as_str().map(str::to_string),
        )
    };
    assert_eq!(outcome(s.status_of("r1").await), ("COMPLETED".into(), None));
    assert_eq!(
        outcome(s.status_of("r2").await),
        ("FAILED".into(), Some("refund_exceeds_remaining".into()))
    );
    assert_eq!(outcome(s.status_of("c1").await), ("COMPLETED".into(), None));
    assert_eq!(
        outcome(s.status_of("c2").await),
        ("FAILED".into(), Some("capture_exceeds_hold".into()))
    );
    // alice: 100 - 40 + 30 (refund) - 30 (capture) = 60 posted, 20 still held.
    let b = s.balances("alice").await;
    assert_eq!(
        (
            b["posted"].as_str(),
            b["pending"].as_str(),
            b["available"].as_str()
        ),
        (Some("60.00"), Some("20.00"), Some("40.00"))
    );
    // A redelivered capture changes nothing.
    let c1 = s.status_of("c1").await["transactionId"].clone();
    let (status, replay) = s
        .api
        .post(
            &capture,
            &json!({"idempotencyKey": "c1", "amount": "30.00"}),
        )
        .await
        .parts();
    assert_eq!(
        (status, replay["transactionId"].clone()),
        (StatusCode::ACCEPTED, c1)
    );
    s.drain().await;
    assert_eq!(s.balances("alice").await["posted"], "60.00");
    s.env.assert_invariants().await;
}
