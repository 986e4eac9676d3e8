//! Transfers as clients submit them, as the queue carries them, and the idempotency key that makes a
//! retry safe. Everything here is pure: parsing, validation, canonical hashing.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::accounts::{self, AccountId};
use crate::money::{self, Currency, Money};
use crate::validation::ValidationError;

mod movement;
mod refund;

pub use movement::{
    FUTURE_SKEW_SECONDS, IntakeRules, Leg, LegInput, MAX_LEGS, Operation, TransactionKind,
    parse_timestamp,
};
pub use refund::{OriginalLeg, RefundRefusal, RefundRequest, refund_legs};

/// A client-chosen key, 1-255 visible ASCII characters, scoped to the client that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(key: &str, field: &str) -> Result<Self, ValidationError> {
        if key.is_empty() {
            return Err(ValidationError::new(
                "missing_idempotency_key",
                field,
                "an idempotency key is required: send `idempotencyKey` in the body or an `Idempotency-Key` header",
            ));
        }
        if key.len() > 255
            || !key.bytes().all(|b| (0x21..=0x7e).contains(&b))
            || key == "."
            || key == ".."
        {
            return Err(ValidationError::new(
                "invalid_idempotency_key",
                field,
                "idempotency keys are 1-255 visible ASCII characters without spaces, and not `.` or `..` (which URLs normalise away)",
            ));
        }
        Ok(Self(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `transaction` object of `POST /transactions`, exactly as received: one transfer (source,
/// destination, amount) or several legs (`legs`). `amount` is kept as raw JSON so that a number is
/// read from its text, never through f64.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    #[serde(default)]
    pub source_account_id: Option<String>,
    #[serde(default)]
    pub destination_account_id: Option<String>,
    #[serde(default, deserialize_with = "raw_amount")]
    pub amount: Option<Box<RawValue>>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub legs: Option<Vec<LegInput>>,
    #[serde(default, rename = "effectiveAt")]
    pub effective_at: Option<String>,
}

/// A present `amount` is kept whatever its JSON (`null` included: it is then an invalid amount,
/// not a missing one).
fn raw_amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

pub const MAX_REFERENCE_CHARS: usize = 140;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

impl TransferInput {
    /// Validates a plain transfer request with the default value-date window (tests and tools).
    pub fn validate(
        self,
        account_currency: Option<Currency>,
        max_amount: Decimal,
    ) -> Result<Transfer, ValidationError> {
        self.validate_with(
            account_currency,
            &IntakeRules::with_max_amount(max_amount),
            Utc::now(),
        )
    }

    /// Validates the transfer. `account_currency` is the (first) source account's currency, used
    /// when a single transfer names none. Same source and destination is not rejected here: it is
    /// a business rejection the processor records as FAILED `same_account`, like the other posting
    /// rules.
    pub fn validate_with(
        self,
        account_currency: Option<Currency>,
        rules: &IntakeRules,
        now: DateTime<Utc>,
    ) -> Result<Transfer, ValidationError> {
        let effective_at = rules.value_date(self.effective_at.as_deref(), now, "effectiveAt")?;
        let (first, more_legs) = match self.legs {
            Some(legs) => {
                for (present, name) in [
                    (self.source_account_id.is_some(), "source_account_id"),
                    (
                        self.destination_account_id.is_some(),
                        "destination_account_id",
                    ),
                    (self.amount.is_some(), "amount"),
                ] {
                    if present {
                        return Err(ValidationError::new(
                            "conflicting_fields",
                            name,
                            "send either `legs` or one transfer's source_account_id, \
                             destination_account_id and amount, not both",
                        ));
                    }
                }
                validate_legs(legs, self.currency.as_deref(), rules.max_amount)?
            }
            None => {
                let currency = movement::currency_or(
                    self.currency.as_deref(),
                    account_currency,
                    "currency is required when the source account is not known",
                )?;
                let single = LegInput {
                    source_account_id: required(self.source_account_id, "source_account_id")?,
                    destination_account_id: required(
                        self.destination_account_id,
                        "destination_account_id",
                    )?,
                    amount: Some(self.amount.ok_or_else(|| missing("amount"))?),
                    currency: None,
                };
                (
                    single.validate(Some(currency), rules.max_amount)?,
                    Vec::new(),
                )
            }
        };
        let mut transfer = TransferDraft {
            source_account_id: first.source_account_id.into_string(),
            destination_account_id: first.destination_account_id.into_string(),
            amount: first.amount,
            currency: first.currency,
            reference: self.reference,
            description: self.description,
            metadata: self.metadata,
        }
        .validate(rules.max_amount)?;
        transfer.more_legs = more_legs;
        transfer.effective_at = effective_at;
        Ok(transfer)
    }
}

fn missing(field: &str) -> ValidationError {
    ValidationError::new("missing_field", field, format!("missing field `{field}`"))
}

fn required(value: Option<String>, field: &str) -> Result<String, ValidationError> {
    value.ok_or_else(|| missing(field))
}

/// The legs of a multi-leg request: 1..=`MAX_LEGS`, each validated, field paths `legs[i].…`.
/// Returns the first leg and the others.
fn validate_legs(
    legs: Vec<LegInput>,
    currency: Option<&str>,
    max_amount: Decimal,
) -> Result<(Leg, Vec<Leg>), ValidationError> {
    let default_currency = currency.map(Currency::parse).transpose()?;
    if legs.is_empty() {
        return Err(ValidationError::new(
            "invalid_field",
            "legs",
            "a transaction needs at least one leg",
        ));
    }
    if legs.len() > MAX_LEGS {
        return Err(ValidationError::new(
            "too_many_legs",
            "legs",
            format!("a transaction carries at most {MAX_LEGS} legs"),
        ));
    }
    let mut valid = legs
        .into_iter()
        .enumerate()
        .map(|(i, leg)| {
            leg.validate(default_currency, max_amount)
                .map_err(|e| e.under(&format!("legs[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = valid.remove(0);
    Ok((first, valid))
}

/// A transfer with its amount and currency read but nothing else checked: what the reconciliation's
/// adjusting transfers start from, and what a client's request becomes once its amount is parsed.
/// `validate` is the one way to a `Transfer`, so every transfer meets the same rules.
#[derive(Clone, Debug)]
pub struct TransferDraft {
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
}

impl TransferDraft {
    /// The transfer rules: account ids, `0 < amount <= max_amount` at the currency's scale, bounded
    /// texts without control characters, metadata a small object without NUL characters.
    pub fn validate(self, max_amount: Decimal) -> Result<Transfer, ValidationError> {
        let source = AccountId::parse(&self.source_account_id, "source_account_id")?;
        let destination = AccountId::parse(&self.destination_account_id, "destination_account_id")?;
        let money = Money::positive(self.amount, self.currency, max_amount, "amount")?;
        let reference = bounded_text(self.reference, "reference", MAX_REFERENCE_CHARS)?;
        let description = bounded_text(self.description, "description", MAX_DESCRIPTION_CHARS)?;
        let metadata = accounts::parse_metadata(self.metadata, "metadata")?;
        Ok(Transfer {
            source_account_id: source,
            destination_account_id: destination,
            amount: money.amount(),
            currency: self.currency,
            reference,
            description,
            metadata,
            more_legs: Vec::new(),
            effective_at: None,
            operation: Operation::Transfer,
            adjusts: None,
            validated: Validated(()),
        })
    }
}

/// Reads an amount given either as a JSON string (`"100.25"`, preferred) or a JSON number, from the
/// literal JSON text.
pub fn parse_amount_json(raw: &RawValue, field: &str) -> Result<Decimal, ValidationError> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| {
            ValidationError::new("invalid_amount", field, "amount is not a valid JSON string")
        })?;
        money::parse_decimal_str(&s, field)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        money::parse_decimal_json_number(text, field)
    } else {
        Err(ValidationError::new(
            "invalid_field",
            field,
            "amount must be a decimal string such as \"100.25\" (or a JSON number)",
        ))
    }
}

fn bounded_text(
    value: Option<String>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    if let Some(s) = &value {
        crate::validation::reject_nul(s, field)?;
    }
    match value {
        Some(s) if s.chars().count() > max => Err(ValidationError::new(
            "field_too_long",
            field,
            format!("{field} is limited to {max} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => Err(ValidationError::new(
            "invalid_field",
            field,
            format!("{field} must not contain control characters"),
        )),
        other => Ok(other),
    }
}

/// A validated transfer. Its canonical JSON (this field order, amount at the currency's scale,
/// metadata keys sorted) is what the request hash covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub metadata: Value,
    /// The legs after the first (a multi-leg transaction); empty for one transfer, and then absent
    /// from the canonical JSON, so a plain transfer hashes as it always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_legs: Vec<Leg>,
    /// The value date the client asked for (`effectiveAt`); `None`: when it posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    /// What the transaction does (a transfer unless it is a hold, capture, void or refund).
    #[serde(default, skip_serializing_if = "Operation::is_transfer")]
    pub operation: Operation,
    /// The discrepancy this transfer adjusts, for the reconciliation's adjusting transfers (set
    /// only by `Transfer::adjusting`; never by a client's request). Absent from a client transfer's
    /// JSON, so its queue message and request hash are what they always were, while an adjusting
    /// transfer's hash covers the discrepancy it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adjusts: Option<Uuid>,
    /// Only `TransferDraft::validate` (and reading our own queue messages) makes a `Transfer`.
    #[serde(skip, default = "Validated::read")]
    validated: Validated,
}

/// Proof that a `Transfer` went through validation: it has no public constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated(());

impl Validated {
    fn read() -> Self {
        Self(())
    }
}

impl Transfer {
    /// SHA-256 (hex) of the canonical request: what decides "same request" for a reused key.
    pub fn request_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a transfer always serializes");
        hex::encode(Sha256::digest(canonical))
    }

    /// This transfer as the adjusting transfer of a discrepancy.
    pub fn adjusting(mut self, discrepancy_id: Uuid) -> Self {
        self.adjusts = Some(discrepancy_id);
        self
    }

    /// The discrepancy an adjusting transfer answers (`None` for a client's transfer).
    pub fn adjusts(&self) -> Option<Uuid> {
        self.adjusts
    }

    /// The first leg (the source, destination, amount and currency fields).
    pub fn first_leg(&self) -> Leg {
        Leg {
            source_account_id: self.source_account_id.clone(),
            destination_account_id: self.destination_account_id.clone(),
            amount: self.amount,
            currency: self.currency,
        }
    }

    /// Every leg, in order.
    pub fn legs(&self) -> Vec<Leg> {
        let mut legs = Vec::with_capacity(1 + self.more_legs.len());
        legs.push(self.first_leg());
        legs.extend(self.more_legs.iter().cloned());
        legs
    }

    /// Every account the transaction names, in leg order (with repeats).
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.source_account_id)
            .chain(std::iter::once(&self.destination_account_id))
            .chain(
                self.more_legs
                    .iter()
                    .flat_map(|l| [&l.source_account_id, &l.destination_account_id]),
            )
            .map(AccountId::as_str)
    }

    /// This transaction as another operation on the same legs (a hold, a capture, ...).
    pub fn with_operation(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }

    /// This transaction with these legs after the first.
    pub fn with_more_legs(mut self, legs: Vec<Leg>) -> Self {
        self.more_legs = legs;
        self
    }

    /// This transaction with a value date.
    pub fn with_effective_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.effective_at = at;
        self
    }
}

