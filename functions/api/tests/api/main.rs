//! HTTP API tests against the real PostgreSQL, Redis and SQS server, through the same Router that
//! Lambda and devstack serve.

mod accounts;
mod auth;
mod helpers;
mod intake;
mod operations;
mod validation;
