//! `openapi.yaml` is the contract: every response of a scenario that calls every route, success and
//! error alike, must be documented there (status and media type) and match its schema.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};
use shared::testkit::client::{TestClient, TestResponse};
use shared::testkit::{DEMO_TOKEN, OPERATOR_TOKEN, OTHER_TOKEN};

use crate::helpers::Stack;
use crate::reconciliation::{open, today};

struct Spec {
    doc: Value,
    /// (method, path template segments)
    operations: Vec<(String, String)>,
}

impl Spec {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    operations.push((method.to_string(), template.clone()));
                }
            }
        }
        Self { doc, operations }
    }

    fn template_for(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .find(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
            })
            .cloned()
    }

    /// Checks one response against the spec; returns the operation it belongs to.
    fn check(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> (String, String) {
        self.try_check(method, path, status, content_type, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_check(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> Result<(String, String), String> {
        let template = self
            .template_for(path)
            .ok_or_else(|| format!("{path} is not in openapi.yaml"))?;
        let method = method.to_ascii_lowercase();
        let op = &self.doc["paths"][&template][&method];
        if !op.is_object() {
            return Err(format!("{method} {template} is not in openapi.yaml"));
        }
        let responses = &op["responses"];
        let response = responses
            .get(status.as_str())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| format!("{method} {template}: status {status} is not documented"))?;
        let response = self.resolve(response);
        let media = content_type.split(';').next().unwrap_or("").trim();
        if body.is_empty() {
            return Ok((method, template));
        }
        let content = response["content"].get(media).ok_or_else(|| {
            format!("{method} {template} {status}: media type {media:?} is not documented")
        })?;
        // (Not application/x-ndjson: JSON lines are documented as text.)
        if media == "application/json" || media.ends_with("+json") {
            let instance: Value = serde_json::from_slice(body).unwrap();
            let schema = &content["schema"];
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.doc["components"],
                "allOf": [schema],
            });
            let validator = jsonschema::validator_for(&root)
                .map_err(|e| format!("schema of {method} {template} {status}: {e}"))?;
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            if !errors.is_empty() {
                return Err(format!(
                    "{method} {path} {status} does not match openapi.yaml:\n{}\nbody: {instance:#}",
                    errors.join("\n")
                ));
            }
        }
        Ok((method, template))
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.resolve(
                    self.doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling $ref {r}")),
                )
            }
            None => v,
        }
    }
}

/// The demo client that checks every response against the spec and records the operation.
struct Client {
    api: TestClient,
    spec: Spec,
    seen: BTreeSet<(String, String)>,
}

impl Client {
    fn record(&mut self, method: &str, uri: &str, res: TestResponse) -> (StatusCode, Value) {
        let path = uri.split('?').next().unwrap();
        self.seen.insert(
            self.spec
                .check(method, path, res.status, res.content_type(), &res.bytes),
        );
        res.parts()
    }

    /// GET as this token (`None`: no `authorization` header).
    async fn get_as(&mut self, token: Option<&str>, uri: &str) -> (StatusCode, Value) {
        let res = self.api.with_token(token).get(uri).await;
        self.record("GET", uri, res)
    }

    async fn get(&mut self, uri: &str) -> (StatusCode, Value) {
        self.get_as(Some(DEMO_TOKEN), uri).await
    }

    /// POST a JSON body as this token.
    async fn post_as(
        &mut self,
        token: Option<&str>,
        uri: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let res = self.api.with_token(token).post(uri, &body).await;
        self.record("POST", uri, res)
    }

    async fn post(&mut self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(Some(DEMO_TOKEN), uri, body).await
    }

    /// POST a raw body of this content type as the demo client.
    async fn post_raw(
        &mut self,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let res = self.api.post_raw(uri, content_type, body).await;
        self.record("POST", uri, res)
    }
}

/// The checker itself: it must refuse what the spec does not allow, or the test below proves nothing.
#[test]
fn the_checker_refuses_undocumented_responses() {
    let spec = Spec::load();
    let ok = br#"{"status":"ok"}"#;
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/health",
            StatusCode::OK,
            "application/json",
            ok
        )
        .is_ok()
    );
    let extra = br#"{"status":"ok","extra":1}"#;
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/health",
            StatusCode::OK,
            "application/json",
            extra
        )
        .is_err()
    );
    let problem = br#"{"type":"x","title":"Not Found","status":404,"detail":"d"}"#; // no code
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/accounts/a",
            StatusCode::NOT_FOUND,
            "application/problem+json",
            problem
        )
        .is_err()
    );
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/accounts/a",
            StatusCode::IM_A_TEAPOT,
            "application/json",
            ok
        )
        .is_err()
    );
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/nowhere",
            StatusCode::OK,
            "application/json",
            ok
        )
        .is_err()
    );
    let amount_as_number =
        br#"{"accountId":"a","currency":"USD","balance":1.5,"asOf":"2026-01-01T00:00:00Z"}"#;
    assert!(
        spec.try_check(
            "GET",
            "/api/v1/accounts/a/balance",
            StatusCode::OK,
            "application/json",
            amount_as_number
        )
        .is_err()
    );
}

