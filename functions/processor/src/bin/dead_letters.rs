//! Lambda entry point for the `dead-letters` function (SQS event source on the dead-letter queue).

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
            processor::dead_letters::handle(clients, event.payload).await,
        )
    }))
    .await
}
