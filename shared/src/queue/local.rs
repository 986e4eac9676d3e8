//! Local stacks and tests: creating the FIFO queue pair (in AWS the template creates them) and a
//! client for a local SQS-compatible server.

use aws_sdk_sqs::types::QueueAttributeName;

use super::{QueueError, timeouts};

/// How a local stack recreates its queues when the local SQS server restarted empty (production
/// queues come from the template and never vanish).
#[derive(Clone, Debug)]
pub struct RecreateQueues {
    pub name: String,
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
}

/// Creates (or finds) a FIFO queue `name` with a FIFO dead-letter queue `<name>-dlq` after
/// `max_receive_count` receives. For local stacks and tests; in AWS the template creates them.
pub async fn ensure_fifo_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_secs: u32,
) -> Result<(String, String), QueueError> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let create = |queue: String, attrs: Vec<(QueueAttributeName, String)>| async move {
        let mut req = client
            .create_queue()
            .queue_name(queue)
            .attributes(QueueAttributeName::FifoQueue, "true");
        for (k, v) in attrs {
            req = req.attributes(k, v);
        }
        req.send()
            .await
            .map_err(QueueError::from_sdk)?
            .queue_url
            .ok_or_else(|| QueueError::new("CreateQueue returned no QueueUrl"))
    };
    let dlq_url = create(format!("{base}-dlq.fifo"), vec![]).await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(QueueError::from_sdk)?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| QueueError::new("dead-letter queue has no ARN"))?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count});
    let url = create(
        format!("{base}.fifo"),
        vec![
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            ),
            (
                QueueAttributeName::DeduplicationScope,
                "messageGroup".into(),
            ),
            (
                QueueAttributeName::FifoThroughputLimit,
                "perMessageGroupId".into(),
            ),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}

/// An SQS client for a local SQS-compatible server (moto), with static dummy credentials so that
/// nothing reaches for the EC2 metadata endpoint.
pub async fn local_client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{Credentials, Region};
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .endpoint_url(endpoint)
        .timeout_config(timeouts())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}
