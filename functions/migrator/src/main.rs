//! Lambda entry point for the migrations custom resource.

use lambda_runtime::{LambdaEvent, service_fn};
use shared::clients::Clients;
use shared::config::Config;

async fn apply() -> anyhow::Result<Vec<String>> {
    let clients = Clients::build(Config::from_env()?).await?;
    shared::store::migrate(&clients.db).await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<migrator::Request>| async move {
            migrator::handle(&event.payload, apply()).await?;
            Ok::<(), lambda_runtime::Error>(())
        },
    ))
    .await
}
