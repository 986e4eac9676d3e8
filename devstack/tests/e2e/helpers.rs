use std::time::Duration;

use devstack::poller::Poller;
use http::StatusCode;
use serde_json::{Value, json};
use shared::testkit::client::TestClient;
use shared::testkit::{TestEnv, TestOptions};

pub struct Stack {
    pub env: TestEnv,
    /// The API's Router as the demo client.
    pub api: TestClient,
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
        let api = TestClient::new(api::router(env.clients.clone()));
        let poller = Poller::new(env.clients.clone(), Duration::from_secs(0))
            .await
            .unwrap();
        let dead_letter_poller = Poller::dead_letters(env.clients.clone(), Duration::from_secs(0))
            .await
            .unwrap();
        Self {
            env,
            api,
            poller,
            dead_letter_poller,
        }
    }

    pub async fn open(&self, id: &str, overdraft: &str) {
        let (status, body) = self
            .api
            .post(
                "/api/v1/accounts",
                &json!({"id": id, "currency": "USD", "overdraftLimit": overdraft}),
            )
            .await
            .parts();
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
        self.api.post("/api/v1/transactions", &body).await.parts()
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

    /// POSTs `body` and asserts 202 Accepted; returns the answer.
    pub async fn accepted(&self, path: &str, body: &Value) -> Value {
        let (status, body) = self.api.post(path, body).await.parts();
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
        body
    }

    pub async fn status_of(&self, key: &str) -> Value {
        let (status, body) = self
            .api
            .get(&format!("/api/v1/transactions/status/{key}"))
            .await
            .parts();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn balance(&self, id: &str) -> String {
        let body = self
            .api
            .get(&format!("/api/v1/accounts/{id}/balance"))
            .await
            .body;
        body["balance"].as_str().unwrap().to_string()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let conn = self.env.clients.db.get().await.unwrap();
        conn.query_one(sql, &[]).await.unwrap().get(0)
    }
}