/// The idempotency key of attempt `attempt` (1, 2, ... : a new attempt only after the previous one
/// was rejected) of the adjusting transfer for a discrepancy: `adjust <discrepancy id> <attempt>`.
/// The spaces put it outside the keys a client can send (`IdempotencyKey::parse`: visible ASCII
/// only), so it never collides with a client's key in the ledger's unique (client, key) or in the
/// Redis reservations, and no client key (`adjust-...` or any other) is reserved.
pub fn adjustment_key(discrepancy_id: Uuid, attempt: u32) -> IdempotencyKey {
    IdempotencyKey(format!(
        "{ADJUSTMENT_KEY_PREFIX}{} {attempt}",
        discrepancy_id.hyphenated()
    ))
}

const ADJUSTMENT_KEY_PREFIX: &str = "adjust ";

/// The discrepancy and attempt of an adjusting transfer's key; `None` for any other key.
pub fn adjustment_of(key: &str) -> Option<(Uuid, u32)> {
    let (id, attempt) = key.strip_prefix(ADJUSTMENT_KEY_PREFIX)?.split_once(' ')?;
    let parsed = (Uuid::parse_str(id).ok()?, attempt.parse::<u32>().ok()?);
    // Only the canonical spelling: one key per (discrepancy, attempt).
    (parsed.1 >= 1 && adjustment_key(parsed.0, parsed.1).as_str() == key).then_some(parsed)
}

