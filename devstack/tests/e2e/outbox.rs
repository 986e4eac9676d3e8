//! Events out (issue 12): every change a client may care about writes its event in the change's
//! transaction, carrying the object as the API answers it; balance monitors fire once per
//! crossing, evaluated by posting and the hold sweep.

use chrono::Utc;
use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::Stack;

/// An event as the outbox holds it.
#[derive(Debug)]
struct Event {
    id: String,
    kind: String,
    client: String,
    subject: String,
    data: Value,
}

impl Stack {
    /// Every event written so far, in delivery order.
    async fn events(&self) -> Vec<Event> {
        let conn = self.env.clients.db.get().await.unwrap();
        conn.query(
            "SELECT id, type, client_id, subject_id, data FROM events ORDER BY xid, seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Event {
            id: r.get(0),
            kind: r.get(1),
            client: r.get(2),
            subject: r.get(3),
            data: r.get(4),
        })
        .collect()
    }

    /// The types of the events written since the first `skip`.
    async fn event_types_after(&self, skip: usize) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .skip(skip)
            .map(|e| e.kind)
            .collect()
    }

    async fn accepted(&self, path: &str, body: &Value) -> Value {
        let (status, body) = self.api.post(path, body).await.parts();
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
        body
    }

    async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.api.get(path).await.parts();
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }
}

/// A stack with a funding account, alice (100.00, no overdraft) and a shop.
async fn funded_alice() -> Stack {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("shop", "0").await;
    s.submit("fund", "world", "alice", "100.00").await;
    s.drain().await;
    s
}

fn hold(key: &str, amount: &str) -> Value {
    let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    json!({"hold": {"source_account_id": "alice", "destination_account_id": "shop",
        "amount": amount, "expiresAt": expires}, "idempotencyKey": key})
}

