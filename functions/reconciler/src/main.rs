//! Lambda entry point for the scheduled reconciler.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::clients::Clients;
use shared::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let clients = Clients::build(Config::from_env()?).await?;
    let clients = &clients;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        reconciler::handle(clients, event.payload)
            .await
            .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
    }))
    .await
}
