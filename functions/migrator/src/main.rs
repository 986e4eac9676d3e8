//! Lambda entry point for the migrations custom resource.

use anyhow::Context;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::clients::Clients;
use shared::config::Config;
use shared::store::roles::AppLogin;

/// Connects with the owner's credentials (`DATABASE_SECRET_ARN` or `DATABASE_URL`); the functions'
/// login comes from `APP_DATABASE_SECRET_ARN` when set.
async fn apply() -> anyhow::Result<Vec<String>> {
    let clients = Clients::build(Config::from_env()?).await?;
    let app_login = match std::env::var("APP_DATABASE_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => Some(
            AppLogin::from_secret(&arn)
                .await
                .context("APP_DATABASE_SECRET_ARN")?,
        ),
        _ => None,
    };
    migrator::migrate_and_ensure_login(&clients.db, app_login.as_ref()).await
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
