//! Lambda entry point for the webhook dispatcher.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::clients::Clients;
use shared::config::Config;
use shared::services::dispatch::Dispatcher;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let clients = Clients::build(Config::from_env()?).await?;
    let dispatcher = Dispatcher::from_clients(&clients).await?;
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        dispatcher::handle(dispatcher, event.payload)
            .await
            .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
    }))
    .await
}
