//! Processor tests: real-shaped SQS batches through the handler, against the real PostgreSQL.

mod batches;
mod concurrency;
mod helpers;
