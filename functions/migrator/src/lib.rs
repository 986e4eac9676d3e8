//! The `Custom::DatabaseMigrations` resource: CloudFormation calls this function on every deploy
//! that changes the resource, and it applies pending migrations (idempotent; refinery records what
//! ran, an advisory lock serializes runners). Delete is a no-op: a stack deletion never drops data.
//! Whatever happens, CloudFormation gets an answer, so a stack never hangs waiting for one.
//!
//! The migrator is the only function with the schema owner's credentials (`DATABASE_SECRET_ARN`).
//! With `APP_DATABASE_SECRET_ARN` it also creates the other functions' login from that secret (or
//! sets its password) and makes it a member of `ledger_app` (DESIGN.md section 14).

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use shared::store::{self, PgPool, roles};

pub const PHYSICAL_ID: &str = "payment-ledger-schema";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// The fields of a CloudFormation custom resource request this resource uses (properties are
/// ignored: the function reads its configuration from its environment).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    pub request_id: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub data: BTreeMap<String, String>,
}

/// Applies pending migrations as the owner, then (with `app_login`) ensures the functions' login
/// is a member of `ledger_app` with that password. Returns the migrations applied now.
pub async fn migrate_and_ensure_login(
    owner: &PgPool,
    app_login: Option<&roles::AppLogin>,
) -> anyhow::Result<Vec<String>> {
    let applied = store::migrate(owner).await?;
    if let Some(login) = app_login {
        roles::ensure_app_login(owner, &login.username, Some(&login.password)).await?;
        tracing::info!(login = %login.username, "functions' database login is a member of ledger_app");
    }
    Ok(applied)
}

/// Handles one request: runs `migrate` unless it is a Delete, then reports to CloudFormation.
pub async fn handle<F>(request: &Request, migrate: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<Vec<String>>>,
{
    let outcome = if request.request_type == RequestType::Delete {
        Ok(Vec::new())
    } else {
        migrate.await.map_err(|e| format!("{e:#}"))
    };
    match &outcome {
        Ok(applied) => tracing::info!(?applied, "migrations up to date"),
        Err(e) => tracing::error!(error = %e, "migrations failed"),
    }
    send_response(&request.response_url, &response(request, outcome)).await
}

/// The answer for a request, given the migrations applied (or the error).
pub fn response(request: &Request, outcome: Result<Vec<String>, String>) -> Response {
    let (status, reason, data) = match outcome {
        Ok(applied) => (
            "SUCCESS",
            None,
            BTreeMap::from([
                ("AppliedCount".to_string(), applied.len().to_string()),
                ("Applied".to_string(), applied.join(",")),
            ]),
        ),
        // CloudFormation shows the reason in the console; keep it short.
        Err(reason) => (
            "FAILED",
            Some(reason.chars().take(1000).collect()),
            BTreeMap::new(),
        ),
    };
    Response {
        status,
        reason,
        physical_resource_id: PHYSICAL_ID.to_string(),
        stack_id: request.stack_id.clone(),
        request_id: request.request_id.clone(),
        logical_resource_id: request.logical_resource_id.clone(),
        data,
    }
}

/// PUTs the response to the pre-signed S3 URL CloudFormation gave (empty content type, as S3
/// signed it).
pub async fn send_response(url: &str, response: &Response) -> anyhow::Result<()> {
    let body = serde_json::to_vec(response)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let req = http::Request::put(url)
        .header(http::header::CONTENT_TYPE, "")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(Full::new(Bytes::from(body)))?;
    let res = client.request(req).await?;
    let status = res.status();
    if !status.is_success() {
        let text = res.into_body().collect().await?.to_bytes();
        anyhow::bail!(
            "response URL answered {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(())
}