/// The 202 a client got when its transfer was accepted; replayed verbatim for the same request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub idempotency_key: String,
    pub transaction_id: Uuid,
    pub message_id: String,
    pub accepted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The cached final status of a transfer, written after the processor commits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedStatus {
    pub status: String,
    pub transaction_id: Uuid,
    pub failure_code: Option<String>,
}

/// Version 1 of the queue contract between the API and the processor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferMessage {
    pub v: u32,
    pub client_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub transaction_id: Uuid,
    pub transfer: Transfer,
    pub accepted_at: DateTime<Utc>,
}

pub const MESSAGE_VERSION: u32 = 1;

/// Why a queue body is not a transfer message the processor can post (it goes to the dead-letter
/// queue).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MalformedMessage {
    #[error("malformed body: {0}")]
    Body(String),
    #[error("unsupported message version {0}")]
    Version(u32),
    #[error(transparent)]
    Key(ValidationError),
    #[error("an adjusting transfer's key and discrepancy disagree")]
    AdjustmentKey,
    #[error("amount {0}")]
    Amount(String),
    #[error("the legs do not fit the operation")]
    Shape,
}

impl TransferMessage {
    pub fn new(client_id: &str, key: &IdempotencyKey, transfer: Transfer) -> Self {
        Self {
            v: MESSAGE_VERSION,
            client_id: client_id.to_string(),
            idempotency_key: key.as_str().to_string(),
            request_hash: transfer.request_hash(),
            transaction_id: transaction_id(client_id, key.as_str()),
            transfer,
            accepted_at: Utc::now(),
        }
    }

