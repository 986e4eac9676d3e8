//! What limits a scenario: PostgreSQL's wait events sampled from pg_stat_activity while it runs,
//! and how busy the machine's CPUs were.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Samples the wait events of the database's active backends every 5 ms until stopped.
pub struct WaitSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<(usize, HashMap<String, usize>)>>,
}

impl WaitSampler {
    pub async fn start(url: &str, database: &str) -> anyhow::Result<Self> {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let database = database.to_string();
        let task = tokio::spawn(async move {
            let stmt = client
                .prepare(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
                     WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                )
                .await?;
            let (mut samples, mut counts) = (0usize, HashMap::new());
            while !flag.load(Ordering::Relaxed) {
                for row in client.query(&stmt, &[&database]).await? {
                    *counts.entry(row.get::<_, String>(0)).or_default() += 1;
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok((samples, counts))
        });
        Ok(Self { stop, task })
    }

    /// The most frequent wait events as "event share%", busiest first.
    pub async fn finish(self) -> anyhow::Result<String> {
        self.stop.store(true, Ordering::Relaxed);
        let (_, counts) = self.task.await??;
        let total: usize = counts.values().sum();
        let mut top: Vec<(String, usize)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(top
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {:.0}%", *v as f64 * 100.0 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

/// Total and idle CPU jiffies from /proc/stat.
pub fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total, idle)
}

/// Share of CPU time spent busy between two `cpu_times` readings, in percent.
pub fn busy_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.0.saturating_sub(before.0);
    let idle = after.1.saturating_sub(before.1);
    if total == 0 {
        0.0
    } else {
        (total - idle) as f64 * 100.0 / total as f64
    }
}
