use http::StatusCode;
use serde_json::{Value, json};
use shared::clients::Clients;
use shared::testkit::TestEnv;
use shared::testkit::client::TestClient;

pub struct TestApp {
    pub env: TestEnv,
    /// The API's Router as the demo client (`api.as_operator()`, `api.anonymous()`, ... for others).
    pub api: TestClient,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let env = TestEnv::new().await;
        let api = TestClient::new(api::router(env.clients.clone()));
        Self { env, api }
    }

    /// The demo client on another Router over the same database and Redis prefix, with some
    /// clients swapped.
    pub fn api_with(&self, clients: Clients) -> TestClient {
        self.api.on(api::router(clients))
    }

    pub async fn create_account(&self, id: &str, currency: &str, overdraft: &str) -> Value {
        let res = self
            .api
            .post(
                "/api/v1/accounts",
                &json!({"id": id, "currency": currency, "overdraftLimit": overdraft}),
            )
            .await;
        res.assert_status(StatusCode::CREATED).clone()
    }

    pub async fn queue_depth(&self) -> u64 {
        let stats = self.env.clients.queue.stats().await.unwrap();
        stats.queue.visible + stats.queue.in_flight
    }
}

pub fn transfer(key: &str, src: &str, dst: &str, amount: &str) -> Value {
    json!({
        "transaction": {
            "source_account_id": src,
            "destination_account_id": dst,
            "amount": amount,
            "currency": "USD"
        },
        "idempotencyKey": key
    })
}