    /// Parses a queue body; anything that is not a well-formed v1 message is an error (it goes to
    /// the dead-letter queue, never to the ledger).
    pub fn parse(body: &str) -> Result<Self, MalformedMessage> {
        let msg: Self =
            serde_json::from_str(body).map_err(|e| MalformedMessage::Body(e.to_string()))?;
        if msg.v != MESSAGE_VERSION {
            return Err(MalformedMessage::Version(msg.v));
        }
        // A client's key, or the reserved key of the discrepancy an adjusting transfer answers.
        match (adjustment_of(&msg.idempotency_key), msg.transfer.adjusts) {
            (None, None) => {
                IdempotencyKey::parse(&msg.idempotency_key, "idempotencyKey")
                    .map_err(MalformedMessage::Key)?;
            }
            (Some((id, _)), Some(adjusts)) if id == adjusts => {}
            _ => return Err(MalformedMessage::AdjustmentKey),
        }
        let t = &msg.transfer;
        for leg in t.legs() {
            if leg.amount <= Decimal::ZERO || leg.amount.scale() != leg.currency.minor_units() {
                return Err(MalformedMessage::Amount(format!(
                    "{} is not a valid {} amount",
                    leg.amount, leg.currency
                )));
            }
        }
        let legs = 1 + t.more_legs.len();
        let shape_ok = legs <= MAX_LEGS
            && match &t.operation {
                Operation::Transfer => true,
                Operation::Hold { .. } | Operation::Capture { .. } | Operation::Void { .. } => {
                    legs == 1
                }
                Operation::Refund { of_legs, .. } => of_legs.len() == legs,
            };
        if !shape_ok || (t.adjusts.is_some() && !t.operation.is_transfer()) {
            return Err(MalformedMessage::Shape);
        }
        Ok(msg)
    }

    /// FIFO group: submission order per paying account decides who gets the funds. The group is
    /// the (client, source account) pair, hashed: a client naming someone else's account as its
    /// source (always rejected, `account_not_found`) lands in a group of its own, and cannot queue
    /// its requests ahead of the owner's transfers in the owner's group.
    pub fn group_id(&self) -> String {
        group_id(&self.client_id, self.transfer.source_account_id.as_str())
    }

    pub fn deduplication_id(&self) -> String {
        deduplication_id(&self.client_id, &self.idempotency_key)
    }
}

