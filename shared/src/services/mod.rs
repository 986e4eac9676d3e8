//! The services: each sequences the calls of one use case (the pure rules in `ledger`,
//! `reconcile`, `transfers`, and the adapters in `store`, `idempotency`, `queue`) and holds neither
//! a rule nor a SQL statement. The Lambda functions and devstack call these.

pub mod discrepancies;
pub mod dispatch;
pub mod intake;
pub mod monitors;
pub mod movement;
pub mod posting;
pub mod reconciliation;
pub mod statements;
pub mod webhooks;
