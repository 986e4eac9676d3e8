use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use rust_decimal::Decimal;
use serde_json::json;
use shared::accounts::{AccountId, NewAccount, OverdraftLimit};
use shared::money::Currency;
use shared::store::accounts::{self, CreateOutcome};
use shared::testkit::{DEMO_CLIENT, TestEnv};
use shared::transfers::{IdempotencyKey, TransferInput, TransferMessage};

pub async fn open(env: &TestEnv, client: &str, id: &str, currency: &str, overdraft: Option<i64>) {
    let new = NewAccount {
        id: AccountId::parse(id, "id").unwrap(),
        currency: Currency::parse(currency).unwrap(),
        overdraft_limit: overdraft.map_or(OverdraftLimit::Unlimited, |d| {
            OverdraftLimit::Limited(Decimal::from(d))
        }),
        metadata: json!({}),
    };
    let outcome = accounts::create(&env.clients.db, client, &new)
        .await
        .unwrap();
    assert!(matches!(outcome, CreateOutcome::Created(_)), "{outcome:?}");
}

pub fn message(key: &str, src: &str, dst: &str, amount: &str, currency: &str) -> TransferMessage {
    message_for(DEMO_CLIENT, key, src, dst, amount, currency)
}

pub fn message_for(
    client: &str,
    key: &str,
    src: &str,
    dst: &str,
    amount: &str,
    currency: &str,
) -> TransferMessage {
    let input: TransferInput = serde_json::from_value(json!({
        "source_account_id": src, "destination_account_id": dst, "amount": amount, "currency": currency
    }))
    .unwrap();
    let transfer = input.validate(None, Decimal::from(1_000_000_000)).unwrap();
    TransferMessage::new(client, &IdempotencyKey::parse(key, "k").unwrap(), transfer)
}

/// A FIFO batch as the event source mapping delivers it: one record per body, ids `m0`, `m1`, ...
pub fn event(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut r = SqsMessage::default();
            r.message_id = Some(format!("m{i}"));
            r.receipt_handle = Some(format!("rh{i}"));
            r.body = Some(body.clone());
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:test.fifo".into());
            r.aws_region = Some("us-east-1".into());
            r.attributes = [
                ("ApproximateReceiveCount".to_string(), "1".to_string()),
                ("MessageGroupId".to_string(), "g".to_string()),
                ("SequenceNumber".to_string(), format!("{}", 1000 + i)),
            ]
            .into();
            r
        })
        .collect();
    event
}

pub fn bodies(messages: &[TransferMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect()
}

pub async fn run(env: &TestEnv, messages: &[TransferMessage]) -> SqsBatchResponse {
    processor::handle_batch(&env.clients, event(&bodies(messages))).await
}

pub fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

pub async fn balance(env: &TestEnv, id: &str) -> String {
    let a = accounts::get(&env.clients.db, DEMO_CLIENT, id)
        .await
        .unwrap()
        .unwrap();
    shared::money::format_amount(a.balance, &a.currency)
}

pub async fn count(env: &TestEnv, sql: &str) -> i64 {
    let conn = env.clients.db.get().await.unwrap();
    conn.query_one(sql, &[]).await.unwrap().get(0)
}
