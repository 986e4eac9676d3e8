//! The ledger's library crate: domain rules (money, accounts, transfers, posting), the adapters that
//! talk to PostgreSQL, Redis and SQS, configuration and telemetry. The Lambda functions and devstack
//! are thin shells around what lives here.

pub mod accounts;
pub mod auth;
pub mod clients;
pub mod config;
pub mod dead_letters;
pub mod eventbus;
pub mod events;
pub mod idempotency;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod monitors;
pub mod queue;
pub mod reconcile;
pub mod retry;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod transfers;
pub mod validation;
pub mod views;
pub mod webhooks;

#[cfg(feature = "testkit")]
pub mod testkit;
