//! End to end: the API Router, the SQS server, the poller standing in for the event source mapping,
//! the processor, PostgreSQL and Redis, as devstack runs them.

mod dead_letters;
mod events;
mod faults;
mod flows;
mod helpers;
mod money;
mod openapi;
mod outbox;
mod reconciliation;
mod reconciliation_api;
mod routes;
mod scheduled;
mod search;
mod search_plans;
mod webhooks;
