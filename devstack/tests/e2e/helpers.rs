use std::time::Duration;

use axum::Router;
use axum::body::Body;
use devstack::poller::Poller;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use shared::testkit::{DEMO_TOKEN, TestEnv, TestOptions};
use tower::ServiceExt;

pub struct Stack {
    pub env: TestEnv,
    pub router: Router,
    pub poller: Poller,
    /// The dead-letter queue's poller feeding the dead-letters function.
    pub dead_letter_poller: Poller,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(TestOptions::default()).await
    }

    /// A stack whose queues have these settings.
    pub async fn start_with(options: TestOptions) -> Self {
        let env = TestEnv::with_options(options).await;
        let router = api::router(env.clients.clone());
        let poller = Poller::new(env.clients.clone(), Duration::from_secs(0))
            .await
            .unwrap();
        let dead_letter_poller = Poller::dead_letters(env.clients.clone(), Duration::from_secs(0))
            .await
            .unwrap();
        Self {
            env,
            router,
            poller,
            dead_letter_poller,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call_router(&self.router, method, path, body).await
    }

    pub async fn open(&self, id: &str, overdraft: &str) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/accounts",
                Some(json!({"id": id, "currency": "USD", "overdraftLimit": overdraft})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn submit(
        &self,
        key: &str,
        src: &str,
        dst: &str,
        amount: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"transaction": {"source_account_id": src, "destination_account_id": dst,
            "amount": amount, "currency": "USD"}, "idempotencyKey": key});
        self.call("POST", "/api/v1/transactions", Some(body)).await
    }

    /// Polls until the queue has nothing visible; returns how many messages were processed.
    pub async fn drain(&self) -> usize {
        let mut processed = 0;
        for _ in 0..200 {
            let stats = self.poller.poll_once().await.unwrap();
            if stats.received == 0 {
                return processed;
            }
            processed += stats.received;
        }
        panic!("queue did not drain");
    }

    /// Polls the dead-letter queue into the dead-letters function until it is empty; returns how
    /// many messages it received.
    pub async fn drain_dead_letters(&self) -> usize {
        let mut received = 0;
        for _ in 0..200 {
            let stats = self.dead_letter_poller.poll_once().await.unwrap();
            if stats.received == 0 {
                return received;
            }
            received += stats.received;
        }
        panic!("dead-letter queue did not drain");
    }

    pub async fn status_of(&self, key: &str) -> Value {
        let (status, body) = self
            .call("GET", &format!("/api/v1/transactions/status/{key}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn balance(&self, id: &str) -> String {
        let (_, body) = self
            .call("GET", &format!("/api/v1/accounts/{id}/balance"), None)
            .await;
        body["balance"].as_str().unwrap().to_string()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let conn = self.env.clients.db.get().await.unwrap();
        conn.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// One request as the demo client through `router` (the stack's, or one with other clients).
pub async fn call_router(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {DEMO_TOKEN}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
