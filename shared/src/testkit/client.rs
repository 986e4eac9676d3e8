//! The one HTTP test client: every API integration test (`functions/api/tests`) and every
//! end-to-end test (`devstack/tests`) sends its requests through [`TestClient`], in memory through
//! the same axum `Router` that Lambda and devstack serve (tower `oneshot`, no socket).
//!
//! It lives here, behind the `testkit` feature (which alone pulls in axum), because
//! `shared` is the one crate both test suites already use: the client takes a `Router`, so it never
//! depends on `api` and `api`'s tests never depend on `devstack`.

use axum::Router;
use axum::body::{Body, Bytes};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::{DEMO_TOKEN, OPERATOR_TOKEN, OTHER_TOKEN};

/// Sends requests to a Router as one client: the demo client by default, or another token, or
/// none.
#[derive(Clone)]
pub struct TestClient {
    router: Router,
    token: Option<String>,
}

impl TestClient {
    /// The demo client (`DEMO_TOKEN`) on this Router.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            token: Some(DEMO_TOKEN.to_string()),
        }
    }

    /// The same client on another Router (one built over other clients, say).
    pub fn on(&self, router: Router) -> Self {
        Self {
            router,
            token: self.token.clone(),
        }
    }

    /// The same Router with this bearer token, or with no `authorization` header at all.
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            router: self.router.clone(),
            token: token.map(str::to_string),
        }
    }

    /// The second client (`OTHER_TOKEN`).
    pub fn as_other(&self) -> Self {
        self.with_token(Some(OTHER_TOKEN))
    }

    /// The local operator (`OPERATOR_TOKEN`).
    pub fn as_operator(&self) -> Self {
        self.with_token(Some(OPERATOR_TOKEN))
    }

    /// No `authorization` header.
    pub fn anonymous(&self) -> Self {
        self.with_token(None)
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path).send().await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, path).json(body).send().await
    }

    /// A POST with a raw body of this content type (a CSV or XML statement, malformed JSON).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        self.request(Method::POST, path)
            .body(content_type, body)
            .send()
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> TestResponse {
        self.request(Method::PUT, path).json(body).send().await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.request(Method::DELETE, path).send().await
    }

    /// `method path`, with a JSON body if there is one.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> TestResponse {
        let req = self.request(method, path);
        match body {
            Some(b) => req.json(b),
            None => req,
        }
        .send()
        .await
    }

    /// A request to finish with a body and headers, then [`TestRequest::send`].
    pub fn request<M>(&self, method: M, path: &str) -> TestRequest<'_>
    where
        Method: TryFrom<M>,
        <Method as TryFrom<M>>::Error: Into<http::Error>,
    {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(t) = &self.token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        TestRequest {
            client: self,
            builder,
            body: Body::empty(),
        }
    }

    /// A request built elsewhere (an API Gateway event file, say), sent as it is: the client's
    /// token is not added.
    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        TestResponse {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }
}

/// A request on its way: add headers and a body, then send it.
pub struct TestRequest<'a> {
    client: &'a TestClient,
    builder: http::request::Builder,
    body: Body,
}

impl TestRequest<'_> {
    /// Another header (a second `authorization` replaces nothing: use
    /// [`TestClient::with_token`] for another token).
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.builder = self.builder.header(name, value.as_ref());
        self
    }

    /// A JSON body (`content-type: application/json`).
    pub fn json(self, body: &Value) -> Self {
        self.body("application/json", body.to_string())
    }

    /// A raw body with its content type (a CSV or camt.053 statement, malformed JSON).
    pub fn body(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = body.into();
        self
    }

    /// A raw body with no content type.
    pub fn raw(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> TestResponse {
        let req = self.builder.body(self.body).unwrap();
        self.client.send(req).await
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when it is empty or not JSON.
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub text: String,
    pub bytes: Bytes,
}

impl TestResponse {
    /// The `content-type` header, or "" without one.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// The status and the JSON body.
    pub fn parts(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }

    /// Asserts a problem+json response with this status and code; returns the body.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        &self.body
    }

    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }
}
