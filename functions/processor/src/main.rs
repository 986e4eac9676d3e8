//! Lambda entry point for the SQS-triggered processor.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::clients::Clients;
use shared::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let clients = Clients::build(Config::from_env()?).await?;
    let clients = &clients;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            processor::handle_batch(clients, event.payload).await,
        )
    }))
    .await
}
