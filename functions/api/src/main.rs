//! Lambda entry point for the HTTP API (API Gateway HTTP API, payload v2).

use shared::clients::Clients;
use shared::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let clients = Clients::build(Config::from_env()?).await?;
    lambda_http::run(api::router(clients)).await
}