/// The transaction id of a client's key: derived from (client, key), so every retry of a request
/// carries the same id whatever Redis remembers (a UUID version 8 over SHA-256; the ledger's
/// unique (client, key) makes it unique).
pub fn transaction_id(client_id: &str, key: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"transaction-id\0");
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `MessageGroupId` of a client's transfers out of `source_account_id` (hex, 32 characters).
pub fn group_id(client_id: &str, source_account_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"group\0");
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(source_account_id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// `MessageDeduplicationId`: hash of client id and key (so one client's key cannot collide with
/// another's, and the key itself never appears in SQS).
pub fn deduplication_id(client_id: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    hex::encode(h.finalize())
}

/// Where the status of the transfer accepted under `key` is read (`GET`), the key
/// percent-encoded as one path segment.
pub fn status_path(key: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "/api/v1/transactions/status/{}",
        percent_encoding::utf8_percent_encode(key, SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> TransferInput {
        serde_json::from_str(json).unwrap()
    }
    const MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

    #[test]
    fn validates_and_normalises() {
        let t = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"10.5","currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        assert_eq!(t.amount.to_string(), "10.50");
        assert_eq!(t.metadata, serde_json::json!({}));
    }

    #[test]
    fn amount_as_json_number_is_read_from_its_text() {
        let t = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":10.25,"currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        assert_eq!(t.amount.to_string(), "10.25");
        let err = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":0.30000000000000004,"currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap_err();
        assert_eq!(err.code, "amount_scale_exceeded");
        for bad in ["true", "null", "[1]", "{}"] {
            let json = format!(
                r#"{{"source_account_id":"a","destination_account_id":"b","amount":{bad},"currency":"USD"}}"#
            );
            assert_eq!(
                input(&json).validate(None, MAX).unwrap_err().code,
                "invalid_field",
                "{bad}"
            );
        }
    }

    #[test]
    fn currency_defaults_to_the_source_account() {
        let jpy = Currency::parse("JPY").unwrap();
        let t = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"1500"}"#)
            .validate(Some(jpy), MAX)
            .unwrap();
        assert_eq!(t.currency, jpy);
        let err = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"1"}"#)
            .validate(None, MAX)
            .unwrap_err();
        assert_eq!(
            (err.code, err.field.as_str()),
            ("missing_field", "currency")
        );
    }

    #[test]
    fn request_hash_is_canonical() {
        let a = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"10.5","currency":"USD","metadata":{"x":1,"y":2}}"#)
            .validate(None, MAX)
            .unwrap();
        let b = input(r#"{"metadata":{"y":2,"x":1},"currency":"USD","amount":10.50,"destination_account_id":"b","source_account_id":"a"}"#)
            .validate(None, MAX)
            .unwrap();
        assert_eq!(a.request_hash(), b.request_hash());
        let c = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"10.51","currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        assert_ne!(a.request_hash(), c.request_hash());
    }

    #[test]
    fn adjusting_transfers_are_marked_and_keyed_outside_the_clients_keys() {
        let t = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"1","currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        let client_body = serde_json::to_string(&t).unwrap();
        assert!(!client_body.contains("adjusts"), "{client_body}");
        let id = Uuid::now_v7();
        let adjusting = t.clone().adjusting(id);
        assert_eq!(adjusting.adjusts(), Some(id));
        assert_ne!(adjusting.request_hash(), t.request_hash());

        let key = adjustment_key(id, 2);
        assert_eq!(key.as_str(), format!("adjust {id} 2"));
        assert_eq!(adjustment_of(key.as_str()), Some((id, 2)));
        assert!(IdempotencyKey::parse(key.as_str(), "k").is_err());
        for other in [
            format!("adjust-{id}"),
            format!("adjust {id}"),
            format!("adjust {id} 0"),
            format!("adjust {id} 02"),
            format!("adjust {} 1", id.simple()),
            "adjust x 1".to_string(),
        ] {
            assert_eq!(adjustment_of(&other), None, "{other}");
        }

        let msg = TransferMessage::new("demo", &key, adjusting.clone());
        let body = serde_json::to_string(&msg).unwrap();
        assert_eq!(TransferMessage::parse(&body).unwrap(), msg);
        // The reserved key only with its discrepancy, and a discrepancy only with its key.
        let other = adjustment_key(Uuid::now_v7(), 1);
        for bad in [
            TransferMessage::new("demo", &other, adjusting.clone()),
            TransferMessage::new("demo", &key, t.clone()),
            TransferMessage::new("demo", &IdempotencyKey::parse("k", "k").unwrap(), adjusting),
        ] {
            assert!(TransferMessage::parse(&serde_json::to_string(&bad).unwrap()).is_err());
        }
        let plain =
            TransferMessage::new("demo", &IdempotencyKey::parse("adjust-x", "k").unwrap(), t);
        assert!(!serde_json::to_string(&plain).unwrap().contains("adjusts"));
    }

    #[test]
    fn a_multi_leg_transaction_is_grouped_by_its_first_legs_source() {
        let t = input(
            r#"{"currency":"USD","legs":[
            {"source_account_id":"customer","destination_account_id":"merchant","amount":"97"},
            {"source_account_id":"platform","destination_account_id":"tax","amount":"0.5"}]}"#,
        )
        .validate(None, MAX)
        .unwrap();
        assert_eq!(t.legs().len(), 2);
        assert_eq!(t.more_legs[0].amount.to_string(), "0.50");
        let msg = TransferMessage::new("demo", &IdempotencyKey::parse("card", "k").unwrap(), t);
        assert_eq!(msg.group_id(), group_id("demo", "customer"));
        let body = serde_json::to_string(&msg).unwrap();
        assert_eq!(TransferMessage::parse(&body).unwrap(), msg);
        // A plain transfer's message and hash are what they were before legs existed.
        let plain = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"1","currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            json,
            r#"{"source_account_id":"a","destination_account_id":"b","amount":"1.00","currency":"USD","reference":null,"description":null,"metadata":{}}"#
        );
        // A hold with more than one leg is not a message the processor takes.
        let mut hold = msg.clone();
        hold.transfer.operation = Operation::Hold {
            expires_at: Utc::now(),
        };
        assert_eq!(
            TransferMessage::parse(&serde_json::to_string(&hold).unwrap()),
            Err(MalformedMessage::Shape)
        );
    }

    #[test]
    fn idempotency_keys() {
        IdempotencyKey::parse(&"k".repeat(255), "k").unwrap();
        assert_eq!(
            IdempotencyKey::parse("", "k").unwrap_err().code,
            "missing_idempotency_key"
        );
        for bad in [
            "has space",
            "tab\t",
            &"k".repeat(256),
            "naïve",
            ".",
            "..",
            "nul\0",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad, "k").unwrap_err().code,
                "invalid_idempotency_key"
            );
        }
    }

    #[test]
    fn messages_round_trip_and_reject_garbage() {
        let t = input(r#"{"source_account_id":"a","destination_account_id":"b","amount":"1","currency":"USD"}"#)
            .validate(None, MAX)
            .unwrap();
        let msg = TransferMessage::new("demo", &IdempotencyKey::parse("k1", "k").unwrap(), t);
        let body = serde_json::to_string(&msg).unwrap();
        assert_eq!(TransferMessage::parse(&body).unwrap(), msg);
        assert!(TransferMessage::parse("not json").is_err());
        assert!(TransferMessage::parse(&body.replace("\"v\":1", "\"v\":2")).is_err());
        assert!(TransferMessage::parse(&body.replace("\"1.00\"", "\"1.001\"")).is_err());
        assert_ne!(deduplication_id("a", "bc"), deduplication_id("ab", "c"));
        // The transaction id is the key's, whenever and however often it is sent.
        let again = TransferMessage::new(
            "demo",
            &IdempotencyKey::parse("k1", "k").unwrap(),
            msg.transfer.clone(),
        );
        assert_eq!(again.transaction_id, msg.transaction_id);
        assert_eq!(again.transaction_id.get_version_num(), 8);
        assert_ne!(transaction_id("demo", "k1"), transaction_id("other", "k1"));
        assert_ne!(transaction_id("a", "bc"), transaction_id("ab", "c"));
        // One group per (client, source): another client naming this source is elsewhere.
        assert_eq!(msg.group_id(), group_id("demo", "a"));
        assert_ne!(group_id("demo", "a"), group_id("mallory", "a"));
        assert_eq!(msg.group_id().len(), 32);
    }
}
