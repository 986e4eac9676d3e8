//! devstack: the three functions' code in one process against local services. The API's Router is
//! served on a port, an SQS poller stands in for Lambda's event source mapping, and (with the
//! reconciliation work) a timer stands in for the EventBridge schedule; the webhook dispatcher's loop
//! runs in the background.

pub mod dispatch;
pub mod poller;
pub mod setup;
