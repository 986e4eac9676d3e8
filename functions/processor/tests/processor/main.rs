//! Processor tests: real-shaped SQS batches through the handler, against the real PostgreSQL.

mod adjustments;
mod batches;
mod concurrency;
mod dead_letters;
mod helpers;