#[tokio::test]
async fn every_response_matches_openapi() {
    let s = Stack::start().await;
    let mut c = Client {
        api: s.api.clone(),
        spec: Spec::load(),
        seen: BTreeSet::new(),
    };
    let t = today();

    // Operations.
    c.get_as(None, "/api/v1/health").await;
    c.get_as(None, "/api/v1/ready").await;
    c.get("/api/v1/queue/stats").await; // 403: a client token
    c.get("/api/v1/cache/stats").await; // 403
    for path in ["/api/v1/queue/stats", "/api/v1/cache/stats"] {
        let (status, _) = c.get_as(Some(OPERATOR_TOKEN), path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    c.get_as(None, "/api/v1/queue/stats").await; // 401

    // Accounts.
    open(&s, &["world", "suspense-demo"]).await;
    assert_eq!(
        c.post(
            "/api/v1/accounts",
            json!({"id": "alice", "currency": "USD", "metadata": {"tier": "gold"}})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    c.post(
        "/api/v1/accounts",
        json!({"id": "alice", "currency": "USD", "metadata": {"tier": "gold"}}),
    )
    .await; // 200
    c.post(
        "/api/v1/accounts",
        json!({"id": "alice", "currency": "EUR"}),
    )
    .await; // 409 account_exists
    c.post_as(
        Some(OTHER_TOKEN),
        "/api/v1/accounts",
        json!({"id": "alice", "currency": "USD"}),
    )
    .await; // 409 taken
    c.post(
        "/api/v1/accounts",
        json!({"id": "bad id", "currency": "USD"}),
    )
    .await; // 422
    c.post_raw("/api/v1/accounts", "application/json", b"{".to_vec())
        .await; // 400
    c.post_raw("/api/v1/accounts", "text/plain", b"{}".to_vec())
        .await; // 415
    c.get("/api/v1/accounts/alice").await;
    c.get("/api/v1/accounts/nobody").await;
    c.get("/api/v1/accounts/alice/balance").await;
    c.get("/api/v1/accounts/alice/balance?asOf=2026-01-01T00:00:00Z")
        .await;
    c.get("/api/v1/accounts/alice/balance?asOf=later").await;

    // Transfers.
    let transfer = |key: &str, amount: &str| {
        json!({"transaction": {"source_account_id": "world", "destination_account_id": "alice",
        "amount": amount, "currency": "USD", "reference": key, "metadata": {"order": 1}}, "idempotencyKey": key})
    };
    assert_eq!(
        c.post("/api/v1/transactions", transfer("k1", "100.00"))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    c.get("/api/v1/transactions/status/k1").await; // PENDING
    c.post("/api/v1/transactions", transfer("k1", "100.00"))
        .await; // replay
    c.post("/api/v1/transactions", transfer("k1", "99.00"))
        .await; // 422 reused
    c.post("/api/v1/transactions", transfer("k2", "1.001"))
        .await; // 422 scale
    let big = json!({"transaction": {"source_account_id": "a", "destination_account_id": "b", "amount": "1", "currency": "USD", "description": "x".repeat(20_000)}, "idempotencyKey": "big"});
    c.post("/api/v1/transactions", big).await; // 413
    c.post("/api/v1/transactions", json!({"transaction": {"source_account_id": "alice", "destination_account_id": "world", "amount": "500.00", "currency": "USD"}, "idempotencyKey": "k3"})).await;
    s.drain().await;
    c.get("/api/v1/transactions/status/k1").await; // COMPLETED
    c.get("/api/v1/transactions/status/k3").await; // FAILED
    c.get("/api/v1/transactions/status/nope").await; // 404
    c.get("/api/v1/accounts/alice/ledger?limit=1").await;
    c.get("/api/v1/accounts/alice/ledger?limit=0").await;
    c.get("/api/v1/accounts/alice/ledger?cursor=zzz").await;

    // Money movement: multi-leg, by id, refunds, holds, bulk.
    open(&s, &["bob"]).await;
    let legs = json!({"transaction": {"currency": "USD", "effectiveAt": chrono::Utc::now().to_rfc3339(), "legs": [
        {"source_account_id": "alice", "destination_account_id": "bob", "amount": "10.00"},
        {"source_account_id": "alice", "destination_account_id": "world", "amount": "1.00"}]},
        "idempotencyKey": "legs-1"});
    c.post("/api/v1/transactions", legs).await; // 202
    c.post(
        "/api/v1/transactions",
        json!({"transaction": {"legs": []}, "idempotencyKey": "legs-2"}),
    )
    .await; // 422
    let (_, accepted) = c.post("/api/v1/transactions/bulk", json!({"items": [
        {"transaction": {"source_account_id": "world", "destination_account_id": "bob", "amount": "3.00"}, "idempotencyKey": "bulk-1"},
        {"transaction": {"source_account_id": "world", "destination_account_id": "bob", "amount": "3.001"}, "idempotencyKey": "bulk-2"}]})).await; // 202
    assert_eq!(accepted["results"][1]["status"], "REJECTED");
    c.post("/api/v1/transactions/bulk", json!({"atomic": true, "idempotencyKey": "bulk-3", "items": [
        {"transaction": {"source_account_id": "world", "destination_account_id": "bob", "amount": "3.00"}}]})).await; // 202
    c.post("/api/v1/transactions/bulk", json!({"items": []}))
        .await; // 422
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, hold) = c
        .post(
            "/api/v1/holds",
            json!({"hold": {"source_account_id": "alice", "destination_account_id": "bob",
        "amount": "5.00", "expiresAt": expires}, "idempotencyKey": "hold-1"}),
        )
        .await; // 202
    c.post(
        "/api/v1/holds",
        json!({"hold": {"source_account_id": "alice", "destination_account_id": "bob",
        "amount": "5.00", "expiresAt": "2020-01-01T00:00:00Z"}, "idempotencyKey": "hold-2"}),
    )
    .await; // 422
    s.drain().await;
    let (_, legs_done) = c.get("/api/v1/transactions/status/legs-1").await;
    let legs_id = legs_done["transactionId"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/transactions/{legs_id}")).await; // 200
    c.get("/api/v1/transactions/00000000-0000-0000-0000-000000000000")
        .await; // 404
    let refunds = format!("/api/v1/transactions/{legs_id}/refunds");
    c.post(
        &refunds,
        json!({"idempotencyKey": "refund-1", "amount": "4.00", "leg": 0}),
    )
    .await; // 202
    c.post(
        &refunds,
        json!({"idempotencyKey": "refund-2", "amount": "400.00", "leg": 0}),
    )
    .await; // 409
    c.post(
        &refunds,
        json!({"idempotencyKey": "refund-3", "amount": "1.00"}),
    )
    .await; // 422 leg_required
    c.post(
        "/api/v1/transactions/00000000-0000-0000-0000-000000000000/refunds",
        json!({"idempotencyKey": "refund-4"}),
    )
    .await; // 404
    let hold_id = hold["transactionId"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/holds/{hold_id}")).await; // 200
    c.get("/api/v1/holds/00000000-0000-0000-0000-000000000000")
        .await; // 404
    c.post(
        &format!("/api/v1/holds/{hold_id}/capture"),
        json!({"idempotencyKey": "cap-1", "amount": "2.00"}),
    )
    .await; // 202
    c.post(
        &format!("/api/v1/holds/{hold_id}/capture"),
        json!({"idempotencyKey": "cap-2", "amount": "9.00"}),
    )
    .await; // 409
    c.post(
        "/api/v1/holds/00000000-0000-0000-0000-000000000000/capture",
        json!({"idempotencyKey": "cap-3"}),
    )
    .await; // 404
    c.post(
        &format!("/api/v1/holds/{hold_id}/void"),
        json!({"idempotencyKey": "void-1"}),
    )
    .await; // 202
    s.drain().await;
    c.post(
        &format!("/api/v1/holds/{hold_id}/void"),
        json!({"idempotencyKey": "void-2"}),
    )
    .await; // 409
    c.get(&format!("/api/v1/holds/{hold_id}")).await; // VOIDED with events
    c.get("/api/v1/accounts/alice/holds?limit=1").await; // 200
    c.get("/api/v1/accounts/alice/holds?status=PENDING").await; // 400
    c.get("/api/v1/accounts/nobody/holds").await; // 404
    // Balance monitors.
    let monitor = c
        .post(
            "/api/v1/monitors",
            json!({"accountId": "alice", "condition": "BELOW", "threshold": "10.00", "hysteresis": 1}),
        )
        .await; // 201
    let monitor_id = monitor.1["id"].as_str().unwrap().to_string();
    c.post(
        "/api/v1/monitors",
        json!({"accountId": "alice", "condition": "BELOW", "threshold": "0.001"}),
    )
    .await; // 422
    c.post(
        "/api/v1/monitors",
        json!({"accountId": "nobody", "condition": "ABOVE", "threshold": "1"}),
    )
    .await; // 404
    c.get("/api/v1/monitors?accountId=alice&limit=1").await; // 200
    c.get("/api/v1/monitors?cursor=x").await; // 400
    c.get(&format!("/api/v1/monitors/{monitor_id}")).await; // 200
    c.get("/api/v1/monitors/00000000-0000-0000-0000-000000000000")
        .await; // 404
    c.post(&format!("/api/v1/monitors/{monitor_id}/disable"), json!({}))
        .await; // 200
    c.post("/api/v1/monitors/nope/disable", json!({})).await; // 404
    c.get("/api/v1/transactions/status/refund-1").await; // a REFUND
    c.get("/api/v1/transactions/status/hold-1").await; // a HOLD
    c.get(&format!("/api/v1/transactions/{legs_id}")).await; // with its refund
    c.get("/api/v1/accounts/alice/ledger").await;
    // Search and export: pages (COMPLETED and FAILED items), both formats, the cap's absence,
    // bad filters and no token.
    let (status, found) = c.get("/api/v1/transactions?limit=3").await;
    assert_eq!(status, StatusCode::OK);
    let cursor = found["nextCursor"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/transactions?limit=500&cursor={cursor}"))
        .await;
    c.get("/api/v1/transactions?status=FAILED&accountId=alice")
        .await;
    c.get("/api/v1/transactions?kind=refund&metadata%5Border%5D=x")
        .await;
    c.get("/api/v1/transactions?amountMin=2&amountMax=1").await; // 400 invalid_range
    c.get("/api/v1/transactions?kind=nope").await; // 400
    c.get_as(None, "/api/v1/transactions").await; // 401
    c.get("/api/v1/transactions/export?format=csv&accountId=alice")
        .await;
    c.get("/api/v1/transactions/export?format=jsonl").await;
    c.get("/api/v1/transactions/export").await; // 400 missing_parameter
    c.get_as(None, "/api/v1/transactions/export?format=csv")
        .await; // 401
    c.get("/api/v1/accounts/alice/balance").await;

    // Reconciliation.
    let csv = format!(
        "id,booked_date,amount,currency,reference\nb1,{t},100.00,USD,k1\nb2,{t},5.00,USD,\nb3,{t},1.001,USD,\n"
    );
    c.post_raw(
        "/api/v1/statements?accountId=alice",
        "text/csv",
        csv.clone().into_bytes(),
    )
    .await; // 422 rejected
    let (status, _) = c
        .post_raw(
            "/api/v1/statements?accountId=alice&bestEffort=true",
            "text/csv",
            csv.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    c.post("/api/v1/statements", json!({"accountId": "alice", "lines": [{"id": "b1", "bookedDate": t, "amount": "100.00", "currency": "USD"}]})).await; // 200 duplicate
    c.post_raw(
        "/api/v1/statements?accountId=alice",
        "application/xml",
        b"<Document><BkToCstmrStmt>".to_vec(),
    )
    .await; // 422 malformed
    c.post_raw("/api/v1/statements", "text/csv", b"x".to_vec())
        .await; // 400 accountId
    c.post(
        "/api/v1/statements",
        json!({"accountId": "nobody", "lines": []}),
    )
    .await; // 404
    let (status, report) = c
        .post(
            "/api/v1/accounts/alice/reconcile",
            json!({"startDate": t, "endDate": t}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    c.post("/api/v1/accounts/alice/reconcile", json!({"startDate": t}))
        .await; // 422 missing
    c.post(
        "/api/v1/accounts/nobody/reconcile",
        json!({"startDate": t, "endDate": t}),
    )
    .await; // 404
    let run = report["runId"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/reconciliations/{run}")).await;
    c.get(&format!("/api/v1/reconciliations/{run}?format=csv"))
        .await;
    c.get("/api/v1/reconciliations/00000000-0000-0000-0000-000000000000")
        .await;
    // The scheduled run's report has its own shape.
    let summary = reconciler::handle(&s.env.clients, json!({"time": format!("{t}T02:00:00Z")}))
        .await
        .unwrap();
    let internal = summary["runs"].as_array().unwrap().last().unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    // It is operator data: a client token reads it as 404.
    let internal_uri = format!("/api/v1/reconciliations/{internal}");
    let (status, _) = c.get_as(Some(OPERATOR_TOKEN), &internal_uri).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.get(&internal_uri).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = c.get("/api/v1/discrepancies?status=OPEN&limit=1").await;
    c.get("/api/v1/discrepancies?status=nope").await;
    let id = list["discrepancies"][0]["id"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/discrepancies/{id}")).await;
    c.get("/api/v1/discrepancies/00000000-0000-0000-0000-000000000000")
        .await;
    c.post(
        &format!("/api/v1/discrepancies/{id}/resolve"),
        json!({"status": "INVESTIGATING", "note": "looking"}),
    )
    .await;
    c.post(
        &format!("/api/v1/discrepancies/{id}/resolve"),
        json!({"status": "RESOLVED", "action": "adjust"}),
    )
    .await;
    c.post(
        &format!("/api/v1/discrepancies/{id}/resolve"),
        json!({"status": "IGNORED"}),
    )
    .await; // 409
    c.post(
        &format!("/api/v1/discrepancies/{id}/resolve"),
        json!({"status": "DONE"}),
    )
    .await; // 422
    c.post(
        "/api/v1/discrepancies/resolve",
        json!({"ids": [id, "x"], "status": "IGNORED"}),
    )
    .await;
    c.post(
        "/api/v1/discrepancies/resolve",
        json!({"ids": [], "status": "IGNORED"}),
    )
    .await; // 422

    // Events out (issue 12): endpoints, events, redelivery and the delivery log.
    let (status, endpoint) = c
        .post(
            "/api/v1/webhook-endpoints",
            json!({"url": "https://hooks.example.com/ledger", "eventTypes": ["*"], "description": "orders"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let ep = endpoint["id"].as_str().unwrap().to_string();
    c.post(
        "/api/v1/webhook-endpoints",
        json!({"url": "ftp://hooks.example.com/", "eventTypes": ["*"]}),
    )
    .await; // 422 endpoint_url_not_allowed
    c.post(
        "/api/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/", "eventTypes": ["transfer.posted"]}),
    )
    .await; // 422 unknown_event_type
    c.get("/api/v1/webhook-endpoints").await;
    c.get("/api/v1/webhook-endpoints?x=1").await; // 400
    c.get(&format!("/api/v1/webhook-endpoints/{ep}")).await;
    c.get("/api/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000")
        .await; // 404
    let (status, _) = c
        .post(
            &format!("/api/v1/webhook-endpoints/{ep}/rotate-secret"),
            json!({"overlapSeconds": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.post(
        &format!("/api/v1/webhook-endpoints/{ep}/rotate-secret"),
        json!({"overlapSeconds": -1}),
    )
    .await; // 422
    let event: String = s
        .env
        .clients
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO events (client_id, type, subject_id, data)
             VALUES ('demo', 'transfer.completed', 't1', '{\"id\": \"t1\"}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Listed once no running transaction can precede it (the horizon is the whole server's, and
    // other tests' transactions run on it): wait for that, then it is the newest.
    let started = std::time::Instant::now();
    loop {
        let (_, page) = c
            .get("/api/v1/events?limit=1&type=transfer.completed")
            .await;
        if page["events"][0]["id"] == event.as_str() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the event was never listed: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.get("/api/v1/events?cursor=@").await; // 400
    c.get(&format!("/api/v1/events/{event}")).await;
    c.get("/api/v1/events/evt_nope").await; // 404
    let (status, redelivered) = c
        .post(&format!("/api/v1/events/{event}/redeliver"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{redelivered}");
    let delivery = redelivered["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/events/{event}/redeliver"),
        json!({"endpointId": "00000000-0000-0000-0000-000000000000"}),
    )
    .await; // 404
    c.post(
        &format!("/api/v1/webhook-endpoints/{ep}/disable"),
        json!({}),
    )
    .await;
    c.post(
        &format!("/api/v1/events/{event}/redeliver"),
        json!({"endpointId": ep}),
    )
    .await; // 409
    c.post(&format!("/api/v1/webhook-endpoints/{ep}/enable"), json!({}))
        .await;
    c.get(&format!(
        "/api/v1/webhook-endpoints/{ep}/deliveries?limit=10"
    ))
    .await;
    c.get(&format!(
        "/api/v1/webhook-endpoints/{ep}/deliveries?status=NOPE"
    ))
    .await; // 400
    c.get(&format!("/api/v1/webhook-deliveries/{delivery}"))
        .await;
    c.get("/api/v1/webhook-deliveries/0").await; // 404

    let all: BTreeSet<(String, String)> = c.spec.operations.iter().cloned().collect();
    let missed: Vec<_> = all.difference(&c.seen).collect();
    assert!(
        missed.is_empty(),
        "operations in openapi.yaml this test never called: {missed:?}"
    );
}
