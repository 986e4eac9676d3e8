//! devstack: the three functions' code in one process against local services. The API's Router is
//! served on a port, an SQS poller stands in for Lambda's event source mapping, and (with the
//! reconciliation work) a timer stands in for the EventBridge schedule.

pub mod poller;
pub mod setup;
