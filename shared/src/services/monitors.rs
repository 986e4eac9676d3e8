//! Balance monitors: created and disabled by clients. Creating one reads the account's balance
//! and writes the monitor (and, when its condition already holds, its first event) in one
//! transaction under the account's lock; posting evaluates monitors from then on.

use uuid::Uuid;

use crate::clients::Clients;
use crate::monitors::Monitor;
use crate::store::StoreError;
use crate::store::monitors::{self, CreateError, NewMonitor};

/// Creates the monitor in the state the account's balance puts it in.
pub async fn create(clients: &Clients, new: NewMonitor) -> Result<Monitor, CreateError> {
    let monitor = monitors::create(&clients.db, new).await?;
    tracing::info!(monitor_id = %monitor.id, account_id = %monitor.account_id,
        state = monitor.state.as_str(), "monitor created");
    Ok(monitor)
}

/// Disables the client's monitor `id`; `None` if the client has no such monitor.
pub async fn disable(
    clients: &Clients,
    client_id: &str,
    id: Uuid,
) -> Result<Option<Monitor>, StoreError> {
    let monitor = monitors::disable(&clients.db, client_id, id).await?;
    if monitor.is_some() {
        tracing::info!(monitor_id = %id, "monitor disabled");
    }
    Ok(monitor)
}