#[tokio::test]
async fn every_change_writes_its_event_with_the_object_the_api_answers() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    s.open("shop", "0").await;
    assert!(
        s.events().await.is_empty(),
        "opening accounts is not an event"
    );

    s.submit("fund", "world", "alice", "100.00").await;
    s.drain().await;
    s.submit("pay", "alice", "shop", "30.00").await;
    s.drain().await;
    s.submit("too-much", "alice", "shop", "1000.00").await;
    s.drain().await;
    let events = s.events().await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transfer.completed",
            "transfer.completed",
            "transfer.failed"
        ]
    );
    // The object is what GET /transactions/{id} answers, field for field.
    for e in &events {
        assert_eq!(e.client, "demo");
        let got = s
            .get_ok(&format!("/api/v1/transactions/{}", e.subject))
            .await;
        assert_eq!(e.data, got, "{}", e.kind);
        assert!(e.id.starts_with("evt_") && e.id.len() == 36, "{}", e.id);
    }
    assert_eq!(events[2].data["failureCode"], "insufficient_funds");
    // Ids sort in delivery order.
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let in_order = ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, in_order);
    // A redelivered message posts nothing and writes no event.
    let before = events.len();
    s.submit("pay", "alice", "shop", "30.00").await;
    s.drain().await;
    assert_eq!(s.events().await.len(), before);

    // A hold's life: each event carries the hold as it was then (as the account's hold list
    // answers it: without its event history).
    let h = s.accepted("/api/v1/holds", &hold("h1", "40.00")).await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    s.drain().await;
    let capture = format!("/api/v1/holds/{h}/capture");
    s.accepted(
        &capture,
        &json!({"idempotencyKey": "c1", "amount": "15.00"}),
    )
    .await;
    s.drain().await;
    s.accepted(
        &format!("/api/v1/holds/{h}/void"),
        &json!({"idempotencyKey": "v1"}),
    )
    .await;
    s.drain().await;
    let hold_events: Vec<Event> = s.events().await.into_iter().skip(before).collect();
    let kinds: Vec<&str> = hold_events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["hold.created", "hold.captured", "hold.voided"]);
    let states: Vec<(&str, &str)> = hold_events
        .iter()
        .map(|e| {
            (
                e.data["status"].as_str().unwrap(),
                e.data["captured"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("ACTIVE", "0.00"), ("ACTIVE", "15.00"), ("VOIDED", "15.00")]
    );
    let mut now = s.get_ok(&format!("/api/v1/holds/{h}")).await;
    now.as_object_mut().unwrap().remove("events");
    assert_eq!(
        hold_events[2].data, now,
        "the last event is the hold as it is"
    );
    assert!(hold_events.iter().all(|e| e.subject == h));

    // A refund.
    let paid = s.status_of("pay").await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    s.accepted(
        &format!("/api/v1/transactions/{paid}/refunds"),
        &json!({"idempotencyKey": "r1", "amount": "10.00"}),
    )
    .await;
    s.drain().await;
    let last = s.events().await.pop().unwrap();
    assert_eq!(last.kind, "refund.posted");
    assert_eq!(last.data["transaction"]["parentId"], json!(paid));
    assert_eq!(
        last.data,
        s.get_ok(&format!("/api/v1/transactions/{}", last.subject))
            .await
    );
}

#[tokio::test]
async fn an_expired_hold_is_announced_by_the_sweep_or_by_posting() {
    let s = funded_alice().await;
    for (key, seconds) in [("soon-1", 2), ("soon-2", 2)] {
        let mut body = hold(key, "10.00");
        body["hold"]["expiresAt"] =
            json!((Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339());
        s.accepted("/api/v1/holds", &body).await;
    }
    s.drain().await;
    let before = s.events().await.len();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // The sweep expires both, in one transaction with their events.
    let expired = shared::services::movement::expire_holds(&s.env.clients)
        .await
        .unwrap();
    assert_eq!(expired, 2);
    let after: Vec<Event> = s.events().await.into_iter().skip(before).collect();
    assert_eq!(after.len(), 2);
    for e in &after {
        assert_eq!(e.kind, "hold.expired");
        assert_eq!(e.data["status"], "EXPIRED");
        assert_eq!(e.data["closedAt"], e.data["expiresAt"]);
    }
    // Swept once: nothing more to announce.
    assert_eq!(
        shared::services::movement::expire_holds(&s.env.clients)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.events().await.len(), before + 2);
}

#[tokio::test]
async fn a_monitor_fires_once_per_crossing_inside_posting() {
    let s = funded_alice().await;

    let created = s
        .api
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "BELOW", "threshold": "50.00",
                    "hysteresis": "10.00", "description": "top up alice"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let m = created.body;
    assert_eq!(
        (
            m["state"].as_str(),
            m["field"].as_str(),
            m["value"].as_str()
        ),
        (Some("CLEAR"), Some("AVAILABLE"), Some("100.00"))
    );
    let id = m["id"].as_str().unwrap().to_string();
    let skip = s.events().await.len();

    // 100 -> 60 (quiet) -> 45 (fires) -> 30 (still below: quiet).
    for (key, amount) in [("p1", "40.00"), ("p2", "15.00"), ("p3", "15.00")] {
        s.submit(key, "alice", "shop", amount).await;
        s.drain().await;
    }
    assert_eq!(
        s.event_types_after(skip).await,
        [
            "transfer.completed",
            "transfer.completed",
            "monitor.triggered",
            "transfer.completed"
        ]
    );
    let now = s.get_ok(&format!("/api/v1/monitors/{id}")).await;
    assert_eq!(
        (
            now["state"].as_str(),
            now["value"].as_str(),
            now["triggeredCount"].as_i64()
        ),
        (Some("TRIGGERED"), Some("45.00"), Some(1))
    );
    // Back to 55: inside the hysteresis band, quiet; to 65: clears.
    let skip = s.events().await.len();
    s.submit("back-1", "shop", "alice", "25.00").await;
    s.drain().await;
    s.submit("back-2", "shop", "alice", "10.00").await;
    s.drain().await;
    assert_eq!(
        s.event_types_after(skip).await,
        [
            "transfer.completed",
            "transfer.completed",
            "monitor.cleared"
        ]
    );
    // A hold lowers what is available: the monitor watches available, so it fires again.
    let skip = s.events().await.len();
    s.accepted("/api/v1/holds", &hold("h1", "20.00")).await;
    s.drain().await;
    let events: Vec<Event> = s.events().await.into_iter().skip(skip).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["hold.created", "monitor.triggered"]);
    assert_eq!(events[1].subject, id);
    assert_eq!(events[1].data["value"], "45.00");
    assert_eq!(events[1].data["triggeredCount"], 2);

    // Disabled: quiet from now on, and listed as such.
    let disabled = s
        .api
        .post(&format!("/api/v1/monitors/{id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.body["status"], "DISABLED", "{}", disabled.text);
    let skip = s.events().await.len();
    s.submit("p4", "alice", "shop", "40.00").await;
    s.drain().await;
    s.submit("p5", "world", "alice", "500.00").await;
    s.drain().await;
    assert_eq!(
        s.event_types_after(skip).await,
        ["transfer.completed", "transfer.completed"]
    );
    let listed = s.get_ok("/api/v1/monitors?accountId=alice").await;
    assert_eq!(listed["monitors"][0]["status"], "DISABLED");
}

#[tokio::test]
async fn a_monitor_already_true_fires_at_creation_and_crossing_fires_both_ways() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    let below = s
        .api
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "BELOW", "threshold": "10", "field": "POSTED"}),
        )
        .await;
    assert_eq!(below.status, StatusCode::CREATED, "{}", below.text);
    assert_eq!(below.body["state"], "TRIGGERED");
    assert_eq!(below.body["threshold"], "10.00");
    let crossing = s
        .api
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "CROSSING", "threshold": "50.00"}),
        )
        .await;
    assert_eq!(crossing.body["state"], "BELOW", "{}", crossing.text);
    let events = s.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "monitor.triggered");
    assert_eq!(events[0].data, below.body);

    s.submit("up", "world", "alice", "80.00").await;
    s.drain().await;
    let events: Vec<Event> = s.events().await.into_iter().skip(1).collect();
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.data["state"].as_str().unwrap_or("")))
        .collect();
    // The transfer, then each monitor in creation order: BELOW clears, CROSSING goes ABOVE.
    assert_eq!(
        got,
        [
            ("transfer.completed", ""),
            ("monitor.cleared", "CLEAR"),
            ("monitor.triggered", "ABOVE")
        ]
    );
}

