//! Background pruning: deletes what retention no longer keeps, from the old
//! end only, in small batches so publishes never wait long behind a delete.

use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{EventLog, Retention, StoreError};

/// Rows deleted per transaction.
const BATCH: u32 = 1000;
/// How often the pruner looks for work.
const INTERVAL: Duration = Duration::from_secs(5);

/// Prunes until nothing is left to prune; returns how many events went.
pub async fn prune_now(log: &EventLog, retention: Retention) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = log.prune_batch(retention, BATCH).await?;
        if deleted == 0 {
            return Ok(total);
        }
        total += deleted;
    }
}

/// Runs until shutdown.
pub async fn run(log: EventLog, retention: Retention, shutdown: Shutdown) {
    if retention == Retention::default() {
        return;
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        match prune_now(&log, retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention pruned old events"),
            Err(error) => tracing::warn!(error = %error, "retention pruning failed; will retry"),
        }
    }
}
