//! HTTP API tests against the real PostgreSQL, Redis and SQS server, through the same Router that
//! Lambda and devstack serve.

mod accounts;
mod auth;
mod csv_export;
mod helpers;
mod hostile;
mod intake;
mod operations;
mod roles;
mod validation;
