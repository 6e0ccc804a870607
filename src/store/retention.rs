//! Background pruning: deletes what retention no longer keeps, from the old
//! end only, in small batches so publishes never wait long behind a delete;
//! and, before anything is pruned, brings the entity index up to date.

use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{EventLog, Retention, StoreError};

/// Rows deleted per transaction.
const BATCH: u32 = 1000;
/// How often the entity index is brought up to date with the log.
const INDEX_INTERVAL: Duration = Duration::from_secs(5);

/// Brings the entity index up to date, then prunes until nothing is left
/// to prune; returns how many rows went.
pub async fn prune_now(log: &EventLog, retention: Retention) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let pruned = log.prune_batch(retention, BATCH).await?;
        if !pruned.more_to_do() {
            return Ok(total);
        }
        total += pruned.deleted;
    }
}

/// Brings the entity index up to date every `INDEX_INTERVAL` (or every
/// `interval`, if shorter), and prunes every `interval` (the first run at
/// once), until shutdown. The index follows the log closely because
/// readers of `/events/changes` read what it has not taken in yet from the
/// log.
pub async fn run(log: EventLog, retention: Retention, interval: Duration, shutdown: Shutdown) {
    // The flag parser refuses zero; a `Config` built in code might not, and
    // tokio panics on a zero period.
    let interval = interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(interval.min(INDEX_INTERVAL));
    let mut next_prune = tokio::time::Instant::now();
    loop {
        let now = tokio::select! {
            () = shutdown.wait() => return,
            now = tick.tick() => now,
        };
        let step = if now >= next_prune {
            next_prune = now + interval;
            retention
        } else {
            // Nothing to delete: the step only brings the index up to date.
            Retention::default()
        };
        match prune_now(&log, step).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention pruned old events"),
            Err(error) => tracing::warn!(error = %error, "retention pruning failed; will retry"),
        }
    }
}
