//! `POST /transactions/{id}/refunds`: give back (part of) a posted transaction.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use shared::services::movement::{self, Texts};
use shared::transfers::{RefundRequest, parse_amount_json};

use crate::AppState;
use crate::extract::{ClientId, JsonBody, PathParam};
use crate::problem::ApiResult;
use crate::transactions::{idempotency_key, intake_response, transaction_id};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: Option<String>,
    #[serde(default)]
    amount: Option<Box<RawValue>>,
    #[serde(default)]
    leg: Option<u16>,
    #[serde(default, rename = "fundingAccountId")]
    funding_account_id: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    ClientId(client): ClientId,
    PathParam(id): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RefundBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(body.idempotency_key, &headers)?;
    let of = transaction_id(&id)?;
    let request = RefundRequest {
        amount: body
            .amount
            .map(|raw| parse_amount_json(&raw, "amount"))
            .transpose()?,
        leg: body.leg,
        funding_account: movement::funding_account(body.funding_account_id.as_deref())?,
    };
    let texts = Texts {
        reference: body.reference,
        description: body.description,
        metadata: body.metadata,
    };
    intake_response(movement::refund(&state, &client, &key, of, &request, texts).await)
}
