//! The dispatcher function's schedule stand-in: its handler, window after window, forever.

use std::time::Duration;

use shared::clients::Clients;
use shared::services::dispatch::Dispatcher;

/// Runs the dispatcher's handler back to back (each run lasts `DISPATCH_RUN_SECONDS`, at least 1 s
/// here), as the every-minute schedule with overlapping invocations would. Logs runs that did work.
pub async fn run_forever(clients: &Clients) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::from_clients(clients).await?;
    let window = dispatcher.settings().run_for.max(Duration::from_secs(1));
    loop {
        let summary = dispatcher.run(window).await;
        if summary.events_fanned_out + summary.deliveries_succeeded + summary.attempts_failed > 0 {
            tracing::info!(summary = %dispatcher::summary_json(&summary), "webhook dispatch window");
        }
    }
}
