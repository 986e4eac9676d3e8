use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use shared::clients::Clients;
use shared::testkit::{DEMO_TOKEN, TestEnv};
use tower::ServiceExt;

pub struct TestApp {
    pub env: TestEnv,
    pub router: Router,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// Asserts a problem+json response with this status and code; returns the body.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{:#}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        &self.body
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        &self.body
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        let env = TestEnv::new().await;
        let router = api::router(env.clients.clone());
        Self { env, router }
    }

    /// Another router over the same database and Redis prefix, with some clients swapped.
    pub fn router_with(&self, clients: Clients) -> Router {
        api::router(clients)
    }

    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        send(&self.router, req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        let mut req = Request::builder().method(Method::GET).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        self.send(post_request(path, token, body)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.post_raw(path, Some(DEMO_TOKEN), body.to_string())
            .await
    }

    pub async fn create_account(&self, id: &str, currency: &str, overdraft: &str) -> Value {
        let res = self
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

pub fn post_request(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(body.into()).unwrap()
}

pub async fn send(router: &Router, req: Request<Body>) -> TestResponse {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    TestResponse {
        status,
        headers,
        body,
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
