//! The `dead-letters` function: an SQS event source on the transfers queue's FIFO dead-letter
//! queue. Each message is recorded in PostgreSQL (`dead_letters`, keyed by message id, so a
//! redelivery records nothing new) and then deleted by the event source mapping; the scheduled
//! reconciliation reports the recorded letters and the API redrives from the record. A FIFO queue
//! cannot be scanned reliably (a receive sees only the head of each message group), so the record
//! is the only place the letters are read from.
//!
//! Recording never fails on a body (`NewDeadLetter::from_sqs` makes every message storable); only
//! a database failure is reported, as partial batch failures with the FIFO rule (the first message
//! not recorded and every later one), and SQS delivers those again.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::clients::Clients;
use shared::dead_letters::NewDeadLetter;
use shared::metrics::Metrics;
use shared::store::dead_letters;

/// Handles one batch from the dead-letter queue.
pub async fn handle(clients: &Clients, event: SqsEvent) -> SqsBatchResponse {
    let mut metrics = Metrics::new("dead-letters");
    let records = event.records;
    let letters: Vec<NewDeadLetter> = records
        .iter()
        .map(|r| NewDeadLetter::from_sqs(r.message_id.as_deref(), r.body.as_deref(), &r.attributes))
        .collect();

    // Normally one statement for the batch; if it fails, one at a time up to the first failure.
    let (recorded, fail_from) = match dead_letters::record(&clients.db, &letters).await {
        Ok(n) => (n, letters.len()),
        Err(e) => {
            tracing::warn!(error = %e, "recording the batch failed; recording one at a time");
            let mut recorded = 0;
            let mut fail_from = letters.len();
            for (i, letter) in letters.iter().enumerate() {
                match dead_letters::record(&clients.db, std::slice::from_ref(letter)).await {
                    Ok(n) => recorded += n,
                    Err(e) => {
                        tracing::error!(message_id = %letter.message_id, error = %e, "dead letter not recorded; SQS delivers it again");
                        fail_from = i;
                        break;
                    }
                }
            }
            (recorded, fail_from)
        }
    };
    for letter in &letters[..fail_from] {
        tracing::warn!(
            message_id = %letter.message_id,
            transaction_id = ?letter.transaction_id,
            well_formed = letter.client_id.is_some(),
            "dead letter recorded"
        );
    }
    metrics.count("DeadLettersRecorded", recorded);
    metrics.count(
        "DeadLettersMalformed",
        letters[..fail_from]
            .iter()
            .filter(|l| l.client_id.is_none())
            .count() as u64,
    );
    metrics.count("DeadLettersNotRecorded", (letters.len() - fail_from) as u64);
    metrics.flush();

    let mut response = SqsBatchResponse::default();
    for record in &records[fail_from..] {
        response.add_failure(record.message_id.clone().unwrap_or_default());
    }
    response
}