#[tokio::test]
async fn monitor_requests_are_checked_and_scoped_to_the_client() {
    let s = Stack::start().await;
    s.open("alice", "0").await;
    let bad = [
        (
            json!({"accountId": "alice", "condition": "SIDEWAYS", "threshold": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_condition",
            "condition",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "1", "field": "PENDING"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_monitor_field",
            "field",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "1.001"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_scale_exceeded",
            "threshold",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "ten"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "threshold",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "1", "hysteresis": "-1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "hysteresis",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "1", "currency": "EUR"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
            "currency",
        ),
        (
            json!({"accountId": "nobody", "condition": "BELOW", "threshold": "1"}),
            StatusCode::NOT_FOUND,
            "account_not_found",
            "accountId",
        ),
        (
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "1", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "",
        ),
    ];
    for (body, status, code, field) in bad {
        let r = s.api.post("/api/v1/monitors", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        if !code.is_empty() {
            assert_eq!(
                (r.body["code"].as_str(), r.body["field"].as_str()),
                (Some(code), Some(field)),
                "{body}"
            );
        }
    }
    // Another client's account does not exist for this one, nor its monitors.
    let other = s
        .api
        .as_other()
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "BELOW", "threshold": "1"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
    let mine = s
        .api
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "ABOVE", "threshold": 1000}),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.text);
    let id = mine.body["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/monitors/{id}"),
        "/api/v1/monitors/not-a-uuid".to_string(),
    ] {
        let r = s.api.as_other().get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body["code"], "monitor_not_found");
    }
    assert_eq!(
        s.api
            .as_other()
            .post(&format!("/api/v1/monitors/{id}/disable"), &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let theirs = s.api.as_other().get("/api/v1/monitors").await;
    assert_eq!(theirs.body["monitors"], json!([]));
    // A bounded number per account: posting evaluates every one.
    for _ in 1..shared::monitors::MAX_MONITORS_PER_ACCOUNT {
        let r = s
            .api
            .post(
                "/api/v1/monitors",
                &json!({"accountId": "alice", "condition": "ABOVE", "threshold": "1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = s
        .api
        .post(
            "/api/v1/monitors",
            &json!({"accountId": "alice", "condition": "ABOVE", "threshold": "1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_monitors"))
    );
    // Pages.
    let first = s.get_ok("/api/v1/monitors?limit=15").await;
    assert_eq!(first["monitors"].as_array().unwrap().len(), 15);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = s
        .get_ok(&format!("/api/v1/monitors?limit=15&cursor={cursor}"))
        .await;
    assert_eq!(second["monitors"].as_array().unwrap().len(), 5);
    assert!(second["nextCursor"].is_null());
    assert_eq!(
        s.api.get("/api/v1/monitors?cursor=nope").await.body["code"],
        "invalid_cursor"
    );
}

#[tokio::test]
async fn runs_and_the_workflow_announce_discrepancies() {
    let s = Stack::start().await;
    s.open("world", "unlimited").await;
    s.open("bank", "0").await;
    let body = json!({"transaction": {"source_account_id": "world", "destination_account_id": "bank",
        "amount": "100.00", "currency": "USD", "reference": "INV-1"}, "idempotencyKey": "a"});
    s.api.post("/api/v1/transactions", &body).await;
    s.drain().await;
    let t = Utc::now().date_naive();
    let statement = format!("id,booked_date,amount,currency,reference\nb1,{t},99.00,USD,INV-1\n");
    let imported = s
        .api
        .post_raw(
            "/api/v1/statements?accountId=bank",
            "text/csv",
            statement.into_bytes(),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    let skip = s.events().await.len();
    let run = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": t, "endDate": t}),
        )
        .await;
    assert!(run.status.is_success(), "{}", run.text);
    let events: Vec<Event> = s.events().await.into_iter().skip(skip).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["discrepancy.opened", "reconciliation.finished"]);
    let discrepancy = &events[0];
    assert_eq!(discrepancy.data["kind"], "AMOUNT_MISMATCH");
    assert_eq!(discrepancy.data["status"], "OPEN");
    assert_eq!(events[1].data["discrepancyChanges"]["new"], 1);

    let resolved = s
        .api
        .post(
            &format!("/api/v1/discrepancies/{}/resolve", discrepancy.subject),
            &json!({"status": "RESOLVED", "note": "bank fee"}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text);
    let last = s.events().await.pop().unwrap();
    assert_eq!(last.kind, "discrepancy.resolved");
    assert_eq!(last.data["status"], "RESOLVED");
    assert_eq!(last.subject, discrepancy.subject);
}
