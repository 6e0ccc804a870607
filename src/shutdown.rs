//! The shutdown signal, cloned into every session. Once it fires the server
//! drains: new streams get `503`, open streams end cleanly, publishes already
//! queued still commit and get their answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// The same fact as `token.is_cancelled()`, which takes a lock: session
    /// loops ask on every delivered event.
    draining: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the drain. Idempotent.
    pub fn trigger(&self) {
        self.draining.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves once the drain has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// The same as [`wait`](Self::wait), as a future that owns its handle.
    /// A session loop keeps one pinned for its whole life instead of making
    /// a new `wait()` on every turn: each new one registers with the token
    /// under its lock, and dropping it unregisters, which per delivered
    /// event adds up across thousands of connections.
    pub fn signal(&self) -> ShutdownSignal {
        Box::pin(self.token.clone().cancelled_owned())
    }
}

/// See [`Shutdown::signal`].
pub type ShutdownSignal = std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>;
