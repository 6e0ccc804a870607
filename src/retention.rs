//! Background pruning: deletes what retention no longer keeps, from the old
//! end only, in small batches so publishes never wait long behind a delete.

use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{EventLog, Retention, StoreError};

/// Rows deleted per transaction.
const BATCH: u32 = 1000;

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

/// Prunes every `interval` (the first run at once) until shutdown.
pub async fn run(log: EventLog, retention: Retention, interval: Duration, shutdown: Shutdown) {
    if retention == Retention::default() {
        return;
    }
    // The flag parser refuses zero; a `Config` built in code might not, and
    // tokio panics on a zero period.
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
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
